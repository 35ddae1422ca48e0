//! `plan`: what a run of the plan would change, from `observe` calls only. No store is opened.
//!
//! The rows shown here are also what `run` shows before it asks, what `plan --json` prints and
//! what a saved plan (`plan --out FILE`, [`super::saved_plan`]) records and compares.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_engine::{Engine, Preview, StepPreview, ValidatedPlan};

use super::plan_file;
use super::saved_plan;
use crate::args::{CloudArgs, VarArgs};
use crate::error::{CliError, CommandResult, ExitStatus, Outcome};
use crate::Sluice;

/// How `plan` reports: lines or JSON, a saved copy, Terraform's detailed exit codes.
pub struct PlanOutput {
    pub json: bool,
    pub out: Option<PathBuf>,
    pub detailed_exitcode: bool,
}

/// `store`: the `--store` given, beside which an `--emulator` plan finds the world the last
/// `--emulator` run left (read only).
pub async fn plan(
    plan_path: &Path,
    vars: &VarArgs,
    cloud_args: &CloudArgs,
    store: Option<&Path>,
    output: &PlanOutput,
    app: &Sluice,
) -> CommandResult {
    let result = show_plan(plan_path, vars, cloud_args, store, output, app).await;
    if !output.detailed_exitcode {
        return result;
    }
    // Terraform's codes: 0 nothing to change, 2 changes, 1 any error (bad input included, so
    // that 2 always means "changes").
    match result {
        Ok(outcome) if outcome.status == ExitStatus::Success => Ok(outcome),
        Ok(outcome) if outcome.status == ExitStatus::ChangesPresent => Ok(outcome),
        Ok(outcome) => Ok(Outcome {
            status: ExitStatus::RunFailed,
            ..outcome
        }),
        Err(error) => Err(CliError {
            status: ExitStatus::RunFailed,
            ..error
        }),
    }
}

async fn show_plan(
    plan_path: &Path,
    vars: &VarArgs,
    cloud_args: &CloudArgs,
    store: Option<&Path>,
    output: &PlanOutput,
    app: &Sluice,
) -> CommandResult {
    if let Some(out) = &output.out {
        let same = |a: &Path, b: &Path| {
            a.canonicalize()
                .ok()
                .is_some_and(|a| b.canonicalize().ok() == Some(a))
        };
        if same(out, plan_path) {
            return Err(CliError::bad_input(format!(
                "--out {} is the plan file itself; it would be overwritten",
                out.display()
            ))
            .with_hint("save the plan to another file, e.g. --out reviewed.json"));
        }
    }
    let world = super::kept_world::world_for_plan(cloud_args, store)?;
    let target = super::cloud::target(cloud_args, world).await?;
    let registry = app.kinds.registry(target.cloud.clone());
    let text = plan_file::read_text(plan_path)?;
    let source = plan_path.display().to_string();
    let validated = plan_file::load_text(&text, &source, vars, &registry, &target.default_vars)?;
    super::cloud::check_credentials(&target, &validated.plan).await?;
    let rows = rows(&Engine::preview(&registry, &validated).await);
    let counts = Counts::of(&rows);
    if output.json {
        crate::output::print_json(&PlanDocument::new(&validated, &source, &rows), true);
    } else {
        for line in render(&validated.plan.name, &rows) {
            outln!("{line}");
        }
    }
    if counts.cannot_observe > 0 {
        let mut next =
            "some steps could not be observed (see above); a run would retry or fail them".to_string();
        if output.out.is_some() {
            next.push_str("; the plan was not saved: a saved plan must say what every step would do");
        }
        return Ok(Outcome::ended(ExitStatus::RunFailed, next));
    }
    if let Some(file) = &output.out {
        let saved = saved_plan::SavedPlan::new(&validated, &source, &text, cloud_args, &rows);
        saved.write(file)?;
        errln!(
            "saved the plan to {}; apply exactly this with: sluice run {}{}",
            file.display(),
            file.display(),
            saved.target.flags_hint()
        );
    }
    Ok(if counts.changes() && output.detailed_exitcode {
        Outcome {
            status: ExitStatus::ChangesPresent,
            next: None,
        }
    } else {
        Outcome::success()
    })
}

/// What a run would do with one step, as shown and saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// An operation changing it is under way; a run waits on it.
    InProgress,
    /// It reads outputs of steps that have not run, or its API is not usable yet.
    KnownLater,
    /// Observing it failed (exit 1): a run would retry or fail it.
    CannotObserve,
    /// Its `when` is false, or a step it reads is skipped.
    Skipped,
}

impl Action {
    /// The mark in the listing; none is Terraform's `-` (destroy), which sluice never does.
    pub fn mark(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Unchanged => "=",
            Action::InProgress => ">",
            Action::KnownLater => "?",
            Action::CannotObserve => "!",
            Action::Skipped => "/",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::InProgress => "in progress",
            Action::KnownLater => "known later",
            Action::CannotObserve => "cannot observe",
            Action::Skipped => "skipped",
        }
    }

    const ALL: [Action; 7] = [
        Action::Create,
        Action::Update,
        Action::Unchanged,
        Action::InProgress,
        Action::KnownLater,
        Action::CannotObserve,
        Action::Skipped,
    ];
}

/// One step of the plan as `plan --json` prints it and a saved plan holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub kind: String,
    pub action: Action,
    /// What `create` or `update` would do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// `known_later`: the steps whose outputs it reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits_on: Vec<String>,
    /// `known_later` (its API not usable yet) or `cannot_observe`: what observing it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Row {
    fn from_preview(preview: &StepPreview) -> Row {
        let row = |action| Row {
            id: preview.step_id.clone(),
            kind: preview.kind.clone(),
            action,
            summary: None,
            waits_on: Vec::new(),
            reason: None,
        };
        match &preview.preview {
            Preview::NoChange => row(Action::Unchanged),
            Preview::Create { summary } => Row {
                summary: Some(summary.clone()),
                ..row(Action::Create)
            },
            Preview::Update { summary } => Row {
                summary: Some(summary.clone()),
                ..row(Action::Update)
            },
            Preview::InProgress => row(Action::InProgress),
            Preview::AfterSteps { steps } => Row {
                waits_on: steps.clone(),
                ..row(Action::KnownLater)
            },
            Preview::Unknown { error, not_yet } => Row {
                reason: Some(error.clone()),
                ..row(if *not_yet {
                    Action::KnownLater
                } else {
                    Action::CannotObserve
                })
            },
            Preview::Skipped => row(Action::Skipped),
        }
    }

    /// What the listing says after the step's id and kind.
    pub fn text(&self) -> String {
        let summary = self.summary.as_deref().unwrap_or_default();
        let reason = self.reason.as_deref().unwrap_or_default();
        match self.action {
            Action::Create => format!("create: {summary}"),
            Action::Update => format!("update: {summary}"),
            Action::Unchanged => "unchanged".into(),
            Action::InProgress => "in progress: an operation is under way; a run waits on it".into(),
            Action::KnownLater if !self.waits_on.is_empty() => {
                format!(
                    "known later: once {} ran (reads its outputs)",
                    quoted(&self.waits_on)
                )
            }
            Action::KnownLater => format!("known later: once earlier steps ran: {reason}"),
            Action::CannotObserve => format!("cannot observe: {reason}"),
            Action::Skipped => "skipped".into(),
        }
    }
}

pub fn rows(previews: &[StepPreview]) -> Vec<Row> {
    previews.iter().map(Row::from_preview).collect()
}

/// How many steps have each action; every step is counted once, so they add up to `steps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub unchanged: usize,
    pub in_progress: usize,
    pub known_later: usize,
    pub cannot_observe: usize,
    pub skipped: usize,
    pub steps: usize,
}

impl Counts {
    pub fn of(rows: &[Row]) -> Counts {
        let mut counts = Counts {
            steps: rows.len(),
            ..Counts::default()
        };
        for row in rows {
            *counts.slot(row.action) += 1;
        }
        counts
    }

    fn slot(&mut self, action: Action) -> &mut usize {
        match action {
            Action::Create => &mut self.create,
            Action::Update => &mut self.update,
            Action::Unchanged => &mut self.unchanged,
            Action::InProgress => &mut self.in_progress,
            Action::KnownLater => &mut self.known_later,
            Action::CannotObserve => &mut self.cannot_observe,
            Action::Skipped => &mut self.skipped,
        }
    }

    fn get(&self, action: Action) -> usize {
        match action {
            Action::Create => self.create,
            Action::Update => self.update,
            Action::Unchanged => self.unchanged,
            Action::InProgress => self.in_progress,
            Action::KnownLater => self.known_later,
            Action::CannotObserve => self.cannot_observe,
            Action::Skipped => self.skipped,
        }
    }

    /// Whether any step would (or may) change something.
    pub fn changes(&self) -> bool {
        self.unchanged + self.skipped < self.steps
    }
}

/// `plan --json`: one document (`format_version` 1; fields in the README).
#[derive(Debug, Serialize)]
pub struct PlanDocument<'a> {
    pub format_version: u32,
    pub plan: PlanName<'a>,
    pub changes: bool,
    pub counts: Counts,
    pub steps: &'a [Row],
}

#[derive(Debug, Serialize)]
pub struct PlanName<'a> {
    pub name: &'a str,
    pub source: &'a str,
}

impl<'a> PlanDocument<'a> {
    pub fn new(validated: &'a ValidatedPlan, source: &'a str, rows: &'a [Row]) -> Self {
        let counts = Counts::of(rows);
        PlanDocument {
            format_version: 1,
            plan: PlanName {
                name: &validated.plan.name,
                source,
            },
            changes: counts.changes(),
            counts,
            steps: rows,
        }
    }
}

/// The listing `plan` prints and `run` shows before it asks: a legend of the marks used, one
/// line per step in plan order, then the counts (every step counted once).
pub fn render(name: &str, rows: &[Row]) -> Vec<String> {
    let counts = Counts::of(rows);
    let used: Vec<String> = Action::ALL
        .iter()
        .filter(|action| counts.get(**action) > 0)
        .map(|action| format!("{} {}", action.mark(), action.words()))
        .collect();
    let mut lines = Vec::with_capacity(rows.len() + 3);
    if !used.is_empty() {
        lines.push(format!("marks: {}", used.join(", ")));
    }
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(0);
    let kind_width = rows.iter().map(|r| r.kind.len()).max().unwrap_or(0);
    for row in rows {
        lines.push(format!(
            "  {} {:width$}  {:kind_width$}  {}",
            row.action.mark(),
            row.id,
            row.kind,
            row.text()
        ));
    }
    // Create, update and unchanged always; the others when some step has them.
    let tallies: Vec<String> = Action::ALL
        .iter()
        .filter(|action| {
            matches!(action, Action::Create | Action::Update | Action::Unchanged) || counts.get(**action) > 0
        })
        .map(|action| match action {
            Action::Create | Action::Update => format!("{} to {}", counts.get(*action), action.words()),
            other => format!("{} {}", counts.get(*other), other.words()),
        })
        .collect();
    lines.push(format!(
        "plan {name}: {} ({} step{})",
        tallies.join(", "),
        counts.steps,
        if counts.steps == 1 { "" } else { "s" }
    ));
    if !counts.changes() {
        lines.push("no changes: every step is as the plan wants it".into());
    }
    lines
}

fn quoted(steps: &[String]) -> String {
    steps
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(id: &str, preview: Preview) -> StepPreview {
        StepPreview {
            step_id: id.into(),
            kind: "core.noop".into(),
            preview,
        }
    }

    fn every_action() -> Vec<Row> {
        rows(&[
            preview(
                "a",
                Preview::Create {
                    summary: "make a".into(),
                },
            ),
            preview(
                "b",
                Preview::Update {
                    summary: "fix b".into(),
                },
            ),
            preview("c", Preview::NoChange),
            preview("d", Preview::InProgress),
            preview(
                "e",
                Preview::AfterSteps {
                    steps: vec!["a".into()],
                },
            ),
            preview(
                "f",
                Preview::Unknown {
                    error: "API not enabled".into(),
                    not_yet: true,
                },
            ),
            preview(
                "g",
                Preview::Unknown {
                    error: "denied".into(),
                    not_yet: false,
                },
            ),
            preview("h", Preview::Skipped),
        ])
    }

    #[test]
    fn every_step_is_counted_once_and_the_counts_come_last() {
        let rows = every_action();
        let counts = Counts::of(&rows);
        assert_eq!(
            (counts.create, counts.update, counts.unchanged, counts.in_progress),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (counts.known_later, counts.cannot_observe, counts.skipped),
            (2, 1, 1)
        );
        assert_eq!(counts.steps, 8);
        let lines = render("p", &rows);
        assert_eq!(
            lines[0],
            "marks: + create, ~ update, = unchanged, > in progress, ? known later, ! cannot observe, / skipped"
        );
        assert_eq!(
            lines.last().unwrap(),
            "plan p: 1 to create, 1 to update, 1 unchanged, 1 in progress, 2 known later, 1 cannot observe, 1 skipped (8 steps)"
        );
        let marks: String = lines[1..9]
            .iter()
            .map(|l| l.trim_start().chars().next().unwrap())
            .collect();
        assert_eq!(marks, "+~=>??!/");
        assert!(
            !lines.iter().any(|l| l.trim_start().starts_with('-')),
            "no Terraform destroy mark"
        );
        assert!(
            lines[5].ends_with("known later: once `a` ran (reads its outputs)"),
            "{}",
            lines[5]
        );
    }

    #[test]
    fn a_plan_without_changes_says_so_and_lists_only_the_marks_it_uses() {
        let rows = rows(&[preview("c", Preview::NoChange), preview("s", Preview::Skipped)]);
        assert!(!Counts::of(&rows).changes());
        let lines = render("p", &rows);
        assert_eq!(lines[0], "marks: = unchanged, / skipped");
        assert_eq!(
            lines[3],
            "plan p: 0 to create, 0 to update, 1 unchanged, 1 skipped (2 steps)"
        );
        assert_eq!(lines[4], "no changes: every step is as the plan wants it");
    }
}
