//! Verb execution: what the engine hands a verb call to.
//!
//! The engine decides *when* a verb runs and records intent and result
//! around the call; an executor only runs it. Executors here: the builtin
//! `core@1` verbs ([`core`]), recorded answers for dry runs and tests
//! ([`fixtures`]), plugins served over HTTP ([`http`]), and the router that
//! combines them ([`composite`]).

pub mod composite;
pub mod core;
pub mod fixtures;
pub mod http;

use crate::plan::model::{SideEffect, VerbKind, VerbRef};
use donmai_stdlib::value::Value;
use std::fmt;

pub use composite::CompositeExecutor;
pub use core::CoreExecutor;
pub use fixtures::{FixtureError, Fixtures};
pub use http::{HttpClient, HttpPluginExecutor};

/// One call of a verb by a step attempt.
#[derive(Clone, Copy, Debug)]
pub struct VerbCall<'a> {
    pub verb: &'a VerbRef,
    /// `linear@1:linear.issue.update`.
    pub qualified: &'a str,
    /// The evaluated inputs: a map of port name to value.
    pub input: &'a Value,
    /// Stable across attempts and restarts of the same step instance: an
    /// effect sent twice with this key must happen once.
    pub idempotency_key: &'a str,
    /// 1 for the first attempt; a retry is a new attempt.
    pub attempt: u32,
    /// Milliseconds the call may take (`timeoutMs`), if bounded. Executors
    /// that do I/O apply it to the I/O; the engine also checks it against
    /// its clock when the call returns.
    pub timeout_ms: Option<u64>,
    pub run_id: &'a str,
    /// The step's display path (`dispatch`, `dev/attempts[2]/build`).
    pub step_id: &'a str,
}

impl VerbCall<'_> {
    pub fn kind(&self) -> VerbKind {
        self.verb.kind
    }

    pub fn side_effect(&self) -> SideEffect {
        self.verb.side_effect
    }

    /// The input port `name`, `Null` when absent.
    pub fn input_field(&self, name: &str) -> Value {
        field(self.input, name)
    }
}

/// What a verb produced: its output and, for a condition or gate that names
/// its branch itself (a fixture's `handle`), the handle.
#[derive(Clone, Debug, PartialEq)]
pub struct VerbOutcome {
    pub output: Value,
    pub handle: Option<String>,
}

impl VerbOutcome {
    pub fn output(output: Value) -> VerbOutcome {
        VerbOutcome {
            output,
            handle: None,
        }
    }
}

/// Why a call failed. `kind` is what a step's `retryOn` lists; the kinds the
/// runtime itself produces are in [`error_kind`]; a plugin may report its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    pub kind: String,
    pub message: String,
}

impl ExecError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ExecError {
        ExecError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for ExecError {}

/// Error kinds the runtime reports; `retryOn` names them.
pub mod error_kind {
    /// The call, a gate or a step ran past its `timeoutMs`.
    pub const TIMEOUT: &str = "timeout";
    /// The endpoint could not be reached or the connection broke.
    pub const NETWORK: &str = "network";
    /// A plugin endpoint answered with a non-success status.
    pub const HTTP_STATUS: &str = "http_status";
    /// A plugin endpoint's answer is not the protocol's JSON.
    pub const BAD_RESPONSE: &str = "bad_response";
    /// The inputs do not have the shape the verb needs.
    pub const INVALID_INPUT: &str = "invalid_input";
    /// No fixture answers the call (dry runs).
    pub const NO_FIXTURE: &str = "no_fixture";
    /// No executor knows the verb's plugin.
    pub const NO_EXECUTOR: &str = "no_executor";
    /// `core.fail`, or a fixture's `error` without a kind.
    pub const FAILED: &str = "failed";
    /// An expression of the step failed to evaluate (never retried).
    pub const EXPRESSION: &str = "expression";
    /// The step's routing found no way on (never retried).
    pub const ROUTING: &str = "routing";
    /// The executor panicked (a bug in it); the call failed.
    pub const PANIC: &str = "panic";
}

/// Runs verb calls. Implementations must be safe to call from the engine's
/// thread while other threads hold clones (`Send + Sync`).
pub trait VerbExecutor: Send + Sync {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError>;

    /// Whether calls of `verb` are local, quick and without any effect beyond
    /// their output (core.set, a fixture). The engine runs such calls inside
    /// a batch of transitions without first recording the intent durably;
    /// every other call is preceded by a commit of its intent. `false` is
    /// always safe.
    fn is_inline(&self, verb: &VerbRef) -> bool {
        let _ = verb;
        false
    }

    /// A gate verb's answer known without waiting, e.g. a fixture for it in
    /// a dry run. `None` means: wait for a signal (the normal case).
    fn resolve_gate(&self, call: &VerbCall<'_>) -> Option<Result<VerbOutcome, ExecError>> {
        let _ = call;
        None
    }
}

impl<T: VerbExecutor + ?Sized> VerbExecutor for std::sync::Arc<T> {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        (**self).execute(call)
    }

    fn is_inline(&self, verb: &VerbRef) -> bool {
        (**self).is_inline(verb)
    }

    fn resolve_gate(&self, call: &VerbCall<'_>) -> Option<Result<VerbOutcome, ExecError>> {
        (**self).resolve_gate(call)
    }
}

/// `value.name` for a map value, `Null` otherwise.
pub(crate) fn field(value: &Value, name: &str) -> Value {
    match value {
        Value::Map(entries) => entries
            .get(&donmai_stdlib::value::MapKey::from(name))
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}
