//! `run` and `resume`: drive a run to its end, turning signals into a graceful shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sluice_engine::{Engine, EngineConfig, Hooks, Registry, RunState, Store};
use tokio::sync::{mpsc, watch};

use super::approval::{self, Approval};
use super::cloud::{self, Target};
use super::{engine_failure, open_existing_store, open_store, plan_file, saved_plan, HeldStore};
use crate::args::{CloudArgs, ExecArgs, LogFormat, VarArgs};
use crate::error::{CliError, CommandResult, ExitStatus, Outcome};
use crate::output;

/// `plan_path` is a plan file or a saved plan (`sluice plan --out`), told apart by content.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    plan_path: &Path,
    vars: &VarArgs,
    auto_approve: bool,
    exec: &ExecArgs,
    cloud_args: &CloudArgs,
    store_dir: &Path,
    format: LogFormat,
    hooks: Option<Arc<dyn Hooks>>,
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
    let target = cloud::target(cloud_args).await?;
    let registry = cloud::registry(target.cloud.clone());
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
    let held = open_run_store(&target, store_dir)?;
    let engine = build_engine(registry, held.held.store.clone(), exec, &target, hooks);
    let started = engine
        .start(&validated, &source)
        .map_err(|error| engine_failure(&error))?;
    if started.continued {
        errln!(
            "continuing unfinished run {} (same plan and variables)",
            started.run_id
        );
    } else {
        errln!("new run {}", started.run_id);
    }
    let outcome = drive(engine, &started.run_id, format, target.emulator.is_none()).await;
    if let Some(emulator) = &target.emulator {
        output::print_emulated_world(emulator);
    }
    outcome
}

/// The store a run or fleet on `target` holds, and the scratch directory it lives in for an
/// `--emulator` run (dropped after the store).
pub(crate) struct RunStore {
    pub held: HeldStore,
    _scratch: Option<tempfile::TempDir>,
}

/// Opens the store to run on: `store_dir`, or for `--emulator` a throw-away one. The embedded
/// emulator's world lives only in this process, so its runs get a store of their own and can
/// never be continued against Google Cloud (or vice versa).
pub(crate) fn open_run_store(target: &Target, store_dir: &Path) -> Result<RunStore, CliError> {
    let scratch = match &target.emulator {
        None => None,
        Some(_) => Some(
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
    format: LogFormat,
    hooks: Option<Arc<dyn Hooks>>,
) -> CommandResult {
    if cloud_args.emulator {
        return Err(CliError::bad_input(
            "--emulator runs live in a throw-away store with the emulator inside the process; \
             they cannot be resumed. Run the plan again with --emulator",
        ));
    }
    // `resume` continues what is there: a missing store is a mistake, never created.
    let held = open_existing_store(store_dir)?;
    let store = held.store.clone();
    let target = cloud::target(cloud_args).await?;
    match store.run(run_id) {
        Ok(Some(run)) if run.is_finished() => {
            return Ok(Outcome::ended(
                ExitStatus::Success,
                format!("run {run_id} already succeeded; nothing to resume (`sluice run` the plan again to re-check it)"),
            ));
        }
        Ok(Some(run)) => {
            // As `run`: credentials that cannot be used end the command before anything runs.
            if let Ok(Some(plan)) = store.plan(&run.plan_digest) {
                cloud::check_credentials(&target, &plan).await?;
            }
        }
        Ok(None) => {
            return Err(CliError::bad_input(format!(
                "no run `{run_id}` in the store {}",
                store_dir.display()
            ))
            .with_hint("`sluice runs` lists the runs"));
        }
        Err(error) => return Err(super::store_failure(&error)),
    }
    errln!("resuming run {run_id}");
    let engine = build_engine(cloud::registry(target.cloud.clone()), store, exec, &target, hooks);
    drive(engine, run_id, format, true).await
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

/// `resumable`: false for `--emulator` runs, whose world ends with the process.
async fn drive(engine: Engine, run_id: &str, format: LogFormat, resumable: bool) -> CommandResult {
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let engine = engine.with_events(events_tx);
    // On a terminal, live lines per active step; otherwise (CI, logs) plain lines.
    let live = format == LogFormat::Human && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let printer = if live {
        tokio::spawn(crate::progress::show(events_rx))
    } else {
        tokio::spawn(output::print_events(events_rx, format))
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(watch_signals(stop_tx));
    let result = engine.execute(run_id, stop_rx).await;
    signals.abort();
    drop(engine);
    let _ = printer.await;
    let summary = result.map_err(|error| engine_failure(&error))?;
    output::print_summary(&summary);
    Ok(match summary.state {
        RunState::Succeeded => Outcome::success(),
        RunState::Interrupted if resumable => Outcome::ended(
            ExitStatus::Interrupted,
            format!("interrupted; continue with: sluice resume {run_id}"),
        ),
        RunState::Interrupted => Outcome::ended(
            ExitStatus::Interrupted,
            "interrupted; the embedded emulator's world ends with this process",
        ),
        RunState::Failed | RunState::Running if resumable => Outcome::ended(
            ExitStatus::RunFailed,
            format!("run {run_id} failed; fix the cause, then: sluice resume {run_id}"),
        ),
        RunState::Failed | RunState::Running => Outcome::ended(
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
