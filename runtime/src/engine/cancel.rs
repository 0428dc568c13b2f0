//! Operator cancellation. A run this engine holds is cancelled in memory and
//! committed like any transition. A run held elsewhere (or by nobody) is
//! cancelled directly in the store, in one transaction: its record, its open
//! steps, their timers and gate subscriptions, and the `run.cancelled`
//! event. The holder's next commit then fails its `rev` check and it drops
//! the run. A cancelled run is never re-dispatched.

use super::records::{self, RunRecord, StepRecord};
use super::{Engine, EngineError, Event, EventType, RunId, RunStatus, StepStatus};
use crate::clock::rfc3339;
use crate::store::{StoreError, Table, scan_all};

const REASON: &str = "cancelled by an operator";

impl Engine {
    pub(super) fn cancel_inner(&mut self, id: &RunId) -> Result<bool, EngineError> {
        if let Some(mut run) = self.runs.remove(id) {
            let active = run.is_active();
            if active {
                self.abort_run(
                    &mut run,
                    RunStatus::Cancelled,
                    None,
                    Some(REASON.to_string()),
                    true,
                );
            }
            self.runs.insert(id.clone(), run);
            return match self.commit() {
                Ok(()) => Ok(active),
                // Someone else ended the run first (an operator elsewhere).
                Err(EngineError::Conflict(_))
                    if super::query::run_info(self.store.as_ref(), id)?
                        .is_some_and(|info| info.run.status.is_terminal()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            };
        }
        let now = self.clock.now_ms();
        let mut outcome: Option<Result<Event, EngineError>> = None;
        let hook = self.hook.as_deref();
        self.store.write(&mut |txn| {
            outcome = None;
            let Some(bytes) = txn.get(Table::Runs, &records::run_key(id))? else {
                outcome = Some(Err(EngineError::UnknownRun(id.to_string())));
                return Ok(());
            };
            let mut record = match records::decode::<RunRecord>("run", &bytes) {
                Ok(record) => record,
                Err(e) => {
                    outcome = Some(Err(EngineError::Damaged(e)));
                    return Ok(());
                }
            };
            if record.status.is_terminal() {
                return Ok(());
            }
            let prefix = records::steps_prefix(id);
            for (key, value) in scan_all(txn, Table::Steps, &prefix)? {
                let Ok(mut step) = records::decode::<StepRecord>("step", &value) else {
                    continue;
                };
                if step.status.is_terminal() {
                    continue;
                }
                let path = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                if let Some(wait) = step.wait.take() {
                    if let Some((_, due)) = wait.timer {
                        txn.delete(Table::Timers, &records::timer_key(due, id, &path))?;
                    }
                    if let Some(at) = wait.subscribed_at {
                        for event_type in &wait.event_types {
                            txn.delete(
                                Table::Gates,
                                &records::gate_key(event_type, at, id, &path),
                            )?;
                        }
                    }
                }
                if step.status != StepStatus::Pending {
                    step.status = StepStatus::Cancelled;
                    step.ended_at = Some(now);
                    txn.put(Table::Steps, &key, &records::encode(&step))?;
                }
            }
            let mut event = Event::new(
                EventType::RunCancelled,
                id.as_str(),
                record.next_event,
                rfc3339(now),
            );
            event.reason = Some(REASON.to_string());
            record.next_event += 1;
            record.rev += 1;
            record.status = RunStatus::Cancelled;
            record.cancelled_by_operator = true;
            record.ended_at = Some(now);
            txn.put(
                Table::Runs,
                &records::run_key(id),
                &records::encode(&record),
            )?;
            let encoded = event.encode();
            txn.put(Table::Events, &records::event_key(id, event.seq), &encoded)?;
            if let Some(hook) = hook {
                hook.append(txn, &event, &encoded)?;
            }
            outcome = Some(Ok(event));
            Ok::<(), StoreError>(())
        })?;
        match outcome {
            None => Ok(false),
            Some(Err(e)) => Err(e),
            Some(Ok(event)) => {
                if let Some(sink) = self.sink.as_mut() {
                    sink(&event);
                }
                Ok(true)
            }
        }
    }
}
