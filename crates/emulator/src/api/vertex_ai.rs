//! Vertex AI reasoningEngines v1 / v1beta1 (`aiplatform.v1.json`, `.v1beta1.json`). Not
//! emulated yet.

use serde_json::Value;

use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

/// Everything Vertex AI keeps (reasoning engines).
#[derive(Debug, Clone, Default)]
pub struct VertexState {}

pub fn route(_emulator: &Emulator, _call: &Call) -> Option<Result<Value, ApiError>> {
    None
}
