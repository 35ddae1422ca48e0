//! What a fleet tells its users: the summary (targets converged / changed / failed, failures
//! grouped by cause with the fix) and the JSON report for the scheduler that launched it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use sluice_engine::{FleetRecord, FleetState, TargetOutcome, TargetState};

use crate::error::ExitStatus;

/// Counts of a fleet's targets.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct Counts {
    pub total: usize,
    /// Succeeded without a mutation: already as wanted.
    pub converged: usize,
    /// Succeeded with at least one mutation.
    pub changed: usize,
    pub failed: usize,
    /// Interrupted, running in another session, or not started yet.
    pub unfinished: usize,
}

pub fn counts(targets: &[TargetOutcome]) -> Counts {
    let mut counts = Counts {
        total: targets.len(),
        ..Counts::default()
    };
    for target in targets {
        match target.state {
            TargetState::Succeeded if target.changes.is_empty() => counts.converged += 1,
            TargetState::Succeeded => counts.changed += 1,
            TargetState::Failed => counts.failed += 1,
            _ => counts.unfinished += 1,
        }
    }
    counts
}

/// Failed targets grouped by cause: the failed step and its message with the target's own
/// project id taken out, so a hundred targets failing for one reason make one group.
pub fn failure_groups(targets: &[TargetOutcome]) -> Vec<(String, Vec<String>)> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for target in targets.iter().filter(|t| t.state == TargetState::Failed) {
        let Some(failure) = &target.failure else {
            groups
                .entry("failed (no step recorded an error)".into())
                .or_default()
                .push(target.name.clone());
            continue;
        };
        let message = without_numbers(&failure.message.replace(&target.name, "<project>"));
        let cause = match &failure.step {
            Some(step) => format!("step `{step}` ({}): {message}", failure.class),
            None => format!("{}: {message}", failure.class),
        };
        groups.entry(cause).or_default().push(target.name.clone());
    }
    let mut groups: Vec<(String, Vec<String>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    groups
}

/// `text` with every run of six or more digits (project numbers, operation ids) as `N`, so
/// one cause met by many projects reads the same for each.
fn without_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut digits = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 6 {
            out.push('N');
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Prints the end of a fleet session for people (stdout).
pub fn print_summary(fleet: &FleetRecord, state: FleetState, targets: &[TargetOutcome], cleanup: &Value) {
    let c = counts(targets);
    outln!(
        "fleet {} ({}): {}: {} targets: {} converged, {} changed, {} failed{}",
        fleet.id,
        fleet.name,
        state.as_str(),
        c.total,
        c.converged,
        c.changed,
        c.failed,
        if c.unfinished > 0 {
            format!(", {} unfinished", c.unfinished)
        } else {
            String::new()
        }
    );
    if let Some(deleted) = cleanup["deleted"].as_array() {
        if !deleted.is_empty() {
            outln!(
                "clean-up: deleted {} expired project(s) of this fleet:",
                deleted.len()
            );
            for project in deleted {
                outln!(
                    "  {} (created {})",
                    project["project"].as_str().unwrap_or(""),
                    project["create_time"].as_str().unwrap_or("")
                );
            }
        }
    }
    if let Some(error) = cleanup["error"].as_str() {
        outln!("clean-up FAILED: {error}");
    }
    let groups = failure_groups(targets);
    if !groups.is_empty() {
        outln!("failures by cause:");
        for (cause, names) in &groups {
            let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
            let more = names.len().saturating_sub(shown.len());
            outln!(
                "  {} target{}: {cause}",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            );
            outln!(
                "    targets: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
}

/// The exit code of a fleet session: 0 all succeeded, 4 interrupted, 5 some targets failed
/// (or the clean-up did), 1 every target failed.
pub fn exit_status(state: FleetState, targets: &[TargetOutcome], cleanup_failed: bool) -> ExitStatus {
    let c = counts(targets);
    match state {
        FleetState::Interrupted => ExitStatus::Interrupted,
        _ if c.failed > 0 && c.failed == c.total => ExitStatus::RunFailed,
        _ if c.failed > 0 || cleanup_failed => ExitStatus::Partial,
        FleetState::Succeeded => ExitStatus::Success,
        _ => ExitStatus::Partial,
    }
}

/// The report for schedulers: per target project, run id, state, what was created, error.
pub fn report_json(
    fleet: &FleetRecord,
    state: FleetState,
    targets: &[TargetOutcome],
    cleanup: &Value,
) -> Value {
    let groups: Vec<Value> = failure_groups(targets)
        .into_iter()
        .map(|(cause, names)| json!({ "cause": cause, "targets": names }))
        .collect();
    let counts = counts(targets);
    let targets: Vec<Value> = targets
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "project": t.vars.get("project").cloned().unwrap_or(Value::Null),
                "new_project": is_new(fleet, t.index),
                "run_id": t.run_id,
                "state": t.state,
                "changed": !t.changes.is_empty(),
                "created": t.changes.iter().filter(|c| c.action == "create").collect::<Vec<_>>(),
                "changes": t.changes,
                "error": t.failure,
            })
        })
        .collect();
    json!({
        "fleet_run": fleet.id,
        "fleet": fleet.name,
        "source": fleet.source,
        "state": state.as_str(),
        "created_at_ms": fleet.created_at_ms,
        "updated_at_ms": fleet.updated_at_ms,
        "sessions": fleet.sessions,
        "counts": counts,
        "failures_by_cause": groups,
        "cleanup": cleanup,
        "targets": targets,
    })
}

fn is_new(fleet: &FleetRecord, index: usize) -> bool {
    fleet.extra["new_project_targets"]
        .as_array()
        .is_some_and(|list| list.iter().any(|i| i.as_u64() == Some(index as u64)))
}

/// Writes `report` to `path` atomically (a temporary file renamed over it).
pub fn write_report(path: &Path, report: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The client-side limiters at the end of a session: only services that waited or met 429s.
pub fn print_rates(rates: &[sluice_gcp::RateStats]) {
    for rate in rates.iter().filter(|r| r.delayed > 0 || r.exhausted > 0) {
        outln!(
            "rate limit {}: {} calls, {} waited for a slot ({:.1}s in all), {} answered 429; limit {}/min, now {:.0}/min",
            rate.service,
            rate.sent,
            rate.delayed,
            rate.waited.as_secs_f64(),
            rate.exhausted,
            rate.configured_per_minute,
            rate.current_per_minute
        );
    }
}

pub fn rates_json(rates: &[sluice_gcp::RateStats]) -> Value {
    rates
        .iter()
        .map(|r| {
            json!({
                "service": r.service,
                "configured_per_minute": r.configured_per_minute,
                "current_per_minute": r.current_per_minute,
                "sent": r.sent,
                "delayed": r.delayed,
                "exhausted": r.exhausted,
                "waited_ms": r.waited.as_millis() as u64,
            })
        })
        .collect()
}
