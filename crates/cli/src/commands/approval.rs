//! Whether `run` may apply: `--auto-approve`, `--emulator` (a throw-away world) and a saved plan
//! are approval; otherwise it asks on a terminal, and without one it refuses (exit 2) before
//! anything is called.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use sluice_engine::{Engine, Registry, ValidatedPlan};

use super::preview::{self, Counts};
use super::saved_plan::SavedPlan;
use crate::error::{CliError, ExitStatus, Outcome};

/// What `run` must do before applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Apply without asking.
    Given,
    /// Show the plan and ask on the terminal.
    Ask,
}

/// `Ask` when standard input and standard error are both terminals; refused otherwise, unless
/// `--auto-approve` or `--emulator` approve already.
pub fn needed(auto_approve: bool, emulator: bool) -> Result<Approval, CliError> {
    if auto_approve || emulator {
        return Ok(Approval::Given);
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        return Ok(Approval::Ask);
    }
    Err(CliError::bad_input(
        "`sluice run` applies changes only once they are approved, and there is no terminal to ask on \
         (standard input or standard error is not one); nothing was called",
    )
    .with_hint(
        "add --auto-approve (scheduled jobs and scripts), or review first with \
         `sluice plan PLAN --out FILE` and apply exactly that with `sluice run FILE`",
    ))
}

/// The question, on standard error; true only for the answer `yes` (surrounding spaces aside).
/// End of input or an unreadable terminal is a no.
pub async fn ask() -> bool {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "Apply these changes? Only 'yes' is accepted: ");
    let _ = stderr.flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await;
    matches!(answer, Ok(Ok(line)) if line.trim() == "yes")
}

/// Before `run` opens the store. A saved plan: its steps observed again and compared (exit 6
/// on drift). `Ask`: the plan shown on standard error as `sluice plan` shows it, then the
/// question, unless nothing would change. `Some(outcome)` when the run must not go on.
pub async fn obtain(
    approval: Approval,
    saved: Option<&SavedPlan>,
    plan_path: &Path,
    registry: &Registry,
    validated: &ValidatedPlan,
) -> Result<Option<Outcome>, CliError> {
    if let Some(saved) = saved {
        let now = preview::rows(&Engine::preview(registry, validated).await);
        saved.check_unchanged(plan_path, &now)?;
        errln!(
            "every step observes as saved in {}: applying it",
            plan_path.display()
        );
        return Ok(None);
    }
    if approval == Approval::Given {
        return Ok(None);
    }
    let rows = preview::rows(&Engine::preview(registry, validated).await);
    for line in preview::render(&validated.plan.name, &rows) {
        errln!("{line}");
    }
    if !Counts::of(&rows).changes() {
        errln!("nothing to approve: the run only observes, and records that the world matches the plan");
        return Ok(None);
    }
    if ask().await {
        return Ok(None);
    }
    Ok(Some(Outcome::ended(
        ExitStatus::Declined,
        "not applied (only 'yes' approves); nothing was changed",
    )))
}
