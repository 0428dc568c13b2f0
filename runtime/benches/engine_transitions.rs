//! Engine throughput, measured without a harness (`cargo bench -p
//! donmai-runtime --bench engine_transitions`): step transitions per second
//! on 1,000-step workflows (a chain and a fan-out/join) with inline verbs
//! batched into one commit per run and with every call committed on its
//! own, and the time to resume 10,000 unfinished runs.
//!
//! A transition is one state change the engine persists, i.e. one run
//! event (`step.started`, `step.completed`, …).

use donmai_runtime::clock::VirtualClock;
use donmai_runtime::engine::{Engine, Takeover};
use donmai_runtime::exec::{CoreExecutor, VerbExecutor};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::Store;
use donmai_runtime::store::memory::MemoryStore;
use donmai_stdlib::value::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEPS: usize = 1_000;

fn plan(shape: Shape) -> Arc<Plan> {
    let mut constants = vec![Constant::String("x".into())];
    constants.push(Constant::Int(1));
    let verbs = vec![
        VerbRef {
            plugin: "core".into(),
            major: 1,
            verb: "core.set".into(),
            kind: VerbKind::Action,
            side_effect: SideEffect::InternalOnly,
            required_inputs: vec!["values".into()],
            route_by: None,
            handles: vec![],
            events: vec![],
            idempotency_key: None,
        },
        VerbRef {
            plugin: "bench".into(),
            major: 1,
            verb: "bench.write".into(),
            kind: VerbKind::Action,
            side_effect: SideEffect::ExternalWrite,
            required_inputs: vec![],
            route_by: None,
            handles: vec![],
            events: vec![],
            idempotency_key: None,
        },
    ];
    let verb = match shape {
        Shape::Chain | Shape::FanOut => 0,
        Shape::ExternalChain => 1,
    };
    let step = |id: String, kind: StepKind| StepDef {
        id,
        kind,
        inputs: vec![(
            "values".into(),
            ValueTemplate::Map(vec![("x".into(), ValueTemplate::Const(1))]),
        )],
        next: vec![],
        branches: vec![],
        default: None,
        retry: None,
        timeout_ms: None,
        predecessors: vec![],
        source: SourceRef::default(),
    };
    let mut steps = vec![step("start".into(), StepKind::Trigger { trigger: 0 })];
    for i in 1..STEPS {
        steps.push(step(format!("s{i}"), StepKind::Action { verb }));
    }
    match shape {
        Shape::Chain | Shape::ExternalChain => {
            for i in 1..STEPS {
                steps[i - 1].next.push(i as StepIx);
                steps[i].predecessors.push((i - 1) as StepIx);
            }
        }
        Shape::FanOut => {
            let join = STEPS - 1;
            for i in 1..join {
                steps[0].next.push(i as StepIx);
                steps[i].predecessors.push(0);
                steps[i].next.push(join as StepIx);
                steps[join].predecessors.push(i as StepIx);
            }
        }
    }
    Arc::new(Plan {
        header: Header {
            format_version: FORMAT_VERSION,
            api_version: "workflow/v2".into(),
            name: "bench".into(),
            version: None,
            project: None,
            requires: vec![],
        },
        constants,
        verbs,
        exprs: vec![],
        levels: vec![Level {
            name: "main".into(),
            inputs: vec![],
            outputs: vec![],
            triggers: vec![TriggerDef {
                id: "start".into(),
                kind: TriggerKind::Manual,
                event_type: None,
                schedule: None,
                timezone: None,
                fields: vec![],
                source: SourceRef::default(),
            }],
            steps,
        }],
        sources: vec![],
    })
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Chain,
    FanOut,
    ExternalChain,
}

/// Answers every call at once; not inline, so each call commits its intent
/// and its result around it.
struct External;

impl VerbExecutor for External {
    fn execute(
        &self,
        call: &donmai_runtime::exec::VerbCall<'_>,
    ) -> Result<donmai_runtime::exec::VerbOutcome, donmai_runtime::exec::ExecError> {
        Ok(donmai_runtime::exec::VerbOutcome::output(
            call.input.clone(),
        ))
    }
}

fn engine(plan: Arc<Plan>, store: Arc<dyn Store>, external: bool) -> Engine {
    let executor: Arc<dyn VerbExecutor> = if external {
        Arc::new(External)
    } else {
        Arc::new(CoreExecutor::default())
    };
    Engine::new(
        plan,
        [1; 32],
        store,
        executor,
        Arc::new(VirtualClock::default()),
    )
    .unwrap()
}

fn measure(shape: Shape, runs: usize) {
    let plan = plan(shape);
    let external = matches!(shape, Shape::ExternalChain);
    let mut transitions = 0;
    let mut commits = 0;
    let mut elapsed = Duration::ZERO;
    for _ in 0..runs {
        // A fresh store per run: the in-memory store copies its tables on
        // every write transaction, which would otherwise dominate.
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut engine = engine(plan.clone(), store, external);
        let started = Instant::now();
        engine.start_run("start", Value::Null).unwrap();
        let idle = engine.drive_until_idle().unwrap();
        elapsed += started.elapsed();
        assert_eq!(idle.active_runs, 0);
        transitions += engine.stats().transitions;
        commits += engine.stats().commits;
    }
    let secs = elapsed.as_secs_f64();
    println!(
        "{shape:?}: {runs} runs of {STEPS} steps in {:.1} ms: {:.0} transitions/s, {:.0} steps/s, {:.2} ms per run, {} commits per run",
        secs * 1e3,
        transitions as f64 / secs,
        (runs * STEPS) as f64 / secs,
        secs * 1e3 / runs as f64,
        commits / runs as u64,
    );
}

fn resume(runs: usize) {
    // start → wait (core.wait, 1 h): every run stays unfinished.
    let mut plan = Arc::unwrap_or_clone(plan(Shape::Chain));
    plan.verbs.push(VerbRef {
        plugin: "core".into(),
        major: 1,
        verb: "core.wait".into(),
        kind: VerbKind::Action,
        side_effect: SideEffect::ReadOnly,
        required_inputs: vec![],
        route_by: None,
        handles: vec![],
        events: vec![],
        idempotency_key: None,
    });
    plan.constants.push(Constant::Int(3_600_000));
    let level = &mut plan.levels[0];
    level.steps.truncate(3);
    level.steps[1].kind = StepKind::Action { verb: 2 };
    level.steps[1].inputs = vec![("durationMs".into(), ValueTemplate::Const(2))];
    level.steps[2].next.clear();
    let plan = Arc::new(plan);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut first = engine(plan.clone(), store.clone(), false);
    let started = Instant::now();
    for _ in 0..runs {
        first.start_run("start", Value::Null).unwrap();
    }
    first.drive_until_idle().unwrap();
    let create = started.elapsed();
    drop(first);
    let mut second = engine(plan, store, false);
    let started = Instant::now();
    let taken = second.resume(Takeover::Any).unwrap();
    let idle = second.drive_until_idle().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(taken.len(), runs);
    assert_eq!(idle.active_runs, runs);
    println!(
        "resume: {runs} unfinished runs reloaded and continued in {:.1} ms ({:.1} µs per run; creating them took {:.1} ms)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / runs as f64,
        create.as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    for shape in [Shape::Chain, Shape::FanOut] {
        measure(shape, 3);
        measure(shape, 20);
    }
    measure(Shape::ExternalChain, 5);
    resume(10_000);
}
