//! Run events: what `donmai run` prints and what the audit chain signs.
//!
//! Each event is stored in `Table::Events` in the same transaction as the
//! state change it reports, passed to the [`EventHook`] inside that
//! transaction (the audit chain), and handed to the caller's sink only after
//! the transaction committed, so nothing printed is ever rolled back.

use super::ErrorInfo;
use crate::store::{StoreResult, WriteTxn};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "run.started")]
    RunStarted,
    #[serde(rename = "step.started")]
    StepStarted,
    #[serde(rename = "step.completed")]
    StepCompleted,
    #[serde(rename = "step.skipped")]
    StepSkipped,
    #[serde(rename = "step.failed")]
    StepFailed,
    #[serde(rename = "step.retrying")]
    StepRetrying,
    #[serde(rename = "gate.waiting")]
    GateWaiting,
    #[serde(rename = "gate.resumed")]
    GateResumed,
    #[serde(rename = "gate.timed_out")]
    GateTimedOut,
    #[serde(rename = "run.completed")]
    RunCompleted,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.cancelled")]
    RunCancelled,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RunStarted => "run.started",
            EventType::StepStarted => "step.started",
            EventType::StepCompleted => "step.completed",
            EventType::StepSkipped => "step.skipped",
            EventType::StepFailed => "step.failed",
            EventType::StepRetrying => "step.retrying",
            EventType::GateWaiting => "gate.waiting",
            EventType::GateResumed => "gate.resumed",
            EventType::GateTimedOut => "gate.timed_out",
            EventType::RunCompleted => "run.completed",
            EventType::RunFailed => "run.failed",
            EventType::RunCancelled => "run.cancelled",
        }
    }
}

/// One run event, as stored and as printed with `--format json` (camelCase,
/// absent fields left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub run_id: String,
    /// Position in the run's event sequence, from 0.
    pub seq: u64,
    /// RFC 3339 from the engine's clock.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Step output (plain JSON: timestamps and durations as strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Why a step was skipped, a gate timed out, a run was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `run.started`: the trigger that started the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// `step.retrying`: when the next attempt is due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// `gate.waiting`: the event types the gate listens for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// `gate.waiting`: when the gate or timer times out (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl Event {
    pub fn new(kind: EventType, run_id: &str, seq: u64, at: String) -> Event {
        Event {
            kind,
            run_id: run_id.to_string(),
            seq,
            at,
            step_id: None,
            attempt: None,
            output: None,
            handle: None,
            error: None,
            reason: None,
            trigger: None,
            next_attempt_at: None,
            event_types: Vec::new(),
            deadline: None,
        }
    }

    /// The stored bytes: compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Event, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("damaged event record: {e}"))
    }
}

/// Called for every event inside the transaction that stores it: the place
/// the audit chain appends (`audit::append(txn, signer, encoded)`), so an
/// event and its audit entry commit together or not at all.
pub trait EventHook: Send {
    fn append(&self, txn: &mut dyn WriteTxn, event: &Event, encoded: &[u8]) -> StoreResult<()>;
}

/// Receives every event after its transaction committed, in commit order.
pub type EventSink = Box<dyn FnMut(&Event) + Send>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let mut event = Event::new(
            EventType::GateTimedOut,
            "R1",
            3,
            "2026-01-01T00:00:00.000Z".into(),
        );
        event.step_id = Some("ci".into());
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "gate.timed_out", "runId": "R1", "seq": 3,
                "at": "2026-01-01T00:00:00.000Z", "stepId": "ci"})
        );
        assert_eq!(Event::decode(&event.encode()).unwrap(), event);
        assert_eq!(event.kind.as_str(), "gate.timed_out");
    }
}
