//! # sluice-cli
//!
//! The `sluice` command: run, resume, inspect and validate durable plans. This crate owns the
//! process: argument parsing, logging set-up, signals, and the exit codes (below); the engine
//! never exits the process or prints.
//!
//! It is a library so that a test harness can run exactly this code with crash hooks installed
//! ([`main_with`]; the `sluice` binary passes none), and so that a platform team can ship the
//! whole command with step kinds of its own next to the built-in ones ([`Sluice`]).
//!
//! Every command returns how it ended (`error.rs`): an `Outcome` (it did its job; a failed run
//! or a partial fleet is one, with its status and the command to type next) or a `CliError`
//! (what went wrong, the hint, the status). [`main_with`] (or [`Sluice::main`]) alone prints
//! them and turns the [`ExitStatus`] into the process's exit code. Library crates say what went wrong; the hints
//! naming `sluice` flags and commands are added here.
//!
//! ## Exit codes
//! | code | meaning |
//! |---|---|
//! | 0 | success (the run succeeded, or the command did its job); `plan` included, whatever it would change |
//! | 1 | the run finished with failed steps (`sluice status RUN` says why; `sluice resume RUN` retries); `plan`: some step could not be observed |
//! | 2 | bad input: flags, plan file, variables, credentials (missing, unusable, or refused by the token endpoint) or endpoint (including an untrusted server certificate), unknown run id, or no store; a `run` with no terminal to ask on and no `--auto-approve`; a saved plan given `--var`/`--vars-file` or another target; nothing was changed |
//! | 3 | the store cannot be used: held by another process (`run`, `resume`, `fleet run`, `fleet resume` and `compact`; `status`, `runs` and `fleet status` read a store a run holds through that run, see `store_link`), unknown format, damaged (its path and what to do are printed), or not a sluice store |
//! | 4 | interrupted by Ctrl-C or SIGTERM; `sluice resume RUN` continues where it stopped |
//! | 5 | a fleet ended partial: some targets failed (the others converged), or its clean-up failed; a fleet whose every target failed exits 1 |
//! | 6 | `run SAVED_PLAN`: some step no longer observes as the saved plan says (each is named, was / now); nothing was changed |
//! | 7 | `run` asked and the answer was not `yes`; nothing was changed (no store opened) |
//!
//! `plan --detailed-exitcode` replaces these, as Terraform's: 0 nothing would change, 2 something
//! would, 1 any error (bad input and usage errors included, so 2 always means "changes").

/// A line on stdout that may hold text from plans, variables, the store or servers: the
/// whole line goes through [`output::clean`], so control characters are printed escaped.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(&mut ::std::io::stdout(), &$crate::output::clean(&format!($($arg)*)))
    };
}

/// A line on stderr through [`output::clean`], as [`outln!`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_line(&mut ::std::io::stderr(), &$crate::output::clean(&format!($($arg)*)))
    };
}

mod args;
mod commands;
mod error;
mod fleet;
mod kinds;
mod output;
mod progress;
mod run_report;
mod store_link;
mod store_path;
mod styling;
mod world;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use sluice_engine::Hooks;

pub use args::Cli;
pub use error::ExitStatus;
use error::{CliError, CommandResult};
use kinds::Kinds;
/// The registry [`Sluice::with_kinds`] adds to.
pub use sluice_engine::Registry;
/// How the `gcp.*` kinds reach Google Cloud, handed to [`Sluice::with_kinds`].
pub use sluice_steps::Cloud;

/// The whole `sluice` command, with step kinds of your own registered next to the built-in ones
/// (`core.*`, `local.*`, `gcp.*`). Every command that reads kinds sees them: `run`, `resume`,
/// `plan`, `validate`, `fleet run`, `fleet resume` and `fleet plan`.
///
/// Your registrations run after the built-in ones, so a kind of the same name replaces the
/// built-in one. They are given the [`Cloud`] the `gcp.*` kinds call (the embedded emulator under
/// `--emulator`, `--endpoint`, or Google), for kinds that call Google Cloud too.
///
/// ```no_run
/// use sluice_cli::Sluice;
/// use sluice_engine::builtin::LocalFile;
///
/// fn main() -> std::process::ExitCode {
///     Sluice::new()
///         .with_kinds(|registry, _cloud| {
///             // Your own `impl StepKind`; a built-in one stands in for it here.
///             registry.register("acme.file", LocalFile);
///         })
///         .main(std::env::args_os())
/// }
/// ```
///
/// `examples/embedder` in the repository is a complete program, with its own kind and a plan.
#[derive(Clone, Default)]
pub struct Sluice {
    hooks: Option<Arc<dyn Hooks>>,
    kinds: Kinds,
}

impl Sluice {
    /// The `sluice` command as shipped: the built-in kinds only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds kinds: `register` is called on every registry a command builds, after the built-in
    /// kinds (and after any earlier `with_kinds`).
    pub fn with_kinds(mut self, register: impl Fn(&mut Registry, &Cloud) + Send + Sync + 'static) -> Self {
        self.kinds.add(register);
        self
    }

    /// Installs engine hooks (crash points, for tests).
    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Runs the command line `args` (program name first) and returns the exit code (see the
    /// table above): `fn main() -> ExitCode { Sluice::new().main(std::env::args_os()) }`.
    pub fn main<I, T>(&self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        run_cli(args, self)
    }
}

/// Runs the CLI on `args` (program name first) with optional test hooks and the built-in kinds:
/// [`Sluice::main`] without kinds of its own.
pub fn main_with<I, T>(args: I, hooks: Option<Arc<dyn Hooks>>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_cli(
        args,
        &Sluice {
            hooks,
            kinds: Kinds::default(),
        },
    )
}

/// The one place that prints a command's error (or its closing line) and turns its status into
/// the exit code.
fn run_cli<I, T>(args: I, app: &Sluice) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // With `--detailed-exitcode`, 2 means "changes": a usage error is 1 there.
            let detailed = args.iter().any(|a| a == "--detailed-exitcode");
            let status = match (error.use_stderr(), detailed) {
                (false, _) => ExitStatus::Success,
                (true, false) => ExitStatus::BadInput,
                (true, true) => ExitStatus::RunFailed,
            };
            return ExitCode::from(status.code());
        }
    };
    output::init_logging(&cli);
    let status = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => {
            let result = runtime.block_on(commands::dispatch(cli, app));
            // Do not wait for blocked step calls that a shutdown abandoned.
            runtime.shutdown_background();
            print_ending(result)
        }
        Err(error) => print_ending(Err(CliError::failed(format!(
            "cannot start the async runtime: {error}"
        )))),
    };
    ExitCode::from(status.code())
}

/// Prints how a command ended on stderr and returns its status.
fn print_ending(result: CommandResult) -> ExitStatus {
    match result {
        Ok(outcome) => {
            if let Some(next) = &outcome.next {
                errln!("{next}");
            }
            outcome.status
        }
        Err(error) => {
            for line in error.lines() {
                errln!("{line}");
            }
            error.status
        }
    }
}
