//! Durable state behind one small interface: named tables of ordered
//! byte keys and values, changed only inside a write transaction that commits
//! as a whole or not at all.
//!
//! The engine keeps memo, gates, timers, run events and the audit chain in
//! these tables and changes them together in one transaction per transition,
//! which is what makes a crash at any instant safe. Implementations: an
//! in-memory store for tests ([`memory::MemoryStore`]) and LMDB through heed
//! ([`lmdb::HeedStore`]), which several processes may share (a `donmai
//! signal` beside a running `donmai run`).

pub mod lmdb;
pub mod memory;

use std::fmt;

/// The tables of a store. Keys and values are bytes; their layout belongs to
/// the module that owns the table (the engine, the audit chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Store-wide metadata (format version, counters).
    Meta,
    /// One record per run.
    Runs,
    /// Step states and memoized results by (run, step, attempt).
    Steps,
    /// Gates waiting for a signal.
    Gates,
    /// Due times: gate and step timeouts, retry backoff, `core.wait`.
    Timers,
    /// Signals ingested and not yet consumed.
    Signals,
    /// The run events, in order.
    Events,
    /// The audit chain over the run events.
    Audit,
    /// The chain's own copy of each event it signs, by chain position, so
    /// the chain verifies and exports without knowing the engine's layout.
    AuditEvents,
    /// Leases on work handed to a process or a worker.
    Leases,
}

impl Table {
    pub const ALL: &'static [Table] = &[
        Table::Meta,
        Table::Runs,
        Table::Steps,
        Table::Gates,
        Table::Timers,
        Table::Signals,
        Table::Events,
        Table::Audit,
        Table::AuditEvents,
        Table::Leases,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Runs => "runs",
            Table::Steps => "steps",
            Table::Gates => "gates",
            Table::Timers => "timers",
            Table::Signals => "signals",
            Table::Events => "events",
            Table::Audit => "audit",
            Table::AuditEvents => "audit-events",
            Table::Leases => "leases",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    pub message: String,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// A consistent view of the store.
pub trait ReadTxn {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// Visits the entries whose key starts with `prefix`, in key order, until
    /// `visit` returns false.
    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()>;
}

/// A write transaction: reads see its own writes.
pub trait WriteTxn: ReadTxn {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()>;
    /// Returns whether the key was there.
    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<bool>;
}

pub trait Store: Send + Sync {
    /// Runs `f` on a read snapshot.
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()>;
    /// Runs `f` in one write transaction. When `f` returns an error nothing
    /// it wrote is kept; when it returns `Ok` everything is committed
    /// durably before `write` returns. An implementation may abandon an
    /// attempt and run `f` again on a fresh transaction (the durable store
    /// does when it must grow), so `f` should act only through the
    /// transaction.
    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()>;
}

/// Collects the entries under `prefix`.
pub fn scan_all(
    txn: &dyn ReadTxn,
    table: Table,
    prefix: &[u8],
) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut entries = Vec::new();
    txn.scan(table, prefix, &mut |key, value| {
        entries.push((key.to_vec(), value.to_vec()));
        true
    })?;
    Ok(entries)
}
