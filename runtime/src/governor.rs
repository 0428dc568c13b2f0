//! The governor tick: one sweep over what time and other processes change.
//!
//! 1. Due timers (gate and step timeouts, retry backoff, `core.wait`, timer
//!    gates), in due order, each applied to its run.
//! 2. Signals: new signals against waiting gates (the first subscribed gate
//!    whose event type, run correlation and filter match takes the signal),
//!    and newly subscribed gates against signals that arrived before them.
//! 3. Periodically: stale leases (no heartbeat for `lease_ttl_ms`) — their
//!    runs are taken over and their unfinished calls re-dispatched, except
//!    runs that ended (an operator's cancel included), whose leases are just
//!    released; expired signals; this engine's own lease heartbeats.
//!
//! It is idempotent and safe from several processes: a run is only advanced
//! by its lease holder, a lease changes hands only inside a write
//! transaction that re-reads it (compare-and-set), and consuming a timer or
//! a signal is part of the commit that applies it, which fails if another
//! process consumed it first.

use crate::engine::records::{
    self, GateRecord, LeaseRecord, RunRecord, SignalRecord, TimerKind, TimerRecord,
};
use crate::engine::{Engine, EngineError, RunId, StepStatus, Takeover};
use crate::store::{Table, scan_all};
use std::collections::HashSet;

/// What one tick did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    pub timers_fired: usize,
    pub signals_matched: usize,
    pub runs_adopted: usize,
    pub signals_expired: usize,
    pub stale_entries_removed: usize,
}

impl TickReport {
    /// Whether the tick changed any run (so more work may be queued).
    pub fn did_work(&self) -> bool {
        self.timers_fired + self.signals_matched + self.runs_adopted > 0
    }
}

/// Timers handled per tick at most, so one tick stays short.
const TIMERS_PER_TICK: usize = 10_000;

impl Engine {
    /// One governor sweep. Transitions it causes are committed before it
    /// returns; the work they queue runs at the next [`Engine::step`].
    pub fn tick(&mut self) -> Result<TickReport, EngineError> {
        self.commit()?;
        let now = self.clock_now();
        let mut report = TickReport::default();
        let sweep_every = (self.config().lease_ttl_ms / 4).max(1);
        if self
            .last_sweep()
            .is_none_or(|last| now >= last.saturating_add(sweep_every))
        {
            self.set_last_sweep(now);
            self.sweep_leases(now, &mut report)?;
            self.expire_signals(now, &mut report)?;
        }
        self.heartbeat(now)?;
        self.fire_due_timers(now, &mut report)?;
        self.match_signals(&mut report)?;
        self.commit()?;
        Ok(report)
    }

    fn sweep_leases(&mut self, now: u64, report: &mut TickReport) -> Result<(), EngineError> {
        let ttl = self.config().lease_ttl_ms;
        let mut stale = Vec::new();
        let owner = self.owner().to_string();
        self.store_handle().read(&mut |txn| {
            stale.clear();
            txn.scan(Table::Leases, b"", &mut |key, value| {
                if let Ok(lease) = records::decode::<LeaseRecord>("lease", value)
                    && lease.owner != owner
                    && now >= lease.heartbeat_at.saturating_add(ttl)
                {
                    stale.push(String::from_utf8_lossy(key).into_owned());
                }
                true
            })
        })?;
        for id in stale {
            let Some(id) = RunId::parse(&id) else {
                continue;
            };
            if self.config().adopt_stale_runs {
                // `adopt` also releases the lease of a run that ended, and
                // never takes a run of another plan.
                if self.adopt_run(&id, Takeover::Unowned)? {
                    report.runs_adopted += 1;
                }
            }
        }
        Ok(())
    }

    fn expire_signals(&mut self, now: u64, report: &mut TickReport) -> Result<(), EngineError> {
        let retention = self.config().signal_retention_ms;
        let is_old = |value: &[u8]| {
            records::decode::<SignalRecord>("signal", value)
                .map_or(true, |s| now >= s.at.saturating_add(retention))
        };
        // Read first: most sweeps find nothing and need no write.
        let mut any = false;
        self.store_handle().read(&mut |txn| {
            any = false;
            txn.scan(Table::Signals, b"", &mut |_, value| {
                any = is_old(value);
                !any
            })
        })?;
        if !any {
            return Ok(());
        }
        let mut expired = 0;
        self.store_handle().write(&mut |txn| {
            expired = 0;
            for (key, value) in scan_all(txn, Table::Signals, b"")? {
                if is_old(&value) {
                    txn.delete(Table::Signals, &key)?;
                    expired += 1;
                }
            }
            Ok(())
        })?;
        report.signals_expired += expired;
        Ok(())
    }

    fn fire_due_timers(&mut self, now: u64, report: &mut TickReport) -> Result<(), EngineError> {
        let mut due = Vec::new();
        self.store_handle().read(&mut |txn| {
            due.clear();
            txn.scan(Table::Timers, b"", &mut |key, value| {
                match records::timer_due(key) {
                    Some(at) if at <= now => {
                        due.push((key.to_vec(), at, value.to_vec()));
                        due.len() < TIMERS_PER_TICK
                    }
                    Some(_) => false,
                    // Not a key this engine writes: leave it.
                    None => true,
                }
            })
        })?;
        for (key, at, value) in due {
            let Ok(timer) = records::decode::<TimerRecord>("timer", &value) else {
                self.queue_delete(Table::Timers, key);
                report.stale_entries_removed += 1;
                continue;
            };
            let Some(run) = RunId::parse(&timer.run) else {
                self.queue_delete(Table::Timers, key);
                report.stale_entries_removed += 1;
                continue;
            };
            if !self.holds(&run) {
                match self.run_state_in_store(&run)? {
                    Some(record) if !record.status.is_terminal() => {
                        // Held by another live engine, or of another plan:
                        // its holder fires it.
                        continue;
                    }
                    _ => {
                        self.queue_delete(Table::Timers, key);
                        report.stale_entries_removed += 1;
                        continue;
                    }
                }
            }
            if self.apply_timer(&run, &timer, at, key)? {
                report.timers_fired += 1;
            } else {
                report.stale_entries_removed += 1;
            }
        }
        Ok(())
    }

    fn match_signals(&mut self, report: &mut TickReport) -> Result<(), EngineError> {
        let latest = crate::engine::query::signal_seq(self.store_handle().as_ref())?;
        let fresh = self.take_fresh_gates();
        if latest <= self.signal_cursor() && fresh.is_empty() {
            return Ok(());
        }
        let mut pending: Vec<SignalRecord> = Vec::new();
        self.store_handle().read(&mut |txn| {
            pending.clear();
            txn.scan(Table::Signals, b"", &mut |_, value| {
                if let Ok(signal) = records::decode::<SignalRecord>("signal", value) {
                    pending.push(signal);
                }
                true
            })
        })?;
        let cursor = self.signal_cursor();
        let mut consumed: HashSet<u64> = HashSet::new();
        for signal in pending.iter().filter(|s| s.seq > cursor) {
            if self.offer_signal(signal)? {
                consumed.insert(signal.seq);
                report.signals_matched += 1;
            }
        }
        self.set_signal_cursor(latest.max(cursor));
        for (run, path, attempt) in fresh {
            let Some(gate) = self.waiting_gate(&run, &path, attempt) else {
                continue;
            };
            for signal in &pending {
                if consumed.contains(&signal.seq) || !gate.accepts(signal) {
                    continue;
                }
                if self.consume_signal(&run, &path, attempt, signal)? {
                    consumed.insert(signal.seq);
                    report.signals_matched += 1;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Gives `signal` to the first subscribed gate that accepts it. Returns
    /// whether a gate of this engine took it.
    fn offer_signal(&mut self, signal: &SignalRecord) -> Result<bool, EngineError> {
        let mut gates = Vec::new();
        let prefix = records::gates_prefix(&signal.event_type);
        self.store_handle().read(&mut |txn| {
            gates = scan_all(txn, Table::Gates, &prefix)?;
            Ok(())
        })?;
        for (key, value) in gates {
            let Ok(gate) = records::decode::<GateRecord>("gate", &value) else {
                self.queue_delete(Table::Gates, key);
                continue;
            };
            let matcher = GateMatcher {
                run: gate.run.clone(),
                event_types: vec![signal.event_type.clone()],
                watermark: gate.signal_watermark,
                filter: gate.filter.clone(),
            };
            if !matcher.accepts(signal) {
                continue;
            }
            let Some(run) = RunId::parse(&gate.run) else {
                self.queue_delete(Table::Gates, key);
                continue;
            };
            if !self.holds(&run) {
                match self.run_state_in_store(&run)? {
                    Some(record) if !record.status.is_terminal() => {
                        if !(self.config().adopt_stale_runs
                            && self.adopt_run(&run, Takeover::Unowned)?)
                        {
                            // The first match belongs to a run another live
                            // engine holds: the signal is its to take.
                            return Ok(false);
                        }
                    }
                    _ => {
                        self.queue_delete(Table::Gates, key);
                        continue;
                    }
                }
            }
            if self.consume_signal(&run, &gate.path, gate.attempt, signal)? {
                return Ok(true);
            }
            // The record outlived its gate (an earlier attempt).
            self.queue_delete(Table::Gates, key);
        }
        Ok(false)
    }

    /// Renews the leases this engine has not written for a third of their
    /// time to live (every commit renews the leases of the runs it touches).
    fn heartbeat(&mut self, now: u64) -> Result<(), EngineError> {
        let renew_after = (self.config().lease_ttl_ms / 3).max(1);
        let held = self.leases_due(now.saturating_sub(renew_after));
        if held.is_empty() {
            return Ok(());
        }
        let owner = self.owner().to_string();
        let lease = records::encode(&LeaseRecord {
            owner: owner.clone(),
            heartbeat_at: now,
            pid: std::process::id(),
            host: self.host().to_string(),
        });
        let mut lost = Vec::new();
        self.store_handle().write(&mut |txn| {
            lost.clear();
            for run in &held {
                let key = records::lease_key(run);
                let still_ours = txn
                    .get(Table::Leases, &key)?
                    .and_then(|bytes| records::decode::<LeaseRecord>("lease", &bytes).ok())
                    .is_some_and(|l| l.owner == owner);
                if still_ours {
                    txn.put(Table::Leases, &key, &lease)?;
                } else {
                    lost.push(run.clone());
                }
            }
            Ok(())
        })?;
        for run in &held {
            if !lost.contains(run) {
                self.lease_renewed(run, now);
            }
        }
        for run in lost {
            self.drop_run(&run);
        }
        Ok(())
    }

    fn run_state_in_store(&self, run: &RunId) -> Result<Option<RunRecord>, EngineError> {
        let mut found = None;
        self.store_handle().read(&mut |txn| {
            found = txn
                .get(Table::Runs, &records::run_key(run))?
                .and_then(|bytes| records::decode::<RunRecord>("run", &bytes).ok());
            Ok(())
        })?;
        Ok(found)
    }
}

/// What decides whether a gate takes a signal.
pub(crate) struct GateMatcher {
    pub run: String,
    pub event_types: Vec<String>,
    pub watermark: u64,
    pub filter: Option<crate::engine::Filter>,
}

impl GateMatcher {
    /// A signal naming a run goes to that run's gates only; one that names
    /// none goes to gates of runs started before it arrived. Then the
    /// filter decides.
    pub fn accepts(&self, signal: &SignalRecord) -> bool {
        let listens = self.event_types.contains(&signal.event_type);
        let eligible = listens
            && match &signal.run_id {
                Some(run) => *run == self.run,
                None => signal.seq > self.watermark,
            };
        eligible
            && self
                .filter
                .as_ref()
                .is_none_or(|filter| filter.matches(&signal.data))
    }
}

/// Whether a timer of `kind` can still apply to a step in `status`.
pub(crate) fn timer_matches(kind: TimerKind, status: StepStatus) -> bool {
    match kind {
        TimerKind::Retry => status == StepStatus::Retrying,
        TimerKind::GateTimeout | TimerKind::TimerGate | TimerKind::Sleep => {
            status == StepStatus::Waiting
        }
    }
}
