//! The store commands besides `run` and `audit`: `signal` (plan-free: it
//! only stores the signal; the process driving the run matches it),
//! `runs` (what the store says about runs and their steps) and `cancel`.

use crate::audit::{AuditHook, signer_for};
use crate::cli::{CancelArgs, OutputFormat, RunsArgs, SignalArgs};
use crate::location::existing_store_dir;
use crate::payload::read_json;
use crate::plans;
use crate::printer::{Printer, emit};
use donmai_runtime::clock::SystemClock;
use donmai_runtime::engine::{Engine, EngineConfig, RunId, RunInfo, RunSummary, query};
use donmai_runtime::exec::CompositeExecutor;
use donmai_runtime::store::Store;
use donmai_runtime::store::lmdb::HeedStore;
use donmai_stdlib::value::Value;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn open_existing(
    explicit: Option<&std::path::Path>,
) -> Result<(std::path::PathBuf, Arc<HeedStore>), String> {
    let dir = existing_store_dir(explicit)?;
    let store = HeedStore::open(&dir).map_err(|e| format!("store {}: {e}", dir.display()))?;
    Ok((dir, Arc::new(store)))
}

fn parse_run_id(text: &str) -> Result<RunId, String> {
    RunId::parse(text).ok_or_else(|| format!("`{text}` is not a run id"))
}

pub fn signal_command(args: &SignalArgs) -> ExitCode {
    let (_, store) = match open_existing(args.store.store.as_deref()) {
        Ok(opened) => opened,
        Err(message) => return usage(&message),
    };
    let mut data = match read_json(&args.data, "signal data") {
        Ok(data) => data,
        Err(message) => return usage(&message),
    };
    let extra = [("runId", &args.run), ("handle", &args.handle)];
    for (field, value) in extra {
        let Some(value) = value else { continue };
        match &mut data {
            serde_json::Value::Object(map) => {
                map.insert(field.to_string(), json!(value));
            }
            _ => {
                return usage(&format!(
                    "--{} needs the signal data to be a JSON object",
                    if field == "runId" { "run" } else { "handle" }
                ));
            }
        }
    }
    if let Some(run) = &args.run {
        let run = match parse_run_id(run) {
            Ok(run) => run,
            Err(message) => return usage(&message),
        };
        match query::run_info(store.as_ref(), &run) {
            Ok(Some(info)) if info.run.status.is_terminal() => eprintln!(
                "warning: run {run} has already ended ({}); no gate of it will take this signal",
                info.run.status.as_str()
            ),
            Ok(Some(_)) => {}
            Ok(None) => return usage(&format!("no run `{run}` in the store")),
            Err(e) => return usage(&e.to_string()),
        }
    }
    let seq = match query::ingest_signal(
        store.as_ref(),
        &SystemClock,
        &args.event_type,
        Value::from_json(&data),
    ) {
        Ok(seq) => seq,
        Err(e) => return usage(&e.to_string()),
    };
    match args.format {
        OutputFormat::Json => {
            emit(&json!({"seq": seq, "eventType": args.event_type, "data": data}).to_string())
        }
        OutputFormat::Human => emit(&format!(
            "signal {seq} stored: {}; the process driving the run delivers it to the first gate that matches",
            args.event_type
        )),
    }
    ExitCode::SUCCESS
}

fn summary_json(run: &RunSummary) -> serde_json::Value {
    let mut value = json!({
        "runId": run.run_id,
        "workflow": run.workflow,
        "trigger": run.trigger,
        "status": run.status.as_str(),
        "startedAt": run.started_at,
    });
    if let Some(ended) = &run.ended_at {
        value["endedAt"] = json!(ended);
    }
    if let Some(error) = &run.error {
        value["error"] = json!(error);
    }
    if run.cancelled_by_operator {
        value["cancelledByOperator"] = json!(true);
    }
    value
}

fn info_json(info: &RunInfo) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = info
        .steps
        .iter()
        .map(|step| {
            let mut value = json!({
                "stepId": step.step_id,
                "path": step.path,
                "status": step.status.as_str(),
                "attempt": step.attempt,
                "output": step.output,
            });
            if let Some(handle) = &step.handle {
                value["handle"] = json!(handle);
            }
            if let Some(error) = &step.error {
                value["error"] = json!(error);
            }
            if let Some(reason) = &step.reason {
                value["reason"] = json!(reason);
            }
            if let Some(key) = &step.idempotency_key {
                value["idempotencyKey"] = json!(key);
            }
            value
        })
        .collect();
    json!({"run": summary_json(&info.run), "steps": steps})
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn compact(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(100).collect::<String>())
    } else {
        text
    }
}

pub fn runs_command(args: &RunsArgs) -> ExitCode {
    let (_, store) = match open_existing(args.store.store.as_deref()) {
        Ok(opened) => opened,
        Err(message) => return usage(&message),
    };
    let Some(run) = &args.run else {
        let runs = match query::list_runs(store.as_ref()) {
            Ok(runs) => runs,
            Err(e) => return usage(&e.to_string()),
        };
        match args.format {
            OutputFormat::Json => emit(
                &json!({"runs": runs.iter().map(summary_json).collect::<Vec<_>>()}).to_string(),
            ),
            OutputFormat::Human if runs.is_empty() => emit("no runs in this store"),
            OutputFormat::Human => {
                let mut rows = vec![vec![
                    "RUN".to_string(),
                    "STATUS".into(),
                    "WORKFLOW".into(),
                    "TRIGGER".into(),
                    "STARTED".into(),
                ]];
                for run in &runs {
                    rows.push(vec![
                        run.run_id.clone(),
                        run.status.as_str().into(),
                        run.workflow.clone(),
                        run.trigger.clone(),
                        run.started_at.clone(),
                    ]);
                }
                emit(table(&rows).trim_end());
            }
        }
        return ExitCode::SUCCESS;
    };
    let run = match parse_run_id(run) {
        Ok(run) => run,
        Err(message) => return usage(&message),
    };
    let info = match query::run_info(store.as_ref(), &run) {
        Ok(Some(info)) => info,
        Ok(None) => return usage(&format!("no run `{run}` in the store")),
        Err(e) => return usage(&e.to_string()),
    };
    match args.format {
        OutputFormat::Json => emit(&info_json(&info).to_string()),
        OutputFormat::Human => {
            let summary = &info.run;
            let mut head = format!(
                "run {} of {} (trigger {}): {}\nstarted {}",
                summary.run_id,
                summary.workflow,
                summary.trigger,
                summary.status.as_str(),
                summary.started_at
            );
            if let Some(ended) = &summary.ended_at {
                head.push_str(&format!(", ended {ended}"));
            }
            if let Some(error) = &summary.error {
                head.push_str(&format!("\nerror: {} [{}]", error.message, error.kind));
            }
            emit(&head);
            let mut rows = vec![vec![
                "STEP".to_string(),
                "STATUS".into(),
                "ATTEMPT".into(),
                "DETAIL".into(),
            ]];
            for step in &info.steps {
                let detail = if let Some(error) = &step.error {
                    format!("{} [{}]", error.message, error.kind)
                } else if let Some(reason) = &step.reason {
                    reason.clone()
                } else if step.output.is_null() {
                    String::new()
                } else {
                    let handle = step
                        .handle
                        .as_deref()
                        .map(|h| format!(" [{h}]"))
                        .unwrap_or_default();
                    format!("→ {}{handle}", compact(&step.output))
                };
                rows.push(vec![
                    step.step_id.clone(),
                    step.status.as_str().into(),
                    if step.attempt == 0 {
                        String::new()
                    } else {
                        step.attempt.to_string()
                    },
                    detail,
                ]);
            }
            emit(table(&rows).trim_end());
        }
    }
    ExitCode::SUCCESS
}

pub fn cancel_command(args: &CancelArgs) -> ExitCode {
    let (dir, store) = match open_existing(args.store.store.as_deref()) {
        Ok(opened) => opened,
        Err(message) => return usage(&message),
    };
    let run = match parse_run_id(&args.run) {
        Ok(run) => run,
        Err(message) => return usage(&message),
    };
    let info = match query::run_info(store.as_ref(), &run) {
        Ok(Some(info)) => info,
        Ok(None) => return usage(&format!("no run `{run}` in the store")),
        Err(e) => return usage(&e.to_string()),
    };
    if info.run.status.is_terminal() {
        eprintln!(
            "run {run} has already ended ({}); nothing to cancel",
            info.run.status.as_str()
        );
        return ExitCode::from(1);
    }
    // Cancelling a run this process does not hold is plain store work; the
    // engine API still wants a plan, and any plan of the store serves.
    let plan = match plans::stored(store.as_ref()) {
        Ok(mut plans) if !plans.is_empty() => Arc::new(plans.swap_remove(0)),
        Ok(_) => return usage("the store keeps no plan, so this donmai cannot write to its runs"),
        Err(message) => return usage(&message),
    };
    let signer = match signer_for(&dir) {
        Ok(signer) => signer,
        Err(message) => return usage(&message),
    };
    let dyn_store: Arc<dyn Store> = store.clone();
    let mut engine = match Engine::with_config(
        plan,
        dyn_store,
        Arc::new(CompositeExecutor::default()),
        Arc::new(SystemClock),
        EngineConfig {
            adopt_stale_runs: false,
            ..EngineConfig::default()
        },
    ) {
        Ok(engine) => engine,
        Err(e) => return usage(&e.to_string()),
    };
    engine.set_event_hook(Box::new(AuditHook { signer }));
    let printer = Printer::new(OutputFormat::Human);
    engine.set_event_sink(Box::new(move |event| printer.print(event)));
    match engine.cancel(&run) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("run {run} ended before it could be cancelled");
            ExitCode::from(1)
        }
        Err(e) => usage(&e.to_string()),
    }
}
