//! The transitions of a run: opening frames, settling, starting and ending
//! steps, routing, retries, gates, timers, failure and cancellation. Each
//! works on a run taken out of the engine's map (so the engine and the run
//! are borrowed apart) and records what it changed in the batch.

use super::eval::{Scope, eval_expr, eval_map};
use super::predicate::{self, Filter};
use super::records::{
    self, AttemptRecord, AttemptStatus, GateRecord, RunRecord, SignalRecord, TimerKind,
    TimerRecord, Wait,
};
use super::state::{Frame, RunState, StepState};
use super::{
    Engine, EngineError, ErrorInfo, EventType, PendingCall, RunId, RunStatus, StepStatus, Work, hex,
};
use crate::clock::rfc3339;
use crate::exec::core as core_verbs;
use crate::exec::{ExecError, VerbCall, VerbOutcome, error_kind};
use crate::plan::model::{
    DefaultRoute, GateDef, GateType, LevelIx, OnTimeout, Plan, RetryPolicy, StepDef, StepIx,
    StepKind, TriggerIx, VerbIx, VerbRef,
};
use crate::store::Table;
use donmai_stdlib::value::{MapEntries, MapKey, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The `trigger` root of the workflow level: `{data: payload}` in
/// `workflow/v1`; in v2 the payload itself, with `data` also naming the
/// whole payload unless the payload has its own `data`.
pub(super) fn trigger_root(plan: &Plan, payload: &Value) -> Value {
    let data_key = MapKey::from("data");
    if plan.header.api_version == "workflow/v1" {
        let mut root = MapEntries::new();
        root.insert(data_key, payload.clone());
        return Value::map(root);
    }
    match payload {
        Value::Map(entries) if !entries.contains_key(&data_key) => {
            let mut root = (**entries).clone();
            root.insert(data_key, payload.clone());
            Value::map(root)
        }
        other => other.clone(),
    }
}

/// The `run` root: `{id, workflow, trigger, startedAt}`.
pub(super) fn run_root(record: &RunRecord) -> Value {
    let mut run = MapEntries::new();
    run.insert(MapKey::from("id"), Value::string(record.id.as_str()));
    run.insert(
        MapKey::from("workflow"),
        Value::string(record.workflow.as_str()),
    );
    run.insert(
        MapKey::from("trigger"),
        Value::string(record.trigger.as_str()),
    );
    run.insert(
        MapKey::from("startedAt"),
        Value::string(rfc3339(record.started_at)),
    );
    Value::map(run)
}

/// An executor that panics fails its call instead of taking the engine
/// (and every other run it holds) down with it.
fn contain_panic<T>(
    call: &VerbCall<'_>,
    body: impl FnOnce() -> Result<T, ExecError>,
) -> Result<T, ExecError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(ExecError::new(
            error_kind::PANIC,
            format!("the executor of `{}` panicked: {message}", call.qualified),
        ))
    })
}

fn empty_map() -> Value {
    Value::map(MapEntries::new())
}

/// `sha256(step ":" canonical-json(input) ":" plan-hash)`, hex.
pub(super) fn input_hash(step_id: &str, input: &Value, plan_hash_hex: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(step_id.as_bytes());
    hasher.update(b":");
    hasher.update(input.to_canonical_json().as_bytes());
    hasher.update(b":");
    hasher.update(plan_hash_hex.as_bytes());
    hex(&hasher.finalize())
}

/// The key of a verb call without a manifest template: bound to the run,
/// the step instance and its input, so it is the same for every attempt and
/// after any restart, and different for anything else.
fn derived_key(run: &RunId, path: &str, input_hash: &str) -> String {
    let mut hasher = Sha256::new();
    for part in ["donmai/idempotency", run.as_str(), path, input_hash] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex(&hasher.finalize()[..16])
}

/// Delay before the attempt after `attempt`: `initialMs · factor^(attempt-1)`,
/// capped at `maxMs` (0: no cap).
pub(super) fn backoff_ms(policy: &RetryPolicy, attempt: u32) -> u64 {
    let factor = policy.factor();
    let factor = if factor.is_finite() && factor >= 1.0 {
        factor
    } else {
        1.0
    };
    let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let delay = policy.initial_ms as f64 * factor.powi(exponent);
    let delay = if delay.is_finite() && delay < u64::MAX as f64 {
        delay as u64
    } else {
        u64::MAX
    };
    if policy.max_ms > 0 {
        delay.min(policy.max_ms)
    } else {
        delay
    }
}

/// The steps a completed step leads to.
pub(super) fn taken_edges(
    def: &StepDef,
    handle: Option<&str>,
    route_to: Option<u32>,
) -> Vec<StepIx> {
    if let Some(target) = route_to {
        return vec![target];
    }
    if def.branches.is_empty() {
        return def.next.clone();
    }
    let targets = |name: &str| -> Vec<StepIx> {
        def.branches
            .iter()
            .filter(|(h, _)| h == name)
            .map(|(_, t)| *t)
            .collect()
    };
    if let Some(handle) = handle {
        let direct = targets(handle);
        if !direct.is_empty() {
            return direct;
        }
    }
    match &def.default {
        Some(DefaultRoute::Case(case)) => targets(case),
        Some(DefaultRoute::Branch) => targets("default"),
        None if handle.is_none() => def.next.clone(),
        None => Vec::new(),
    }
}

/// The handle a condition's outcome routes by.
fn condition_handle(verb: &VerbRef, outcome: &VerbOutcome) -> Result<Option<String>, String> {
    if let Some(handle) = &outcome.handle {
        return Ok(Some(handle.clone()));
    }
    let Some(field) = &verb.route_by else {
        return Ok(None);
    };
    match crate::exec::field(&outcome.output, field) {
        Value::Bool(true) => Ok(Some("yes".into())),
        Value::Bool(false) => Ok(Some("no".into())),
        Value::String(case) => Ok(Some(case.to_string())),
        other => Err(format!(
            "condition `{}` routes by its output `{field}`, which is {} instead of a bool or a case name",
            verb.qualified(),
            if other.is_null() {
                "missing".to_string()
            } else {
                format!("a {}", other.type_name())
            }
        )),
    }
}

/// The handle a gate takes when it resumes: the signal's (or fixture's)
/// `handle`, else the verb's `routeBy` output field, else — for a verb with
/// named handles — the step's default route, else an error.
fn gate_handle(
    verb: Option<&VerbRef>,
    def: &StepDef,
    explicit: Option<String>,
    output: &Value,
) -> Result<Option<String>, String> {
    if explicit.is_some() {
        return Ok(explicit);
    }
    let Some(verb) = verb else {
        return Ok(None);
    };
    if let Some(field) = &verb.route_by {
        match crate::exec::field(output, field) {
            Value::Bool(b) => return Ok(Some(if b { "yes" } else { "no" }.into())),
            Value::String(case) => return Ok(Some(case.to_string())),
            _ => {}
        }
    }
    if verb.handles.is_empty() || def.default.is_some() {
        return Ok(None);
    }
    Err(format!(
        "gate `{}` routes by its handles ({}) and the signal named none: give `handle` in the signal's data",
        verb.qualified(),
        verb.handles.join(", ")
    ))
}

fn required_inputs<'p>(plan: &'p Plan, def: &'p StepDef) -> Vec<&'p str> {
    match &def.kind {
        StepKind::Action { verb } | StepKind::Condition { verb } => plan.verbs[*verb as usize]
            .required_inputs
            .iter()
            .map(String::as_str)
            .collect(),
        StepKind::Gate {
            verb: Some(verb), ..
        } => plan.verbs[*verb as usize]
            .required_inputs
            .iter()
            .map(String::as_str)
            .collect(),
        StepKind::Group { level } | StepKind::Loop { level, .. } => plan.levels[*level as usize]
            .inputs
            .iter()
            .filter(|port| !port.optional)
            .map(|port| port.name.as_str())
            .collect(),
        StepKind::Gate { verb: None, .. } | StepKind::Trigger { .. } => Vec::new(),
    }
}

impl Engine {
    fn def<'p>(plan: &'p Plan, run: &RunState, frame: u32, step: StepIx) -> &'p StepDef {
        &plan.levels[run.frames[frame as usize].level as usize].steps[step as usize]
    }

    pub(super) fn new_run_state(&mut self, id: RunId, record: RunRecord) -> RunState {
        let generation = self.next_generation;
        self.next_generation += 1;
        RunState {
            run_value: run_root(&record),
            stored_rev: None,
            id,
            generation,
            record,
            frames: Vec::new(),
            dirty: Vec::new(),
            touched: false,
            lease_renewed_at: 0,
        }
    }

    pub(super) fn start_run_inner(
        &mut self,
        trigger_id: &str,
        payload: Value,
    ) -> Result<RunId, EngineError> {
        let plan = Arc::clone(&self.plan);
        let level = &plan.levels[0];
        let Some(trigger) = level.triggers.iter().position(|t| t.id == trigger_id) else {
            return Err(EngineError::UnknownTrigger {
                trigger: trigger_id.to_string(),
                known: level.triggers.iter().map(|t| t.id.clone()).collect(),
            });
        };
        let now = self.clock.now_ms();
        let id = RunId::generate(now).map_err(|e| EngineError::Random(e.to_string()))?;
        let record = RunRecord {
            id: id.to_string(),
            workflow: plan.header.name.clone(),
            plan_hash: self.plan_hash_hex.clone(),
            trigger: trigger_id.to_string(),
            payload: payload.clone(),
            status: RunStatus::Running,
            rev: 0,
            next_event: 0,
            started_at: now,
            ended_at: None,
            error: None,
            cancelled_by_operator: false,
            signal_watermark: super::query::signal_seq(self.store.as_ref())?,
        };
        let mut run = self.new_run_state(id.clone(), record);
        self.emit(&mut run, EventType::RunStarted, |e| {
            e.trigger = Some(trigger_id.to_string())
        });
        let root = trigger_root(&plan, &payload);
        self.open_frame(
            &mut run,
            0,
            None,
            String::new(),
            String::new(),
            root,
            payload,
            Some(trigger as TriggerIx),
        );
        self.runs.insert(id.clone(), run);
        self.commit()?;
        Ok(id)
    }

    /// Opens a frame of `level` and ends its trigger steps: the fired
    /// trigger's with `payload`, the others skipped (workflow level only).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_frame(
        &mut self,
        run: &mut RunState,
        level: LevelIx,
        parent: Option<(u32, StepIx)>,
        key_prefix: String,
        display_prefix: String,
        trigger: Value,
        payload: Value,
        fired: Option<TriggerIx>,
    ) -> u32 {
        let plan = Arc::clone(&self.plan);
        let def = &plan.levels[level as usize];
        let frame = run.frames.len() as u32;
        let steps = def
            .steps
            .iter()
            .map(|step| StepState::new(format!("{display_prefix}{}", step.id)))
            .collect::<Vec<_>>();
        run.frames.push(Frame::new(
            level,
            key_prefix,
            display_prefix,
            trigger,
            parent,
            steps,
        ));
        if def.steps.is_empty() {
            self.work
                .push_back(Work::FrameDone(run.id.clone(), run.generation, frame));
            return frame;
        }
        let now = self.clock.now_ms();
        for (ix, step) in def.steps.iter().enumerate() {
            let ix = ix as StepIx;
            match step.kind {
                StepKind::Trigger { trigger } if level == 0 && Some(trigger) != fired => {
                    let name = def
                        .triggers
                        .get(trigger as usize)
                        .map_or("?", |t| t.id.as_str());
                    self.skip(
                        run,
                        frame,
                        ix,
                        format!("trigger `{name}` did not start this run"),
                    );
                }
                StepKind::Trigger { .. } => {
                    let state = run.step_mut(frame, ix);
                    state.rec.started_at = Some(now);
                    self.complete(run, frame, ix, payload.clone(), None, None);
                }
                _ if self.topology.predecessors[level as usize][ix as usize] == 0 => {
                    run.step_mut(frame, ix).activated = true;
                    self.work
                        .push_back(Work::Settle(run.id.clone(), run.generation, frame, ix));
                }
                _ => {}
            }
        }
        frame
    }

    /// All predecessors are terminal: run the step if one of them led to it.
    pub(super) fn settle(&mut self, run: &mut RunState, frame: u32, step: StepIx) {
        let state = run.step(frame, step);
        if state.rec.status != StepStatus::Pending || run.frames[frame as usize].closed {
            return;
        }
        if state.activated {
            self.start_attempt(run, frame, step, 1);
            return;
        }
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let any_completed = def
            .predecessors
            .iter()
            .any(|&p| run.step(frame, p).rec.status == StepStatus::Completed);
        let reason = if any_completed {
            "not on the branch taken"
        } else {
            "every predecessor was skipped"
        };
        self.skip(run, frame, step, reason.to_string());
    }

    fn scope_eval<R>(
        &self,
        run: &RunState,
        frame: u32,
        input: Option<&Value>,
        step: Option<&Value>,
        body: impl FnOnce(&Scope<'_>) -> R,
    ) -> R {
        let plan = &*self.plan;
        let keys = &self.node_keys;
        let nodes = || run.frames[frame as usize].nodes(keys);
        let scope = Scope {
            plan,
            sources: &self.sources,
            nodes: &nodes,
            trigger: &run.frames[frame as usize].trigger,
            input,
            run: &run.run_value,
            step,
        };
        body(&scope)
    }

    /// Begins attempt `attempt` (1 from `Pending`, later ones from
    /// `Retrying`).
    pub(super) fn start_attempt(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        attempt: u32,
    ) {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let expected = if attempt <= 1 {
            StepStatus::Pending
        } else {
            StepStatus::Retrying
        };
        if run.step(frame, step).rec.status != expected || run.frames[frame as usize].closed {
            return;
        }
        if run.step(frame, step).rec.input.is_none() {
            let input =
                self.scope_eval(run, frame, None, None, |scope| eval_map(scope, &def.inputs));
            let input = match input {
                Ok(input) => input,
                Err(error) => {
                    self.fail_expression(run, frame, step, &error);
                    return;
                }
            };
            let missing = required_inputs(&plan, def)
                .into_iter()
                .find(|name| crate::exec::field(&input, name).is_null());
            let state = run.step_mut(frame, step);
            state.rec.input_hash =
                Some(input_hash(&state.rec.step_id, &input, &self.plan_hash_hex));
            state.rec.input = Some(input);
            if let Some(name) = missing {
                self.skip(run, frame, step, format!("required input `{name}` is null"));
                return;
            }
        }
        let now = self.clock.now_ms();
        let state = run.step_mut(frame, step);
        state.rec.status = StepStatus::Running;
        state.rec.attempt = attempt;
        state.rec.started_at = Some(now);
        state.rec.error = None;
        state.rec.wait = None;
        run.mark(frame, step);
        let step_id = run.step(frame, step).rec.step_id.clone();
        self.emit(run, EventType::StepStarted, |e| {
            e.step_id = Some(step_id);
            e.attempt = Some(attempt);
        });
        match &def.kind {
            StepKind::Trigger { .. } => {
                let output = run.frames[frame as usize].trigger.clone();
                self.complete(run, frame, step, output, None, None);
            }
            StepKind::Action { verb } | StepKind::Condition { verb } => {
                self.begin_call(run, frame, step, *verb, attempt)
            }
            StepKind::Gate { verb, gate } => {
                self.enter_gate(run, frame, step, *verb, gate, attempt)
            }
            StepKind::Group { level } | StepKind::Loop { level, .. } => {
                self.open_child(run, frame, step, *level, 1)
            }
        }
    }

    fn ensure_idempotency_key(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        verb: VerbIx,
    ) -> Result<(), EngineError> {
        if run.step(frame, step).rec.idempotency_key.is_some() {
            return Ok(());
        }
        let plan = Arc::clone(&self.plan);
        let verb = &plan.verbs[verb as usize];
        let state = run.step(frame, step);
        let key = match verb.idempotency_key {
            Some(expr) => {
                let mut step_root = MapEntries::new();
                step_root.insert(
                    MapKey::from("id"),
                    Value::string(state.rec.step_id.as_str()),
                );
                let step_root = Value::map(step_root);
                let value = self.scope_eval(
                    run,
                    frame,
                    state.rec.input.as_ref(),
                    Some(&step_root),
                    |scope| eval_expr(scope, expr),
                )?;
                match value {
                    Value::String(text) => text.to_string(),
                    other => other.to_canonical_json(),
                }
            }
            None => derived_key(
                &run.id,
                &run.frames[frame as usize].path(step),
                state.rec.input_hash.as_deref().unwrap_or(""),
            ),
        };
        run.step_mut(frame, step).rec.idempotency_key = Some(key);
        run.mark(frame, step);
        Ok(())
    }

    fn begin_call(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        verb: VerbIx,
        attempt: u32,
    ) {
        let plan = Arc::clone(&self.plan);
        let verb_ref = &plan.verbs[verb as usize];
        if core_verbs::is_core(verb_ref) && verb_ref.verb == core_verbs::WAIT {
            self.begin_sleep(run, frame, step);
            return;
        }
        if let Err(error) = self.ensure_idempotency_key(run, frame, step, verb) {
            self.fail_expression(run, frame, step, &error);
            return;
        }
        if self.executor.is_inline(verb_ref) {
            let result = self.call_verb(run, frame, step, verb, attempt);
            self.finish_call(run, frame, step, attempt, result, false);
            return;
        }
        // The intent goes into this batch, the call waits for its commit.
        let state = run.step(frame, step);
        let intent = AttemptRecord {
            attempt,
            status: AttemptStatus::Started,
            input_hash: state.rec.input_hash.clone().unwrap_or_default(),
            idempotency_key: state.rec.idempotency_key.clone().unwrap_or_default(),
            output: None,
            handle: None,
            error: None,
            started_at: self.clock.now_ms(),
            completed_at: None,
        };
        let key = records::attempt_key(&run.id, &run.frames[frame as usize].path(step), attempt);
        self.batch.put(Table::Steps, key, records::encode(&intent));
        self.touch(run);
        self.calls.push_back(PendingCall {
            run: run.id.clone(),
            generation: run.generation,
            frame,
            step,
            attempt,
        });
    }

    /// Makes the call; a call that outlived the step's `timeoutMs` by the
    /// engine's clock fails with `timeout` whatever it returned.
    fn call_verb(
        &mut self,
        run: &RunState,
        frame: u32,
        step: StepIx,
        verb: VerbIx,
        attempt: u32,
    ) -> Result<VerbOutcome, ExecError> {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let verb_ref = &plan.verbs[verb as usize];
        let state = run.step(frame, step);
        let null = Value::Null;
        let started = self.clock.now_ms();
        self.stats.verb_calls += 1;
        let call = VerbCall {
            verb: verb_ref,
            qualified: &self.qualified[verb as usize],
            input: state.rec.input.as_ref().unwrap_or(&null),
            idempotency_key: state.rec.idempotency_key.as_deref().unwrap_or(""),
            attempt,
            timeout_ms: def.timeout_ms,
            run_id: run.id.as_str(),
            step_id: &state.rec.step_id,
        };
        let result = contain_panic(&call, || self.executor.execute(&call));
        match def.timeout_ms {
            Some(limit) if self.clock.now_ms().saturating_sub(started) > limit => {
                Err(ExecError::new(
                    error_kind::TIMEOUT,
                    format!("the call took longer than its timeoutMs ({limit} ms)"),
                ))
            }
            _ => result,
        }
    }

    /// Runs a call whose intent was committed.
    pub(super) fn execute_pending_call(&mut self, call: PendingCall) -> Result<(), EngineError> {
        let Some(mut run) = self.runs.remove(&call.run) else {
            return Ok(());
        };
        let plan = Arc::clone(&self.plan);
        let current = run.generation == call.generation
            && run.is_active()
            && !run.frames[call.frame as usize].closed
            && run.step(call.frame, call.step).rec.status == StepStatus::Running
            && run.step(call.frame, call.step).rec.attempt == call.attempt;
        if current {
            let verb = match Self::def(&plan, &run, call.frame, call.step).kind {
                StepKind::Action { verb } | StepKind::Condition { verb } => Some(verb),
                _ => None,
            };
            if let Some(verb) = verb {
                let result = self.call_verb(&run, call.frame, call.step, verb, call.attempt);
                self.finish_call(&mut run, call.frame, call.step, call.attempt, result, true);
            }
        }
        self.runs.insert(call.run, run);
        Ok(())
    }

    fn finish_call(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        attempt: u32,
        result: Result<VerbOutcome, ExecError>,
        journaled: bool,
    ) {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        if journaled {
            let state = run.step(frame, step);
            let (status, output, handle, error) = match &result {
                Ok(outcome) => (
                    AttemptStatus::Succeeded,
                    Some(outcome.output.clone()),
                    outcome.handle.clone(),
                    None,
                ),
                Err(e) => (
                    AttemptStatus::Failed,
                    None,
                    None,
                    Some(ErrorInfo::new(e.kind.clone(), e.message.clone())),
                ),
            };
            let record = AttemptRecord {
                attempt,
                status,
                input_hash: state.rec.input_hash.clone().unwrap_or_default(),
                idempotency_key: state.rec.idempotency_key.clone().unwrap_or_default(),
                output,
                handle,
                error,
                started_at: state.rec.started_at.unwrap_or_default(),
                completed_at: Some(self.clock.now_ms()),
            };
            let key =
                records::attempt_key(&run.id, &run.frames[frame as usize].path(step), attempt);
            self.batch.put(Table::Steps, key, records::encode(&record));
            self.touch(run);
        }
        match result {
            Ok(outcome) => {
                let handle = match &def.kind {
                    StepKind::Condition { verb } => {
                        condition_handle(&plan.verbs[*verb as usize], &outcome)
                    }
                    StepKind::Gate { verb, .. } => gate_handle(
                        verb.map(|v| &plan.verbs[v as usize]),
                        def,
                        outcome.handle.clone(),
                        &outcome.output,
                    ),
                    _ => Ok(outcome.handle.clone()),
                };
                match handle {
                    Ok(handle) => self.complete(run, frame, step, outcome.output, handle, None),
                    Err(message) => self.fail_step(
                        run,
                        frame,
                        step,
                        ErrorInfo::new(error_kind::ROUTING, message),
                    ),
                }
            }
            Err(error) => self.fail_attempt(
                run,
                frame,
                step,
                ErrorInfo::new(error.kind, error.message),
                true,
            ),
        }
    }

    fn begin_sleep(&mut self, run: &mut RunState, frame: u32, step: StepIx) {
        let input = run
            .step(frame, step)
            .rec
            .input
            .clone()
            .unwrap_or(Value::Null);
        let duration = match crate::exec::field(&input, "durationMs") {
            Value::Int(ms) if ms >= 0 => ms as u64,
            other => {
                self.fail_attempt(
                    run,
                    frame,
                    step,
                    ErrorInfo::new(
                        error_kind::INVALID_INPUT,
                        format!(
                            "core@1:core.wait: `durationMs` must be a non-negative int, not {other}"
                        ),
                    ),
                    false,
                );
                return;
            }
        };
        let due = self.clock.now_ms().saturating_add(duration);
        self.set_timer(run, frame, step, TimerKind::Sleep, due, Wait::default());
        run.step_mut(frame, step).rec.status = StepStatus::Waiting;
        run.mark(frame, step);
    }

    /// Puts the step's one timer in the store and in its `wait`.
    fn set_timer(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        kind: TimerKind,
        due: u64,
        mut wait: Wait,
    ) {
        let path = run.frames[frame as usize].path(step);
        let attempt = run.step(frame, step).rec.attempt;
        self.batch.put(
            Table::Timers,
            records::timer_key(due, &run.id, &path),
            records::encode(&TimerRecord {
                run: run.id.to_string(),
                path,
                attempt,
                kind,
            }),
        );
        wait.timer = Some((kind, due));
        run.step_mut(frame, step).rec.wait = Some(wait);
        run.mark(frame, step);
        self.touch(run);
    }

    /// Removes the step's timer and gate subscriptions from the store.
    pub(super) fn clear_wait(&mut self, run: &mut RunState, frame: u32, step: StepIx) {
        let Some(wait) = run.step_mut(frame, step).rec.wait.take() else {
            return;
        };
        let path = run.frames[frame as usize].path(step);
        if let Some((_, due)) = wait.timer {
            self.batch
                .delete(Table::Timers, records::timer_key(due, &run.id, &path));
        }
        if let Some(subscribed_at) = wait.subscribed_at {
            for event_type in &wait.event_types {
                self.batch.delete(
                    Table::Gates,
                    records::gate_key(event_type, subscribed_at, &run.id, &path),
                );
            }
        }
        run.mark(frame, step);
        self.touch(run);
    }

    fn enter_gate(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        verb: Option<VerbIx>,
        gate: &GateDef,
        attempt: u32,
    ) {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let now = self.clock.now_ms();
        let timeout = gate.timeout_ms.or(def.timeout_ms);
        if gate.gate_type == GateType::Timer {
            let due = now.saturating_add(timeout.unwrap_or(0));
            self.set_timer(run, frame, step, TimerKind::TimerGate, due, Wait::default());
            run.step_mut(frame, step).rec.status = StepStatus::Waiting;
            let step_id = run.step(frame, step).rec.step_id.clone();
            self.emit(run, EventType::GateWaiting, |e| {
                e.step_id = Some(step_id);
                e.attempt = Some(attempt);
                e.deadline = Some(rfc3339(due));
            });
            return;
        }
        if let Some(verb) = verb {
            if let Err(error) = self.ensure_idempotency_key(run, frame, step, verb) {
                self.fail_expression(run, frame, step, &error);
                return;
            }
            let state = run.step(frame, step);
            let null = Value::Null;
            let call = VerbCall {
                verb: &plan.verbs[verb as usize],
                qualified: &self.qualified[verb as usize],
                input: state.rec.input.as_ref().unwrap_or(&null),
                idempotency_key: state.rec.idempotency_key.as_deref().unwrap_or(""),
                attempt,
                timeout_ms: timeout,
                run_id: run.id.as_str(),
                step_id: &state.rec.step_id,
            };
            let answer = contain_panic(&call, || Ok(self.executor.resolve_gate(&call)))
                .transpose()
                .map(|answer| answer.and_then(|a| a));
            if let Some(answer) = answer {
                self.finish_call(run, frame, step, attempt, answer, false);
                return;
            }
        }
        let filter = match &gate.filter {
            None => None,
            Some(predicate) => {
                let resolved = self.scope_eval(
                    run,
                    frame,
                    run.step(frame, step).rec.input.as_ref(),
                    None,
                    |scope| predicate::resolve(scope, predicate),
                );
                match resolved {
                    Ok(filter) => Some(filter),
                    Err(error) => {
                        self.fail_expression(run, frame, step, &error);
                        return;
                    }
                }
            }
        };
        let step_id = run.step(frame, step).rec.step_id.clone();
        if filter.as_ref().is_some_and(Filter::is_empty) {
            self.emit(run, EventType::GateTimedOut, |e| {
                e.step_id = Some(step_id);
                e.attempt = Some(attempt);
                e.reason = Some(
                    "the gate's filter resolved to nothing: every value it compares with is null"
                        .into(),
                );
            });
            self.gate_timeout_path(run, frame, step);
            return;
        }
        let event_types = if gate.event_types.is_empty() {
            verb.map(|v| plan.verbs[v as usize].events.clone())
                .unwrap_or_default()
        } else {
            gate.event_types.clone()
        };
        if event_types.is_empty() && timeout.is_none() {
            // Nothing could ever resume it: do not wait forever.
            self.emit(run, EventType::GateTimedOut, |e| {
                e.step_id = Some(step_id);
                e.attempt = Some(attempt);
                e.reason = Some("the gate listens for no event type and has no timeout".into());
            });
            self.gate_timeout_path(run, frame, step);
            return;
        }
        let path = run.frames[frame as usize].path(step);
        let gate_record = records::encode(&GateRecord {
            run: run.id.to_string(),
            path: path.clone(),
            attempt,
            filter: filter.clone(),
            signal_watermark: run.record.signal_watermark,
        });
        for event_type in &event_types {
            self.batch.put(
                Table::Gates,
                records::gate_key(event_type, now, &run.id, &path),
                gate_record.clone(),
            );
        }
        let wait = Wait {
            timer: None,
            subscribed_at: Some(now),
            event_types: event_types.clone(),
            filter,
        };
        let deadline = timeout.map(|t| now.saturating_add(t));
        match deadline {
            Some(due) => self.set_timer(run, frame, step, TimerKind::GateTimeout, due, wait),
            None => {
                run.step_mut(frame, step).rec.wait = Some(wait);
            }
        }
        run.step_mut(frame, step).rec.status = StepStatus::Waiting;
        run.mark(frame, step);
        self.emit(run, EventType::GateWaiting, |e| {
            e.step_id = Some(step_id);
            e.attempt = Some(attempt);
            e.event_types = event_types;
            e.deadline = deadline.map(rfc3339);
        });
        self.fresh_gates.push((run.id.clone(), path, attempt));
    }

    /// `onTimeout`: `skip` (or the verb's `timeout` handle), `error` (a
    /// failed attempt, so `retry` applies), `branch:<id>`.
    fn gate_timeout_path(&mut self, run: &mut RunState, frame: u32, step: StepIx) {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let StepKind::Gate { verb, gate } = &def.kind else {
            return;
        };
        let timeout = gate.timeout_ms.or(def.timeout_ms);
        match &gate.on_timeout {
            OnTimeout::Skip => {
                let has_timeout_handle = verb.is_some_and(|v| {
                    plan.verbs[v as usize]
                        .handles
                        .iter()
                        .any(|h| h == "timeout")
                });
                if has_timeout_handle {
                    self.complete(run, frame, step, Value::Null, Some("timeout".into()), None);
                } else {
                    self.skip(run, frame, step, "the gate timed out".into());
                }
            }
            OnTimeout::Error => self.fail_attempt(
                run,
                frame,
                step,
                ErrorInfo::new(
                    error_kind::TIMEOUT,
                    match timeout {
                        Some(ms) => format!("the gate got no matching signal within {ms} ms"),
                        None => "the gate has nothing to wait for".to_string(),
                    },
                ),
                true,
            ),
            OnTimeout::Branch(target) => {
                self.complete(run, frame, step, Value::Null, None, Some(*target))
            }
        }
    }

    /// A signal matched the gate's waiting attempt.
    pub(super) fn resume_gate_with(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        signal: &SignalRecord,
    ) {
        self.clear_wait(run, frame, step);
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let step_id = run.step(frame, step).rec.step_id.clone();
        let attempt = run.step(frame, step).rec.attempt;
        self.emit(run, EventType::GateResumed, |e| {
            e.step_id = Some(step_id);
            e.attempt = Some(attempt);
            e.output = Some(signal.data.to_json());
            e.handle = signal.handle.clone();
        });
        let verb = match &def.kind {
            StepKind::Gate { verb, .. } => verb.map(|v| &plan.verbs[v as usize]),
            _ => None,
        };
        match gate_handle(verb, def, signal.handle.clone(), &signal.data) {
            Ok(handle) => self.complete(run, frame, step, signal.data.clone(), handle, None),
            Err(message) => self.fail_step(
                run,
                frame,
                step,
                ErrorInfo::new(error_kind::ROUTING, message),
            ),
        }
    }

    /// The step's timer fired (the governor removed it from the store).
    pub(super) fn on_timer(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        kind: TimerKind,
    ) {
        if let Some(wait) = run.step_mut(frame, step).rec.wait.as_mut() {
            wait.timer = None;
        }
        run.mark(frame, step);
        self.touch(run);
        match kind {
            TimerKind::Retry => {
                // Started in the same batch that consumes the timer: a
                // commit must never leave a retrying step without either.
                run.step_mut(frame, step).rec.wait = None;
                let attempt = run.step(frame, step).rec.attempt + 1;
                self.start_attempt(run, frame, step, attempt);
            }
            TimerKind::Sleep | TimerKind::TimerGate => {
                run.step_mut(frame, step).rec.wait = None;
                self.complete(run, frame, step, empty_map(), None, None);
            }
            TimerKind::GateTimeout => {
                self.clear_wait(run, frame, step);
                let step_id = run.step(frame, step).rec.step_id.clone();
                let attempt = run.step(frame, step).rec.attempt;
                self.emit(run, EventType::GateTimedOut, |e| {
                    e.step_id = Some(step_id);
                    e.attempt = Some(attempt);
                    e.reason = Some("no matching signal before the gate's timeout".into());
                });
                self.gate_timeout_path(run, frame, step);
            }
        }
    }

    fn open_child(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        level: LevelIx,
        iteration: u32,
    ) {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let parent = &run.frames[frame as usize];
        let key_prefix = format!("{}{step}.{iteration}/", parent.key_prefix);
        let display_prefix = match def.kind {
            StepKind::Loop { .. } => format!("{}{}[{iteration}]/", parent.display_prefix, def.id),
            _ => format!("{}{}/", parent.display_prefix, def.id),
        };
        let input = run
            .step(frame, step)
            .rec
            .input
            .clone()
            .unwrap_or(Value::Null);
        let state = run.step_mut(frame, step);
        state.rec.iteration = iteration;
        run.mark(frame, step);
        let child = self.open_frame(
            run,
            level,
            Some((frame, step)),
            key_prefix,
            display_prefix,
            input.clone(),
            input,
            None,
        );
        run.step_mut(frame, step).child = Some(child);
    }

    /// Every step of the frame is terminal.
    pub(super) fn frame_done(&mut self, run: &mut RunState, frame: u32) {
        let state = &run.frames[frame as usize];
        if state.closed || state.open != 0 {
            return;
        }
        run.frames[frame as usize].closed = true;
        let Some((parent_frame, parent_step)) = run.frames[frame as usize].parent else {
            run.record.status = RunStatus::Completed;
            run.record.ended_at = Some(self.clock.now_ms());
            self.emit(run, EventType::RunCompleted, |_| {});
            return;
        };
        let plan = Arc::clone(&self.plan);
        let level = &plan.levels[run.frames[frame as usize].level as usize];
        let outputs = self.scope_eval(run, frame, None, None, |scope| {
            eval_map(scope, &level.outputs)
        });
        let outputs = match outputs {
            Ok(outputs) => outputs,
            Err(error) => {
                self.fail_step(
                    run,
                    parent_frame,
                    parent_step,
                    ErrorInfo::new(error_kind::EXPRESSION, error.to_string()),
                );
                return;
            }
        };
        let def = Self::def(&plan, run, parent_frame, parent_step);
        let StepKind::Loop {
            level: body,
            max_iterations,
            until,
        } = &def.kind
        else {
            run.step_mut(parent_frame, parent_step).child = None;
            self.complete(run, parent_frame, parent_step, outputs, None, None);
            return;
        };
        let iteration = run.step(parent_frame, parent_step).rec.iteration;
        let holds = match until {
            None => Ok(false),
            Some(predicate) => {
                let input = run.step(parent_frame, parent_step).rec.input.clone();
                self.scope_eval(run, parent_frame, input.as_ref(), None, |scope| {
                    predicate::resolve(scope, predicate)
                })
                .map(|filter| {
                    let mut subject = MapEntries::new();
                    subject.insert(MapKey::from("output"), outputs.clone());
                    filter.matches(&Value::map(subject))
                })
            }
        };
        match holds {
            Err(error) => self.fail_step(
                run,
                parent_frame,
                parent_step,
                ErrorInfo::new(error_kind::EXPRESSION, error.to_string()),
            ),
            Ok(true) => {
                run.step_mut(parent_frame, parent_step).child = None;
                self.complete(run, parent_frame, parent_step, outputs, None, None);
            }
            Ok(false) if iteration >= (*max_iterations).max(1) => {
                run.step_mut(parent_frame, parent_step).child = None;
                self.complete(run, parent_frame, parent_step, outputs, None, None);
            }
            Ok(false) => {
                // The last outputs stay visible on the loop step while the
                // next iteration runs.
                run.set_output(&self.node_keys, parent_frame, parent_step, outputs);
                self.open_child(run, parent_frame, parent_step, *body, iteration + 1);
            }
        }
    }

    pub(super) fn complete(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        output: Value,
        handle: Option<String>,
        route_to: Option<StepIx>,
    ) {
        let now = self.clock.now_ms();
        self.clear_wait(run, frame, step);
        let state = run.step_mut(frame, step);
        state.rec.status = StepStatus::Completed;
        state.rec.ended_at = Some(now);
        state.rec.error = None;
        state.rec.handle = handle.clone();
        state.rec.route_to = route_to;
        let event_output = output.to_json();
        let step_id = state.rec.step_id.clone();
        let attempt = state.rec.attempt;
        run.set_output(&self.node_keys, frame, step, output);
        run.mark(frame, step);
        self.emit(run, EventType::StepCompleted, |e| {
            e.step_id = Some(step_id);
            e.attempt = (attempt > 0).then_some(attempt);
            e.output = Some(event_output);
            e.handle = handle;
        });
        self.step_ended(run, frame, step);
    }

    pub(super) fn skip(&mut self, run: &mut RunState, frame: u32, step: StepIx, reason: String) {
        let now = self.clock.now_ms();
        let state = run.step_mut(frame, step);
        state.rec.status = StepStatus::Skipped;
        state.rec.ended_at = Some(now);
        state.rec.reason = Some(reason.clone());
        let step_id = state.rec.step_id.clone();
        if !state.rec.output.is_null() {
            run.set_output(&self.node_keys, frame, step, Value::Null);
        }
        run.mark(frame, step);
        self.clear_wait(run, frame, step);
        self.emit(run, EventType::StepSkipped, |e| {
            e.step_id = Some(step_id);
            e.reason = Some(reason);
        });
        self.step_ended(run, frame, step);
    }

    /// Notifies the successors of a step that just became terminal.
    fn step_ended(&mut self, run: &mut RunState, frame: u32, step: StepIx) {
        let plan = Arc::clone(&self.plan);
        let level = run.frames[frame as usize].level as usize;
        let def = &plan.levels[level].steps[step as usize];
        let state = run.step(frame, step);
        let taken = if state.rec.status == StepStatus::Completed {
            taken_edges(def, state.rec.handle.as_deref(), state.rec.route_to)
        } else {
            Vec::new()
        };
        for &successor in &self.topology.successors[level][step as usize] {
            let next = run.step_mut(frame, successor);
            next.terminal_preds += 1;
            if taken.contains(&successor) {
                next.activated = true;
            }
            if next.terminal_preds == self.topology.predecessors[level][successor as usize] {
                self.work.push_back(Work::Settle(
                    run.id.clone(),
                    run.generation,
                    frame,
                    successor,
                ));
            }
        }
        let frame_state = &mut run.frames[frame as usize];
        frame_state.open = frame_state.open.saturating_sub(1);
        if frame_state.open == 0 {
            self.work
                .push_back(Work::FrameDone(run.id.clone(), run.generation, frame));
        }
    }

    /// An attempt failed: retry per the step's policy, or fail the step.
    fn fail_attempt(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        error: ErrorInfo,
        retryable: bool,
    ) {
        let plan = Arc::clone(&self.plan);
        let def = Self::def(&plan, run, frame, step);
        let attempt = run.step(frame, step).rec.attempt;
        let retry = def.retry.as_ref().filter(|policy| {
            retryable
                && attempt < policy.max_attempts
                && (policy.retry_on.is_empty() || policy.retry_on.contains(&error.kind))
        });
        let Some(policy) = retry else {
            self.fail_step(run, frame, step, error);
            return;
        };
        let due = self
            .clock
            .now_ms()
            .saturating_add(backoff_ms(policy, attempt));
        self.clear_wait(run, frame, step);
        let state = run.step_mut(frame, step);
        state.rec.status = StepStatus::Retrying;
        state.rec.error = Some(error.clone());
        let step_id = state.rec.step_id.clone();
        self.set_timer(run, frame, step, TimerKind::Retry, due, Wait::default());
        self.emit(run, EventType::StepRetrying, |e| {
            e.step_id = Some(step_id);
            e.attempt = Some(attempt);
            e.error = Some(error);
            e.next_attempt_at = Some(rfc3339(due));
        });
    }

    /// An expression of the step (an input, a filter value, a key) failed.
    fn fail_expression(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        error: &EngineError,
    ) {
        let info = ErrorInfo::new(error_kind::EXPRESSION, error.to_string());
        self.fail_step(run, frame, step, info);
    }

    /// The step failed for good; so does every frame up to the run.
    pub(super) fn fail_step(
        &mut self,
        run: &mut RunState,
        frame: u32,
        step: StepIx,
        error: ErrorInfo,
    ) {
        let now = self.clock.now_ms();
        self.clear_wait(run, frame, step);
        let state = run.step_mut(frame, step);
        state.rec.status = StepStatus::Failed;
        state.rec.ended_at = Some(now);
        state.rec.error = Some(error.clone());
        let step_id = state.rec.step_id.clone();
        let attempt = state.rec.attempt;
        run.mark(frame, step);
        self.emit(run, EventType::StepFailed, |e| {
            e.step_id = Some(step_id.clone());
            e.attempt = (attempt > 0).then_some(attempt);
            e.error = Some(error.clone());
        });
        let wrapped = ErrorInfo::new(
            error.kind.clone(),
            format!("`{step_id}` failed: {}", error.message),
        );
        match run.frames[frame as usize].parent {
            Some((parent_frame, parent_step)) => {
                self.cancel_frame(run, frame);
                self.fail_step(run, parent_frame, parent_step, wrapped);
            }
            None => self.abort_run(run, RunStatus::Failed, Some(wrapped), None, false),
        }
    }

    /// Stops every open step of a frame and of the frames inside it.
    fn cancel_frame(&mut self, run: &mut RunState, frame: u32) {
        run.frames[frame as usize].closed = true;
        let now = self.clock.now_ms();
        for step in 0..run.frames[frame as usize].steps.len() as StepIx {
            if run.step(frame, step).is_terminal() {
                continue;
            }
            if let Some(child) = run.step(frame, step).child {
                self.cancel_frame(run, child);
            }
            self.clear_wait(run, frame, step);
            let state = run.step_mut(frame, step);
            state.rec.status = StepStatus::Cancelled;
            state.rec.ended_at = Some(now);
            run.mark(frame, step);
        }
    }

    /// Ends the run: failed, or cancelled (by an operator: never
    /// re-dispatched).
    pub(super) fn abort_run(
        &mut self,
        run: &mut RunState,
        status: RunStatus,
        error: Option<ErrorInfo>,
        reason: Option<String>,
        by_operator: bool,
    ) {
        if !run.is_active() {
            return;
        }
        self.cancel_frame(run, 0);
        for frame in &mut run.frames {
            frame.closed = true;
        }
        run.record.status = status;
        run.record.ended_at = Some(self.clock.now_ms());
        run.record.error = error.clone();
        run.record.cancelled_by_operator = by_operator;
        let kind = if status == RunStatus::Failed {
            EventType::RunFailed
        } else {
            EventType::RunCancelled
        };
        self.emit(run, kind, |e| {
            e.error = error;
            e.reason = reason;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{FORMAT_VERSION, Header, SourceRef};

    fn plan(api_version: &str) -> Plan {
        Plan {
            header: Header {
                format_version: FORMAT_VERSION,
                api_version: api_version.into(),
                name: "t".into(),
                version: None,
                project: None,
                requires: vec![],
            },
            constants: vec![],
            verbs: vec![],
            exprs: vec![],
            levels: vec![],
            sources: vec![],
        }
    }

    fn v(json: serde_json::Value) -> Value {
        Value::from_json(&json)
    }

    #[test]
    fn the_trigger_root_per_api_version() {
        let payload = v(serde_json::json!({"issueId": "LIN-1"}));
        assert_eq!(
            trigger_root(&plan("workflow/v1"), &payload).to_json(),
            serde_json::json!({"data": {"issueId": "LIN-1"}})
        );
        assert_eq!(
            trigger_root(&plan("workflow/v2"), &payload).to_json(),
            serde_json::json!({"issueId": "LIN-1", "data": {"issueId": "LIN-1"}})
        );
        let own_data = v(serde_json::json!({"data": 1}));
        assert_eq!(
            trigger_root(&plan("workflow/v2"), &own_data).to_json(),
            serde_json::json!({"data": 1})
        );
        assert_eq!(
            trigger_root(&plan("workflow/v2"), &Value::Null),
            Value::Null
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_ms: 500,
            factor: 3f64.to_bits(),
            max_ms: 10_000,
            retry_on: vec![],
        };
        let delays: Vec<u64> = (1..=5).map(|n| backoff_ms(&policy, n)).collect();
        assert_eq!(delays, [500, 1_500, 4_500, 10_000, 10_000]);
        let uncapped = RetryPolicy {
            max_ms: 0,
            factor: f64::NAN.to_bits(),
            ..policy
        };
        assert_eq!(backoff_ms(&uncapped, 7), 500, "a broken factor counts as 1");
        let huge = RetryPolicy {
            max_ms: 0,
            factor: 1e300f64.to_bits(),
            ..uncapped
        };
        assert_eq!(backoff_ms(&huge, 100), u64::MAX);
    }

    #[test]
    fn edges_taken_by_handle_default_and_timeout_branch() {
        let def = StepDef {
            id: "c".into(),
            kind: StepKind::Trigger { trigger: 0 },
            inputs: vec![],
            next: vec![9],
            branches: vec![("yes".into(), 1), ("no".into(), 2), ("default".into(), 3)],
            default: Some(DefaultRoute::Branch),
            retry: None,
            timeout_ms: None,
            predecessors: vec![],
            source: SourceRef::default(),
        };
        assert_eq!(taken_edges(&def, Some("yes"), None), [1]);
        assert_eq!(taken_edges(&def, Some("maybe"), None), [3]);
        assert_eq!(taken_edges(&def, None, Some(5)), [5]);
        let no_default = StepDef {
            default: None,
            ..def.clone()
        };
        assert!(taken_edges(&no_default, Some("maybe"), None).is_empty());
        assert_eq!(taken_edges(&no_default, None, None), [9]);
        let plain = StepDef {
            branches: vec![],
            ..def
        };
        assert_eq!(taken_edges(&plain, Some("yes"), None), [9]);
    }
}
