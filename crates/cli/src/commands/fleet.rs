//! `fleet run`, `fleet resume`, `fleet status` and `fleet plan`: one plan against many projects
//! in one process and one store.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use sluice_engine::fleet::{finished_targets, fleet_outcomes};
use sluice_engine::time::now_ms;
use sluice_engine::{Engine, FleetRecord, FleetState, FleetSummary, FleetTargetSpec, Store, TargetOutcome};
use tokio::sync::{mpsc, watch};

use super::cloud::{self, Target};
use super::run::{build_engine, open_run_store, watch_signals};
use super::{engine_failure, open_existing_store, open_for_reading, plan_file, store_failure};
use crate::args::{CloudArgs, ExecArgs, FleetExecArgs, LogFormat, VarArgs};
use crate::error::{CliError, CommandResult, ExitStatus, Outcome};
use crate::fleet::{file, live, report};
use crate::output;
use crate::Sluice;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    fleet_path: &Path,
    vars: &VarArgs,
    fleet_exec: &FleetExecArgs,
    cloud_args: &CloudArgs,
    store_dir: &Path,
    format: LogFormat,
    app: &Sluice,
) -> CommandResult {
    let target = fleet_target(cloud_args, &file::rate_limits_of(fleet_path)).await?;
    let registry = app.kinds.registry(target.cloud.clone());
    let cli_vars = plan_file::read_vars(vars)?;
    // Everything is checked before the store is opened: bad input changes nothing.
    let loaded = file::load(fleet_path, &cli_vars, &target.default_vars, &registry, &today())
        .map_err(|problems| CliError::invalid("fleet", &problems))?;
    check_report_path(fleet_exec)?;
    if let Some(first) = loaded.targets.first() {
        cloud::check_credentials(&target, &first.validated.plan).await?;
    }
    let held = open_run_store(&target, store_dir, None)?;
    let before = target.emulator.as_ref().map(crate::world::Before::take);
    let exec = exec_args(fleet_exec);
    let engine = build_engine(
        registry,
        held.held.store.clone(),
        &exec,
        &target,
        app.hooks.clone(),
    );
    let (ttl, from_file) = (loaded.ttl, loaded.file.concurrency);
    let mut fleet = start_fleet(&engine, loaded)?;
    let cleanup = match ttl {
        Some(ttl) => clean_up(&engine, &target, &mut fleet, ttl).await?,
        None => Value::Null,
    };
    let session = Session::new(&engine, &target, fleet_exec, format, from_file);
    let outcome = session.drive(&fleet, &cleanup).await;
    if let (Some(emulator), Some(before)) = (&target.emulator, &before) {
        crate::world::print_changes(emulator, before, false);
    }
    outcome
}

/// Where a fleet calls. On the embedded emulator the fleet calls as the demo organisation's
/// admin, whose project pays for the client-based APIs (a new project has none of them enabled).
async fn fleet_target(
    cloud_args: &CloudArgs,
    rate_limits: &BTreeMap<String, u32>,
) -> Result<Target, CliError> {
    let mut cloud_args = cloud_args.clone();
    if cloud_args.emulator && cloud_args.quota_project.is_none() {
        cloud_args.quota_project = Some(cloud::DEMO_ADMIN_PROJECT.to_string());
    }
    cloud::target_with_limits(&cloud_args, rate_limits).await
}

/// Today (UTC) as `YYYYMMDD`: a fleet's `{date}`.
fn today() -> String {
    sluice_engine::time::compact_stamp(now_ms())[..8].to_string()
}

/// Creates the fleet run, or picks the unfinished one of the same fleet to continue, and
/// returns its record as stored.
fn start_fleet(engine: &Engine, loaded: file::LoadedFleet) -> Result<FleetRecord, CliError> {
    let new_project_targets: Vec<usize> = loaded
        .targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.new_project)
        .map(|(i, _)| i)
        .collect();
    let extra = json!({
        "date": loaded.date,
        "new_project_targets": new_project_targets,
        "ttl_secs": loaded.ttl.map(|t| t.as_secs()),
        "owner_label": format!("{}={}", file::OWNER_LABEL_KEY, loaded.file.name),
        "concurrency": loaded.file.concurrency,
        "rate_limits": loaded.file.rate_limits,
    });
    let specs: Vec<FleetTargetSpec> = loaded
        .targets
        .into_iter()
        .map(|t| FleetTargetSpec {
            name: t.name,
            validated: t.validated,
        })
        .collect();
    // A fleet killed or stopped is continued whatever its day; one that ended with failed
    // targets only on its own day (a target failing for good must not stop the next night).
    let today = loaded.date.clone();
    let may_continue = move |fleet: &FleetRecord| {
        matches!(fleet.state, FleetState::Running | FleetState::Interrupted)
            || fleet.extra["date"] == today.as_str()
    };
    let started = engine
        .start_fleet(
            &loaded.file.name,
            &loaded.key,
            &loaded.source,
            &specs,
            extra,
            &may_continue,
        )
        .map_err(|error| engine_failure(&error))?;
    drop(specs);
    if started.continued {
        errln!(
            "continuing unfinished fleet run {} (same fleet file and variables)",
            started.fleet_id
        );
    } else {
        errln!("new fleet run {}", started.fleet_id);
    }
    engine
        .store()
        .fleet(&started.fleet_id)
        .map_err(|error| store_failure(&error))?
        .ok_or_else(|| {
            CliError::store_unusable(format!(
                "the fleet run {} just written is missing from the store",
                started.fleet_id
            ))
        })
}

/// Deletes this fleet's projects older than `ttl`, and keeps the report with the fleet, so
/// `fleet status` and the report of a resumed fleet tell it.
async fn clean_up(
    engine: &Engine,
    target: &Target,
    fleet: &mut FleetRecord,
    ttl: std::time::Duration,
) -> Result<Value, CliError> {
    let cleanup = crate::fleet::cleanup::run(target, fleet, ttl).await;
    fleet.extra["cleanup"] = cleanup.clone();
    engine
        .store()
        .commit_fleet(fleet, Vec::new())
        .map_err(|error| store_failure(&error))?;
    Ok(cleanup)
}

pub async fn resume(
    fleet_id: &str,
    fleet_exec: &FleetExecArgs,
    cloud_args: &CloudArgs,
    store_dir: &Path,
    format: LogFormat,
    app: &Sluice,
) -> CommandResult {
    if cloud_args.emulator {
        return Err(CliError::bad_input("--emulator fleet runs live in a throw-away store; they cannot be resumed. Run the fleet again with --emulator"));
    }
    let held = open_existing_store(store_dir)?;
    let store = held.store.clone();
    let fleet = store
        .fleet(fleet_id)
        .map_err(|error| store_failure(&error))?
        .ok_or_else(|| {
            CliError::bad_input(format!(
                "no fleet run `{fleet_id}` in the store {}",
                store_dir.display()
            ))
            .with_hint("`sluice fleet status` shows the newest")
        })?;
    if fleet.is_finished() {
        return Ok(Outcome::ended(
            ExitStatus::Success,
            format!("fleet run {fleet_id} already succeeded; nothing to resume (`sluice fleet run` the file again to re-check it)"),
        ));
    }
    let rate_limits: BTreeMap<String, u32> =
        serde_json::from_value(fleet.extra["rate_limits"].clone()).unwrap_or_default();
    let target = cloud::target_with_limits(cloud_args, &rate_limits).await?;
    if let Some(first) = fleet.targets.first() {
        if let Ok(Some(plan)) = store.plan(&first.plan_digest) {
            cloud::check_credentials(&target, &plan).await?;
        }
    }
    check_report_path(fleet_exec)?;
    errln!("resuming fleet run {fleet_id}");
    let registry = app.kinds.registry(target.cloud.clone());
    let exec = exec_args(fleet_exec);
    let engine = build_engine(registry, store, &exec, &target, app.hooks.clone());
    let from_file = fleet.extra["concurrency"].as_u64().map(|c| c as usize);
    let session = Session::new(&engine, &target, fleet_exec, format, from_file);
    session.drive(&fleet, &fleet.extra["cleanup"].clone()).await
}

/// `--report FILE` must be writable before anything runs: finding out at the end of the night
/// would lose the report of a whole fleet.
fn check_report_path(fleet_exec: &FleetExecArgs) -> Result<(), CliError> {
    let Some(path) = &fleet_exec.report else {
        return Ok(());
    };
    let probe = path.with_extension("json.tmp");
    std::fs::write(&probe, b"").map_err(|error| {
        CliError::bad_input(format!(
            "--report {}: cannot write there ({error})",
            path.display()
        ))
        .with_hint("give a file in a writable directory")
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Targets in flight: `--concurrency`, else the fleet file's, else the default.
fn targets_at_once(fleet_exec: &FleetExecArgs, from_file: Option<usize>) -> usize {
    fleet_exec
        .concurrency
        .map(usize::from)
        .or(from_file)
        .unwrap_or(file::DEFAULT_CONCURRENCY)
}

/// Steps in flight within one target's run (the fleet's `--concurrency` counts targets).
const STEPS_PER_TARGET: u16 = 8;

fn exec_args(fleet_exec: &FleetExecArgs) -> ExecArgs {
    ExecArgs {
        concurrency: STEPS_PER_TARGET,
        grace: fleet_exec.grace,
    }
}

/// One session of a fleet run: how it runs its targets and tells how it went.
struct Session<'a> {
    engine: &'a Engine,
    concurrency: usize,
    format: LogFormat,
    fleet_exec: &'a FleetExecArgs,
    cloud: &'a sluice_steps::Cloud,
    /// False for `--emulator` fleets, whose world ends with the process.
    resumable: bool,
}

impl<'a> Session<'a> {
    /// `from_file`: the fleet file's concurrency, used when `--concurrency` is not given.
    fn new(
        engine: &'a Engine,
        target: &'a Target,
        fleet_exec: &'a FleetExecArgs,
        format: LogFormat,
        from_file: Option<usize>,
    ) -> Self {
        Session {
            engine,
            concurrency: targets_at_once(fleet_exec, from_file),
            format,
            fleet_exec,
            cloud: &target.cloud,
            resumable: target.emulator.is_none(),
        }
    }

    /// Runs the fleet's unfinished targets, then prints the summary (and writes the report).
    async fn drive(&self, fleet: &FleetRecord, cleanup: &Value) -> CommandResult {
        let engine = self.engine;
        let already_done =
            finished_targets(engine.store().as_ref(), fleet).map_err(|error| store_failure(&error))?;
        let total = fleet.targets.len();
        errln!(
            "fleet {}: {total} targets ({already_done} already done), {} at a time",
            fleet.name,
            self.concurrency
        );
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let live = self.format == LogFormat::Human && crate::styling::stderr().live;
        let printer = if live {
            tokio::spawn(live::show(events_rx, total, already_done))
        } else {
            tokio::spawn(live::print_plain(events_rx, total, already_done))
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let signals = tokio::spawn(watch_signals(stop_tx));
        let result = engine
            .execute_fleet(&fleet.id, self.concurrency, stop_rx, Some(events_tx))
            .await;
        signals.abort();
        let _ = printer.await;
        let summary = result.map_err(|error| engine_failure(&error))?;
        let fleet = match engine.store().fleet(&fleet.id) {
            Ok(Some(fleet)) => fleet,
            _ => fleet.clone(),
        };
        self.report(&fleet, &summary, cleanup);
        let cleanup_failed = !cleanup["error"].is_null();
        let status = report::exit_status(summary.state, &summary.targets, cleanup_failed);
        let next = match summary.state {
            FleetState::Succeeded => None,
            _ if !self.resumable => Some(
                "the embedded emulator's world ends with this process; run the fleet again with --emulator"
                    .to_string(),
            ),
            FleetState::Interrupted => Some(format!(
                "interrupted; continue with: sluice fleet resume {}",
                fleet.id
            )),
            _ => Some(format!(
                "fix the causes above, then: sluice fleet resume {} (finished targets are not redone)",
                fleet.id
            )),
        };
        Ok(Outcome { status, next })
    }

    /// The summary on stdout, and the JSON report if `--report` asked for it.
    fn report(&self, fleet: &FleetRecord, summary: &FleetSummary, cleanup: &Value) {
        report::print_summary(fleet, summary.state, &summary.targets, cleanup);
        let rates = self
            .cloud
            .built()
            .map(|client| client.rate_stats())
            .unwrap_or_default();
        report::print_rates(&rates);
        if let Some(path) = &self.fleet_exec.report {
            let mut report = report::report_json(fleet, summary.state, &summary.targets, cleanup);
            report["rate_limits"] = report::rates_json(&rates);
            // The fleet's own exit code and hint stand even if the report cannot be written.
            match report::write_report(path, &report) {
                Ok(()) => errln!("report written to {}", path.display()),
                Err(error) => errln!("error: --report: {error}"),
            }
        }
    }
}

pub fn status(store_dir: &Path, fleet_id: Option<&str>, as_json: bool) -> CommandResult {
    // While a fleet runs, its process holds the store and answers through it.
    let store = open_for_reading(store_dir)?;
    status_of(store.as_ref(), store_dir, fleet_id, as_json)
}

fn status_of(store: &dyn Store, store_dir: &Path, fleet_id: Option<&str>, as_json: bool) -> CommandResult {
    let fleet = match fleet_id {
        Some(id) => store.fleet(id),
        None => store
            .fleets()
            .map(|fleets| fleets.into_iter().max_by_key(|f| f.created_at_ms)),
    };
    let fleet = fleet
        .map_err(|error| store_failure(&error))?
        .ok_or_else(|| match fleet_id {
            Some(id) => CliError::bad_input(format!("no fleet run `{id}` in {}", store_dir.display()))
                .with_hint("`sluice fleet status` shows the newest"),
            None => CliError::bad_input(format!("no fleet run in {}", store_dir.display()))
                .with_hint("`sluice fleet run FLEET.json` starts one"),
        })?;
    let outcomes = fleet_outcomes(store, &fleet).map_err(|error| store_failure(&error))?;
    let cleanup = fleet.extra["cleanup"].clone();
    if as_json {
        output::print_json(
            &report::report_json(&fleet, fleet.state, &outcomes, &cleanup),
            false,
        );
        return Ok(Outcome::success());
    }
    print_table(&fleet, &outcomes);
    report::print_summary(&fleet, fleet.state, &outcomes, &cleanup);
    Ok(Outcome::success())
}

fn print_table(fleet: &FleetRecord, outcomes: &[TargetOutcome]) {
    outln!(
        "fleet run {}  fleet {} ({})  state {}  sessions {}",
        fleet.id,
        fleet.name,
        fleet.source,
        fleet.state.as_str(),
        fleet.sessions
    );
    outln!(
        "{:<5} {:<32} {:<12} {:<26} {:>7}  DETAIL",
        "#",
        "TARGET",
        "STATE",
        "RUN",
        "CHANGES"
    );
    for outcome in outcomes {
        let detail = outcome
            .failure
            .as_ref()
            .map(|f| format!("{}: {}", f.step.as_deref().unwrap_or("start"), f.message))
            .unwrap_or_default();
        outln!(
            "{:<5} {:<32} {:<12} {:<26} {:>7}  {}",
            outcome.index + 1,
            outcome.name,
            outcome.state.as_str(),
            outcome.run_id.as_deref().unwrap_or("-"),
            outcome.changes.len(),
            detail
        );
    }
}

/// `fleet plan`: what a `fleet run` of this file would run. Reads the file and the plan only;
/// calls nothing.
pub fn plan(fleet_path: &Path, vars: &VarArgs, as_json: bool, app: &Sluice) -> CommandResult {
    let registry = app.kinds.offline_registry();
    let cli_vars = plan_file::read_vars(vars)?;
    let loaded = file::load(fleet_path, &cli_vars, &BTreeMap::new(), &registry, &today())
        .map_err(|problems| CliError::invalid("fleet", &problems))?;
    let concurrency = loaded.file.concurrency.unwrap_or(file::DEFAULT_CONCURRENCY);
    let targets: Vec<Value> = loaded
        .targets
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "new_project": t.new_project,
                "steps": t.validated.plan.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
                "vars": t.validated.vars,
            })
        })
        .collect();
    let new = loaded.targets.iter().filter(|t| t.new_project).count();
    if as_json {
        output::print_json(
            &json!({
                "fleet": loaded.file.name,
                "plan": loaded.file.plan,
                "date": loaded.date,
                "concurrency": concurrency,
                "rate_limits": loaded.file.rate_limits,
                "ttl_secs": loaded.ttl.map(|t| t.as_secs()),
                "targets": targets,
            }),
            true,
        );
        return Ok(Outcome::success());
    }
    outln!(
        "fleet {}: plan {}, {} targets ({} existing, {new} new), {concurrency} at a time",
        loaded.file.name,
        loaded.file.plan.display(),
        loaded.targets.len(),
        loaded.targets.len() - new,
    );
    if !loaded.file.description.is_empty() {
        outln!("  {}", loaded.file.description);
    }
    if let Some(new_projects) = &loaded.file.new_projects {
        outln!(
            "new projects: under {}, billing {}, labelled {}={}{}",
            new_projects.parent,
            new_projects.billing_account,
            file::OWNER_LABEL_KEY,
            loaded.file.name,
            match loaded.ttl {
                Some(ttl) => format!(
                    "; projects of this fleet older than {}h are deleted first",
                    ttl.as_secs() / 3600
                ),
                None => String::new(),
            }
        );
        outln!(
            "  each new project first runs `{}` (gcp.new_project) and `{}` (gcp.billing), then the plan",
            file::NEW_PROJECT_STEP,
            file::BILLING_STEP
        );
    }
    for (service, rpm) in &loaded.file.rate_limits {
        outln!("rate limit: {service}: {rpm} requests/minute");
    }
    for target in &loaded.targets {
        outln!(
            "  {:<32} {:<9} {} steps",
            target.name,
            if target.new_project { "new" } else { "existing" },
            target.validated.plan.steps.len()
        );
    }
    Ok(Outcome::success())
}
