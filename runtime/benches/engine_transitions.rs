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
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::store::{ReadTxn, Store, StoreResult, Table, WriteTxn};
use donmai_runtime::verify::VerifiedPlan;
use donmai_stdlib::value::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::{Duration, Instant};

const STEPS: usize = 1_000;

type Key = (Table, Vec<u8>);

/// An in-memory store whose write transactions keep their changes in an
/// overlay applied on commit, so a commit costs what it changes rather than
/// a copy of everything (the crate's `MemoryStore` copies its tables per
/// transaction, which measures the copy, not the engine, once a store
/// holds thousands of runs). Same all-or-nothing semantics.
#[derive(Default)]
struct OverlayStore {
    data: RwLock<BTreeMap<Key, Vec<u8>>>,
}

struct Snapshot<'a>(&'a BTreeMap<Key, Vec<u8>>);

fn scan_map<'a>(
    map: &'a BTreeMap<Key, Vec<u8>>,
    table: Table,
    prefix: &'a [u8],
) -> impl Iterator<Item = (&'a Key, &'a Vec<u8>)> {
    map.range((table, prefix.to_vec())..)
        .take_while(move |((t, k), _)| *t == table && k.starts_with(prefix))
}

impl ReadTxn for Snapshot<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.0.get(&(table, key.to_vec())).cloned())
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        for ((_, key), value) in scan_map(self.0, table, prefix) {
            if !visit(key, value) {
                break;
            }
        }
        Ok(())
    }
}

struct Overlay<'a> {
    base: &'a BTreeMap<Key, Vec<u8>>,
    changes: BTreeMap<Key, Option<Vec<u8>>>,
}

impl ReadTxn for Overlay<'_> {
    fn get(&self, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let key = (table, key.to_vec());
        Ok(match self.changes.get(&key) {
            Some(change) => change.clone(),
            None => self.base.get(&key).cloned(),
        })
    }

    fn scan(
        &self,
        table: Table,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> StoreResult<()> {
        let mut merged: BTreeMap<&[u8], Option<&Vec<u8>>> = scan_map(self.base, table, prefix)
            .map(|((_, k), v)| (k.as_slice(), Some(v)))
            .collect();
        for ((_, key), change) in self
            .changes
            .range((table, prefix.to_vec())..)
            .take_while(|((t, k), _)| *t == table && k.starts_with(prefix))
        {
            merged.insert(key.as_slice(), change.as_ref());
        }
        for (key, value) in merged {
            if let Some(value) = value
                && !visit(key, value)
            {
                break;
            }
        }
        Ok(())
    }
}

impl WriteTxn for Overlay<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.changes
            .insert((table, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> StoreResult<bool> {
        let existed = self.get(table, key)?.is_some();
        self.changes.insert((table, key.to_vec()), None);
        Ok(existed)
    }
}

impl Store for OverlayStore {
    fn read(&self, f: &mut dyn FnMut(&dyn ReadTxn) -> StoreResult<()>) -> StoreResult<()> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        f(&Snapshot(&data))
    }

    fn write(&self, f: &mut dyn FnMut(&mut dyn WriteTxn) -> StoreResult<()>) -> StoreResult<()> {
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        let mut overlay = Overlay {
            base: &data,
            changes: BTreeMap::new(),
        };
        f(&mut overlay)?;
        let changes = overlay.changes;
        for (key, change) in changes {
            match change {
                Some(value) => {
                    data.insert(key, value);
                }
                None => {
                    data.remove(&key);
                }
            }
        }
        Ok(())
    }
}

fn plan(shape: Shape) -> Plan {
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
            route_cases: Vec::new(),
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
            route_cases: Vec::new(),
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
        sources: vec![SourceFileRef {
            path: "bench.yaml".into(),
            sha256: [0; 32],
        }],
    }
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

fn engine(plan: Arc<VerifiedPlan>, store: Arc<dyn Store>, external: bool) -> Engine {
    let executor: Arc<dyn VerbExecutor> = if external {
        Arc::new(External)
    } else {
        Arc::new(CoreExecutor::default())
    };
    Engine::new(plan, store, executor, Arc::new(VirtualClock::default())).unwrap()
}

fn measure(shape: Shape, runs: usize, overlay: bool) {
    let plan =
        Arc::new(donmai_runtime::verify::verify(plan(shape)).expect("the bench plan verifies"));
    let external = matches!(shape, Shape::ExternalChain);
    let mut transitions = 0;
    let mut commits = 0;
    let mut elapsed = Duration::ZERO;
    for _ in 0..runs {
        // A fresh store per run: the in-memory store copies its tables on
        // every write transaction, which would otherwise dominate.
        let store: Arc<dyn Store> = if overlay {
            Arc::new(OverlayStore::default())
        } else {
            Arc::new(MemoryStore::new())
        };
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
        "{shape:?} ({}): {runs} runs of {STEPS} steps in {:.1} ms: {:.0} transitions/s, {:.0} steps/s, {:.2} ms per run, {} commits per run",
        if overlay {
            "overlay store"
        } else {
            "MemoryStore"
        },
        secs * 1e3,
        transitions as f64 / secs,
        (runs * STEPS) as f64 / secs,
        secs * 1e3 / runs as f64,
        commits / runs as u64,
    );
}

fn resume(runs: usize) {
    // start → wait (core.wait, 1 h): every run stays unfinished.
    let mut plan = plan(Shape::Chain);
    plan.verbs.push(VerbRef {
        plugin: "core".into(),
        major: 1,
        verb: "core.wait".into(),
        kind: VerbKind::Action,
        side_effect: SideEffect::ReadOnly,
        required_inputs: vec![],
        route_by: None,
        route_cases: Vec::new(),
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
    let plan = Arc::new(donmai_runtime::verify::verify(plan).expect("the bench plan verifies"));
    let store: Arc<dyn Store> = Arc::new(OverlayStore::default());
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
        "resume (overlay store): {runs} unfinished runs reloaded and continued in {:.1} ms ({:.1} µs per run; creating them took {:.1} ms)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / runs as f64,
        create.as_secs_f64() * 1e3,
    );
}

fn main() {
    // `cargo bench -- NAME` runs the parts whose name contains NAME
    // (`chain`, `fanout`, `external`, `resume`); cargo also passes `--bench`.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    for overlay in [false, true] {
        for (name, shape) in [("chain", Shape::Chain), ("fanout", Shape::FanOut)] {
            if wanted(name) {
                measure(shape, 3, overlay);
                measure(shape, 20, overlay);
            }
        }
    }
    if wanted("external") {
        measure(Shape::ExternalChain, 2, false);
        measure(Shape::ExternalChain, 5, true);
    }
    if wanted("resume") {
        resume(10_000);
    }
}
