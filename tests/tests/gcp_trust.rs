//! A run that says it succeeded must be true, through the `sluice` binary against an emulator
//! on loopback: an operation left behind by a step timeout is settled before anything else,
//! and continuing a run re-observes (and repairs) the steps that had already succeeded.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_tests::{stderr, stdout, Sandbox};
use support::{names, run_ids, shipped_plan, Cloud, EGRESS_VARS};

const EGRESS: &str = "agent-gateway-egress.json";
const GATEWAY: &str = "projects/sluice-demo/locations/us-central1/agentGateways/agent-egress";
const ROLE: &str = "projects/sluice-demo/roles/agentGatewayUser";
const AGENT_RE: &str = "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com";

/// The shipped egress plan with `timeout` on its `agent` step, written into `sandbox`.
fn egress_with_agent_timeout(sandbox: &Sandbox, timeout: &str) -> std::path::PathBuf {
    let mut plan: Value =
        serde_json::from_str(&std::fs::read_to_string(shipped_plan(EGRESS)).unwrap()).unwrap();
    let agent = plan["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["id"] == "agent")
        .unwrap();
    agent["timeout"] = json!(timeout);
    sandbox.write_plan("egress-agent-timeout.json", &plan)
}

fn set_faults(cloud: &Cloud, faults: Value) {
    let (status, body) = cloud.call(Method::POST, "_emulator/faults", Some(faults));
    assert_eq!(status, 200, "{body}");
}

fn engines(cloud: &Cloud) -> Vec<Value> {
    cloud.state()["reasoningEngines"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Exactly one engine, bound to the egress gateway, with agent identity, and registered.
fn assert_one_engine_bound_and_registered(cloud: &Cloud, context: &str) {
    let state = cloud.state();
    let engines = state["reasoningEngines"].as_array().unwrap();
    assert_eq!(engines.len(), 1, "{context}: exactly one engine: {engines:?}");
    let engine = &engines[0];
    assert_eq!(
        engine["spec"]["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]["agentGateway"],
        GATEWAY,
        "{context}: bound to the gateway"
    );
    assert_eq!(engine["spec"]["identityType"], "AGENT_IDENTITY", "{context}");
    let name = engine["name"].as_str().unwrap();
    let registry = &state["agentRegistry"];
    let registered = registry["runtimeAgents"]
        .as_array()
        .unwrap()
        .iter()
        .chain(registry["services"].as_array().unwrap())
        .any(|entry| entry.to_string().contains(name));
    assert!(registered, "{context}: {name} is registered: {registry}");
}

#[test]
fn a_deploy_failing_after_its_step_timed_out_never_yields_a_success_without_an_engine() {
    // Deploys never finish on their own here: the test moves emulated time between runs.
    let deploy = 100_000.0;
    let mut config = support::config();
    config.delays.engine_operation = deploy;
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let plan = egress_with_agent_timeout(&sandbox, "2s");
    let run = || {
        cloud
            .command_at(&sandbox, "run", &plan, &EGRESS_VARS)
            .output()
            .unwrap()
    };

    // The first deploy is bound to fail, but only once its operation finishes.
    set_faults(
        &cloud,
        json!({ "aiplatform.googleapis.com": { "operation_error": 1.0 } }),
    );
    let first = run();
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("timeout") || stderr(&first).contains("timeout"),
        "the agent step timed out: {}{}",
        stdout(&first),
        stderr(&first)
    );
    assert_eq!(
        engines(&cloud).len(),
        1,
        "the doomed engine is still being created"
    );
    set_faults(&cloud, json!({}));

    // Each later run is followed by the deploys in flight finishing. A run that exits 0 must
    // leave an engine that exists once they have.
    for attempt in 2..=5 {
        let output = run();
        cloud.emulator.advance(Duration::from_secs_f64(deploy + 1.0));
        if output.status.success() {
            assert_one_engine_bound_and_registered(&cloud, &format!("run {attempt} exited 0"));
            return;
        }
        assert_eq!(
            output.status.code(),
            Some(1),
            "run {attempt}: {}",
            stderr(&output)
        );
    }
    panic!("no run succeeded once the deploys could finish");
}

/// Runs the admin's allowlist plan with `gateways` and lets the policy come into force.
fn allowlist(cloud: &Cloud, admin: &Sandbox, gateways: &str) {
    let vars = [
        "project=sluice-demo".to_string(),
        "organization=123456789012".to_string(),
        "policy_parent=projects/sluice-demo".to_string(),
        format!("egress_gateways={gateways}"),
    ];
    let vars: Vec<&str> = vars.iter().map(String::as_str).collect();
    let output = cloud.sluice(admin, "run", "approved-gateways-policy.json", &vars);
    assert!(output.status.success(), "{}", stderr(&output));
    cloud.emulator.advance(Duration::from_secs(901));
}

/// The egress plan refused at its deploy by the organisation's allowlist: the run id.
fn refused_at_the_deploy(cloud: &Cloud, sandbox: &Sandbox, admin: &Sandbox) -> String {
    allowlist(
        cloud,
        admin,
        "projects/other/locations/us-central1/agentGateways/approved",
    );
    let refused = cloud.sluice(sandbox, "run", EGRESS, &EGRESS_VARS);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(cloud.holds("sluice-demo", ROLE, AGENT_RE), "the grant was made");
    assert!(engines(cloud).is_empty());
    let runs = run_ids(sandbox);
    assert_eq!(runs.len(), 1);
    runs[0].clone()
}

/// Removes `member` from `role` in the project's IAM policy, as someone else's tool would.
fn revoke(cloud: &Cloud, role: &str, member: &str) {
    let (status, mut policy) = cloud.call(
        Method::POST,
        "v1/projects/sluice-demo:getIamPolicy",
        Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
    );
    assert_eq!(status, 200, "{policy}");
    for binding in policy["bindings"].as_array_mut().unwrap() {
        if binding["role"] == role {
            binding["members"].as_array_mut().unwrap().retain(|m| m != member);
        }
    }
    let (status, body) = cloud.call(
        Method::POST,
        "v1/projects/sluice-demo:setIamPolicy",
        Some(json!({ "policy": policy })),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!cloud.holds("sluice-demo", role, member));
}

#[test]
fn a_resumed_run_repairs_a_grant_removed_since_it_succeeded() {
    let cloud = Cloud::start();
    let (sandbox, admin) = (Sandbox::new(), Sandbox::new());
    let run = refused_at_the_deploy(&cloud, &sandbox, &admin);

    // Meanwhile the grant disappears, and the organisation approves our gateway.
    revoke(&cloud, ROLE, AGENT_RE);
    allowlist(&cloud, &admin, GATEWAY);
    let resumed = cloud.resume(&sandbox, &run);
    assert!(
        resumed.status.success(),
        "{}{}",
        stdout(&resumed),
        stderr(&resumed)
    );
    assert!(
        cloud.holds("sluice-demo", ROLE, AGENT_RE),
        "the grant was made again"
    );
    assert!(
        cloud.holds("sluice-demo", "roles/owner", "user:owner@example.com"),
        "other bindings kept"
    );
    assert_eq!(names(&cloud.state(), "agentGateways"), [GATEWAY], "one gateway");
    assert_one_engine_bound_and_registered(&cloud, "after the resume");
}

#[test]
fn a_resume_without_drift_makes_no_mutation_for_steps_that_succeeded() {
    let cloud = Cloud::start();
    let (sandbox, admin) = (Sandbox::new(), Sandbox::new());
    let run = refused_at_the_deploy(&cloud, &sandbox, &admin);
    let before = cloud.mutations().len();

    let resumed = cloud.resume(&sandbox, &run);
    assert_eq!(resumed.status.code(), Some(1), "{}", stderr(&resumed));
    let made: Vec<String> = cloud.mutations()[before..].to_vec();
    assert!(
        made.iter().all(|m| m.ends_with("/reasoningEngines")),
        "only the refused deploy was sent again: {made:?}"
    );
    assert!(!made.is_empty(), "the deploy was tried again: {made:?}");
}
