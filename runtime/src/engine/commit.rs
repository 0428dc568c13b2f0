//! Batches of transitions and their commit: one store transaction that
//! re-checks every touched run's lease and `rev`, writes the changed step
//! records, run records, lease heartbeats, queued timer/gate/signal changes
//! and the events (passing each to the audit hook), then — only after the
//! commit — hands the events to the sink.

use super::records::{self, LeaseRecord, RunRecord};
use super::state::RunState;
use super::{Engine, EngineError, Event, EventType, RunId, Work};
use crate::clock::rfc3339;
use crate::store::{StoreError, Table};
use std::collections::HashSet;

#[derive(Default)]
pub(crate) struct Batch {
    /// Timer, gate, signal and attempt-record changes, in order.
    pub ops: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
    /// Keys that must still exist when the batch commits (a timer or a
    /// signal this batch consumes): the compare-and-set of claims.
    pub expects: Vec<(Table, Vec<u8>)>,
    pub events: Vec<Event>,
    pub touched: Vec<RunId>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.events.is_empty() && self.touched.is_empty()
    }

    pub fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((table, key, Some(value)));
    }

    pub fn delete(&mut self, table: Table, key: Vec<u8>) {
        self.ops.push((table, key, None));
    }
}

struct Prepared {
    run: RunId,
    expected_rev: Option<u64>,
    writes: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
}

const CONFLICT: &str = "engine: conflict";

impl Engine {
    pub(super) fn touch(&mut self, run: &mut RunState) {
        if !run.touched {
            run.touched = true;
            self.batch.touched.push(run.id.clone());
        }
    }

    /// Records an event of `run` in the batch; `fill` sets its fields.
    pub(super) fn emit(
        &mut self,
        run: &mut RunState,
        kind: EventType,
        fill: impl FnOnce(&mut Event),
    ) {
        self.touch(run);
        let now = self.clock.now_ms();
        if self.at_cache.0 != now || self.at_cache.1.is_empty() {
            self.at_cache = (now, rfc3339(now));
        }
        let mut event = Event::new(
            kind,
            run.id.as_str(),
            run.record.next_event,
            self.at_cache.1.clone(),
        );
        run.record.next_event += 1;
        fill(&mut event);
        self.batch.events.push(event);
    }

    /// Runs queued internal work to the end, committing whenever the batch
    /// is full and once at the end.
    pub(super) fn process_work(&mut self) -> Result<(), EngineError> {
        while let Some(work) = self.work.pop_front() {
            let (id, generation) = match &work {
                Work::Settle(id, g, ..) | Work::Start(id, g, ..) | Work::FrameDone(id, g, _) => {
                    (id.clone(), *g)
                }
            };
            let Some(mut run) = self.runs.remove(&id) else {
                continue;
            };
            if run.generation == generation && run.is_active() {
                match work {
                    Work::Settle(_, _, frame, step) => self.settle(&mut run, frame, step),
                    Work::Start(_, _, frame, step, attempt) => {
                        self.start_attempt(&mut run, frame, step, attempt)
                    }
                    Work::FrameDone(_, _, frame) => self.frame_done(&mut run, frame),
                }
            }
            self.runs.insert(id, run);
            if self.batch.events.len() >= self.config.max_batch_transitions {
                self.commit()?;
            }
        }
        self.commit()
    }

    /// Commits the batch. On failure every run it touched is dropped from
    /// memory (its state there is ahead of the store); after a conflict the
    /// runs still leased to this engine are reloaded.
    pub(crate) fn commit(&mut self) -> Result<(), EngineError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let now = self.clock.now_ms();
        let mut prepared = Vec::with_capacity(batch.touched.len());
        for id in &batch.touched {
            let Some(run) = self.runs.get_mut(id) else {
                continue;
            };
            run.touched = false;
            let mut writes = Vec::with_capacity(run.dirty.len() + 2);
            for (frame, step) in std::mem::take(&mut run.dirty) {
                let path = run.frames[frame as usize].path(step);
                let state = run.step_mut(frame, step);
                state.dirty = false;
                writes.push((
                    Table::Steps,
                    records::step_key(id, &path),
                    Some(records::encode(&state.rec)),
                ));
            }
            let expected_rev = run.stored_rev;
            run.record.rev = expected_rev.map_or(0, |rev| rev + 1);
            writes.push((
                Table::Runs,
                records::run_key(id),
                Some(records::encode(&run.record)),
            ));
            // An ended run gives its lease up in the same commit.
            let lease = (!run.record.status.is_terminal()).then(|| {
                records::encode(&LeaseRecord {
                    owner: self.owner.clone(),
                    heartbeat_at: now,
                    pid: self.pid,
                    host: self.host.clone(),
                })
            });
            writes.push((Table::Leases, records::lease_key(id), lease));
            prepared.push(Prepared {
                run: id.clone(),
                expected_rev,
                writes,
            });
        }
        // Every event belongs to a touched run, so its run record and lease
        // are checked in the same transaction.
        let checked: HashSet<&str> = prepared.iter().map(|p| p.run.as_str()).collect();
        let encoded_events: Vec<(Vec<u8>, Vec<u8>, &Event)> = batch
            .events
            .iter()
            .filter(|event| checked.contains(event.run_id.as_str()))
            .filter_map(|event| {
                let id = RunId::parse(&event.run_id)?;
                Some((records::event_key(&id, event.seq), event.encode(), event))
            })
            .collect();
        let mut conflict: Option<String> = None;
        let owner = self.owner.clone();
        let hook = self.hook.as_deref();
        let result = self.store.write(&mut |txn| {
            for p in &prepared {
                let lease = txn.get(Table::Leases, &records::lease_key(&p.run))?;
                let stored = txn.get(Table::Runs, &records::run_key(&p.run))?;
                let problem = check_claim(&owner, p, lease.as_deref(), stored.as_deref());
                if let Some(problem) = problem {
                    conflict = Some(problem);
                    return Err(StoreError::new(CONFLICT));
                }
            }
            for (table, key) in &batch.expects {
                if txn.get(*table, key)?.is_none() {
                    conflict = Some(format!(
                        "{} entry `{}` was already consumed",
                        table.name(),
                        String::from_utf8_lossy(key)
                    ));
                    return Err(StoreError::new(CONFLICT));
                }
            }
            for (table, key, value) in batch
                .ops
                .iter()
                .chain(prepared.iter().flat_map(|p| p.writes.iter()))
            {
                match value {
                    Some(value) => txn.put(*table, key, value)?,
                    None => {
                        txn.delete(*table, key)?;
                    }
                }
            }
            for (key, bytes, event) in &encoded_events {
                txn.put(Table::Events, key, bytes)?;
                if let Some(hook) = hook {
                    hook.append(txn, event, bytes)?;
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.stats.commits += 1;
                self.stats.transitions += batch.events.len() as u64;
                for p in &prepared {
                    let ended = match self.runs.get_mut(&p.run) {
                        Some(run) => {
                            run.stored_rev = Some(run.record.rev);
                            run.lease_renewed_at = now;
                            run.record.status.is_terminal()
                        }
                        None => false,
                    };
                    if ended {
                        self.runs.remove(&p.run);
                    }
                }
                if let Some(sink) = self.sink.as_mut() {
                    for event in &batch.events {
                        sink(event);
                    }
                }
                Ok(())
            }
            Err(error) => {
                for p in &prepared {
                    self.runs.remove(&p.run);
                }
                match conflict {
                    Some(problem) => {
                        for p in &prepared {
                            self.adopt(&p.run, super::Takeover::Unowned)?;
                        }
                        Err(EngineError::Conflict(problem))
                    }
                    None => Err(EngineError::Store(error)),
                }
            }
        }
    }
}

/// Why this engine may not commit for a run, if it may not.
fn check_claim(
    owner: &str,
    prepared: &Prepared,
    lease: Option<&[u8]>,
    stored: Option<&[u8]>,
) -> Option<String> {
    let run = &prepared.run;
    match (prepared.expected_rev, lease) {
        (None, None) => {}
        (Some(_), Some(bytes)) => match records::decode::<LeaseRecord>("lease", bytes) {
            Ok(lease) if lease.owner == owner => {}
            Ok(lease) => return Some(format!("run {run} is now held by {}", lease.owner)),
            Err(e) => return Some(e),
        },
        (None, Some(_)) => return Some(format!("run {run} already has a lease")),
        (Some(_), None) => return Some(format!("run {run} lost its lease")),
    }
    match (prepared.expected_rev, stored) {
        (None, None) => None,
        (Some(expected), Some(bytes)) => match records::decode::<RunRecord>("run", bytes) {
            Ok(record) if record.rev == expected => None,
            Ok(record) if record.status.is_terminal() => Some(format!(
                "run {run} was {} elsewhere",
                record.status.as_str()
            )),
            Ok(_) => Some(format!("run {run} was changed by another process")),
            Err(e) => Some(e),
        },
        (None, Some(_)) => Some(format!("run {run} already exists")),
        (Some(_), None) => Some(format!("run {run} is gone from the store")),
    }
}
