//! `local.operation`: a file produced by a long-running "operation" that completes after a
//! number of polls, the way a cloud create does.
//!
//! The operation lives in `PATH.op` (JSON `{"polls": n, "needed": N}`); when it completes it writes
//! PATH and removes `PATH.op`. Guarantees: one operation per target at most: observe re-attaches to
//! an operation already under way instead of starting another. Assumptions: only this step drives
//! PATH. Caveats: the operation advances only when polled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{io_error, read_if_exists, record_effect, write_atomically, EFFECTS_LOG};
use crate::error::StepError;
use crate::kind::{
    Applied, Change, KindSchema, Observation, OperationHandle, Outputs, ParamSpec, ParamType, PollOutcome,
    StepContext, StepKind,
};
use crate::policy::PollPolicy;

pub struct LocalOperation;

fn operation_path(path: &str) -> PathBuf {
    PathBuf::from(format!("{path}.op"))
}

fn outputs(path: &str) -> Outputs {
    Outputs::from([("path".to_string(), Value::from(path))])
}

#[async_trait]
impl StepKind for LocalOperation {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "writes a file through an operation that finishes after `polls` polls",
            params: vec![
                ParamSpec::required("path", ParamType::String, "file the operation produces"),
                ParamSpec::required("content", ParamType::String, "its content"),
                ParamSpec::optional("polls", ParamType::Int, "polls until done (default 3)"),
                EFFECTS_LOG,
            ],
            outputs: vec!["path"],
        }
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let (path, content) = (cx.str_param("path")?, cx.str_param("content")?);
        if read_if_exists(cx, Path::new(path))?.as_deref() == Some(content.as_bytes()) {
            return Ok(Observation::Converged(outputs(path)));
        }
        let op = operation_path(path);
        if op.exists() {
            return Ok(Observation::InProgress(OperationHandle(
                json!({ "operation": op.display().to_string() }),
            )));
        }
        Ok(Observation::Diverged(Change::create(format!(
            "start an operation creating {path}"
        ))))
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let path = cx.str_param("path")?;
        let needed = cx.u64_param("polls", 3)?;
        let op = operation_path(path);
        write_atomically(
            cx,
            &op,
            json!({ "polls": 0, "needed": needed }).to_string().as_bytes(),
        )?;
        record_effect(cx, "start", path)?;
        Ok(Applied::Started(OperationHandle(
            json!({ "operation": op.display().to_string() }),
        )))
    }

    /// A local file needs no second-long pauses: 5 ms, doubling to 50 ms.
    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(PollPolicy {
            first_delay: Duration::from_millis(5),
            multiplier: 2.0,
            max_delay: Duration::from_millis(50),
            deadline: Duration::from_secs(3600),
        })
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let (path, content) = (cx.str_param("path")?, cx.str_param("content")?);
        let op = handle
            .0
            .get("operation")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "step `{}`: operation handle {} has no `operation`",
                    cx.step_id, handle.0
                ))
            })?;
        let Some(bytes) = read_if_exists(cx, &op)? else {
            // Finished by an earlier poll whose answer was lost, or never started.
            return Ok(
                if read_if_exists(cx, Path::new(path))?.as_deref() == Some(content.as_bytes()) {
                    PollOutcome::Done(outputs(path))
                } else {
                    PollOutcome::Failed(StepError::retryable(format!(
                        "operation {} vanished",
                        op.display()
                    )))
                },
            );
        };
        let mut state: Value = serde_json::from_slice(&bytes).map_err(|e| {
            StepError::permanent(format!(
                "step `{}`: operation file {} is damaged: {e}",
                cx.step_id,
                op.display()
            ))
        })?;
        let polls = state["polls"].as_u64().unwrap_or(0) + 1;
        let needed = state["needed"].as_u64().unwrap_or(1);
        if polls >= needed {
            write_atomically(cx, Path::new(path), content.as_bytes())?;
            std::fs::remove_file(&op).map_err(|e| io_error(cx, "cannot remove", &op, e))?;
            return Ok(PollOutcome::Done(outputs(path)));
        }
        state["polls"] = polls.into();
        write_atomically(cx, &op, state.to_string().as_bytes())?;
        Ok(PollOutcome::Pending {
            progress: Some(format!("{polls}/{needed} polls")),
        })
    }
}
