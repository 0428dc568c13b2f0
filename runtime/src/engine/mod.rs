//! The durable engine: runs as state machines over a plan, every state
//! change committed to the [`Store`] before anything depends on it.
//!
//! How one run advances: a step becomes *ready* when all its predecessors
//! are terminal; it runs if at least one of them took an edge to it, else it
//! is skipped. A running step evaluates its inputs (a required input that is
//! `null` skips it), then, by kind, calls its verb, waits on a gate or a
//! timer, or opens a frame for a group or a loop iteration. Its end notifies
//! its successors. The run completes when every step of the workflow level
//! is terminal, and fails as soon as a step fails for good (there is no
//! error route; `retry` comes first).
//!
//! Durability: transitions are collected into a batch and committed in one
//! store transaction — step records, run record, lease heartbeat, timers,
//! gate subscriptions, events (and their audit entries, through
//! [`EventHook`]). A batch is committed before any verb call with an effect:
//! the call's intent (attempt, input, idempotency key) is durable before the
//! call starts, and its result is committed with whatever follows from it.
//! Calls whose intents are committed are made one after another (those of
//! other runs, and parallel branches of one run) and their results share
//! the next commit, so many runs pay for one synced commit per round of
//! calls rather than one per call ([`EngineConfig::max_calls_per_commit`],
//! [`EngineConfig::max_call_batch_ms`]). A crash at any point therefore
//! loses at most transitions that nothing outside has seen, and repeats at
//! most calls whose intent was recorded — with the same idempotency key.
//!
//! Gates. On entry a gate resolves its filter (see [`Filter`] for the
//! predicate semantics and when a filter is *empty*) and subscribes to its
//! event types (`gateConfig.signalEventType`, else the verb's
//! subscription), with a timer for its `timeoutMs` (the gate's, else the
//! step's). An empty resolved filter, or a gate with no event type and no
//! timeout, takes the timeout path at once. A signal resumes the first
//! subscribed gate whose event type matches, whose filter holds over the
//! signal's data, and whose run the signal may reach: a signal whose data
//! has a string `runId` reaches only that run; one without reaches runs
//! started before the signal arrived (a signal waits, unconsumed, for a gate
//! that subscribes later, up to `signal_retention_ms`). The gate's output is
//! the signal's data. Its handle, for a verb with named handles: the data's
//! string `handle`, else the verb's `routeBy` field of the data (`yes`/`no`
//! for a bool), else the step's default route; with none of these the step
//! fails with a `routing` error naming the handles. In a dry run a fixture
//! for the gate verb answers at once (output and `handle`) instead of a
//! signal. On timeout: `skip` skips the step — or, when the verb has a
//! `timeout` handle, completes it with output `null` on that handle;
//! `error` fails the attempt with kind `timeout` (so `retry` may start a new
//! attempt, which subscribes again); `branch:<id>` completes the gate with
//! output `null` and routes to that step only. A `gateType: timer` gate
//! waits its timeout and completes with `{}`.
//!
//! Policy. `retry` waits `initialMs · factor^(attempt-1)`, capped at `maxMs`
//! (0: no cap), before the next attempt, for errors whose kind `retryOn`
//! lists (all when empty); expression and routing errors are never retried.
//! An action's `timeoutMs` bounds the executor call: executors apply it to
//! their I/O, and a call that returns after it — by the engine's clock —
//! fails with kind `timeout`. A step that fails for good fails its group or
//! loop, and the run at once (there is no error route); the run's other
//! open steps are cancelled. A loop runs its body with the same inputs each
//! iteration; its step output is the last iteration's interface outputs.
//!
//! Concurrency: a run is advanced only by the holder of its lease
//! (`Table::Leases`). Every commit re-checks, inside the transaction, that
//! the lease is still its own and that the run's `rev` is the one it last
//! wrote; if not (another process took the run over, or an operator
//! cancelled it), the batch is dropped and the run reloaded from the store.

mod access;
mod cancel;
mod codec;
mod commit;
mod eval;
mod events;
pub mod ids;
mod load;
mod nodes;
mod predicate;
pub mod query;
pub(crate) mod records;
mod run;
mod sources;
mod state;
mod topology;

pub use events::{Event, EventHook, EventSink, EventType};
pub use ids::RunId;
pub use predicate::{Filter, Op as FilterOp};
pub use query::{RunInfo, RunSummary, StepInfo};
pub use sources::PlanSources;

use crate::clock::Clock;
use crate::exec::VerbExecutor;
use crate::plan::model::{Plan, StepIx};
use crate::store::{Store, StoreError};
use crate::verify::VerifiedPlan;
use donmai_stdlib::value::Value;
use serde::{Deserialize, Serialize};
use state::RunState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// Not reached yet.
    Pending,
    /// Evaluating, calling its verb, or running its group/loop frame.
    Running,
    /// On a gate, a timer gate or `core.wait`.
    Waiting,
    /// Failed an attempt; the next is due at its backoff timer.
    Retrying,
    Completed,
    Skipped,
    Failed,
    /// Stopped by a cancellation or by the run failing elsewhere.
    Cancelled,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Retrying => "retrying",
            StepStatus::Completed => "completed",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Completed
                | StepStatus::Skipped
                | StepStatus::Failed
                | StepStatus::Cancelled
        )
    }
}

/// A step's or a run's error: a kind (what `retryOn` matches) and a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub kind: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug)]
pub enum EngineError {
    Store(StoreError),
    /// The plan is malformed in a way the engine cannot run.
    Plan(String),
    /// A compiled expression failed; the position is a byte range of a
    /// source file of the plan.
    Expression {
        expr: u32,
        file: String,
        start: u32,
        end: u32,
        /// The 1-based line and column of `start`, when the source is at
        /// hand ([`PlanSources`]).
        line_col: Option<(usize, usize)>,
        /// One of `donmai_stdlib::value::error_code`.
        code: &'static str,
        message: String,
    },
    UnknownTrigger {
        trigger: String,
        known: Vec<String>,
    },
    UnknownRun(String),
    /// The lease or the run changed under this engine (another process took
    /// the run over, or cancelled it); the run was reloaded or dropped.
    Conflict(String),
    /// A record in the store does not read back.
    Damaged(String),
    /// The operating system's random source failed (run and owner ids).
    Random(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Store(e) => write!(f, "store: {e}"),
            EngineError::Plan(message) => write!(f, "the plan cannot run: {message}"),
            EngineError::Expression {
                file,
                start,
                end,
                line_col,
                code,
                message,
                ..
            } => match line_col {
                Some((line, column)) => write!(f, "{file}:{line}:{column}: {code}: {message}"),
                None => write!(f, "{file}@{start}..{end}: {code}: {message}"),
            },
            EngineError::UnknownTrigger { trigger, known } => write!(
                f,
                "the workflow has no trigger `{trigger}`; its triggers: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            EngineError::UnknownRun(run) => write!(f, "no run `{run}` in the store"),
            EngineError::Conflict(message) => write!(f, "conflict: {message}"),
            EngineError::Damaged(message) => write!(f, "damaged store: {message}"),
            EngineError::Random(message) => write!(f, "random source: {message}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> EngineError {
        EngineError::Store(e)
    }
}

/// Tunables, with the defaults of DESIGN.md.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// A lease without a heartbeat for this long is stale: its run may be
    /// taken over (re-dispatched) by another engine.
    pub lease_ttl_ms: u64,
    /// Unconsumed signals are dropped this long after they arrived.
    pub signal_retention_ms: u64,
    /// The most transitions one commit holds; bounds memory and the work a
    /// failed commit throws away.
    pub max_batch_transitions: usize,
    /// Verb calls whose intents are committed are made back to back and
    /// their results committed together (one synced commit for many runs'
    /// calls instead of one each): at most this many calls between two
    /// commits. 1 commits every result before the next call is made.
    pub max_calls_per_commit: usize,
    /// No further call of such a group is started once this long (by the
    /// engine's clock) has passed since its first one: bounds how long a
    /// result waits for its commit, which is what a crash can make the
    /// engine repeat (with the same idempotency key), and keeps the leases'
    /// heartbeats well inside `lease_ttl_ms`.
    pub max_call_batch_ms: u64,
    /// Take over runs of this plan whose lease went stale (a crashed
    /// process's runs) during governor ticks.
    pub adopt_stale_runs: bool,
    /// The lease owner id; random per engine unless given. Giving the same
    /// id after a restart lets the new engine reclaim its leases at once.
    pub owner: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            lease_ttl_ms: 60_000,
            signal_retention_ms: 7 * 24 * 3_600_000,
            max_batch_transitions: 10_000,
            max_calls_per_commit: 1_000,
            max_call_batch_ms: 1_000,
            adopt_stale_runs: true,
            owner: None,
        }
    }
}

/// Which runs [`Engine::resume`] takes over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// Runs with no lease, a lease of this engine's owner id, a stale lease,
    /// or a lease of a process on this host that no longer exists.
    Unowned,
    /// Every unfinished run of this plan, whoever holds it: for an operator
    /// who knows the other holder is gone.
    Any,
}

/// What is left when nothing can advance without time passing or a signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Idle {
    /// Runs this engine holds that have not ended.
    pub active_runs: usize,
    /// Steps waiting on a signal.
    pub waiting_gates: usize,
    /// The earliest timer of this engine's runs (ms since the epoch).
    pub next_timer_ms: Option<u64>,
}

/// Counters since the engine was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// State changes, one per event.
    pub transitions: u64,
    pub commits: u64,
    pub verb_calls: u64,
}

#[derive(Clone, Debug)]
enum Work {
    /// Every predecessor is terminal: run the step or skip it.
    Settle(RunId, u64, u32, StepIx),
    /// Begin attempt `n` of a step (a retry's backoff ended).
    Start(RunId, u64, u32, StepIx, u32),
    /// Every step of the frame is terminal.
    FrameDone(RunId, u64, u32),
}

/// A verb call whose intent is in the batch; it runs after the commit.
#[derive(Clone, Debug)]
struct PendingCall {
    run: RunId,
    generation: u64,
    frame: u32,
    step: StepIx,
    attempt: u32,
}

pub struct Engine {
    plan: Arc<VerifiedPlan>,
    topology: topology::Topology,
    node_keys: nodes::NodeKeys,
    plan_hash_hex: String,
    /// `plugin@major:verb` of every verb, by index.
    qualified: Vec<String>,
    store: Arc<dyn Store>,
    executor: Arc<dyn VerbExecutor>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    owner: String,
    pid: u32,
    host: String,
    /// The plan's source texts, for error positions.
    sources: PlanSources,
    runs: HashMap<RunId, RunState>,
    next_generation: u64,
    work: VecDeque<Work>,
    calls: VecDeque<PendingCall>,
    batch: commit::Batch,
    staged: commit::Staged,
    /// Gates subscribed (or adopted) since the last tick: checked against
    /// signals that arrived before them.
    fresh_gates: Vec<(RunId, String, u32)>,
    /// The last signal sequence number matched against waiting gates.
    signal_cursor: u64,
    last_sweep_ms: Option<u64>,
    sink: Option<EventSink>,
    hook: Option<Box<dyn EventHook>>,
    stats: Stats,
    /// The last event time and its RFC 3339 text: a batch's events mostly
    /// share a millisecond.
    at_cache: (u64, String),
}

impl Engine {
    /// An engine for `plan` over `store`. Only a verified plan runs: the
    /// verifier has checked every index, graph and expression the engine
    /// relies on.
    pub fn new(
        plan: Arc<VerifiedPlan>,
        store: Arc<dyn Store>,
        executor: Arc<dyn VerbExecutor>,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        Engine::with_config(plan, store, executor, clock, EngineConfig::default())
    }

    pub fn with_config(
        plan: Arc<VerifiedPlan>,
        store: Arc<dyn Store>,
        executor: Arc<dyn VerbExecutor>,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let topology = topology::analyse(&plan);
        let node_keys = nodes::NodeKeys::new(&plan);
        let plan_hash_hex = plan.id().to_string();
        let qualified = plan.verbs.iter().map(|v| v.qualified()).collect();
        let owner = match &config.owner {
            Some(owner) => owner.clone(),
            None => ids::owner_id().map_err(|e| EngineError::Random(e.to_string()))?,
        };
        let engine = Engine {
            plan,
            topology,
            node_keys,
            plan_hash_hex,
            qualified,
            store,
            executor,
            clock,
            config,
            owner,
            pid: std::process::id(),
            host: load::host_name(),
            sources: PlanSources::default(),
            runs: HashMap::new(),
            next_generation: 1,
            work: VecDeque::new(),
            calls: VecDeque::new(),
            batch: commit::Batch::default(),
            staged: commit::Staged::default(),
            fresh_gates: Vec::new(),
            signal_cursor: 0,
            last_sweep_ms: None,
            sink: None,
            hook: None,
            stats: Stats::default(),
            at_cache: (0, String::new()),
        };
        engine.init_store()?;
        Ok(engine)
    }

    /// The plan's source texts: expression errors then say
    /// `file:line:column` instead of a byte range.
    pub fn set_sources(&mut self, sources: PlanSources) {
        self.sources = sources;
    }

    /// Receives every event after it committed (for printing).
    pub fn set_event_sink(&mut self, sink: EventSink) {
        self.sink = Some(sink);
    }

    /// Called for every event inside its transaction (the audit chain).
    pub fn set_event_hook(&mut self, hook: Box<dyn EventHook>) {
        self.hook = Some(hook);
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Starts a run of trigger `trigger_id` (a level-0 `triggers[].id`) with
    /// `payload` as the trigger step's output. The run is durable when this
    /// returns; its steps advance in [`Engine::step`] /
    /// [`Engine::drive_until_idle`].
    pub fn start_run(&mut self, trigger_id: &str, payload: Value) -> Result<RunId, EngineError> {
        self.start_run_inner(trigger_id, payload)
    }

    /// Advances by one unit: commits the batch of ready internal transitions
    /// (running them first), or makes the pending verb calls (up to
    /// [`EngineConfig::max_calls_per_commit`] and
    /// [`EngineConfig::max_call_batch_ms`]), whose results the next step
    /// commits together. Returns whether anything happened.
    pub fn step(&mut self) -> Result<bool, EngineError> {
        if !self.work.is_empty() || !self.batch.is_empty() {
            self.process_work()?;
            return Ok(true);
        }
        // The batch is empty, so every queued call's intent is in the store
        // (a call is queued together with its intent, and a resumed one was
        // read from the store): each may be made before the others'
        // results are committed.
        let Some(first) = self.calls.pop_front() else {
            return Ok(false);
        };
        let started = self.clock.now_ms();
        self.execute_pending_call(first)?;
        let mut made = 1;
        while made < self.config.max_calls_per_commit
            && self.batch.events.len() < self.config.max_batch_transitions
            && self.clock.now_ms().saturating_sub(started) < self.config.max_call_batch_ms
        {
            let Some(call) = self.calls.pop_front() else {
                break;
            };
            self.execute_pending_call(call)?;
            made += 1;
        }
        Ok(true)
    }

    /// Steps and ticks the governor until nothing advances without the clock
    /// moving or a signal arriving.
    pub fn drive_until_idle(&mut self) -> Result<Idle, EngineError> {
        loop {
            while self.step()? {}
            let report = self.tick()?;
            if !report.did_work() && self.work.is_empty() && self.calls.is_empty() {
                return Ok(self.idle());
            }
        }
    }

    /// Stores a signal for the gates; it is matched at the next governor
    /// tick. `data` may name a run (`runId`: only that run's gates may take
    /// it) and a handle (`handle`: the branch a gate with named handles
    /// takes). Returns the signal's sequence number.
    pub fn deliver_signal(&mut self, event_type: &str, data: Value) -> Result<u64, EngineError> {
        query::ingest_signal(self.store.as_ref(), self.clock.as_ref(), event_type, data)
    }

    /// Cancels a run: pending work stops, its gates and timers are removed,
    /// and the run is never re-dispatched. Works on runs another process
    /// holds too (that process drops the run at its next commit). Returns
    /// false when the run had already ended.
    pub fn cancel(&mut self, run: &RunId) -> Result<bool, EngineError> {
        self.cancel_inner(run)
    }

    /// Takes over the unfinished runs of this plan in the store and queues
    /// their unfinished work; memoized results are replayed, not re-run.
    /// Returns the runs taken over.
    pub fn resume(&mut self, takeover: Takeover) -> Result<Vec<RunId>, EngineError> {
        self.resume_inner(takeover)
    }

    /// The run as stored (committed state).
    pub fn run_status(&self, run: &RunId) -> Result<Option<RunInfo>, EngineError> {
        query::run_info(self.store.as_ref(), run)
    }

    /// One step instance as stored, by display id (`build`, `dev/build`).
    pub fn step_status(&self, run: &RunId, step_id: &str) -> Result<Option<StepInfo>, EngineError> {
        Ok(query::run_info(self.store.as_ref(), run)?
            .and_then(|info| info.steps.into_iter().find(|s| s.step_id == step_id)))
    }

    /// The run's events as stored, in order.
    pub fn events(&self, run: &RunId) -> Result<Vec<Event>, EngineError> {
        query::events(self.store.as_ref(), run)
    }

    /// Whether this engine holds `run` and it has not ended.
    pub fn is_active(&self, run: &RunId) -> bool {
        self.runs.get(run).is_some_and(RunState::is_active)
    }

    pub fn idle(&self) -> Idle {
        let mut idle = Idle::default();
        for run in self.runs.values().filter(|r| r.is_active()) {
            idle.active_runs += 1;
            for frame in run.frames.iter().filter(|f| !f.closed) {
                for step in &frame.steps {
                    let Some(wait) = &step.rec.wait else { continue };
                    if step.rec.status.is_terminal() {
                        continue;
                    }
                    if wait.subscribed_at.is_some() {
                        idle.waiting_gates += 1;
                    }
                    if let Some((_, due)) = wait.timer {
                        idle.next_timer_ms =
                            Some(idle.next_timer_ms.map_or(due, |next: u64| next.min(due)));
                    }
                }
            }
        }
        idle
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[(byte >> 4) as usize]);
        out.push(DIGITS[(byte & 15) as usize]);
    }
    String::from_utf8(out).unwrap_or_default()
}
