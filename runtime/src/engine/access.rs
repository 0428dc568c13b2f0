//! What the governor (`crate::governor`) may do to the engine: read its
//! bookkeeping, and apply a due timer or a matched signal to a run it holds.

use super::records::{self, SignalRecord, TimerRecord};
use super::{Engine, EngineConfig, EngineError, RunId, StepStatus, Takeover};
use crate::governor::{GateMatcher, timer_matches};
use crate::store::{Store, Table};
use std::sync::Arc;

impl Engine {
    pub(crate) fn clock_now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn store_handle(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    pub(crate) fn last_sweep(&self) -> Option<u64> {
        self.last_sweep_ms
    }

    pub(crate) fn set_last_sweep(&mut self, now: u64) {
        self.last_sweep_ms = Some(now);
    }

    /// Held runs whose lease was last renewed at or before `before`.
    pub(crate) fn leases_due(&self, before: u64) -> Vec<RunId> {
        self.runs
            .values()
            .filter(|r| r.stored_rev.is_some() && r.lease_renewed_at <= before)
            .map(|r| r.id.clone())
            .collect()
    }

    pub(crate) fn lease_renewed(&mut self, run: &RunId, now: u64) {
        if let Some(run) = self.runs.get_mut(run) {
            run.lease_renewed_at = now;
        }
    }

    pub(crate) fn signal_cursor(&self) -> u64 {
        self.signal_cursor
    }

    pub(crate) fn set_signal_cursor(&mut self, seq: u64) {
        self.signal_cursor = seq;
    }

    pub(crate) fn take_fresh_gates(&mut self) -> Vec<(RunId, String, u32)> {
        std::mem::take(&mut self.fresh_gates)
    }

    /// Whether this engine holds `run` (committed, not ended).
    pub(crate) fn holds(&self, run: &RunId) -> bool {
        self.runs
            .get(run)
            .is_some_and(|r| r.is_active() && r.stored_rev.is_some())
    }

    pub(crate) fn drop_run(&mut self, run: &RunId) {
        self.runs.remove(run);
    }

    pub(crate) fn adopt_run(
        &mut self,
        run: &RunId,
        takeover: Takeover,
    ) -> Result<bool, EngineError> {
        self.adopt(run, takeover)
    }

    /// Deletes a store entry with the next commit (a stale timer or gate).
    pub(crate) fn queue_delete(&mut self, table: Table, key: Vec<u8>) {
        self.batch.delete(table, key);
    }

    /// The matcher of a gate attempt that is still waiting in memory.
    pub(crate) fn waiting_gate(
        &self,
        run: &RunId,
        path: &str,
        attempt: u32,
    ) -> Option<GateMatcher> {
        let state = self.runs.get(run)?;
        let (frame, step) = state.locate(path)?;
        let step = state.step(frame, step);
        let wait = step.rec.wait.as_ref()?;
        (step.rec.status == StepStatus::Waiting
            && step.rec.attempt == attempt
            && wait.subscribed_at.is_some())
        .then(|| GateMatcher {
            run: run.to_string(),
            event_types: wait.event_types.clone(),
            watermark: state.record.signal_watermark,
            filter: wait.filter.clone(),
        })
    }

    /// Applies a due timer; false when it no longer matches its step (it is
    /// then deleted as stale).
    pub(crate) fn apply_timer(
        &mut self,
        run_id: &RunId,
        timer: &TimerRecord,
        due: u64,
        key: Vec<u8>,
    ) -> Result<bool, EngineError> {
        let Some(mut run) = self.runs.remove(run_id) else {
            return Ok(false);
        };
        let target = run.locate(&timer.path).filter(|&(frame, step)| {
            let state = run.step(frame, step);
            state.rec.attempt == timer.attempt
                && timer_matches(timer.kind, state.rec.status)
                && state
                    .rec
                    .wait
                    .as_ref()
                    .and_then(|w| w.timer)
                    .is_some_and(|(kind, at)| kind == timer.kind && at == due)
        });
        let fired = match target {
            Some((frame, step)) if run.is_active() => {
                self.batch.expects.push((Table::Timers, key.clone()));
                self.batch.delete(Table::Timers, key);
                self.on_timer(&mut run, frame, step, timer.kind);
                true
            }
            _ => {
                self.batch.delete(Table::Timers, key);
                false
            }
        };
        self.runs.insert(run_id.clone(), run);
        Ok(fired)
    }

    /// Resumes the gate attempt at `path` with `signal`, consuming the
    /// signal in the same commit. False when the gate is no longer waiting.
    pub(crate) fn consume_signal(
        &mut self,
        run_id: &RunId,
        path: &str,
        attempt: u32,
        signal: &SignalRecord,
    ) -> Result<bool, EngineError> {
        if self.waiting_gate(run_id, path, attempt).is_none() {
            return Ok(false);
        }
        let Some(mut run) = self.runs.remove(run_id) else {
            return Ok(false);
        };
        let Some((frame, step)) = run.locate(path) else {
            self.runs.insert(run_id.clone(), run);
            return Ok(false);
        };
        let key = records::signal_key(signal.seq);
        self.batch.expects.push((Table::Signals, key.clone()));
        self.batch.delete(Table::Signals, key);
        self.resume_gate_with(&mut run, frame, step, signal);
        self.runs.insert(run_id.clone(), run);
        Ok(true)
    }
}
