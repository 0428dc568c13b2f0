//! Engine throughput, measured without a harness (`cargo bench -p
//! donmai-runtime --bench engine_transitions [-- FILTER...]`).
//!
//! Rows: step transitions per second on 1,000-step workflows — a chain and
//! a fan-out/join, with constant inputs and with inputs piped from the
//! previous step (`{{ nodes.<prev>.output.x }}`, compiled by hand to the
//! bytecode the compiler emits for it) — on the in-memory store and on the
//! durable heed (LMDB) store; chains of calls with an external effect (each
//! call's intent committed before it is made), one run alone and several
//! runs at once; and the time to resume 10,000 unfinished runs from heed.
//!
//! A transition is one state change the engine persists, i.e. one run event
//! (`run.started`, `step.started`, `step.completed`, …). A run is timed from
//! `start_run` to the end of `drive_until_idle`, commits included; the
//! figure printed is the median run (and the best), after one warm-up run.
//!
//! The heed stores live in a temporary directory under `DONMAI_BENCH_DIR`
//! (default: the system temporary directory), which must be on a real disk
//! for the durable figures to mean anything: on tmpfs an fsync is free.

use donmai_runtime::bytecode::{FieldRef, Instruction};
use donmai_runtime::clock::VirtualClock;
use donmai_runtime::engine::{Engine, Takeover};
use donmai_runtime::exec::{CoreExecutor, ExecError, VerbCall, VerbExecutor, VerbOutcome};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::lmdb::HeedStore;
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::store::{Store, Table};
use donmai_runtime::verify::VerifiedPlan;
use donmai_stdlib::value::{MapEntries, MapKey, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEPS: usize = 1_000;
const RESUMED_RUNS: usize = 10_000;
const RESUME_REPEATS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// start → s1 → … → s999.
    Chain,
    /// start → s1 … s998 → join.
    FanOut,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inputs {
    /// `values: {x: 1}`.
    Constant,
    /// `values: {x: {{ nodes.<predecessor>.output.x }}}`; the join of a
    /// fan-out reads its first branch.
    Piped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// `core.set`: inline, no effect outside the run.
    Inline,
    /// A verb with an external effect: its intent is committed before the
    /// call and its result after it.
    External,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Memory,
    Heed,
}

impl StoreKind {
    fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Heed => "heed",
        }
    }
}

/// Index of string constant `text`, added when missing.
fn string(constants: &mut Vec<Constant>, text: &str) -> u32 {
    let constant = Constant::String(text.into());
    match constants.iter().position(|c| *c == constant) {
        Some(ix) => ix as u32,
        None => {
            constants.push(constant);
            (constants.len() - 1) as u32
        }
    }
}

/// `nodes.<step>.output.x`, as the code generator emits it: one fused
/// root load with its field path.
fn piped_expr(constants: &mut Vec<Constant>, step: &str) -> ExprCode {
    let field = |constants: &mut Vec<Constant>, name: &str| FieldRef {
        name: string(constants, name),
        optional: false,
    };
    let program = [
        Instruction::LoadRootPath {
            root: string(constants, "nodes"),
            fields: vec![
                field(constants, step),
                field(constants, "output"),
                field(constants, "x"),
            ],
        },
        Instruction::Return,
    ];
    let mut code = Vec::new();
    let mut spans = Vec::new();
    for (i, instruction) in program.iter().enumerate() {
        spans.push((
            code.len() as u32,
            SourceRef {
                file: 0,
                start: i as u32,
                end: i as u32 + 1,
            },
        ));
        instruction.encode(1, &mut code);
    }
    ExprCode {
        code,
        max_stack: 1,
        locals: 0,
        result_type: "dyn".into(),
        source: SourceRef::default(),
        spans,
    }
}

fn verb(plugin: &str, name: &str, side_effect: SideEffect) -> VerbRef {
    VerbRef {
        plugin: plugin.into(),
        major: 1,
        verb: name.into(),
        kind: VerbKind::Action,
        side_effect,
        required_inputs: vec![],
        route_by: None,
        route_cases: Vec::new(),
        handles: vec![],
        events: vec![],
        idempotency_key: None,
    }
}

fn plan(shape: Shape, inputs: Inputs, effect: Effect, steps: usize) -> Plan {
    let mut constants = vec![Constant::Int(1)];
    let mut exprs = Vec::new();
    let verbs = vec![
        verb("core", "core.set", SideEffect::InternalOnly),
        verb("bench", "bench.write", SideEffect::ExternalWrite),
    ];
    let verb = match effect {
        Effect::Inline => 0,
        Effect::External => 1,
    };
    let ids: Vec<String> = (0..steps)
        .map(|i| match (i, shape) {
            (0, _) => "start".to_string(),
            (i, Shape::FanOut) if i == steps - 1 => "join".to_string(),
            (i, _) => format!("s{i}"),
        })
        .collect();
    let mut defs: Vec<StepDef> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| StepDef {
            id: id.clone(),
            kind: if i == 0 {
                StepKind::Trigger { trigger: 0 }
            } else {
                StepKind::Action { verb }
            },
            inputs: vec![],
            next: vec![],
            branches: vec![],
            default: None,
            retry: None,
            timeout_ms: None,
            predecessors: vec![],
            source: SourceRef::default(),
        })
        .collect();
    let edge = |defs: &mut Vec<StepDef>, from: usize, to: usize| {
        defs[from].next.push(to as StepIx);
        defs[to].predecessors.push(from as StepIx);
    };
    match shape {
        Shape::Chain => (1..steps).for_each(|i| edge(&mut defs, i - 1, i)),
        Shape::FanOut => {
            for i in 1..steps - 1 {
                edge(&mut defs, 0, i);
                edge(&mut defs, i, steps - 1);
            }
        }
    }
    for i in 1..steps {
        let x = match inputs {
            Inputs::Constant => ValueTemplate::Const(0),
            Inputs::Piped => {
                let source = match shape {
                    Shape::Chain => &ids[i - 1],
                    Shape::FanOut if i == steps - 1 => &ids[1],
                    Shape::FanOut => &ids[0],
                };
                exprs.push(piped_expr(&mut constants, source));
                ValueTemplate::Expr((exprs.len() - 1) as ExprIx)
            }
        };
        defs[i].inputs = vec![("values".into(), ValueTemplate::Map(vec![("x".into(), x)]))];
    }
    Plan {
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
        exprs,
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
            steps: defs,
        }],
        sources: vec![SourceFileRef {
            path: "bench.yaml".into(),
            sha256: [0; 32],
        }],
    }
}

/// Answers every call at once with its input; not inline, so each call's
/// intent is committed before it and its result after it.
struct External;

impl VerbExecutor for External {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        Ok(VerbOutcome::output(call.input_field("values")))
    }
}

fn new_engine(plan: Arc<VerifiedPlan>, store: Arc<dyn Store>) -> Engine {
    let executor: Arc<dyn VerbExecutor> = Arc::new(Composite(CoreExecutor::default()));
    Engine::new(plan, store, executor, Arc::new(VirtualClock::default())).unwrap()
}

/// The core verbs, and `bench.write` as an external call.
struct Composite(CoreExecutor);

impl VerbExecutor for Composite {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        if call.verb.plugin == "bench" {
            External.execute(call)
        } else {
            self.0.execute(call)
        }
    }

    fn is_inline(&self, verb: &VerbRef) -> bool {
        self.0.is_inline(verb)
    }
}

/// A store of `kind`; a heed store keeps its directory alive with it.
struct BenchStore {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("DONMAI_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("a temporary directory for the heed store")
}

fn open_store(kind: StoreKind) -> BenchStore {
    match kind {
        StoreKind::Memory => BenchStore {
            store: Arc::new(MemoryStore::new()),
            _dir: None,
        },
        StoreKind::Heed => {
            let dir = bench_dir();
            let store = HeedStore::open(dir.path()).expect("the heed store opens");
            BenchStore {
                store: Arc::new(store),
                _dir: Some(dir),
            }
        }
    }
}

fn payload() -> Value {
    let mut entries = MapEntries::new();
    entries.insert(MapKey::from("x"), Value::Int(1));
    Value::map(entries)
}

struct Row {
    label: String,
    /// `concurrent` runs at a time, `rounds` times (plus a warm-up round).
    rounds: usize,
    concurrent: usize,
}

/// On-CPU time of the calling thread (`/proc/thread-self/schedstat`), which
/// the other processes of a loaded machine do not inflate the way they
/// inflate wall time. `None` where the kernel does not tell.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Minor page faults of the process so far (`/proc/self/stat`, field 10):
/// fresh memory the kernel had to zero.
fn minor_faults() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it do not.
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(7)?.parse().ok()
}

struct Round {
    wall: Duration,
    cpu: Option<Duration>,
    transitions: u64,
    commits: u64,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Runs `row.rounds` rounds of `row.concurrent` runs — on one heed store,
/// on a fresh in-memory store each round — and prints the median and best round by wall time, and the mean by CPU
/// time.
fn measure(row: Row, plan: &Plan, kind: StoreKind, steps: usize) {
    let plan = Arc::new(donmai_runtime::verify::verify(plan.clone()).expect("the plan verifies"));
    let mut store = open_store(kind);
    let mut engine = new_engine(plan.clone(), store.store.clone());
    let mut rounds: Vec<Round> = Vec::new();
    for round in 0..=row.rounds {
        if kind == StoreKind::Memory && round > 0 {
            // Everything stays in memory: a store that grew over all rounds
            // would measure the kernel handing it fresh pages.
            drop(engine);
            store = open_store(kind);
            engine = new_engine(plan.clone(), store.store.clone());
        }
        let before = engine.stats();
        let cpu_before = thread_cpu();
        let started = Instant::now();
        for _ in 0..row.concurrent {
            engine.start_run("start", payload()).unwrap();
        }
        let idle = engine.drive_until_idle().unwrap();
        let wall = started.elapsed();
        let cpu = thread_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        assert_eq!(idle.active_runs, 0, "every run ends");
        let after = engine.stats();
        if round > 0 {
            rounds.push(Round {
                wall,
                cpu,
                transitions: after.transitions - before.transitions,
                commits: after.commits - before.commits,
            });
        }
    }
    let transitions = rounds[0].transitions;
    let commits = rounds[0].commits;
    assert!(
        rounds
            .iter()
            .all(|r| r.transitions == transitions && r.commits == commits),
        "every round does the same work"
    );
    let wall = median(rounds.iter().map(|r| r.wall).collect());
    let best = rounds.iter().map(|r| r.wall).min().unwrap_or(wall);
    // Over all rounds: the kernel may count CPU time in scheduler ticks,
    // too coarse for one round.
    let cpu = rounds
        .iter()
        .map(|r| r.cpu)
        .sum::<Option<Duration>>()
        .map(|total| total / rounds.len() as u32);
    let rate = |elapsed: Duration| transitions as f64 / elapsed.as_secs_f64();
    println!(
        "{:<26} {:>6} {:>3}×{:<5} {:>9.1} ms {:>9.0}/s {:>9.0}/s {:>9} {:>6} {:>7}",
        row.label,
        kind.name(),
        row.concurrent,
        steps,
        wall.as_secs_f64() * 1e3,
        rate(wall),
        rate(best),
        cpu.map_or("-".to_string(), |cpu| format!("{:.0}/s", rate(cpu))),
        transitions,
        commits,
    );
}

/// start → wait (`core.wait`, one hour) → done: every run stays unfinished
/// at the wait.
fn waiting_plan() -> Plan {
    let mut plan = plan(Shape::Chain, Inputs::Constant, Effect::Inline, 3);
    plan.verbs
        .push(verb("core", "core.wait", SideEffect::ReadOnly));
    plan.constants.push(Constant::Int(3_600_000));
    let wait_verb = (plan.verbs.len() - 1) as VerbIx;
    let duration = (plan.constants.len() - 1) as u32;
    let wait = &mut plan.levels[0].steps[1];
    wait.kind = StepKind::Action { verb: wait_verb };
    wait.inputs = vec![("durationMs".into(), ValueTemplate::Const(duration))];
    plan
}

/// Creates `runs` runs waiting on a timer in the heed store, then resumes
/// them all with a fresh engine (as after a restart) and drives it until
/// idle.
fn resume(runs: usize) {
    let plan = Arc::new(donmai_runtime::verify::verify(waiting_plan()).expect("the plan verifies"));
    // The runs are made on the in-memory store and copied over in a few
    // large transactions: starting them one by one on heed would cost a
    // synced commit each, which is the start path, not the resume.
    let staging: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut first = new_engine(plan.clone(), staging.clone());
    for _ in 0..runs {
        first.start_run("start", payload()).unwrap();
    }
    assert_eq!(first.drive_until_idle().unwrap().active_runs, runs);
    drop(first);
    let heed = open_store(StoreKind::Heed);
    let mut copied = 0usize;
    for &table in Table::ALL {
        let mut entries = Vec::new();
        staging
            .read(&mut |txn| {
                entries = donmai_runtime::store::scan_all(txn, table, b"")?;
                Ok(())
            })
            .unwrap();
        for chunk in entries.chunks(50_000) {
            heed.store
                .write(&mut |txn| {
                    for (key, value) in chunk {
                        txn.put(table, key, value)?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        copied += entries.len();
    }
    // The first takeover is the one a restarted process makes; the later
    // ones (each by a fresh engine, from the previous one's leases) show
    // the same work with the allocator warm.
    let mut cold = None;
    let mut warm = Vec::new();
    for attempt in 0..=RESUME_REPEATS {
        let mut engine = new_engine(plan.clone(), heed.store.clone());
        let faults_before = minor_faults();
        let cpu_before = thread_cpu();
        let started = Instant::now();
        let taken = engine.resume(Takeover::Any).unwrap();
        let idle = engine.drive_until_idle().unwrap();
        let wall = started.elapsed();
        let cpu = thread_cpu()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        assert_eq!(taken.len(), runs);
        assert_eq!(idle.active_runs, runs);
        assert!(idle.next_timer_ms.is_some());
        let faults = minor_faults()
            .zip(faults_before)
            .map(|(after, before)| after - before);
        if attempt == 0 {
            cold = Some((wall, cpu, faults));
        } else {
            warm.push(wall);
        }
    }
    let show_cpu = |cpu: Option<Duration>| {
        cpu.map_or("-".to_string(), |cpu| {
            format!("{:.1} ms", cpu.as_secs_f64() * 1e3)
        })
    };
    let (cold_wall, cold_cpu, cold_faults) = cold.expect("one takeover at least");
    let warm = median(warm);
    println!(
        "resume (heed): {runs} unfinished runs ({copied} records) claimed, reloaded and idle: first takeover {:.1} ms ({:.1} µs per run, CPU {}, {} page faults); median of {RESUME_REPEATS} more {:.1} ms ({:.1} µs per run)",
        cold_wall.as_secs_f64() * 1e3,
        cold_wall.as_secs_f64() * 1e6 / runs as f64,
        show_cpu(cold_cpu),
        cold_faults.map_or("-".to_string(), |n| n.to_string()),
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e6 / runs as f64,
    );
}

fn main() {
    // `cargo bench -- NAME...` runs the rows whose label contains a NAME
    // (`chain`, `fanout`, `piped`, `const`, `external`, `memory`, `heed`,
    // `resume`); cargo also passes `--bench`.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted =
        |label: &str| filter.is_empty() || filter.iter().all(|f| label.contains(f.as_str()));
    println!(
        "{:<26} {:>6} {:>9} {:>12} {:>11} {:>11} {:>9} {:>6} {:>7}",
        "workflow",
        "store",
        "runs×steps",
        "wall/round",
        "wall rate",
        "best rate",
        "cpu rate",
        "events",
        "commits"
    );
    // `DONMAI_BENCH_ROUNDS` caps the rounds of every row (for slow builds).
    let cap: usize = std::env::var("DONMAI_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
        .max(1);
    for kind in [StoreKind::Memory, StoreKind::Heed] {
        let rounds = match kind {
            StoreKind::Memory => 100,
            StoreKind::Heed => 20,
        }
        .min(cap);
        for shape in [Shape::Chain, Shape::FanOut] {
            for inputs in [Inputs::Constant, Inputs::Piped] {
                let label = format!(
                    "{} {} inline",
                    match shape {
                        Shape::Chain => "chain",
                        Shape::FanOut => "fanout",
                    },
                    match inputs {
                        Inputs::Constant => "const",
                        Inputs::Piped => "piped",
                    }
                );
                if wanted(&format!("{label} {}", kind.name())) {
                    let plan = plan(shape, inputs, Effect::Inline, STEPS);
                    measure(
                        Row {
                            label,
                            rounds,
                            concurrent: 1,
                        },
                        &plan,
                        kind,
                        STEPS,
                    );
                }
            }
        }
    }
    // External effects: one synced commit per call at best for one run (its
    // next intent rides with the previous result); runs side by side share
    // commits.
    for (kind, rounds, concurrent, steps) in [
        (StoreKind::Memory, 5, 1, STEPS),
        (StoreKind::Memory, 5, 16, STEPS),
        (StoreKind::Heed, 1, 1, 200),
        (StoreKind::Heed, 1, 16, 200),
    ] {
        let label = "chain piped external".to_string();
        if wanted(&format!("{label} {}", kind.name())) {
            let plan = plan(Shape::Chain, Inputs::Piped, Effect::External, steps);
            measure(
                Row {
                    label,
                    rounds: rounds.min(cap),
                    concurrent,
                },
                &plan,
                kind,
                steps,
            );
        }
    }
    if wanted("resume heed") {
        resume(RESUMED_RUNS);
    }
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
