//! What a run did, in one document: per step what changed (created, updated, unchanged, failed
//! …), the counts, the resources created or changed by name, and the command to type next.
//! Built from the stored records alone, so the end of `run` / `resume` and `status` of the same
//! run say the same thing; `--json` prints it as it is ([`RunReport`], `format_version` 1, every
//! field documented in README.md "Machine-readable output"), `text` renders it for people.

pub mod text;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use sluice_engine::{ChangeAction, ErrorClass, Outputs, Plan, RunRecord, RunState, StepRecord, StepState};

/// Bumped whenever a field of [`RunReport`] changes meaning or goes; new fields may be added
/// without a bump.
pub const FORMAT_VERSION: u32 = 1;

/// What a step did to the world in this run, derived from its stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepChange {
    /// Succeeded after creating what it manages.
    Created,
    /// Succeeded after changing what was there.
    Updated,
    /// Succeeded without a mutation: already as wanted.
    Unchanged,
    Failed,
    /// Skipped: its `when` was false, or a step it reads from was skipped.
    Skipped,
    /// A mutation was started and its end is not recorded yet: under way while the run runs,
    /// unknown once its process stopped (the next session observes first).
    InDoubt,
    /// Not run (yet), or observing (read only).
    Pending,
}

impl StepChange {
    /// A succeeded step's record keeps the change it made (`None`: it observed no difference).
    pub fn of(record: &StepRecord) -> Self {
        match record.state() {
            StepState::Succeeded => match record.change.as_ref().map(|c| c.action) {
                Some(ChangeAction::Create) => StepChange::Created,
                Some(ChangeAction::Update) => StepChange::Updated,
                None => StepChange::Unchanged,
            },
            StepState::Failed => StepChange::Failed,
            StepState::Skipped => StepChange::Skipped,
            StepState::Applying | StepState::Waiting => StepChange::InDoubt,
            StepState::Pending | StepState::Observing => StepChange::Pending,
        }
    }

    /// The JSON value, also the CHANGE column of `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepChange::Created => "created",
            StepChange::Updated => "updated",
            StepChange::Unchanged => "unchanged",
            StepChange::Failed => "failed",
            StepChange::Skipped => "skipped",
            StepChange::InDoubt => "in_doubt",
            StepChange::Pending => "pending",
        }
    }
}

/// How many steps ended each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub skipped: usize,
    pub in_doubt: usize,
    pub pending: usize,
}

impl Counts {
    pub fn of(changes: impl IntoIterator<Item = StepChange>) -> Self {
        let mut counts = Counts::default();
        for change in changes {
            *match change {
                StepChange::Created => &mut counts.created,
                StepChange::Updated => &mut counts.updated,
                StepChange::Unchanged => &mut counts.unchanged,
                StepChange::Failed => &mut counts.failed,
                StepChange::Skipped => &mut counts.skipped,
                StepChange::InDoubt => &mut counts.in_doubt,
                StepChange::Pending => &mut counts.pending,
            } += 1;
        }
        counts
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRef {
    pub name: String,
    /// Where the plan was read from.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepError {
    pub class: ErrorClass,
    pub message: String,
}

/// One step of the run, in plan order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    pub id: String,
    pub kind: String,
    pub state: StepState,
    pub change: StepChange,
    /// One line for people: the error, the reason it was skipped, the resource's name, or the
    /// change under way.
    pub summary: Option<String>,
    pub attempts: u32,
    pub polls: u32,
    pub duration_ms: Option<u64>,
    pub outputs: Outputs,
    pub error: Option<StepError>,
}

/// A resource the run created or changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub step: String,
    pub kind: String,
    /// `created` or `updated`.
    pub change: StepChange,
    /// The resource's name from the step's outputs (see [`resource_name`]); none when no
    /// output names it.
    pub name: Option<String>,
    /// What the step did, as its kind worded it.
    pub summary: String,
}

/// The document `run --json`, `resume --json` and `status --json` print.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub format_version: u32,
    pub run_id: String,
    pub plan: PlanRef,
    pub state: RunState,
    pub vars: BTreeMap<String, Value>,
    /// Processes that have executed the run.
    pub sessions: u32,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub finished_at_ms: Option<u64>,
    pub counts: Counts,
    pub steps: Vec<StepReport>,
    pub resources: Vec<Resource>,
    /// The command to type next; none once the run succeeded.
    pub next: Option<String>,
}

/// Whether the run can be continued from its store (`sluice resume RUN`, with `--emulator` for an
/// `--emulator` run whose world is kept beside its store); an `--emulator` run in a throw-away
/// store cannot, and is run again instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continue {
    Resume,
    ResumeOnTheEmulator,
    RunAgainOnTheEmulator,
}

impl Continue {
    /// The command that continues the run, before its id; none for a run that is run again.
    pub fn resume_command(self) -> Option<&'static str> {
        match self {
            Continue::Resume => Some("sluice resume"),
            Continue::ResumeOnTheEmulator => Some("sluice resume --emulator"),
            Continue::RunAgainOnTheEmulator => None,
        }
    }
}

impl RunReport {
    /// The report of `run` from its stored step records (any order; a step without a record is
    /// pending) and its `plan`, which gives the order and the kinds.
    pub fn new(run: &RunRecord, plan: &Plan, records: Vec<StepRecord>, how: Continue) -> Self {
        let mut by_id: HashMap<String, StepRecord> =
            records.into_iter().map(|r| (r.step_id.clone(), r)).collect();
        let mut steps = Vec::with_capacity(plan.steps.len());
        let mut resources = Vec::new();
        for spec in &plan.steps {
            let record = by_id
                .remove(&spec.id)
                .unwrap_or_else(|| StepRecord::pending(&spec.id));
            let change = StepChange::of(&record);
            if matches!(change, StepChange::Created | StepChange::Updated) {
                resources.push(Resource {
                    step: spec.id.clone(),
                    kind: spec.kind.clone(),
                    change,
                    name: resource_name(&record.outputs),
                    summary: record
                        .change
                        .as_ref()
                        .map(|c| c.summary.clone())
                        .unwrap_or_default(),
                });
            }
            steps.push(step_report(record, &spec.kind));
        }
        RunReport {
            format_version: FORMAT_VERSION,
            run_id: run.id.clone(),
            plan: PlanRef {
                name: run.plan_name.clone(),
                source: run.plan_source.clone(),
            },
            state: run.state,
            vars: run.vars.clone(),
            sessions: run.sessions,
            created_at_ms: run.created_at_ms,
            updated_at_ms: run.updated_at_ms,
            finished_at_ms: run.finished_at_ms,
            counts: Counts::of(steps.iter().map(|s| s.change)),
            steps,
            resources,
            next: next_command(run, how),
        }
    }
}

fn step_report(record: StepRecord, kind: &str) -> StepReport {
    let change = StepChange::of(&record);
    let error = record.error.map(|e| StepError {
        class: e.class,
        message: e.message,
    });
    let change_summary = record.change.map(|c| c.summary);
    let summary = match change {
        StepChange::Failed => error.as_ref().map(|e| e.message.clone()),
        StepChange::InDoubt => change_summary,
        StepChange::Created | StepChange::Updated | StepChange::Unchanged => {
            resource_name(&record.outputs).or(change_summary)
        }
        StepChange::Skipped | StepChange::Pending => None,
    }
    .or(record.note);
    StepReport {
        state: record.status.state(),
        id: record.step_id,
        kind: kind.to_string(),
        change,
        summary,
        attempts: record.attempts,
        polls: record.polls,
        duration_ms: match (record.started_at_ms, record.finished_at_ms) {
            (Some(start), Some(end)) => Some(end.saturating_sub(start)),
            _ => None,
        },
        outputs: record.outputs,
        error,
    }
}

/// The name of what a step manages, from its outputs: `name`, else an `…_id` that is not a
/// number (`project_id`), else the longest output that is a resource path (holds a `/`:
/// `projects/p/roles/r`, a file's path). None when no output names it (a step enabling APIs
/// outputs only its project): its change summary says what it did instead.
pub fn resource_name(outputs: &Outputs) -> Option<String> {
    let text = |key: &str| outputs.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
    if let Some(name) = text("name") {
        return Some(name.to_string());
    }
    let strings = || {
        outputs
            .iter()
            .filter_map(|(key, value)| Some((key, value.as_str().filter(|v| !v.is_empty())?)))
    };
    let id =
        strings().find(|(key, value)| key.ends_with("_id") && !value.chars().all(|c| c.is_ascii_digit()));
    if let Some((_, id)) = id {
        return Some(id.to_string());
    }
    strings()
        .filter(|(_, value)| value.contains('/'))
        // The longest; of equals, the first key.
        .fold(None::<&str>, |best, (_, value)| match best {
            Some(best) if best.len() >= value.len() => Some(best),
            _ => Some(value),
        })
        .map(str::to_string)
}

/// What to type next: nothing once the run succeeded; otherwise how to continue it.
fn next_command(run: &RunRecord, how: Continue) -> Option<String> {
    if run.state == RunState::Succeeded {
        return None;
    }
    Some(match how.resume_command() {
        Some(resume) => format!("{resume} {}", run.id),
        None => format!("sluice run {} --emulator", run.plan_source),
    })
}

/// Runs and plans the tests of this module and of `text` build reports from.
#[cfg(test)]
mod fixtures {
    use serde_json::{json, Value};

    use super::*;

    pub fn run(state: RunState) -> RunRecord {
        RunRecord {
            id: "r1".into(),
            run_key: "k".into(),
            plan_digest: "d".into(),
            plan_name: "p".into(),
            plan_source: "plans/p.json".into(),
            vars: BTreeMap::new(),
            state,
            created_at_ms: 1,
            updated_at_ms: 2,
            finished_at_ms: None,
            sessions: 1,
        }
    }

    pub fn plan(ids: &[&str]) -> Plan {
        let steps: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "kind": "core.noop"}))
            .collect();
        serde_json::from_value(json!({"name": "p", "steps": steps})).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_engine::store::ErrorRecord;
    use sluice_engine::{Change, StepStatus};

    use super::fixtures::{plan, run};
    use super::*;

    fn record(id: &str, status: StepStatus, change: Option<Change>, outputs: Value) -> StepRecord {
        StepRecord {
            status,
            change,
            outputs: serde_json::from_value(outputs).unwrap(),
            attempts: 1,
            started_at_ms: Some(1_000),
            finished_at_ms: Some(1_250),
            ..StepRecord::pending(id)
        }
    }

    #[test]
    fn a_succeeded_step_counts_by_the_change_it_recorded_and_others_by_their_state() {
        let done = |change| record("s", StepStatus::Succeeded, change, json!({}));
        assert_eq!(
            StepChange::of(&done(Some(Change::create("c")))),
            StepChange::Created
        );
        assert_eq!(
            StepChange::of(&done(Some(Change::update("u")))),
            StepChange::Updated
        );
        assert_eq!(StepChange::of(&done(None)), StepChange::Unchanged);
        // The intent a failed or unfinished step recorded is not a change made.
        let failed = StepStatus::Failed { unsettled: None };
        let with = |status| record("s", status, Some(Change::create("c")), json!({}));
        assert_eq!(StepChange::of(&with(failed)), StepChange::Failed);
        assert_eq!(StepChange::of(&with(StepStatus::Applying)), StepChange::InDoubt);
        assert_eq!(StepChange::of(&with(StepStatus::Observing)), StepChange::Pending);
        assert_eq!(StepChange::of(&with(StepStatus::Skipped)), StepChange::Skipped);
        assert_eq!(StepChange::of(&StepRecord::pending("s")), StepChange::Pending);
    }

    #[test]
    fn the_report_counts_every_plan_step_once_in_plan_order_and_lists_what_changed() {
        let records = vec![
            // Out of order, and `d` has no record at all.
            record("c", StepStatus::Succeeded, None, json!({"name": "kept"})),
            record(
                "a",
                StepStatus::Succeeded,
                Some(Change::create("create role r")),
                json!({"name": "projects/p/roles/r"}),
            ),
            StepRecord {
                error: Some(ErrorRecord {
                    class: ErrorClass::Permanent,
                    message: "denied".into(),
                }),
                ..record("e", StepStatus::Failed { unsettled: None }, None, json!({}))
            },
            record(
                "b",
                StepStatus::Succeeded,
                Some(Change::update("enable x in p")),
                json!({"project": "p"}),
            ),
        ];
        let report = RunReport::new(
            &run(RunState::Failed),
            &plan(&["a", "b", "c", "d", "e"]),
            records,
            Continue::Resume,
        );
        let ids: Vec<&str> = report.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        assert_eq!(
            report.counts,
            Counts {
                created: 1,
                updated: 1,
                unchanged: 1,
                failed: 1,
                pending: 1,
                ..Counts::default()
            }
        );
        let resources: Vec<(&str, StepChange, Option<&str>, &str)> = report
            .resources
            .iter()
            .map(|r| (r.step.as_str(), r.change, r.name.as_deref(), r.summary.as_str()))
            .collect();
        assert_eq!(
            resources,
            [
                (
                    "a",
                    StepChange::Created,
                    Some("projects/p/roles/r"),
                    "create role r"
                ),
                ("b", StepChange::Updated, None, "enable x in p"),
            ]
        );
        let summaries: Vec<Option<&str>> = report.steps.iter().map(|s| s.summary.as_deref()).collect();
        assert_eq!(
            summaries,
            [
                Some("projects/p/roles/r"),
                Some("enable x in p"),
                Some("kept"),
                None,
                Some("denied")
            ]
        );
        assert_eq!(report.steps[0].duration_ms, Some(250));
        assert_eq!(report.next.as_deref(), Some("sluice resume r1"));
    }

    #[test]
    fn only_an_unfinished_run_has_a_next_command_and_an_emulator_run_is_run_again() {
        let report = |state, how| RunReport::new(&run(state), &plan(&["a"]), vec![], how).next;
        assert_eq!(report(RunState::Succeeded, Continue::Resume), None);
        assert_eq!(
            report(RunState::Interrupted, Continue::Resume).as_deref(),
            Some("sluice resume r1")
        );
        assert_eq!(
            report(RunState::Failed, Continue::RunAgainOnTheEmulator).as_deref(),
            Some("sluice run plans/p.json --emulator")
        );
    }

    #[test]
    fn a_resource_is_named_by_name_else_a_textual_id_else_its_longest_path() {
        let name = |outputs: Value| resource_name(&serde_json::from_value(outputs).unwrap());
        assert_eq!(
            name(json!({"name": "n", "project_id": "p"})).as_deref(),
            Some("n")
        );
        assert_eq!(
            name(json!({"parent": "organizations/1", "project_id": "p-1", "project_number": "42"}))
                .as_deref(),
            Some("p-1")
        );
        assert_eq!(
            name(json!({"members": ["user:a"], "project": "p", "role": "projects/p/roles/r"})).as_deref(),
            Some("projects/p/roles/r")
        );
        // A numeric id and a bare word do not name a resource.
        assert_eq!(name(json!({"engine_id": "123", "project": "p"})), None);
        assert_eq!(name(json!({"name": "", "services": ["a"]})), None);
    }
}
