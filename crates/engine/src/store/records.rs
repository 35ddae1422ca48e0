//! What the store keeps: runs, one record per step, and an append-only journal per run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorClass;
use crate::kind::{Change, OperationHandle, Outputs};
use crate::plan::Plan;

/// Bumped whenever a stored record changes shape incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    /// Stopped by a signal; resumable.
    Interrupted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Interrupted => "interrupted",
        }
    }

    /// Finished for good: nothing is left for `run` or `resume` to continue. This is the one
    /// definition every part uses (the engine's choice of run to continue, `resume`, `compact`,
    /// `status`): only a succeeded run is finished. A running run (perhaps its process was
    /// killed), a failed one and an interrupted one can all be continued.
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Succeeded)
    }
}

/// One run of a plan with its variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    /// Digest of the plan and its resolved variables: the same key means the same desired state.
    pub run_key: String,
    /// Digest of the plan alone; the plan itself is stored once under it (see
    /// [`super::Store::plan`]), so a run resumes without its file.
    pub plan_digest: String,
    pub plan_name: String,
    /// Where the plan was read from, for people.
    pub plan_source: String,
    pub vars: BTreeMap<String, Value>,
    pub state: RunState,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// When the run finished for good ([`RunRecord::is_finished`]); none while it can still be
    /// continued (running, failed, interrupted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// How many times this run has been (re)started by a process.
    pub sessions: u32,
}

impl RunRecord {
    /// Whether the run is finished for good (see [`RunState::is_finished`]).
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Observing,
    /// Intent recorded and flushed; the mutation may or may not have happened.
    Applying,
    /// Operation handle recorded and flushed.
    Waiting,
    Succeeded,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Observing => "observing",
            StepState::Applying => "applying",
            StepState::Waiting => "waiting",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
    /// Done for good: a resume does not touch it again.
    pub fn is_final(self) -> bool {
        matches!(self, StepState::Succeeded | StepState::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub class: ErrorClass,
    pub message: String,
}

/// The latest state of one step in one run.
///
/// Stored in the layout of every earlier version (`state` and `handle` side by side, see
/// `store/step_status.rs`), so the store's format is unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "super::step_status::StoredStepRecord",
    into = "super::step_status::StoredStepRecord"
)]
pub struct StepRecord {
    pub step_id: String,
    pub status: StepStatus,
    /// Attempts in all (observe/apply passes and resumed waits), across every session of the run.
    pub attempts: u32,
    /// Operation polls in all, across every session: committed with each poll's journal entry,
    /// so it equals the number of the step's `poll` entries in the journal.
    pub polls: u32,
    pub outputs: Outputs,
    /// The recorded intent while applying, and what was done once succeeded.
    pub change: Option<Change>,
    pub error: Option<ErrorRecord>,
    pub note: Option<String>,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
}

impl StepRecord {
    pub fn pending(step_id: &str) -> Self {
        StepRecord {
            step_id: step_id.to_string(),
            status: StepStatus::Pending,
            attempts: 0,
            polls: 0,
            outputs: Outputs::new(),
            change: None,
            error: None,
            note: None,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }

    /// The state alone, as the journal and status output name it.
    pub fn state(&self) -> StepState {
        self.status.state()
    }
}

/// Where a step stands, with what that state carries. A waiting step's operation handle is
/// part of its state, so a step cannot be waiting on nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum StepStatus {
    Pending,
    Observing,
    /// Intent recorded and flushed; the mutation may or may not have happened.
    Applying,
    /// Waiting on this operation; its handle was flushed before the first poll.
    Waiting(OperationHandle),
    Succeeded,
    /// Failed. An operation it started and never saw finish (its step timed out, or its polls
    /// gave up) stays with it, to be settled before anything else when the step runs again.
    Failed {
        unsettled: Option<OperationHandle>,
    },
    Skipped,
}

impl StepStatus {
    pub fn state(&self) -> StepState {
        match self {
            StepStatus::Pending => StepState::Pending,
            StepStatus::Observing => StepState::Observing,
            StepStatus::Applying => StepState::Applying,
            StepStatus::Waiting(_) => StepState::Waiting,
            StepStatus::Succeeded => StepState::Succeeded,
            StepStatus::Failed { .. } => StepState::Failed,
            StepStatus::Skipped => StepState::Skipped,
        }
    }

    /// The operation the step must settle before anything else: the one it waits on, or the
    /// one a failed attempt left behind.
    pub fn operation(&self) -> Option<&OperationHandle> {
        match self {
            StepStatus::Waiting(handle) => Some(handle),
            StepStatus::Failed { unsettled } => unsettled.as_ref(),
            _ => None,
        }
    }
}

/// One line of a run's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub event: JournalEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JournalEvent {
    RunCreated {
        run_key: String,
    },
    /// A process (re)started executing the run.
    SessionStarted {
        session: u32,
    },
    Transition {
        from: StepState,
        to: StepState,
    },
    /// A step found applying at start-up: the mutation may or may not have happened, so it
    /// observes before anything else.
    InDoubt {
        state: StepState,
    },
    AttemptFailed {
        attempt: u32,
        class: ErrorClass,
        message: String,
        retry_in_ms: Option<u64>,
    },
    Poll {
        poll: u32,
        done: bool,
    },
    Interrupted,
    RunFinished {
        state: RunState,
    },
}

/// A run's record with what belongs with it, for [`super::Store::commit_run`] (atomic; the
/// guarantees are stated on [`super::Store`]).
#[derive(Debug)]
pub struct RunCommit {
    /// A plan to store under its digest (plans are immutable, so rewriting one is harmless).
    pub plan: Option<(String, Plan)>,
    pub run: RunRecord,
    pub steps: Vec<StepRecord>,
    pub journal: Vec<JournalEntry>,
}

impl RunCommit {
    /// The run record with journal entries, and nothing else.
    pub fn run(run: RunRecord, journal: Vec<JournalEntry>) -> Self {
        RunCommit {
            plan: None,
            run,
            steps: Vec::new(),
            journal,
        }
    }
}

/// Step writes of a run, for [`super::Store::append_steps`] (the journal entries, then the step
/// records, in order; not atomic: see [`super::Store`]).
#[derive(Debug, Default)]
pub struct StepAppend {
    pub journal: Vec<JournalEntry>,
    pub steps: Vec<StepRecord>,
}

/// A fleet: one plan run against many targets, each target its own run (own run key, own
/// journal). The record is written when the fleet is created and when a session of it starts
/// and ends; which run serves which target is kept apart
/// ([`super::Store::fleet_target_runs`]), so starting a target never rewrites this record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetRecord {
    pub id: String,
    /// Digest of what the fleet was made from: the same key means the same fleet to continue.
    pub fleet_key: String,
    pub name: String,
    /// Where the fleet was read from, for people.
    pub source: String,
    pub state: FleetState,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    pub sessions: u32,
    pub targets: Vec<FleetTarget>,
    /// What the embedder keeps with the fleet (the CLI: settings and the clean-up report).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub extra: Value,
}

impl FleetRecord {
    /// Finished for good: every target succeeded. A fleet with failed or unstarted targets can
    /// be continued (`fleet resume`, or `fleet run` of the same file).
    pub fn is_finished(&self) -> bool {
        self.state == FleetState::Succeeded
    }
}

/// One target of a fleet: the plan (stored under its digest) and the variables of its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetTarget {
    pub name: String,
    pub plan_digest: String,
    pub vars: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetState {
    Running,
    /// Every target succeeded.
    Succeeded,
    /// At least one target failed; the others ran to their end.
    Partial,
    /// Stopped by a signal; resumable.
    Interrupted,
}

impl FleetState {
    pub fn as_str(self) -> &'static str {
        match self {
            FleetState::Running => "running",
            FleetState::Succeeded => "succeeded",
            FleetState::Partial => "partial",
            FleetState::Interrupted => "interrupted",
        }
    }
}
