//! The audit chain as `donmai` uses it: the engine hook that appends every
//! run event, signed, inside the transaction that stores it; and
//! `donmai audit verify` / `donmai audit export`.
//!
//! The chain keeps its own copy of every event it signs (by chain
//! position); the engine keeps its per-run index (what `donmai runs`
//! reads). Verification checks the chain, then the index against it: every
//! run event must be byte-for-byte one the chain signs, or verification
//! fails naming it.

use crate::cli::{AuditExportArgs, AuditVerifyArgs, OutputFormat};
use crate::location::existing_store_dir;
use donmai_runtime::audit::{self, AuditEntry, AuditSigner, ChainReport};
use donmai_runtime::engine::{Event, EventHook};
use donmai_runtime::keys::{TrustedKeys, load_verifying_key};
use donmai_runtime::store::lmdb::HeedStore;
use donmai_runtime::store::{ReadTxn, Store, StoreResult, Table, WriteTxn};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;

/// Appends each event to the store's audit chain, in the event's own
/// transaction: an event and its signed entry commit together or not at all.
pub struct AuditHook {
    pub signer: AuditSigner,
}

impl EventHook for AuditHook {
    fn append(&self, txn: &mut dyn WriteTxn, _event: &Event, encoded: &[u8]) -> StoreResult<()> {
        audit::append(txn, &self.signer, encoded).map(|_| ())
    }
}

/// The signer of the store in `dir` (its key file is created on first use).
pub fn signer_for(dir: &Path) -> Result<AuditSigner, String> {
    AuditSigner::for_store(dir).map_err(|e| format!("the store's audit key: {e}"))
}

/// Every run event in the engine's index must be one the chain signs.
fn check_run_events(txn: &dyn ReadTxn) -> StoreResult<Result<(), String>> {
    let mut signed: HashSet<[u8; 32]> = HashSet::new();
    txn.scan(Table::Audit, b"", &mut |_, value| {
        if let Ok(entry) = AuditEntry::decode(value) {
            signed.insert(entry.event_digest);
        }
        true
    })?;
    let mut problem = None;
    txn.scan(Table::Events, b"", &mut |key, value| {
        let digest: [u8; 32] = Sha256::digest(value).into();
        if signed.contains(&digest) {
            return true;
        }
        let name = String::from_utf8_lossy(key).into_owned();
        let what = match Event::decode(value) {
            Ok(event) => format!(
                "run event {} #{} ({}{})",
                event.run_id,
                event.seq,
                event.kind.as_str(),
                event
                    .step_id
                    .map(|s| format!(" of step {s}"))
                    .unwrap_or_default()
            ),
            Err(_) => format!("the run event stored as {name}"),
        };
        problem = Some(format!(
            "{what} is not signed by the audit chain: it was altered, or written around the engine"
        ));
        false
    })?;
    Ok(problem.map_or(Ok(()), Err))
}

fn parse_anchor(text: &str) -> Result<ChainReport, String> {
    let bad = || {
        format!(
            "--anchor `{text}`: expected LENGTH:HEADHASH (64 hex digits), as `donmai audit verify` prints it"
        )
    };
    let (length, hash) = text.split_once(':').ok_or_else(bad)?;
    let length: u64 = length.trim().parse().map_err(|_| bad())?;
    let hash = hash.trim();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut head_hash = [0u8; 32];
    for (i, slot) in head_hash.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(ChainReport { length, head_hash })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn pinned_keys(paths: &[std::path::PathBuf]) -> Result<Option<TrustedKeys>, String> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut keys = TrustedKeys::new();
    for path in paths {
        keys.insert(load_verifying_key(path).map_err(|e| e.to_string())?);
    }
    Ok(Some(keys))
}

fn report_ok(report: &ChainReport, keys: &TrustedKeys, source: &str, format: OutputFormat) {
    let key_ids: Vec<String> = keys.ids().map(|id| id.to_string()).collect();
    match format {
        OutputFormat::Json => crate::printer::emit(
            &serde_json::json!({
                "valid": true,
                "source": source,
                "length": report.length,
                "headHash": hex(&report.head_hash),
                "anchor": format!("{}:{}", report.length, hex(&report.head_hash)),
                "keyIds": key_ids,
            })
            .to_string(),
        ),
        OutputFormat::Human => {
            crate::printer::emit(&format!(
                "audit chain of {source} is valid: {} entries, head hash {}",
                report.length,
                hex(&report.head_hash)
            ));
            crate::printer::emit(&format!(
                "signed by key {}",
                if key_ids.is_empty() {
                    "(none: the chain is empty)".to_string()
                } else {
                    key_ids.join(", ")
                }
            ));
            crate::printer::emit(&format!(
                "anchor: {}:{}  (keep it elsewhere; `--anchor` checks a later chain extends it)",
                report.length,
                hex(&report.head_hash)
            ));
        }
    }
}

fn report_bad(message: &str, source: &str, format: OutputFormat) -> ExitCode {
    match format {
        OutputFormat::Json => crate::printer::emit(
            &serde_json::json!({"valid": false, "source": source, "error": message}).to_string(),
        ),
        OutputFormat::Human => eprintln!("audit chain of {source} is INVALID: {message}"),
    }
    ExitCode::from(1)
}

pub fn verify_command(args: &AuditVerifyArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    let pinned = match pinned_keys(&args.keys) {
        Ok(keys) => keys,
        Err(message) => return usage(message),
    };
    let anchor = match args.anchor.as_deref().map(parse_anchor).transpose() {
        Ok(anchor) => anchor,
        Err(message) => return usage(message),
    };
    if let Some(file) = &args.file {
        let source = file.display().to_string();
        if !file.is_file() {
            return usage(format!("{source}: no such file"));
        }
        let keys = match pinned {
            Some(keys) => keys,
            None => match audit::export_keys(file) {
                Ok(keys) => keys,
                Err(e) => return report_bad(&e.to_string(), &source, args.format),
            },
        };
        let outcome = match &anchor {
            Some(anchor) => audit::verify_export_anchored(file, &keys, anchor),
            None => audit::verify_export(file, &keys),
        };
        return match outcome {
            Ok(report) => {
                report_ok(&report, &keys, &source, args.format);
                ExitCode::SUCCESS
            }
            Err(e) => report_bad(&e.to_string(), &source, args.format),
        };
    }
    let dir = match existing_store_dir(args.store.as_deref()) {
        Ok(dir) => dir,
        Err(message) => return usage(message),
    };
    let source = dir.display().to_string();
    let store = match HeedStore::open(&dir) {
        Ok(store) => store,
        Err(e) => return usage(format!("store {source}: {e}")),
    };
    let mut outcome: Option<Result<(ChainReport, TrustedKeys), String>> = None;
    let read = store.read(&mut |txn| {
        let keys = match &pinned {
            Some(keys) => keys.clone(),
            None => match audit::trusted_keys_from_store(txn) {
                Ok(keys) => keys,
                Err(e) => {
                    outcome = Some(Err(e.to_string()));
                    return Ok(());
                }
            },
        };
        let chain = match &anchor {
            Some(anchor) => audit::verify_anchored(txn, &keys, anchor),
            None => audit::verify(txn, &keys),
        };
        outcome = Some(match chain {
            Err(e) => Err(e.to_string()),
            Ok(report) => check_run_events(txn)?.map(|()| (report, keys)),
        });
        Ok(())
    });
    if let Err(e) = read {
        return usage(format!("store {source}: {e}"));
    }
    match outcome {
        Some(Ok((report, keys))) => {
            report_ok(&report, &keys, &source, args.format);
            ExitCode::SUCCESS
        }
        Some(Err(message)) => report_bad(&message, &source, args.format),
        None => usage(format!("store {source}: nothing was read")),
    }
}

pub fn export_command(args: &AuditExportArgs) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    let dir = match existing_store_dir(args.store.store.as_deref()) {
        Ok(dir) => dir,
        Err(message) => return fail(message),
    };
    let store = match HeedStore::open(&dir) {
        Ok(store) => store,
        Err(e) => return fail(format!("store {}: {e}", dir.display())),
    };
    let to_stdout = args.output.as_os_str() == "-";
    // Written beside the target and renamed, so a reader never sees half
    // an export.
    let temporary = args
        .output
        .with_extension(format!("tmp-{}", std::process::id()));
    let mut buffer: Vec<u8> = Vec::new();
    let mut outcome = None;
    let read = store.read(&mut |txn| {
        buffer.clear();
        outcome = Some(audit::export(txn, &mut buffer));
        Ok(())
    });
    if let Err(e) = read {
        return fail(format!("store {}: {e}", dir.display()));
    }
    let report = match outcome {
        Some(Ok(report)) => report,
        Some(Err(e)) => return fail(e.to_string()),
        None => return fail("nothing was read".into()),
    };
    if to_stdout {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout.write_all(&buffer).and_then(|()| stdout.flush()) {
            return fail(format!("cannot write the export: {e}"));
        }
    } else {
        let written = std::fs::write(&temporary, &buffer)
            .and_then(|()| std::fs::rename(&temporary, &args.output));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return fail(format!("cannot write {}: {e}", args.output.display()));
        }
    }
    eprintln!(
        "exported {} audit entries{}; head hash {}",
        report.length,
        if to_stdout {
            String::new()
        } else {
            format!(" to {}", args.output.display())
        },
        hex(&report.head_hash)
    );
    ExitCode::SUCCESS
}
