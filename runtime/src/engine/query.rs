//! Reading runs, steps and events from a store, and ingesting signals —
//! what `donmai runs` and `donmai signal` need, without a plan or an engine.

use super::records::{self, RunRecord, SignalRecord, StepRecord};
use super::{EngineError, ErrorInfo, Event, RunId, RunStatus, StepStatus};
use crate::clock::{Clock, rfc3339};
use crate::store::{ReadTxn, Store, Table, scan_all};
use donmai_stdlib::value::{MapKey, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow: String,
    pub trigger: String,
    pub status: RunStatus,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<ErrorInfo>,
    pub cancelled_by_operator: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    /// The display path (`build`, `dev/build`, `retries[2]/build`).
    pub step_id: String,
    /// The store path (`4`, `2.1/0`).
    pub path: String,
    pub status: StepStatus,
    pub attempt: u32,
    /// Plain JSON (timestamps and durations as strings).
    pub output: serde_json::Value,
    pub handle: Option<String>,
    pub error: Option<ErrorInfo>,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    pub run: RunSummary,
    /// In plan order (frames after the step that opened them).
    pub steps: Vec<StepInfo>,
}

impl RunInfo {
    /// The output of a step by display id.
    pub fn output(&self, step_id: &str) -> Option<&serde_json::Value> {
        self.steps
            .iter()
            .find(|s| s.step_id == step_id)
            .map(|s| &s.output)
    }
}

fn summary(record: &RunRecord) -> RunSummary {
    RunSummary {
        run_id: record.id.clone(),
        workflow: record.workflow.clone(),
        trigger: record.trigger.clone(),
        status: record.status,
        started_at: rfc3339(record.started_at),
        ended_at: record.ended_at.map(rfc3339),
        error: record.error.clone(),
        cancelled_by_operator: record.cancelled_by_operator,
    }
}

/// Sorts paths by their numbers (`2` before `10`, `2.1/0` after `2`).
fn path_order(path: &str) -> Vec<u32> {
    path.split(['/', '.'])
        .map(|n| n.parse().unwrap_or(u32::MAX))
        .collect()
}

pub fn run_info(store: &dyn Store, run: &RunId) -> Result<Option<RunInfo>, EngineError> {
    let mut found: Option<Result<RunInfo, EngineError>> = None;
    store.read(&mut |txn: &dyn ReadTxn| {
        found = None;
        let Some(bytes) = txn.get(Table::Runs, &records::run_key(run))? else {
            return Ok(());
        };
        let record = match records::decode::<RunRecord>("run", &bytes) {
            Ok(record) => record,
            Err(e) => {
                found = Some(Err(EngineError::Damaged(e)));
                return Ok(());
            }
        };
        let prefix = records::steps_prefix(run);
        let mut steps = Vec::new();
        for (key, value) in scan_all(txn, Table::Steps, &prefix)? {
            let path = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            match records::decode::<StepRecord>("step", &value) {
                Ok(step) => steps.push(StepInfo {
                    step_id: step.step_id,
                    path,
                    status: step.status,
                    attempt: step.attempt,
                    output: step.output.to_json(),
                    handle: step.handle,
                    error: step.error,
                    reason: step.reason,
                    idempotency_key: step.idempotency_key,
                }),
                Err(e) => {
                    found = Some(Err(EngineError::Damaged(e)));
                    return Ok(());
                }
            }
        }
        steps.sort_by_key(|step| path_order(&step.path));
        found = Some(Ok(RunInfo {
            run: summary(&record),
            steps,
        }));
        Ok(())
    })?;
    found.transpose()
}

/// Every run in the store, oldest first.
pub fn list_runs(store: &dyn Store) -> Result<Vec<RunSummary>, EngineError> {
    let mut runs = Vec::new();
    let mut damaged = None;
    store.read(&mut |txn| {
        runs.clear();
        txn.scan(Table::Runs, b"", &mut |_, value| {
            match records::decode::<RunRecord>("run", value) {
                Ok(record) => runs.push(summary(&record)),
                Err(e) => damaged = Some(e),
            }
            true
        })
    })?;
    match damaged {
        Some(e) => Err(EngineError::Damaged(e)),
        None => Ok(runs),
    }
}

/// A run's events in order.
pub fn events(store: &dyn Store, run: &RunId) -> Result<Vec<Event>, EngineError> {
    let mut events = Vec::new();
    let mut damaged = None;
    let prefix = records::events_prefix(run);
    store.read(&mut |txn| {
        events.clear();
        txn.scan(Table::Events, &prefix, &mut |_, value| {
            match Event::decode(value) {
                Ok(event) => events.push(event),
                Err(e) => damaged = Some(e),
            }
            true
        })
    })?;
    match damaged {
        Some(e) => Err(EngineError::Damaged(e)),
        None => Ok(events),
    }
}

/// The last signal sequence number handed out.
pub fn signal_seq(store: &dyn Store) -> Result<u64, EngineError> {
    let mut seq = 0;
    store.read(&mut |txn| {
        seq = read_seq(txn)?;
        Ok(())
    })?;
    Ok(seq)
}

fn read_seq(txn: &dyn ReadTxn) -> crate::store::StoreResult<u64> {
    Ok(txn
        .get(Table::Meta, records::META_SIGNAL_SEQ)?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or(0))
}

/// Stores a signal for the gates of any engine sharing the store. `data`
/// may carry `runId` (a string: only that run's gates may take it) and
/// `handle` (a string: the handle a gate with named handles takes).
pub fn ingest_signal(
    store: &dyn Store,
    clock: &dyn Clock,
    event_type: &str,
    data: Value,
) -> Result<u64, EngineError> {
    if event_type.is_empty() || event_type.contains('\0') {
        return Err(EngineError::Plan(format!(
            "`{}` is not an event type",
            event_type.escape_debug()
        )));
    }
    let text_field = |name: &str| match &data {
        Value::Map(entries) => match entries.get(&MapKey::from(name)) {
            Some(Value::String(s)) => Some(s.to_string()),
            _ => None,
        },
        _ => None,
    };
    let mut record = SignalRecord {
        seq: 0,
        event_type: event_type.to_string(),
        run_id: text_field("runId"),
        handle: text_field("handle"),
        data,
        at: clock.now_ms(),
    };
    store.write(&mut |txn| {
        record.seq = read_seq(txn)? + 1;
        txn.put(
            Table::Meta,
            records::META_SIGNAL_SEQ,
            record.seq.to_string().as_bytes(),
        )?;
        txn.put(
            Table::Signals,
            &records::signal_key(record.seq),
            &records::encode(&record),
        )
    })?;
    Ok(record.seq)
}
