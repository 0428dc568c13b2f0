//! Several processes on one durable store, and processes killed in the
//! middle of a transaction.
//!
//! The children are this test binary run again with `DONMAI_STORE_ROLE`
//! set: the `child` test below then plays the role instead of returning at
//! once. Children report progress on stdout in lines starting with `@@ `.

use donmai_runtime::audit::{self, AuditSigner};
use donmai_runtime::store::lmdb::{HeedOptions, HeedStore};
use donmai_runtime::store::{Store, StoreError, Table, WriteTxn, scan_all};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ROLE: &str = "DONMAI_STORE_ROLE";
const DIR: &str = "DONMAI_STORE_DIR";
const ARG: &str = "DONMAI_STORE_ARG";

/// Small enough that the counting children grow the map several times while
/// the others (and the parent) have it open.
const SMALL_MAP: usize = 16 * 4096;

#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(DIR).expect("store dir"));
    let arg = std::env::var(ARG).unwrap_or_default();
    match role.as_str() {
        "count" => count(&dir, &arg),
        "crash" => crash_writer(&dir, &arg),
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, dir: &Path, arg: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env(DIR, dir)
        .env(ARG, arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a child process")
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

fn read_u64(txn: &dyn donmai_runtime::store::ReadTxn, table: Table, key: &[u8]) -> Option<u64> {
    txn.get(table, key)
        .unwrap()
        .map(|bytes| u64::from_be_bytes(bytes.try_into().expect("an 8-byte counter")))
}

// ---------------------------------------------------------------------------
// Concurrent writers.

/// Child role: `arg` is `<writer>:<transactions>`. Each transaction bumps a
/// shared counter, records the value it saw under its own key, and appends
/// an audit entry.
fn count(dir: &Path, arg: &str) {
    let (writer, transactions) = arg.split_once(':').expect("writer:transactions");
    let transactions: u64 = transactions.parse().unwrap();
    let store = HeedStore::open_with(
        dir,
        &HeedOptions {
            map_size: SMALL_MAP,
        },
    )
    .unwrap();
    let signer = AuditSigner::for_store(dir).unwrap();
    let padding = vec![b'.'; 2000];
    for i in 0..transactions {
        store
            .write(&mut |txn| {
                let seen = read_u64(txn, Table::Meta, b"count").unwrap_or(0);
                txn.put(Table::Meta, b"count", &(seen + 1).to_be_bytes())?;
                let key = format!("w{writer}/{i:06}");
                let value = [&seen.to_be_bytes()[..], &padding].concat();
                txn.put(Table::Steps, key.as_bytes(), &value)?;
                let event = format!(r#"{{"writer":"{writer}","i":{i},"seen":{seen}}}"#);
                audit::append(txn, &signer, event.as_bytes()).map(drop)
            })
            .unwrap();
    }
    report("done");
}

#[test]
fn concurrent_processes_serialize_their_transactions() {
    const WRITERS: u64 = 3;
    const TRANSACTIONS: u64 = 150;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    // The parent keeps the store open with a small map throughout, so it
    // must adopt the sizes the children grow the map to.
    let store = HeedStore::open_with(
        dir,
        &HeedOptions {
            map_size: SMALL_MAP,
        },
    )
    .unwrap();
    let mut children: Vec<Child> = (0..WRITERS)
        .map(|writer| spawn("count", dir, &format!("{writer}:{TRANSACTIONS}")))
        .collect();
    let mut last_seen = 0;
    loop {
        let running = children
            .iter_mut()
            .any(|child| child.try_wait().unwrap().is_none());
        store
            .read(&mut |txn| {
                let now = read_u64(txn, Table::Meta, b"count").unwrap_or(0);
                assert!(
                    now >= last_seen,
                    "the counter went back from {last_seen} to {now}"
                );
                last_seen = now;
                Ok(())
            })
            .unwrap();
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a writer failed: {:?}",
            output.status
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("@@ done"));
    }

    let total = WRITERS * TRANSACTIONS;
    assert!(store.map_size() > SMALL_MAP, "the map should have grown");
    let signer = AuditSigner::for_store(dir).unwrap();
    store
        .read(&mut |txn| {
            assert_eq!(read_u64(txn, Table::Meta, b"count"), Some(total));
            let entries = scan_all(txn, Table::Steps, b"")?;
            assert_eq!(entries.len() as u64, total);
            // Each transaction saw a distinct counter value: no two ran on
            // the same snapshot, none was lost.
            let mut seen: Vec<u64> = entries
                .iter()
                .map(|(_, value)| u64::from_be_bytes(value[..8].try_into().unwrap()))
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..total).collect::<Vec<_>>());
            for writer in 0..WRITERS {
                for i in 0..TRANSACTIONS {
                    let key = format!("w{writer}/{i:06}");
                    assert!(txn.get(Table::Steps, key.as_bytes())?.is_some(), "{key}");
                }
            }
            // One key for all writers, and one chain through all of them.
            let keys = audit::trusted_keys_from_store(txn).unwrap();
            assert_eq!(keys.len(), 1);
            assert_eq!(keys.ids().next(), Some(signer.key_id()));
            let report = audit::verify(txn, &keys).unwrap();
            assert_eq!(report.length, total);
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Killed writers.

const KEYS_PER_TRANSACTION: u64 = 24;

fn crash_key(transaction: u64, part: u64) -> String {
    format!("t/{transaction:08}/{part:02}")
}

fn crash_value(transaction: u64, part: u64) -> Vec<u8> {
    let mut value = format!("{transaction}:{part}:").into_bytes();
    value.resize(700, b'#');
    value
}

/// Child role: `arg` is the transaction to freeze inside (`none` to run
/// until killed). Transaction `n` writes `KEYS_PER_TRANSACTION` keys, the
/// `last` counter and an audit entry; all or nothing of it may survive.
fn crash_writer(dir: &Path, arg: &str) {
    let freeze_at: Option<u64> = arg.parse().ok();
    let store = HeedStore::open(dir).unwrap();
    let signer = AuditSigner::for_store(dir).unwrap();
    let mut next = 0;
    store
        .read(&mut |txn| {
            next = read_u64(txn, Table::Meta, b"last").map_or(0, |last| last + 1);
            Ok(())
        })
        .unwrap();
    loop {
        let n = next;
        store
            .write(&mut |txn: &mut dyn WriteTxn| {
                for part in 0..KEYS_PER_TRANSACTION {
                    txn.put(
                        Table::Steps,
                        crash_key(n, part).as_bytes(),
                        &crash_value(n, part),
                    )?;
                    if Some(n) == freeze_at && part == KEYS_PER_TRANSACTION / 2 {
                        // Half written: wait here for the kill.
                        report(&format!("inside {n}"));
                        std::thread::sleep(Duration::from_secs(60));
                        return Err(StoreError::new("was not killed"));
                    }
                }
                audit::append(txn, &signer, format!(r#"{{"transaction":{n}}}"#).as_bytes())?;
                txn.put(Table::Meta, b"last", &n.to_be_bytes())
            })
            .unwrap();
        report(&format!("committed {n}"));
        next += 1;
    }
}

/// Kills a crash writer once it reports `inside` (or after `delay` when it
/// has no freeze point) and returns the last commit it reported.
fn run_and_kill(dir: &Path, freeze_at: Option<u64>, delay: Duration) -> Option<u64> {
    let mut child = spawn(
        "crash",
        dir,
        &freeze_at.map_or("none".to_string(), |n| n.to_string()),
    );
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(report) = line.strip_prefix("@@ ")
                && sender.send(report.to_string()).is_err()
            {
                break;
            }
        }
    });
    let mut last_committed = None;
    let started = std::time::Instant::now();
    loop {
        match receiver.recv_timeout(Duration::from_millis(1)) {
            Ok(report) => {
                if let Some(n) = report.strip_prefix("committed ") {
                    last_committed = Some(n.parse::<u64>().unwrap());
                } else if report.starts_with("inside ") {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the writer exited before it was killed")
            }
        }
        if freeze_at.is_none() && started.elapsed() >= delay {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the writer stalled"
        );
    }
    // SIGKILL on Unix: no unwinding, no destructors, no abort of the
    // transaction.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    // Commits reported before the kill arrived are in the pipe too.
    reader.join().unwrap();
    for report in receiver.try_iter() {
        if let Some(n) = report.strip_prefix("committed ") {
            last_committed = Some(n.parse::<u64>().unwrap());
        }
    }
    last_committed
}

/// Every transaction up to `last` is whole, nothing after it is visible, and
/// the audit chain has one valid entry per transaction.
fn check_after_crash(store: &HeedStore, reported: Option<u64>) -> u64 {
    let mut last = 0;
    store
        .read(&mut |txn| {
            let stored = read_u64(txn, Table::Meta, b"last").expect("at least one commit");
            if let Some(reported) = reported {
                assert!(
                    stored >= reported,
                    "commit {reported} was reported but lost"
                );
            }
            let entries = scan_all(txn, Table::Steps, b"t/")?;
            assert_eq!(entries.len() as u64, (stored + 1) * KEYS_PER_TRANSACTION);
            for n in 0..=stored {
                for part in 0..KEYS_PER_TRANSACTION {
                    assert_eq!(
                        txn.get(Table::Steps, crash_key(n, part).as_bytes())?,
                        Some(crash_value(n, part)),
                        "transaction {n} part {part}"
                    );
                }
            }
            assert!(
                scan_all(
                    txn,
                    Table::Steps,
                    format!("t/{:08}/", stored + 1).as_bytes()
                )?
                .is_empty(),
                "part of the interrupted transaction is visible"
            );
            let keys = audit::trusted_keys_from_store(txn).unwrap();
            let report = audit::verify(txn, &keys).unwrap();
            assert_eq!(report.length, stored + 1);
            last = stored;
            Ok(())
        })
        .unwrap();
    last
}

#[test]
fn killed_writers_leave_only_whole_transactions() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let mut last = None;
    // Frozen halfway through a transaction (the kill certainly lands inside
    // one, with the LMDB writer lock held), then killed at arbitrary moments
    // of a busy stream (inside transactions or in the middle of commits).
    let rounds: [(Option<u64>, Duration); 5] = [
        (Some(40), Duration::ZERO),
        (None, Duration::from_millis(300)),
        (Some(130), Duration::ZERO),
        (None, Duration::from_millis(170)),
        (None, Duration::from_millis(230)),
    ];
    for (freeze_at, delay) in rounds {
        let freeze_at = freeze_at.map(|n| n.max(last.map_or(0, |l: u64| l + 5)));
        let reported = run_and_kill(dir, freeze_at, delay);
        // A fresh process view each round: reopen, check, and write, which
        // takes over the writer lock the dead child may have held.
        let store = HeedStore::open(dir).unwrap();
        let stored = check_after_crash(&store, reported);
        if let Some(frozen) = freeze_at {
            assert_eq!(
                stored + 1,
                frozen,
                "the frozen transaction must not be visible"
            );
        }
        store
            .write(&mut |txn| txn.put(Table::Runs, b"parent", &stored.to_be_bytes()))
            .unwrap();
        last = Some(stored);
    }
}
