//! Plan validation through the CLI: one test per error class, each asserting the message, exit
//! code 2, and a store left untouched (not even created; unchanged when it already exists).

use serde_json::{json, Value};
use sluice_tests::{stderr, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

fn file_step(id: &str, content: &str) -> Value {
    json!({"id": id, "kind": "local.file", "with": {"path": format!("/tmp/sluice-never-written/{id}"), "content": content}})
}

/// Runs `sluice run` on the plan and asserts: exit 2, every expected phrase in stderr, store not created.
fn assert_refused(plan: Value, extra: &[&str], expected: &[&str]) -> String {
    let sandbox = Sandbox::new();
    let path = sandbox.write_plan("plan.json", &plan);
    let mut args = vec!["run", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = sandbox.run(HARNESS, &args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "exit code; stderr: {err}");
    for phrase in expected {
        assert!(err.contains(phrase), "stderr lacks `{phrase}`:\n{err}");
    }
    assert!(
        !sandbox.store().exists(),
        "a refused plan must not create the store"
    );
    // `validate` reports the same problems with the same exit code.
    let mut args = vec!["validate", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = sandbox.run(HARNESS, &args);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output), err);
    err
}

fn plan_with(steps: Vec<Value>) -> Value {
    json!({"name": "bad", "steps": steps})
}

#[test]
fn cycle_lists_the_steps_on_it() {
    let mut a = file_step("a", "${steps.c.outputs.path}");
    a["after"] = json!([]);
    let mut b = file_step("b", "x");
    b["after"] = json!(["a"]);
    let mut c = file_step("c", "y");
    c["after"] = json!(["b"]);
    assert_refused(
        plan_with(vec![a, b, c, file_step("d", "z")]),
        &[],
        &["plan.json: $.steps", "dependency cycle: a -> b -> c -> a"],
    );
}

#[test]
fn unknown_step_in_after_and_in_a_reference() {
    let mut a = file_step("a", "${steps.ghost.outputs.path}");
    a["after"] = json!(["phantom"]);
    assert_refused(
        plan_with(vec![a]),
        &[],
        &[
            "$.steps[0].after[0]",
            "phantom",
            "$.steps[0].with.content",
            "ghost",
        ],
    );
}

#[test]
fn unknown_var() {
    let plan = json!({"name": "bad", "vars": {"region": {"type": "string", "default": "x"}}, "steps": [file_step("a", "${vars.regoin}")]});
    assert_refused(plan, &[], &["$.steps[0].with.content", "regoin", "region"]);
}

#[test]
fn unknown_output_key() {
    let steps = vec![file_step("a", "x"), file_step("b", "${steps.a.outputs.size}")];
    assert_refused(
        plan_with(steps),
        &[],
        &["$.steps[1].with.content", "size", "local.file", "bytes"],
    );
}

#[test]
fn unknown_kind() {
    let steps = vec![json!({"id": "a", "kind": "local.fiel", "with": {}})];
    assert_refused(
        plan_with(steps),
        &[],
        &["$.steps[0].kind", "local.fiel", "local.file"],
    );
}

#[test]
fn duplicate_step_id() {
    assert_refused(
        plan_with(vec![file_step("a", "x"), file_step("a", "y")]),
        &[],
        &["$.steps[1].id", "duplicate", "`a`"],
    );
}

#[test]
fn missing_required_var() {
    let plan = json!({"name": "bad", "vars": {"project": {"type": "string", "required": true}}, "steps": [file_step("a", "${vars.project}")]});
    assert_refused(plan, &[], &["$.vars.project", "--var project="]);
}

#[test]
fn var_of_the_wrong_type() {
    let plan = json!({"name": "bad", "vars": {"count": {"type": "int", "required": true}}, "steps": [file_step("a", "${vars.count}")]});
    assert_refused(plan, &["--var", "count=many"], &["count", "many", "int"]);
}

#[test]
fn var_failing_its_pattern() {
    let plan = json!({"name": "bad", "vars": {"project": {"type": "string", "required": true, "pattern": "[a-z][a-z0-9-]{4,28}[a-z0-9]"}}, "steps": [file_step("a", "${vars.project}")]});
    assert_refused(
        plan,
        &["--var", "project=Bad_Project"],
        &["project", "Bad_Project", "[a-z][a-z0-9-]{4,28}[a-z0-9]"],
    );
}

#[test]
fn parameter_the_kind_does_not_accept() {
    let mut a = file_step("a", "x");
    a["with"]["mode"] = json!("0644");
    assert_refused(
        plan_with(vec![a]),
        &[],
        &["$.steps[0].with.mode", "local.file", "content"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut a = file_step("a", "${vars.nope}");
    a["with"]["mode"] = json!(1);
    let steps = vec![a, json!({"id": "a", "kind": "nope.kind"})];
    let err = assert_refused(plan_with(steps), &[], &["nope", "mode", "duplicate", "nope.kind"]);
    assert!(err.contains("4 problems") || err.contains("5 problems"), "{err}");
}

#[test]
fn malformed_json_names_line_and_column() {
    let sandbox = Sandbox::new();
    let path = sandbox.root.join("plan.json");
    std::fs::write(&path, "{\n  \"name\": \"x\",\n  \"steps\": [,]\n}").unwrap();
    let output = sandbox.run(HARNESS, &["run", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("plan.json:3:"), "{}", stderr(&output));
    assert!(!sandbox.store().exists());
}

#[test]
fn bad_var_flag_and_undeclared_var() {
    let plan = json!({"name": "ok", "steps": [file_step("a", "x")]});
    let sandbox = Sandbox::new();
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(HARNESS, &["run", path.to_str().unwrap(), "--var", "novalue"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--var NAME=VALUE"),
        "{}",
        stderr(&output)
    );
    let output = sandbox.run(HARNESS, &["run", path.to_str().unwrap(), "--var", "colour=red"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("colour"), "{}", stderr(&output));
    assert!(!sandbox.store().exists());
}

#[test]
fn refused_plan_leaves_an_existing_store_unchanged() {
    let sandbox = Sandbox::new();
    let good = sandbox.write_plan(
        "good.json",
        &json!({"name": "good", "steps": [{"id": "a", "kind": "local.file", "with": {"path": sandbox.work("a.txt").to_str().unwrap(), "content": "a"}}]}),
    );
    assert!(sandbox
        .run(HARNESS, &["run", good.to_str().unwrap()])
        .status
        .success());
    // Any opening of the store lets sled rewrite its files, so fingerprint after the last read.
    let runs_before = sandbox.run(HARNESS, &["runs", "--json"]).stdout;
    let before = sandbox.store_fingerprint();
    let bad = sandbox.write_plan(
        "bad.json",
        &plan_with(vec![file_step("a", "x"), file_step("a", "y")]),
    );
    let output = sandbox.run(HARNESS, &["run", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(sandbox.store_fingerprint(), before);
    assert_eq!(sandbox.run(HARNESS, &["runs", "--json"]).stdout, runs_before);
}
