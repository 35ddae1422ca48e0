//! One module per group of subcommands; each returns the process exit code.

pub(crate) mod cloud;
mod emulator;
mod fleet;
mod inspect;
mod plan_file;
mod preview;
mod run;

use std::sync::Arc;

use sluice_engine::{EngineError, Hooks, SledStore, StoreError};

use crate::args::{Cli, Command, FleetCommand};
use crate::exit;

pub async fn dispatch(cli: Cli, hooks: Option<Arc<dyn Hooks>>) -> u8 {
    let store_dir = cli.store.clone().unwrap_or_else(crate::store_path::default_store);
    match cli.command {
        Command::Run {
            plan,
            vars,
            exec,
            cloud,
        } => run::run(&plan, &vars, &exec, &cloud, &store_dir, cli.log_format, hooks).await,
        Command::Resume { run, exec, cloud } => {
            run::resume(&run, &exec, &cloud, &store_dir, cli.log_format, hooks).await
        }
        Command::Status { run, json } => inspect::status(&store_dir, run.as_deref(), json),
        Command::Runs { json } => inspect::runs(&store_dir, json),
        Command::Validate { plan, vars } => plan_file::validate(&plan, &vars),
        Command::Plan {
            plan,
            vars,
            json,
            cloud,
        } => preview::plan(&plan, &vars, &cloud, json).await,
        Command::Graph { plan, format } => plan_file::graph(&plan, format),
        Command::Compact { keep } => inspect::compact(&store_dir, keep),
        Command::Fleet(command) => match command {
            FleetCommand::Run {
                fleet: file,
                vars,
                exec,
                cloud,
            } => fleet::run(&file, &vars, &exec, &cloud, &store_dir, cli.log_format, hooks).await,
            FleetCommand::Resume {
                fleet_run,
                exec,
                cloud,
            } => fleet::resume(&fleet_run, &exec, &cloud, &store_dir, cli.log_format, hooks).await,
            FleetCommand::Status { fleet_run, json } => fleet::status(&store_dir, fleet_run.as_deref(), json),
            FleetCommand::Plan {
                fleet: file,
                vars,
                json,
            } => fleet::plan(&file, &vars, json),
        },
        Command::Emulator { port, config, seed } => emulator::run(port, config.as_deref(), seed).await,
    }
}

/// Opens (creating if needed) the store, or explains why not (exit 3).
fn open_store(dir: &std::path::Path) -> Result<SledStore, u8> {
    SledStore::open(dir).map_err(|error| store_failure(&error))
}

/// Opens a store that must already exist: commands that read or continue never create one.
fn open_existing_store(dir: &std::path::Path) -> Result<SledStore, u8> {
    require_store(dir)?;
    open_store(dir)
}

/// Refuses (exit 2, creating nothing) a directory that holds no store.
fn require_store(dir: &std::path::Path) -> Result<(), u8> {
    if !SledStore::exists(dir) {
        errln!(
            "error: no sluice store at {}; nothing has run there yet. Pass the --store (or SLUICE_STORE) the run used; `sluice run PLAN` creates a store",
            dir.display()
        );
        return Err(exit::BAD_INPUT);
    }
    Ok(())
}

fn store_failure(error: &StoreError) -> u8 {
    print_error(error);
    exit::STORE_UNUSABLE
}

/// `error: …`, line by line: each line escaped, the engine's own line breaks kept.
fn print_error(error: &dyn std::fmt::Display) {
    for (i, line) in error.to_string().lines().enumerate() {
        if i == 0 {
            errln!("error: {line}");
        } else {
            errln!("{line}");
        }
    }
}

fn engine_failure(error: &EngineError) -> u8 {
    match error {
        EngineError::Store(store) => store_failure(store),
        EngineError::UnknownRun(_) | EngineError::UnknownFleet(_) | EngineError::StoredPlanInvalid { .. } => {
            print_error(error);
            exit::BAD_INPUT
        }
    }
}
