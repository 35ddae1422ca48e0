//! Fleets through the binary with local step kinds (no cloud): the fleet file is checked whole
//! before anything is written, a failing target fails alone with a "partial" exit code, the
//! report lists every target, and `fleet resume` does not redo finished targets.

use serde_json::{json, Value};
use sluice_tests::{stderr, stdout, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

fn plan(sandbox: &Sandbox) -> std::path::PathBuf {
    sandbox.write_plan(
        "plan.json",
        &json!({
            "name": "per-project",
            "vars": {
                "project": { "type": "string", "required": true, "pattern": "[a-z][a-z0-9-]{4,28}[a-z0-9]" },
                "dir": { "type": "string", "required": true },
                "failures": { "type": "int", "default": 0 }
            },
            "steps": [
                { "id": "file", "kind": "local.file",
                  "with": { "path": "${vars.dir}/${vars.project}.txt", "content": "x" } },
                { "id": "flaky", "kind": "local.flaky", "after": ["file"],
                  "with": { "path": "${vars.dir}/${vars.project}.flaky", "failures": "${vars.failures}", "error": "permanent" } }
            ]
        }),
    )
}

fn fleet(sandbox: &Sandbox, targets: Value) -> std::path::PathBuf {
    plan(sandbox);
    sandbox.write_plan(
        "fleet.json",
        &json!({
            "name": "local",
            "plan": "plan.json",
            "vars": { "dir": sandbox.work("out").display().to_string() },
            "targets": targets,
            "concurrency": 2
        }),
    )
}

#[test]
fn a_bad_fleet_file_is_refused_whole_before_the_store_exists() {
    let sandbox = Sandbox::new();
    plan(&sandbox);
    let file = sandbox.write_plan(
        "fleet.json",
        &json!({
            "name": "Nightly Fleet",
            "plan": "plan.json",
            "targets": [ { "project": "ok-project" }, { "project": "Bad_Id" }, { "project": "ok-project" }, {} ],
            "new_projects": {
                "count": 3, "id_pattern": "t-{date}", "parent": "orgs/1",
                "billing_account": "012345", "ttl": "5m"
            },
            "rate_limits": { "iam": 0 }
        }),
    );
    let output = sandbox.run(HARNESS, &["fleet", "run", file.to_str().unwrap()]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    for expected in [
        "$.name",              // not a label value
        "Bad_Id",              // fails the plan's pattern
        "is already a target", // duplicate
        "$.targets[3]: a target needs `project`",
        "needs `{index}`", // count 3 without {index}
        "$.new_projects.parent",
        "$.new_projects.billing_account",
        "shorter than an hour",
        "$.rate_limits.iam",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(!sandbox.store().exists(), "a refused fleet wrote a store");
}

#[test]
fn a_failing_target_fails_alone_and_a_resumed_fleet_redoes_nothing_finished() {
    let sandbox = Sandbox::new();
    let file = fleet(
        &sandbox,
        json!([
            { "project": "alpha-one" },
            { "project": "bravo-two", "failures": 9 },
            { "project": "charlie-three" }
        ]),
    );
    let report = sandbox.work("report.json");
    let output = sandbox.run(
        HARNESS,
        &[
            "fleet",
            "run",
            file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(5), "partial: {out}\n{err}");
    assert!(
        out.contains("3 targets: 0 converged, 2 changed, 1 failed"),
        "{out}"
    );
    assert!(
        out.contains("1 target: step `flaky` (permanent)"),
        "grouped cause: {out}"
    );
    assert!(
        err.contains("sluice fleet resume fleet-"),
        "says what to type next: {err}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3);
    assert_eq!(report["state"], "partial");
    assert_eq!(targets[1]["project"], "bravo-two");
    assert_eq!(targets[1]["state"], "failed");
    assert_eq!(targets[1]["error"]["step"], "flaky");
    assert_eq!(targets[0]["created"][0]["step"], "file");
    assert!(targets.iter().all(|t| t["run_id"].is_string()));
    let fleet_run = report["fleet_run"].as_str().unwrap().to_string();

    // Resume: the two finished targets are reported, not run again.
    let effects_before = std::fs::read_dir(sandbox.work("out")).unwrap().count();
    let output = sandbox.run(HARNESS, &["fleet", "resume", &fleet_run]);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("3 targets (2 already done)"), "{err}");
    assert!(
        !err.contains("alpha-one: started"),
        "a finished target ran again: {err}"
    );
    assert!(err.contains("bravo-two: started (continuing run"), "{err}");
    assert_eq!(
        std::fs::read_dir(sandbox.work("out")).unwrap().count(),
        effects_before
    );

    let output = sandbox.run(HARNESS, &["fleet", "status", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let status: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(status["fleet_run"], fleet_run.as_str());
    assert_eq!(status["counts"]["failed"], 1);
    assert_eq!(status["counts"]["changed"], 2);
}

#[test]
fn a_second_fleet_run_of_converged_targets_changes_nothing() {
    let sandbox = Sandbox::new();
    let file = fleet(
        &sandbox,
        json!([{ "project": "alpha-one" }, { "project": "bravo-two" }]),
    );
    let first = sandbox.run(HARNESS, &["fleet", "run", file.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let second = sandbox.run(HARNESS, &["fleet", "run", file.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("2 targets: 2 converged, 0 changed, 0 failed"),
        "{}",
        stdout(&second)
    );
}

#[test]
fn an_unwritable_report_path_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let file = fleet(&sandbox, json!([{ "project": "alpha-one" }]));
    let report = sandbox.root.join("no-such-dir").join("report.json");
    let output = sandbox.run(
        HARNESS,
        &[
            "fleet",
            "run",
            file.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--report"), "{}", stderr(&output));
    assert!(!sandbox.store().exists(), "nothing ran");
    assert!(!sandbox.work("out").exists(), "no target ran");
}

#[test]
fn output_piped_into_a_reader_that_stops_early_keeps_the_exit_code() {
    // `sluice fleet plan FLEET | head -1`: 3,000 targets print more than a pipe holds, so the
    // command is still writing when the reader goes away.
    let sandbox = Sandbox::new();
    let targets: Vec<Value> = (0..3000)
        .map(|i| json!({ "project": format!("project-{i:05}") }))
        .collect();
    let file = fleet(&sandbox, Value::Array(targets));
    let mut child = sandbox
        .command(HARNESS, &["fleet", "plan", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("fleet local"), "{first}");
    // The reader is gone (dropped above); the command must not panic (exit 101).
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
