//! A [`RunReport`] for people: the end of `run` / `resume` (counts, then what was created,
//! changed, failed or left in doubt, by name) and the `status` table. Lines are returned, not
//! printed; the caller prints each through `outln!`, which escapes what plans and servers wrote.

use std::time::Duration;

use super::{Continue, Counts, RunReport, StepChange};
use crate::output::human_duration;

/// At most this many steps are listed at the end of a run; `sluice status RUN` lists them all.
pub const LISTED_AT_MOST: usize = 40;

/// `3 created, 1 updated, 2 unchanged, 0 failed`, then skipped, in doubt and not run when any.
pub fn counts_line(counts: &Counts) -> String {
    let mut parts = vec![
        format!("{} created", counts.created),
        format!("{} updated", counts.updated),
        format!("{} unchanged", counts.unchanged),
        format!("{} failed", counts.failed),
    ];
    for (count, what) in [
        (counts.skipped, "skipped"),
        (counts.in_doubt, "in doubt"),
        (counts.pending, "not run"),
    ] {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    parts.join(", ")
}

/// The end of a run: `run ID STATE: COUNTS`, then one line per step that created, changed,
/// failed or was left in doubt (its resource's name, its error, or the change under way).
pub fn end_of_run(report: &RunReport, how: Continue) -> Vec<String> {
    let mut lines = vec![format!(
        "run {} {}: {}",
        report.run_id,
        report.state.as_str(),
        counts_line(&report.counts)
    )];
    let listed: Vec<_> = report
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.change,
                StepChange::Created | StepChange::Updated | StepChange::Failed | StepChange::InDoubt
            )
        })
        .collect();
    let width = listed
        .iter()
        .map(|s| s.id.chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    for step in listed.iter().take(LISTED_AT_MOST) {
        let text = match step.change {
            StepChange::Created | StepChange::Updated => report
                .resources
                .iter()
                .find(|r| r.step == step.id)
                .and_then(|r| r.name.clone().or_else(|| Some(r.summary.clone()))),
            _ => step.summary.clone(),
        };
        lines.push(format!(
            "  {:<9} {:<width$}  {}",
            step.change.as_str(),
            step.id,
            text.unwrap_or_default()
        ));
    }
    let stored = how != Continue::RunAgainOnTheEmulator;
    if listed.len() > LISTED_AT_MOST {
        let more = listed.len() - LISTED_AT_MOST;
        lines.push(match stored {
            true => format!(
                "  … and {more} more (`sluice status {}` lists every step)",
                report.run_id
            ),
            false => format!("  … and {more} more"),
        });
    } else if stored && report.next.is_none() {
        lines.push(format!("every step: sluice status {}", report.run_id));
    }
    lines
}

/// `sluice status`: the run, its counts, one row per step, and how to continue it.
pub fn status(report: &RunReport) -> Vec<String> {
    let mut lines = vec![
        format!(
            "run {}  plan {} ({})  state {}  sessions {}",
            report.run_id,
            report.plan.name,
            report.plan.source,
            report.state.as_str(),
            report.sessions
        ),
        counts_line(&report.counts),
        format!(
            "{:<28} {:<10} {:<9} {:>8} {:>6} {:>10}  DETAIL",
            "STEP", "STATE", "CHANGE", "ATTEMPTS", "POLLS", "TIME"
        ),
    ];
    for step in &report.steps {
        let elapsed = step
            .duration_ms
            .map_or_else(|| "-".into(), |ms| human_duration(Duration::from_millis(ms)));
        lines.push(format!(
            "{:<28} {:<10} {:<9} {:>8} {:>6} {:>10}  {}",
            step.id,
            step.state.as_str(),
            step.change.as_str(),
            step.attempts,
            step.polls,
            elapsed,
            step.summary.as_deref().unwrap_or_default()
        ));
    }
    if let Some(next) = &report.next {
        lines.push(format!("not finished; continue with: {next}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_engine::{Change, RunState, StepRecord, StepStatus};

    use super::super::fixtures::{plan, run};
    use super::*;

    fn report(state: RunState, records: Vec<StepRecord>, ids: &[&str]) -> RunReport {
        RunReport::new(&run(state), &plan(ids), records, Continue::Resume)
    }

    fn done(id: &str, change: Option<Change>, name: &str) -> StepRecord {
        StepRecord {
            status: StepStatus::Succeeded,
            change,
            outputs: [("name".to_string(), json!(name))].into(),
            ..StepRecord::pending(id)
        }
    }

    #[test]
    fn the_counts_line_names_skipped_in_doubt_and_not_run_only_when_there_are_some() {
        let mut counts = Counts {
            created: 2,
            unchanged: 1,
            ..Counts::default()
        };
        assert_eq!(
            counts_line(&counts),
            "2 created, 0 updated, 1 unchanged, 0 failed"
        );
        counts.skipped = 3;
        counts.pending = 4;
        counts.in_doubt = 1;
        assert_eq!(
            counts_line(&counts),
            "2 created, 0 updated, 1 unchanged, 0 failed, 3 skipped, 1 in doubt, 4 not run"
        );
    }

    #[test]
    fn the_end_of_a_run_lists_what_changed_by_name_and_never_prints_outputs_as_json() {
        let records = vec![
            done("role", Some(Change::create("create role")), "projects/p/roles/r"),
            done("kept", None, "projects/p/kept"),
            StepRecord {
                outputs: [("project".to_string(), json!("p"))].into(),
                ..done("apis", Some(Change::update("enable a in p")), "")
            },
        ];
        let lines = end_of_run(
            &report(RunState::Succeeded, records, &["role", "kept", "apis"]),
            Continue::Resume,
        );
        assert_eq!(
            lines,
            [
                "run r1 succeeded: 1 created, 1 updated, 1 unchanged, 0 failed",
                "  created   role  projects/p/roles/r",
                "  updated   apis  enable a in p",
                "every step: sluice status r1",
            ]
        );
    }

    #[test]
    fn a_long_run_lists_at_most_so_many_steps_and_says_where_the_rest_are() {
        let ids: Vec<String> = (0..LISTED_AT_MOST + 5).map(|i| format!("s{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let records = ids
            .iter()
            .map(|id| done(id, Some(Change::update("u")), id))
            .collect();
        let lines = end_of_run(&report(RunState::Succeeded, records, &ids), Continue::Resume);
        assert_eq!(lines.len(), 1 + LISTED_AT_MOST + 1);
        assert_eq!(
            lines.last().unwrap(),
            "  … and 5 more (`sluice status r1` lists every step)"
        );
        let not_stored = end_of_run(
            &report(RunState::Succeeded, vec![], &["a"]),
            Continue::RunAgainOnTheEmulator,
        );
        assert_eq!(not_stored.len(), 1, "no store to ask: {not_stored:?}");
    }

    #[test]
    fn the_status_table_has_a_change_column_and_a_readable_detail() {
        let records = vec![done("role", Some(Change::create("c")), "projects/p/roles/r")];
        let lines = status(&report(RunState::Interrupted, records, &["role", "later"]));
        assert!(
            lines[2].starts_with("STEP") && lines[2].contains(" CHANGE "),
            "{lines:?}"
        );
        let columns: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            columns,
            [
                "role",
                "succeeded",
                "created",
                "0",
                "0",
                "-",
                "projects/p/roles/r"
            ]
        );
        let columns: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(columns, ["later", "pending", "pending", "0", "0", "-"]);
        assert_eq!(
            lines.last().unwrap(),
            "not finished; continue with: sluice resume r1"
        );
    }
}
