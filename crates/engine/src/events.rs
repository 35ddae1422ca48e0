//! Progress events for the CLI and embedders, and the crash-point hooks tests use.

use std::time::Duration;

use crate::kind::{Change, Outputs};
use crate::store::{RunState, StepState};

/// Something that happened in a run. Sent on the channel given to
/// [`crate::Engine::with_events`]; a slow or dropped receiver never stalls the run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    RunStarted {
        run_id: String,
        session: u32,
        steps: usize,
        /// Steps already final when the session starts (skipped when the run was made): no
        /// event of theirs follows in this session.
        settled: Vec<String>,
    },
    StepStarted {
        step: String,
        kind: String,
    },
    /// Found applying at start-up; it observes before anything else.
    StepInDoubt {
        step: String,
    },
    StepApplying {
        step: String,
        change: Change,
    },
    /// An operation is still pending after poll number `poll` (counted over the step's life).
    StepWaiting {
        step: String,
        poll: u32,
        /// What the kind says about the operation, for people.
        progress: Option<String>,
        /// The operation waited on: tells one operation from the next (a retried step may
        /// start another) without counting polls.
        operation: crate::kind::OperationHandle,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        class: crate::error::ErrorClass,
        message: String,
        delay: Duration,
    },
    StepFinished {
        step: String,
        state: StepState,
        applied: bool,
        outputs: Outputs,
        error: Option<String>,
    },
    RunFinished {
        run_id: String,
        state: RunState,
    },
}

/// Points in a step's life where a test may stop the process (see the crash-matrix test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// The intent is durable; the mutation has not been sent.
    AfterIntent,
    /// The mutation returned; its result is not recorded yet.
    AfterMutation,
    /// The operation handle is durable; polling is about to start.
    WhileWaiting,
    /// The step's success is recorded; its dependents have not started.
    AfterStep,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterIntent,
        CrashPoint::AfterMutation,
        CrashPoint::WhileWaiting,
        CrashPoint::AfterStep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::AfterIntent => "after-intent",
            CrashPoint::AfterMutation => "after-mutation",
            CrashPoint::WhileWaiting => "while-waiting",
            CrashPoint::AfterStep => "after-step",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// Called synchronously at each [`CrashPoint`]: the crash-matrix tests stop the process here, and the
/// CLI keeps an `--emulator` run's world beside its store (a plain run installs none).
pub trait Hooks: Send + Sync + 'static {
    fn reached(&self, point: CrashPoint, step_id: &str);
}
