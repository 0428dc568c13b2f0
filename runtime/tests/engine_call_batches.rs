//! Verb calls whose intents are committed are made together and their
//! results share one commit (`EngineConfig::max_calls_per_commit`). These
//! check that several runs then pay one commit per round of calls, and that
//! a crash at any write of such a workload — before or after the write
//! commits — still ends every run exactly as an uninterrupted engine does,
//! with no idempotency key ever sent with two inputs.

mod engine_support;

use donmai_runtime::clock::VirtualClock;
use donmai_runtime::engine::{EngineConfig, EngineError, RunId, Takeover, query};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::store::{ReadTxn, Store, StoreError, StoreResult, WriteTxn};
use donmai_runtime::verify::VerifiedPlan;
use engine_support::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const RUNS: usize = 3;

/// start → (a ∥ b) → c → d, every step an external call.
fn plan() -> Arc<VerifiedPlan> {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb(
        "linear@1:linear.comment.create",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let start = b.trigger("start");
    let a = b.action(0, "a", verb);
    b.input(0, a, "body", json!("from a"));
    let branch = b.action(0, "b", verb);
    b.input(0, branch, "body", json!("from b"));
    let c = b.action(0, "c", verb);
    b.input(0, c, "body", json!("join"));
    let d = b.action(0, "d", verb);
    b.input(0, d, "body", json!("last"));
    b.next(0, start, a);
    b.next(0, start, branch);
    b.next(0, a, c);
    b.next(0, branch, c);
    b.next(0, c, d);
    b.build()
}

/// A store that counts writes once armed and dies at the `die_at`-th: that
/// write and everything after it fail, as if the process had been killed
/// (after the write committed, for [`DyingStore::after_commit`]).
struct DyingStore {
    inner: Arc<MemoryStore>,
    writes: AtomicUsize,
    armed: AtomicBool,
    die_at: usize,
    after_commit: bool,
    dead: AtomicBool,
}

impl DyingStore {
    fn dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

impl Store for DyingStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        if self.dead() {
            return Err(StoreError::new("the process is dead"));
        }
        self.inner.read(f)
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        if self.dead() {
            return Err(StoreError::new("the process is dead"));
        }
        if !self.armed.load(Ordering::SeqCst) {
            return self.inner.write(f);
        }
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.die_at {
            return self.inner.write(f);
        }
        self.dead.store(true, Ordering::SeqCst);
        if self.after_commit {
            self.inner.write(f)?;
        }
        Err(StoreError::new("killed"))
    }
}

/// Each run's steps (status and output) and its sorted events.
type Outcome = Vec<(Vec<(String, String, serde_json::Value)>, Vec<String>)>;

fn outcome(store: &dyn Store, runs: &[RunId]) -> Outcome {
    runs.iter()
        .map(|run| {
            let info = query::run_info(store, run).unwrap().unwrap();
            assert_eq!(info.run.status.as_str(), "completed", "{run}");
            let steps = info
                .steps
                .into_iter()
                .map(|s| (s.step_id, s.status.as_str().to_string(), s.output))
                .collect();
            let mut events: Vec<String> = query::events(store, run)
                .unwrap()
                .iter()
                .map(trace_line)
                .collect();
            // Parallel branches may end in another order after a restart.
            events.sort();
            (steps, events)
        })
        .collect()
}

/// No key with two inputs, one key per step instance across restarts.
fn check_keys(executor: &ScriptedExecutor, context: &str) {
    let mut inputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut keys: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for call in executor.calls() {
        inputs
            .entry(call.key.clone())
            .or_default()
            .insert(call.input);
        keys.entry((call.run, call.step))
            .or_default()
            .insert(call.key);
    }
    for (key, seen) in inputs {
        assert_eq!(seen.len(), 1, "{context}: key {key} was used with {seen:?}");
    }
    for ((run, step), seen) in keys {
        assert_eq!(seen.len(), 1, "{context}: {run} {step} used keys {seen:?}");
    }
}

/// Starts the runs on a healthy store, then arms it and drives. Returns the
/// runs, the engine's store writes after arming, and whether it died.
fn run_until_death(
    store: &Arc<DyingStore>,
    executor: &Arc<ScriptedExecutor>,
    clock: &VirtualClock,
) -> (Vec<RunId>, usize, bool) {
    let mut h = Harness::with_store(plan(), executor.clone(), store.clone(), clock.clone());
    let runs: Vec<RunId> = (0..RUNS).map(|_| h.start("start", json!({}))).collect();
    store.armed.store(true, Ordering::SeqCst);
    let result: Result<_, EngineError> = h.engine.drive_until_idle();
    let died = store.dead();
    if !died {
        let idle = result.expect("a healthy store never fails");
        assert_eq!(idle.active_runs, 0);
    }
    (runs, store.writes.load(Ordering::SeqCst), died)
}

fn dying_store(die_at: usize, after_commit: bool) -> Arc<DyingStore> {
    Arc::new(DyingStore {
        inner: Arc::new(MemoryStore::new()),
        writes: AtomicUsize::new(0),
        armed: AtomicBool::new(false),
        die_at,
        after_commit,
        dead: AtomicBool::new(false),
    })
}

#[test]
fn the_calls_of_several_runs_share_their_commits() {
    let commits = |max_calls_per_commit: usize| {
        let config = EngineConfig {
            max_calls_per_commit,
            ..EngineConfig::default()
        };
        let executor = ScriptedExecutor::echo(false);
        let mut h = Harness::with_config(
            plan(),
            executor.clone(),
            Arc::new(MemoryStore::new()),
            VirtualClock::default(),
            config,
        );
        let runs: Vec<RunId> = (0..RUNS).map(|_| h.start("start", json!({}))).collect();
        let before = h.engine.stats();
        h.drive();
        let after = h.engine.stats();
        assert_eq!(after.verb_calls, (RUNS * 4) as u64);
        for run in &runs {
            assert_eq!(h.status(run), "completed");
        }
        check_keys(&executor, "no crash");
        after.commits - before.commits
    };
    // Three rounds of calls (a and b, c, d), each committing its results
    // with the next round's intents, after the first round's intents.
    assert_eq!(commits(1_000), 4);
    // One call per commit: the first intents, then one commit per call.
    assert_eq!(commits(1), 1 + (RUNS * 4) as u64);
    // Two calls per commit: six rounds of two calls.
    assert_eq!(commits(2), 1 + (RUNS * 4 / 2) as u64);
}

#[test]
fn a_crash_at_any_write_of_grouped_calls_resumes_to_the_same_result() {
    let reference_store = dying_store(usize::MAX, false);
    let executor = ScriptedExecutor::echo(false);
    let (runs, writes, died) =
        run_until_death(&reference_store, &executor, &VirtualClock::default());
    assert!(!died);
    assert!(writes >= 4, "the workload writes {writes} times");
    let reference = outcome(reference_store.inner.as_ref(), &runs);
    for after_commit in [false, true] {
        for die_at in 1..=writes {
            let context = format!(
                "died at write {die_at} {} it committed",
                if after_commit { "after" } else { "before" }
            );
            let store = dying_store(die_at, after_commit);
            let executor = ScriptedExecutor::echo(false);
            let clock = VirtualClock::default();
            let (runs, _, died) = run_until_death(&store, &executor, &clock);
            assert!(died, "{context}: the store did not die");
            // Restart: a new engine over what the store kept.
            let inner: Arc<dyn Store> = store.inner.clone();
            let mut h = Harness::with_store(plan(), executor.clone(), inner.clone(), clock);
            // Runs the last write ended before the crash are not resumed.
            let resumed = h.engine.resume(Takeover::Any).unwrap();
            assert!(resumed.len() <= RUNS, "{context}");
            let idle = h.drive();
            assert_eq!(idle.active_runs, 0, "{context}");
            assert_eq!(outcome(inner.as_ref(), &runs), reference, "{context}");
            check_keys(&executor, &context);
        }
    }
}
