//! The durable store: LMDB through heed, one named database per [`Table`].
//!
//! A commit is durable when `write` returns (LMDB syncs the data file; no
//! `NO_SYNC`-style flag is ever set). Several processes may open the same
//! directory at once: LMDB serializes their write transactions with a
//! process-shared robust mutex in `lock.mdb`, so a `donmai signal` and a
//! running `donmai run` see each other's commits whole, and a process killed
//! mid-transaction leaves nothing of that transaction behind.
//!
//! Within one process each directory is opened once ([`HeedStore::open`]
//! shares the environment among all handles), because LMDB forbids opening
//! an environment twice in a process: closing the second handle would drop
//! the first one's file locks.

use super::{ReadTxn, Store, StoreError, StoreResult, Table, WriteTxn};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The layout version of the tables this code reads and writes. Bump it when
/// a table's key or value layout changes incompatibly; an older donmai then
/// refuses the newer store instead of misreading it.
pub const FORMAT_VERSION: u32 = 1;

/// Where the version record lives in [`Table::Meta`].
pub const FORMAT_KEY: &[u8] = b"store/format";

/// LMDB's longest key with its default build: keys must be 1..=511 bytes.
pub const MAX_KEY_LEN: usize = 511;

/// The map is address space, not disk: LMDB reserves it with `mmap` and the
/// file only grows as pages are written. 1 GiB holds on the order of a
/// million run events with their audit entries before the first growth, and
/// costs nothing on a 64-bit machine. When it fills, the map doubles.
pub const DEFAULT_MAP_SIZE: usize = 1 << 30;

/// The map never grows past this. On 64-bit targets 1 TiB is far below the
/// 128 TiB of user address space; past it the store is surely runaway.
const MAX_MAP_SIZE: usize = if usize::BITS >= 64 { 1 << 40 } else { 1 << 30 };

/// Room for tables added by later format versions without reopening.
const MAX_TABLES: u32 = 32;

/// How often one `read`/`write` call starts over after the map changed
/// size before it gives up: each round either doubles the map or adopts a
/// size another process set, so a few dozen rounds is already absurd.
const MAX_MAP_ROUNDS: usize = 64;

const DATA_FILE: &str = "data.mdb";

/// Options for [`HeedStore::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeedOptions {
    /// Initial size of the memory map in bytes, a multiple of the page size
    /// (4096 on common systems). Only the first opener in a process decides;
    /// later opens share its environment. A store already larger than this
    /// opens at its own size.
    pub map_size: usize,
}

impl Default for HeedOptions {
    fn default() -> HeedOptions {
        HeedOptions {
            map_size: DEFAULT_MAP_SIZE,
        }
    }
}

/// A handle on a durable store directory. Handles on the same directory in
/// one process share one LMDB environment; the environment closes when the
/// last handle is dropped.
pub struct HeedStore {
    /// `Some` until `drop`, which takes it out while holding the registry
    /// lock so the environment closes before anyone can reopen the path.
    shared: Option<Arc<Shared>>,
}

impl fmt::Debug for HeedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeedStore")
            .field("dir", &self.shared().dir)
            .finish_non_exhaustive()
    }
}

type RawTable = Database<'static, Bytes, Bytes>;

struct Shared {
    /// Canonical path of the store directory (the registry key).
    dir: PathBuf,
    tables: [RawTable; Table::ALL.len()],
    gate: MapGate,
    env: Env<WithoutTls>,
}

/// Every environment open in this process, by canonical directory.
static OPEN_STORES: Mutex<BTreeMap<PathBuf, Arc<Shared>>> = Mutex::new(BTreeMap::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent across a panic (plain counters and
    // a map updated in single steps), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl HeedStore {
    /// Opens (creating it if needed) the store in `dir` with the default
    /// options.
    pub fn open(dir: &Path) -> Result<HeedStore, StoreError> {
        HeedStore::open_with(dir, &HeedOptions::default())
    }

    pub fn open_with(dir: &Path, options: &HeedOptions) -> Result<HeedStore, StoreError> {
        let dir = prepare_dir(dir)?;
        let mut open = lock(&OPEN_STORES);
        if let Some(shared) = open.get(&dir) {
            return Ok(HeedStore {
                shared: Some(shared.clone()),
            });
        }
        let shared = Arc::new(Shared::open(dir.clone(), options)?);
        open.insert(dir, shared.clone());
        Ok(HeedStore {
            shared: Some(shared),
        })
    }

    /// The store directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }

    /// The current size of the memory map in bytes.
    pub fn map_size(&self) -> usize {
        let shared = self.shared();
        // Through the gate: a resize must not change the size mid-read.
        let _pass = shared.gate.pass(shared, TxnKind::Read);
        shared.env.info().map_size
    }

    fn shared(&self) -> &Shared {
        self.shared
            .as_deref()
            .expect("a HeedStore holds its environment until it is dropped")
    }
}

impl Clone for HeedStore {
    fn clone(&self) -> HeedStore {
        HeedStore {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for HeedStore {
    fn drop(&mut self) {
        let mut open = lock(&OPEN_STORES);
        let Some(shared) = self.shared.take() else {
            return;
        };
        // Two references left means the registry's and this one: this is the
        // last handle. Other handles can only be cloned from a live handle,
        // so the count cannot rise behind our back while we hold the lock.
        if Arc::strong_count(&shared) == 2 {
            open.remove(&shared.dir);
        }
        // Dropping inside the lock closes the environment before another
        // thread may open the same path again.
        drop(shared);
    }
}

fn prepare_dir(dir: &Path) -> Result<PathBuf, StoreError> {
    match std::fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(StoreError::new(format!(
                "store {}: the path is not a directory",
                dir.display()
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|err| {
                StoreError::new(format!(
                    "store {}: cannot create the directory: {}",
                    dir.display(),
                    crate::keys::io_cause(&err)
                ))
            })?;
        }
        Err(err) => {
            return Err(StoreError::new(format!(
                "store {}: {}",
                dir.display(),
                crate::keys::io_cause(&err)
            )));
        }
    }
    dir.canonicalize().map_err(|err| {
        StoreError::new(format!(
            "store {}: cannot resolve the path: {}",
            dir.display(),
            crate::keys::io_cause(&err)
        ))
    })
}

/// Why the setup transaction stopped.
enum SetupError {
    Lmdb(heed::Error),
    Refused(String),
}

impl From<heed::Error> for SetupError {
    fn from(err: heed::Error) -> SetupError {
        SetupError::Lmdb(err)
    }
}

impl Shared {
    fn open(dir: PathBuf, options: &HeedOptions) -> Result<Shared, StoreError> {
        let here = || dir.display().to_string();
        if options.map_size == 0 || options.map_size > MAX_MAP_SIZE {
            return Err(StoreError::new(format!(
                "store {}: map size {} is outside 1..={MAX_MAP_SIZE} bytes",
                here(),
                options.map_size
            )));
        }
        let mut env_options = EnvOpenOptions::new().read_txn_without_tls();
        env_options.map_size(options.map_size).max_dbs(MAX_TABLES);
        // SAFETY: heed marks `open` unsafe because a memory map is undefined
        // behaviour if its file changes underneath without coordination.
        // Here: (1) every process reaching this file goes through LMDB with
        // its lock file (we never set NO_LOCK and never write data.mdb or
        // lock.mdb ourselves); (2) within this process the registry
        // (`OPEN_STORES`, locked around this call) guarantees one
        // environment per canonical path, as LMDB requires; (3) no unsafe
        // environment flags (NO_SYNC, NO_META_SYNC, WRITE_MAP, NO_LOCK) are
        // set. What remains is LMDB's own contract: local file systems only
        // (not NFS), which is documented for operators.
        let env = unsafe { env_options.open(&dir) }.map_err(|err| open_error(&dir, err))?;
        // A process killed with a read transaction open leaves its reader
        // slot behind, which would pin old pages forever.
        env.clear_stale_readers()
            .map_err(|err| StoreError::new(format!("store {}: {err}", here())))?;

        let mut rounds = 0;
        let tables = loop {
            let failure = match setup(&env) {
                Ok(tables) => break tables,
                Err(SetupError::Refused(reason)) => {
                    return Err(StoreError::new(format!("store {}: {reason}", here())));
                }
                Err(SetupError::Lmdb(err)) => err,
            };
            // Another process may grow the map between our open and our
            // first transaction, or the store may be full already.
            let new_size = if is_map_resized(&failure) {
                0
            } else if is_map_full(&failure) && env.info().map_size < MAX_MAP_SIZE {
                env.info().map_size.saturating_mul(2).min(MAX_MAP_SIZE)
            } else {
                return Err(open_error(&dir, failure));
            };
            rounds += 1;
            if rounds > MAX_MAP_ROUNDS {
                return Err(open_error(&dir, failure));
            }
            // SAFETY: no transaction is open on this environment: it is not
            // yet shared, and the failed setup transaction has ended.
            unsafe { env.resize(new_size) }.map_err(|err| open_error(&dir, err))?;
        };
        // SAFETY: a `Database` is a plain handle (the environment's identity
        // and a table number) whose lifetime only keeps it from outliving the
        // environment. `Shared` owns the environment and these handles
        // together and lends the handles out only through `&Shared`, so none
        // can be used after the environment closes.
        let tables: [RawTable; Table::ALL.len()] = unsafe { std::mem::transmute(tables) };
        // LMDB syncs its files but not the directory that names them: make
        // a newly created store's files survive a power cut.
        if let Ok(handle) = std::fs::File::open(&dir) {
            let _ = handle.sync_all();
        }
        Ok(Shared {
            dir,
            tables,
            gate: MapGate::default(),
            env,
        })
    }

    fn table(&self, table: Table) -> RawTable {
        self.tables[table as usize]
    }

    fn error(&self, action: &str, err: impl fmt::Display) -> StoreError {
        StoreError::new(format!("store {}: {action}: {err}", self.dir.display()))
    }

    /// Doubles the map after `MDB_MAP_FULL`, unless another thread already
    /// grew it past `seen`.
    fn grow(&self, seen: usize) -> StoreResult<()> {
        if seen >= MAX_MAP_SIZE {
            return Err(self.error(
                "the store is full",
                format_args!("its map reached the {MAX_MAP_SIZE}-byte limit"),
            ));
        }
        self.gate.resize(self, |env| {
            let current = env.info().map_size;
            if current > seen {
                return Ok(());
            }
            let target = seen.saturating_mul(2).min(MAX_MAP_SIZE);
            // SAFETY: `MapGate::resize` runs this with no transaction of this
            // process open on the environment, as `mdb_env_set_mapsize`
            // requires; the size is a multiple of the page size because both
            // the initial size and the limit are.
            unsafe { env.resize(target) }.map_err(|err| self.error("cannot grow the map", err))
        })
    }

    /// Adopts the larger map another process set (`MDB_MAP_RESIZED`).
    fn adopt_map_size(&self) -> StoreResult<()> {
        self.gate.resize(self, |env| {
            // SAFETY: as in `grow`; size 0 asks LMDB for the size recorded in
            // the file by the process that grew it.
            unsafe { env.resize(0) }.map_err(|err| self.error("cannot adopt the map size", err))
        })
    }
}

/// Creates the tables, checks the format record and refuses foreign
/// environments, in one transaction that commits only when all is well.
fn setup(
    env: &Env<WithoutTls>,
) -> Result<[Database<'_, Bytes, Bytes>; Table::ALL.len()], SetupError> {
    let wtxn = env.write_txn()?;
    let setup = env.create_databases_and_commit(wtxn, |opener, wtxn| {
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for table in Table::ALL {
            tables.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(table.name()))?);
        }
        let tables: [Database<'_, Bytes, Bytes>; Table::ALL.len()] = tables
            .try_into()
            .unwrap_or_else(|_| unreachable!("one database per table"));
        check_format(wtxn, &tables)?;
        let main = opener
            .open_database::<Bytes, Bytes>(wtxn, None)?
            .ok_or_else(|| SetupError::Refused("LMDB has no main database".into()))?;
        for entry in main.iter(wtxn)? {
            let (name, _) = entry?;
            if !Table::ALL.iter().any(|t| t.name().as_bytes() == name) {
                return Err(SetupError::Refused(format!(
                    "not a donmai store: it holds a database named {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
        }
        Ok(CommitOrAbort::<_, ()>::Commit(tables))
    })?;
    match setup {
        CommitOrAbort::Commit(tables) => Ok(tables),
        CommitOrAbort::Abort(()) => unreachable!("setup never aborts by choice"),
    }
}

fn check_format(
    wtxn: &mut RwTxn<'_>,
    tables: &[Database<'_, Bytes, Bytes>],
) -> Result<(), SetupError> {
    let meta = tables[Table::Meta as usize];
    match meta.get(wtxn, FORMAT_KEY)? {
        Some(bytes) => {
            let version = <[u8; 4]>::try_from(bytes)
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    SetupError::Refused(format!(
                        "the format record is damaged ({} bytes instead of 4)",
                        bytes.len()
                    ))
                })?;
            if version > FORMAT_VERSION {
                return Err(SetupError::Refused(format!(
                    "the store has format version {version}, newer than the {FORMAT_VERSION} \
                     this donmai understands; use a newer donmai"
                )));
            }
            if version != FORMAT_VERSION {
                return Err(SetupError::Refused(format!(
                    "the store has unknown format version {version}"
                )));
            }
        }
        None => {
            for (table, handle) in Table::ALL.iter().zip(tables) {
                if !handle.is_empty(wtxn)? {
                    return Err(SetupError::Refused(format!(
                        "the {} table holds data but the store has no format record: \
                         not a donmai store, or a damaged one",
                        table.name()
                    )));
                }
            }
            meta.put(wtxn, FORMAT_KEY, &FORMAT_VERSION.to_be_bytes())?;
        }
    }
    Ok(())
}

fn open_error(dir: &Path, err: heed::Error) -> StoreError {
    let data = dir.join(DATA_FILE);
    let cause = match &err {
        heed::Error::Io(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            "permission denied (the directory and its files must be readable and writable)"
                .to_string()
        }
        heed::Error::Mdb(MdbError::Invalid) => format!(
            "{} is not an LMDB data file (a foreign or corrupt file)",
            data.display()
        ),
        heed::Error::Mdb(MdbError::VersionMismatch) => format!(
            "{} was written by an incompatible LMDB version",
            data.display()
        ),
        heed::Error::Mdb(MdbError::Corrupted | MdbError::PageNotFound | MdbError::Panic) => {
            format!("{} is corrupt ({err})", data.display())
        }
        _ => err.to_string(),
    };
    StoreError::new(format!("store {}: cannot open: {cause}", dir.display()))
}

fn is_map_full(err: &heed::Error) -> bool {
    matches!(err, heed::Error::Mdb(MdbError::MapFull))
}

fn is_map_resized(err: &heed::Error) -> bool {
    matches!(err, heed::Error::Mdb(MdbError::MapResized))
}

// ---------------------------------------------------------------------------
// The map gate: changing the map size needs every transaction of this
// process closed (the old mapping is unmapped), so transactions pass a gate
// that a resize closes.

#[derive(Default)]
struct MapGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    open_txns: usize,
    resizing: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TxnKind {
    Read,
    Write,
}

thread_local! {
    /// The transactions this thread holds, by store (address of its
    /// `Shared`), innermost last. Used to refuse a nested write, which LMDB
    /// would deadlock on, and to let a nested transaction through a closing
    /// gate instead of waiting for itself.
    static HELD: RefCell<Vec<(usize, TxnKind)>> = const { RefCell::new(Vec::new()) };
}

fn store_id(shared: &Shared) -> usize {
    shared as *const Shared as usize
}

struct GatePass<'a> {
    gate: &'a MapGate,
}

impl MapGate {
    /// Lets a write transaction in, unless this thread already has one on
    /// the store: LMDB would wait for it forever.
    fn enter_write(&self, shared: &Shared) -> StoreResult<GatePass<'_>> {
        let id = store_id(shared);
        if HELD.with(|held| held.borrow().contains(&(id, TxnKind::Write))) {
            return Err(shared.error(
                "cannot start a write transaction",
                "this thread already has one open on the store (writes cannot nest)",
            ));
        }
        Ok(self.pass(shared, TxnKind::Write))
    }

    fn pass(&self, shared: &Shared, kind: TxnKind) -> GatePass<'_> {
        let id = store_id(shared);
        let nested = HELD.with(|held| held.borrow().iter().any(|(store, _)| *store == id));
        let mut state = lock(&self.state);
        // A thread already inside must not wait for a resize that is itself
        // waiting for that thread to leave.
        while state.resizing && !nested {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.open_txns += 1;
        drop(state);
        HELD.with(|held| held.borrow_mut().push((id, kind)));
        GatePass { gate: self }
    }

    /// Runs `resize` once no transaction of this process is open. When
    /// another thread is already resizing, waits for it and returns: the
    /// caller retries and resizes again only if it still must.
    fn resize(
        &self,
        shared: &Shared,
        resize: impl FnOnce(&Env<WithoutTls>) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let id = store_id(shared);
        if HELD.with(|held| held.borrow().iter().any(|(store, _)| *store == id)) {
            return Err(shared.error(
                "the map must change size",
                "this thread holds another transaction on the store; \
                 finish it before writing in a separate transaction",
            ));
        }
        let mut state = lock(&self.state);
        if state.resizing {
            while state.resizing {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            return Ok(());
        }
        state.resizing = true;
        while state.open_txns > 0 {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let result = resize(&shared.env);
        state.resizing = false;
        drop(state);
        self.changed.notify_all();
        result
    }
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        HELD.with(|held| {
            held.borrow_mut().pop();
        });
        let mut state = lock(&self.gate.state);
        state.open_txns -= 1;
        let last = state.open_txns == 0;
        drop(state);
        if last {
            self.gate.changed.notify_all();
        }
    }
}

// ---------------------------------------------------------------------------
// Transactions.

/// Whether a key could be stored at all; LMDB rejects the others.
fn storable_key(key: &[u8]) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len())
}

fn check_key(shared: &Shared, table: Table, key: &[u8]) -> StoreResult<()> {
    if key.is_empty() {
        return Err(shared.error(
            &format!("cannot write to the {} table", table.name()),
            "keys must not be empty",
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(shared.error(
            &format!("cannot write to the {} table", table.name()),
            format_args!(
                "a key of {} bytes exceeds the {MAX_KEY_LEN}-byte limit",
                key.len()
            ),
        ));
    }
    Ok(())
}

fn get(shared: &Shared, txn: &RoTxn<'_>, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
    if !storable_key(key) {
        return Ok(None);
    }
    shared
        .table(table)
        .get(txn, key)
        .map(|value| value.map(<[u8]>::to_vec))
        .map_err(|err| shared.error(&format!("cannot read the {} table", table.name()), err))
}

fn scan(
    shared: &Shared,
    txn: &RoTxn<'_>,
    table: Table,
    prefix: &[u8],
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> StoreResult<()> {
    let fail =
        |err: heed::Error| shared.error(&format!("cannot scan the {} table", table.name()), err);
    if prefix.len() > MAX_KEY_LEN {
        // No stored key is that long, so none starts with it.
        return Ok(());
    }
    let handle = shared.table(table);
    // LMDB cannot position a cursor on an empty key; an empty prefix is a
    // scan of the whole table.
    if prefix.is_empty() {
        for entry in handle.iter(txn).map_err(fail)? {
            let (key, value) = entry.map_err(fail)?;
            if !visit(key, value) {
                break;
            }
        }
    } else {
        for entry in handle.prefix_iter(txn, prefix).map_err(fail)? {
            let (key, value) = entry.map_err(fail)?;
            if !visit(key, value) {
                break;
            }
        }
    }
    Ok(())
}

struct HeedReadTxn<'a> {
    shared: &'a Shared,
    txn: RoTxn<'a, WithoutTls>,
}

impl ReadTxn for HeedReadTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        get(self.shared, &self.txn, table, key)
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        scan(self.shared, &self.txn, table, prefix, visit)
    }
}

struct HeedWriteTxn<'a> {
    shared: &'a Shared,
    txn: RwTxn<'a>,
    /// Set when LMDB ran out of map: the transaction is then dead, and
    /// `write` grows the map and runs the closure again.
    map_full: bool,
}

impl ReadTxn for HeedWriteTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        get(self.shared, &self.txn, table, key)
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        scan(self.shared, &self.txn, table, prefix, visit)
    }
}

impl WriteTxn for HeedWriteTxn<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        check_key(self.shared, table, key)?;
        self.shared
            .table(table)
            .put(&mut self.txn, key, value)
            .map_err(|err| {
                self.map_full |= is_map_full(&err);
                self.shared
                    .error(&format!("cannot write to the {} table", table.name()), err)
            })
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<bool> {
        if !storable_key(key) {
            return Ok(false);
        }
        self.shared
            .table(table)
            .delete(&mut self.txn, key)
            .map_err(|err| {
                // Deleting can split pages too, so it can fill the map.
                self.map_full |= is_map_full(&err);
                self.shared.error(
                    &format!("cannot delete from the {} table", table.name()),
                    err,
                )
            })
    }
}

/// What one attempt at a transaction came to, when it must start over.
enum Retry {
    /// The map filled up at this size.
    MapFull(usize),
    /// Another process grew the map beyond ours.
    MapResized,
}

impl Store for HeedStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        let shared = self.shared();
        for _ in 0..MAX_MAP_ROUNDS {
            let pass = shared.gate.pass(shared, TxnKind::Read);
            match shared.env.read_txn() {
                Ok(txn) => {
                    let txn = HeedReadTxn { shared, txn };
                    let result = f(&txn);
                    drop(txn);
                    drop(pass);
                    return result;
                }
                Err(err) if is_map_resized(&err) => {
                    drop(pass);
                    shared.adopt_map_size()?;
                }
                Err(err) => return Err(shared.error("cannot start a read transaction", err)),
            }
        }
        Err(shared.error(
            "cannot start a read transaction",
            "the map kept changing size",
        ))
    }

    /// Runs `f` in one write transaction and commits durably. When the map
    /// fills up, the attempt is abandoned, the map doubles and `f` runs
    /// again from the start on a fresh transaction: `f` must act only
    /// through the transaction it is given.
    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        let shared = self.shared();
        for _ in 0..MAX_MAP_ROUNDS {
            let retry = {
                let pass = shared.gate.enter_write(shared)?;
                let map_size = shared.env.info().map_size;
                let txn = match shared.env.write_txn() {
                    Ok(txn) => txn,
                    Err(err) if is_map_resized(&err) => {
                        drop(pass);
                        shared.adopt_map_size()?;
                        continue;
                    }
                    Err(err) => {
                        return Err(shared.error("cannot start a write transaction", err));
                    }
                };
                let mut txn = HeedWriteTxn {
                    shared,
                    txn,
                    map_full: false,
                };
                let result = f(&mut txn);
                if txn.map_full {
                    // LMDB has already poisoned the transaction; drop aborts it.
                    Retry::MapFull(map_size)
                } else {
                    result?;
                    match txn.txn.commit() {
                        Ok(()) => return Ok(()),
                        Err(err) if is_map_full(&err) => Retry::MapFull(map_size),
                        Err(err) if is_map_resized(&err) => Retry::MapResized,
                        Err(err) => return Err(shared.error("cannot commit", err)),
                    }
                }
            };
            match retry {
                Retry::MapFull(seen) => shared.grow(seen)?,
                Retry::MapResized => shared.adopt_map_size()?,
            }
        }
        Err(shared.error("cannot commit", "the map kept changing size"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scan_all;

    #[test]
    fn table_indexes_follow_declaration_order() {
        for (index, table) in Table::ALL.iter().enumerate() {
            assert_eq!(*table as usize, index, "{table:?}");
        }
    }

    #[test]
    fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = HeedStore::open(dir.path()).unwrap();
            store
                .write(&mut |txn| {
                    txn.put(Table::Runs, b"r1", b"one")?;
                    txn.put(Table::Steps, b"r1/a", b"done")
                })
                .unwrap();
        }
        let store = HeedStore::open(dir.path()).unwrap();
        store
            .read(&mut |txn| {
                assert_eq!(txn.get(Table::Runs, b"r1")?, Some(b"one".to_vec()));
                assert_eq!(txn.get(Table::Steps, b"r1/a")?, Some(b"done".to_vec()));
                assert_eq!(txn.get(Table::Gates, b"r1")?, None);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn failed_transaction_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path()).unwrap();
        let result = store.write(&mut |txn| {
            txn.put(Table::Runs, b"a", b"1")?;
            Err(StoreError::new("boom"))
        });
        assert_eq!(result.unwrap_err().message, "boom");
        store
            .read(&mut |txn| {
                assert_eq!(txn.get(Table::Runs, b"a")?, None);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn two_opens_in_one_process_share_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let first = HeedStore::open(dir.path()).unwrap();
        let second = HeedStore::open(&dir.path().join(".")).unwrap();
        assert!(Arc::ptr_eq(
            first.shared.as_ref().unwrap(),
            second.shared.as_ref().unwrap()
        ));
        first
            .write(&mut |txn| txn.put(Table::Meta, b"k", b"v"))
            .unwrap();
        drop(first);
        second
            .read(&mut |txn| {
                assert_eq!(txn.get(Table::Meta, b"k")?, Some(b"v".to_vec()));
                Ok(())
            })
            .unwrap();
        drop(second);
        // Closed and reopened: a fresh environment, same data.
        let third = HeedStore::open(dir.path()).unwrap();
        third
            .read(&mut |txn| {
                assert_eq!(txn.get(Table::Meta, b"k")?, Some(b"v".to_vec()));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn scans_respect_prefixes_and_early_stop() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path()).unwrap();
        store
            .write(&mut |txn| {
                for key in [&b"r1/a"[..], b"r1/b", b"r2/a", b"r10"] {
                    txn.put(Table::Steps, key, key)?;
                }
                Ok(())
            })
            .unwrap();
        store
            .read(&mut |txn| {
                let keys: Vec<_> = scan_all(txn, Table::Steps, b"r1/")?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                assert_eq!(keys, vec![b"r1/a".to_vec(), b"r1/b".to_vec()]);
                assert_eq!(scan_all(txn, Table::Steps, b"")?.len(), 4);
                let mut seen = 0;
                txn.scan(Table::Steps, b"", &mut |_, _| {
                    seen += 1;
                    seen < 2
                })?;
                assert_eq!(seen, 2);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn unstorable_keys_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path()).unwrap();
        let err = store
            .write(&mut |txn| txn.put(Table::Runs, b"", b"x"))
            .unwrap_err();
        assert!(err.message.contains("keys must not be empty"), "{err}");
        let long = vec![b'k'; MAX_KEY_LEN + 1];
        let err = store
            .write(&mut |txn| txn.put(Table::Runs, &long, b"x"))
            .unwrap_err();
        assert!(err.message.contains("512 bytes exceeds"), "{err}");
        store
            .write(&mut |txn| {
                txn.put(Table::Runs, &long[..MAX_KEY_LEN], b"longest")?;
                assert!(!txn.delete(Table::Runs, b"")?);
                assert!(!txn.delete(Table::Runs, &long)?);
                assert_eq!(txn.get(Table::Runs, &long)?, None);
                assert_eq!(scan_all(txn, Table::Runs, &long)?.len(), 0);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn nested_write_is_refused_not_deadlocked() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open(dir.path()).unwrap();
        let inner = store.clone();
        let err = store
            .write(&mut |_| inner.write(&mut |_| Ok(())))
            .unwrap_err();
        assert!(err.message.contains("writes cannot nest"), "{err}");
        // A read inside a write and a write inside a read both work.
        store
            .write(&mut |txn| {
                txn.put(Table::Runs, b"a", b"1")?;
                inner.read(&mut |_| Ok(()))
            })
            .unwrap();
        store
            .read(&mut |_| inner.write(&mut |txn| txn.put(Table::Runs, b"b", b"2")))
            .unwrap();
    }

    #[test]
    fn a_full_map_grows_and_keeps_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let options = HeedOptions {
            map_size: 64 * 4096,
        };
        let store = HeedStore::open_with(dir.path(), &options).unwrap();
        let value = vec![7u8; 3000];
        // One transaction far larger than the initial map...
        let mut attempts = 0;
        store
            .write(&mut |txn| {
                attempts += 1;
                for i in 0..400u32 {
                    txn.put(Table::Events, &i.to_be_bytes(), &value)?;
                }
                Ok(())
            })
            .unwrap();
        assert!(attempts > 1, "the map should have had to grow");
        // ...and many small ones.
        for i in 400..1200u32 {
            store
                .write(&mut |txn| txn.put(Table::Events, &i.to_be_bytes(), &value))
                .unwrap();
        }
        assert!(store.map_size() > options.map_size);
        store
            .read(&mut |txn| {
                let all = scan_all(txn, Table::Events, b"")?;
                assert_eq!(all.len(), 1200);
                assert!(all.iter().all(|(_, v)| *v == value));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn threads_share_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = HeedStore::open_with(
            dir.path(),
            &HeedOptions {
                map_size: 32 * 4096,
            },
        )
        .unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4u8 {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..50u32 {
                        store
                            .write(&mut |txn| {
                                let count = txn
                                    .get(Table::Meta, b"count")?
                                    .map_or(0, |v| u32::from_be_bytes(v.try_into().unwrap()));
                                txn.put(Table::Meta, b"count", &(count + 1).to_be_bytes())?;
                                let key = [&[thread][..], &i.to_be_bytes()].concat();
                                txn.put(Table::Steps, &key, &[0u8; 1500])
                            })
                            .unwrap();
                        store.read(&mut |_| Ok(())).unwrap();
                    }
                });
            }
        });
        store
            .read(&mut |txn| {
                assert_eq!(
                    txn.get(Table::Meta, b"count")?,
                    Some(200u32.to_be_bytes().to_vec())
                );
                assert_eq!(scan_all(txn, Table::Steps, b"")?.len(), 200);
                Ok(())
            })
            .unwrap();
    }
}
