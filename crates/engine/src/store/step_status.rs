//! The stored layout of a [`StepRecord`]: `state` and `handle` side by side, as every earlier
//! version wrote it. Records are read and written through this shim, so stores written before
//! [`StepStatus`] existed are read as they are, and older releases can still read new records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ErrorRecord, StepRecord, StepState, StepStatus};
use crate::kind::{Change, OperationHandle, Outputs};

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredStepRecord {
    step_id: String,
    state: StepState,
    attempts: u32,
    polls: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    outputs: Outputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    change: Option<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handle: Option<OperationHandle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<u64>,
}

/// The status a stored `state` and `handle` stand for.
fn status(state: StepState, handle: Option<OperationHandle>) -> Result<StepStatus, String> {
    Ok(match (state, handle) {
        (StepState::Waiting, Some(handle)) => StepStatus::Waiting(handle),
        // INVARIANT: a waiting step has its operation handle, also when read from the store. No
        // version recorded `waiting` before the handle (both go in one commit).
        (StepState::Waiting, None) => return Err("a waiting step record without an operation handle".into()),
        (StepState::Failed, unsettled) => StepStatus::Failed { unsettled },
        // Versions before the settle-first rule could leave a timed-out step's handle with a
        // later `observing` or `applying` record. Every version since settles such an operation
        // before anything else, which is what waiting on it does.
        (StepState::Pending | StepState::Observing | StepState::Applying, Some(handle)) => {
            StepStatus::Waiting(handle)
        }
        (StepState::Pending, None) => StepStatus::Pending,
        (StepState::Observing, None) => StepStatus::Observing,
        (StepState::Applying, None) => StepStatus::Applying,
        // A success always cleared the handle, and a skipped step never had one.
        (StepState::Succeeded, _) => StepStatus::Succeeded,
        (StepState::Skipped, _) => StepStatus::Skipped,
    })
}

impl TryFrom<StoredStepRecord> for StepRecord {
    type Error = String;

    fn try_from(stored: StoredStepRecord) -> Result<Self, String> {
        Ok(StepRecord {
            status: status(stored.state, stored.handle)?,
            step_id: stored.step_id,
            attempts: stored.attempts,
            polls: stored.polls,
            outputs: stored.outputs,
            change: stored.change,
            error: stored.error,
            note: stored.note,
            started_at_ms: stored.started_at_ms,
            finished_at_ms: stored.finished_at_ms,
        })
    }
}

impl From<StepRecord> for StoredStepRecord {
    fn from(record: StepRecord) -> Self {
        StoredStepRecord {
            state: record.status.state(),
            handle: record.status.operation().cloned(),
            step_id: record.step_id,
            attempts: record.attempts,
            polls: record.polls,
            outputs: record.outputs,
            change: record.change,
            error: record.error,
            note: record.note,
            started_at_ms: record.started_at_ms,
            finished_at_ms: record.finished_at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(text: serde_json::Value) -> Result<StepRecord, serde_json::Error> {
        serde_json::from_value(text)
    }

    #[test]
    fn records_of_earlier_versions_are_read_with_their_handle_in_the_state() {
        let waiting = read(
            json!({"step_id": "a", "state": "waiting", "attempts": 1, "polls": 2,
            "handle": {"name": "op-1"}}),
        )
        .unwrap();
        assert_eq!(
            waiting.status,
            StepStatus::Waiting(OperationHandle(json!({"name": "op-1"})))
        );
        let failed = read(
            json!({"step_id": "a", "state": "failed", "attempts": 1, "polls": 0,
            "handle": "op-2", "error": {"class": "not-yet", "message": "m"}}),
        )
        .unwrap();
        assert_eq!(
            failed.status.operation(),
            Some(&OperationHandle(json!("op-2"))),
            "a failed step keeps the operation it must settle"
        );
        assert_eq!(failed.error.unwrap().class, crate::error::ErrorClass::NotYet);
        let applying = read(
            json!({"step_id": "a", "state": "applying", "attempts": 1, "polls": 0,
            "handle": "op-3"}),
        )
        .unwrap();
        assert_eq!(
            applying.status,
            StepStatus::Waiting(OperationHandle(json!("op-3")))
        );
    }

    #[test]
    fn a_waiting_record_without_a_handle_is_refused() {
        let error = read(json!({"step_id": "a", "state": "waiting", "attempts": 1, "polls": 0})).unwrap_err();
        assert!(
            error.to_string().contains("without an operation handle"),
            "{error}"
        );
    }

    #[test]
    fn records_are_written_in_the_layout_earlier_versions_read() {
        let mut record = StepRecord::pending("a");
        record.status = StepStatus::Waiting(OperationHandle(json!("op")));
        let written = serde_json::to_value(&record).unwrap();
        assert_eq!(written["state"], "waiting");
        assert_eq!(written["handle"], "op");
        assert_eq!(serde_json::from_value::<StepRecord>(written).unwrap(), record);
    }
}
