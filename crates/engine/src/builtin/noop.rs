//! `core.noop`: does nothing, durably. For benchmarks and plan scaffolding.
//!
//! Guarantees: no side effect at all. With `apply: true` it reports a change every time so that
//! the full intent → apply path runs (benchmarks); otherwise it is converged at once.

use async_trait::async_trait;
use serde_json::Value;

use crate::error::StepError;
use crate::kind::{
    Applied, Change, KindSchema, Observation, Outputs, ParamSpec, ParamType, StepContext, StepKind,
};

pub struct Noop;

fn outputs(cx: &StepContext) -> Outputs {
    Outputs::from([(
        "value".to_string(),
        cx.params.get("value").cloned().unwrap_or(Value::Null),
    )])
}

#[async_trait]
impl StepKind for Noop {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "does nothing; echoes `value` as its output",
            params: vec![
                ParamSpec::optional("value", ParamType::Any, "returned as the output `value`"),
                ParamSpec::optional("apply", ParamType::Bool, "report a change on every observe"),
            ],
            outputs: vec!["value"],
        }
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        if cx.params.get("apply").and_then(Value::as_bool).unwrap_or(false) {
            Ok(Observation::Diverged(Change::update("no-op apply")))
        } else {
            Ok(Observation::Converged(outputs(cx)))
        }
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        Ok(Applied::Done(outputs(cx)))
    }
}
