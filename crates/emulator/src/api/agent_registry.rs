//! Agent Registry v1 (`agentregistry.v1.json`). Not emulated yet.

use serde_json::Value;

use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

/// Everything Agent Registry keeps (services, request ids).
#[derive(Debug, Clone, Default)]
pub struct RegistryState {}

pub fn route(_emulator: &Emulator, _call: &Call) -> Option<Result<Value, ApiError>> {
    None
}
