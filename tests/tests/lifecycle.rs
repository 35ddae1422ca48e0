//! Run lifecycle through the CLI: re-runs that only observe, failure and resume, retries,
//! skipped steps, graceful shutdown on SIGTERM, timeouts and store refusals.

use serde_json::{json, Value};
use sluice_engine::{ErrorClass, JournalEvent, SledStore, StepState, Store};
use sluice_tests::{run_and_sigterm_after, status_json, stderr, stdout, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

fn file_step(sandbox: &Sandbox, id: &str, content: &str) -> Value {
    json!({"id": id, "kind": "local.file", "with": {
        "path": sandbox.work(&format!("{id}.txt")).to_str().unwrap(), "content": content,
        "effects_log": sandbox.effects_log().to_str().unwrap()}})
}

fn flaky_step(sandbox: &Sandbox, id: &str, failures: u64, error: &str) -> Value {
    json!({"id": id, "kind": "local.flaky", "with": {
        "path": sandbox.work(&format!("{id}.done")).to_str().unwrap(), "failures": failures, "error": error,
        "effects_log": sandbox.effects_log().to_str().unwrap()},
        "retry": {"initial_delay": "1ms", "max_delay": "2ms"}})
}

fn run_ids(sandbox: &Sandbox) -> Vec<String> {
    let output = sandbox.run(HARNESS, &["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&output.stdout).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn step<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[test]
fn rerun_of_a_finished_plan_only_observes() {
    let sandbox = Sandbox::new();
    let plan = json!({"name": "twice", "steps": [
        file_step(&sandbox, "a", "alpha"),
        file_step(&sandbox, "b", "from ${steps.a.outputs.path}"),
        {"id": "c", "kind": "local.operation", "with": {"path": sandbox.work("c.txt").to_str().unwrap(), "content": "c", "polls": 2}, "after": ["b"]}
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let first = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));
    let effects = sandbox.effects();
    let second = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("new run"),
        "a finished plan starts a new run: {}",
        stderr(&second)
    );
    assert_eq!(sandbox.effects(), effects, "the re-run made side effects");

    let ids = run_ids(&sandbox);
    assert_eq!(ids.len(), 2);
    let store = SledStore::open(&sandbox.store()).unwrap();
    let transitions = |run: &str| -> Vec<StepState> {
        store
            .journal(run)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                JournalEvent::Transition { to, .. } => Some(to),
                _ => None,
            })
            .collect()
    };
    let first_run = transitions(&ids[0]);
    assert_eq!(
        first_run.iter().filter(|s| **s == StepState::Applying).count(),
        3,
        "first run applies each step"
    );
    let rerun = transitions(&ids[1]);
    assert!(!rerun.contains(&StepState::Applying), "re-run applied: {rerun:?}");
    assert!(!rerun.contains(&StepState::Waiting), "re-run waited: {rerun:?}");
    assert_eq!(
        rerun.iter().filter(|s| **s == StepState::Observing).count(),
        3,
        "re-run observes each step: {rerun:?}"
    );
    assert_eq!(rerun.iter().filter(|s| **s == StepState::Succeeded).count(), 3);
}

#[test]
fn failed_step_blocks_only_its_descendants_and_resume_retries_it() {
    let sandbox = Sandbox::new();
    let mut after_flaky = file_step(&sandbox, "after_flaky", "x");
    after_flaky["after"] = json!(["flaky"]);
    let plan = json!({"name": "fails", "steps": [
        flaky_step(&sandbox, "flaky", 1, "permanent"), after_flaky, file_step(&sandbox, "independent", "y")
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("sluice resume"),
        "tells the operator how to continue"
    );
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(status["state"], "failed");
    assert_eq!(step(&status, "flaky")["state"], "failed");
    assert!(step(&status, "flaky")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("planned failure 1 of 1"));
    assert_eq!(step(&status, "after_flaky")["state"], "pending");
    assert_eq!(step(&status, "independent")["state"], "succeeded");

    // The operator "fixes the cause" (the flaky step succeeds on its next apply) and resumes.
    let run_id = status["run_id"].as_str().unwrap().to_string();
    let output = sandbox.run(HARNESS, &["resume", &run_id]);
    assert!(output.status.success(), "{}", stderr(&output));
    let status = status_json(&sandbox, HARNESS, Some(&run_id));
    assert_eq!(status["state"], "succeeded");
    assert_eq!(
        step(&status, "flaky")["attempts"],
        2,
        "one failed attempt, then the resumed one"
    );
    let effects = sandbox.effects();
    assert_eq!(effects.values().sum::<usize>(), 3, "{effects:?}");
}

#[test]
fn retryable_and_not_yet_errors_are_retried_within_the_run() {
    let sandbox = Sandbox::new();
    let plan = json!({"name": "retries", "steps": [
        flaky_step(&sandbox, "throttled", 2, "retryable"), flaky_step(&sandbox, "propagating", 3, "not_yet")
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(
        step(&status, "throttled")["attempts"],
        3,
        "two failures, then success"
    );
    assert_eq!(step(&status, "propagating")["attempts"], 4);
    assert_eq!(step(&status, "throttled")["outputs"]["attempts"], 3);
    let store = SledStore::open(&sandbox.store()).unwrap();
    let run_id = status["run_id"].as_str().unwrap();
    let failed: Vec<ErrorClass> = store
        .journal(run_id)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            JournalEvent::AttemptFailed {
                class, retry_in_ms, ..
            } => {
                assert!(retry_in_ms.is_some());
                Some(class)
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.iter().filter(|c| **c == ErrorClass::Retryable).count(), 2);
    assert_eq!(failed.iter().filter(|c| **c == ErrorClass::NotYet).count(), 3);
}

#[test]
fn retries_stop_at_max_attempts() {
    let sandbox = Sandbox::new();
    let mut flaky = flaky_step(&sandbox, "flaky", 5, "retryable");
    flaky["retry"]["max_attempts"] = json!(2);
    let path = sandbox.write_plan("plan.json", &json!({"name": "gives-up", "steps": [flaky]}));
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let status = status_json(&sandbox, HARNESS, None);
    assert!(step(&status, "flaky")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gave up after 2 attempts"));
}

/// Skipped steps that wait on a step that runs (a shared `apis` step) are not launched when
/// it finishes: the run finishes (it used to panic with an arithmetic underflow).
#[test]
fn skipped_steps_after_a_running_step_are_not_launched_when_it_finishes() {
    let sandbox = Sandbox::new();
    let first = file_step(&sandbox, "first", "f");
    let mut optional = file_step(&sandbox, "optional", "o");
    optional["when"] = json!("vars.ingress");
    optional["after"] = json!(["first"]);
    let mut reader = file_step(&sandbox, "reader", "${steps.optional.outputs.path}");
    reader["when"] = json!("vars.ingress");
    reader["after"] = json!(["first"]);
    let plan = json!({"name": "when-after", "vars": {"ingress": {"type": "bool", "default": false}},
                      "steps": [first, optional, reader]});
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(step(&status, "first")["state"], "succeeded");
    assert_eq!(step(&status, "optional")["state"], "skipped");
    assert_eq!(step(&status, "reader")["state"], "skipped");
}

#[test]
fn when_false_skips_the_step_and_steps_reading_its_outputs() {
    let sandbox = Sandbox::new();
    let mut optional = file_step(&sandbox, "optional", "o");
    optional["when"] = json!("vars.ingress");
    let reader = file_step(&sandbox, "reader", "${steps.optional.outputs.path}");
    let mut ordered = file_step(&sandbox, "ordered", "z");
    ordered["after"] = json!(["optional"]);
    let plan = json!({"name": "when", "vars": {"ingress": {"type": "bool", "default": false}}, "steps": [optional, reader, ordered]});
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(step(&status, "optional")["state"], "skipped");
    assert_eq!(step(&status, "reader")["state"], "skipped");
    assert_eq!(step(&status, "ordered")["state"], "succeeded");
    assert!(!sandbox.work("optional.txt").exists());

    let output = sandbox.run(
        HARNESS,
        &[
            "run",
            "--auto-approve",
            path.to_str().unwrap(),
            "--var",
            "ingress=true",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(sandbox.work("reader.txt")).unwrap(),
        sandbox.work("optional.txt").to_str().unwrap()
    );
}

#[test]
fn sigterm_stops_gracefully_and_resume_finishes_with_one_operation() {
    let sandbox = Sandbox::new();
    let plan = json!({"name": "slow", "steps": [
        {"id": "slow", "kind": "local.operation", "with": {"path": sandbox.work("slow.txt").to_str().unwrap(), "content": "s", "polls": 1000000, "effects_log": sandbox.effects_log().to_str().unwrap()}}
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let (code, rest) = run_and_sigterm_after(
        sandbox.command(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]),
        "waiting on operation",
    );
    assert_eq!(code, Some(4), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("sluice resume")), "{rest:?}");
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(status["state"], "interrupted");
    assert_eq!(step(&status, "slow")["state"], "waiting");

    // Make the operation finish on its next poll, then resume: it re-attaches, never restarts.
    let op = sandbox.work("slow.txt.op");
    std::fs::write(&op, r#"{"polls": 0, "needed": 1}"#).unwrap();
    let run_id = status["run_id"].as_str().unwrap().to_string();
    let output = sandbox.run(HARNESS, &["resume", &run_id]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        sandbox.effects().values().sum::<usize>(),
        1,
        "the operation was started once"
    );
    assert_eq!(std::fs::read_to_string(sandbox.work("slow.txt")).unwrap(), "s");
}

/// The steps table (`run`'s summary, `status`) counts the polls the journal holds, also for a
/// step stopped while it waits (it once said `POLLS 0` after 59 polls).
#[test]
fn the_polls_column_matches_the_journal_after_a_stop_mid_wait() {
    let sandbox = Sandbox::new();
    let plan = json!({"name": "slow", "steps": [
        {"id": "slow", "kind": "local.operation", "with": {"path": sandbox.work("slow.txt").to_str().unwrap(), "content": "s", "polls": 1000000}}
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let (code, rest) = run_and_sigterm_after(
        sandbox.command(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]),
        "waiting on operation",
    );
    assert_eq!(code, Some(4), "{rest:?}");
    let output = sandbox.run(HARNESS, &["status"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let columns: Vec<&str> = table
        .lines()
        .find(|line| line.starts_with("slow "))
        .unwrap_or_else(|| panic!("no row for `slow`:\n{table}"))
        .split_whitespace()
        .collect();
    let status = status_json(&sandbox, HARNESS, None);
    let run_id = status["run_id"].as_str().unwrap();
    let store = SledStore::open(&sandbox.store()).unwrap();
    let journaled = store
        .journal(run_id)
        .unwrap()
        .iter()
        .filter(|e| matches!(e.event, JournalEvent::Poll { .. }))
        .count();
    assert!(journaled >= 1, "it polled before the stop");
    assert_eq!(columns[1], "waiting");
    assert_eq!(columns[2], "in_doubt", "CHANGE column:\n{table}");
    assert_eq!(columns[4], journaled.to_string(), "POLLS column:\n{table}");
}

#[test]
fn a_step_past_its_timeout_fails_and_says_so() {
    let sandbox = Sandbox::new();
    let plan = json!({"name": "timeout", "steps": [
        {"id": "slow", "kind": "local.operation", "timeout": "100ms", "with": {"path": sandbox.work("slow.txt").to_str().unwrap(), "content": "s", "polls": 1000000}}
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let status = status_json(&sandbox, HARNESS, None);
    assert!(step(&status, "slow")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("timeout of 100ms"));
}

/// Held by a process that does not serve it to readers (as a compaction holds it): refused,
/// after a moment's wait, by writers and readers alike. (A store held by a run is read through
/// that run: watch_while_running.rs.)
#[test]
fn a_store_held_by_a_process_that_does_not_serve_it_is_refused() {
    let sandbox = Sandbox::new();
    let held = SledStore::open(&sandbox.store()).unwrap();
    let path = sandbox.write_plan(
        "plan.json",
        &json!({"name": "x", "steps": [file_step(&sandbox, "a", "a")]}),
    );
    for args in [
        vec!["run", "--auto-approve", path.to_str().unwrap()],
        vec!["runs"],
    ] {
        let output = sandbox.run(HARNESS, &args);
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        let err = stderr(&output);
        assert!(
            err.contains(sandbox.store().to_str().unwrap())
                && err.contains("in use by another sluice process"),
            "{err}"
        );
    }
    assert!(!sandbox.work("a.txt").exists());
    drop(held);
}

#[test]
fn an_unknown_store_format_or_a_foreign_directory_is_refused() {
    let sandbox = Sandbox::new();
    {
        // A store written by a future version: its database says format 99.
        let db = sled::open(sandbox.store().join("db")).unwrap();
        db.insert(b"meta/format", b"99".as_slice()).unwrap();
        db.flush().unwrap();
    }
    let output = sandbox.run(HARNESS, &["runs"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("format version 99"),
        "{}",
        stderr(&output)
    );

    let foreign = sandbox.root.join("home");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let path = sandbox.write_plan(
        "plan.json",
        &json!({"name": "x", "steps": [file_step(&sandbox, "a", "a")]}),
    );
    let output = std::process::Command::new(HARNESS)
        .args([
            "run",
            "--auto-approve",
            path.to_str().unwrap(),
            "--store",
            foreign.to_str().unwrap(),
        ])
        .env_remove("SLUICE_STORE")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("not a sluice store"));
    assert_eq!(
        std::fs::read_dir(&foreign).unwrap().count(),
        1,
        "nothing was added to the foreign directory"
    );
}

#[test]
fn unknown_run_and_missing_store_are_bad_input() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(HARNESS, &["status"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no sluice store"));
    assert!(!sandbox.store().exists());
    let path = sandbox.write_plan(
        "plan.json",
        &json!({"name": "x", "steps": [file_step(&sandbox, "a", "a")]}),
    );
    assert!(sandbox
        .run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()])
        .status
        .success());
    let output = sandbox.run(HARNESS, &["resume", "no-such-run"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no run `no-such-run`"));
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let sandbox = Sandbox::new();
    let mut b = file_step(&sandbox, "b", "${steps.a.outputs.path}");
    b["after"] = json!([]);
    let path = sandbox.write_plan(
        "plan.json",
        &json!({"name": "g", "steps": [file_step(&sandbox, "a", "a"), b]}),
    );
    let dot = sandbox.run(HARNESS, &["graph", path.to_str().unwrap(), "--format", "dot"]);
    assert!(dot.status.success());
    assert!(
        stdout(&dot).contains("digraph") && stdout(&dot).contains("\"a\" -> \"b\""),
        "{}",
        stdout(&dot)
    );
    let mermaid = sandbox.run(HARNESS, &["graph", path.to_str().unwrap(), "--format", "mermaid"]);
    assert!(mermaid.status.success());
    assert!(
        stdout(&mermaid).contains("flowchart") && stdout(&mermaid).contains("-->"),
        "{}",
        stdout(&mermaid)
    );
}

#[test]
fn plan_command_lists_changes_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let plan = json!({"name": "preview", "steps": [
        file_step(&sandbox, "a", "alpha"),
        file_step(&sandbox, "b", "from ${steps.a.outputs.path}"),
        {"id": "c", "kind": "local.operation", "with": {"path": sandbox.work("c.txt").to_str().unwrap(), "content": "c"}},
        {"id": "d", "kind": "core.noop", "with": {"value": "${steps.c.outputs.path}"}}
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["plan", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // The counts come last and count every step once.
    assert_eq!(
        text.lines().last(),
        Some("plan preview: 3 to create, 0 to update, 0 unchanged, 1 known later (4 steps)"),
        "{text}"
    );
    assert!(
        text.contains("+ b") && text.contains("a.txt"),
        "b is observed with a's predicted path: {text}"
    );
    assert!(
        text.contains("? d") && text.contains("known later: once `c` ran"),
        "{text}"
    );
    assert!(sandbox.effects().is_empty(), "no side effect");
    assert!(!sandbox.work("a.txt").exists() && !sandbox.work("c.txt").exists());
    assert!(!SledStore::exists(&sandbox.store()), "plan opens no store");

    let run = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let output = sandbox.run(HARNESS, &["plan", path.to_str().unwrap(), "--json"]);
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    let actions: Vec<&str> = document["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["unchanged"; 4], "after a run: {document}");
    assert_eq!(document["format_version"], 1);
    assert_eq!(document["changes"], false);
    assert_eq!(document["counts"]["unchanged"], 4);
    assert_eq!(document["counts"]["steps"], 4);
}
