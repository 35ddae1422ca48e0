//! What a run reports at its end and `status` reports after: `run --json`, `resume --json` and
//! `status --json` print one document (README "Machine-readable output") whose counts, resources
//! and `next` follow from what the steps did; the text for people names what was created and
//! never prints outputs as JSON; `--emulator` lists only what the run changed in its world.

mod support;

use serde_json::Value;
use sluice_tests::{status_json, stderr, stdout, Sandbox};
use support::{Cloud, EGRESS_VARS, HARNESS};

const EGRESS_PLAN: &str = "agent-gateway-egress.json";
const GATEWAY: &str = "projects/sluice-demo/locations/us-central1/agentGateways/agent-egress";
const ROLE: &str = "projects/sluice-demo/roles/agentGatewayUser";

/// The one JSON document on stdout: anything after it fails the parse.
fn document(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}):\n{}", stdout(output)))
}

fn steps(report: &Value) -> &Vec<Value> {
    report["steps"].as_array().unwrap()
}

/// How many steps have each `change`, counted from the steps themselves.
fn counted(report: &Value, change: &str) -> u64 {
    steps(report).iter().filter(|s| s["change"] == change).count() as u64
}

/// The counts agree with the steps, every step is counted once, and a succeeded step's change
/// is created, updated or unchanged.
fn assert_consistent(report: &Value) {
    let counts = report["counts"].as_object().unwrap();
    let keys: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "created",
            "failed",
            "in_doubt",
            "pending",
            "skipped",
            "unchanged",
            "updated"
        ],
        "{report}"
    );
    for (change, count) in counts {
        assert_eq!(
            count.as_u64().unwrap(),
            counted(report, change),
            "{change}: {report}"
        );
    }
    let total: u64 = counts.values().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, steps(report).len() as u64);
    for step in steps(report) {
        let state = step["state"].as_str().unwrap();
        let change = step["change"].as_str().unwrap();
        let expected: &[&str] = match state {
            "succeeded" => &["created", "updated", "unchanged"],
            "failed" => &["failed"],
            "skipped" => &["skipped"],
            _ => &["in_doubt", "pending"],
        };
        assert!(expected.contains(&change), "{step}");
        assert_eq!(step["error"].is_null(), state != "failed", "{step}");
    }
}

#[test]
fn run_json_names_what_was_created_status_json_says_the_same_and_a_second_run_changes_nothing() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let first = cloud
        .command(&sandbox, "run", EGRESS_PLAN, &EGRESS_VARS)
        .arg("--json")
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let report = document(&first);
    assert!(stderr(&first).contains("new run"), "progress stays on stderr");
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["state"], "succeeded");
    assert_eq!(report["plan"]["name"], "agent-gateway-egress");
    assert!(report["plan"]["source"].as_str().unwrap().ends_with(EGRESS_PLAN));
    assert!(report["next"].is_null(), "nothing to do next: {report}");
    assert_consistent(&report);
    assert_eq!(report["counts"]["failed"], 0);
    assert_eq!(
        report["counts"]["skipped"], 12,
        "the plan's optional steps are off"
    );
    // A fresh project: everything the plan manages was created, and is named.
    let resources: Vec<(&str, &str, &str)> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["step"].as_str().unwrap(),
                r["change"].as_str().unwrap(),
                r["name"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert!(
        resources.contains(&("gateway_role", "created", ROLE)),
        "{resources:?}"
    );
    assert!(
        resources.contains(&("egress_gateway", "created", GATEWAY)),
        "{resources:?}"
    );
    assert_eq!(
        resources.len() as u64,
        report["counts"]["created"].as_u64().unwrap() + report["counts"]["updated"].as_u64().unwrap()
    );
    let gateway = steps(&report)
        .iter()
        .find(|s| s["id"] == "egress_gateway")
        .unwrap();
    assert_eq!(gateway["kind"], "gcp.agent_gateway");
    assert_eq!(gateway["summary"], GATEWAY);
    assert_eq!(
        gateway["outputs"]["name"], GATEWAY,
        "full outputs are in the JSON"
    );
    assert!(gateway["duration_ms"].is_u64() && gateway["attempts"].as_u64().unwrap() >= 1);

    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(
        status_json(&sandbox, HARNESS, Some(run_id)),
        report,
        "status --json of the run is the document the run printed"
    );

    // The same plan again: a new run that only observes.
    let second = cloud
        .command(&sandbox, "run", EGRESS_PLAN, &EGRESS_VARS)
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    let text = stdout(&second);
    let again = status_json(&sandbox, HARNESS, None);
    assert_ne!(again["run_id"], report["run_id"]);
    assert_consistent(&again);
    let unchanged = report["counts"]["created"].as_u64().unwrap()
        + report["counts"]["updated"].as_u64().unwrap()
        + report["counts"]["unchanged"].as_u64().unwrap();
    assert_eq!(again["counts"]["created"], 0, "{again}");
    assert_eq!(again["counts"]["updated"], 0, "{again}");
    assert_eq!(again["counts"]["unchanged"], unchanged);
    assert_eq!(again["resources"], serde_json::json!([]));
    let first_line = format!(
        "run {} succeeded: 0 created, 0 updated, {unchanged} unchanged, 0 failed, 12 skipped",
        again["run_id"].as_str().unwrap()
    );
    assert_eq!(text.lines().next(), Some(first_line.as_str()), "{text}");
    assert!(!text.contains('{'), "no JSON at the end of a run:\n{text}");

    // The status table: a CHANGE column, and names rather than JSON.
    let table = stdout(&sandbox.run(HARNESS, &["status", run_id]));
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("egress_gateway "))
        .unwrap_or_else(|| panic!("no row for egress_gateway:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[1], row[2], *row.last().unwrap()),
        ("succeeded", "created", GATEWAY)
    );
    assert!(!table.contains('{'), "no JSON in the status table:\n{table}");
}

#[test]
fn a_failed_run_says_what_failed_and_that_resume_comes_next() {
    let sandbox = Sandbox::new();
    let step = |id: &str, kind: &str, extra: Value| {
        let mut with = serde_json::json!({"path": sandbox.work(id).to_str().unwrap()});
        with.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::json!({"id": id, "kind": kind, "with": with})
    };
    let mut after = step("after", "local.file", serde_json::json!({"content": "a"}));
    after["after"] = serde_json::json!(["flaky"]);
    let plan = serde_json::json!({"name": "fails", "steps": [
        step("file", "local.file", serde_json::json!({"content": "f"})),
        step("flaky", "local.flaky", serde_json::json!({"failures": 1, "error": "permanent"})),
        after,
    ]});
    let path = sandbox.write_plan("plan.json", &plan);
    let path = path.to_str().unwrap();

    let failed = sandbox.run(HARNESS, &["run", path, "--json", "--auto-approve"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let report = document(&failed);
    assert_consistent(&report);
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(report["state"], "failed");
    assert_eq!(report["next"], format!("sluice resume {run_id}"));
    assert_eq!(
        (
            report["counts"]["created"].as_u64(),
            report["counts"]["failed"].as_u64(),
            report["counts"]["pending"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let flaky = steps(&report).iter().find(|s| s["id"] == "flaky").unwrap();
    assert_eq!(flaky["error"]["class"], "permanent");
    assert!(
        flaky["summary"].as_str().unwrap().contains("planned failure"),
        "{flaky}"
    );
    assert!(
        stderr(&failed).contains(&format!("`sluice status {run_id}` shows why")),
        "{}",
        stderr(&failed)
    );

    // The same failure, for people: the failed step and its reason are listed.
    let status = stdout(&sandbox.run(HARNESS, &["status", run_id]));
    assert!(
        status.contains("1 created, 0 updated, 0 unchanged, 1 failed, 1 not run"),
        "{status}"
    );

    // Resumed, the run ends succeeded, and the step created before the failure still counts.
    let resumed = sandbox.run(HARNESS, &["resume", run_id, "--json"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let report = document(&resumed);
    assert_consistent(&report);
    assert_eq!(report["state"], "succeeded");
    assert!(report["next"].is_null());
    assert_eq!(report["counts"]["created"], 3, "{report}");
    assert_eq!(report["sessions"], 2);
    // Nothing left to resume: still the run's document, and no third session.
    let again = sandbox.run(HARNESS, &["resume", run_id, "--json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(document(&again), report);
}

#[test]
fn an_emulator_run_lists_only_what_it_changed_and_its_json_stays_alone_on_stdout() {
    let sandbox = Sandbox::new();
    let plan = format!("{}/../plans/{EGRESS_PLAN}", env!("CARGO_MANIFEST_DIR"));
    let output = sandbox.run(HARNESS, &["run", &plan, "--emulator", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = document(&output);
    assert_eq!(report["state"], "succeeded");
    assert_consistent(&report);
    let err = stderr(&output);
    let world: Vec<&str> = err
        .lines()
        .skip_while(|l| !l.starts_with("in the emulated world ("))
        .collect();
    assert!(
        world.first().is_some_and(|l| l.ends_with("changed by this run:")),
        "{err}"
    );
    // The plan enables 5 APIs in sluice-demo, where the demo already had Org Policy enabled;
    // the owner's grants were there before the run.
    assert!(
        world.contains(&"  project          sluice-demo: ACTIVE (5 APIs enabled)"),
        "{world:#?}"
    );
    assert!(!world.iter().any(|l| l.contains("roles/owner")), "{world:#?}");
    assert!(
        !world
            .iter()
            .any(|l| l.contains("sluice-admin") || l.contains("sluice-armor")),
        "{world:#?}"
    );
    assert!(world.iter().any(|l| l.contains(GATEWAY)), "{world:#?}");
}
