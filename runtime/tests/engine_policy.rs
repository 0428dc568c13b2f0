//! Per-step policy and run control: retry with backoff and `retryOn`,
//! `timeoutMs`, `core.wait` as a durable timer, cancellation, idempotency
//! keys, and the lease rules between two engines sharing a store.

mod engine_support;

use donmai_runtime::clock::{Clock, VirtualClock};
use donmai_runtime::engine::{EngineConfig, EngineError, Takeover};
use donmai_runtime::exec::{ExecError, VerbOutcome};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::Store;
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::verify::VerifiedPlan;
use engine_support::*;
use serde_json::json;
use std::sync::Arc;

fn retry(max_attempts: u32, retry_on: &[&str]) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_ms: 1_000,
        factor: 2f64.to_bits(),
        max_ms: 3_000,
        retry_on: retry_on.iter().map(|s| s.to_string()).collect(),
    }
}

/// `start → call (retry policy) → after`.
fn retry_plan(policy: Option<RetryPolicy>) -> Arc<VerifiedPlan> {
    retry_builder(policy).build()
}

fn retry_builder(policy: Option<RetryPolicy>) -> PlanBuilder {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb(
        "linear@1:linear.issue.update",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let t = b.trigger("start");
    let call = b.action(0, "call", verb);
    b.input(0, call, "issueId", json!("LIN-1"));
    let after = b.action(0, "after", verb);
    b.next(0, t, call);
    b.next(0, call, after);
    b.step_mut(0, call).retry = policy;
    b
}

#[test]
fn retries_back_off_and_exhaust() {
    let executor = ScriptedExecutor::new(false, |_, _| {
        Err(ExecError::new("network", "connection reset"))
    });
    let mut h = Harness::new(retry_plan(Some(retry(4, &[]))), executor.clone());
    let start = h.now();
    let run = h.start("start", json!({}));
    let idle = h.drive();
    assert_eq!(idle.next_timer_ms, Some(start + 1_000));
    h.advance(1_000);
    h.advance(2_000);
    // 1 s · 2² = 4 s, capped at maxMs = 3 s.
    h.advance(2_999);
    assert_eq!(executor.calls_of("call"), 3);
    h.advance(1);
    let retrying: Vec<String> = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.next_attempt_at.clone())
        .collect();
    assert_eq!(
        retrying,
        [
            "2026-01-01T00:00:01.000Z",
            "2026-01-01T00:00:03.000Z",
            "2026-01-01T00:00:06.000Z"
        ]
    );
    assert_eq!(
        h.trace(&run)[2..],
        lines(&[
            "step.started call",
            "step.retrying call network: connection reset",
            "step.started call #2",
            "step.retrying call #2 network: connection reset",
            "step.started call #3",
            "step.retrying call #3 network: connection reset",
            "step.started call #4",
            "step.failed call #4 network: connection reset",
            "run.failed network: `call` failed: connection reset",
        ])
    );
    let calls = executor.calls();
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(
        calls.iter().all(|c| c.key == calls[0].key),
        "one key for every attempt"
    );
}

#[test]
fn a_retry_can_succeed() {
    let executor = ScriptedExecutor::new(false, |call, previous| {
        if call.step_id == "call" && previous == 0 {
            Err(ExecError::new("rate_limited", "slow down"))
        } else {
            Ok(VerbOutcome::output(json(json!({"attempt": call.attempt}))))
        }
    });
    let mut h = Harness::new(retry_plan(Some(retry(3, &["rate_limited"]))), executor);
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(1_000);
    assert_eq!(h.status(&run), "completed");
    assert_eq!(h.output(&run, "call"), json!({"attempt": 2}));
    let step = h.engine.step_status(&run, "call").unwrap().unwrap();
    assert_eq!((step.attempt, step.error), (2, None));
}

#[test]
fn retry_on_limits_what_is_retried() {
    let executor =
        ScriptedExecutor::new(false, |_, _| Err(ExecError::new("invalid_input", "bad id")));
    let mut h = Harness::new(
        retry_plan(Some(retry(3, &["network", "timeout"]))),
        executor.clone(),
    );
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(h.status(&run), "failed");
    assert_eq!(executor.calls_of("call"), 1);
}

#[test]
fn a_call_past_its_timeout_fails_with_timeout_and_is_retried() {
    let clock = VirtualClock::default();
    let slow = clock.clone();
    let executor = ScriptedExecutor::new(false, move |call, previous| {
        if call.step_id == "call" && previous == 0 {
            slow.advance_ms(5_001);
        }
        Ok(VerbOutcome::output(json(json!({"ok": true}))))
    });
    let mut b = retry_builder(Some(retry(2, &["timeout"])));
    b.plan.levels[0].steps[1].timeout_ms = Some(5_000);
    let mut h = Harness::with_store(
        b.build(),
        executor.clone(),
        Arc::new(MemoryStore::new()),
        clock,
    );
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(
        h.trace(&run)[3],
        "step.retrying call timeout: the call took longer than its timeoutMs (5000 ms)"
    );
    h.advance(1_000);
    assert_eq!(h.status(&run), "completed");
    assert_eq!(executor.calls_of("call"), 2);
}

fn wait_plan() -> Arc<VerifiedPlan> {
    let mut b = PlanBuilder::new("workflow/v2");
    let wait = b.verb("core@1:core.wait", VerbKind::Action, SideEffect::ReadOnly);
    let set = b.verb(
        "core@1:core.set",
        VerbKind::Action,
        SideEffect::InternalOnly,
    );
    let t = b.trigger("start");
    let w = b.action(0, "pause", wait);
    b.input(0, w, "durationMs", json!(3_600_000));
    let s = b.action(0, "set", set);
    b.input(0, s, "values", json!({"done": true}));
    b.next(0, t, w);
    b.next(0, w, s);
    b.build()
}

#[test]
fn core_wait_is_a_durable_timer_that_survives_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = VirtualClock::default();
    let executor = ScriptedExecutor::echo(false);
    let mut first =
        Harness::with_store(wait_plan(), executor.clone(), store.clone(), clock.clone());
    let run = first.start("start", json!({}));
    let idle = first.drive();
    assert_eq!(idle.next_timer_ms, Some(clock.now_ms() + 3_600_000));
    drop(first);

    clock.advance_ms(3_600_000);
    let mut second = Harness::with_store(wait_plan(), executor, store, clock);
    assert_eq!(
        second.engine.resume(Takeover::Any).unwrap(),
        vec![run.clone()]
    );
    second.drive();
    assert_eq!(second.status(&run), "completed");
    assert_eq!(second.output(&run, "pause"), json!({}));
    assert_eq!(second.output(&run, "set"), json!({"done": true}));
    assert_eq!(
        second.trace(&run),
        lines(&[
            "step.completed pause -> {}",
            "step.started set",
            r#"step.completed set -> {"done":true}"#,
            "run.completed",
        ])
    );
}

#[test]
fn cancelling_stops_pending_work_and_removes_gates_and_timers() {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let t = b.trigger("start");
    let gate = b.step(
        0,
        "approval",
        StepKind::Gate {
            verb: None,
            gate: GateDef {
                gate_type: GateType::Signal,
                event_types: vec!["approved".into()],
                filter: None,
                on_timeout: OnTimeout::Error,
                timeout_ms: Some(60_000),
            },
        },
    );
    let after = b.action(0, "after", act);
    b.next(0, t, gate);
    b.next(0, gate, after);
    let plan = b.build();
    let executor = ScriptedExecutor::echo(true);
    let mut h = Harness::new(plan.clone(), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    assert!(h.engine.cancel(&run).unwrap());
    assert!(!h.engine.cancel(&run).unwrap(), "already ended");
    h.signal("approved", json!({}));
    h.advance(120_000);
    assert_eq!(
        h.trace(&run)[2..],
        lines(&[
            "step.started approval",
            "gate.waiting approval",
            "run.cancelled (cancelled by an operator)",
        ])
    );
    let info = h.engine.run_status(&run).unwrap().unwrap();
    assert!(info.run.cancelled_by_operator);
    assert_eq!(info.steps[1].status.as_str(), "cancelled");
    assert!(executor.calls().is_empty());
    for table in [
        donmai_runtime::store::Table::Gates,
        donmai_runtime::store::Table::Timers,
        donmai_runtime::store::Table::Leases,
    ] {
        let mut n = 0;
        h.store
            .read(&mut |txn| {
                n = donmai_runtime::store::scan_all(txn, table, b"")?.len();
                Ok(())
            })
            .unwrap();
        assert_eq!(n, 0, "{table:?} still has entries");
    }
    // Never re-dispatched, whoever resumes.
    let mut other = Harness::with_store(plan, executor, h.store.clone(), h.clock.clone());
    assert!(other.engine.resume(Takeover::Any).unwrap().is_empty());
    assert!(matches!(
        other
            .engine
            .cancel(&donmai_runtime::engine::RunId::parse("NOPE").unwrap()),
        Err(EngineError::UnknownRun(_))
    ));
}

#[test]
fn a_cancel_from_another_process_stops_the_holder() {
    let plan = retry_plan(Some(retry(5, &[])));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = VirtualClock::default();
    let failing = ScriptedExecutor::new(false, |_, _| Err(ExecError::new("network", "down")));
    let mut holder =
        Harness::with_store(plan.clone(), failing.clone(), store.clone(), clock.clone());
    let run = holder.start("start", json!({}));
    holder.drive();
    assert_eq!(
        holder
            .engine
            .step_status(&run, "call")
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "retrying"
    );

    let mut operator = Harness::with_store(plan, ScriptedExecutor::echo(true), store, clock);
    assert!(operator.engine.cancel(&run).unwrap());
    assert_eq!(operator.status(&run), "cancelled");
    // The holder's retry timer is gone; its in-memory copy is dropped.
    let idle = holder.advance(10_000);
    assert_eq!(idle.active_runs, 1, "the holder does not know yet");
    assert_eq!(failing.calls_of("call"), 1, "no retry after the cancel");
    // Its next commit for the run is refused; the run had already ended.
    assert!(!holder.engine.cancel(&run).unwrap());
    assert_eq!(holder.engine.idle().active_runs, 0);
    assert_eq!(holder.status(&run), "cancelled");
    assert_eq!(
        operator.trace(&run),
        lines(&["run.cancelled (cancelled by an operator)"])
    );
}

#[test]
fn a_stale_lease_is_taken_over_and_a_live_one_is_not() {
    let plan = retry_plan(None);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = VirtualClock::default();
    // The first engine records the intent of `call`, then stops without
    // making it (a process that died after its commit).
    let executor = ScriptedExecutor::echo(false);
    let mut dead =
        Harness::with_store(plan.clone(), executor.clone(), store.clone(), clock.clone());
    let run = dead.start("start", json!({}));
    assert!(dead.engine.step().unwrap());
    assert_eq!(
        dead.engine
            .step_status(&run, "call")
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "running"
    );
    let intent_key = dead
        .engine
        .step_status(&run, "call")
        .unwrap()
        .unwrap()
        .idempotency_key;
    drop(dead);

    let mut live = Harness::with_store(plan, executor.clone(), store, clock.clone());
    assert!(
        live.engine.resume(Takeover::Unowned).unwrap().is_empty(),
        "same process: alive"
    );
    live.drive();
    assert_eq!(live.status(&run), "running");
    assert!(executor.calls().is_empty());
    clock.advance_ms(59_999);
    live.drive();
    assert!(executor.calls().is_empty(), "not stale yet");
    // Leases are swept every quarter of their time to live.
    clock.advance_ms(15_000);
    live.drive();
    assert_eq!(live.status(&run), "completed");
    // Re-dispatched with the key the dead engine recorded.
    assert_eq!(Some(executor.calls()[0].key.clone()), intent_key);
}

#[test]
fn two_engines_never_advance_the_same_run() {
    let plan = wait_plan();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = VirtualClock::default();
    let executor = ScriptedExecutor::echo(false);
    let config = EngineConfig {
        lease_ttl_ms: 1_000,
        ..EngineConfig::default()
    };
    let mut a = Harness::with_config(
        plan.clone(),
        executor.clone(),
        store.clone(),
        clock.clone(),
        config.clone(),
    );
    let mut b = Harness::with_config(plan, executor, store, clock.clone(), config);
    let run = a.start("start", json!({}));
    a.drive();
    // `a` stops heartbeating; `b` takes the run over once the lease is
    // stale, and `a`'s next commit for it is refused.
    clock.advance_ms(3_600_000);
    b.drive();
    assert_eq!(b.status(&run), "completed");
    let before = b.events.lock().unwrap().len();
    a.drive();
    assert_eq!(a.engine.idle().active_runs, 0);
    let events = donmai_runtime::engine::query::events(a.store.as_ref(), &run).unwrap();
    let completions = events
        .iter()
        .filter(|e| e.kind.as_str() == "run.completed")
        .count();
    assert_eq!(completions, 1);
    assert_eq!(b.events.lock().unwrap().len(), before);
}

#[test]
fn idempotency_keys_are_stable_per_step_instance_and_distinct_across_runs() {
    let executor = ScriptedExecutor::echo(false);
    let mut h = Harness::new(retry_plan(None), executor.clone());
    let first = h.start("start", json!({}));
    let second = h.start("start", json!({}));
    h.drive();
    let calls = executor.calls();
    let key = |run: &donmai_runtime::engine::RunId, step: &str| {
        calls
            .iter()
            .find(|c| c.run == run.as_str() && c.step == step)
            .unwrap()
            .key
            .clone()
    };
    assert_ne!(key(&first, "call"), key(&second, "call"));
    assert_ne!(key(&first, "call"), key(&first, "after"));
    assert_eq!(key(&first, "call").len(), 32);
    let stored = h.engine.step_status(&first, "call").unwrap().unwrap();
    assert_eq!(stored.idempotency_key, Some(key(&first, "call")));
}

#[test]
fn a_panicking_executor_fails_its_step_not_the_engine() {
    let executor = ScriptedExecutor::new(false, |call, _| {
        if call.step_id == "call" {
            panic!("plugin bug");
        }
        Ok(VerbOutcome::output(json(json!({}))))
    });
    let mut h = Harness::new(retry_plan(None), executor);
    let run = h.start("start", json!({}));
    let other = h.start("start", json!({}));
    h.drive();
    assert_eq!(
        h.trace(&run)[3],
        "step.failed call panic: the executor of `linear@1:linear.issue.update` panicked: plugin bug"
    );
    assert_eq!(h.status(&run), "failed");
    assert_eq!(h.status(&other), "failed");
}

#[test]
fn an_engine_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<donmai_runtime::engine::Engine>();
}
