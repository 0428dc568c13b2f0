//! The durable store behaves exactly like the in-memory one: random
//! sequences of transactions (puts, deletes, gets, scans; some aborted, some
//! read-only, with reopenings in between) give the same observations and
//! leave the same tables in both.

use donmai_runtime::store::lmdb::{FORMAT_KEY, FORMAT_VERSION, HeedOptions, HeedStore};
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::store::{ReadTxn, Store, StoreError, Table, WriteTxn, scan_all};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(Table, Vec<u8>, Vec<u8>),
    Delete(Table, Vec<u8>),
    Get(Table, Vec<u8>),
    /// Scans `prefix`, stopping after `limit` entries.
    Scan(Table, Vec<u8>, usize),
}

#[derive(Clone, Debug)]
enum Step {
    Write {
        ops: Vec<Op>,
        abort: bool,
    },
    Read(Vec<Op>),
    /// Drop the durable store and open it again.
    Reopen,
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Value(Option<Vec<u8>>),
    Deleted(bool),
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
}

fn table() -> impl Strategy<Value = Table> {
    // A few tables, so that operations collide, plus the rest now and then.
    prop_oneof![
        4 => Just(Table::Steps),
        2 => Just(Table::Runs),
        1 => proptest::sample::select(Table::ALL),
    ]
}

/// Short keys over a tiny alphabet (with the extreme bytes, for ordering),
/// so that puts, deletes and prefixes hit each other often.
fn key() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        proptest::sample::select(vec![0u8, b'a', b'b', b'/', 0xff]),
        1..5,
    )
}

fn prefix() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        proptest::sample::select(vec![0u8, b'a', b'b', b'/', 0xff]),
        0..3,
    )
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..24),
        // Larger than a page: LMDB keeps these on overflow pages.
        1 => (any::<u8>(), 4000..9000usize).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

fn read_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (table(), key()).prop_map(|(t, k)| Op::Get(t, k)),
        (table(), prefix(), 0..6usize).prop_map(|(t, p, n)| Op::Scan(t, p, n)),
    ]
}

fn write_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (table(), key(), value()).prop_map(|(t, k, v)| Op::Put(t, k, v)),
        2 => (table(), key()).prop_map(|(t, k)| Op::Delete(t, k)),
        2 => read_op(),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (proptest::collection::vec(write_op(), 0..12), proptest::bool::weighted(0.25))
            .prop_map(|(ops, abort)| Step::Write { ops, abort }),
        2 => proptest::collection::vec(read_op(), 1..6).prop_map(Step::Read),
        1 => Just(Step::Reopen),
    ]
}

fn observe(txn: &dyn ReadTxn, op: &Op) -> Result<Option<Seen>, StoreError> {
    Ok(match op {
        Op::Get(table, key) => Some(Seen::Value(txn.get(*table, key)?)),
        Op::Scan(table, prefix, limit) => {
            let mut entries = Vec::new();
            txn.scan(*table, prefix, &mut |key, value| {
                entries.push((key.to_vec(), value.to_vec()));
                entries.len() < *limit
            })?;
            Some(Seen::Entries(entries))
        }
        Op::Put(..) | Op::Delete(..) => None,
    })
}

fn apply(txn: &mut dyn WriteTxn, op: &Op) -> Result<Option<Seen>, StoreError> {
    match op {
        Op::Put(table, key, value) => txn.put(*table, key, value).map(|()| None),
        Op::Delete(table, key) => txn.delete(*table, key).map(|hit| Some(Seen::Deleted(hit))),
        Op::Get(..) | Op::Scan(..) => observe(txn, op),
    }
}

/// Runs one step; returns what it observed (and whether it committed).
fn run(store: &dyn Store, step: &Step) -> Vec<Seen> {
    let mut seen = Vec::new();
    match step {
        Step::Write { ops, abort } => {
            let result = store.write(&mut |txn| {
                // A retried attempt starts over.
                seen.clear();
                for op in ops {
                    seen.extend(apply(txn, op)?);
                }
                if *abort {
                    return Err(StoreError::new("aborted on purpose"));
                }
                Ok(())
            });
            match result {
                Ok(()) => assert!(!abort),
                Err(err) => assert_eq!(err.message, "aborted on purpose"),
            }
        }
        Step::Read(ops) => store
            .read(&mut |txn| {
                seen.clear();
                for op in ops {
                    seen.extend(observe(txn, op)?);
                }
                Ok(())
            })
            .unwrap(),
        Step::Reopen => {}
    }
    seen
}

fn dump(store: &dyn Store) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut tables = Vec::new();
    store
        .read(&mut |txn| {
            tables = Table::ALL
                .iter()
                .map(|table| scan_all(txn, *table, b""))
                .collect::<Result<_, _>>()?;
            Ok(())
        })
        .unwrap();
    tables
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn durable_store_matches_the_model(steps in proptest::collection::vec(step(), 1..14)) {
        let dir = tempfile::tempdir().unwrap();
        // A small map, so that growing it mid-transaction is part of what is
        // compared.
        let options = HeedOptions { map_size: 16 * 4096 };
        let mut durable = HeedStore::open_with(dir.path(), &options).unwrap();
        let model = MemoryStore::new();
        // The durable store starts with its format record; so does the model.
        model
            .write(&mut |txn| txn.put(Table::Meta, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes()))
            .unwrap();
        for (index, step) in steps.iter().enumerate() {
            if let Step::Reopen = step {
                drop(durable);
                durable = HeedStore::open_with(dir.path(), &options).unwrap();
            }
            let expected = run(&model, step);
            let actual = run(&durable, step);
            prop_assert_eq!(&actual, &expected, "observations of step {}: {:?}", index, step);
            prop_assert_eq!(
                dump(&durable),
                dump(&model),
                "tables after step {}: {:?}",
                index,
                step
            );
        }
    }
}
