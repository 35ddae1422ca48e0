//! `local.flaky`: fails its first `failures` applies with a chosen error class, then creates a
//! marker file. For retry and resume tests.
//!
//! Failures are counted in `PATH.attempts`, so they survive restarts. Guarantees: the marker is
//! written once. Caveats: exists to test the engine, not to do useful work.

use std::path::Path;

use async_trait::async_trait;
use serde_json::Value;

use super::{read_if_exists, record_effect, write_atomically, EFFECTS_LOG};
use crate::error::{ErrorClass, StepError};
use crate::kind::{
    Applied, Change, KindSchema, Observation, Outputs, ParamProblem, ParamSpec, ParamType, StepContext,
    StepKind,
};

pub struct Flaky;

#[async_trait]
impl StepKind for Flaky {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "fails `failures` times with error class `error`, then writes a marker file",
            params: vec![
                ParamSpec::required("path", ParamType::String, "marker file written on success"),
                ParamSpec::required("failures", ParamType::Int, "applies that fail first"),
                ParamSpec::optional(
                    "error",
                    ParamType::String,
                    "retryable (default), not_yet or permanent; nothing else is accepted",
                ),
                EFFECTS_LOG,
            ],
            outputs: vec!["path", "attempts"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, Value>) -> Vec<ParamProblem> {
        match params
            .get("error")
            .and_then(Value::as_str)
            .map(ErrorClass::from_plan)
        {
            Some(Err(message)) => vec![ParamProblem::new("error", message)],
            _ => Vec::new(),
        }
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let path = cx.str_param("path")?;
        Ok(match read_if_exists(cx, Path::new(path))? {
            Some(_) => Observation::Converged(Outputs::from([
                ("path".to_string(), Value::from(path)),
                ("attempts".to_string(), Value::from(attempts(cx, path)?)),
            ])),
            None => Observation::Diverged(Change::create(format!("create {path}"))),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let path = cx.str_param("path")?;
        let failures = cx.u64_param("failures", 0)?;
        let attempt = attempts(cx, path)? + 1;
        write_atomically(
            cx,
            Path::new(&format!("{path}.attempts")),
            attempt.to_string().as_bytes(),
        )?;
        if attempt <= failures {
            let message = format!("step `{}`: planned failure {attempt} of {failures}", cx.step_id);
            return Err(StepError::of_class(planned_class(cx)?, message));
        }
        write_atomically(cx, Path::new(path), b"done")?;
        record_effect(cx, "write", path)?;
        Ok(Applied::Done(Outputs::from([
            ("path".to_string(), Value::from(path)),
            ("attempts".to_string(), Value::from(attempt)),
        ])))
    }
}

/// The class the plan chose (`retryable` by default), in its one accepted spelling.
fn planned_class(cx: &StepContext) -> Result<ErrorClass, StepError> {
    match cx.params.get("error").and_then(Value::as_str) {
        None => Ok(ErrorClass::Retryable),
        // INVARIANT: only the canonical spellings are accepted (also checked at validation).
        Some(text) => ErrorClass::from_plan(text).map_err(|message| {
            StepError::permanent(format!("step `{}`: parameter `error`: {message}", cx.step_id))
        }),
    }
}

fn attempts(cx: &StepContext, path: &str) -> Result<u64, StepError> {
    let counter = format!("{path}.attempts");
    Ok(read_if_exists(cx, Path::new(&counter))?
        .and_then(|bytes| String::from_utf8_lossy(&bytes).trim().parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(error: Value) -> Vec<ParamProblem> {
        let params = json!({"path": "p", "failures": 1, "error": error});
        Flaky.check(params.as_object().unwrap())
    }

    #[test]
    fn only_the_one_spelling_of_each_class_is_accepted() {
        for class in ErrorClass::ALL {
            assert_eq!(problems(json!(class.as_str())), vec![], "{class}");
        }
        let refused = problems(json!("not-yet"));
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].param, "error");
        assert_eq!(
            refused[0].message,
            "unknown error class `not-yet`; accepted values: `retryable`, `not_yet`, `permanent`"
        );
    }
}
