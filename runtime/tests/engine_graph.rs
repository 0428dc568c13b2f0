//! Golden event traces for the graph rules of DESIGN.md: null propagation
//! and skip cascades, branches and their default routes, fan-out and joins,
//! several triggers, groups and loops.

mod engine_support;

use donmai_runtime::exec::{ExecError, VerbOutcome};
use donmai_runtime::plan::model::*;
use donmai_runtime::verify::VerifiedPlan;
use engine_support::*;
use serde_json::json;

#[test]
fn a_null_required_input_skips_and_the_skip_cascades() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb(
        "linear@1:linear.issue.update",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    b.verb_mut(verb).required_inputs = vec!["issueId".into()];
    let t = b.trigger("start");
    let a = b.action(0, "update", verb);
    b.input(0, a, "issueId", json!(null));
    let c = b.action(0, "after", verb);
    b.input(0, c, "issueId", json!("LIN-1"));
    let d = b.action(0, "last", verb);
    b.input(0, d, "issueId", json!("LIN-2"));
    b.next(0, t, a);
    b.next(0, a, c);
    b.next(0, c, d);
    let executor = ScriptedExecutor::echo(false);
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({"n": 1}));
    h.drive();
    assert_eq!(
        h.trace(&run),
        lines(&[
            "run.started",
            r#"step.completed start -> {"n":1}"#,
            "step.skipped update (required input `issueId` is null)",
            "step.skipped after (every predecessor was skipped)",
            "step.skipped last (every predecessor was skipped)",
            "run.completed",
        ])
    );
    assert_eq!(h.output(&run, "update"), json!(null));
    assert!(executor.calls().is_empty(), "a skipped step calls nothing");
    assert_eq!(h.status(&run), "completed");
}

#[test]
fn an_optional_input_absorbs_null() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb(
        "linear@1:linear.comment.create",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    b.verb_mut(verb).required_inputs = vec!["issueId".into()];
    let t = b.trigger("start");
    let a = b.action(0, "comment", verb);
    b.input(0, a, "issueId", json!("LIN-1"));
    b.input(0, a, "body", json!(null));
    b.next(0, t, a);
    let executor = ScriptedExecutor::echo(false);
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(h.status(&run), "completed");
    assert_eq!(
        executor.calls()[0].input,
        r#"{"body":null,"issueId":"LIN-1"}"#
    );
}

/// condition → yes: `a`, no: `b`; both lead to `join`.
fn diamond(answer: bool) -> (Harness, donmai_runtime::engine::RunId) {
    let mut b = PlanBuilder::new("workflow/v2");
    let cond = b.verb(
        "linear@1:linear.issue.project_allowed",
        VerbKind::Condition,
        SideEffect::ReadOnly,
    );
    b.verb_mut(cond).route_by = Some("allowed".into());
    let act = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let t = b.trigger("start");
    let c = b.step(0, "allowed", StepKind::Condition { verb: cond });
    let yes = b.action(0, "yes_path", act);
    let no = b.action(0, "no_path", act);
    let join = b.action(0, "join", act);
    b.next(0, t, c);
    b.branch(0, c, "yes", yes);
    b.branch(0, c, "no", no);
    b.next(0, yes, join);
    b.next(0, no, join);
    let executor = ScriptedExecutor::new(true, move |call, _| {
        Ok(VerbOutcome::output(
            if call.verb.kind == VerbKind::Condition {
                json(json!({"allowed": answer}))
            } else {
                json(json!({"sent": call.step_id}))
            },
        ))
    });
    let mut h = Harness::new(b.build(), executor);
    let run = h.start("start", json!({}));
    h.drive();
    (h, run)
}

#[test]
fn an_untaken_branch_skips_and_the_join_runs_once() {
    let (h, run) = diamond(true);
    assert_eq!(
        h.trace(&run),
        lines(&[
            "run.started",
            "step.completed start -> {}",
            "step.started allowed",
            r#"step.completed allowed [yes] -> {"allowed":true}"#,
            "step.started yes_path",
            r#"step.completed yes_path -> {"sent":"yes_path"}"#,
            "step.skipped no_path (not on the branch taken)",
            "step.started join",
            r#"step.completed join -> {"sent":"join"}"#,
            "run.completed",
        ])
    );
    let (h, run) = diamond(false);
    let trace = h.trace(&run);
    assert!(trace.contains(&"step.skipped yes_path (not on the branch taken)".to_string()));
    assert!(trace.contains(&r#"step.completed join -> {"sent":"join"}"#.to_string()));
}

#[test]
fn fan_out_then_join_waits_for_every_branch() {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let t = b.trigger("start");
    let left = b.action(0, "left", act);
    let right = b.action(0, "right", act);
    let join = b.action(0, "join", act);
    b.next(0, t, left);
    b.next(0, t, right);
    b.next(0, left, join);
    b.next(0, right, join);
    let executor = ScriptedExecutor::echo(false);
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    let trace = h.trace(&run);
    let position = |line: &str| trace.iter().position(|l| l.starts_with(line)).unwrap();
    assert!(position("step.completed left") < position("step.started join"));
    assert!(position("step.completed right") < position("step.started join"));
    assert_eq!(executor.calls_of("join"), 1);
    assert_eq!(trace.last().unwrap(), "run.completed");
}

#[test]
fn switch_routes_by_case_and_default_handle() {
    let mut b = PlanBuilder::new("workflow/v2");
    let cond = b.verb(
        "donmai@2:agent.classify_request",
        VerbKind::Condition,
        SideEffect::ReadOnly,
    );
    b.verb_mut(cond).route_by = Some("workType".into());
    b.verb_mut(cond).route_cases = ["research", "development", "qa"].map(String::from).to_vec();
    let act = b.verb(
        "donmai@2:requester.respond",
        VerbKind::Action,
        SideEffect::InternalOnly,
    );
    let t = b.trigger("start");
    let c = b.step(0, "classify", StepKind::Condition { verb: cond });
    let research = b.action(0, "research", act);
    let dev = b.action(0, "dev", act);
    b.next(0, t, c);
    b.branch(0, c, "research", research);
    b.branch(0, c, "development", dev);
    b.step_mut(0, c).default = Some(DefaultRoute::Case("development".into()));
    let plan = b.build();
    for (answer, ran, skipped) in [
        ("research", "research", "dev"),
        ("development", "dev", "research"),
        // Not a case with a branch: the default handle routes it.
        ("qa", "dev", "research"),
    ] {
        let executor = ScriptedExecutor::new(true, move |call, _| {
            Ok(VerbOutcome::output(json(
                json!({"workType": answer, "step": call.step_id}),
            )))
        });
        let mut h = Harness::new(plan.clone(), executor);
        let run = h.start("start", json!({}));
        h.drive();
        let trace = h.trace(&run);
        assert!(
            trace.contains(&format!("step.started {ran}")),
            "{answer}: {trace:?}"
        );
        assert!(
            trace.contains(&format!("step.skipped {skipped} (not on the branch taken)")),
            "{answer}: {trace:?}"
        );
    }
}

#[test]
fn a_condition_without_its_routing_field_fails_the_run() {
    let mut b = PlanBuilder::new("workflow/v2");
    let cond = b.verb(
        "linear@1:linear.issue.project_allowed",
        VerbKind::Condition,
        SideEffect::ReadOnly,
    );
    b.verb_mut(cond).route_by = Some("allowed".into());
    let t = b.trigger("start");
    let c = b.step(0, "allowed", StepKind::Condition { verb: cond });
    b.next(0, t, c);
    let executor = ScriptedExecutor::new(true, |_, _| Ok(VerbOutcome::output(json(json!({})))));
    let mut h = Harness::new(b.build(), executor);
    let run = h.start("start", json!({}));
    h.drive();
    let trace = h.trace(&run);
    assert_eq!(
        trace[3],
        "step.failed allowed routing: condition `linear@1:linear.issue.project_allowed` routes by its output `allowed`, which is missing instead of a bool or a case name"
    );
    assert!(trace[4].starts_with("run.failed routing: `allowed` failed: condition"));
}

#[test]
fn only_the_fired_trigger_runs_and_a_shared_successor_still_runs() {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let web = b.trigger("webhook");
    let manual = b.trigger("manual");
    let only_web = b.action(0, "only_web", act);
    let shared = b.action(0, "shared", act);
    b.next(0, web, only_web);
    b.next(0, web, shared);
    b.next(0, manual, shared);
    let mut h = Harness::new(b.build(), ScriptedExecutor::echo(true));
    let run = h.start("manual", json!({"who": "ops"}));
    h.drive();
    assert_eq!(
        h.trace(&run),
        lines(&[
            "run.started",
            "step.skipped webhook (trigger `webhook` did not start this run)",
            r#"step.completed manual -> {"who":"ops"}"#,
            "step.skipped only_web (every predecessor was skipped)",
            "step.started shared",
            r#"step.completed shared -> {"ok":true,"step":"shared"}"#,
            "run.completed",
        ])
    );
    let err = h.engine.start_run("cron", json(json!({}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the workflow has no trigger `cron`; its triggers: webhook, manual"
    );
}

fn group_plan(body_input: serde_json::Value) -> std::sync::Arc<VerifiedPlan> {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "donmai@2:agent.dispatch_to_queue",
        VerbKind::Action,
        SideEffect::InternalOnly,
    );
    let body = b.level("groups/dev.yaml@1");
    b.level_mut(body).inputs = vec![
        Port {
            name: "goal".into(),
            ty: "string".into(),
            optional: false,
        },
        Port {
            name: "issueId".into(),
            ty: "string?".into(),
            optional: true,
        },
    ];
    let entry = b.entry(body, "in");
    let work = b.action(body, "work", act);
    b.input(body, work, "workType", json!("development"));
    b.next(body, entry, work);
    let summary = b.value(json!("done"));
    let sha = b.value(json!({"sha": "abc"}));
    b.level_mut(body).outputs = vec![("summary".into(), summary), ("commit".into(), sha)];
    let t = b.trigger("start");
    let g = b.step(0, "dev", StepKind::Group { level: body });
    b.input(0, g, "goal", body_input);
    b.input(0, g, "issueId", json!(null));
    let after = b.action(0, "respond", act);
    b.next(0, t, g);
    b.next(0, g, after);
    b.build()
}

#[test]
fn a_group_runs_its_level_and_outputs_its_interface() {
    let executor = ScriptedExecutor::echo(true);
    let mut h = Harness::new(group_plan(json!("ship it")), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(
        h.trace(&run),
        lines(&[
            "run.started",
            "step.completed start -> {}",
            "step.started dev",
            r#"step.completed dev/in -> {"goal":"ship it","issueId":null}"#,
            "step.started dev/work",
            r#"step.completed dev/work -> {"ok":true,"step":"dev/work"}"#,
            r#"step.completed dev -> {"commit":{"sha":"abc"},"summary":"done"}"#,
            "step.started respond",
            r#"step.completed respond -> {"ok":true,"step":"respond"}"#,
            "run.completed",
        ])
    );
    assert_eq!(
        h.output(&run, "dev"),
        json!({"commit": {"sha": "abc"}, "summary": "done"})
    );
    assert_eq!(
        h.output(&run, "dev/work"),
        json!({"ok": true, "step": "dev/work"})
    );
}

#[test]
fn a_group_whose_required_interface_input_is_null_is_skipped() {
    let executor = ScriptedExecutor::echo(true);
    let mut h = Harness::new(group_plan(json!(null)), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    let trace = h.trace(&run);
    assert_eq!(trace[2], "step.skipped dev (required input `goal` is null)");
    assert_eq!(
        trace[3],
        "step.skipped respond (every predecessor was skipped)"
    );
    assert!(executor.calls().is_empty());
}

fn loop_plan(until_value: serde_json::Value, max_iterations: u32) -> std::sync::Arc<VerifiedPlan> {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "github@1:github.ci.rerun",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let body = b.level("groups/attempt.yaml@1");
    let entry = b.entry(body, "in");
    let attempt = b.action(body, "attempt", act);
    b.next(body, entry, attempt);
    let ci = b.value(json!("passed"));
    b.level_mut(body).outputs = vec![("ci".into(), ci)];
    let until_value = b.value(until_value);
    let t = b.trigger("start");
    let l = b.step(
        0,
        "retries",
        StepKind::Loop {
            level: body,
            max_iterations,
            until: Some(Predicate::Leaf {
                field: "output.ci".into(),
                op: PredicateOp::Eq,
                value: Some(until_value),
            }),
        },
    );
    b.input(0, l, "issueId", json!("LIN-9"));
    b.next(0, t, l);
    b.build()
}

#[test]
fn a_loop_stops_when_until_holds() {
    let executor = ScriptedExecutor::echo(true);
    let mut h = Harness::new(loop_plan(json!("passed"), 5), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(
        h.trace(&run),
        lines(&[
            "run.started",
            "step.completed start -> {}",
            "step.started retries",
            r#"step.completed retries[1]/in -> {"issueId":"LIN-9"}"#,
            "step.started retries[1]/attempt",
            r#"step.completed retries[1]/attempt -> {"ok":true,"step":"retries[1]/attempt"}"#,
            r#"step.completed retries -> {"ci":"passed"}"#,
            "run.completed",
        ])
    );
}

#[test]
fn a_loop_stops_at_max_iterations_with_the_last_outputs() {
    let executor = ScriptedExecutor::echo(false);
    let mut h = Harness::new(loop_plan(json!("never"), 3), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    let steps: Vec<String> = executor.calls().into_iter().map(|c| c.step).collect();
    assert_eq!(
        steps,
        [
            "retries[1]/attempt",
            "retries[2]/attempt",
            "retries[3]/attempt"
        ]
    );
    // Each iteration is a new effect: its own idempotency key.
    let keys: std::collections::HashSet<String> =
        executor.calls().into_iter().map(|c| c.key).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(h.output(&run, "retries"), json!({"ci": "passed"}));
    assert_eq!(h.status(&run), "completed");
    let stored: Vec<String> = h
        .engine
        .run_status(&run)
        .unwrap()
        .unwrap()
        .steps
        .into_iter()
        .map(|s| s.step_id)
        .collect();
    assert_eq!(
        stored,
        [
            "start",
            "retries",
            "retries[1]/in",
            "retries[1]/attempt",
            "retries[2]/in",
            "retries[2]/attempt",
            "retries[3]/in",
            "retries[3]/attempt",
        ]
    );
}

#[test]
fn a_failure_inside_a_group_fails_the_group_and_the_run() {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "donmai@2:agent.dispatch_to_queue",
        VerbKind::Action,
        SideEffect::InternalOnly,
    );
    let body = b.level("groups/dev.yaml@1");
    let entry = b.entry(body, "in");
    let work = b.action(body, "work", act);
    b.next(body, entry, work);
    let t = b.trigger("start");
    let g = b.step(0, "dev", StepKind::Group { level: body });
    let side = b.action(0, "side", act);
    b.next(0, t, g);
    b.next(0, t, side);
    let executor = ScriptedExecutor::new(true, |call, _| {
        if call.step_id == "dev/work" {
            Err(ExecError::new("boom", "it broke"))
        } else {
            Ok(VerbOutcome::output(json(json!({}))))
        }
    });
    let mut h = Harness::new(b.build(), executor);
    let run = h.start("start", json!({}));
    h.drive();
    let trace = h.trace(&run);
    assert!(
        trace.contains(&"step.failed dev/work boom: it broke".to_string()),
        "{trace:?}"
    );
    assert!(
        trace.contains(&"step.failed dev boom: `dev/work` failed: it broke".to_string()),
        "{trace:?}"
    );
    assert_eq!(
        trace.last().unwrap(),
        "run.failed boom: `dev` failed: `dev/work` failed: it broke"
    );
    assert_eq!(h.status(&run), "failed");
}

#[test]
fn malformed_graphs_never_reach_the_engine() {
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let t = b.trigger("start");
    let x = b.action(0, "x", act);
    let y = b.action(0, "y", act);
    b.next(0, t, x);
    b.next(0, x, y);
    b.next(0, y, x);
    let error = donmai_runtime::verify::verify(b.build_unverified()).expect_err("a cycle");
    assert!(error.to_string().contains("cycle"), "{error}");

    let mut b = PlanBuilder::new("workflow/v2");
    let t = b.trigger("start");
    let x = b.step(0, "x", StepKind::Action { verb: 9 });
    b.next(0, t, x);
    let error = donmai_runtime::verify::verify(b.build_unverified()).expect_err("no verb 9");
    assert!(error.to_string().contains("out of range"), "{error}");
}

/// `code` assembled from `program`, with one span per instruction.
fn assemble(program: &[donmai_runtime::bytecode::Instruction], max_stack: u16) -> ExprCode {
    let mut code = Vec::new();
    let mut spans = Vec::new();
    for (i, instruction) in program.iter().enumerate() {
        spans.push((
            code.len() as u32,
            SourceRef {
                file: 0,
                start: i as u32 * 10,
                end: i as u32 * 10 + 5,
            },
        ));
        instruction.encode(1, &mut code);
    }
    ExprCode {
        code,
        max_stack,
        locals: 0,
        result_type: "dyn".into(),
        source: SourceRef::default(),
        spans,
    }
}

#[test]
fn expressions_read_the_trigger_and_a_failing_one_fails_its_step() {
    use donmai_runtime::bytecode::{FieldRef, Instruction::*};
    let mut b = PlanBuilder::new("workflow/v2");
    let act = b.verb(
        "slack@1:slack.send_message",
        VerbKind::Action,
        SideEffect::ExternalWrite,
    );
    let trigger = b.plan.constants.len() as u32;
    b.plan.constants.push(Constant::String("trigger".into()));
    b.plan.constants.push(Constant::String("text".into()));
    b.plan.constants.push(Constant::Int(1));
    b.plan.constants.push(Constant::Int(0));
    // `trigger.text`
    b.plan.exprs.push(assemble(
        &[
            LoadRootPath {
                root: trigger,
                fields: vec![FieldRef {
                    name: trigger + 1,
                    optional: false,
                }],
            },
            Return,
        ],
        1,
    ));
    // `1 / 0`
    b.plan.exprs.push(assemble(
        &[
            PushConst { index: trigger + 2 },
            PushConst { index: trigger + 3 },
            Div,
            Return,
        ],
        2,
    ));
    let t = b.trigger("start");
    let x = b.action(0, "x", act);
    let y = b.action(0, "y", act);
    b.step_mut(0, x)
        .inputs
        .push(("text".into(), ValueTemplate::Expr(0)));
    b.step_mut(0, y)
        .inputs
        .push(("text".into(), ValueTemplate::Expr(1)));
    b.next(0, t, x);
    b.next(0, x, y);
    let executor = ScriptedExecutor::echo(true);
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({"text": "hello"}));
    h.drive();
    assert_eq!(executor.calls()[0].input, r#"{"text":"hello"}"#);
    let trace = h.trace(&run);
    assert!(
        trace.contains(
            &"step.failed y expression: workflow.yaml@20..25: division_by_zero: division by zero"
                .to_string()
        ),
        "{trace:?}"
    );
}
