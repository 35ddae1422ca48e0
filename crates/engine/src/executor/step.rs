//! One step's reconcile loop: observe → (apply → (wait)) with retries, as a small state machine
//! whose every transition is committed to the store.
//!
//! The durability invariants are enforced here, each where it is marked `INVARIANT`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::Instrument;

use super::shared::{Interrupted, RunShared};
use crate::error::{StepError, StoreError};
use crate::events::{CrashPoint, Event};
use crate::kind::{Applied, Observation, OperationHandle, Outputs, PollOutcome, StepContext, StepKind};
use crate::policy::{PollPolicy, RetryBackoff, RetryPolicy};
use crate::store::{ErrorRecord, JournalEvent, StepRecord, StepState, StepStatus};
use crate::template;
use crate::time::now_ms;

/// How a step's part of the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepEnd {
    Succeeded,
    Skipped,
    Failed,
    /// Shutdown reached it; its stored state is resumable as is.
    Interrupted,
}

/// Why the inner loop stopped short of an ordinary transition.
enum Halt {
    Step(StepError),
    Store(StoreError),
    Interrupted,
}

impl From<StepError> for Halt {
    fn from(e: StepError) -> Self {
        Halt::Step(e)
    }
}
impl From<StoreError> for Halt {
    fn from(e: StoreError) -> Self {
        Halt::Store(e)
    }
}
impl From<Interrupted> for Halt {
    fn from(_: Interrupted) -> Self {
        Halt::Interrupted
    }
}

pub(crate) struct StepDriver {
    shared: Arc<RunShared>,
    index: usize,
    kind: Arc<dyn StepKind>,
    record: StepRecord,
    retry: RetryPolicy,
    poll: PollPolicy,
    backoff: RetryBackoff,
    attempts_here: u32,
    not_yet_since: Option<Instant>,
    applied: bool,
    /// The stored record says succeeded and nothing has been committed this session: a
    /// re-observation that finds it still converged, with the same outputs, writes nothing.
    stored_success: bool,
    /// Journal entries not yet committed: the `observing` transition protects nothing on its
    /// own, so it rides along with whatever the step commits next.
    deferred: Vec<JournalEvent>,
}

impl StepDriver {
    pub fn new(shared: Arc<RunShared>, index: usize, record: StepRecord) -> Self {
        let spec = &shared.plan.steps[index];
        let kind = Arc::clone(
            shared
                .registry
                .get(&spec.kind)
                .expect("kinds are checked by validation"),
        );
        let retry = shared.retry[index].clone();
        let poll = kind.poll_policy().unwrap_or(shared.config.poll);
        let backoff = retry.backoff();
        let stored_success = record.state() == StepState::Succeeded;
        StepDriver {
            shared,
            index,
            kind,
            record,
            retry,
            poll,
            backoff,
            attempts_here: 0,
            not_yet_since: None,
            applied: false,
            stored_success,
            deferred: Vec::new(),
        }
    }

    pub async fn run(mut self) -> StepEnd {
        let step = self.record.step_id.clone();
        self.shared.emit(Event::StepStarted {
            step: step.clone(),
            kind: self.kind_name(),
        });
        if self.record.started_at_ms.is_none() {
            self.record.started_at_ms = Some(now_ms());
        }
        let end = match self.shared.timeouts[self.index] {
            Some(limit) => match tokio::time::timeout(limit, self.reconcile()).await {
                Ok(end) => end,
                Err(_) => {
                    let message = format!(
                        "step did not finish within its timeout of {limit:?}; an operation it started is re-attached on resume"
                    );
                    self.fail(&StepError::permanent(message)).await
                }
            },
            None => self.reconcile().await,
        };
        if end != StepEnd::Interrupted {
            self.shared.emit(Event::StepFinished {
                step,
                state: self.record.state(),
                applied: self.applied,
                outputs: self.record.outputs.clone(),
                error: self.record.error.as_ref().map(|e| e.message.clone()),
            });
        }
        end
    }

    fn kind_name(&self) -> String {
        self.shared.plan.steps[self.index].kind.clone()
    }

    async fn reconcile(&mut self) -> StepEnd {
        loop {
            if self.shared.stopping() {
                return StepEnd::Interrupted;
            }
            // Every pass through observe/apply or a resumed wait is one attempt.
            self.attempts_here += 1;
            self.record.attempts += 1;
            let span = tracing::info_span!("attempt", n = self.record.attempts);
            let result = match &self.record.status {
                StepStatus::Skipped => return StepEnd::Skipped,
                // INVARIANT: an operation a previous attempt started is settled (polled until it
                // is done or failed) before anything else, whatever ended that attempt: an
                // interrupt or a crash leaves the step waiting on it, a step timeout or a
                // failure leaves it failed with the operation unsettled.
                StepStatus::Waiting(handle) => {
                    let handle = handle.clone();
                    self.wait(handle).instrument(span).await
                }
                StepStatus::Failed {
                    unsettled: Some(handle),
                } => {
                    let handle = handle.clone();
                    self.settle(handle).instrument(span).await
                }
                // A succeeded step is observed again (never applied blindly) when its run
                // continues: what drifted since is repaired before its dependents run.
                _ => self.observe_then_apply().instrument(span).await,
            };
            match result {
                Ok(end) => return end,
                Err(Halt::Interrupted) => return StepEnd::Interrupted,
                Err(Halt::Store(e)) => return self.fail(&StepError::permanent(format!("store: {e}"))).await,
                Err(Halt::Step(e)) => match self.retry_after(e).await {
                    Ok(()) => continue,
                    Err(end) => return end,
                },
            }
        }
    }

    fn context(&self, params: serde_json::Map<String, Value>) -> StepContext {
        StepContext {
            run_id: self.shared.run_id.clone(),
            step_id: self.record.step_id.clone(),
            params,
            idempotency_key: format!("{}/{}", self.shared.run_key, self.record.step_id),
            attempt: self.attempts_here,
        }
    }

    /// Commits the step record with `events`, after any deferred entries.
    fn commit(&mut self, events: Vec<JournalEvent>) -> Result<(), StoreError> {
        let mut all = std::mem::take(&mut self.deferred);
        all.extend(events);
        self.stored_success = false;
        self.shared.commit_step(&self.record, all)
    }

    /// Journals `event`, together with any deferred entries (and then the step record too).
    fn note(&mut self, event: JournalEvent) -> Result<(), StoreError> {
        if self.deferred.is_empty() {
            return self.shared.commit_journal(Some(&self.record.step_id), event);
        }
        self.commit(vec![event])
    }

    async fn transition(&mut self, to: StepStatus, durable: bool) -> Result<(), StoreError> {
        let from = self.record.state();
        self.record.status = to;
        let to = self.record.state();
        tracing::debug!(from = from.as_str(), to = to.as_str(), durable, "transition");
        self.commit(vec![JournalEvent::Transition { from, to }])?;
        if durable {
            self.shared.flush().await?;
        }
        Ok(())
    }

    /// Resolves `with`; `Ok(None)` when a step it reads from was skipped (so this one is too).
    fn resolve_params(&self) -> Result<Option<serde_json::Map<String, Value>>, StepError> {
        let with = Value::Object(self.shared.plan.steps[self.index].with.clone());
        for (_, reference) in template::references(&with) {
            if let Ok(template::Ref::StepOutput { step, .. }) = reference {
                if self.shared.view(self.shared.index_of(&step)).state == StepState::Skipped {
                    return Ok(None);
                }
            }
        }
        let shared = &self.shared;
        let mut lookup = |reference: &template::Ref| -> Result<Value, String> {
            match reference {
                template::Ref::Var(name) => shared
                    .vars
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("variable `{name}` has no value")),
                template::Ref::StepOutput { step, key } => {
                    let view = shared.view(shared.index_of(step));
                    view.outputs.get(key).cloned().ok_or_else(|| {
                        format!(
                            "step `{step}` finished without output `{key}` (state {})",
                            view.state.as_str()
                        )
                    })
                }
            }
        };
        match template::resolve(&with, &mut lookup) {
            Ok(Value::Object(params)) => Ok(Some(params)),
            Ok(_) => unreachable!("resolving an object yields an object"),
            Err(message) => Err(StepError::permanent(format!("parameters: {message}"))),
        }
    }

    async fn observe_then_apply(&mut self) -> Result<StepEnd, Halt> {
        let Some(params) = self.resolve_params()? else {
            self.record.note = Some("skipped: a step it reads outputs from was skipped".into());
            self.record.finished_at_ms = Some(now_ms());
            self.transition(StepStatus::Skipped, false).await?;
            return Ok(StepEnd::Skipped);
        };
        let cx = self.context(params);
        // A step found applying (a crash, or a failed apply) may or may not have made its
        // mutation: it always observes first and adopts what the lost call did.
        if self.record.state() != StepState::Observing {
            let from = self.record.state();
            self.record.status = StepStatus::Observing;
            self.deferred.push(JournalEvent::Transition {
                from,
                to: StepState::Observing,
            });
        }
        match self.kind.observe(&cx).await? {
            // INVARIANT: a step observed as converged makes no mutation.
            Observation::Converged(outputs) if self.stored_success && outputs == self.record.outputs => {
                // Re-observed as its run continues, and still as recorded: nothing to write.
                tracing::info!("re-observed; still converged");
                self.deferred.clear();
                self.record.status = StepStatus::Succeeded;
                Ok(StepEnd::Succeeded)
            }
            Observation::Converged(outputs) => {
                tracing::info!("converged; no change");
                self.succeed(outputs).await
            }
            // INVARIANT: a resumed run adopts what a lost call created: an operation already
            // under way is waited on, never started again.
            Observation::InProgress(handle) => self.start_waiting(handle, &cx).await,
            Observation::Diverged(change) => {
                self.record.change = Some(change.clone());
                self.record.error = None;
                // INVARIANT: no side effect before its intent is durable (flushed here).
                self.transition(StepStatus::Applying, true).await?;
                tracing::info!(action = ?change.action, summary = %change.summary, "applying");
                self.shared.emit(Event::StepApplying {
                    step: cx.step_id.clone(),
                    change,
                });
                self.shared.hook(CrashPoint::AfterIntent, &cx.step_id);
                let applied = self.kind.apply(&cx).await?;
                self.applied = true;
                self.shared.hook(CrashPoint::AfterMutation, &cx.step_id);
                match applied {
                    Applied::Done(outputs) => self.succeed(outputs).await,
                    Applied::Started(handle) => self.start_waiting(handle, &cx).await,
                }
            }
        }
    }

    async fn start_waiting(&mut self, handle: OperationHandle, cx: &StepContext) -> Result<StepEnd, Halt> {
        // INVARIANT: the operation handle is durable before the first poll (it is part of the
        // `waiting` state, flushed here).
        self.transition(StepStatus::Waiting(handle.clone()), true).await?;
        self.shared.hook(CrashPoint::WhileWaiting, &cx.step_id);
        self.wait(handle).await
    }

    /// Waits on the operation a previous attempt left stored, from whatever state it ended in.
    /// Its handle is durable already, so the `waiting` transition rides along with the first
    /// poll's journal entry.
    async fn settle(&mut self, handle: OperationHandle) -> Result<StepEnd, Halt> {
        let from = self.record.state();
        tracing::info!(
            from = from.as_str(),
            "settling the operation a previous attempt started"
        );
        self.record.status = StepStatus::Waiting(handle.clone());
        self.deferred.push(JournalEvent::Transition {
            from,
            to: StepState::Waiting,
        });
        self.wait(handle).await
    }

    /// Polls `handle`, the operation the step's `waiting` state carries.
    async fn wait(&mut self, handle: OperationHandle) -> Result<StepEnd, Halt> {
        let params = match self.resolve_params()? {
            Some(params) => params,
            None => serde_json::Map::new(),
        };
        let cx = self.context(params);
        let started = Instant::now();
        let mut polls_here: u32 = 0;
        loop {
            self.shared.sleep(self.poll.delay_before(polls_here)).await?;
            polls_here += 1;
            self.record.polls += 1;
            let outcome = self.kind.poll(&cx, &handle).await?;
            let done = !matches!(outcome, PollOutcome::Pending { .. });
            // INVARIANT: the poll count is committed with each poll's journal entry, so the
            // record's count (the summary's POLLS) always matches the journal, even for a step
            // that an interrupt or a timeout ends while it waits.
            self.commit(vec![JournalEvent::Poll {
                poll: self.record.polls,
                done,
            }])?;
            match outcome {
                PollOutcome::Done(outputs) => return self.succeed(outputs).await,
                PollOutcome::Pending { progress } => {
                    self.shared.emit(Event::StepWaiting {
                        step: cx.step_id.clone(),
                        poll: self.record.polls,
                        progress,
                        operation: handle.clone(),
                    });
                }
                PollOutcome::Failed(error) => {
                    // The operation ended in error: forget it and reconcile from observe.
                    self.transition(StepStatus::Observing, false).await?;
                    return Err(Halt::Step(error));
                }
            }
            if started.elapsed() >= self.poll.deadline {
                let message = format!(
                    "operation {} did not finish within {:?}; a resume re-attaches to it",
                    handle.0, self.poll.deadline
                );
                return Err(Halt::Step(StepError::permanent(message)));
            }
        }
    }

    async fn succeed(&mut self, outputs: Outputs) -> Result<StepEnd, Halt> {
        self.record.outputs = outputs;
        self.record.error = None;
        self.record.finished_at_ms = Some(now_ms());
        // Not flushed on its own: the next side effect's intent flush carries it, and a lost
        // success only costs one more observe.
        self.transition(StepStatus::Succeeded, false).await?;
        self.shared.hook(CrashPoint::AfterStep, &self.record.step_id);
        Ok(StepEnd::Succeeded)
    }

    async fn fail(&mut self, error: &StepError) -> StepEnd {
        self.record.error = Some(ErrorRecord {
            class: error.class(),
            message: error.message().into(),
        });
        self.record.finished_at_ms = Some(now_ms());
        // An operation the step waited on stays with it, to be settled first next time.
        let unsettled = self.record.status.operation().cloned();
        if self
            .transition(StepStatus::Failed { unsettled }, true)
            .await
            .is_err()
        {
            // The store is failing too; the run's final commit will report it.
        }
        StepEnd::Failed
    }

    /// Journals a failed attempt and waits before the next one; `Err` ends the step.
    async fn retry_after(&mut self, error: StepError) -> Result<(), StepEnd> {
        let give_up = match &error {
            StepError::Permanent { .. } => Some(error.message().to_string()),
            StepError::Retryable { message, .. } if self.attempts_here >= self.retry.max_attempts => Some(
                format!("gave up after {} attempts: {message}", self.attempts_here),
            ),
            StepError::NotYet { message, .. } => {
                let since = *self.not_yet_since.get_or_insert_with(Instant::now);
                (since.elapsed() >= self.retry.not_yet_window)
                    .then(|| format!("still not ready after {:?}: {message}", self.retry.not_yet_window))
            }
            StepError::Retryable { .. } => None,
        };
        let delay = match &error {
            _ if give_up.is_some() => Duration::ZERO,
            // Waiting for a condition, not backing off from load: the kind's interval, steady.
            StepError::NotYet {
                delay: Some(delay), ..
            } => *delay,
            _ => self.backoff.next_delay(error.server_delay()),
        };
        let event = JournalEvent::AttemptFailed {
            attempt: self.record.attempts,
            class: error.class(),
            message: error.message().into(),
            retry_in_ms: give_up.is_none().then_some(delay.as_millis() as u64),
        };
        let step = self.record.step_id.clone();
        tracing::warn!(
            attempt = self.record.attempts,
            class = error.class().as_str(),
            message = error.message(),
            retry_in_ms = delay.as_millis() as u64,
            gives_up = give_up.is_some(),
            "attempt failed"
        );
        let _ = self.note(event);
        if let Some(message) = give_up {
            let final_error = match error {
                StepError::Permanent { .. } => error,
                _ => StepError::permanent(message),
            };
            return Err(self.fail(&final_error).await);
        }
        self.shared.emit(Event::StepRetrying {
            step,
            attempt: self.record.attempts,
            class: error.class(),
            message: error.message().to_string(),
            delay,
        });
        self.shared.sleep(delay).await.map_err(|_| StepEnd::Interrupted)
    }
}
