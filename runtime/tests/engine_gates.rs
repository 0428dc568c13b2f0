//! Golden traces for gates: signals with filters and run correlation, each
//! `onTimeout`, the empty filter, named handles, timer gates — with a
//! virtual clock, so a 24-hour timeout passes in a call.

mod engine_support;

use donmai_runtime::exec::{Fixtures, VerbOutcome};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::Table;
use engine_support::*;
use serde_json::json;
use std::sync::Arc;

const DAY_MS: u64 = 24 * 3_600_000;
const CI_DONE: &str = "com.github.workflow_run.completed";

struct GatePlan {
    builder: PlanBuilder,
    gate: StepIx,
    after: StepIx,
    act: VerbIx,
}

/// `start → ci (gate) → after`, the gate waiting for CI_DONE.
fn gate_plan(
    on_timeout: OnTimeout,
    filter: Option<serde_json::Value>,
    verb: Option<VerbIx>,
) -> GatePlan {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "linear@1:linear.issue.update",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let filter = filter.map(|value| {
        let value = b.value(value);
        Predicate::Leaf {
            field: "workflow_run.head_sha".into(),
            op: PredicateOp::Eq,
            value: Some(value),
        }
    });
    let t = b.trigger("start");
    let gate = b.step(
        0,
        "ci",
        StepKind::Gate {
            verb,
            gate: GateDef {
                gate_type: GateType::Signal,
                event_types: vec![CI_DONE.into()],
                filter,
                on_timeout,
                timeout_ms: Some(DAY_MS),
            },
        },
    );
    let after = b.action(0, "after", act);
    b.next(0, t, gate);
    b.next(0, gate, after);
    GatePlan {
        builder: b,
        gate,
        after,
        act,
    }
}

fn count(h: &Harness, table: Table) -> usize {
    let mut n = 0;
    h.store
        .read(&mut |txn| {
            n = donmai_runtime::store::scan_all(txn, table, b"")?.len();
            Ok(())
        })
        .unwrap();
    n
}

#[test]
fn a_signal_matching_the_filter_resumes_the_gate() {
    let p = gate_plan(OnTimeout::Error, Some(json!("abc123")), None);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    let idle = h.drive();
    assert_eq!(idle.waiting_gates, 1);
    assert_eq!(idle.next_timer_ms, Some(h.now() + DAY_MS));
    // Another event type, then the right type with another sha: ignored.
    h.signal(
        "com.github.push",
        json!({"workflow_run": {"head_sha": "abc123"}}),
    );
    h.signal(CI_DONE, json!({"workflow_run": {"head_sha": "zzz"}}));
    h.drive();
    assert_eq!(h.status(&run), "running");
    h.signal(
        CI_DONE,
        json!({"workflow_run": {"head_sha": "abc123", "conclusion": "success"}}),
    );
    h.drive();
    assert_eq!(
        h.trace(&run),
        lines(&[
            "run.started",
            "step.completed start -> {}",
            "step.started ci",
            "gate.waiting ci",
            "gate.resumed ci",
            r#"step.completed ci -> {"workflow_run":{"conclusion":"success","head_sha":"abc123"}}"#,
            "step.started after",
            r#"step.completed after -> {"ok":true,"step":"after"}"#,
            "run.completed",
        ])
    );
    // The consumed signal and the gate's subscription and timer are gone;
    // the two that matched nothing stay pending.
    assert_eq!(count(&h, Table::Gates), 0);
    assert_eq!(count(&h, Table::Timers), 0);
    assert_eq!(count(&h, Table::Signals), 2);
}

#[test]
fn a_signal_naming_a_run_resumes_only_that_run() {
    let p = gate_plan(OnTimeout::Error, None, None);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let first = h.start("start", json!({}));
    let second = h.start("start", json!({}));
    h.drive();
    h.signal(CI_DONE, json!({"runId": second.as_str(), "n": 2}));
    h.drive();
    assert_eq!(h.status(&first), "running");
    assert_eq!(h.status(&second), "completed");
    // Without a run id, the first subscribed gate takes it.
    h.signal(CI_DONE, json!({"n": 1}));
    h.drive();
    assert_eq!(h.status(&first), "completed");
    assert_eq!(h.output(&first, "ci"), json!({"n": 1}));
}

#[test]
fn the_first_subscribed_gate_wins_and_a_signal_resumes_one_gate() {
    let p = gate_plan(OnTimeout::Error, None, None);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let first = h.start("start", json!({}));
    h.drive();
    h.clock.advance_ms(5);
    let second = h.start("start", json!({}));
    h.drive();
    h.signal(CI_DONE, json!({}));
    h.drive();
    assert_eq!(h.status(&first), "completed");
    assert_eq!(h.status(&second), "running");
}

#[test]
fn a_signal_that_arrives_before_the_gate_subscribes_is_taken() {
    let mut p = gate_plan(OnTimeout::Error, None, None);
    // A wait before the gate, so the signal comes first.
    let wait = p
        .builder
        .verb("core@1:core.wait", VerbKind::Action, SideEffect::ReadOnly);
    let b = &mut p.builder;
    let pause = b.action(0, "pause", wait);
    b.input(0, pause, "durationMs", json!(1000));
    b.step_mut(0, p.gate).predecessors = vec![pause];
    b.step_mut(0, 0).next = vec![pause];
    b.step_mut(0, pause).predecessors = vec![0];
    b.step_mut(0, pause).next = vec![p.gate];
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let old = h.start("start", json!({}));
    h.drive();
    h.engine.cancel(&old).unwrap();
    // A signal from before a run started never resumes it.
    h.signal(CI_DONE, json!({"stale": true}));
    let run = h.start("start", json!({}));
    h.drive();
    h.signal(CI_DONE, json!({"fresh": true}));
    h.drive();
    assert_eq!(h.status(&run), "running");
    h.advance(1000);
    assert_eq!(h.status(&run), "completed");
    assert_eq!(h.output(&run, "ci"), json!({"fresh": true}));
}

#[test]
fn on_timeout_skip_skips_after_a_day() {
    let p = gate_plan(OnTimeout::Skip, Some(json!("abc")), None);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(DAY_MS - 1);
    assert_eq!(h.status(&run), "running");
    h.advance(1);
    assert_eq!(
        h.trace(&run)[4..],
        lines(&[
            "gate.timed_out ci (no matching signal before the gate's timeout)",
            "step.skipped ci (the gate timed out)",
            "step.skipped after (every predecessor was skipped)",
            "run.completed",
        ])
    );
    assert_eq!(count(&h, Table::Gates), 0);
}

#[test]
fn on_timeout_skip_takes_a_verbs_timeout_handle() {
    let mut p = gate_plan(OnTimeout::Skip, None, None);
    let b = &mut p.builder;
    let ci = b.verb(
        "donmai@2:gate.ci_check",
        VerbKind::Gate,
        SideEffect::ReadOnly,
    );
    b.verb_mut(ci).handles = vec!["passed".into(), "failed".into(), "timeout".into()];
    b.verb_mut(ci).events = vec![CI_DONE.into()];
    let StepKind::Gate { verb, .. } = &mut b.step_mut(0, p.gate).kind else {
        unreachable!()
    };
    *verb = Some(ci);
    let on_timeout = b.action(0, "escalate", p.act);
    let passed = p.after;
    b.step_mut(0, p.gate).next.clear();
    b.branch(0, p.gate, "passed", passed);
    b.branch(0, p.gate, "failed", on_timeout);
    b.branch(0, p.gate, "timeout", on_timeout);
    let plan = p.builder.build();

    let mut h = Harness::new(plan.clone(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(DAY_MS);
    let trace = h.trace(&run);
    assert!(
        trace.contains(&"step.completed ci [timeout] -> null".to_string()),
        "{trace:?}"
    );
    assert!(trace.contains(&"step.skipped after (not on the branch taken)".to_string()));
    assert!(trace.contains(&"step.started escalate".to_string()));

    // A signal names its handle.
    let mut h = Harness::new(plan.clone(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.signal(
        CI_DONE,
        json!({"handle": "passed", "conclusion": "success"}),
    );
    h.drive();
    let trace = h.trace(&run);
    assert!(
        trace.contains(&"gate.resumed ci [passed]".to_string()),
        "{trace:?}"
    );
    assert!(trace.contains(&"step.started after".to_string()));

    // No handle, no default route: the gate cannot route and says why.
    let mut h = Harness::new(plan, ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.signal(CI_DONE, json!({"conclusion": "success"}));
    h.drive();
    assert_eq!(
        h.trace(&run)[5],
        "step.failed ci routing: gate `donmai@2:gate.ci_check` routes by its handles (passed, failed, timeout) and the signal named none: give `handle` in the signal's data"
    );
}

#[test]
fn on_timeout_error_fails_the_run_and_retry_resubscribes() {
    let p = gate_plan(OnTimeout::Error, None, None);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(DAY_MS);
    assert_eq!(
        h.trace(&run)[4..],
        lines(&[
            "gate.timed_out ci (no matching signal before the gate's timeout)",
            "step.failed ci timeout: the gate got no matching signal within 86400000 ms",
            "run.failed timeout: `ci` failed: the gate got no matching signal within 86400000 ms",
        ])
    );
    assert_eq!(h.output(&run, "after"), json!(null));

    let mut p = gate_plan(OnTimeout::Error, None, None);
    p.builder.step_mut(0, p.gate).retry = Some(RetryPolicy {
        max_attempts: 2,
        initial_ms: 60_000,
        factor: 2f64.to_bits(),
        max_ms: 0,
        retry_on: vec!["timeout".into()],
    });
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(DAY_MS);
    h.advance(60_000);
    h.signal(CI_DONE, json!({"late": true}));
    h.drive();
    assert_eq!(
        h.trace(&run)[4..9],
        lines(&[
            "gate.timed_out ci (no matching signal before the gate's timeout)",
            "step.retrying ci timeout: the gate got no matching signal within 86400000 ms",
            "step.started ci #2",
            "gate.waiting ci #2",
            "gate.resumed ci #2",
        ])
    );
    assert_eq!(h.status(&run), "completed");
}

#[test]
fn on_timeout_branch_routes_to_its_step() {
    let mut p = gate_plan(OnTimeout::Skip, None, None);
    let b = &mut p.builder;
    let notify = b.action(0, "notify", p.act);
    b.timeout_branch(0, p.gate, notify);
    let StepKind::Gate { gate, .. } = &mut b.step_mut(0, p.gate).kind else {
        unreachable!()
    };
    gate.on_timeout = OnTimeout::Branch(notify);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    h.advance(DAY_MS);
    assert_eq!(
        h.trace(&run)[4..],
        lines(&[
            "gate.timed_out ci (no matching signal before the gate's timeout)",
            "step.completed ci -> null",
            "step.skipped after (not on the branch taken)",
            "step.started notify",
            r#"step.completed notify -> {"ok":true,"step":"notify"}"#,
            "run.completed",
        ])
    );
}

#[test]
fn an_empty_resolved_filter_takes_the_timeout_path_at_once() {
    let p = gate_plan(OnTimeout::Skip, Some(json!(null)), None);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    let idle = h.drive();
    assert_eq!(idle.waiting_gates, 0);
    assert_eq!(
        h.trace(&run)[2..],
        lines(&[
            "step.started ci",
            "gate.timed_out ci (the gate's filter resolved to nothing: every value it compares with is null)",
            "step.skipped ci (the gate timed out)",
            "step.skipped after (every predecessor was skipped)",
            "run.completed",
        ])
    );
    assert_eq!(count(&h, Table::Gates), 0);
    assert_eq!(count(&h, Table::Timers), 0);
}

#[test]
fn a_timer_gate_waits_its_timeout_and_continues() {
    let mut p = gate_plan(OnTimeout::Skip, None, None);
    let StepKind::Gate { gate, .. } = &mut p.builder.step_mut(0, p.gate).kind else {
        unreachable!()
    };
    gate.gate_type = GateType::Timer;
    gate.timeout_ms = Some(90_000);
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    let idle = h.drive();
    assert_eq!(idle.next_timer_ms, Some(h.now() + 90_000));
    h.advance(89_999);
    assert_eq!(h.status(&run), "running");
    h.advance(1);
    assert_eq!(
        h.trace(&run)[2..],
        lines(&[
            "step.started ci",
            "gate.waiting ci",
            "step.completed ci -> {}",
            "step.started after",
            r#"step.completed after -> {"ok":true,"step":"after"}"#,
            "run.completed",
        ])
    );
}

#[test]
fn a_fixture_answers_a_gate_verb_with_its_handle() {
    let mut p = gate_plan(OnTimeout::Skip, None, None);
    let b = &mut p.builder;
    let ci = b.verb(
        "donmai@2:gate.ci_check",
        VerbKind::Gate,
        SideEffect::ReadOnly,
    );
    b.verb_mut(ci).handles = vec!["passed".into(), "failed".into()];
    let StepKind::Gate { verb, .. } = &mut b.step_mut(0, p.gate).kind else {
        unreachable!()
    };
    *verb = Some(ci);
    let failed = b.action(0, "failed", p.act);
    b.step_mut(0, p.gate).next.clear();
    b.branch(0, p.gate, "passed", p.after);
    b.branch(0, p.gate, "failed", failed);
    let fixtures = Fixtures::parse(
        "fixtures.yaml",
        "fixtures:\n  - verb: donmai@2:gate.ci_check\n    output: {conclusion: failure}\n    handle: failed\n  - verb: linear@1:linear.issue.update\n    output: {}\n",
    )
    .unwrap();
    let executor =
        Arc::new(donmai_runtime::exec::CompositeExecutor::default().with_fixtures(fixtures));
    let mut h = Harness::new(p.builder.build(), executor);
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(
        h.trace(&run)[2..],
        lines(&[
            "step.started ci",
            r#"step.completed ci [failed] -> {"conclusion":"failure"}"#,
            "step.skipped after (not on the branch taken)",
            "step.started failed",
            "step.completed failed -> {}",
            "run.completed",
        ])
    );
}

#[test]
fn a_gate_verbs_route_by_field_names_the_handle() {
    let mut p = gate_plan(OnTimeout::Skip, None, None);
    let b = &mut p.builder;
    let exit = b.verb(
        "donmai@2:agent.session.await_complete",
        VerbKind::Gate,
        SideEffect::ReadOnly,
    );
    b.verb_mut(exit).handles = vec!["success".into(), "fail".into()];
    b.verb_mut(exit).route_by = Some("verdict".into());
    let StepKind::Gate { verb, .. } = &mut b.step_mut(0, p.gate).kind else {
        unreachable!()
    };
    *verb = Some(exit);
    b.step_mut(0, p.gate).next.clear();
    b.branch(0, p.gate, "success", p.after);
    let on_fail = b.action(0, "on_fail", p.act);
    b.branch(0, p.gate, "fail", on_fail);
    let mut h = Harness::new(
        p.builder.build(),
        ScriptedExecutor::new(true, |_, _| Ok(VerbOutcome::output(json(json!({}))))),
    );
    let run = h.start("start", json!({}));
    h.drive();
    h.signal(CI_DONE, json!({"verdict": "success"}));
    h.drive();
    assert!(
        h.trace(&run)
            .contains(&r#"step.completed ci [success] -> {"verdict":"success"}"#.to_string())
    );
    assert_eq!(h.status(&run), "completed");
}

#[test]
fn a_gate_with_nothing_to_wait_for_does_not_wait_forever() {
    let mut p = gate_plan(OnTimeout::Skip, None, None);
    let StepKind::Gate { gate, .. } = &mut p.builder.step_mut(0, p.gate).kind else {
        unreachable!()
    };
    gate.event_types.clear();
    gate.timeout_ms = None;
    let mut h = Harness::new(p.builder.build(), ScriptedExecutor::echo(true));
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(
        h.trace(&run)[3..5],
        lines(&[
            "gate.timed_out ci (the gate listens for no event type and has no timeout)",
            "step.skipped ci (the gate timed out)",
        ])
    );
    assert_eq!(h.status(&run), "completed");
}

#[test]
fn across_engines_the_first_subscribed_gate_still_wins() {
    let p = gate_plan(OnTimeout::Error, None, None);
    let plan = p.builder.build();
    let store: Arc<dyn donmai_runtime::store::Store> =
        Arc::new(donmai_runtime::store::memory::MemoryStore::new());
    let clock = donmai_runtime::clock::VirtualClock::default();
    let mut a = Harness::with_store(
        plan.clone(),
        ScriptedExecutor::echo(true),
        store.clone(),
        clock.clone(),
    );
    let mut b = Harness::with_store(plan, ScriptedExecutor::echo(true), store, clock.clone());
    let first = a.start("start", json!({}));
    a.drive();
    clock.advance_ms(1);
    let second = b.start("start", json!({}));
    b.drive();
    // `b` sees the signal first, but its first match is `a`'s gate, held
    // by a live engine: `b` leaves it, `a` takes it.
    b.signal(CI_DONE, json!({"n": 1}));
    b.drive();
    assert_eq!(b.status(&second), "running");
    assert_eq!(a.status(&first), "running");
    a.drive();
    assert_eq!(a.status(&first), "completed");
    b.drive();
    assert_eq!(b.status(&second), "running");
    b.signal(CI_DONE, json!({"n": 2}));
    a.drive();
    b.drive();
    assert_eq!(b.status(&second), "completed");
    assert_eq!(b.output(&second, "ci"), json!({"n": 2}));
}
