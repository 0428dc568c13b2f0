//! Getting a verified plan for `donmai run`, and keeping every plan a store
//! has run inside that store.
//!
//! A workflow file is checked and lowered by the compiler (the same path as
//! `donmaic build`, so nothing `donmaic check` refuses can run); a `.dplan`
//! is decoded, its signature checked against `--trust-key` keys when any are
//! given, and verified. Either way the engine only ever sees a
//! [`VerifiedPlan`].
//!
//! Stored plans: `Meta` key `plan/<hex plan id>` holds the encoded plan, so
//! `donmai run --resume` can continue runs of every plan without the files
//! they were started from (which may have changed or moved since). The key
//! is the content hash, so storing a plan twice is a no-op and a stored plan
//! is checked against its key when it is read back.

use donmai_compiler::build::{self, CompileError};
use donmai_compiler::driver::exit_code;
use donmai_compiler::render::{Format, RenderOptions, render};
use donmai_runtime::keys::{TrustedKeys, load_verifying_key};
use donmai_runtime::plan::{self, PlanId};
use donmai_runtime::store::{Store, Table};
use donmai_runtime::verify::{VerifiedPlan, verify};
use std::io::IsTerminal;
use std::path::Path;

const PLAN_PREFIX: &[u8] = b"plan/";

/// Why there is no plan to run. Every variant is a refused plan or a usage
/// error (exit status 2); the message is ready to print.
#[derive(Debug)]
pub struct Refused(pub String);

/// A plan ready to run and the bytes to keep in the store.
pub struct Loaded {
    pub plan: VerifiedPlan,
    pub bytes: Vec<u8>,
}

/// Whether `path` names a built plan rather than a workflow: by extension,
/// else by the plan format's magic bytes.
fn is_plan_file(path: &Path, bytes: &[u8]) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("dplan") => true,
        Some("yaml" | "yml") => false,
        _ => plan::decode(bytes).is_ok(),
    }
}

pub fn load(path: &Path, trust_keys: &[std::path::PathBuf]) -> Result<Loaded, Refused> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refused(format!("{}: no such file", path.display())));
        }
        Err(e) => return Err(Refused(format!("cannot read {}: {e}", path.display()))),
    };
    if is_plan_file(path, &bytes) {
        load_plan_file(path, &bytes, trust_keys)
    } else if !trust_keys.is_empty() {
        Err(Refused(format!(
            "{}: --trust-key applies to built plans (.dplan) only; a workflow file is compiled here and carries no signature",
            path.display()
        )))
    } else {
        compile(path)
    }
}

fn load_plan_file(
    path: &Path,
    bytes: &[u8],
    trust_keys: &[std::path::PathBuf],
) -> Result<Loaded, Refused> {
    let refused = |what: String| Refused(format!("{}: plan refused: {what}", path.display()));
    let decoded = if trust_keys.is_empty() {
        plan::decode(bytes)
    } else {
        let mut trusted = TrustedKeys::new();
        for key in trust_keys {
            let key = load_verifying_key(key).map_err(|e| Refused(e.to_string()))?;
            trusted.insert(key);
        }
        plan::decode_signed(bytes, &trusted)
    }
    .map_err(|e| refused(e.to_string()))?;
    let plan = decoded.verify().map_err(|e| refused(e.to_string()))?;
    Ok(Loaded {
        plan,
        bytes: bytes.to_vec(),
    })
}

/// Compiles a workflow; check errors are rendered on standard error the way
/// `donmaic check` renders them, warnings too.
fn compile(path: &Path) -> Result<Loaded, Refused> {
    let options = RenderOptions {
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        deny_warnings: false,
    };
    let compiled = match build::compile(path) {
        Ok(compiled) => compiled,
        Err(CompileError::Check(report)) => {
            for failure in &report.failures {
                eprintln!("error: {}: {}", failure.path.display(), failure.message);
            }
            eprint!("{}", render(&report, Format::Human, &options));
            let reason = if exit_code(&report, false) == 1 {
                "the workflow has errors; nothing was run"
            } else {
                "the workflow could not be checked; nothing was run"
            };
            return Err(Refused(format!("{}: {reason}", path.display())));
        }
        Err(CompileError::Failure(failure)) => {
            return Err(Refused(format!(
                "{}: {}",
                failure.path.display(),
                failure.message
            )));
        }
        Err(CompileError::Lower(error)) => {
            return Err(Refused(format!(
                "{}: cannot lower this workflow at bytes {}..{}: {}",
                error.file.display(),
                error.span.start,
                error.span.end,
                error.message
            )));
        }
    };
    if compiled.report.summary().warnings > 0 {
        eprint!("{}", render(&compiled.report, Format::Human, &options));
    }
    let plan = verify(compiled.plan).map_err(|e| {
        Refused(format!(
            "{}: internal compiler error: the lowered plan does not verify: {e}",
            path.display()
        ))
    })?;
    let bytes = plan::encode(&plan);
    Ok(Loaded { plan, bytes })
}

fn plan_key(id: PlanId) -> Vec<u8> {
    [PLAN_PREFIX, id.to_string().as_bytes()].concat()
}

/// Keeps `bytes` (the plan `id`) in the store unless it is there already.
pub fn remember(store: &dyn Store, id: PlanId, bytes: &[u8]) -> Result<(), String> {
    let key = plan_key(id);
    let mut present = false;
    store
        .read(&mut |txn| {
            present = txn.get(Table::Meta, &key)?.is_some();
            Ok(())
        })
        .map_err(|e| format!("store: {e}"))?;
    if present {
        return Ok(());
    }
    store
        .write(&mut |txn| {
            if txn.get(Table::Meta, &key)?.is_none() {
                txn.put(Table::Meta, &key, bytes)?;
            }
            Ok(())
        })
        .map_err(|e| format!("store: {e}"))
}

/// Every plan the store has run, verified again (the store may have been
/// written by an older donmai, or damaged).
pub fn stored(store: &dyn Store) -> Result<Vec<VerifiedPlan>, String> {
    let mut entries = Vec::new();
    store
        .read(&mut |txn| {
            entries = donmai_runtime::store::scan_all(txn, Table::Meta, PLAN_PREFIX)?;
            Ok(())
        })
        .map_err(|e| format!("store: {e}"))?;
    let mut plans = Vec::new();
    for (key, bytes) in entries {
        let name = String::from_utf8_lossy(&key[PLAN_PREFIX.len()..]).into_owned();
        let damaged = |what: String| format!("the store's plan {name} is damaged: {what}");
        let decoded = plan::decode(&bytes).map_err(|e| damaged(e.to_string()))?;
        if decoded.id().to_string() != name {
            return Err(damaged(format!("its content hashes to {}", decoded.id())));
        }
        plans.push(decoded.verify().map_err(|e| damaged(e.to_string()))?);
    }
    Ok(plans)
}
