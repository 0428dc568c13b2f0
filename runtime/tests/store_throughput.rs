//! What a durable commit costs on this machine. Not a pass/fail test: run
//! it on purpose, in release, and read the numbers:
//!
//! `cargo test --release -p donmai-runtime --test store_throughput -- --ignored --nocapture`

use donmai_runtime::audit::{self, AuditSigner};
use donmai_runtime::store::lmdb::HeedStore;
use donmai_runtime::store::{Store, Table};
use std::time::{Duration, Instant};

/// Commits transactions of `puts_per_txn` puts (~120-byte values, keys in
/// order like the engine's) for about `budget`, and prints the rates.
fn measure(label: &str, puts_per_txn: u64, with_audit: bool, budget: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let store = HeedStore::open(dir.path()).unwrap();
    let signer = AuditSigner::for_store(dir.path()).unwrap();
    let value = vec![b'v'; 120];
    let started = Instant::now();
    let mut transactions = 0u64;
    let mut key = 0u64;
    let mut latencies = Vec::new();
    while started.elapsed() < budget {
        let begun = Instant::now();
        store
            .write(&mut |txn| {
                for i in 0..puts_per_txn {
                    txn.put(Table::Steps, &(key + i).to_be_bytes(), &value)?;
                    if with_audit {
                        audit::append(txn, &signer, &value)?;
                    }
                }
                Ok(())
            })
            .unwrap();
        latencies.push(begun.elapsed());
        key += puts_per_txn;
        transactions += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "{label}: {transactions} txns in {elapsed:.2} s = {:.0} txn/s, {:.0} puts/s; \
         commit p50 {:?}, p99 {:?}",
        transactions as f64 / elapsed,
        (transactions * puts_per_txn) as f64 / elapsed,
        percentile(0.5),
        percentile(0.99),
    );
}

#[test]
#[ignore = "a measurement, not a check; run on purpose"]
fn commit_rates() {
    let budget = Duration::from_secs(3);
    measure("1 put per txn", 1, false, budget);
    measure("100 puts per txn", 100, false, budget);
    measure("1 put + audit entry per txn", 1, true, budget);
    measure("100 puts + 100 audit entries per txn", 100, true, budget);
    measure("1000 puts per txn", 1000, false, budget);
}

#[test]
#[ignore = "a measurement, not a check; run on purpose"]
fn audit_rates() {
    use donmai_runtime::keys::TrustedKeys;
    const ENTRIES: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let store = HeedStore::open(dir.path()).unwrap();
    let signer = AuditSigner::for_store(dir.path()).unwrap();
    let event = br#"{"run":"r-0001","event":"step.finished","step":"deploy","attempt":1}"#;
    let started = Instant::now();
    for _ in 0..ENTRIES / 1000 {
        store
            .write(&mut |txn| {
                for _ in 0..1000 {
                    audit::append(txn, &signer, event)?;
                }
                Ok(())
            })
            .unwrap();
    }
    let appended = started.elapsed().as_secs_f64();
    let keys = TrustedKeys::new().with(signer.verifying_key());
    let started = Instant::now();
    store
        .read(&mut |txn| {
            let report = audit::verify(txn, &keys).unwrap();
            assert_eq!(report.length, ENTRIES);
            Ok(())
        })
        .unwrap();
    let verified = started.elapsed().as_secs_f64();
    let path = dir.path().join("audit.jsonl");
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    store
        .read(&mut |txn| {
            audit::export(txn, &mut out).unwrap();
            Ok(())
        })
        .unwrap();
    drop(out);
    let exported = started.elapsed().as_secs_f64();
    let started = Instant::now();
    audit::verify_export(&path, &keys).unwrap();
    let verified_export = started.elapsed().as_secs_f64();
    let per_second = |seconds: f64| ENTRIES as f64 / seconds;
    println!(
        "audit, {ENTRIES} entries: append {:.0}/s (1000 per txn), verify {:.0}/s, \
         export {:.0}/s, verify export {:.0}/s",
        per_second(appended),
        per_second(verified),
        per_second(exported),
        per_second(verified_export),
    );
}
