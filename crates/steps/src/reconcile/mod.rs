//! The generic reconciler: one [`StepKind`](sluice_engine::StepKind), [`Reconciled`], that owns
//! the flow every Google resource kind shares, in the spirit of kube-runtime's controller (the
//! kind writes what is specific to it, the runtime owns the order of reads and writes).
//!
//! A kind implements [`Resource`]: how to find its resource (by a name the step chooses, or
//! first by the label carrying the run's idempotency key when the server chooses the id), the
//! create request and how a repeat is made safe, what counts as drift and the patch, and how a
//! finished operation's response becomes outputs. [`Reconciled`] then observes, applies and
//! polls, enforcing three rules in one place each (see `flow.rs`, marked `INVARIANT`):
//!
//! 1. **A strict re-read before any mutation.** `create` needs an [`Absent`] and `patch` a
//!    [`Current`]; only the reconciler's strict read (`Reading::Apply`) makes either, so a kind
//!    cannot create or patch on what a lenient read (or no read) said.
//! 2. **409 ALREADY_EXISTS adopts only what is ours or adoptable.** Every resource found, and
//!    the one found again after a 409, passes the kind's [`Resource::claim`]; a foreign one is
//!    the kind's clear error, never adopted.
//! 3. **A server-chosen id is created only after the label lookup came back empty.** An
//!    [`Absent`] is never made while [`Resource::by_label`] lists anything.

pub(crate) mod flow;
#[cfg(test)]
mod tests;

use std::ops::Deref;
use std::time::Duration;

use serde_json::{Map, Value};
use sluice_engine::async_trait;
use sluice_engine::{
    Applied, Change, KindSchema, OperationHandle, Outputs, ParamProblem, PollOutcome, PollPolicy,
    StepContext, StepError,
};
use sluice_gcp::{GcpError, Operation, OperationFamily};

use crate::cloud::Cloud;
use crate::common::{classify, Reading};

pub use flow::Reconciled;

/// Proof that the reconciler's strict read just found nothing (and, for a server-chosen id,
/// that the label lookup was empty). Only the reconciler makes one; `create` needs it.
#[derive(Debug)]
pub struct Absent {
    _sealed: (),
}

/// A resource as the reconciler's strict read just found it, ours or adoptable. Only the
/// reconciler makes one; `patch` needs it.
#[derive(Debug)]
pub struct Current<'a, L> {
    live: &'a L,
}

impl<L> Deref for Current<'_, L> {
    type Target = L;
    fn deref(&self) -> &L {
        self.live
    }
}

/// Whether a found resource may be used (see [`Resource::claim`]).
#[derive(Debug)]
pub enum Claim {
    /// Ours: the step's chosen name, or its label.
    Ours,
    /// Not ours, but the kind takes it as the step's resource (the plan allows adoption).
    Adoptable,
    /// Someone else's: this error, and nothing is changed.
    Foreign(StepError),
}

/// What a resource found as ours or adoptable needs.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing: these are the step's outputs.
    Converged(Outputs),
    /// An operation on it is still running: wait on it (family and operation name).
    Running(OperationFamily, String),
    /// It drifted: [`Resource::patch`] makes this change.
    Drift(Change),
}

/// What a create or patch answered.
#[derive(Debug)]
pub enum Mutated {
    /// Finished, with the step's result.
    Applied(Applied),
    /// A Google operation: waited on, then [`Resource::completed`] turns its response into
    /// outputs.
    Operation(OperationFamily, Operation),
    /// Accepted: read the resource back for its outputs.
    ReadBack,
}

/// Why a create did not happen: Google refused it (a 409 ALREADY_EXISTS among them, which the
/// reconciler handles), or the step could not send it.
#[derive(Debug)]
pub enum CreateError {
    Refused(GcpError),
    Failed(StepError),
}

impl From<GcpError> for CreateError {
    fn from(error: GcpError) -> Self {
        CreateError::Refused(error)
    }
}

impl From<StepError> for CreateError {
    fn from(error: StepError) -> Self {
        CreateError::Failed(error)
    }
}

/// One step's call about its resource: the step, and what its parameters want.
pub struct Step<'a, W> {
    pub cx: &'a StepContext,
    pub wanted: &'a W,
}

/// What [`Resource::find`] is given: the step, what it wants, how to read, and what
/// [`Resource::by_label`] listed.
pub struct Lookup<'a, W> {
    pub cx: &'a StepContext,
    pub wanted: &'a W,
    pub reading: Reading,
    pub labelled: &'a [Value],
}

// Copy without asking `W: Copy` (a derive would).
impl<W> Clone for Step<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W> Copy for Step<'_, W> {}

/// One Google resource kind: only what is specific to it. [`Reconciled`] runs the flow.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// What the step's parameters ask for.
    type Wanted: Send + Sync;
    /// What a read found.
    type Live: Send + Sync;

    fn cloud(&self) -> &Cloud;
    fn schema(&self) -> KindSchema;
    /// Checks at validation (see [`sluice_engine::StepKind::check`]).
    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem>;
    /// The wanted state, from the step's parameters.
    fn wanted(&self, cx: &StepContext) -> Result<Self::Wanted, StepError>;
    /// More checks `observe` makes before it reports any change. Default: none.
    fn preflight(&self, step: Step<'_, Self::Wanted>) -> Result<(), StepError> {
        let _ = step;
        Ok(())
    }
    /// The resource for a person ("role projects/p/roles/r").
    fn describe(&self, wanted: &Self::Wanted) -> String;

    /// For a server-chosen id: everything carrying this step's label. Default (the step
    /// chooses the name): nothing.
    async fn by_label(
        &self,
        step: Step<'_, Self::Wanted>,
        reading: Reading,
    ) -> Result<Vec<Value>, StepError> {
        let _ = (step, reading);
        Ok(Vec::new())
    }
    /// Reads the resource. Never mutates.
    async fn find(&self, lookup: Lookup<'_, Self::Wanted>) -> Result<Option<Self::Live>, StepError>;
    /// Whether a found resource is ours, adoptable or someone else's. Default: ours (the step
    /// chose its name).
    fn claim(&self, step: Step<'_, Self::Wanted>, live: &Self::Live) -> Claim {
        let _ = (step, live);
        Claim::Ours
    }
    /// What a resource of ours needs.
    async fn examine(&self, step: Step<'_, Self::Wanted>, live: &Self::Live) -> Result<Verdict, StepError>;

    /// What `apply` does when nothing is found (with what the outputs will be, if known).
    fn create_change(&self, wanted: &Self::Wanted) -> Change;
    /// How long to leave another party to create it first (Agent Runtime registers what it
    /// deploys). `apply` then only starts that wait, and the poll creates once it is over.
    /// Default: create at once.
    fn grace(&self, wanted: &Self::Wanted) -> Option<Duration> {
        let _ = wanted;
        None
    }
    /// Progress shown while waiting out [`Resource::grace`].
    fn awaiting(&self, wanted: &Self::Wanted) -> String {
        format!("waiting before creating {}", self.describe(wanted))
    }
    /// Sends the create. A repeat must be safe: a name the step chooses (a repeat answers 409)
    /// or a request id; a server-chosen id is sent once (`PostRetry::Unsafe`).
    async fn create(&self, step: Step<'_, Self::Wanted>, absent: Absent) -> Result<Mutated, CreateError>;
    /// A refused create (not a 409), for the engine. Default: classified.
    fn create_refused(&self, step: Step<'_, Self::Wanted>, error: GcpError) -> StepError {
        let doing = format!("creating {}", self.describe(step.wanted));
        classify(self.cloud(), &doing, error)
    }
    /// A 409 after which nothing can be read. Default: retried (not readable yet).
    fn missing_after_conflict(&self, step: Step<'_, Self::Wanted>) -> StepError {
        StepError::retryable(format!(
            "{} already exists but cannot be read yet; reading again",
            self.describe(step.wanted)
        ))
    }
    /// Corrects a drifted resource. Default: the kind never reports drift.
    async fn patch(
        &self,
        step: Step<'_, Self::Wanted>,
        live: Current<'_, Self::Live>,
    ) -> Result<Mutated, StepError> {
        let _ = live;
        Err(StepError::permanent(format!(
            "step `{}`: this kind never changes an existing resource",
            step.cx.step_id
        )))
    }
    /// The result of `apply` for a resource that needs nothing (or was just corrected).
    /// Default: done with `outputs`.
    fn finish(&self, wanted: &Self::Wanted, outputs: Outputs) -> Applied {
        let _ = wanted;
        Applied::Done(outputs)
    }
    /// A finished operation's response, as the step's result. Default: the kind starts no
    /// operations.
    async fn completed(
        &self,
        step: Step<'_, Self::Wanted>,
        response: Value,
    ) -> Result<PollOutcome, StepError> {
        let _ = response;
        Err(StepError::permanent(format!(
            "step `{}`: this kind has no operations to poll",
            step.cx.step_id
        )))
    }
    /// What a failed operation of the kind's is reported as. Default: its error as it is.
    async fn operation_failed(&self, step: Step<'_, Self::Wanted>, error: StepError) -> StepError {
        let _ = step;
        error
    }
    /// Polls a handle of the kind's own (not a Google operation); `None` when `handle` is not
    /// one. Default: none.
    async fn poll_own(
        &self,
        step: Step<'_, Self::Wanted>,
        handle: &OperationHandle,
    ) -> Option<Result<PollOutcome, StepError>> {
        let _ = (step, handle);
        None
    }
    /// How its operations are polled. Default: Google's GET-read operations.
    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud().get_poll_policy())
    }
}
