//! The engine's store layout: keys and the JSON records under them.
//!
//! | table | key | value |
//! |---|---|---|
//! | `Meta` | `engine/format` | `"1"` |
//! | `Meta` | `engine/signal-seq` | last signal sequence number (decimal text) |
//! | `Runs` | `{run}` | [`RunRecord`] |
//! | `Steps` | `{run}/step/{path}` | [`StepRecord`]: the step instance's state and memoized result |
//! | `Steps` | `{run}/attempt/{path}#{attempt:08}` | [`AttemptRecord`]: one executor call (intent, then result) |
//! | `Events` | `{run}/{seq:016x}` | [`super::Event`] |
//! | `Timers` | `{due_ms:016x}/{run}/{path}` | [`TimerRecord`] (one timer per step instance at a time) |
//! | `Gates` | `{eventType}\0{subscribedAt:016x}/{run}/{path}` | [`GateRecord`] |
//! | `Signals` | `{seq:016x}` | [`SignalRecord`] (pending: not consumed by a gate yet) |
//! | `Leases` | `{run}` | [`LeaseRecord`] |
//!
//! `{path}` addresses a step instance: its index in the workflow level
//! (`4`), prefixed by one `{groupOrLoopStep}.{iteration}/` per enclosing
//! group or loop frame (`2.1/0`: step 0 of the first frame opened by step 2;
//! loops count iterations from 1, a group's frame is iteration 1).
//! Hex numbers are fixed-width so keys sort by time and sequence.

use super::codec;
use super::ids::RunId;
use super::predicate::Filter;
use super::{ErrorInfo, RunStatus, StepStatus};
use donmai_stdlib::value::Value;
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "1";
pub const META_FORMAT: &[u8] = b"engine/format";
pub const META_SIGNAL_SEQ: &[u8] = b"engine/signal-seq";

/// `n` as 16 lower-case hex digits: keys sort by number. Written by hand
/// because `format!` is a visible share of a commit's cost.
fn push_hex16(out: &mut Vec<u8>, n: u64) {
    for shift in (0..16).rev() {
        out.push(b"0123456789abcdef"[((n >> (shift * 4)) & 15) as usize]);
    }
}

fn key(parts: &[&[u8]], hex: Option<u64>, tail: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().chain(tail).map(|p| p.len()).sum::<usize>() + 16;
    let mut out = Vec::with_capacity(len);
    for part in parts {
        out.extend_from_slice(part);
    }
    if let Some(n) = hex {
        push_hex16(&mut out, n);
    }
    for part in tail {
        out.extend_from_slice(part);
    }
    out
}

pub fn run_key(run: &RunId) -> Vec<u8> {
    run.as_str().as_bytes().to_vec()
}

/// Appends the key of a step record (`{run}/step/{path}`) for the step
/// `step` of a frame whose paths start with `prefix`.
pub fn push_step_key(out: &mut Vec<u8>, run: &RunId, prefix: &str, step: u32) {
    out.extend_from_slice(run.as_str().as_bytes());
    out.extend_from_slice(b"/step/");
    out.extend_from_slice(prefix.as_bytes());
    push_decimal(out, step);
}

fn push_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

pub fn steps_prefix(run: &RunId) -> Vec<u8> {
    format!("{run}/step/").into_bytes()
}

pub fn attempt_key(run: &RunId, path: &str, attempt: u32) -> Vec<u8> {
    format!("{run}/attempt/{path}#{attempt:08}").into_bytes()
}

pub fn event_key(run: &RunId, seq: u64) -> Vec<u8> {
    key(&[run.as_str().as_bytes(), b"/"], Some(seq), &[])
}

/// Appends [`event_key`] for a run id given as text (an event's own).
pub fn push_event_key(out: &mut Vec<u8>, run: &str, seq: u64) {
    out.extend_from_slice(run.as_bytes());
    out.push(b'/');
    push_hex16(out, seq);
}

pub fn events_prefix(run: &RunId) -> Vec<u8> {
    format!("{run}/").into_bytes()
}

pub fn timer_key(due_ms: u64, run: &RunId, path: &str) -> Vec<u8> {
    key(
        &[],
        Some(due_ms),
        &[b"/", run.as_str().as_bytes(), b"/", path.as_bytes()],
    )
}

/// The due time written at the front of a timer key.
pub fn timer_due(key: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(key.get(..16)?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

pub fn gate_key(event_type: &str, subscribed_at: u64, run: &RunId, path: &str) -> Vec<u8> {
    key(
        &[event_type.as_bytes(), b"\0"],
        Some(subscribed_at),
        &[b"/", run.as_str().as_bytes(), b"/", path.as_bytes()],
    )
}

pub fn gates_prefix(event_type: &str) -> Vec<u8> {
    format!("{event_type}\0").into_bytes()
}

pub fn signal_key(seq: u64) -> Vec<u8> {
    key(&[], Some(seq), &[])
}

pub fn lease_key(run: &RunId) -> Vec<u8> {
    run_key(run)
}

fn null() -> Value {
    Value::Null
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub id: String,
    pub workflow: String,
    /// Hex SHA-256 of the plan the run was started with; a run resumes only
    /// under the same plan.
    pub plan_hash: String,
    pub trigger: String,
    #[serde(with = "codec::field")]
    pub payload: Value,
    pub status: RunStatus,
    /// Bumped by every commit that touches the run: the compare-and-set
    /// token that tells a lease holder someone else (an operator's cancel)
    /// changed the run.
    pub rev: u64,
    /// The next event's sequence number.
    pub next_event: u64,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancelled_by_operator: bool,
    /// The signal sequence number when the run started: signals up to it
    /// are older than the run and resume none of its gates unless they name
    /// the run.
    pub signal_watermark: u64,
}

/// The fields of a [`RunRecord`] that say whose it is and whether it moved,
/// decoded without the rest (the payload above all): what the resume scan
/// and every commit's claim check read.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunHead {
    pub id: String,
    pub plan_hash: String,
    pub status: RunStatus,
    pub rev: u64,
}

/// Why a step waits, and on what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TimerKind {
    /// A gate's `timeoutMs`.
    GateTimeout,
    /// A `gateType: timer` gate.
    TimerGate,
    /// Backoff before the next attempt.
    Retry,
    /// `core.wait`.
    Sleep,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wait {
    /// The step's timer, if any: `(kind, due ms)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<(TimerKind, u64)>,
    /// A gate subscription: when it was made (part of its keys) and the
    /// event types it listens for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// The gate's resolved filter, also in its gate records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The display path (`dev/attempts[2]/build`), so queries need no plan.
    pub step_id: String,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    #[serde(
        default,
        with = "codec::field::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default = "null", with = "codec::field")]
    pub output: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// A gate's `onTimeout: branch:<id>` target, once taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_to: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// A loop's current iteration (from 1); 1 for a running group.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub iteration: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Wait>,
}

impl StepRecord {
    pub fn new(step_id: String) -> StepRecord {
        StepRecord {
            step_id,
            status: StepStatus::Pending,
            attempt: 0,
            input: None,
            input_hash: None,
            idempotency_key: None,
            output: Value::Null,
            handle: None,
            route_to: None,
            error: None,
            reason: None,
            started_at: None,
            ended_at: None,
            iteration: 0,
            wait: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttemptStatus {
    /// Intent recorded; the call may or may not have happened.
    Started,
    Succeeded,
    Failed,
}

/// One executor call, in the memo by `(run, step, attempt)`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    pub attempt: u32,
    pub status: AttemptStatus,
    pub input_hash: String,
    pub idempotency_key: String,
    #[serde(
        default,
        with = "codec::field::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerRecord {
    pub run: String,
    pub path: String,
    pub attempt: u32,
    pub kind: TimerKind,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateRecord {
    pub run: String,
    pub path: String,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    pub signal_watermark: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalRecord {
    pub seq: u64,
    pub event_type: String,
    #[serde(with = "codec::field")]
    pub data: Value,
    /// Targets one run: only that run's gates may take the signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The handle a gate with named handles takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    pub at: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    pub owner: String,
    pub heartbeat_at: u64,
    /// The holder's process id and host, so a `--resume` on the same host
    /// can tell a dead holder from a live one without waiting for the lease
    /// to go stale.
    pub pid: u32,
    #[serde(default)]
    pub host: String,
}

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

/// Appends the record's bytes, as [`encode`] makes them.
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, record: &T) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, record).is_err() {
        out.truncate(start);
    }
}

pub fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("damaged {what} record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_layout() {
        let run = RunId::parse("R1").unwrap();
        let text = |k: Vec<u8>| String::from_utf8(k).unwrap();
        let step_key = |prefix: &str, step: u32| {
            let mut out = Vec::new();
            push_step_key(&mut out, &run, prefix, step);
            text(out)
        };
        assert_eq!(step_key("2.1/", 0), "R1/step/2.1/0");
        assert_eq!(step_key("", 40), "R1/step/40");
        assert_eq!(step_key("3.12/", u32::MAX), "R1/step/3.12/4294967295");
        assert!(step_key("", 7).starts_with(std::str::from_utf8(&steps_prefix(&run)).unwrap()));
        assert_eq!(text(attempt_key(&run, "4", 2)), "R1/attempt/4#00000002");
        assert_eq!(text(event_key(&run, 255)), "R1/00000000000000ff");
        assert_eq!(text(timer_key(0x1234, &run, "3")), "0000000000001234/R1/3");
        assert_eq!(timer_due(&timer_key(0x1234, &run, "3")), Some(0x1234));
        assert_eq!(
            text(gate_key("ci.done", 1, &run, "3")),
            "ci.done\u{0}0000000000000001/R1/3"
        );
        assert_eq!(text(signal_key(u64::MAX)), "ffffffffffffffff");
        assert!(gate_key("a", 1, &run, "3").starts_with(&gates_prefix("a")));
        assert!(!gate_key("ab", 1, &run, "3").starts_with(&gates_prefix("a")));
        for seq in [0, 255, u64::MAX] {
            let mut out = Vec::new();
            push_event_key(&mut out, run.as_str(), seq);
            assert_eq!(out, event_key(&run, seq));
        }
        let record = LeaseRecord {
            owner: "o".into(),
            heartbeat_at: 1,
            pid: 2,
            host: "h".into(),
        };
        let mut out = b"[".to_vec();
        encode_into(&mut out, &record);
        assert_eq!(out[1..], encode(&record)[..]);
    }

    #[test]
    fn a_run_head_reads_a_full_run_record() {
        let record = RunRecord {
            id: "R1".into(),
            workflow: "w".into(),
            plan_hash: "ab".into(),
            trigger: "t".into(),
            payload: Value::from_json(&serde_json::json!({"big": [1, 2, {"x": "y"}]})),
            status: RunStatus::Running,
            rev: 7,
            next_event: 3,
            started_at: 1,
            ended_at: None,
            error: None,
            cancelled_by_operator: false,
            signal_watermark: 0,
        };
        let head: RunHead = decode("run", &encode(&record)).unwrap();
        assert_eq!(
            (
                head.id.as_str(),
                head.plan_hash.as_str(),
                head.status,
                head.rev
            ),
            ("R1", "ab", RunStatus::Running, 7)
        );
    }
}
