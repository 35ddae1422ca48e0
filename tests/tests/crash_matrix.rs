//! The crash matrix: a 24-step plan whose every side effect is counted, run in a child process
//! that is SIGKILLed at each crash point of each step, then continued (alternately by `sluice
//! run` with the same plan and by `sluice resume RUN`). Every side effect must have happened
//! exactly once and the run must end succeeded.

use serde_json::{json, Value};
use sluice_tests::{run_and_kill_at, status_json, stderr, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

/// 24 steps: files, operations and flaky steps, fanning out and in, some reading others' outputs.
fn plan(sandbox: &Sandbox) -> Value {
    let log = sandbox.effects_log().display().to_string();
    let file = |name: &str| sandbox.work(name).display().to_string();
    let mut steps = Vec::new();
    for i in 0..8 {
        let mut step = json!({
            "id": format!("file{i}"), "kind": "local.file",
            "with": {"path": file(&format!("file{i}.txt")), "content": format!("file {i}"), "effects_log": log}
        });
        if i > 0 {
            step["after"] = json!([format!("file{}", (i - 1) / 2)]);
        }
        steps.push(step);
    }
    for i in 0..8 {
        steps.push(json!({
            "id": format!("op{i}"), "kind": "local.operation",
            "with": {
                "path": file(&format!("op{i}.txt")),
                "content": format!("made from ${{steps.file{i}.outputs.path}}"),
                "polls": 2 + (i % 3), "effects_log": log
            }
        }));
    }
    for i in 0..4 {
        steps.push(json!({
            "id": format!("flaky{i}"), "kind": "local.flaky",
            "with": {"path": file(&format!("flaky{i}.done")), "failures": 1, "effects_log": log},
            "after": [format!("op{}", 2 * i), format!("op{}", 2 * i + 1)],
            "retry": {"initial_delay": "1ms", "max_delay": "5ms"}
        }));
    }
    for i in 0..4 {
        steps.push(json!({
            "id": format!("join{i}"), "kind": "local.file",
            "with": {
                "path": file(&format!("join{i}.txt")),
                "content": format!("${{steps.flaky{i}.outputs.path}} after ${{steps.op{}.outputs.path}}", 7 - i),
                "effects_log": log
            }
        }));
    }
    json!({"name": "crash-matrix", "steps": steps})
}

fn step_ids(plan: &Value) -> Vec<(String, String)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The side effect each kind makes once on a fresh sandbox.
fn effect_of(kind: &str) -> &'static str {
    match kind {
        "local.operation" => "start",
        _ => "write",
    }
}

fn crash_and_continue(point: &str, only_kind: Option<&str>) {
    let template = Sandbox::new();
    let steps = step_ids(&plan(&template));
    assert!(steps.len() >= 20);
    let mut cases = 0;
    for (index, (step, kind)) in steps.iter().enumerate() {
        if only_kind.is_some_and(|k| k != kind) {
            continue;
        }
        let sandbox = Sandbox::new();
        let plan_path = sandbox.write_plan("plan.json", &plan(&sandbox));
        let plan_arg = plan_path.to_str().unwrap();
        let command = sandbox.command(
            HARNESS,
            &["run", "--auto-approve", plan_arg, "--concurrency", "1"],
        );
        assert!(
            run_and_kill_at(command, step, point),
            "{step}: crash point {point} was never reached"
        );

        // Continue: alternately the same `run` (same plan and vars → same run) and `resume RUN`.
        let output = if index % 2 == 0 {
            sandbox.run(
                HARNESS,
                &["run", "--auto-approve", plan_arg, "--concurrency", "1"],
            )
        } else {
            let runs = sandbox.run(HARNESS, &["runs", "--json"]);
            let runs: Value = serde_json::from_slice(&runs.stdout).unwrap();
            assert_eq!(
                runs.as_array().unwrap().len(),
                1,
                "{step}/{point}: the killed run exists once"
            );
            let run_id = runs[0]["id"].as_str().unwrap().to_string();
            sandbox.run(HARNESS, &["resume", &run_id, "--concurrency", "1"])
        };
        assert!(
            output.status.success(),
            "{step}/{point}: continuing failed: {}",
            stderr(&output)
        );

        let effects = sandbox.effects();
        for (other, other_kind) in &steps {
            let key = (other.clone(), effect_of(other_kind).to_string());
            assert_eq!(
                effects.get(&key),
                Some(&1),
                "{step}/{point}: side effect of {other} must happen exactly once: {effects:?}"
            );
        }
        assert_eq!(
            effects.len(),
            steps.len(),
            "{step}/{point}: unexpected side effects: {effects:?}"
        );
        let status = status_json(&sandbox, HARNESS, None);
        assert_eq!(status["state"], "succeeded", "{step}/{point}");
        assert_eq!(
            status["sessions"], 2,
            "{step}/{point}: one killed session, one that finished"
        );
        assert!(status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "succeeded"));
        assert_eq!(
            std::fs::read_to_string(sandbox.work("op3.txt")).unwrap(),
            format!("made from {}", sandbox.work("file3.txt").display())
        );
        cases += 1;
    }
    assert!(cases >= 8, "{point}: only {cases} cases ran");
}

#[test]
fn killed_after_intent_before_mutation() {
    crash_and_continue("after-intent", None);
}

#[test]
fn killed_after_mutation_before_its_result_is_recorded() {
    crash_and_continue("after-mutation", None);
}

#[test]
fn killed_while_waiting_on_an_operation() {
    crash_and_continue("while-waiting", Some("local.operation"));
}

#[test]
fn killed_between_steps() {
    crash_and_continue("after-step", None);
}
