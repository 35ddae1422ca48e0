//! `status`, `runs` and `compact`: reading the store.

use std::path::Path;

use serde_json::json;
use sluice_engine::{RunRecord, SledStore, Store, StoreError};

use super::{open_for_reading, require_store, store_failure};
use crate::error::{CliError, CommandResult, Outcome};
use crate::output;
use crate::run_report::{text, Continue, RunReport};

pub fn status(store_dir: &Path, run: Option<&str>, as_json: bool) -> CommandResult {
    let store = open_for_reading(store_dir)?;
    let asked = run;
    let run = match asked {
        Some(id) => store.run(id),
        None => store
            .runs()
            .map(|runs| runs.into_iter().max_by_key(|r| r.updated_at_ms)),
    };
    let run = run.map_err(|error| store_failure(&error))?.ok_or_else(|| {
        let missing = match asked {
            Some(id) => format!("no run `{id}` in the store {}", store_dir.display()),
            None => format!("no run in the store {}", store_dir.display()),
        };
        CliError::bad_input(missing).with_hint("`sluice runs` lists the runs")
    })?;
    // A run started under `--emulator` with a kept world is continued with `--emulator`; a
    // world file that cannot be read is said by the command that needs it, not here.
    let how =
        match super::kept_world::KeptWorld::read(store_dir).is_ok_and(|kept| kept.is_emulator_run(&run.id)) {
            true => Continue::ResumeOnTheEmulator,
            false => Continue::Resume,
        };
    let report = report_of(store.as_ref(), store_dir, &run, how)?;
    if as_json {
        output::print_json(&report, false);
    } else {
        for line in text::status(&report) {
            outln!("{line}");
        }
    }
    Ok(Outcome::success())
}

/// The report of the stored run `run`, from its step records and the plan stored with it.
pub(super) fn report_of(
    store: &dyn Store,
    store_dir: &Path,
    run: &RunRecord,
    how: Continue,
) -> Result<RunReport, CliError> {
    let records = store.steps(&run.id).map_err(|error| store_failure(&error))?;
    let plan = store
        .plan(&run.plan_digest)
        .map_err(|error| store_failure(&error))?
        .ok_or_else(|| {
            store_failure(&StoreError::Damaged {
                path: store_dir.display().to_string(),
                what: format!("run {} has no plan (digest {})", run.id, run.plan_digest),
            })
        })?;
    Ok(RunReport::new(run, &plan, records, how))
}

pub fn runs(store_dir: &Path, as_json: bool) -> CommandResult {
    let store = open_for_reading(store_dir)?;
    let runs = store.runs().map_err(|error| store_failure(&error))?;
    if as_json {
        let list: Vec<_> = runs
            .iter()
            .map(|r| json!({"id": r.id, "plan": r.plan_name, "source": r.plan_source, "state": r.state, "created_at_ms": r.created_at_ms, "updated_at_ms": r.updated_at_ms, "sessions": r.sessions}))
            .collect();
        output::print_json(&list, false);
        return Ok(Outcome::success());
    }
    if runs.is_empty() {
        outln!("no runs in {}", store_dir.display());
        return Ok(Outcome::success());
    }
    outln!(
        "{:<24} {:<12} {:<24} {:<25} PLAN",
        "RUN",
        "STATE",
        "PLAN NAME",
        "CREATED"
    );
    for run in &runs {
        outln!(
            "{:<24} {:<12} {:<24} {:<25} {}",
            run.id,
            run.state.as_str(),
            run.plan_name,
            sluice_engine::time::rfc3339(run.created_at_ms),
            run.plan_source
        );
    }
    Ok(Outcome::success())
}

pub fn compact(store_dir: &Path, keep: usize) -> CommandResult {
    require_store(store_dir)?;
    // A reader holding the store directly (no run holds it) lets go in a moment.
    let deadline = std::time::Instant::now() + super::READ_WAIT;
    let compacted = loop {
        match SledStore::compact(store_dir, keep) {
            Err(StoreError::Locked { .. })
                if std::time::Instant::now() < deadline
                    && crate::store_link::holder_pid(store_dir).is_none() =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other,
        }
    };
    let report = compacted.map_err(|error| compact_refusal(&error, store_dir))?;
    outln!(
        "removed {} finished runs, kept {}; {} → {} bytes",
        report.runs_removed,
        report.runs_kept,
        report.bytes_before,
        report.bytes_after
    );
    Ok(Outcome::success())
}

/// Why the store could not be compacted. Compaction rewrites the database, so it needs the
/// store to itself; a run serving readers cannot lend it.
fn compact_refusal(error: &StoreError, store_dir: &Path) -> CliError {
    let holder = match error {
        StoreError::Locked { path } => crate::store_link::holder_pid(store_dir).map(|pid| (path, pid)),
        _ => None,
    };
    match holder {
        Some((path, pid)) => CliError::store_unusable(format!(
            "cannot compact the store at {path} while sluice process {pid} runs on it"
        ))
        .with_hint(
            "compact once that run has ended (`sluice status`, `sluice runs` and `sluice fleet status` work meanwhile)",
        ),
        None => store_failure(error),
    }
}
