//! The time-to-live clean-up: before its targets run, `fleet run` deletes the projects that
//! carry this fleet's label and are older than its `ttl`, never one without the label (the
//! search's answer is checked again here and by `delete_project`), and never one of this fleet
//! run's own targets.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sluice_engine::FleetRecord;

use super::file::OWNER_LABEL_KEY;
use crate::commands::cloud::Target;

/// Runs the clean-up; returns `{"deleted": [...], "error": ...}` for the summary and report.
/// A failure here is reported (and makes the fleet partial), never stops the targets.
pub async fn run(target: &Target, fleet: &FleetRecord, ttl: Duration) -> Value {
    let client = match target.cloud.client().await {
        Ok(client) => client,
        Err(error) => return json!({ "deleted": [], "error": error.to_string() }),
    };
    let label = (OWNER_LABEL_KEY, fleet.name.as_str());
    let own: BTreeSet<&str> = fleet
        .targets
        .iter()
        .filter_map(|t| t.vars.get("project").and_then(Value::as_str))
        .collect();
    let expired = match sluice_steps::fleet_cleanup::expired_fleet_projects(
        client,
        label,
        ttl,
        SystemTime::now(),
    )
    .await
    {
        Ok(expired) => expired,
        Err(error) => {
            return json!({
                "deleted": [],
                "error": format!("listing this fleet's projects (projects.search, labels.{OWNER_LABEL_KEY}:{}): {error}", fleet.name),
            })
        }
    };
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for project in expired.iter().filter(|p| !own.contains(p.project_id.as_str())) {
        match sluice_steps::fleet_cleanup::delete_project(client, &project.project_id, label).await {
            Ok(()) => {
                errln!(
                    "clean-up: deleted {} (created {}, older than the fleet's ttl)",
                    project.project_id,
                    project.create_time
                );
                deleted.push(json!({
                    "project": project.project_id,
                    "create_time": project.create_time,
                    "age_secs": project.age.as_secs(),
                }));
            }
            Err(error) => failures.push(format!("{}: {error}", project.project_id)),
        }
    }
    let mut report = json!({ "deleted": deleted });
    if !failures.is_empty() {
        report["error"] = Value::String(format!(
            "deleting expired projects (projects.delete needs resourcemanager.projects.delete): {}",
            failures.join("; ")
        ));
    }
    report
}
