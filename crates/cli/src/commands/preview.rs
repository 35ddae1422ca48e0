//! `plan`: what a run of the plan would change, from `observe` calls only. No store is opened.

use std::path::Path;

use sluice_engine::{Engine, Preview, StepPreview};

use super::plan_file;
use crate::args::{CloudArgs, VarArgs};
use crate::error::{CommandResult, ExitStatus, Outcome};
use crate::Sluice;

/// `store`: the `--store` given, beside which an `--emulator` plan finds the world the last
/// `--emulator` run left (read only).
pub async fn plan(
    plan_path: &Path,
    vars: &VarArgs,
    cloud_args: &CloudArgs,
    store: Option<&Path>,
    json: bool,
    app: &Sluice,
) -> CommandResult {
    let world = super::kept_world::world_for_plan(cloud_args, store)?;
    let target = super::cloud::target(cloud_args, world).await?;
    let registry = app.kinds.registry(target.cloud.clone());
    let validated = plan_file::load_with_defaults(plan_path, vars, &registry, &target.default_vars)?;
    super::cloud::check_credentials(&target, &validated.plan).await?;
    let previews = Engine::preview(&registry, &validated).await;
    if json {
        crate::output::print_json(&previews, true);
    } else {
        print_lines(&validated.plan.name, &previews);
    }
    let failed = previews
        .iter()
        .any(|p| matches!(p.preview, Preview::Unknown { not_yet: false, .. }));
    Ok(if failed {
        Outcome::ended(
            ExitStatus::RunFailed,
            "some steps could not be observed (see above); a run would retry or fail them",
        )
    } else {
        Outcome::success()
    })
}

fn print_lines(name: &str, previews: &[StepPreview]) {
    let count = |f: fn(&Preview) -> bool| previews.iter().filter(|p| f(&p.preview)).count();
    outln!(
        "plan {name}: {} to create, {} to update, {} unchanged, {} known once earlier steps run, {} skipped",
        count(|p| matches!(p, Preview::Create { .. })),
        count(|p| matches!(p, Preview::Update { .. })),
        count(|p| matches!(p, Preview::NoChange)),
        count(|p| matches!(
            p,
            Preview::AfterSteps { .. } | Preview::Unknown { not_yet: true, .. } | Preview::InProgress
        )),
        count(|p| matches!(p, Preview::Skipped)),
    );
    let width = previews.iter().map(|p| p.step_id.len()).max().unwrap_or(0);
    for p in previews {
        let (mark, text) = match &p.preview {
            Preview::NoChange => ("=", "no change".to_string()),
            Preview::Create { summary } => ("+", format!("create: {summary}")),
            Preview::Update { summary } => ("~", format!("update: {summary}")),
            Preview::InProgress => (">", "an operation is under way; a run waits on it".to_string()),
            Preview::AfterSteps { steps } => (
                "…",
                format!("known once {} ran (reads its outputs)", quoted(steps)),
            ),
            Preview::Unknown { error, not_yet: true } => {
                ("…", format!("known once earlier steps ran: {error}"))
            }
            Preview::Unknown {
                error,
                not_yet: false,
            } => ("!", format!("cannot observe: {error}")),
            Preview::Skipped => ("-", "skipped".to_string()),
        };
        outln!("  {mark} {:width$}  {:<22} {text}", p.step_id, p.kind);
    }
}

fn quoted(steps: &[String]) -> String {
    steps
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
