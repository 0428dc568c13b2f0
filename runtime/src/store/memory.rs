//! The in-memory store for tests and dry runs: the same transaction semantics
//! as the durable store, nothing survives the process.

use super::{ReadTxn, Store, StoreResult, Table, WriteTxn};
use std::collections::BTreeMap;
use std::sync::Mutex;

type Tables = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

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

/// Writes go to a copy that replaces the tables on commit, so a failed
/// transaction leaves nothing behind.
struct Transaction {
    tables: Tables,
}

impl ReadTxn for Transaction {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(get(&self.tables, table, key))
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        scan(&self.tables, table, prefix, visit);
        Ok(())
    }
}

impl WriteTxn for Transaction {
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
        self.tables
            .entry(table)
            .or_default()
            .insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<bool> {
        Ok(self
            .tables
            .get_mut(&table)
            .is_some_and(|entries| entries.remove(key).is_some()))
    }
}

impl Store for MemoryStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        f(&Snapshot(&tables))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let mut txn = Transaction {
            tables: tables.clone(),
        };
        f(&mut txn)?;
        *tables = txn.tables;
        Ok(())
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
