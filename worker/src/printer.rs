//! Printing run events: readable lines, or NDJSON (one event object per
//! line, the stored event as is: `type`, `runId`, `seq`, `at`, and where
//! they apply `stepId`, `attempt`, `output`, `handle`, `error`, `reason`,
//! `trigger`, `nextAttemptAt`, `eventTypes`, `deadline`).
//!
//! Events reach the printer from the engine's sink after their commit, and
//! also from the store (`catch_up`): a run can end by another process's
//! hand (`donmai cancel`), and that event is printed from the store, in
//! sequence order, exactly once.

use crate::cli::OutputFormat;
use donmai_runtime::engine::{Event, EventType, RunId, query};
use donmai_runtime::exec::core::LogLevel;
use donmai_runtime::store::Store;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

/// Outputs longer than this are cut in human lines (`donmai runs RUN_ID
/// --format json` has them whole).
const HUMAN_OUTPUT_LIMIT: usize = 160;

#[derive(Clone)]
pub struct Printer {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    format: OutputFormat,
    /// Prefix human lines with the run id: several runs are being driven.
    show_run: bool,
    /// The next sequence number to print, per run.
    next_seq: HashMap<String, u64>,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Printer {
        Printer {
            inner: Arc::new(Mutex::new(Inner {
                format,
                show_run: false,
                next_seq: HashMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_show_run(&self, show: bool) {
        self.lock().show_run = show;
    }

    /// Events of `run` before `seq` are not printed (a resumed run's
    /// history was printed by the process that made it).
    pub fn skip_until(&self, run: &RunId, seq: u64) {
        self.lock().next_seq.insert(run.as_str().to_string(), seq);
    }

    pub fn print(&self, event: &Event) {
        let mut inner = self.lock();
        let next = inner.next_seq.entry(event.run_id.clone()).or_insert(0);
        if event.seq < *next {
            return;
        }
        *next = event.seq + 1;
        let line = match inner.format {
            OutputFormat::Json => serde_json::to_string(event).unwrap_or_default(),
            OutputFormat::Human => human_line(event, inner.show_run),
        };
        drop(inner);
        emit(&line);
    }

    /// Prints the stored events of `run` not printed yet.
    pub fn catch_up(&self, store: &dyn Store, run: &RunId) -> Result<(), String> {
        let events = query::events(store, run).map_err(|e| e.to_string())?;
        for event in &events {
            self.print(event);
        }
        Ok(())
    }

    /// Where `core.log` writes: standard error, so standard output stays
    /// the event stream.
    pub fn log_sink(&self) -> donmai_runtime::exec::core::LogSink {
        let format = self.lock().format;
        Arc::new(
            move |run: &str, step: &str, level: LogLevel, message: &str| {
                let line = match format {
                    OutputFormat::Json => serde_json::json!({
                        "type": "log",
                        "runId": run,
                        "stepId": step,
                        "level": level.as_str(),
                        "message": message,
                    })
                    .to_string(),
                    OutputFormat::Human => format!("[{}] {step}: {message}", level.as_str()),
                };
                let mut stderr = std::io::stderr().lock();
                let _ = writeln!(stderr, "{line}");
            },
        )
    }
}

/// Writes a line to standard output, ignoring a closed pipe
/// (`donmai run … | head`): the run goes on, its state is in the store.
pub fn emit(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn clock_part(at: &str) -> &str {
    // `2026-01-01T12:00:00.000Z` → `12:00:00.000`
    at.get(11..23).unwrap_or(at)
}

fn short_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= HUMAN_OUTPUT_LIMIT {
        return text;
    }
    let cut: String = text.chars().take(HUMAN_OUTPUT_LIMIT).collect();
    format!("{cut}…")
}

fn human_line(event: &Event, show_run: bool) -> String {
    let mut line = format!("{}  ", clock_part(&event.at));
    if show_run {
        line.push_str(&format!("[{}] ", event.run_id));
    }
    line.push_str(&format!("{:<15}", event.kind.as_str()));
    let step = event.step_id.as_deref().unwrap_or("");
    let attempt = match event.attempt {
        Some(n) if n > 1 => format!(" (attempt {n})"),
        _ => String::new(),
    };
    let reason = event
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let error = event
        .error
        .as_ref()
        .map(|e| format!(": {} [{}]", e.message, e.kind))
        .unwrap_or_default();
    let rest = match event.kind {
        EventType::RunStarted => format!(
            "{}{}",
            event.run_id,
            event
                .trigger
                .as_deref()
                .map(|t| format!(" (trigger {t})"))
                .unwrap_or_default()
        ),
        EventType::RunCompleted => event.run_id.clone(),
        EventType::RunFailed => format!("{}{error}{reason}", event.run_id),
        EventType::RunCancelled => format!("{}{reason}", event.run_id),
        EventType::StepStarted | EventType::GateResumed => format!("{step}{attempt}"),
        EventType::StepCompleted => {
            let output = event
                .output
                .as_ref()
                .map(|o| format!(" → {}", short_json(o)))
                .unwrap_or_default();
            let handle = event
                .handle
                .as_deref()
                .map(|h| format!(" [{h}]"))
                .unwrap_or_default();
            format!("{step}{attempt}{output}{handle}")
        }
        EventType::StepSkipped | EventType::GateTimedOut => format!("{step}{reason}"),
        EventType::StepFailed => format!("{step}{attempt}{error}"),
        EventType::StepRetrying => {
            let failed = event.attempt.unwrap_or(1);
            let next = event
                .next_attempt_at
                .as_deref()
                .map(|at| format!("; attempt {} at {}", failed + 1, clock_part(at)))
                .unwrap_or_default();
            format!("{step}: attempt {failed} failed{error}{next}")
        }
        EventType::GateWaiting => {
            let on = if event.event_types.is_empty() {
                String::new()
            } else {
                format!(" for {}", event.event_types.join(", "))
            };
            let until = event
                .deadline
                .as_deref()
                .map(|d| format!(" until {d}"))
                .unwrap_or_default();
            format!("{step}{on}{until}")
        }
    };
    line.push_str(&rest);
    line.trim_end().to_string()
}
