//! The verifier accepts valid plans and refuses each kind of malformed one
//! with the error naming what is wrong and where. Each test breaks the
//! sample plan in one place.

mod support;

use donmai_runtime::plan::*;
use donmai_runtime::verify::{Location, VerifyError, VerifyErrorKind as K, verify};
use support::sample::*;
use support::{link, sample_plan, step};

fn refused(plan: Plan) -> VerifyError {
    verify(plan).expect_err("the plan must be refused")
}

fn kind_of(plan: Plan) -> K {
    refused(plan).kind
}

fn main_step(plan: &mut Plan, step: StepIx) -> &mut StepDef {
    &mut plan.levels[MAIN as usize].steps[step as usize]
}

fn at_step(level: LevelIx, step: StepIx) -> impl Fn(&Location) -> bool {
    move |location| matches!(location, Location::Step { level: l, step: s, .. } if *l == level && *s == step)
}

fn gate_of(plan: &mut Plan, step: StepIx) -> &mut GateDef {
    match &mut main_step(plan, step).kind {
        StepKind::Gate { gate, .. } => gate,
        other => panic!("step {step} is not a gate: {other:?}"),
    }
}

fn leaf(op: PredicateOp, value: Option<ValueTemplate>) -> Predicate {
    Predicate::Leaf {
        field: "payload.x".to_owned(),
        op,
        value,
    }
}

#[test]
fn the_sample_plan_verifies_with_the_id_of_its_encoding() {
    let plan = sample_plan();
    let verified = verify(plan.clone()).expect("valid");
    assert_eq!(verified.plan(), &plan);
    assert_eq!(verified.id(), plan_id(&encode(&plan)).expect("id"));
    assert_eq!(verified.levels.len(), 3, "derefs to the plan");
    let decoded = decode(&encode(&plan)).expect("decodes");
    let id = decoded.id();
    assert_eq!(decoded.verify().expect("valid").id(), id);
}

#[test]
fn errors_read_with_names_and_positions() {
    let mut plan = sample_plan();
    main_step(&mut plan, NOTIFY).next = vec![99];
    let error = refused(plan);
    assert_eq!(
        error.to_string(),
        "plan verification failed: level 0 (`main`), step 4 (`notify`), next[0]: step index 99 is out of range (there are 10)"
    );
}

// Header.

#[test]
fn the_header_format_version_must_be_this_one() {
    let mut plan = sample_plan();
    plan.header.format_version = 2;
    let error = refused(plan);
    assert_eq!(error.location, Location::Header);
    assert_eq!(
        error.kind,
        K::FormatVersion {
            found: 2,
            expected: 1
        }
    );
}

#[test]
fn the_api_version_must_be_a_workflow_version() {
    let mut plan = sample_plan();
    plan.header.api_version = "workflow/v9".to_owned();
    assert_eq!(
        kind_of(plan),
        K::UnknownApiVersion {
            found: "workflow/v9".to_owned()
        }
    );
}

#[test]
fn requires_must_be_sorted_and_unique() {
    let mut plan = sample_plan();
    plan.header.requires.swap(0, 1);
    assert_eq!(
        kind_of(plan),
        K::NotSorted {
            what: "required plugins"
        }
    );
    let mut plan = sample_plan();
    plan.header.requires[1] = plan.header.requires[0].clone();
    assert_eq!(
        kind_of(plan),
        K::NotSorted {
            what: "required plugins"
        }
    );
}

// Verbs.

#[test]
fn a_verbs_required_inputs_must_be_sorted() {
    let mut plan = sample_plan();
    plan.verbs[ACTION_VERB as usize].required_inputs.reverse();
    let error = refused(plan);
    assert!(matches!(
        error.location,
        Location::Verb {
            verb: ACTION_VERB,
            ..
        }
    ));
    assert_eq!(
        error.kind,
        K::NotSorted {
            what: "required inputs"
        }
    );
}

#[test]
fn an_idempotency_key_must_be_an_expression_of_the_plan() {
    let mut plan = sample_plan();
    plan.verbs[ACTION_VERB as usize].idempotency_key = Some(4);
    let error = refused(plan);
    assert_eq!(
        error.location,
        Location::Verb {
            verb: ACTION_VERB,
            name: "linear@1:linear.issue.update".to_owned()
        }
    );
    assert_eq!(error.part.as_deref(), Some("idempotency key"));
    assert_eq!(
        error.kind,
        K::IndexOutOfRange {
            what: "expression",
            index: 4,
            len: 4
        }
    );
}

#[test]
fn a_condition_verb_must_name_its_route() {
    let mut plan = sample_plan();
    plan.verbs[BOOL_CONDITION_VERB as usize].route_by = None;
    assert!(matches!(kind_of(plan), K::ConditionWithoutRoute { .. }));
}

#[test]
fn a_verbs_cases_and_handles_are_unique() {
    let mut plan = sample_plan();
    plan.verbs[SWITCH_VERB as usize]
        .route_cases
        .push("bug".to_owned());
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "case",
            name: "bug".to_owned()
        }
    );
    let mut plan = sample_plan();
    plan.verbs[GATE_VERB as usize]
        .handles
        .push("passed".to_owned());
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "handle",
            name: "passed".to_owned()
        }
    );
}

// Expressions.

#[test]
fn an_expression_source_must_name_a_source_file() {
    let mut plan = sample_plan();
    plan.exprs[2].source.file = 4;
    let error = refused(plan);
    assert_eq!(error.location, Location::Expr { expr: 2 });
    assert_eq!(
        error.kind,
        K::IndexOutOfRange {
            what: "source file",
            index: 4,
            len: 4
        }
    );
}

#[test]
fn a_source_range_must_not_end_before_it_starts() {
    let mut plan = sample_plan();
    plan.exprs[1].source = support::source(0, 50, 49);
    assert_eq!(kind_of(plan), K::InvertedSourceRange { start: 50, end: 49 });
    let mut plan = sample_plan();
    main_step(&mut plan, DONE).source = support::source(0, 9, 2);
    let error = refused(plan);
    assert!(at_step(MAIN, DONE)(&error.location));
    assert_eq!(error.kind, K::InvertedSourceRange { start: 9, end: 2 });
}

#[test]
fn instruction_spans_lie_inside_the_code_in_order() {
    let mut plan = sample_plan();
    plan.exprs[0].spans.push((4, support::source(0, 0, 1)));
    assert_eq!(
        kind_of(plan),
        K::SpanOutsideCode {
            offset: 4,
            code_len: 4
        }
    );
    let mut plan = sample_plan();
    plan.exprs[0].spans.swap(0, 1);
    assert_eq!(kind_of(plan), K::SpansNotSorted { offset: 0 });
    let mut plan = sample_plan();
    plan.exprs[0].spans[1].0 = 0;
    assert_eq!(kind_of(plan), K::SpansNotSorted { offset: 0 });
    let mut plan = sample_plan();
    plan.exprs[0].spans[1].1.file = 7;
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("span at offset 1"));
    assert!(matches!(
        error.kind,
        K::IndexOutOfRange {
            what: "source file",
            index: 7,
            ..
        }
    ));
}

// Levels, triggers and names.

#[test]
fn a_plan_has_at_least_the_workflow_level() {
    let mut plan = sample_plan();
    plan.levels.clear();
    let error = refused(plan);
    assert_eq!(error.location, Location::Plan);
    assert_eq!(error.kind, K::NoLevels);
}

#[test]
fn the_workflow_level_has_no_interface_inputs() {
    let mut plan = sample_plan();
    plan.levels[0].inputs = plan.levels[1].inputs.clone();
    let error = refused(plan);
    assert_eq!(
        error.location,
        Location::Level {
            level: 0,
            name: "main".to_owned()
        }
    );
    assert_eq!(error.kind, K::MainLevelInputs);
}

#[test]
fn step_ids_are_unique_in_a_level() {
    let mut plan = sample_plan();
    main_step(&mut plan, DONE).id = "notify".to_owned();
    let error = refused(plan);
    assert!(matches!(error.location, Location::Level { level: 0, .. }));
    assert_eq!(
        error.kind,
        K::Duplicate {
            what: "step id",
            name: "notify".to_owned()
        }
    );
    // The same id in two levels is fine: each level is its own namespace.
    let mut plan = sample_plan();
    plan.levels[1].steps[1].id = "notify".to_owned();
    verify(plan).expect("valid");
}

#[test]
fn other_names_are_unique_where_they_are_looked_up() {
    let mut plan = sample_plan();
    plan.levels[0].triggers[1].id = "issue".to_owned();
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "trigger id",
            name: "issue".to_owned()
        }
    );

    let mut plan = sample_plan();
    plan.levels[0].triggers[2].fields[1].name = "reason".to_owned();
    let error = refused(plan);
    assert!(matches!(
        error.location,
        Location::Trigger { trigger: 2, .. }
    ));
    assert_eq!(
        error.kind,
        K::Duplicate {
            what: "field",
            name: "reason".to_owned()
        }
    );

    let mut plan = sample_plan();
    plan.levels[1].inputs[1].name = "title".to_owned();
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "interface input",
            name: "title".to_owned()
        }
    );

    let mut plan = sample_plan();
    let output = plan.levels[2].outputs[0].clone();
    plan.levels[2].outputs.push(output);
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "output",
            name: "result".to_owned()
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, NOTIFY).inputs[1].0 = "id".to_owned();
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "input",
            name: "id".to_owned()
        }
    );

    let mut plan = sample_plan();
    let ValueTemplate::Map(entries) = &mut main_step(&mut plan, NOTIFY).inputs[2].1 else {
        panic!("the sample's `extra` input is a map");
    };
    entries[1].0 = "labels".to_owned();
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("input `extra`"));
    assert_eq!(
        error.kind,
        K::Duplicate {
            what: "map key",
            name: "labels".to_owned()
        }
    );
}

// Indices.

#[test]
fn every_index_is_in_range() {
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).branches[0].1 = 10;
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("branch `yes`"));
    assert_eq!(
        error.kind,
        K::IndexOutOfRange {
            what: "step",
            index: 10,
            len: 10
        }
    );

    let mut plan = sample_plan();
    gate_of(&mut plan, APPROVAL).on_timeout = OnTimeout::Branch(12);
    assert_eq!(
        kind_of(plan),
        K::IndexOutOfRange {
            what: "step",
            index: 12,
            len: 10
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, TICK).kind = StepKind::Trigger { trigger: 5 };
    assert_eq!(
        kind_of(plan),
        K::IndexOutOfRange {
            what: "trigger",
            index: 5,
            len: 5
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, DONE).kind = StepKind::Action { verb: 5 };
    assert_eq!(
        kind_of(plan),
        K::IndexOutOfRange {
            what: "verb",
            index: 5,
            len: 5
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, DEV).kind = StepKind::Group { level: 3 };
    assert_eq!(
        kind_of(plan),
        K::IndexOutOfRange {
            what: "level",
            index: 3,
            len: 3
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, DONE).inputs[0].1 = ValueTemplate::Const(8);
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("input `id`"));
    assert_eq!(
        error.kind,
        K::IndexOutOfRange {
            what: "constant",
            index: 8,
            len: 8
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, NOTIFY).inputs[1].1 = ValueTemplate::Interpolate(vec![
        TemplatePart::Text("a".to_owned()),
        TemplatePart::Expr(4),
    ]);
    assert_eq!(
        kind_of(plan),
        K::IndexOutOfRange {
            what: "expression",
            index: 4,
            len: 4
        }
    );

    let mut plan = sample_plan();
    plan.levels[1].outputs[0].1 = ValueTemplate::List(vec![ValueTemplate::Expr(40)]);
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("output `result`"));
    assert_eq!(
        error.kind,
        K::IndexOutOfRange {
            what: "expression",
            index: 40,
            len: 4
        }
    );

    let mut plan = sample_plan();
    gate_of(&mut plan, APPROVAL).filter =
        Some(leaf(PredicateOp::Eq, Some(ValueTemplate::Const(99))));
    assert_eq!(
        kind_of(plan),
        K::IndexOutOfRange {
            what: "constant",
            index: 99,
            len: 8
        }
    );

    let mut plan = sample_plan();
    plan.levels[0].triggers[0].source.file = 9;
    let error = refused(plan);
    assert!(matches!(
        error.location,
        Location::Trigger { trigger: 0, .. }
    ));
    assert_eq!(
        error.kind,
        K::IndexOutOfRange {
            what: "source file",
            index: 9,
            len: 4
        }
    );
}

// Graph.

#[test]
fn next_lists_a_step_once() {
    let mut plan = sample_plan();
    main_step(&mut plan, START).next = vec![CHECK, CHECK];
    assert_eq!(
        kind_of(plan),
        K::Duplicate {
            what: "next step",
            name: "check".to_owned()
        }
    );
}

#[test]
fn predecessors_are_exactly_the_steps_with_an_edge_in() {
    let mut plan = sample_plan();
    main_step(&mut plan, WAIT).predecessors.pop();
    let error = refused(plan);
    assert!(at_step(MAIN, WAIT)(&error.location));
    assert_eq!(
        error.kind,
        K::Predecessors {
            declared: vec![NOTIFY, APPROVAL, DEV],
            actual: vec![NOTIFY, APPROVAL, DEV, ITERATE]
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, DONE).predecessors.insert(0, START);
    assert!(matches!(kind_of(plan), K::Predecessors { .. }));

    let mut plan = sample_plan();
    main_step(&mut plan, WAIT).predecessors.reverse();
    assert_eq!(
        kind_of(plan),
        K::NotSorted {
            what: "predecessors"
        }
    );

    // The timeout route of a gate is an edge too.
    let mut plan = sample_plan();
    gate_of(&mut plan, APPROVAL).on_timeout = OnTimeout::Skip;
    main_step(&mut plan, APPROVAL)
        .branches
        .retain(|(h, _)| h != "default");
    main_step(&mut plan, APPROVAL)
        .branches
        .push(("default".to_owned(), WAIT));
    let error = refused(plan);
    assert!(at_step(MAIN, DONE)(&error.location));
    assert!(matches!(error.kind, K::Predecessors { .. }));
}

#[test]
fn no_edge_leads_into_a_trigger_step() {
    let mut plan = sample_plan();
    main_step(&mut plan, NOTIFY).next.push(TICK);
    link(&mut plan.levels[0]);
    let error = refused(plan);
    assert!(at_step(MAIN, TICK)(&error.location));
    assert_eq!(
        error.kind,
        K::TriggerHasPredecessor {
            from: "notify".to_owned()
        }
    );
}

#[test]
fn a_level_has_no_cycle() {
    let mut plan = sample_plan();
    main_step(&mut plan, DONE).next = vec![NOTIFY];
    link(&mut plan.levels[0]);
    let error = refused(plan);
    let K::Cycle { steps } = error.kind else {
        panic!("expected a cycle, got {error}");
    };
    // notify → wait → done → notify, from wherever the walk entered it.
    assert_eq!(steps.len(), 4);
    assert_eq!(steps.first(), steps.last());
    let mut members: Vec<&str> = steps[..3].iter().map(String::as_str).collect();
    members.sort();
    assert_eq!(members, ["done", "notify", "wait"]);
    let at = steps.iter().position(|s| s == "notify").expect("notify");
    assert_eq!(
        steps[(at + 1) % 3],
        "wait",
        "the cycle is listed in edge order: {steps:?}"
    );

    let mut plan = sample_plan();
    main_step(&mut plan, DONE).next = vec![DONE];
    link(&mut plan.levels[0]);
    assert_eq!(
        kind_of(plan),
        K::Cycle {
            steps: vec!["done".to_owned(), "done".to_owned()]
        }
    );
}

#[test]
fn every_step_is_reachable_from_a_trigger_step() {
    let mut plan = sample_plan();
    // `iterate` is reached only through triage's default branch.
    main_step(&mut plan, TRIAGE)
        .branches
        .retain(|(h, _)| h != "default");
    main_step(&mut plan, TRIAGE).default = Some(DefaultRoute::Case("bug".to_owned()));
    link(&mut plan.levels[0]);
    let error = refused(plan);
    assert!(at_step(MAIN, ITERATE)(&error.location));
    assert_eq!(error.kind, K::Unreachable);
    assert!(
        error
            .to_string()
            .contains("step 7 (`iterate`): no trigger step reaches this step")
    );
}

// Step kinds and verbs.

#[test]
fn a_step_kind_matches_its_verb_kind() {
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).kind = StepKind::Condition { verb: ACTION_VERB };
    assert_eq!(
        kind_of(plan),
        K::VerbKind {
            verb: "linear@1:linear.issue.update".to_owned(),
            found: VerbKind::Action,
            expected: VerbKind::Condition
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, DONE).kind = StepKind::Action { verb: TRIGGER_VERB };
    assert!(matches!(
        kind_of(plan),
        K::VerbKind {
            found: VerbKind::Trigger,
            expected: VerbKind::Action,
            ..
        }
    ));

    let mut plan = sample_plan();
    let StepKind::Gate { verb, .. } = &mut main_step(&mut plan, APPROVAL).kind else {
        unreachable!()
    };
    *verb = Some(SWITCH_VERB);
    assert!(matches!(
        kind_of(plan),
        K::VerbKind {
            found: VerbKind::Condition,
            expected: VerbKind::Gate,
            ..
        }
    ));
}

// Routing.

#[test]
fn a_boolean_condition_branches_on_yes_and_no() {
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).branches[1].0 = "maybe".to_owned();
    let error = refused(plan);
    assert!(at_step(MAIN, CHECK)(&error.location));
    assert_eq!(
        error.kind,
        K::UnknownHandle {
            handle: "maybe".to_owned(),
            allowed: vec!["yes".to_owned(), "no".to_owned()]
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).branches[1].0 = "default".to_owned();
    assert!(matches!(kind_of(plan), K::UnknownHandle { .. }));

    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).default = Some(DefaultRoute::Case("yes".to_owned()));
    assert_eq!(kind_of(plan), K::DefaultNotAllowed);

    // One handle left unrouted is allowed: that path just ends.
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).branches[1].1 = TRIAGE;
    link(&mut plan.levels[0]);
    let kind = kind_of(plan);
    assert_eq!(
        kind,
        K::Unreachable,
        "only `notify` becomes unreachable, the routing is fine"
    );
}

#[test]
fn a_switch_branches_on_its_cases() {
    let mut plan = sample_plan();
    main_step(&mut plan, TRIAGE).branches[0].0 = "bugs".to_owned();
    let K::UnknownHandle { handle, allowed } = kind_of(plan) else {
        panic!("expected an unknown handle");
    };
    assert_eq!(handle, "bugs");
    assert_eq!(allowed, ["bug", "feature", "question", "default"]);

    let mut plan = sample_plan();
    main_step(&mut plan, TRIAGE).default = Some(DefaultRoute::Case("chore".to_owned()));
    assert_eq!(
        kind_of(plan),
        K::DefaultCaseUnknown {
            case: "chore".to_owned()
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, TRIAGE).branches[2].0 = "question".to_owned();
    assert_eq!(kind_of(plan), K::DefaultBranchMissing);

    // Without a default handle every case needs a branch; a `default`
    // branch alone is never taken.
    let mut plan = sample_plan();
    main_step(&mut plan, TRIAGE).default = None;
    assert_eq!(
        kind_of(plan),
        K::HandlesNotCovered {
            handles: vec!["question".to_owned()]
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, TRIAGE).default = None;
    main_step(&mut plan, TRIAGE).branches[2].0 = "question".to_owned();
    verify(plan).expect("every case has a branch");
}

#[test]
fn a_handle_is_branched_once() {
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).branches[1].0 = "yes".to_owned();
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("branches"));
    assert_eq!(
        error.kind,
        K::Duplicate {
            what: "handle",
            name: "yes".to_owned()
        }
    );
}

#[test]
fn a_gate_with_handles_covers_them_or_has_a_default() {
    let mut plan = sample_plan();
    main_step(&mut plan, APPROVAL)
        .branches
        .retain(|(h, _)| h != "default");
    link(&mut plan.levels[0]);
    assert_eq!(
        kind_of(plan),
        K::HandlesNotCovered {
            handles: vec!["failed".to_owned(), "timeout".to_owned()]
        }
    );

    let mut plan = sample_plan();
    main_step(&mut plan, APPROVAL).branches[0].0 = "approved".to_owned();
    assert!(matches!(kind_of(plan), K::UnknownHandle { .. }));
}

#[test]
fn routing_steps_do_not_use_next() {
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).next = vec![DONE];
    link(&mut plan.levels[0]);
    assert_eq!(kind_of(plan), K::NextOnRoutingStep);

    let mut plan = sample_plan();
    main_step(&mut plan, APPROVAL).next = vec![WAIT];
    link(&mut plan.levels[0]);
    assert_eq!(kind_of(plan), K::NextOnRoutingStep);
}

#[test]
fn steps_without_handles_do_not_branch() {
    for ix in [START, NOTIFY, DEV, ITERATE, WAIT] {
        let mut plan = sample_plan();
        main_step(&mut plan, ix)
            .branches
            .push(("yes".to_owned(), DONE));
        link(&mut plan.levels[0]);
        let error = refused(plan);
        assert!(at_step(MAIN, ix)(&error.location), "{error}");
        assert_eq!(error.kind, K::NoHandles);
    }
    let mut plan = sample_plan();
    main_step(&mut plan, NOTIFY).default = Some(DefaultRoute::Branch);
    assert_eq!(kind_of(plan), K::DefaultNotAllowed);
}

// Groups and loops.

#[test]
fn groups_and_loops_do_not_run_the_workflow_level() {
    let mut plan = sample_plan();
    main_step(&mut plan, DEV).kind = StepKind::Group { level: MAIN };
    assert_eq!(kind_of(plan), K::RunsMainLevel);
}

#[test]
fn levels_do_not_run_each_other_in_a_cycle() {
    // Level 2 runs level 1; make level 1 run level 2.
    let mut plan = sample_plan();
    plan.levels[1].steps[1].next = vec![2];
    plan.levels[1]
        .steps
        .push(step("back", StepKind::Group { level: LOOP_LEVEL }));
    link(&mut plan.levels[1]);
    let error = refused(plan);
    assert_eq!(
        error.kind,
        K::LevelCycle {
            levels: vec![
                "groups/dev.yaml@1".into(),
                "groups/loop.yaml@1".into(),
                "groups/dev.yaml@1".into()
            ]
        }
    );
    assert!(matches!(error.location, Location::Step { .. }));

    let mut plan = sample_plan();
    let nested = plan.levels[2].steps.len() - 1;
    plan.levels[2].steps[nested].kind = StepKind::Group { level: LOOP_LEVEL };
    let error = refused(plan);
    assert!(at_step(LOOP_LEVEL, nested as StepIx)(&error.location));
    assert_eq!(
        error.kind,
        K::LevelCycle {
            levels: vec!["groups/loop.yaml@1".into(), "groups/loop.yaml@1".into()]
        }
    );
}

#[test]
fn a_loop_runs_at_least_once() {
    let mut plan = sample_plan();
    let StepKind::Loop { max_iterations, .. } = &mut main_step(&mut plan, ITERATE).kind else {
        unreachable!()
    };
    *max_iterations = 0;
    assert_eq!(kind_of(plan), K::ZeroIterations);
}

// Predicates and templates.

fn set_filter(plan: &mut Plan, filter: Predicate) {
    gate_of(plan, APPROVAL).filter = Some(filter);
}

#[test]
fn predicates_nest_at_most_five_deep() {
    let deep = |depth: usize| {
        let mut predicate = leaf(PredicateOp::Exists, None);
        for _ in 1..depth {
            predicate = Predicate::All(vec![predicate]);
        }
        predicate
    };
    let mut plan = sample_plan();
    set_filter(&mut plan, deep(5));
    verify(plan).expect("depth 5 is allowed");
    let mut plan = sample_plan();
    set_filter(&mut plan, deep(6));
    let error = refused(plan);
    assert!(at_step(MAIN, APPROVAL)(&error.location));
    assert_eq!(
        error.kind,
        K::TooDeep {
            what: "predicates",
            limit: 5
        }
    );
    // Far deeper is refused the same way, without walking all of it.
    let mut plan = sample_plan();
    set_filter(&mut plan, deep(5_000));
    assert_eq!(
        kind_of(plan),
        K::TooDeep {
            what: "predicates",
            limit: 5
        }
    );
}

#[test]
fn predicates_have_at_most_32_leaves() {
    let leaves =
        |n: usize| Predicate::Any((0..n).map(|_| leaf(PredicateOp::Exists, None)).collect());
    let mut plan = sample_plan();
    set_filter(&mut plan, leaves(32));
    verify(plan).expect("32 leaves are allowed");
    let mut plan = sample_plan();
    let StepKind::Loop { until, .. } = &mut main_step(&mut plan, ITERATE).kind else {
        unreachable!()
    };
    *until = Some(leaves(33));
    let error = refused(plan);
    assert!(at_step(MAIN, ITERATE)(&error.location));
    assert_eq!(error.kind, K::TooManyLeaves { limit: 32 });
}

#[test]
fn only_exists_goes_without_a_value() {
    let mut plan = sample_plan();
    set_filter(
        &mut plan,
        leaf(PredicateOp::Exists, Some(ValueTemplate::Const(0))),
    );
    assert_eq!(kind_of(plan), K::ExistsWithValue);
    let mut plan = sample_plan();
    set_filter(&mut plan, leaf(PredicateOp::Prefix, None));
    let error = refused(plan);
    assert_eq!(
        error.kind,
        K::MissingPredicateValue {
            op: PredicateOp::Prefix
        }
    );
    assert!(
        error
            .to_string()
            .ends_with("a `prefix` predicate needs a value")
    );
}

#[test]
fn templates_nest_at_most_128_deep() {
    let deep = |depth: usize| {
        let mut template = ValueTemplate::Const(0);
        for _ in 1..depth {
            template = ValueTemplate::List(vec![template]);
        }
        template
    };
    let mut plan = sample_plan();
    main_step(&mut plan, DONE).inputs[0].1 = deep(128);
    verify(plan).expect("depth 128 is allowed");
    let mut plan = sample_plan();
    main_step(&mut plan, DONE).inputs[0].1 = deep(129);
    assert_eq!(
        kind_of(plan),
        K::TooDeep {
            what: "value templates",
            limit: 128
        }
    );
    let mut plan = sample_plan();
    main_step(&mut plan, DONE).inputs[0].1 = deep(3_000);
    assert_eq!(
        kind_of(plan),
        K::TooDeep {
            what: "value templates",
            limit: 128
        }
    );
}

// Policies.

fn retry(plan: &mut Plan) -> &mut RetryPolicy {
    main_step(plan, NOTIFY)
        .retry
        .as_mut()
        .expect("the sample's `notify` retries")
}

#[test]
fn a_retry_policy_allows_an_attempt_and_backs_off_sanely() {
    let mut plan = sample_plan();
    retry(&mut plan).max_attempts = 0;
    let error = refused(plan);
    assert_eq!(error.part.as_deref(), Some("retry"));
    assert_eq!(error.kind, K::ZeroAttempts);

    for factor in [0.5, f64::NAN, f64::INFINITY, -2.0] {
        let mut plan = sample_plan();
        retry(&mut plan).factor = factor.to_bits();
        assert_eq!(
            kind_of(plan),
            K::BadBackoffFactor {
                bits: factor.to_bits()
            }
        );
    }
    let mut plan = sample_plan();
    retry(&mut plan).factor = 1.0f64.to_bits();
    verify(plan).expect("a constant backoff is fine");
}

#[test]
fn retry_and_timeouts_apply_to_actions_and_gates() {
    let policy = sample_plan().levels[0].steps[NOTIFY as usize].retry.clone();
    let mut plan = sample_plan();
    main_step(&mut plan, CHECK).retry = policy;
    assert_eq!(kind_of(plan), K::PolicyNotAllowed { policy: "retry" });
    let mut plan = sample_plan();
    main_step(&mut plan, DEV).timeout_ms = Some(5);
    assert_eq!(
        kind_of(plan),
        K::PolicyNotAllowed {
            policy: "timeoutMs"
        }
    );
    let mut plan = sample_plan();
    main_step(&mut plan, WAIT).retry = sample_plan().levels[0].steps[NOTIFY as usize].retry.clone();
    verify(plan).expect("a gate may retry");
}

#[test]
fn timeouts_are_positive() {
    let mut plan = sample_plan();
    main_step(&mut plan, NOTIFY).timeout_ms = Some(0);
    assert_eq!(kind_of(plan), K::ZeroTimeout);
    let mut plan = sample_plan();
    gate_of(&mut plan, WAIT).timeout_ms = Some(0);
    assert_eq!(kind_of(plan), K::ZeroTimeout);
}
