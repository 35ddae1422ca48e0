//! [`Reconciled`]: the one `StepKind` of every [`Resource`], where the reconciler's rules are
//! enforced.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_engine::{
    async_trait, Applied, KindSchema, Observation, OperationHandle, ParamProblem, PollOutcome, PollPolicy,
    StepContext, StepError, StepKind,
};

use super::{Absent, Claim, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};
use crate::common::{self, Reading};

/// The handle of the wait [`Resource::grace`] starts, stored in step records as
/// `{"phase": "await_automatic", "deadline_unix_ms": N}` (wall-clock milliseconds, the wait
/// already scaled by the cloud's time scale), so a resumed run keeps its deadline.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GraceWait {
    pub(super) phase: GracePhase,
    pub(super) deadline_unix_ms: u64,
}

/// The one phase a [`GraceWait`] has (its tag, so that no other handle reads as one).
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum GracePhase {
    #[serde(rename = "await_automatic")]
    AwaitAutomatic,
}

/// A [`Resource`] as a step kind.
pub struct Reconciled<R>(pub R);

/// What the strict read found.
enum Strict<L> {
    Found(L),
    Absent(Absent),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl<R: Resource> Reconciled<R> {
    /// Reads the resource as `reading` says: by label first (a server-chosen id), then the
    /// kind's own lookup; whatever is found must be ours or adoptable.
    async fn read(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
        reading: Reading,
    ) -> Result<Option<R::Live>, StepError> {
        let kind = &self.0;
        let labelled = kind.by_label(Step { cx, wanted }, reading).await?;
        let found = kind
            .find(Lookup {
                cx,
                wanted,
                reading,
                labelled: &labelled,
            })
            .await?;
        match found {
            Some(live) => {
                // INVARIANT: a found resource (also the one found again after a 409
                // ALREADY_EXISTS) is used only when it is ours or adoptable.
                match kind.claim(Step { cx, wanted }, &live) {
                    Claim::Ours | Claim::Adoptable => Ok(Some(live)),
                    Claim::Foreign(error) => Err(error),
                }
            }
            None if labelled.is_empty() => Ok(None),
            // INVARIANT: a server-chosen id is created only after the label lookup came back
            // empty: something labelled as this step's is never "absent".
            None => Err(StepError::permanent(format!(
                "step `{}`: {} resource(s) carry this step's label but were not taken as {}; \
                 nothing is created while they exist",
                cx.step_id,
                labelled.len(),
                kind.describe(wanted)
            ))),
        }
    }

    /// The read every mutation follows: [`Absent`] is made only here, and [`Current`] only
    /// from what this read found (`Strict::Found`).
    async fn read_strictly(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
    ) -> Result<Strict<R::Live>, StepError> {
        // INVARIANT: a mutation (create or patch) follows a strict re-read (`Reading::Apply`):
        // a disabled API is an error here, never "nothing there".
        Ok(match self.read(cx, wanted, Reading::Apply).await? {
            Some(live) => Strict::Found(live),
            None => Strict::Absent(Absent { _sealed: () }),
        })
    }

    /// Brings a resource that the strict read found to what is wanted.
    async fn settle(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
        current: Current<'_, R::Live>,
    ) -> Result<Applied, StepError> {
        let kind = &self.0;
        match kind.examine(Step { cx, wanted }, current.live).await? {
            Verdict::Converged(outputs) => Ok(kind.finish(wanted, outputs)),
            Verdict::Running(family, name) => Ok(Applied::Started(common::handle(&family, &name))),
            Verdict::Drift(_) => {
                let mutated = kind.patch(Step { cx, wanted }, current).await?;
                self.mutated(cx, wanted, mutated).await
            }
        }
    }

    /// Creates the resource; a 409 ALREADY_EXISTS (a repeat, or a create whose answer was
    /// lost) reads it again and adopts it by the same rule as any found resource.
    async fn create(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
        absent: Absent,
    ) -> Result<Applied, StepError> {
        let kind = &self.0;
        match kind.create(Step { cx, wanted }, absent).await {
            Ok(mutated) => self.mutated(cx, wanted, mutated).await,
            Err(CreateError::Refused(e)) if e.is_already_exists() => {
                match self.read_strictly(cx, wanted).await? {
                    Strict::Found(live) => self.settle(cx, wanted, Current { live: &live }).await,
                    Strict::Absent(_) => Err(kind.missing_after_conflict(Step { cx, wanted })),
                }
            }
            Err(CreateError::Refused(e)) => Err(kind.create_refused(Step { cx, wanted }, e)),
            Err(CreateError::Failed(error)) => Err(error),
        }
    }

    /// What a create or patch answered, as `apply`'s result.
    async fn mutated(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
        mutated: Mutated,
    ) -> Result<Applied, StepError> {
        let kind = &self.0;
        match mutated {
            Mutated::Applied(applied) => Ok(applied),
            Mutated::Operation(family, operation) if !operation.done => {
                Ok(Applied::Started(common::handle(&family, &operation.name)))
            }
            Mutated::Operation(_, operation) => {
                let outcome = match common::finished(kind.cloud(), operation) {
                    Ok(response) => kind.completed(Step { cx, wanted }, response).await?,
                    Err(outcome) => outcome,
                };
                match outcome {
                    PollOutcome::Done(outputs) => Ok(Applied::Done(outputs)),
                    PollOutcome::Failed(error) => Err(error),
                    PollOutcome::Pending { .. } => Err(StepError::retryable(format!(
                        "the answer about {} is not finished; observing again",
                        kind.describe(wanted)
                    ))),
                }
            }
            Mutated::ReadBack => {
                let not_yet = || {
                    StepError::retryable(format!(
                        "{} was created but does not read as wanted yet; observing again",
                        kind.describe(wanted)
                    ))
                };
                let Some(live) = self.read(cx, wanted, Reading::Apply).await? else {
                    return Err(not_yet());
                };
                match kind.examine(Step { cx, wanted }, &live).await? {
                    Verdict::Converged(outputs) => Ok(kind.finish(wanted, outputs)),
                    Verdict::Running(family, name) => Ok(Applied::Started(common::handle(&family, &name))),
                    Verdict::Drift(_) => Err(not_yet()),
                }
            }
        }
    }

    /// One look during the wait [`Resource::grace`] started: found → done; before the
    /// deadline → pending; after it → created (after the strict read), then read back.
    async fn poll_wait(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
        deadline: u64,
    ) -> Result<PollOutcome, StepError> {
        let kind = &self.0;
        let pending = |progress: String| PollOutcome::Pending {
            progress: Some(progress),
        };
        if now_ms() < deadline {
            // Nothing follows this read but another look: a disabled API holds nothing yet.
            return Ok(match self.read(cx, wanted, Reading::Observe).await? {
                Some(live) => outcome_of(self.settle_observed(cx, wanted, &live).await?),
                None => pending(kind.awaiting(wanted)),
            });
        }
        let applied = match self.read_strictly(cx, wanted).await? {
            Strict::Found(live) => self.settle(cx, wanted, Current { live: &live }).await?,
            Strict::Absent(absent) => self.create(cx, wanted, absent).await?,
        };
        Ok(match applied {
            Applied::Done(outputs) => PollOutcome::Done(outputs),
            // A handle cannot change once persisted: the next look reads it back.
            Applied::Started(_) => pending(format!("creating {}", kind.describe(wanted))),
        })
    }

    /// What a leniently read resource needs, without changing it.
    async fn settle_observed(
        &self,
        cx: &StepContext,
        wanted: &R::Wanted,
        live: &R::Live,
    ) -> Result<Observation, StepError> {
        Ok(match self.0.examine(Step { cx, wanted }, live).await? {
            Verdict::Converged(outputs) => Observation::Converged(outputs),
            Verdict::Running(family, name) => Observation::InProgress(common::handle(&family, &name)),
            Verdict::Drift(change) => Observation::Diverged(change),
        })
    }
}

/// An observation made while waiting, as that wait's outcome.
fn outcome_of(observation: Observation) -> PollOutcome {
    match observation {
        Observation::Converged(outputs) => PollOutcome::Done(outputs),
        Observation::InProgress(_) | Observation::Diverged(_) => PollOutcome::Pending { progress: None },
    }
}

#[async_trait]
impl<R: Resource> StepKind for Reconciled<R> {
    fn schema(&self) -> KindSchema {
        self.0.schema()
    }

    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        self.0.check(params)
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let kind = &self.0;
        let wanted = kind.wanted(cx)?;
        kind.preflight(Step { cx, wanted: &wanted })?;
        match self.read(cx, &wanted, Reading::Observe).await? {
            Some(live) => self.settle_observed(cx, &wanted, &live).await,
            None => Ok(Observation::Diverged(kind.create_change(&wanted))),
        }
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let kind = &self.0;
        let wanted = kind.wanted(cx)?;
        if let Some(grace) = kind.grace(&wanted) {
            // Changes nothing: the poll creates, after its own strict read, once the wait is over.
            let deadline = now_ms() + kind.cloud().scaled(grace).as_millis() as u64;
            return Ok(Applied::Started(common::stored_handle(&GraceWait {
                phase: GracePhase::AwaitAutomatic,
                deadline_unix_ms: deadline,
            })));
        }
        match self.read_strictly(cx, &wanted).await? {
            Strict::Found(live) => self.settle(cx, &wanted, Current { live: &live }).await,
            Strict::Absent(absent) => self.create(cx, &wanted, absent).await,
        }
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        self.0.poll_policy()
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let kind = &self.0;
        let wanted = kind.wanted(cx)?;
        if kind.grace(&wanted).is_some() {
            let wait: GraceWait = common::read_stored(cx, handle)?;
            return self.poll_wait(cx, &wanted, wait.deadline_unix_ms).await;
        }
        if let Some(outcome) = kind.poll_own(Step { cx, wanted: &wanted }, handle).await {
            return outcome;
        }
        match common::poll_once(kind.cloud(), cx, handle).await? {
            Err(PollOutcome::Failed(error)) => Ok(PollOutcome::Failed(
                kind.operation_failed(Step { cx, wanted: &wanted }, error).await,
            )),
            Err(outcome) => Ok(outcome),
            Ok(response) => kind.completed(Step { cx, wanted: &wanted }, response).await,
        }
    }
}
