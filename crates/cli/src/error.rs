//! What a command ends with: an [`Outcome`] (it did its job, perhaps with a non-zero status
//! such as a failed run or a partial fleet, already reported) or a [`CliError`] (it could not
//! do its job). Both carry their [`ExitStatus`]; [`crate::main_with`] prints them and turns the
//! status into the process's exit code, in one place.

use sluice_engine::{EngineError, Problem, StoreError, VarFix, VarForm};

/// The process exit codes; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The run succeeded, or the command did its job.
    Success,
    /// The run finished with failed steps (or every target of a fleet failed); with
    /// `plan --detailed-exitcode`, any error.
    RunFailed,
    /// Flags, plan or fleet file, variables, credentials, endpoint, unknown id, no store; or a
    /// non-interactive `run` without `--auto-approve`.
    BadInput,
    /// The store is held by another process, of another format, damaged or not a store.
    StoreUnusable,
    /// Stopped by Ctrl-C or SIGTERM; resumable.
    Interrupted,
    /// A fleet ended with some targets failed (the others converged), or its clean-up failed.
    Partial,
    /// A saved plan no longer matches what its steps observe now; nothing was changed.
    SavedPlanStale,
    /// The question `run` asks was not answered `yes`; nothing was changed.
    Declined,
    /// `plan --detailed-exitcode`: the plan would change something (code 2, as Terraform's).
    ChangesPresent,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::RunFailed => 1,
            ExitStatus::BadInput | ExitStatus::ChangesPresent => 2,
            ExitStatus::StoreUnusable => 3,
            ExitStatus::Interrupted => 4,
            ExitStatus::Partial => 5,
            ExitStatus::SavedPlanStale => 6,
            ExitStatus::Declined => 7,
        }
    }
}

/// A command that did its job: the status it ends with, and what to do next (said last, on
/// stderr), e.g. `sluice resume RUN` after a failed run.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub next: Option<String>,
}

impl Outcome {
    pub fn success() -> Self {
        Outcome {
            status: ExitStatus::Success,
            next: None,
        }
    }

    pub fn ended(status: ExitStatus, next: impl Into<String>) -> Self {
        Outcome {
            status,
            next: Some(next.into()),
        }
    }
}

/// A command that could not do its job. Printed as `error: MESSAGE; HINT`, then each detail
/// line as it is.
#[derive(Debug)]
pub struct CliError {
    pub status: ExitStatus,
    /// What went wrong.
    pub message: String,
    /// What to type or do next.
    pub hint: Option<String>,
    /// Lines printed after the error (a list of problems, who holds the store).
    pub details: Vec<String>,
}

pub type CommandResult = Result<Outcome, CliError>;

impl CliError {
    fn new(status: ExitStatus, message: impl Into<String>) -> Self {
        CliError {
            status,
            message: message.into(),
            hint: None,
            details: Vec::new(),
        }
    }

    /// Exit 1: something that may work when tried again later.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::RunFailed, message)
    }

    /// Exit 2: the input is wrong; nothing was changed.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::BadInput, message)
    }

    /// Exit 6: a saved plan no longer matches the world; nothing was changed.
    pub fn saved_plan_stale(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::SavedPlanStale, message)
    }

    /// Exit 3: the store cannot be used.
    pub fn store_unusable(message: impl Into<String>) -> Self {
        Self::new(ExitStatus::StoreUnusable, message)
    }

    /// Exit 2 for a list of problems found at once (`what` is "plan" or "fleet").
    pub fn invalid<T: std::fmt::Display>(what: &str, problems: &[T]) -> Self {
        let mut error = Self::bad_input(format!(
            "the {what} is not valid ({} problem{}):",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ));
        error.details = problems.iter().map(|p| format!("  {p}")).collect();
        error
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    /// An error of a library crate, whose own line breaks are kept: its first line is the
    /// message, each later line a detail.
    fn from_text(status: ExitStatus, text: &str) -> Self {
        let mut lines = text.lines();
        let mut error = Self::new(status, lines.next().unwrap_or_default());
        error.details = lines.map(str::to_string).collect();
        error
    }

    /// The lines on stderr, without escaping (the caller escapes each, so a line break inside
    /// the message or a detail is shown escaped, never as a line of its own).
    pub fn lines(&self) -> Vec<String> {
        let first = match &self.hint {
            Some(hint) => format!("error: {}; {hint}", self.message),
            None => format!("error: {}", self.message),
        };
        std::iter::once(first)
            .chain(self.details.iter().cloned())
            .collect()
    }
}

/// A store error as the user sees it: the engine says what went wrong, the CLI what to do.
impl From<&StoreError> for CliError {
    fn from(error: &StoreError) -> Self {
        let hint = match error {
            StoreError::Locked { .. } => Some("wait for it to finish or use another --store"),
            StoreError::UnknownFormat { .. } => Some("use a matching sluice release or another --store"),
            StoreError::Foreign { .. } => Some("point --store at an empty or sluice directory"),
            StoreError::Corrupt { .. } => Some("restore it from a backup or start over with a new --store"),
            StoreError::Damaged { .. } => Some("--store (or SLUICE_STORE) names the store to use"),
            StoreError::Io { .. } | StoreError::Sled(_) => None,
        };
        let error = CliError::from_text(ExitStatus::StoreUnusable, &error.to_string());
        match hint {
            Some(hint) => error.with_hint(hint),
            None => error,
        }
    }
}

/// An engine error: a store error as [`From<&StoreError>`]; an unknown id or a stored plan no
/// longer valid is bad input.
impl From<&EngineError> for CliError {
    fn from(error: &EngineError) -> Self {
        match error {
            EngineError::Store(store) => store.into(),
            EngineError::UnknownRun(_) => CliError::from_text(ExitStatus::BadInput, &error.to_string())
                .with_hint("`sluice runs` lists the runs it has"),
            EngineError::UnknownFleet(_) => CliError::from_text(ExitStatus::BadInput, &error.to_string())
                .with_hint("`sluice fleet status` lists the fleet runs it has"),
            EngineError::StoredPlanInvalid { .. } => {
                CliError::from_text(ExitStatus::BadInput, &error.to_string())
            }
        }
    }
}

/// Where a command's variables come from, for the wording of a variable's fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarsFrom {
    /// `--var NAME=VALUE` (text) and `--vars-file FILE` (JSON).
    Flags,
    /// A fleet file's `vars` and its targets (JSON), plus `--var` (text).
    FleetFile,
}

/// One problem as a line for people: the engine says what is wrong; the fix of a variable is
/// worded here, naming the flag or file to change.
pub fn problem_line(problem: &Problem, vars_from: VarsFrom) -> String {
    let Some(fix) = &problem.fix else {
        return problem.to_string();
    };
    let how = match (fix, vars_from) {
        (VarFix::Give { name }, VarsFrom::Flags) => {
            format!("pass `--var {name}=…` or put it in --vars-file")
        }
        (VarFix::Give { name }, VarsFrom::FleetFile) => {
            format!("give `{name}` in the fleet file's `vars` or the target's, or pass `--var {name}=…`")
        }
        (
            VarFix::Correct {
                name,
                given_as: VarForm::Text,
                example,
            },
            _,
        ) => match example {
            Some(example) => format!("pass e.g. `--var {name}={example}`"),
            None => format!("pass a valid `--var {name}=…`"),
        },
        (
            VarFix::Correct {
                name,
                given_as: VarForm::Json,
                example,
            },
            _,
        ) => {
            let place = match vars_from {
                VarsFrom::Flags => "--vars-file",
                VarsFrom::FleetFile => "the fleet file",
            };
            match example {
                Some(example) => format!("fix `{name}` in {place} (e.g. `{example}`)"),
                None => format!("fix `{name}` in {place}"),
            }
        }
    };
    format!("{}: {}; {how}", problem.location, problem.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_with_its_hint_then_its_details() {
        let error = CliError::bad_input("no run `x` in the store /s")
            .with_hint("`sluice runs` lists the runs")
            .with_detail("  more");
        assert_eq!(
            error.lines(),
            [
                "error: no run `x` in the store /s; `sluice runs` lists the runs",
                "  more"
            ]
        );
        assert_eq!(error.status.code(), 2);
    }

    #[test]
    fn a_store_error_reads_as_before_the_hint_moved_to_the_cli() {
        let locked = StoreError::Locked { path: "/s".into() };
        assert_eq!(
            CliError::from(&locked).lines(),
            ["error: the store at /s is in use by another sluice process; wait for it to finish or use another --store"]
        );
        let foreign = StoreError::Foreign { path: "/s".into() };
        assert_eq!(
            CliError::from(&foreign).lines(),
            ["error: the store at /s holds data that is not a sluice store; point --store at an empty or sluice directory"]
        );
        assert_eq!(CliError::from(&foreign).status, ExitStatus::StoreUnusable);
    }

    #[test]
    fn an_engine_error_keeps_its_line_breaks_and_a_message_of_ours_stays_one_line() {
        let invalid = EngineError::StoredPlanInvalid {
            run: "r1".into(),
            problems: vec![sluice_engine::Problem {
                location: "p.json: $.steps[0]".into(),
                message: "unknown kind".into(),
                fix: None,
            }],
        };
        assert_eq!(
            CliError::from(&invalid).lines(),
            [
                "error: the plan stored with run `r1` is no longer valid here:",
                "  p.json: $.steps[0]: unknown kind"
            ]
        );
        assert_eq!(CliError::from(&invalid).status, ExitStatus::BadInput);
        // A path with a line break is one line here; `errln!` then shows the break escaped.
        let ours = CliError::bad_input("cannot read plan file a\nerror: b");
        assert_eq!(ours.lines().len(), 1);
    }

    #[test]
    fn a_variables_fix_names_the_flag_or_the_file_it_came_from() {
        let problem = |fix| Problem {
            location: "p.json: $.vars.n".into(),
            message: "variable `n` is wrong".into(),
            fix: Some(fix),
        };
        let give = problem(VarFix::Give { name: "n".into() });
        let text = problem(VarFix::Correct {
            name: "n".into(),
            given_as: VarForm::Text,
            example: Some("3".into()),
        });
        let json = problem(VarFix::Correct {
            name: "n".into(),
            given_as: VarForm::Json,
            example: None,
        });
        assert_eq!(
            problem_line(&give, VarsFrom::Flags),
            "p.json: $.vars.n: variable `n` is wrong; pass `--var n=…` or put it in --vars-file"
        );
        assert!(problem_line(&give, VarsFrom::FleetFile).contains("in the fleet file's `vars`"));
        assert!(problem_line(&text, VarsFrom::Flags).ends_with("; pass e.g. `--var n=3`"));
        assert!(problem_line(&json, VarsFrom::Flags).ends_with("; fix `n` in --vars-file"));
        assert!(problem_line(&json, VarsFrom::FleetFile).ends_with("; fix `n` in the fleet file"));
        // Without a fix, the engine's own line.
        let plain = Problem::new("p.json: $.steps", "no steps");
        assert_eq!(problem_line(&plain, VarsFrom::Flags), plain.to_string());
    }

    #[test]
    fn the_documented_codes() {
        let codes: Vec<u8> = [
            ExitStatus::Success,
            ExitStatus::RunFailed,
            ExitStatus::BadInput,
            ExitStatus::StoreUnusable,
            ExitStatus::Interrupted,
            ExitStatus::Partial,
            ExitStatus::SavedPlanStale,
            ExitStatus::Declined,
            ExitStatus::ChangesPresent,
        ]
        .iter()
        .map(|s| s.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 2]);
    }
}
