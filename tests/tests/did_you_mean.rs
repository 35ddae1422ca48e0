//! A mistyped variable or step name is answered with the name it most likely meant, through the
//! binary; a name close to nothing gets the list of valid names and no guess.

mod support;

use serde_json::json;
use sluice_tests::{stderr, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

/// `validate` with `args`: exit 2 and its stderr; the store is never created.
fn refused(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.run(HARNESS, args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(!sandbox.store().exists(), "validation never creates a store");
    err
}

/// The problem line of `err` that mentions `needle`.
fn line_with<'a>(err: &'a str, needle: &str) -> &'a str {
    err.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{err}"))
}

#[test]
fn a_mistyped_variable_of_a_shipped_plan_suggests_the_declared_one() {
    let sandbox = Sandbox::new();
    let plan = support::shipped_plan("agent-gateway-egress.json");
    let err = refused(
        &sandbox,
        &[
            "validate",
            plan.to_str().unwrap(),
            "--var",
            "projcet=my-project",
            "--var",
            "ipa=true",
            "--var",
            "zone=us-central1-a",
            "--var",
            "pickle_gcs_uri=gs://agents/agent.pkl",
        ],
    );
    let projcet = line_with(&err, "`projcet` was given");
    assert!(projcet.contains("did you mean `project`?"), "{projcet}");
    // A swap of two letters is one edit even in a three-letter name.
    let ipa = line_with(&err, "`ipa` was given");
    assert!(ipa.contains("did you mean `iap`?"), "{ipa}");
    let zone = line_with(&err, "`zone` was given");
    assert!(
        !zone.contains("did you mean"),
        "nothing is close to `zone`: {zone}"
    );
    assert!(
        zone.contains("declared variables: `adopt_existing_gateway`"),
        "{zone}"
    );
}

#[test]
fn a_mistyped_step_name_suggests_the_step() {
    let sandbox = Sandbox::new();
    let file = |id: &str| {
        json!({"id": id, "kind": "local.file",
               "with": {"path": format!("/tmp/sluice-never-written/{id}"), "content": "x"}})
    };
    let mut grant = file("grant");
    grant["after"] = json!(["gatway_role", "ghost"]);
    grant["with"]["content"] = json!("${steps.gateway_rloe.outputs.bytes}");
    let plan = sandbox.write_plan(
        "plan.json",
        &json!({"name": "typos", "steps": [file("gateway_role"), grant]}),
    );
    let err = refused(&sandbox, &["validate", plan.to_str().unwrap()]);
    let after = line_with(&err, "$.steps[1].after[0]");
    assert!(
        after.contains("unknown step `gatway_role`; did you mean `gateway_role`?"),
        "{after}"
    );
    let reference = line_with(&err, "$.steps[1].with.content");
    assert!(reference.contains("did you mean `gateway_role`?"), "{reference}");
    let ghost = line_with(&err, "$.steps[1].after[1]");
    assert!(
        !ghost.contains("did you mean"),
        "nothing is close to `ghost`: {ghost}"
    );
    assert!(ghost.contains("steps: `gateway_role`, `grant`"), "{ghost}");

    // `graph`, which reads no variables, says the same about `after`.
    let err = refused(&sandbox, &["graph", plan.to_str().unwrap()]);
    let after = line_with(&err, "`gatway_role`");
    assert!(after.contains("did you mean `gateway_role`?"), "{after}");
}

#[test]
fn validate_json_is_one_document_for_a_valid_plan_and_for_an_invalid_one() {
    let sandbox = Sandbox::new();
    let plan = support::shipped_plan("agent-gateway-egress.json");
    let plan = plan.to_str().unwrap();
    let document = |output: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
    };

    let valid = sandbox.run(
        HARNESS,
        &[
            "validate",
            plan,
            "--json",
            "--var",
            "project=my-project",
            "--var",
            "pickle_gcs_uri=gs://my-bucket/agent.pkl",
        ],
    );
    assert_eq!(valid.status.code(), Some(0), "{}", stderr(&valid));
    let valid = document(&valid);
    assert_eq!(valid["format_version"], 1);
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["plan"]["name"], "agent-gateway-egress");
    assert_eq!(valid["steps"], 20);
    assert_eq!(
        valid["skipped_by_when"], 12,
        "the governance steps, off by default"
    );
    assert_eq!(valid["vars"]["project"], "my-project");

    let invalid = sandbox.run(
        HARNESS,
        &["validate", plan, "--json", "--var", "projcet=my-project"],
    );
    assert_eq!(
        invalid.status.code(),
        Some(2),
        "the exit code is the same as without --json"
    );
    let invalid = document(&invalid);
    assert_eq!(invalid["valid"], false);
    let problems: Vec<&str> = invalid["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("did you mean `project`")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("required variable `pickle_gcs_uri`")),
        "every problem, not the first: {problems:#?}"
    );
    assert!(!sandbox.store().exists(), "validation never creates a store");
}
