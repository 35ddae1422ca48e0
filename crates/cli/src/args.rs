//! Command-line flags (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Durable, resumable plans of idempotent steps.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Cli {
    /// Store directory [default: $XDG_STATE_HOME/sluice or ~/.local/state/sluice].
    #[arg(long, global = true, env = "SLUICE_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    /// More detail in logs (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Colors and live redrawn progress on stderr: `auto` when stderr is a terminal and
    /// NO_COLOR is unset or empty, `always`, or `never` (plain lines, no escape sequence at all).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line.
    Json,
}

/// When stderr gets colors and live progress (see `output::Styling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Only on a terminal, and only when NO_COLOR is unset or empty (no-color.org).
    Auto,
    /// Colors even when NO_COLOR is set or stderr is not a terminal.
    Always,
    /// No escape sequence at all: plain progress lines, logs without colors.
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a plan, or continue its unfinished run with the same variables. On a terminal it
    /// first shows what would change (as `sluice plan`) and asks; elsewhere it needs
    /// --auto-approve. A saved plan (`sluice plan --out FILE`) is applied without asking, only
    /// while every step still observes as it was saved.
    Run {
        /// Plan file (JSON), or a saved plan written by `sluice plan --out FILE`.
        plan: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Apply without showing the plan and asking first (scheduled jobs and scripts); needed
        /// when standard input or standard error is not a terminal. `--emulator` never asks.
        #[arg(long)]
        auto_approve: bool,
        /// Print the run's report as one JSON document on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        exec: ExecArgs,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Continue an unfinished run by id. Asks nothing: it continues what `run` was approved
    /// (or auto-approved) to do.
    Resume {
        /// Id of the run to continue (`sluice runs` lists them); its plan is stored with it.
        run: String,
        /// Print the run's report as one JSON document on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        exec: ExecArgs,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Show a run's steps: state, what changed, attempts, durations [default: the newest run].
    Status {
        /// Id of the run to show (`sluice runs` lists them) [default: the newest run].
        run: Option<String>,
        /// Print the run's report as one JSON document instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the runs in the store.
    Runs {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a plan and its variables; reports every problem.
    Validate {
        /// Plan file (JSON).
        plan: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Print one JSON document on stdout: `valid`, then the counts or the problems (fields in
        /// the README, "Machine-readable output"); the exit code is the same.
        #[arg(long)]
        json: bool,
    },
    /// Show what a run would change: observes every step (read only) and mutates nothing.
    Plan {
        /// Plan file (JSON).
        plan: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Print one JSON document instead of lines (fields in the README, "Machine-readable
        /// output").
        #[arg(long)]
        json: bool,
        /// Also save what is shown to FILE (JSON: the plan's contents, the variables, the target
        /// without credentials, each step's preview); `sluice run FILE` applies it only while
        /// every step still observes the same. Holds the variables in clear.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 0 when nothing would change, 2 when something would, 1 on any error (as
        /// Terraform's `plan -detailed-exitcode`).
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Print a plan's step graph.
    Graph {
        /// Plan file (JSON); its variables are not needed.
        plan: PathBuf,
        /// Graph language: Graphviz `dot` or a `mermaid` flowchart.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Run the local Google Cloud emulator on 127.0.0.1 until Ctrl-C or SIGTERM.
    Emulator {
        /// Port to listen on (0 picks a free one; the URL is printed).
        #[arg(long, default_value_t = 8085)]
        port: u16,
        /// Emulator configuration (JSON): world, delays, time scale.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Seed for the emulator's choices (overrides the config's).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Fleets: one plan against many projects (existing ones and new test projects) in one
    /// process and one store.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Remove finished runs beyond the newest KEEP and give the space back.
    Compact {
        /// How many of the newest succeeded runs to keep; unfinished runs are always kept.
        #[arg(long, default_value_t = 100)]
        keep: usize,
    },
    /// Print the shell completion script for SHELL on stdout.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page sluice(1) on stdout as roff, or write one page per command.
    Man {
        /// Write sluice.1 and a page per subcommand (sluice-run.1, sluice-fleet-run.1, …) into
        /// DIR, created if missing, instead of printing sluice(1).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Run a fleet file: its targets' runs, at most --concurrency at once, after deleting the
    /// fleet's expired projects (when it sets a `ttl`); continues the unfinished fleet run of the
    /// same file and variables.
    Run {
        /// Fleet file (JSON).
        fleet: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        #[command(flatten)]
        exec: FleetExecArgs,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Continue an unfinished fleet run by id: targets that succeeded are not run again.
    Resume {
        /// Id of the fleet run to continue (`sluice fleet status` shows the newest).
        fleet_run: String,
        #[command(flatten)]
        exec: FleetExecArgs,
        #[command(flatten)]
        cloud: CloudArgs,
    },
    /// Show a fleet run's targets [default: the newest fleet run].
    Status {
        /// Id of the fleet run to show [default: the newest fleet run].
        fleet_run: Option<String>,
        /// Print the JSON report instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check a fleet file and list the targets a run would have; calls nothing.
    Plan {
        /// Fleet file (JSON).
        fleet: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct FleetExecArgs {
    /// Targets in flight at once [default: the fleet file's `concurrency`, else 16].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: Option<u16>,
    /// Seconds running steps get to finish after Ctrl-C / SIGTERM.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
    /// Write a JSON report (per target: project, run id, state, what was created, error).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart (Markdown renderers draw it).
    Mermaid,
}

#[derive(Debug, Args)]
pub struct VarArgs {
    /// A variable, NAME=VALUE (lists: comma-separated or a JSON array). Repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A JSON object of variables; --var wins over it.
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Steps running at once (1 to 1024).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Seconds running steps get to finish after Ctrl-C / SIGTERM.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
}

/// Where `gcp.*` steps send their calls.
#[derive(Clone, Args)]
pub struct CloudArgs {
    /// Run against an embedded Google Cloud emulator (a demo organisation 123456789012 with the
    /// fresh project `sluice-demo`, time 100x faster, 1 % faults). With --store (or SLUICE_STORE)
    /// its world is kept beside the store, for `status`, `plan` and `resume --emulator`;
    /// otherwise the run gets a throw-away store. Fills in
    /// `project`, `organization`, `policy_parent`, `pickle_gcs_uri` and `model_armor_project`
    /// when the plan declares them and they are not given.
    /// The embedded emulator takes no access token: `SLUICE_ACCESS_TOKEN` (or `--access-token`)
    /// is ignored, so a token exported for other runs does not get in the way.
    #[arg(long, conflicts_with_all = ["endpoint", "credentials", "impersonate_service_account"])]
    pub emulator: bool,
    /// One base URL for every Google API, e.g. a `sluice emulator` (plain http only on loopback).
    #[arg(long, value_name = "URL", env = "SLUICE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Google credentials file of any type: service_account, authorized_user, external_account
    /// (Workload Identity Federation) or impersonated_service_account [default: application
    /// default credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, the metadata server].
    #[arg(long, value_name = "FILE.json", conflicts_with = "access_token")]
    pub credentials: Option<PathBuf>,
    /// Act as this service account: tokens come from IAM Credentials generateAccessToken
    /// (needs roles/iam.serviceAccountTokenCreator on it).
    #[arg(long, value_name = "SA_EMAIL")]
    pub impersonate_service_account: Option<String>,
    /// An access token to send as is (e.g. for `--endpoint` pointing at `sluice emulator`).
    /// Prefer the environment variable: a flag's value shows in `ps`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SLUICE_ACCESS_TOKEN",
        hide_env_values = true
    )]
    pub access_token: Option<String>,
    /// Project billed and charged quota for the calls (x-goog-user-project) [default:
    /// GOOGLE_CLOUD_QUOTA_PROJECT, else the credentials file's quota_project_id].
    #[arg(long, value_name = "PROJECT")]
    pub quota_project: Option<String>,
    /// Real seconds per second of the server's clock: the `time_scale` of a `sluice emulator`
    /// behind --endpoint. Scales every wait (retries, polls); leave at 1 for Google.
    #[arg(long, value_name = "SCALE", default_value_t = 1.0, requires = "endpoint")]
    pub time_scale: f64,
}

impl std::fmt::Debug for CloudArgs {
    /// Never prints the access token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudArgs")
            .field("emulator", &self.emulator)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("impersonate_service_account", &self.impersonate_service_account)
            .field("access_token", &self.access_token.as_ref().map(|_| "<redacted>"))
            .field("quota_project", &self.quota_project)
            .field("time_scale", &self.time_scale)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command as ClapCommand, CommandFactory};

    use super::Cli;

    /// Every argument (positional or option) of `command` and its subcommands whose help is
    /// empty, and every subcommand without a description, as `sluice fleet run FLEET`.
    /// Clap's own `--help`, `--version` and `help` subcommand are left out.
    fn undocumented(command: &ClapCommand, path: &str, found: &mut Vec<String>) {
        let text =
            |help: Option<&clap::builder::StyledStr>| help.map(ToString::to_string).unwrap_or_default();
        for arg in command.get_arguments() {
            let clap_own = matches!(arg.get_id().as_str(), "help" | "version");
            if !clap_own
                && text(arg.get_help()).trim().is_empty()
                && text(arg.get_long_help()).trim().is_empty()
            {
                found.push(format!("{path} {}", shown(arg)));
            }
        }
        for sub in command.get_subcommands().filter(|sub| sub.get_name() != "help") {
            let sub_path = format!("{path} {}", sub.get_name());
            if text(sub.get_about()).trim().is_empty() {
                found.push(format!("{sub_path} (the command itself)"));
            }
            undocumented(sub, &sub_path, found);
        }
    }

    fn shown(arg: &Arg) -> String {
        match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => arg.get_id().as_str().to_uppercase(),
        }
    }

    fn undocumented_in(mut command: ClapCommand) -> Vec<String> {
        command.build();
        let mut found = Vec::new();
        let name = command.get_name().to_string();
        undocumented(&command, &name, &mut found);
        found
    }

    #[test]
    fn every_argument_and_command_has_help() {
        let found = undocumented_in(Cli::command());
        assert!(found.is_empty(), "arguments without help text: {found:#?}");
    }

    #[test]
    fn an_argument_without_help_is_named() {
        let command = ClapCommand::new("tool")
            .arg(Arg::new("verbose").long("verbose").help("More output."))
            .subcommand(
                ClapCommand::new("go")
                    .about("Go.")
                    .arg(Arg::new("target"))
                    .arg(Arg::new("speed").long("speed")),
            )
            .subcommand(ClapCommand::new("stop").arg(Arg::new("now").long("now").help("At once.")));
        assert_eq!(
            undocumented_in(command),
            [
                "tool go TARGET",
                "tool go --speed",
                "tool stop (the command itself)"
            ]
        );
    }

    #[test]
    fn the_flags_pass_clap_s_own_checks() {
        Cli::command().debug_assert();
    }
}
