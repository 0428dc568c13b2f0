//! The in-memory store for tests and dry runs: the same transaction semantics
//! as the durable store, nothing survives the process.

use super::{ReadTxn, Store, StoreResult, Table, WriteTxn};
use std::collections::BTreeMap;
use std::sync::Mutex;

type Tables = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

type UndoLog = Vec<(Table, Vec<u8>, Option<Vec<u8>>)>;

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tables: Tables,
    /// The undo log of the transaction in progress, kept empty between
    /// transactions so its capacity is reused: growing a fresh log of
    /// thousands of entries on every large transaction cost more (in page
    /// faults) than the writes themselves.
    undo: UndoLog,
}

/// An undo log this long is not kept for the next transaction.
const KEPT_UNDO_CAPACITY: usize = 1 << 16;

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

struct Snapshot<'a>(&'a Tables);

fn get(tables: &Tables, table: Table, key: &[u8]) -> Option<Vec<u8>> {
    tables.get(&table)?.get(key).cloned()
}

fn scan(tables: &Tables, table: Table, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) {
    let Some(entries) = tables.get(&table) else {
        return;
    };
    for (key, value) in entries.range(prefix.to_vec()..) {
        if !key.starts_with(prefix) || !visit(key, value) {
            break;
        }
    }
}

impl ReadTxn for Snapshot<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(get(self.0, table, key))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        scan(self.0, table, prefix, visit);
        Ok(())
    }
}

/// Writes go straight into the tables while the lock is held, each one
/// recording what it replaced, so a failed transaction is rolled back by
/// replaying the log backwards: nothing is copied for a transaction that
/// commits.
struct Transaction<'a> {
    tables: &'a mut Tables,
    undo: &'a mut UndoLog,
}

impl Transaction<'_> {
    fn roll_back(&mut self) {
        while let Some((table, key, previous)) = self.undo.pop() {
            let entries = self.tables.entry(table).or_default();
            match previous {
                Some(value) => entries.insert(key, value),
                None => entries.remove(&key),
            };
        }
    }
}

impl ReadTxn for Transaction<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(get(self.tables, table, key))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        scan(self.tables, table, prefix, visit);
        Ok(())
    }
}

impl WriteTxn for Transaction<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        // The same limit as LMDB, so a test on this store cannot depend on a
        // key the durable store refuses.
        if key.is_empty() || key.len() > super::lmdb::MAX_KEY_LEN {
            return Err(super::StoreError::new(format!(
                "a key must be 1 to {} bytes long, not {}",
                super::lmdb::MAX_KEY_LEN,
                key.len()
            )));
        }
        let previous = self
            .tables
            .entry(table)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
        self.undo.push((table, key.to_vec(), previous));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<bool> {
        let previous = self
            .tables
            .get_mut(&table)
            .and_then(|entries| entries.remove(key));
        let found = previous.is_some();
        if found {
            self.undo.push((table, key.to_vec(), previous));
        }
        Ok(found)
    }
}

impl Store for MemoryStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&Snapshot(&state.tables))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        // Empty unless a roll-back was cut short by a panic.
        state.undo.clear();
        let mut txn = Transaction {
            tables: &mut state.tables,
            undo: &mut state.undo,
        };
        // A panic inside `f` must not leave half a transaction behind.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut txn)));
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                txn.roll_back();
                Err(error)
            }
            Err(panic) => {
                txn.roll_back();
                std::panic::resume_unwind(panic)
            }
        };
        state.undo.clear();
        if state.undo.capacity() > KEPT_UNDO_CAPACITY {
            state.undo = UndoLog::new();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_transaction_keeps_nothing() {
        let store = MemoryStore::new();
        store
            .write(&mut |txn| txn.put(Table::Runs, b"a", b"1"))
            .unwrap();
        let result = store.write(&mut |txn| {
            txn.put(Table::Runs, b"b", b"2")?;
            Err(super::super::StoreError::new("boom"))
        });
        assert!(result.is_err());
        store
            .read(&mut |txn| {
                assert_eq!(txn.get(Table::Runs, b"a")?, Some(b"1".to_vec()));
                assert_eq!(txn.get(Table::Runs, b"b")?, None);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn scan_stops_at_prefix_end() {
        let store = MemoryStore::new();
        store
            .write(&mut |txn| {
                for key in [&b"r1/a"[..], b"r1/b", b"r2/a"] {
                    txn.put(Table::Steps, key, b"")?;
                }
                Ok(())
            })
            .unwrap();
        store
            .read(&mut |txn| {
                let keys: Vec<_> = super::super::scan_all(txn, Table::Steps, b"r1/")?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                assert_eq!(keys, vec![b"r1/a".to_vec(), b"r1/b".to_vec()]);
                Ok(())
            })
            .unwrap();
    }
}
