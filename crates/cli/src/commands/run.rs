//! `run` and `resume`: drive a run to its end, turning signals into a graceful shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_engine::{Engine, EngineConfig, Hooks, Registry, RunState, SledStore, Store};
use tokio::sync::{mpsc, watch};

use super::approval::{self, Approval};
use super::cloud::{self, Target};
use super::kept_world::{KeptWorld, WorldKeeper};
use super::{engine_failure, open_existing_store, open_store, plan_file, saved_plan, HeldStore};
use crate::args::{CloudArgs, ExecArgs, LogFormat, VarArgs};
use crate::error::{CliError, CommandResult, ExitStatus, Outcome};
use crate::output;
use crate::run_report::{text, Continue};
use crate::world;
use crate::Sluice;

/// How `run` and `resume` show what happens: the log format on stderr, and whether stdout
/// gets the end-of-run text or the report as one JSON document.
#[derive(Debug, Clone, Copy)]
pub struct Show {
    pub format: LogFormat,
    pub json: bool,
}

impl Show {
    pub fn new(format: LogFormat, json: bool) -> Self {
        Show { format, json }
    }
}

/// `plan_path` is a plan file or a saved plan (`sluice plan --out`), told apart by content.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    plan_path: &Path,
    vars: &VarArgs,
    auto_approve: bool,
    exec: &ExecArgs,
    cloud_args: &CloudArgs,
    store_dir: &Path,
    store_given: bool,
    show: Show,
    app: &Sluice,
) -> CommandResult {
    let text = plan_file::read_text(plan_path)?;
    let saved = saved_plan::detect(&text, plan_path).transpose()?;
    // Refusals that need no call come first: no approval possible, a saved plan misused.
    let approval = match &saved {
        Some(saved) => {
            saved.refuse_vars(plan_path, vars)?;
            saved.check_target(plan_path, cloud_args)?;
            Approval::Given
        }
        None => approval::needed(auto_approve, cloud_args.emulator)?,
    };
    // With --store (or SLUICE_STORE), an --emulator run keeps its world beside the store and
    // continues the world an earlier one kept there.
    let kept = match cloud_args.emulator && store_given {
        true => Some(KeptWorld::read(store_dir)?),
        false => None,
    };
    let target = cloud::target(cloud_args, kept.as_ref().and_then(KeptWorld::start_world)).await?;
    let registry = app.kinds.registry(target.cloud.clone());
    // Validation comes first: a bad plan or variable never opens (or creates) the store.
    let (validated, source) = match &saved {
        Some(saved) => (saved.validated(plan_path, &registry)?, saved.plan.source.clone()),
        None => {
            let source = plan_path.display().to_string();
            let validated = plan_file::load_text(&text, &source, vars, &registry, &target.default_vars)?;
            (validated, source)
        }
    };
    cloud::check_credentials(&target, &validated.plan).await?;
    // Approval comes before the store is opened: a `no` leaves no trace.
    if let Some(declined) =
        approval::obtain(approval, saved.as_ref(), plan_path, &registry, &validated).await?
    {
        return Ok(declined);
    }
    let held = open_run_store(&target, store_dir, kept.as_ref())?;
    // What the emulated world held before: the run's own changes are what is shown after.
    let before = target.emulator.as_ref().map(world::Before::take);
    let keeper = match (kept, &target.emulator) {
        (Some(kept), Some(emulator)) => {
            kept.check_unchanged()?;
            Some(WorldKeeper::new(kept, emulator))
        }
        _ => None,
    };
    let hooks = keeper
        .as_ref()
        .map_or(app.hooks.clone(), |keeper| Some(keeper.hooks(app.hooks.clone())));
    let engine = build_engine(registry, held.held.store.clone(), exec, &target, hooks);
    let started = engine
        .start(&validated, &source)
        .map_err(|error| engine_failure(&error))?;
    if started.continued {
        // The run continued must be against the same kind of cloud (nothing is written yet).
        let was_emulator = match &keeper {
            Some(keeper) => keeper.is_emulator_run(&started.run_id),
            None if target.emulator.is_none() => KeptWorld::read(store_dir)?.is_emulator_run(&started.run_id),
            None => false,
        };
        if was_emulator != target.emulator.is_some() {
            return Err(other_cloud(&started.run_id, was_emulator));
        }
    } else if let Some(keeper) = &keeper {
        keeper.mark(&started.run_id)?;
    }
    if started.continued {
        errln!(
            "continuing unfinished run {} (same plan and variables)",
            started.run_id
        );
    } else {
        errln!("new run {}", started.run_id);
    }
    let how = continue_how(&target, &keeper);
    let outcome = drive(engine, &held.held.store, &started.run_id, show, how).await;
    finish_emulated(&target, keeper.as_ref(), before.as_ref(), show, outcome)
}

/// How a run on `target` is continued: a run whose emulated world ends with the process is run
/// again instead.
fn continue_how(target: &Target, keeper: &Option<WorldKeeper>) -> Continue {
    match (&target.emulator, keeper) {
        (None, _) => Continue::Resume,
        (Some(_), Some(_)) => Continue::ResumeOnTheEmulator,
        (Some(_), None) => Continue::RunAgainOnTheEmulator,
    }
}

/// After an `--emulator` run or resume, however it ended: the world kept (when it is), and what
/// the run changed in it printed. A world that could not be kept ends the command (exit 3).
fn finish_emulated(
    target: &Target,
    keeper: Option<&WorldKeeper>,
    before: Option<&world::Before>,
    show: Show,
    outcome: CommandResult,
) -> CommandResult {
    let kept = keeper.map(WorldKeeper::keep).transpose();
    if let (Some(emulator), Some(before)) = (&target.emulator, before) {
        world::print_changes(emulator, before, show.json);
    }
    match (outcome, kept) {
        (Ok(_), Err(error)) => Err(error),
        (outcome, _) => outcome,
    }
}

/// Refuses (exit 2) to continue `run_id` against another kind of cloud than it ran against.
fn other_cloud(run_id: &str, was_emulator: bool) -> CliError {
    if was_emulator {
        CliError::bad_input(format!(
            "run {run_id} was against the embedded emulator; it cannot be continued against Google Cloud or an --endpoint"
        ))
        .with_hint(format!(
            "add --emulator (`sluice resume --emulator {run_id}`), or give this cloud another --store"
        ))
    } else {
        CliError::bad_input(format!(
            "run {run_id} was against Google Cloud or an --endpoint, not the embedded emulator; it cannot be continued with --emulator"
        ))
        .with_hint("continue it without --emulator, or give --emulator runs another --store")
    }
}

/// The store a run or fleet on `target` holds, and the scratch directory it lives in for an
/// `--emulator` run that keeps nothing (dropped after the store).
pub(crate) struct RunStore {
    pub held: HeldStore,
    _scratch: Option<tempfile::TempDir>,
}

/// Opens the store to run on: `store_dir`; or, for an `--emulator` run without a world `kept`
/// beside `store_dir`, a throw-away one, whose world ends with the process. Says on stderr
/// which, for `--emulator`.
pub(crate) fn open_run_store(
    target: &Target,
    store_dir: &Path,
    kept: Option<&KeptWorld>,
) -> Result<RunStore, CliError> {
    let scratch = match (&target.emulator, kept) {
        (None, _) => None,
        (Some(_), Some(kept)) => {
            errln!("store {}: {}", store_dir.display(), kept.describe());
            None
        }
        (Some(_), None) => Some(
            tempfile::Builder::new()
                .prefix("sluice-emulator-run-")
                .tempdir()
                .map_err(|error| {
                    CliError::store_unusable(format!(
                        "cannot create a scratch store for the --emulator run: {error}"
                    ))
                })?,
        ),
    };
    if let Some(scratch) = &scratch {
        errln!(
            "scratch store {}: discarded at the end with the emulated world; `--store DIR` keeps both, for `sluice status` and `sluice resume --emulator`",
            scratch.path().display()
        );
    }
    let held = open_store(scratch.as_ref().map_or(store_dir, |dir| dir.path()))?;
    Ok(RunStore {
        held,
        _scratch: scratch,
    })
}

pub async fn resume(
    run_id: &str,
    exec: &ExecArgs,
    cloud_args: &CloudArgs,
    store_dir: &Path,
    show: Show,
    app: &Sluice,
) -> CommandResult {
    // `resume` continues what is there: a missing store is a mistake, never created.
    let held = open_existing_store(store_dir)?;
    let store = held.store.clone();
    let run = match store.run(run_id) {
        Ok(Some(run)) => run,
        Ok(None) => {
            return Err(CliError::bad_input(format!(
                "no run `{run_id}` in the store {}",
                store_dir.display()
            ))
            .with_hint("`sluice runs` lists the runs"));
        }
        Err(error) => return Err(super::store_failure(&error)),
    };
    // Against the cloud it ran against, or not at all (before anything is called).
    let kept = KeptWorld::read(store_dir)?;
    let was_emulator = kept.is_emulator_run(run_id);
    if was_emulator != cloud_args.emulator {
        return Err(other_cloud(run_id, was_emulator));
    }
    if run.is_finished() {
        if show.json {
            let how = match was_emulator {
                true => Continue::ResumeOnTheEmulator,
                false => Continue::Resume,
            };
            let report = super::inspect::report_of(store.as_ref(), store_dir, &run, how)?;
            output::print_json(&report, false);
        }
        return Ok(Outcome::ended(
            ExitStatus::Success,
            format!("run {run_id} already succeeded; nothing to resume (`sluice run` the plan again to re-check it)"),
        ));
    }
    let target = cloud::target(cloud_args, kept.start_world()).await?;
    // As `run`: credentials that cannot be used end the command before anything runs.
    if let Ok(Some(plan)) = store.plan(&run.plan_digest) {
        cloud::check_credentials(&target, &plan).await?;
    }
    let keeper = target.emulator.as_ref().map(|emulator| {
        errln!("store {}: {}", store_dir.display(), kept.describe());
        WorldKeeper::new(kept, emulator)
    });
    let hooks = keeper
        .as_ref()
        .map_or(app.hooks.clone(), |keeper| Some(keeper.hooks(app.hooks.clone())));
    let before = target.emulator.as_ref().map(world::Before::take);
    errln!("resuming run {run_id}");
    let engine = build_engine(
        app.kinds.registry(target.cloud.clone()),
        store.clone(),
        exec,
        &target,
        hooks,
    );
    let how = continue_how(&target, &keeper);
    let outcome = drive(engine, &store, run_id, show, how).await;
    finish_emulated(&target, keeper.as_ref(), before.as_ref(), show, outcome)
}

pub(crate) fn build_engine(
    registry: Registry,
    store: Arc<dyn Store>,
    exec: &ExecArgs,
    target: &Target,
    hooks: Option<Arc<dyn Hooks>>,
) -> Engine {
    let config = EngineConfig {
        concurrency: usize::from(exec.concurrency),
        grace_period: Duration::from_secs(exec.grace),
        retry: cloud::retry_policy(target.time_scale),
        ..EngineConfig::default()
    };
    let engine = Engine::new(registry, store).with_config(config);
    match hooks {
        Some(hooks) => engine.with_hooks(hooks),
        None => engine,
    }
}

/// Executes the run, then shows its report (from the store) and says how it ended. `how`:
/// an `--emulator` run, whose world ends with the process, is not resumed but run again.
async fn drive(
    engine: Engine,
    store: &Arc<SledStore>,
    run_id: &str,
    show: Show,
    how: Continue,
) -> CommandResult {
    let resume = how.resume_command();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let engine = engine.with_events(events_tx);
    // On a terminal, live lines per active step; otherwise (CI, logs, NO_COLOR) plain lines.
    let printer = crate::progress::spawn(events_rx, show.format, &engine, run_id);
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(watch_signals(stop_tx));
    let result = engine.execute(run_id, stop_rx).await;
    signals.abort();
    drop(engine);
    let _ = printer.await;
    // The report is read back from the store; the summary's own step records go first.
    let state = result.map_err(|error| engine_failure(&error))?.state;
    let run = store
        .run(run_id)
        .map_err(|error| super::store_failure(&error))?
        .ok_or_else(|| CliError::store_unusable(format!("run {run_id} is gone from the store")))?;
    let report = super::inspect::report_of(store.as_ref(), store.path(), &run, how)?;
    if show.json {
        output::print_json(&report, false);
    } else {
        for line in text::end_of_run(&report, how) {
            outln!("{line}");
        }
    }
    Ok(match (state, resume) {
        (RunState::Succeeded, _) => Outcome::success(),
        (RunState::Interrupted, Some(resume)) => Outcome::ended(
            ExitStatus::Interrupted,
            format!("interrupted; continue with: {resume} {run_id}"),
        ),
        (RunState::Interrupted, None) => Outcome::ended(
            ExitStatus::Interrupted,
            "interrupted; the embedded emulator's world ends with this process",
        ),
        (RunState::Failed | RunState::Running, Some(resume)) => Outcome::ended(
            ExitStatus::RunFailed,
            format!("run {run_id} failed; `sluice status {run_id}` shows why; fix the cause, then: {resume} {run_id}"),
        ),
        (RunState::Failed | RunState::Running, None) => Outcome::ended(
            ExitStatus::RunFailed,
            format!("run {run_id} failed (see above); run the plan again with --emulator"),
        ),
    })
}

/// First Ctrl-C / SIGTERM: graceful stop. Second: exit at once (the store stays resumable).
pub(crate) async fn watch_signals(stop: watch::Sender<bool>) {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return,
    };
    for round in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if round == 0 {
            errln!(
                "stopping: no new steps start; running steps get the grace period (signal again to exit now)"
            );
            let _ = stop.send(true);
        } else {
            errln!("exiting now; the run is resumable");
            // The one exit outside `main_with`: the second signal ends the process at once,
            // mid-run, without unwinding the tasks still running steps.
            std::process::exit(i32::from(ExitStatus::Interrupted.code()));
        }
    }
}
