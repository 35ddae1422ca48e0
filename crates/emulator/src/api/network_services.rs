//! Network Services v1 agent gateways (`networkservices.v1.json`). Not emulated yet.

use serde_json::Value;

use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

/// A stored gateway (filled in when agent gateways are emulated).
#[derive(Debug, Clone)]
pub struct StoredGateway {
    pub body: Value,
}

pub fn route(_emulator: &Emulator, _call: &Call) -> Option<Result<Value, ApiError>> {
    None
}
