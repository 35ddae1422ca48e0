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
        sandbox.command(HARNESS, &["run", "--auto-approve", slow.to_str().unwrap()]),
        "waiting on operation",
    );
    assert_eq!(code, Some(4), "{said:?}");
    assert!(said.iter().any(|l| l.contains("sluice resume")), "{said:?}");
    assert_eq!(
        sandbox
            .run(HARNESS, &["run", "--auto-approve", fails.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    assert!(sandbox
        .run(HARNESS, &["run", "--auto-approve", works.to_str().unwrap()])
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
        let report = status_json(&sandbox, HARNESS, Some(id));
        assert!(report["finished_at_ms"].is_null(), "not finished: {report}");
        let output = sandbox.run(HARNESS, &["status", id]);
        let hint = format!("not finished; continue with: sluice resume {id}");
        assert!(stdout(&output).contains(&hint), "{}", stdout(&output));
        let output = sandbox.run(HARNESS, &["resume", id]);
        assert!(output.status.success(), "{id}: {}", stderr(&output));
        let report = status_json(&sandbox, HARNESS, Some(id));
        assert_eq!(report["state"], "succeeded");
        assert!(report["finished_at_ms"].is_u64(), "finished: {report}");
        let output = sandbox.run(HARNESS, &["status", id]);
        assert!(!stdout(&output).contains("not finished"), "{}", stdout(&output));
    }
    assert_eq!(std::fs::read_to_string(sandbox.work("slow.txt")).unwrap(), "s");
    // Now finished for good, both may go.
    let output = sandbox.run(HARNESS, &["compact", "--keep", "0"]);
    assert!(
        stdout(&output).contains("removed 2 finished runs, kept 0"),
        "{}",
        stdout(&output)
    );
    // A run that is no longer there is named, with where to look: exit 2.
    let gone = &before[0].2;
    let output = sandbox.run(HARNESS, &["status", gone]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("no run `{gone}` in the store"))
            && stderr(&output).contains("`sluice runs` lists the runs"),
        "{}",
        stderr(&output)
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

/// Raw escape bytes in what the CLI printed (stdout and stderr).
fn raw_escapes(output: &std::process::Output) -> bool {
    [&output.stdout, &output.stderr]
        .iter()
        .any(|bytes| bytes.iter().any(|&b| b == 0x1b || b == 0x07))
}

#[test]
fn escape_sequences_from_plans_variables_and_the_store_are_printed_escaped() {
    let sandbox = Sandbox::new();
    const CLEAR: &str = "\u{1b}[2J";
    std::fs::write(sandbox.work("plain"), "a file, not a directory").unwrap();
    let plan = sandbox.write_plan(
        "plan.json",
        &json!({"name": format!("evil{CLEAR}name"),
        "vars": {"title": {"type": "string", "default": "\u{1b}]0;owned\u{7}"}},
        "steps": [
            {"id": "echo", "kind": "core.noop", "with": {"value": "${vars.title}"}},
            {"id": "file", "kind": "local.file",
             "with": {"path": sandbox.work(&format!("x{CLEAR}.txt")).to_str().unwrap(), "content": "c"}},
            {"id": "broken", "kind": "local.file",
             "with": {"path": sandbox.work(&format!("plain/y{CLEAR}.txt")).to_str().unwrap(), "content": "c"}}
        ]}),
    );
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", plan.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(!raw_escapes(&output), "run: {output:?}");
    assert!(
        stderr(&output).contains(r"x\u{1b}[2J.txt"),
        "shown escaped: {}",
        stderr(&output)
    );
    let run_id = runs(&sandbox)[0].2.clone();
    for args in [
        vec!["status"],
        vec!["status", run_id.as_str()],
        vec!["runs"],
        vec!["resume", run_id.as_str()],
        vec!["resume", "no-such-run\u{1b}[2J"],
        vec!["status", "--json"],
        vec!["runs", "--json"],
    ] {
        let output = sandbox.run(HARNESS, &args);
        assert!(!raw_escapes(&output), "{args:?}: {output:?}");
        let text = stdout(&output) + &stderr(&output);
        assert!(
            text.contains(r"\u{1b}") || text.contains(r"\u001b"),
            "{args:?}: {text}"
        );
    }
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(
        status["plan"]["name"],
        format!("evil{CLEAR}name"),
        "JSON keeps the text"
    );

    // Validation problems quote what the plan says.
    let bad = sandbox.write_plan(
        "bad.json",
        &json!({"name": "bad", "steps": [{"id": "a", "kind": "core.noop", "after": [format!("b{CLEAR}")]}]}),
    );
    let output = sandbox.run(HARNESS, &["validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!raw_escapes(&output), "validate: {output:?}");
    assert!(stderr(&output).contains(r"b\u{1b}[2J"), "{}", stderr(&output));
}

/// A plan of `n` `core.noop` steps, each after the one before.
fn chain(n: usize) -> Value {
    let steps: Vec<Value> = (0..n)
        .map(|i| match i {
            0 => json!({"id": "s0", "kind": "core.noop"}),
            _ => json!({"id": format!("s{i}"), "kind": "core.noop", "after": [format!("s{}", i - 1)]}),
        })
        .collect();
    json!({"name": "chain", "steps": steps})
}

#[test]
fn validate_of_a_hundred_thousand_step_chain_succeeds_and_a_cycle_at_its_end_is_exit_2() {
    // The binary runs on its own main thread, with the default stack: a recursive walk along
    // the chain overflowed it (SIGABRT, exit 134).
    let sandbox = Sandbox::new();
    let n = 100_000;
    let mut plan = chain(n);
    let path = sandbox.write_plan("chain.json", &plan);
    let output = sandbox.run(HARNESS, &["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("valid (100000 steps"),
        "{}",
        stdout(&output)
    );

    // s99998 also waits for s99999, which waits for s99998.
    plan["steps"][n - 2]["after"] = json!(["s99997", "s99999"]);
    let path = sandbox.write_plan("cycle.json", &plan);
    let output = sandbox.run(HARNESS, &["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("dependency cycle: s99998 -> s99999 -> s99998"),
        "{}",
        stderr(&output)
    );
    assert!(!sandbox.store().exists(), "validation opens no store");
}

#[test]
fn a_damaged_store_is_exit_3_naming_the_store_and_what_to_do() {
    let garble = |file: std::path::PathBuf| {
        let mut bytes = std::fs::read(&file).unwrap();
        for i in (0..bytes.len()).step_by(7) {
            bytes[i] ^= 0x5a;
        }
        std::fs::write(&file, bytes).unwrap();
    };
    for damaged in ["db/db", "db/conf"] {
        let sandbox = Sandbox::new();
        let plan = sandbox.write_plan(
            "plan.json",
            &json!({"name": "x", "steps": [{"id": "a", "kind": "core.noop"}]}),
        );
        assert!(sandbox
            .run(HARNESS, &["run", "--auto-approve", plan.to_str().unwrap()])
            .status
            .success());
        let run_id = runs(&sandbox)[0].2.clone();
        garble(sandbox.store().join(damaged));
        for args in [vec!["status"], vec!["resume", run_id.as_str()], vec!["runs"]] {
            let output = sandbox.run(HARNESS, &args);
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(3), "{damaged} {args:?}: {err}");
            let store = format!("the store at {} is damaged", sandbox.store().display());
            for wanted in [store.as_str(), "backup", "move it aside", "observes before"] {
                assert!(
                    err.contains(wanted),
                    "{damaged} {args:?}: `{wanted}` missing: {err}"
                );
            }
            assert!(!err.contains("backtrace") && !err.contains("offset"), "{err}");
        }
    }
}

#[test]
fn a_display_name_holding_an_escape_is_shown_escaped_in_what_the_emulated_world_holds() {
    let sandbox = Sandbox::new();
    let plan = format!(
        "{}/../plans/agent-gateway-egress.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = sandbox.run(
        HARNESS,
        &[
            "run",
            &plan,
            "--emulator",
            "--var",
            "agent_display_name=agent\u{1b}[2Jname",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!raw_escapes(&output), "{output:?}");
    assert!(
        stdout(&output).contains(r#""agent\u{1b}[2Jname""#),
        "{}",
        stdout(&output)
    );
}
