//! Org Policy v2 (`orgpolicy.v2.json`). Not emulated yet.

use std::time::Duration;

use serde_json::Value;

use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

/// Everything Org Policy keeps (custom constraints, policies).
#[derive(Debug, Clone, Default)]
pub struct OrgPolicyState {}

pub fn route(_emulator: &Emulator, _call: &Call) -> Option<Result<Value, ApiError>> {
    None
}

/// Enforcement for Vertex AI: Ok unless an enforced custom constraint on
/// `aiplatform.googleapis.com/ReasoningEngine` refuses this CREATE or UPDATE of `resource`
/// (the ReasoningEngine JSON, camelCase) in `project_id` at emulated time `now`.
pub fn check_reasoning_engine(
    _world: &World,
    _project_id: &str,
    _method_type: &str,
    _resource: &Value,
    _now: Duration,
) -> Result<(), ApiError> {
    Ok(())
}
