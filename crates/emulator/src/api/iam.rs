//! IAM v1 custom roles (`iam.v1.json`). Not emulated yet.

use serde_json::Value;

use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

pub fn route(_emulator: &Emulator, _call: &Call) -> Option<Result<Value, ApiError>> {
    None
}
