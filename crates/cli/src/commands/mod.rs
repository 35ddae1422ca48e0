//! One module per group of subcommands; each returns how it ended ([`CommandResult`]), which
//! `main_with` prints and turns into the exit code.

mod approval;
pub(crate) mod cloud;
mod docs;
mod emulator;
mod fleet;
mod inspect;
mod kept_world;
mod plan_file;
mod preview;
mod run;
mod saved_plan;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_engine::{EngineError, SledStore, Store, StoreError};

use crate::args::{Cli, Command, FleetCommand};
use crate::error::{CliError, CommandResult};
use crate::Sluice;

/// Runs the command `cli` names, with `app`'s hooks and kinds.
pub async fn dispatch(cli: Cli, app: &Sluice) -> CommandResult {
    let store_dir = cli.store.clone().unwrap_or_else(crate::store_path::default_store);
    match cli.command {
        Command::Run {
            plan,
            vars,
            auto_approve,
            json,
            exec,
            cloud,
        } => {
            let store_given = cli.store.is_some();
            let show = run::Show::new(cli.log_format, json);
            run::run(
                &plan,
                &vars,
                auto_approve,
                &exec,
                &cloud,
                &store_dir,
                store_given,
                show,
                app,
            )
            .await
        }
        Command::Resume {
            run,
            json,
            exec,
            cloud,
        } => {
            let show = run::Show::new(cli.log_format, json);
            run::resume(&run, &exec, &cloud, &store_dir, show, app).await
        }
        Command::Status { run, json } => inspect::status(&store_dir, run.as_deref(), json),
        Command::Runs { json } => inspect::runs(&store_dir, json),
        Command::Validate { plan, vars, json } => plan_file::validate(&plan, &vars, json, app),
        Command::Plan {
            plan,
            vars,
            json,
            out,
            detailed_exitcode,
            cloud,
        } => {
            let output = preview::PlanOutput {
                json,
                out,
                detailed_exitcode,
            };
            preview::plan(&plan, &vars, &cloud, cli.store.as_deref(), &output, app).await
        }
        Command::Graph { plan, format } => plan_file::graph(&plan, format),
        Command::Compact { keep } => inspect::compact(&store_dir, keep),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { out_dir } => docs::man(out_dir.as_deref()),
        Command::Fleet(command) => match command {
            FleetCommand::Run {
                fleet: file,
                vars,
                exec,
                cloud,
            } => fleet::run(&file, &vars, &exec, &cloud, &store_dir, cli.log_format, app).await,
            FleetCommand::Resume {
                fleet_run,
                exec,
                cloud,
            } => fleet::resume(&fleet_run, &exec, &cloud, &store_dir, cli.log_format, app).await,
            FleetCommand::Status { fleet_run, json } => fleet::status(&store_dir, fleet_run.as_deref(), json),
            FleetCommand::Plan {
                fleet: file,
                vars,
                json,
            } => fleet::plan(&file, &vars, json, app),
        },
        Command::Emulator { port, config, seed } => emulator::run(port, config.as_deref(), seed).await,
    }
}

/// A store this process holds, published to readers for as long as it is held (see
/// [`crate::store_link`]).
pub(crate) struct HeldStore {
    /// Dropped first: the socket goes while the lock is still ours.
    _link: Option<crate::store_link::Server>,
    pub store: Arc<SledStore>,
}

/// Opens (creating if needed) the store to run on, and serves it to readers (`status` and
/// `runs` from other processes); or explains why not (exit 3).
///
/// A store held by another run is refused at once. One held by a process that does not serve
/// it is waited for ([`HOLD_WAIT`]): that is usually a reader (`status` in a watch loop), which
/// holds the lock for a moment.
fn open_store(dir: &Path) -> Result<HeldStore, CliError> {
    let deadline = Instant::now() + HOLD_WAIT;
    let store = loop {
        match SledStore::open(dir) {
            Ok(store) => break Arc::new(store),
            Err(StoreError::Locked { .. })
                if Instant::now() < deadline && crate::store_link::holder_pid(dir).is_none() =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => return Err(store_failure(&error)),
        }
    };
    let link = match crate::store_link::Server::start(dir, store.clone()) {
        Ok(server) => {
            tracing::debug!("serving the store to readers on {}", server.socket().display());
            Some(server)
        }
        Err(error) => {
            errln!(
                "warning: cannot serve the store at {} to readers ({error}); `sluice status` and `sluice runs` from elsewhere are refused until this process ends",
                dir.display()
            );
            None
        }
    };
    Ok(HeldStore { _link: link, store })
}

/// Opens a store that must already exist: commands that continue a run never create one.
fn open_existing_store(dir: &Path) -> Result<HeldStore, CliError> {
    require_store(dir)?;
    open_store(dir)
}

/// How long a command waits for a store held by a process that does not (yet) serve it: a
/// holder publishes its socket just after it takes the lock, and a reader holds the lock only
/// for a moment.
const READ_WAIT: Duration = Duration::from_millis(500);
/// How long `run`, `resume`, `fleet run` and `fleet resume` wait for a store held by a process
/// that does not serve it: a `fleet status` of a large fleet (read directly while nothing runs)
/// holds it for a fraction of a second, and a `watch` loop of them must not fail the nightly run.
const HOLD_WAIT: Duration = Duration::from_secs(10);

/// Opens an existing store for reading (`status`, `runs`, and any command that only reads).
/// When a run holds it, its queries go through that process ([`crate::store_link`]), which
/// is said once on stderr. Refused (exit 3) when the store is held by a process that does not
/// serve it (a compaction, an older sluice).
fn open_for_reading(dir: &Path) -> Result<Box<dyn Store>, CliError> {
    require_store(dir)?;
    let deadline = Instant::now() + READ_WAIT;
    loop {
        match SledStore::open(dir) {
            Ok(store) => return Ok(Box::new(store)),
            Err(locked @ StoreError::Locked { .. }) => match crate::store_link::RemoteStore::connect(dir) {
                Ok(remote) => {
                    errln!(
                        "reading through the running process {} (store held)",
                        remote.pid()
                    );
                    return Ok(Box::new(remote));
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => {
                    let failure = store_failure(&locked);
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) {
                        tracing::debug!("no sluice process serves {}: {error}", dir.display());
                        return Err(failure);
                    }
                    return Err(failure.with_detail(format!("its holder's socket cannot be read: {error}")));
                }
            },
            Err(error) => return Err(store_failure(&error)),
        }
    }
}

/// Refuses (exit 2, creating nothing) a directory that holds no store.
fn require_store(dir: &Path) -> Result<(), CliError> {
    if !SledStore::exists(dir) {
        return Err(
            CliError::bad_input(format!("no sluice store at {}", dir.display())).with_hint(
                "nothing has run there yet. Pass the --store (or SLUICE_STORE) the run used; `sluice run PLAN` creates a store",
            ),
        );
    }
    Ok(())
}

/// A store that cannot be used (exit 3); for one held by a run, which process holds it.
fn store_failure(error: &StoreError) -> CliError {
    let failure = CliError::from(error);
    if let StoreError::Locked { path } = error {
        if let Some(pid) = crate::store_link::holder_pid(Path::new(path)) {
            return failure.with_detail(format!(
                "it is held by sluice process {pid}, which is running on it; `sluice status`, `sluice runs` and `sluice fleet status` can read it meanwhile"
            ));
        }
    }
    failure
}

fn engine_failure(error: &EngineError) -> CliError {
    match error {
        EngineError::Store(store) => store_failure(store),
        other => other.into(),
    }
}
