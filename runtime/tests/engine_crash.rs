//! Crash safety. A workflow with external writes, a retry, a gate, a timer,
//! a condition, a group and a loop runs against a store that dies at its
//! N-th write — for every N, once before the write commits and once after
//! (the engine then believes a committed write failed). A new engine over
//! what was stored resumes the run. Every resumed run must end with exactly
//! the step outputs and the events of an uninterrupted run, and no
//! idempotency key may ever reach the executor with two different inputs.

mod engine_support;

use donmai_runtime::clock::{Clock, VirtualClock};
use donmai_runtime::engine::{EngineError, RunId, Takeover, query};
use donmai_runtime::exec::{ExecError, VerbOutcome};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::store::{ReadTxn, Store, StoreError, StoreResult, Table, WriteTxn, scan_all};
use donmai_runtime::verify::VerifiedPlan;
use engine_support::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Crash {
    /// The N-th write does not happen.
    BeforeCommit,
    /// The N-th write commits, then the process dies before it learns so.
    AfterCommit,
}

/// A store that dies at its N-th write: that write and everything after
/// it (reads too) fail, as if the process had been killed.
struct DyingStore {
    inner: Arc<MemoryStore>,
    writes: AtomicUsize,
    die_at: usize,
    crash: Crash,
    dead: AtomicBool,
}

impl DyingStore {
    fn new(inner: Arc<MemoryStore>, die_at: usize, crash: Crash) -> Arc<DyingStore> {
        Arc::new(DyingStore {
            inner,
            writes: AtomicUsize::new(0),
            die_at,
            crash,
            dead: AtomicBool::new(false),
        })
    }

    fn died(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

impl Store for DyingStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        if self.died() {
            return Err(StoreError::new("the process is dead"));
        }
        self.inner.read(f)
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        if self.died() {
            return Err(StoreError::new("the process is dead"));
        }
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.die_at {
            return self.inner.write(f);
        }
        self.dead.store(true, Ordering::SeqCst);
        if self.crash == Crash::AfterCommit {
            self.inner.write(f)?;
        }
        Err(StoreError::new("killed"))
    }
}

fn plan() -> Arc<VerifiedPlan> {
    let mut b = PlanBuilder::new("workflow/v2");
    let write = b.verb(
        "linear@1:linear.issue.update",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let notify = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let check = b.verb(
        "linear@1:linear.issue.project_allowed",
        VerbKind::Condition,
        SideEffect::ReadOnly,
    );
    b.verb_mut(check).route_by = Some("allowed".into());
    let wait = b.verb("core@1:core.wait", VerbKind::Action, SideEffect::ReadOnly);
    let set = b.verb(
        "core@1:core.set",
        VerbKind::Action,
        SideEffect::InternalOnly,
    );

    let body = b.level("groups/body.yaml@1");
    let entry = b.entry(body, "in");
    let inner = b.action(body, "inner", write);
    b.input(body, inner, "issueId", json!("LIN-7"));
    b.next(body, entry, inner);
    let out = b.value(json!("ok"));
    b.level_mut(body).outputs = vec![("result".into(), out)];
    let never = b.value(json!("never"));

    let t = b.trigger("start");
    let a = b.action(0, "a", write);
    b.input(0, a, "issueId", json!("LIN-1"));
    let flaky = b.action(0, "flaky", notify);
    b.input(0, flaky, "text", json!("hello"));
    b.step_mut(0, flaky).retry = Some(RetryPolicy {
        max_attempts: 3,
        initial_ms: 1_000,
        factor: 2f64.to_bits(),
        max_ms: 0,
        retry_on: vec![],
    });
    let filter = b.value(json!("ops"));
    let gate = b.step(
        0,
        "approval",
        StepKind::Gate {
            verb: None,
            gate: GateDef {
                gate_type: GateType::Signal,
                event_types: vec!["approved".into()],
                filter: Some(Predicate::Leaf {
                    field: "by".into(),
                    op: PredicateOp::Eq,
                    value: Some(filter),
                }),
                on_timeout: OnTimeout::Error,
                timeout_ms: Some(86_400_000),
            },
        },
    );
    let join = b.action(0, "join", notify);
    b.input(0, join, "text", json!("joined"));
    let pause = b.action(0, "pause", wait);
    b.input(0, pause, "durationMs", json!(3_600_000));
    let cond = b.step(0, "check", StepKind::Condition { verb: check });
    let yes = b.step(0, "group", StepKind::Group { level: body });
    let no = b.action(0, "no", notify);
    let looped = b.step(
        0,
        "again",
        StepKind::Loop {
            level: body,
            max_iterations: 2,
            until: Some(Predicate::Leaf {
                field: "output.result".into(),
                op: PredicateOp::Eq,
                value: Some(never),
            }),
        },
    );
    let done = b.action(0, "done", set);
    b.input(0, done, "values", json!({"finished": true}));
    b.next(0, t, a);
    b.next(0, a, flaky);
    b.next(0, a, gate);
    b.next(0, flaky, join);
    b.next(0, gate, join);
    b.next(0, join, pause);
    b.next(0, pause, cond);
    b.branch(0, cond, "yes", yes);
    b.branch(0, cond, "no", no);
    b.next(0, yes, looped);
    b.next(0, looped, done);
    b.build()
}

fn executor() -> Arc<ScriptedExecutor> {
    ScriptedExecutor::new(false, |call, _| {
        if call.step_id == "flaky" && call.attempt == 1 {
            return Err(ExecError::new("network", "connection reset"));
        }
        if call.verb.kind == VerbKind::Condition {
            return Ok(VerbOutcome::output(json(json!({"allowed": true}))));
        }
        Ok(VerbOutcome::output(json(json!({
            "step": call.step_id,
            "attempt": call.attempt,
            "input": call.input.to_json(),
        }))))
    })
}

fn pending_signals(store: &dyn Store) -> Result<usize, EngineError> {
    let mut n = 0;
    store.read(&mut |txn| {
        n = scan_all(txn, Table::Signals, b"")?.len();
        Ok(())
    })?;
    Ok(n)
}

/// Drives `run` to its end: delivers the approval when the gate waits and
/// moves the clock to the next timer when nothing else can happen.
fn drive_to_end(h: &mut Harness, run: &RunId) -> Result<(), EngineError> {
    for _ in 0..200 {
        let idle = h.engine.drive_until_idle()?;
        let info = h.engine.run_status(run)?.expect("the run exists");
        if info.run.status.is_terminal() {
            return Ok(());
        }
        if idle.waiting_gates > 0 && pending_signals(h.store.as_ref())? == 0 {
            h.engine
                .deliver_signal("approved", json(json!({"by": "ops"})))?;
            continue;
        }
        match idle.next_timer_ms {
            Some(due) => h.clock.set_ms(due.max(h.clock.now_ms())),
            None if idle.active_runs == 0 => {
                // Held by nobody in this engine: the run was lost by a
                // failed commit and must be taken back.
                h.engine.resume(Takeover::Any)?;
            }
            None => panic!(
                "stuck: {idle:?}: {:#?}",
                h.engine.run_status(run)?.map(|i| i
                    .steps
                    .into_iter()
                    .map(|s| (s.step_id, s.status))
                    .collect::<Vec<_>>())
            ),
        }
    }
    panic!("the run does not end");
}

#[derive(Debug, PartialEq)]
struct Outcome {
    status: String,
    outputs: BTreeMap<String, (String, serde_json::Value)>,
    events: Vec<String>,
}

fn outcome(store: &dyn Store, run: &RunId) -> Outcome {
    let info = query::run_info(store, run).unwrap().unwrap();
    let mut events: Vec<String> = query::events(store, run)
        .unwrap()
        .iter()
        .map(trace_line)
        .collect();
    // Branches may interleave differently after a restart; the set of
    // events must not change.
    events.sort();
    Outcome {
        status: info.run.status.as_str().into(),
        outputs: info
            .steps
            .into_iter()
            .map(|s| (s.step_id, (s.status.as_str().to_string(), s.output)))
            .collect(),
        events,
    }
}

/// No key with two inputs; one key per step instance across attempts and
/// restarts.
fn check_keys(executor: &ScriptedExecutor, context: &str) {
    let mut inputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut keys: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for call in executor.calls() {
        inputs
            .entry(call.key.clone())
            .or_default()
            .insert(call.input.clone());
        keys.entry((call.run.clone(), call.step.clone()))
            .or_default()
            .insert(call.key.clone());
    }
    for (key, seen) in inputs {
        assert_eq!(seen.len(), 1, "{context}: key {key} was used with {seen:?}");
    }
    for ((run, step), seen) in keys {
        assert_eq!(seen.len(), 1, "{context}: {run} {step} used keys {seen:?}");
    }
}

/// Counts the writes of an uninterrupted run.
struct CountingStore {
    inner: MemoryStore,
    writes: AtomicUsize,
}

impl Store for CountingStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        self.inner.read(f)
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write(f)
    }
}

fn reference() -> (Outcome, usize) {
    let store = Arc::new(CountingStore {
        inner: MemoryStore::new(),
        writes: AtomicUsize::new(0),
    });
    let executor = executor();
    let mut h = Harness::with_store(
        plan(),
        executor.clone(),
        store.clone(),
        VirtualClock::default(),
    );
    let run = h.start("start", json!({"issue": "LIN-1"}));
    drive_to_end(&mut h, &run).unwrap();
    check_keys(&executor, "reference");
    (
        outcome(store.as_ref(), &run),
        store.writes.load(Ordering::SeqCst),
    )
}

#[test]
fn the_reference_run_exercises_every_kind_of_step() {
    let (reference, writes) = reference();
    assert_eq!(reference.status, "completed");
    assert!(writes > 10, "{writes} writes");
    let statuses: BTreeMap<&str, &str> = reference
        .outputs
        .iter()
        .map(|(k, (s, _))| (k.as_str(), s.as_str()))
        .collect();
    for step in [
        "a",
        "flaky",
        "approval",
        "join",
        "pause",
        "check",
        "group",
        "group/inner",
        "again",
        "again[2]/inner",
        "done",
    ] {
        assert_eq!(
            statuses.get(step),
            Some(&"completed"),
            "{step}: {statuses:?}"
        );
    }
    assert_eq!(statuses.get("no"), Some(&"skipped"));
    assert!(
        reference
            .events
            .contains(&"step.retrying flaky network: connection reset".to_string())
    );
    assert_eq!(
        reference.outputs["flaky"].1,
        json!({"step": "flaky", "attempt": 2, "input": {"text": "hello"}})
    );
}

fn crash_once(die_at: usize, crash: Crash, reference: &Outcome) -> bool {
    let inner = Arc::new(MemoryStore::new());
    let dying = DyingStore::new(inner.clone(), die_at, crash);
    let clock = VirtualClock::default();
    let executor = executor();
    let context = format!("{crash:?} at write {die_at}");
    let first = donmai_runtime::engine::Engine::new(
        plan(),
        dying.clone(),
        executor.clone(),
        Arc::new(clock.clone()),
    );
    let mut result: Result<RunId, EngineError> = Err(EngineError::Conflict("not started".into()));
    if let Ok(engine) = first {
        let mut h = Harness {
            engine,
            clock: clock.clone(),
            store: dying.clone(),
            events: Default::default(),
        };
        result = h.engine.start_run("start", json(json!({"issue": "LIN-1"})));
        if let Ok(run) = &result
            && let Err(e) = drive_to_end(&mut h, run)
        {
            result = Err(e);
        }
    }
    if !dying.died() {
        let run = result.unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(&outcome(inner.as_ref(), &run), reference, "{context}");
        return false;
    }
    // Restart: a new engine over what the store kept.
    let mut h = Harness::with_store(plan(), executor.clone(), inner.clone(), clock);
    h.engine.resume(Takeover::Any).unwrap();
    let runs = query::list_runs(inner.as_ref()).unwrap();
    let run = match runs.first() {
        Some(summary) => RunId::parse(&summary.run_id).unwrap(),
        // It died before the run was stored: the caller never got an id.
        None => h.start("start", json!({"issue": "LIN-1"})),
    };
    assert!(runs.len() <= 1, "{context}: {runs:?}");
    drive_to_end(&mut h, &run).unwrap_or_else(|e| panic!("{context}: {e}"));
    assert_eq!(&outcome(inner.as_ref(), &run), reference, "{context}");
    check_keys(&executor, &context);
    true
}

#[test]
fn a_crash_at_any_write_resumes_to_the_same_result() {
    let (reference, writes) = reference();
    for crash in [Crash::BeforeCommit, Crash::AfterCommit] {
        let mut crashes = 0;
        for die_at in 1..=writes + 1 {
            if crash_once(die_at, crash, &reference) {
                crashes += 1;
            }
        }
        assert!(
            crashes >= writes - 1,
            "{crash:?}: only {crashes} of {writes} writes crashed"
        );
    }
}

#[test]
fn repeated_crashes_still_finish_with_the_same_result() {
    let (reference, _) = reference();
    for every in [3, 4, 7] {
        let inner = Arc::new(MemoryStore::new());
        let clock = VirtualClock::default();
        let executor = executor();
        let mut run: Option<RunId> = None;
        let mut lives = 0;
        loop {
            lives += 1;
            assert!(lives < 500, "no progress with a crash every {every} writes");
            let dying = DyingStore::new(inner.clone(), every, Crash::BeforeCommit);
            let built = donmai_runtime::engine::Engine::new(
                plan(),
                dying.clone(),
                executor.clone(),
                Arc::new(clock.clone()),
            );
            let Ok(engine) = built else { continue };
            let mut h = Harness {
                engine,
                clock: clock.clone(),
                store: dying.clone(),
                events: Default::default(),
            };
            let attempt = (|| -> Result<(), EngineError> {
                h.engine.resume(Takeover::Any)?;
                if run.is_none() {
                    let runs = query::list_runs(inner.as_ref())?;
                    run = match runs.first() {
                        Some(s) => RunId::parse(&s.run_id),
                        None => Some(
                            h.engine
                                .start_run("start", json(json!({"issue": "LIN-1"})))?,
                        ),
                    };
                }
                drive_to_end(&mut h, run.as_ref().unwrap())
            })();
            if attempt.is_ok() {
                break;
            }
        }
        let run = run.unwrap();
        assert_eq!(
            outcome(inner.as_ref(), &run),
            reference,
            "a crash every {every} writes"
        );
        check_keys(&executor, &format!("a crash every {every} writes"));
        eprintln!("a crash every {every} writes: {lives} lives");
        assert!(lives > 3, "only {lives} lives");
    }
}
