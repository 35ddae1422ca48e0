//! The commands that read or continue a store (`status`, `runs`, `compact`, `resume`), through
//! the binary: what compaction keeps, missing and damaged stores, and what reaches the terminal.

use serde_json::{json, Value};
use sluice_tests::{run_and_sigterm_after, status_json, stderr, stdout, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

/// `sluice runs --json`: (plan name, state, run id) per run, oldest first.
fn runs(sandbox: &Sandbox) -> Vec<(String, String, String)> {
    let output = sandbox.run(HARNESS, &["runs", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let runs: Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = |v: &Value| v.as_str().unwrap().to_string();
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| (text(&r["plan"]), text(&r["state"]), text(&r["id"])))
        .collect()
}

#[test]
fn compact_keeps_interrupted_and_failed_runs_resumable_and_removes_succeeded_ones() {
    let sandbox = Sandbox::new();
    let work = |name: &str| sandbox.work(name).to_str().unwrap().to_string();
    let slow = sandbox.write_plan(
        "slow.json",
        &json!({"name": "slow", "steps": [{"id": "slow", "kind": "local.operation",
            "with": {"path": work("slow.txt"), "content": "s", "polls": 1000000}}]}),
    );
    let fails = sandbox.write_plan(
        "fails.json",
        &json!({"name": "fails", "steps": [{"id": "flaky", "kind": "local.flaky",
            "with": {"path": work("flaky.done"), "failures": 1, "error": "permanent"}}]}),
    );
    let works = sandbox.write_plan(
        "works.json",
        &json!({"name": "works", "steps": [{"id": "file", "kind": "local.file",
            "with": {"path": work("file.txt"), "content": "f"}}]}),
    );
    let (code, said) = run_and_sigterm_after(
        sandbox.command(HARNESS, &["run", slow.to_str().unwrap()]),
        "waiting on operation",
    );
    assert_eq!(code, Some(4), "{said:?}");
    assert!(said.iter().any(|l| l.contains("sluice resume")), "{said:?}");
    assert_eq!(
        sandbox
            .run(HARNESS, &["run", fails.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    assert!(sandbox
        .run(HARNESS, &["run", works.to_str().unwrap()])
        .status
        .success());
    let before = runs(&sandbox);

    let output = sandbox.run(HARNESS, &["compact", "--keep", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("removed 1 finished runs, kept 2"),
        "{}",
        stdout(&output)
    );
    let states: Vec<(&str, &str)> = before.iter().map(|(p, s, _)| (p.as_str(), s.as_str())).collect();
    assert_eq!(
        states,
        [
            ("slow", "interrupted"),
            ("fails", "failed"),
            ("works", "succeeded")
        ]
    );
    assert_eq!(runs(&sandbox), before[..2], "only the succeeded run went");
    // Both continue where they stopped.
    std::fs::write(sandbox.work("slow.txt.op"), r#"{"polls": 0, "needed": 1}"#).unwrap();
    for (_, _, id) in &before[..2] {
        let output = sandbox.run(HARNESS, &["resume", id]);
        assert!(output.status.success(), "{id}: {}", stderr(&output));
        assert_eq!(
            status_json(&sandbox, HARNESS, Some(id))["run"]["state"],
            "succeeded"
        );
    }
    assert_eq!(std::fs::read_to_string(sandbox.work("slow.txt")).unwrap(), "s");
    // Now finished for good, both may go.
    let output = sandbox.run(HARNESS, &["compact", "--keep", "0"]);
    assert!(
        stdout(&output).contains("removed 2 finished runs, kept 0"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn resume_status_runs_and_compact_refuse_a_missing_store_and_create_nothing() {
    let sandbox = Sandbox::new();
    let missing = sandbox.store();
    for args in [
        vec!["resume", "20260101T000000-abcdef"],
        vec!["status"],
        vec!["status", "20260101T000000-abcdef"],
        vec!["runs"],
        vec!["compact", "--keep", "0"],
    ] {
        let output = sandbox.run(HARNESS, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        let err = stderr(&output);
        assert!(
            err.contains(&format!("no sluice store at {}", missing.display())) && err.contains("--store"),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created the store directory");
    }
}
