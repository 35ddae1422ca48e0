//! Plan validation through the CLI: one test per error class, each asserting the message, exit
//! code 2, and a store left untouched (not even created; unchanged when it already exists).

mod support;

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
    let mut args = vec!["run", "--auto-approve", path.to_str().unwrap()];
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

/// An error class has one spelling: `not-yet` (the journal's old spelling) or any other
/// misspelling is refused, naming the accepted values, rather than read as "retryable".
#[test]
fn an_error_class_spelled_otherwise_is_refused_naming_the_accepted_values() {
    for misspelt in ["not-yet", "NotYet", "retry"] {
        let flaky = json!({"id": "f", "kind": "local.flaky", "with": {
            "path": "/tmp/sluice-never-written/f", "failures": 1, "error": misspelt}});
        assert_refused(
            plan_with(vec![flaky]),
            &[],
            &[
                "$.steps[0].with.error",
                &format!("unknown error class `{misspelt}`"),
                "`retryable`, `not_yet`, `permanent`",
            ],
        );
    }
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
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("plan.json:3:"), "{}", stderr(&output));
    assert!(!sandbox.store().exists());
}

#[test]
fn bad_var_flag_and_undeclared_var() {
    let plan = json!({"name": "ok", "steps": [file_step("a", "x")]});
    let sandbox = Sandbox::new();
    let path = sandbox.write_plan("plan.json", &plan);
    let output = sandbox.run(
        HARNESS,
        &[
            "run",
            "--auto-approve",
            path.to_str().unwrap(),
            "--var",
            "novalue",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--var NAME=VALUE"),
        "{}",
        stderr(&output)
    );
    let output = sandbox.run(
        HARNESS,
        &[
            "run",
            "--auto-approve",
            path.to_str().unwrap(),
            "--var",
            "colour=red",
        ],
    );
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
        .run(HARNESS, &["run", "--auto-approve", good.to_str().unwrap()])
        .status
        .success());
    // Any opening of the store lets sled rewrite its files, so fingerprint after the last read.
    let runs_before = sandbox.run(HARNESS, &["runs", "--json"]).stdout;
    let before = sandbox.store_fingerprint();
    let bad = sandbox.write_plan(
        "bad.json",
        &plan_with(vec![file_step("a", "x"), file_step("a", "y")]),
    );
    let output = sandbox.run(HARNESS, &["run", "--auto-approve", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(sandbox.store_fingerprint(), before);
    assert_eq!(sandbox.run(HARNESS, &["runs", "--json"]).stdout, runs_before);
}

/// `sluice run` and `sluice plan` of a shipped plan against an emulator: exit 2 with the
/// expected phrases, no store, and not one call made.
fn refused_before_any_call(vars: &[&str], extra: &[&str], expected: &[&str]) -> String {
    let cloud = support::Cloud::start();
    let sandbox = Sandbox::new();
    let mut err = String::new();
    for command in ["run", "plan"] {
        let output = cloud
            .command(&sandbox, command, "agent-gateway-egress.json", vars)
            .args(extra)
            .output()
            .unwrap();
        err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{command}: {err}");
        for phrase in expected {
            assert!(err.contains(phrase), "{command}: stderr lacks `{phrase}`:\n{err}");
        }
    }
    assert!(!sandbox.store().exists(), "nothing written");
    assert_eq!(cloud.emulator.requests(), json!([]), "no call made");
    err
}

#[test]
fn a_duration_that_does_not_parse_is_refused_before_any_call() {
    refused_before_any_call(
        &[
            "project=sluice-demo",
            "pickle_gcs_uri=gs://agents/agent.pkl",
            "wait_for_registration=forever",
        ],
        &[],
        &[
            "agent-gateway-egress.json: $.vars.wait_for_registration: variable \
             `wait_for_registration` must be a duration",
            "pass e.g. `--var wait_for_registration=5m`",
        ],
    );
}

#[test]
fn a_display_name_over_googles_limit_is_refused_before_any_call_in_a_few_lines() {
    let sandbox = Sandbox::new();
    let huge = "x".repeat(1_000_000);
    let vars = sandbox.write_plan("vars.json", &json!({ "agent_display_name": huge }));
    let err = refused_before_any_call(
        &["project=sluice-demo", "pickle_gcs_uri=gs://agents/agent.pkl"],
        &["--vars-file", vars.to_str().unwrap()],
        &[
            "$.steps[18].with.display_name: the value is 1000000 characters long; a Vertex AI \
             display name is limited to 128 characters: shorten it (the value of variable \
             `agent_display_name`)",
            "$.steps[19].with.display_name: the value is 1000000 characters long; an Agent \
             Registry display name is limited to 63 characters",
        ],
    );
    assert!(err.len() < 2_000, "the value is not echoed: {} bytes", err.len());
}

#[test]
fn a_kind_refuses_a_bad_value_from_a_variable_without_a_format() {
    let plan = json!({"name": "bad", "vars": {"wait": {"type": "string", "default": "forever"}},
        "steps": [{"id": "registration", "kind": "gcp.agent_registration", "with": {
            "project": "sluice-demo", "region": "us-central1", "engine": "e", "service_id": "agent",
            "display_name": "agent", "wait_for_automatic": "${vars.wait}"}}]});
    assert_refused(
        plan,
        &[],
        &[
            "plan.json: $.steps[0].with.wait_for_automatic: duration `forever` does not start with a \
           number: write e.g. `10s` (the value of variable `wait`)",
        ],
    );
}

#[test]
fn ids_enums_members_and_uris_are_checked_against_googles_rules() {
    let step = |id: &str, kind: &str, with: Value| json!({"id": id, "kind": kind, "with": with});
    let plan = plan_with(vec![
        step(
            "role",
            "gcp.custom_role",
            json!({"project": "My_Project", "role_id": "gateway-user"}),
        ),
        step(
            "gateway",
            "gcp.agent_gateway",
            json!({"project": "sluice-demo", "region": "us-central1-a",
            "gateway_id": "egress", "mode": "sideways"}),
        ),
        step(
            "grant",
            "gcp.iam_binding",
            json!({"project": "sluice-demo", "role": "roles/viewer",
            "members": ["user:ana@example.com", "allUsers"]}),
        ),
        step(
            "agent",
            "gcp.reasoning_engine",
            json!({"project": "sluice-demo", "region": "us-central1",
            "display_name": "a", "package": {"pickle_object_gcs_uri": "https://example.com/a.pkl"}}),
        ),
        step(
            "policy",
            "gcp.org_policy",
            json!({"parent": "project/sluice-demo",
            "constraint": "custom.egress"}),
        ),
    ]);
    assert_refused(
        plan,
        &[],
        &[
            "$.steps[0].with.project: `My_Project` is not a project id",
            "$.steps[0].with.role_id: `gateway-user` is not a custom role id: IAM allows 3-64 \
             letters, digits, `_` and `.`",
            "$.steps[1].with.region: `us-central1-a` is not a region",
            "$.steps[1].with.mode: `sideways` is not one of `egress`, `ingress`",
            "$.steps[2].with.members[1]: `allUsers` cannot be granted on a project policy",
            "$.steps[3].with.package.pickle_object_gcs_uri: `https://example.com/a.pkl` is not a \
             Cloud Storage object URI",
            "$.steps[4].with.parent: `parent` `project/sluice-demo` must be projects/PROJECT_ID",
        ],
    );
}
