//! Shared by the engine tests: plans built by hand (constants only: the
//! expression VM is wired at merge), a scripted executor that records every
//! call, and a harness with a virtual clock that collects the events.
#![allow(dead_code)]

use donmai_runtime::clock::{Clock, VirtualClock};
use donmai_runtime::engine::{Engine, EngineConfig, Event, EventType, RunId};
use donmai_runtime::exec::{CoreExecutor, ExecError, VerbCall, VerbExecutor, VerbOutcome};
use donmai_runtime::plan::model::*;
use donmai_runtime::store::Store;
use donmai_runtime::store::memory::MemoryStore;
use donmai_runtime::verify::VerifiedPlan;
use donmai_stdlib::value::Value;
use std::sync::{Arc, Mutex};

pub fn json(value: serde_json::Value) -> Value {
    Value::from_json(&value)
}

pub struct PlanBuilder {
    pub plan: Plan,
}

impl PlanBuilder {
    pub fn new(api_version: &str) -> PlanBuilder {
        PlanBuilder {
            plan: Plan {
                header: Header {
                    format_version: FORMAT_VERSION,
                    api_version: api_version.into(),
                    name: "test".into(),
                    version: None,
                    project: None,
                    requires: vec![],
                },
                constants: vec![],
                verbs: vec![],
                exprs: vec![],
                levels: vec![Level {
                    name: "main".into(),
                    inputs: vec![],
                    outputs: vec![],
                    triggers: vec![],
                    steps: vec![],
                }],
                sources: vec![SourceFileRef {
                    path: "workflow.yaml".into(),
                    sha256: [0; 32],
                }],
            },
        }
    }

    pub fn constant(&mut self, constant: Constant) -> ValueTemplate {
        let index = match self.plan.constants.iter().position(|c| *c == constant) {
            Some(i) => i,
            None => {
                self.plan.constants.push(constant);
                self.plan.constants.len() - 1
            }
        };
        ValueTemplate::Const(index as u32)
    }

    /// A template from JSON: scalars become constants, arrays lists,
    /// objects maps.
    pub fn value(&mut self, json: serde_json::Value) -> ValueTemplate {
        match json {
            serde_json::Value::Null => self.constant(Constant::Null),
            serde_json::Value::Bool(b) => self.constant(Constant::Bool(b)),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => self.constant(Constant::Int(i)),
                None => self.constant(Constant::Double(n.as_f64().unwrap().to_bits())),
            },
            serde_json::Value::String(s) => self.constant(Constant::String(s)),
            serde_json::Value::Array(items) => {
                ValueTemplate::List(items.into_iter().map(|i| self.value(i)).collect())
            }
            serde_json::Value::Object(entries) => ValueTemplate::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, self.value(v)))
                    .collect(),
            ),
        }
    }

    pub fn verb(&mut self, qualified: &str, kind: VerbKind, side_effect: SideEffect) -> VerbIx {
        let (pin, verb) = qualified.split_once(':').unwrap();
        let (plugin, major) = pin.split_once('@').unwrap();
        self.plan.verbs.push(VerbRef {
            plugin: plugin.into(),
            major: major.parse().unwrap(),
            verb: verb.into(),
            kind,
            side_effect,
            required_inputs: vec![],
            route_by: None,
            route_cases: vec![],
            handles: vec![],
            events: vec![],
            idempotency_key: None,
        });
        (self.plan.verbs.len() - 1) as VerbIx
    }

    pub fn verb_mut(&mut self, verb: VerbIx) -> &mut VerbRef {
        &mut self.plan.verbs[verb as usize]
    }

    pub fn level(&mut self, name: &str) -> LevelIx {
        self.plan.levels.push(Level {
            name: name.into(),
            inputs: vec![],
            outputs: vec![],
            triggers: vec![],
            steps: vec![],
        });
        (self.plan.levels.len() - 1) as LevelIx
    }

    pub fn level_mut(&mut self, level: LevelIx) -> &mut Level {
        &mut self.plan.levels[level as usize]
    }

    pub fn trigger(&mut self, id: &str) -> StepIx {
        self.entry(0, id)
    }

    /// A trigger step of `level` with its manual trigger (a group's entry
    /// fires with the interface inputs as its payload).
    pub fn entry(&mut self, level: LevelIx, id: &str) -> StepIx {
        let index = level;
        let level = &mut self.plan.levels[index as usize];
        level.triggers.push(TriggerDef {
            id: id.into(),
            kind: TriggerKind::Manual,
            event_type: None,
            schedule: None,
            timezone: None,
            fields: vec![],
            source: SourceRef::default(),
        });
        let trigger = (level.triggers.len() - 1) as TriggerIx;
        self.step(index, id, StepKind::Trigger { trigger })
    }

    pub fn step(&mut self, level: LevelIx, id: &str, kind: StepKind) -> StepIx {
        let steps = &mut self.plan.levels[level as usize].steps;
        steps.push(StepDef {
            id: id.into(),
            kind,
            inputs: vec![],
            next: vec![],
            branches: vec![],
            default: None,
            retry: None,
            timeout_ms: None,
            predecessors: vec![],
            source: SourceRef::default(),
        });
        (steps.len() - 1) as StepIx
    }

    pub fn action(&mut self, level: LevelIx, id: &str, verb: VerbIx) -> StepIx {
        self.step(level, id, StepKind::Action { verb })
    }

    pub fn step_mut(&mut self, level: LevelIx, step: StepIx) -> &mut StepDef {
        &mut self.plan.levels[level as usize].steps[step as usize]
    }

    pub fn input(&mut self, level: LevelIx, step: StepIx, name: &str, value: serde_json::Value) {
        let template = self.value(value);
        self.step_mut(level, step)
            .inputs
            .push((name.into(), template));
    }

    fn link(&mut self, level: LevelIx, from: StepIx, to: StepIx) {
        let preds = &mut self.step_mut(level, to).predecessors;
        if !preds.contains(&from) {
            preds.push(from);
            preds.sort_unstable();
        }
    }

    pub fn next(&mut self, level: LevelIx, from: StepIx, to: StepIx) {
        self.step_mut(level, from).next.push(to);
        self.link(level, from, to);
    }

    pub fn branch(&mut self, level: LevelIx, from: StepIx, handle: &str, to: StepIx) {
        self.step_mut(level, from)
            .branches
            .push((handle.into(), to));
        self.link(level, from, to);
    }

    /// A timeout branch target is a successor too.
    pub fn timeout_branch(&mut self, level: LevelIx, from: StepIx, to: StepIx) {
        self.link(level, from, to);
    }

    /// The plan, verified: the engine runs only verified plans.
    pub fn build(self) -> Arc<VerifiedPlan> {
        match donmai_runtime::verify::verify(self.plan) {
            Ok(plan) => Arc::new(plan),
            Err(error) => panic!("the test plan does not verify: {error}"),
        }
    }

    /// The plan as built, for tests of what the verifier refuses.
    pub fn build_unverified(self) -> Plan {
        self.plan
    }
}

/// One recorded verb call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub verb: String,
    pub run: String,
    pub step: String,
    pub attempt: u32,
    pub key: String,
    pub input: String,
}

type Script = dyn Fn(&VerbCall<'_>, usize) -> Result<VerbOutcome, ExecError> + Send + Sync;

/// Answers non-core verbs with a script (given the call and how many calls
/// of that step came before), runs `core@1` verbs as builtins, and records
/// every call.
pub struct ScriptedExecutor {
    pub calls: Mutex<Vec<Call>>,
    script: Box<Script>,
    core: CoreExecutor,
    inline: bool,
}

impl ScriptedExecutor {
    pub fn new(
        inline: bool,
        script: impl Fn(&VerbCall<'_>, usize) -> Result<VerbOutcome, ExecError> + Send + Sync + 'static,
    ) -> Arc<ScriptedExecutor> {
        Arc::new(ScriptedExecutor {
            calls: Mutex::new(Vec::new()),
            script: Box::new(script),
            core: CoreExecutor::default().with_log_sink(Arc::new(|_, _, _, _| {})),
            inline,
        })
    }

    /// Every verb answers `{ok: true, step: <step id>}`.
    pub fn echo(inline: bool) -> Arc<ScriptedExecutor> {
        ScriptedExecutor::new(inline, |call, _| {
            Ok(VerbOutcome::output(json(
                serde_json::json!({"ok": true, "step": call.step_id}),
            )))
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn calls_of(&self, step: &str) -> usize {
        self.calls().iter().filter(|c| c.step == step).count()
    }
}

impl VerbExecutor for ScriptedExecutor {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        let previous = {
            let mut calls = self.calls.lock().unwrap();
            let previous = calls
                .iter()
                .filter(|c| c.run == call.run_id && c.step == call.step_id)
                .count();
            calls.push(Call {
                verb: call.qualified.to_string(),
                run: call.run_id.to_string(),
                step: call.step_id.to_string(),
                attempt: call.attempt,
                key: call.idempotency_key.to_string(),
                input: call.input.to_canonical_json(),
            });
            previous
        };
        if call.verb.plugin == "core" {
            return self.core.execute(call);
        }
        (self.script)(call, previous)
    }

    fn is_inline(&self, verb: &VerbRef) -> bool {
        self.inline || (verb.plugin == "core" && self.core.is_inline(verb))
    }
}

pub struct Harness {
    pub engine: Engine,
    pub clock: VirtualClock,
    pub store: Arc<dyn Store>,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Harness {
    pub fn new(plan: Arc<VerifiedPlan>, executor: Arc<dyn VerbExecutor>) -> Harness {
        Harness::with_store(
            plan,
            executor,
            Arc::new(MemoryStore::new()),
            VirtualClock::default(),
        )
    }

    pub fn with_store(
        plan: Arc<VerifiedPlan>,
        executor: Arc<dyn VerbExecutor>,
        store: Arc<dyn Store>,
        clock: VirtualClock,
    ) -> Harness {
        Harness::with_config(plan, executor, store, clock, EngineConfig::default())
    }

    pub fn with_config(
        plan: Arc<VerifiedPlan>,
        executor: Arc<dyn VerbExecutor>,
        store: Arc<dyn Store>,
        clock: VirtualClock,
        config: EngineConfig,
    ) -> Harness {
        let mut engine = Engine::with_config(
            plan,
            Arc::clone(&store),
            executor,
            Arc::new(clock.clone()),
            config,
        )
        .expect("the plan runs");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        engine.set_event_sink(Box::new(move |event: &Event| {
            sink.lock().unwrap().push(event.clone())
        }));
        Harness {
            engine,
            clock,
            store,
            events,
        }
    }

    pub fn start(&mut self, trigger: &str, payload: serde_json::Value) -> RunId {
        self.engine
            .start_run(trigger, json(payload))
            .expect("the run starts")
    }

    pub fn drive(&mut self) -> donmai_runtime::engine::Idle {
        self.engine.drive_until_idle().expect("the engine advances")
    }

    /// Moves the virtual clock by `ms` and drives.
    pub fn advance(&mut self, ms: u64) -> donmai_runtime::engine::Idle {
        self.clock.advance_ms(ms);
        self.drive()
    }

    pub fn signal(&mut self, event_type: &str, data: serde_json::Value) {
        self.engine
            .deliver_signal(event_type, json(data))
            .expect("the signal is stored");
    }

    /// The events of `run` as compact lines (see [`trace_line`]).
    pub fn trace(&self, run: &RunId) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.run_id == run.as_str())
            .map(trace_line)
            .collect()
    }

    pub fn output(&self, run: &RunId, step: &str) -> serde_json::Value {
        self.engine
            .step_status(run, step)
            .unwrap()
            .unwrap_or_else(|| panic!("no step {step}"))
            .output
    }

    pub fn status(&self, run: &RunId) -> String {
        self.engine
            .run_status(run)
            .unwrap()
            .expect("the run exists")
            .run
            .status
            .as_str()
            .to_string()
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// `type step #attempt [handle] -> output (reason) kind: message`, with
/// only the parts the event has; `#1` is left out.
pub fn trace_line(event: &Event) -> String {
    let mut line = event.kind.as_str().to_string();
    if let Some(step) = &event.step_id {
        line.push(' ');
        line.push_str(step);
    }
    if let Some(attempt) = event.attempt.filter(|a| *a > 1) {
        line.push_str(&format!(" #{attempt}"));
    }
    if let Some(handle) = &event.handle {
        line.push_str(&format!(" [{handle}]"));
    }
    if event.kind == EventType::StepCompleted
        && let Some(output) = &event.output
    {
        line.push_str(&format!(" -> {output}"));
    }
    if let Some(reason) = &event.reason {
        line.push_str(&format!(" ({reason})"));
    }
    if let Some(error) = &event.error {
        line.push_str(&format!(" {}: {}", error.kind, error.message));
    }
    line
}

pub fn lines(expected: &[&str]) -> Vec<String> {
    expected.iter().map(|s| s.to_string()).collect()
}
