//! The `nodes` root as expressions see it: each frame keeps its map of step
//! outputs current as steps end (see `engine/nodes.rs`), so these check
//! that what a step reads is always the latest output — along a chain,
//! after a resume rebuilt the run from the store, inside a group (its own
//! level's steps only), in every loop iteration (that iteration's
//! outputs), and that a copy of `nodes` an expression kept is a snapshot.

mod engine_support;

use donmai_runtime::bytecode::{FieldRef, Instruction};
use donmai_runtime::engine::Takeover;
use donmai_runtime::exec::VerbOutcome;
use donmai_runtime::plan::model::*;
use donmai_runtime::store::Store;
use donmai_runtime::store::memory::MemoryStore;
use donmai_stdlib::value::Value;
use engine_support::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

fn string(b: &mut PlanBuilder, text: &str) -> u32 {
    match b.constant(Constant::String(text.into())) {
        ValueTemplate::Const(index) => index,
        other => unreachable!("a constant template, not {other:?}"),
    }
}

/// Adds the expression `root.f1.f2…` (a field written `f?` is optional) and
/// returns its template.
fn path(b: &mut PlanBuilder, root: &str, fields: &[&str]) -> ValueTemplate {
    let root = string(b, root);
    let fields: Vec<FieldRef> = fields
        .iter()
        .map(|field| match field.strip_suffix('?') {
            Some(name) => FieldRef {
                name: string(b, name),
                optional: true,
            },
            None => FieldRef {
                name: string(b, field),
                optional: false,
            },
        })
        .collect();
    let program = if fields.is_empty() {
        vec![Instruction::LoadRoot { name: root }, Instruction::Return]
    } else {
        vec![
            Instruction::LoadRootPath { root, fields },
            Instruction::Return,
        ]
    };
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
    b.plan.exprs.push(ExprCode {
        code,
        max_stack: 1,
        locals: 0,
        result_type: "dyn".into(),
        source: SourceRef::default(),
        spans,
    });
    ValueTemplate::Expr((b.plan.exprs.len() - 1) as ExprIx)
}

fn pipe(b: &mut PlanBuilder, level: LevelIx, step: StepIx, name: &str, template: ValueTemplate) {
    b.step_mut(level, step).inputs.push((name.into(), template));
}

/// Answers `{n: input.n + 1}` (and `{n: 0}` without an `n`), so every step
/// of a chain shows whether it read its predecessor's latest output.
fn increment(inline: bool) -> Arc<ScriptedExecutor> {
    ScriptedExecutor::new(inline, |call, _| {
        let n = match call.input_field("n") {
            Value::Int(n) => n + 1,
            _ => 0,
        };
        Ok(VerbOutcome::output(json(json!({"n": n}))))
    })
}

fn inputs_of(executor: &ScriptedExecutor, step: &str) -> Vec<String> {
    executor
        .calls()
        .into_iter()
        .filter(|call| call.step == step)
        .map(|call| call.input)
        .collect()
}

#[test]
fn each_step_reads_the_latest_output_of_the_one_before() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb("t@1:t.inc", VerbKind::Action, SideEffect::ExternalWrite);
    let start = b.trigger("start");
    let mut previous = ("start", start);
    let names = ["a", "b", "c", "d"];
    for name in names {
        let step = b.action(0, name, verb);
        let n = path(&mut b, "nodes", &[previous.0, "output", "n"]);
        pipe(&mut b, 0, step, "n", n);
        b.next(0, previous.1, step);
        previous = (name, step);
    }
    // `d` also reads `a`, which ended three steps before.
    let first = path(&mut b, "nodes", &["a", "output", "n"]);
    pipe(&mut b, 0, previous.1, "first", first);
    let executor = increment(false);
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({"n": 10}));
    h.drive();
    assert_eq!(h.status(&run), "completed");
    assert_eq!(inputs_of(&executor, "a"), [r#"{"n":10}"#]);
    assert_eq!(inputs_of(&executor, "b"), [r#"{"n":11}"#]);
    assert_eq!(inputs_of(&executor, "c"), [r#"{"n":12}"#]);
    assert_eq!(inputs_of(&executor, "d"), [r#"{"first":11,"n":13}"#]);
    assert_eq!(h.output(&run, "d"), json!({"n": 14}));
}

#[test]
fn a_skipped_step_reads_as_null_and_a_kept_copy_of_nodes_does_not_change() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb("t@1:t.echo", VerbKind::Action, SideEffect::ExternalWrite);
    b.verb_mut(verb).required_inputs = vec!["need".into()];
    let start = b.trigger("start");
    // `snap` keeps the whole map; `gone` is skipped (its required input is
    // null); `after` reads both.
    let snap = b.action(0, "snap", verb);
    b.input(0, snap, "need", json!(1));
    let all = path(&mut b, "nodes", &[]);
    pipe(&mut b, 0, snap, "all", all);
    let gone = b.action(0, "gone", verb);
    b.input(0, gone, "need", json!(null));
    let after = b.action(0, "after", verb);
    b.input(0, after, "need", json!(1));
    let kept = path(
        &mut b,
        "nodes",
        &["snap", "output", "all", "snap", "output"],
    );
    pipe(&mut b, 0, after, "kept", kept);
    let now = path(&mut b, "nodes", &["snap", "output", "need"]);
    pipe(&mut b, 0, after, "now", now);
    let skipped = path(&mut b, "nodes", &["gone", "output"]);
    pipe(&mut b, 0, after, "skipped", skipped);
    b.next(0, start, snap);
    b.next(0, snap, gone);
    b.next(0, snap, after);
    let executor =
        ScriptedExecutor::new(true, |call, _| Ok(VerbOutcome::output(call.input.clone())));
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(h.status(&run), "completed");
    assert_eq!(
        h.output(&run, "snap")["all"],
        json!({
            "after": {"output": null},
            "gone": {"output": null},
            "snap": {"output": null},
            "start": {"output": {}},
        }),
        "the copy shows the map as it was when `snap` started"
    );
    assert_eq!(
        inputs_of(&executor, "after"),
        [r#"{"kept":null,"need":1,"now":1,"skipped":null}"#]
    );
}

#[test]
fn a_resumed_run_reads_outputs_from_before_the_restart() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb("t@1:t.inc", VerbKind::Action, SideEffect::ExternalWrite);
    let wait = b.verb("core@1:core.wait", VerbKind::Action, SideEffect::ReadOnly);
    let start = b.trigger("start");
    let a = b.action(0, "a", verb);
    let n = path(&mut b, "nodes", &["start", "output", "n"]);
    pipe(&mut b, 0, a, "n", n);
    // `b` reads `a` before the restart, so the map exists when it stops.
    let before = b.action(0, "b", verb);
    let n = path(&mut b, "nodes", &["a", "output", "n"]);
    pipe(&mut b, 0, before, "n", n);
    let sleep = b.action(0, "sleep", wait);
    b.input(0, sleep, "durationMs", json!(60_000));
    let c = b.action(0, "c", verb);
    let n = path(&mut b, "nodes", &["b", "output", "n"]);
    pipe(&mut b, 0, c, "n", n);
    let slept = path(&mut b, "nodes", &["sleep", "output"]);
    pipe(&mut b, 0, c, "slept", slept);
    let first = path(&mut b, "nodes", &["a", "output", "n"]);
    pipe(&mut b, 0, c, "first", first);
    b.next(0, start, a);
    b.next(0, a, before);
    b.next(0, before, sleep);
    b.next(0, sleep, c);
    let plan = b.build();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let executor = increment(false);
    let mut first_engine = Harness::with_store(
        plan.clone(),
        executor.clone(),
        store.clone(),
        Default::default(),
    );
    let run = first_engine.start("start", json!({"n": 1}));
    let idle = first_engine.drive();
    assert_eq!(idle.active_runs, 1, "the run sleeps");
    assert_eq!(inputs_of(&executor, "b"), [r#"{"n":2}"#]);
    let clock = first_engine.clock.clone();
    drop(first_engine);

    let mut second = Harness::with_store(plan, executor.clone(), store, clock);
    assert_eq!(
        second.engine.resume(Takeover::Any).unwrap(),
        std::slice::from_ref(&run)
    );
    second.advance(60_000);
    assert_eq!(second.status(&run), "completed");
    assert_eq!(
        inputs_of(&executor, "c"),
        [r#"{"first":2,"n":3,"slept":{}}"#]
    );
    assert_eq!(executor.calls().len(), 3, "nothing ran twice");
}

#[test]
fn a_group_sees_its_own_steps_and_its_caller_sees_its_outputs() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb("t@1:t.inc", VerbKind::Action, SideEffect::ExternalWrite);
    let body = b.level("groups/g.yaml@1");
    b.level_mut(body).inputs = vec![Port {
        name: "n".into(),
        ty: "int".into(),
        optional: false,
    }];
    let entry = b.entry(body, "in");
    let x = b.action(body, "x", verb);
    let n = path(&mut b, "nodes", &["in", "output", "n"]);
    pipe(&mut b, body, x, "n", n);
    let y = b.action(body, "y", verb);
    let n = path(&mut b, "nodes", &["x", "output", "n"]);
    pipe(&mut b, body, y, "n", n);
    // The workflow's steps are not in the group's `nodes`.
    let outer = path(&mut b, "nodes", &["a?", "output"]);
    pipe(&mut b, body, y, "outer", outer);
    b.next(body, entry, x);
    b.next(body, x, y);
    let result = path(&mut b, "nodes", &["y", "output", "n"]);
    b.level_mut(body).outputs = vec![("n".into(), result)];

    let start = b.trigger("start");
    let a = b.action(0, "a", verb);
    let n = path(&mut b, "nodes", &["start", "output", "n"]);
    pipe(&mut b, 0, a, "n", n);
    let group = b.step(0, "g", StepKind::Group { level: body });
    let n = path(&mut b, "nodes", &["a", "output", "n"]);
    pipe(&mut b, 0, group, "n", n);
    let after = b.action(0, "after", verb);
    let n = path(&mut b, "nodes", &["g", "output", "n"]);
    pipe(&mut b, 0, after, "n", n);
    // The group's inner steps are not in the workflow's `nodes`.
    let inner = path(&mut b, "nodes", &["x?", "output"]);
    pipe(&mut b, 0, after, "inner", inner);
    b.next(0, start, a);
    b.next(0, a, group);
    b.next(0, group, after);
    let executor = increment(true);
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({"n": 0}));
    h.drive();
    assert_eq!(h.status(&run), "completed");
    assert_eq!(inputs_of(&executor, "g/x"), [r#"{"n":1}"#]);
    assert_eq!(inputs_of(&executor, "g/y"), [r#"{"n":2,"outer":null}"#]);
    assert_eq!(h.output(&run, "g"), json!({"n": 3}));
    assert_eq!(inputs_of(&executor, "after"), [r#"{"inner":null,"n":3}"#]);
}

#[test]
fn every_loop_iteration_reads_its_own_outputs() {
    let mut b = PlanBuilder::new("workflow/v2");
    let verb = b.verb("t@1:t.count", VerbKind::Action, SideEffect::ExternalWrite);
    let body = b.level("groups/attempt.yaml@1");
    let entry = b.entry(body, "in");
    // `work` answers its call count; `check` reads it in the same frame.
    let work = b.action(body, "work", verb);
    let check = b.action(body, "check", verb);
    let n = path(&mut b, "nodes", &["work", "output", "n"]);
    pipe(&mut b, body, check, "n", n);
    b.next(body, entry, work);
    b.next(body, work, check);
    let result = path(&mut b, "nodes", &["check", "output", "n"]);
    b.level_mut(body).outputs = vec![("n".into(), result)];
    let thirty = b.value(json!(30));
    let start = b.trigger("start");
    let retries = b.step(
        0,
        "retries",
        StepKind::Loop {
            level: body,
            max_iterations: 10,
            until: Some(Predicate::Leaf {
                field: "output.n".into(),
                op: PredicateOp::Eq,
                value: Some(thirty),
            }),
        },
    );
    let after = b.action(0, "after", verb);
    let n = path(&mut b, "nodes", &["retries", "output", "n"]);
    pipe(&mut b, 0, after, "n", n);
    b.next(0, start, retries);
    b.next(0, retries, after);
    // `work` answers 1, 2, 3 … over the iterations; `check` ten times its
    // input.
    let works = AtomicI64::new(0);
    let executor = ScriptedExecutor::new(true, move |call, _| {
        let n = match (call.step_id.ends_with("/check"), call.input_field("n")) {
            (true, Value::Int(n)) => n * 10,
            _ => works.fetch_add(1, Ordering::SeqCst) + 1,
        };
        Ok(VerbOutcome::output(json(json!({"n": n}))))
    });
    let mut h = Harness::new(b.build(), executor.clone());
    let run = h.start("start", json!({}));
    h.drive();
    assert_eq!(h.status(&run), "completed");
    for (iteration, expected) in [(1, r#"{"n":1}"#), (2, r#"{"n":2}"#), (3, r#"{"n":3}"#)] {
        assert_eq!(
            inputs_of(&executor, &format!("retries[{iteration}]/check")),
            [expected],
            "iteration {iteration}"
        );
    }
    assert_eq!(h.output(&run, "retries"), json!({"n": 30}));
    assert_eq!(inputs_of(&executor, "after"), [r#"{"n":30}"#]);
}
