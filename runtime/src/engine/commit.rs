//! Batches of transitions and their commit: one store transaction that
//! re-checks every touched run's lease and `rev`, writes the changed step
//! records, run records, lease heartbeats, queued timer/gate/signal changes
//! and the events (passing each to the audit hook), then — only after the
//! commit — hands the events to the sink.

use super::records::{self, LeaseRecord, RunHead};
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

    fn clear(&mut self) {
        self.ops.clear();
        self.expects.clear();
        self.events.clear();
        self.touched.clear();
    }
}

struct Prepared {
    run: RunId,
    expected_rev: Option<u64>,
}

/// One write of [`Staged`]: byte ranges of its buffer.
struct StagedWrite {
    table: Table,
    key: usize,
    /// Where the key ends and the value starts.
    value: usize,
    /// Where the value ends; `None` deletes the key.
    end: Option<usize>,
    /// The event of the batch this write stores, for the audit hook.
    event: Option<usize>,
}

/// The encoded records of one commit in one byte buffer that is kept from
/// commit to commit: once it has grown to the working size, encoding a
/// batch of thousands of records allocates nothing. (Fresh allocations of
/// that size cost a page fault per page on every commit with common
/// allocators, which measured more than the encoding itself.)
#[derive(Default)]
pub(crate) struct Staged {
    bytes: Vec<u8>,
    writes: Vec<StagedWrite>,
}

/// A staging buffer larger than this (a batch with huge outputs) is not
/// kept for the next commit.
const KEPT_STAGING_BYTES: usize = 16 << 20;

impl Staged {
    fn clear(&mut self) {
        self.bytes.clear();
        self.writes.clear();
        if self.bytes.capacity() > KEPT_STAGING_BYTES {
            self.bytes = Vec::new();
        }
    }

    /// Stages a write whose key and value the closures append.
    fn put(
        &mut self,
        table: Table,
        key: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>),
        event: Option<usize>,
    ) {
        let start = self.bytes.len();
        key(&mut self.bytes);
        let value_start = self.bytes.len();
        value(&mut self.bytes);
        self.writes.push(StagedWrite {
            table,
            key: start,
            value: value_start,
            end: Some(self.bytes.len()),
            event,
        });
    }

    fn delete(&mut self, table: Table, key: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        key(&mut self.bytes);
        self.writes.push(StagedWrite {
            table,
            key: start,
            value: self.bytes.len(),
            end: None,
            event: None,
        });
    }
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
        let mut batch = std::mem::take(&mut self.batch);
        let mut staged = std::mem::take(&mut self.staged);
        staged.clear();
        let now = self.clock.now_ms();
        // The same lease record for every run this commit renews.
        let lease = records::encode(&LeaseRecord {
            owner: self.owner.clone(),
            heartbeat_at: now,
            pid: self.pid,
            host: self.host.clone(),
        });
        let mut prepared = Vec::with_capacity(batch.touched.len());
        for id in &batch.touched {
            let Some(run) = self.runs.get_mut(id) else {
                continue;
            };
            run.touched = false;
            let mut dirty = std::mem::take(&mut run.dirty);
            for &(frame, step) in &dirty {
                let frame = &mut run.frames[frame as usize];
                let state = &mut frame.steps[step as usize];
                state.dirty = false;
                staged.put(
                    Table::Steps,
                    |out| records::push_step_key(out, id, &frame.key_prefix, step),
                    |out| records::encode_into(out, &state.rec),
                    None,
                );
            }
            // Handed back empty, so the list keeps its capacity.
            dirty.clear();
            run.dirty = dirty;
            let expected_rev = run.stored_rev;
            run.record.rev = expected_rev.map_or(0, |rev| rev + 1);
            staged.put(
                Table::Runs,
                |out| out.extend_from_slice(id.as_str().as_bytes()),
                |out| records::encode_into(out, &run.record),
                None,
            );
            // An ended run gives its lease up in the same commit.
            let lease_key = |out: &mut Vec<u8>| out.extend_from_slice(id.as_str().as_bytes());
            if run.record.status.is_terminal() {
                staged.delete(Table::Leases, lease_key);
            } else {
                staged.put(
                    Table::Leases,
                    lease_key,
                    |out| out.extend_from_slice(&lease),
                    None,
                );
            }
            prepared.push(Prepared {
                run: id.clone(),
                expected_rev,
            });
        }
        // Every event belongs to a touched run, so its run record and lease
        // are checked in the same transaction; an event of a run no longer
        // held here is not written.
        let checked: Option<HashSet<&str>> = (prepared.len() != batch.touched.len())
            .then(|| prepared.iter().map(|p| p.run.as_str()).collect());
        for (ix, event) in batch.events.iter().enumerate() {
            if checked
                .as_ref()
                .is_some_and(|checked| !checked.contains(event.run_id.as_str()))
            {
                continue;
            }
            staged.put(
                Table::Events,
                |out| records::push_event_key(out, &event.run_id, event.seq),
                |out| records::encode_into(out, event),
                Some(ix),
            );
        }
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
            for (table, key, value) in &batch.ops {
                match value {
                    Some(value) => txn.put(*table, key, value)?,
                    None => {
                        txn.delete(*table, key)?;
                    }
                }
            }
            for write in &staged.writes {
                let key = &staged.bytes[write.key..write.value];
                let Some(end) = write.end else {
                    txn.delete(write.table, key)?;
                    continue;
                };
                let value = &staged.bytes[write.value..end];
                txn.put(write.table, key, value)?;
                if let (Some(ix), Some(hook)) = (write.event, hook) {
                    hook.append(txn, &batch.events[ix], value)?;
                }
            }
            Ok(())
        });
        self.staged = staged;
        let outcome = match result {
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
        };
        // Handed back empty, so the next batch reuses its capacity.
        batch.clear();
        if self.batch.is_empty() {
            self.batch = batch;
        }
        outcome
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
        (Some(expected), Some(bytes)) => match records::decode::<RunHead>("run", bytes) {
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
