//! Taking runs over: claiming a lease atomically, rebuilding a run's frames
//! from its step records, and queueing exactly the unfinished work. A step
//! with a recorded result is replayed from it, never re-run; a verb call
//! whose intent was recorded without a result is made again, with the same
//! attempt number and idempotency key.

use super::records::{self, LeaseRecord, RunHead, RunRecord, StepRecord};
use super::state::{Frame, RunState, StepState};
use super::{Engine, EngineError, PendingCall, RunId, StepStatus, Takeover, Work};
use crate::exec::core as core_verbs;
use crate::plan::model::{LevelIx, StepIx, StepKind};
use crate::store::{ReadTxn, Table, scan_all};
use donmai_stdlib::value::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// This machine's name, for telling a dead lease holder on the same host.
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Whether process `pid` exists on this host; `true` where that cannot be
/// told (no `/proc`), so a lease is then only taken over once stale.
fn process_alive(pid: u32) -> bool {
    let proc_root = std::path::Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

/// Runs claimed per write transaction on resume.
const CLAIM_CHUNK: usize = 10_000;

impl Engine {
    pub(super) fn init_store(&self) -> Result<(), EngineError> {
        let mut found: Option<Vec<u8>> = None;
        self.store.read(&mut |txn| {
            found = txn.get(Table::Meta, records::META_FORMAT)?;
            Ok(())
        })?;
        if found.is_none() {
            self.store.write(&mut |txn| {
                found = txn.get(Table::Meta, records::META_FORMAT)?;
                if found.is_none() {
                    txn.put(
                        Table::Meta,
                        records::META_FORMAT,
                        records::FORMAT.as_bytes(),
                    )?;
                }
                Ok(())
            })?;
        }
        match found {
            Some(format) if format != records::FORMAT.as_bytes() => {
                Err(EngineError::Damaged(format!(
                    "the store holds engine format `{}`; this engine reads format {}",
                    String::from_utf8_lossy(&format),
                    records::FORMAT
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether this engine may take a run whose lease is `lease`.
    fn may_take(&self, lease: Option<&LeaseRecord>, takeover: Takeover, now: u64) -> bool {
        let Some(lease) = lease else {
            return true;
        };
        lease.owner == self.owner
            || takeover == Takeover::Any
            || now >= lease.heartbeat_at.saturating_add(self.config.lease_ttl_ms)
            || (!self.host.is_empty()
                && lease.host == self.host
                && lease.pid != self.pid
                && !process_alive(lease.pid))
    }

    pub(super) fn resume_inner(&mut self, takeover: Takeover) -> Result<Vec<RunId>, EngineError> {
        self.commit()?;
        let mut candidates = Vec::new();
        let plan_hash = self.plan_hash_hex.clone();
        self.store.read(&mut |txn| {
            candidates.clear();
            txn.scan(Table::Runs, b"", &mut |_, value| {
                if let Ok(head) = records::decode::<RunHead>("run", value)
                    && !head.status.is_terminal()
                    && head.plan_hash == plan_hash
                {
                    candidates.push(head.id);
                }
                true
            })
        })?;
        let candidates: Vec<RunId> = candidates
            .iter()
            .filter_map(|id| RunId::parse(id))
            .filter(|id| !self.runs.contains_key(id))
            .collect();
        // Grown once: the map holds run states by value, and rehashing it
        // over and over while thousands of runs load showed in the profile.
        self.runs.reserve(candidates.len());
        let mut taken = Vec::new();
        // Each chunk's leases are claimed in one synced commit: large enough
        // that a restart with thousands of runs waits on a few fsyncs, small
        // enough that one transaction stays a few hundred pages.
        for chunk in candidates.chunks(CLAIM_CHUNK) {
            taken.extend(self.adopt_many(chunk, takeover)?);
        }
        Ok(taken)
    }

    /// Claims `id`'s lease if this engine may, then loads the run. Returns
    /// whether the run is now held here. A lease of an ended run is
    /// released on the way.
    pub(super) fn adopt(&mut self, id: &RunId, takeover: Takeover) -> Result<bool, EngineError> {
        if self.runs.contains_key(id) {
            return Ok(true);
        }
        Ok(!self
            .adopt_many(std::slice::from_ref(id), takeover)?
            .is_empty())
    }

    /// Claims the leases of `ids` in one write transaction (a resume of
    /// thousands of runs is one commit per chunk, not one per run), then
    /// loads the runs it got.
    fn adopt_many(&mut self, ids: &[RunId], takeover: Takeover) -> Result<Vec<RunId>, EngineError> {
        let now = self.clock.now_ms();
        let ours = records::encode(&LeaseRecord {
            owner: self.owner.clone(),
            heartbeat_at: now,
            pid: self.pid,
            host: self.host.clone(),
        });
        let plan_hash = self.plan_hash_hex.clone();
        let mut claimed: Vec<RunId> = Vec::new();
        let this = &*self;
        this.store.write(&mut |txn| {
            claimed.clear();
            for id in ids {
                if this.runs.contains_key(id) {
                    continue;
                }
                let lease_key = records::lease_key(id);
                let record = match txn.get(Table::Runs, &records::run_key(id))? {
                    Some(bytes) => match records::decode::<RunRecord>("run", &bytes) {
                        Ok(record) => Some(record),
                        // Nobody can run it; whoever holds it keeps it.
                        Err(_) => continue,
                    },
                    None => None,
                };
                let lease = txn
                    .get(Table::Leases, &lease_key)?
                    .and_then(|bytes| records::decode::<LeaseRecord>("lease", &bytes).ok());
                let Some(record) = record.filter(|r| !r.status.is_terminal()) else {
                    if lease.is_some() {
                        txn.delete(Table::Leases, &lease_key)?;
                    }
                    continue;
                };
                // A run of another plan is left to an engine of that plan.
                if record.plan_hash != plan_hash || !this.may_take(lease.as_ref(), takeover, now) {
                    continue;
                }
                txn.put(Table::Leases, &lease_key, &ours)?;
                claimed.push(id.clone());
            }
            Ok(())
        })?;
        for id in &claimed {
            let mut run = self.load_run(id)?;
            run.lease_renewed_at = now;
            self.queue_unfinished(&run);
            self.runs.insert(id.clone(), run);
        }
        Ok(claimed)
    }

    fn load_run(&mut self, id: &RunId) -> Result<RunState, EngineError> {
        let mut record: Option<RunRecord> = None;
        let mut steps: HashMap<String, StepRecord> = HashMap::new();
        let mut damaged: Option<String> = None;
        let prefix = records::steps_prefix(id);
        self.store.read(&mut |txn: &dyn ReadTxn| {
            steps.clear();
            record = match txn.get(Table::Runs, &records::run_key(id))? {
                Some(bytes) => match records::decode("run", &bytes) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        damaged = Some(e);
                        None
                    }
                },
                None => None,
            };
            for (key, value) in scan_all(txn, Table::Steps, &prefix)? {
                let path = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                match records::decode::<StepRecord>("step", &value) {
                    Ok(step) => {
                        steps.insert(path, step);
                    }
                    Err(e) => damaged = Some(format!("{id}/{path}: {e}")),
                }
            }
            Ok(())
        })?;
        if let Some(problem) = damaged {
            return Err(EngineError::Damaged(problem));
        }
        let record = record.ok_or_else(|| EngineError::UnknownRun(id.to_string()))?;
        let payload = record.payload.clone();
        let stored_rev = record.rev;
        let mut run = self.new_run_state(id.clone(), record);
        run.stored_rev = Some(stored_rev);
        let root = super::run::trigger_root(&self.plan, &payload);
        self.build_frame(
            &mut run,
            &mut steps,
            0,
            None,
            String::new(),
            String::new(),
            root,
        );
        self.recount(&mut run);
        Ok(run)
    }

    #[allow(clippy::too_many_arguments)]
    fn build_frame(
        &self,
        run: &mut RunState,
        records: &mut HashMap<String, StepRecord>,
        level: LevelIx,
        parent: Option<(u32, StepIx)>,
        key_prefix: String,
        display_prefix: String,
        trigger: Value,
    ) -> u32 {
        let plan = Arc::clone(&self.plan);
        let def = &plan.levels[level as usize];
        let frame = run.frames.len() as u32;
        let steps: Vec<StepState> = def
            .steps
            .iter()
            .enumerate()
            .map(|(ix, step)| {
                let mut state = StepState::new(format!("{display_prefix}{}", step.id));
                if let Some(rec) = records.remove(&format!("{key_prefix}{ix}")) {
                    state.rec = rec;
                }
                state
            })
            .collect();
        run.frames.push(Frame::new(
            level,
            key_prefix.clone(),
            display_prefix.clone(),
            trigger,
            parent,
            steps,
        ));
        for (ix, step) in def.steps.iter().enumerate() {
            let child_level = match step.kind {
                StepKind::Group { level } | StepKind::Loop { level, .. } => level,
                _ => continue,
            };
            let state = &run.frames[frame as usize].steps[ix];
            if state.rec.status != StepStatus::Running || state.rec.iteration == 0 {
                continue;
            }
            let iteration = state.rec.iteration;
            let input = state.rec.input.clone().unwrap_or(Value::Null);
            let child_display = match step.kind {
                StepKind::Loop { .. } => format!("{display_prefix}{}[{iteration}]/", step.id),
                _ => format!("{display_prefix}{}/", step.id),
            };
            let child = self.build_frame(
                run,
                records,
                child_level,
                Some((frame, ix as StepIx)),
                format!("{key_prefix}{ix}.{iteration}/"),
                child_display,
                input,
            );
            run.frames[frame as usize].steps[ix].child = Some(child);
        }
        frame
    }

    /// Recomputes what the store does not hold (which predecessors ended,
    /// which edges were taken).
    fn recount(&self, run: &mut RunState) {
        let plan = Arc::clone(&self.plan);
        for frame in 0..run.frames.len() {
            let level = run.frames[frame].level as usize;
            let defs = &plan.levels[level].steps;
            for (ix, def) in defs.iter().enumerate() {
                let state = &run.frames[frame].steps[ix];
                if !state.is_terminal() {
                    continue;
                }
                let taken = if state.rec.status == StepStatus::Completed {
                    super::run::taken_edges(def, state.rec.handle.as_deref(), state.rec.route_to)
                } else {
                    Vec::new()
                };
                for &successor in &self.topology.successors[level][ix] {
                    let next = &mut run.frames[frame].steps[successor as usize];
                    next.terminal_preds += 1;
                    if taken.contains(&successor) {
                        next.activated = true;
                    }
                }
            }
            for (ix, def) in defs.iter().enumerate() {
                if !matches!(def.kind, StepKind::Trigger { .. })
                    && self.topology.predecessors[level][ix] == 0
                {
                    run.frames[frame].steps[ix].activated = true;
                }
            }
        }
    }

    /// Queues the work a freshly loaded run has left.
    fn queue_unfinished(&mut self, run: &RunState) {
        let plan = Arc::clone(&self.plan);
        for (f, frame) in run.frames.iter().enumerate() {
            let f = f as u32;
            let level = frame.level as usize;
            for (ix, state) in frame.steps.iter().enumerate() {
                let step = ix as StepIx;
                let def = &plan.levels[level].steps[ix];
                match state.rec.status {
                    StepStatus::Pending
                        if state.terminal_preds == self.topology.predecessors[level][ix] =>
                    {
                        self.work
                            .push_back(Work::Settle(run.id.clone(), run.generation, f, step));
                    }
                    StepStatus::Running => match def.kind {
                        StepKind::Action { verb } | StepKind::Condition { verb }
                            if !(core_verbs::is_core(&plan.verbs[verb as usize])
                                && plan.verbs[verb as usize].verb == core_verbs::WAIT) =>
                        {
                            // The intent is recorded and the result is not:
                            // the call may or may not have happened. Make it
                            // again with the same key.
                            self.calls.push_back(PendingCall {
                                run: run.id.clone(),
                                generation: run.generation,
                                frame: f,
                                step,
                                attempt: state.rec.attempt,
                            });
                        }
                        _ => {}
                    },
                    StepStatus::Retrying if state.rec.wait.is_none() => {
                        self.work.push_back(Work::Start(
                            run.id.clone(),
                            run.generation,
                            f,
                            step,
                            state.rec.attempt + 1,
                        ));
                    }
                    StepStatus::Waiting
                        if state
                            .rec
                            .wait
                            .as_ref()
                            .is_some_and(|w| w.subscribed_at.is_some()) =>
                    {
                        self.fresh_gates.push((
                            run.id.clone(),
                            frame.path(step),
                            state.rec.attempt,
                        ));
                    }
                    _ => {}
                }
            }
            if frame.open == 0 {
                self.work
                    .push_back(Work::FrameDone(run.id.clone(), run.generation, f));
            }
        }
    }
}
