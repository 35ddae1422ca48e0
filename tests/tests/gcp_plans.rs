//! The shipped Google Cloud plans through the `sluice` binary against an emulator on loopback
//! (time scaled 1,000×): `sluice plan` on a fresh project lists every resource and mutates
//! nothing; `sluice run` converges; a second run makes no mutating call.

mod support;

use sluice_tests::{stderr, stdout, Sandbox};
use support::{converges_and_reruns_without_mutation, names, Cloud};

#[test]
fn egress_plan_converges_on_a_fresh_project() {
    let vars = ["project=sluice-demo", "pickle_gcs_uri=gs://agents/agent.pkl"];
    let creates = [
        "apis",
        "service_agents",
        "gateway_role",
        "gateway_role_binding",
        "egress_gateway",
    ];
    let cloud = converges_and_reruns_without_mutation("agent-gateway-egress.json", &vars, &creates);
    let state = cloud.state();
    assert_eq!(
        names(&state, "agentGateways"),
        ["projects/sluice-demo/locations/us-central1/agentGateways/agent-egress"]
    );
    let engines = state["reasoningEngines"].as_array().unwrap();
    assert_eq!(engines.len(), 1, "{engines:?}");
    assert_eq!(
        engines[0]["spec"]["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]["agentGateway"],
        "projects/sluice-demo/locations/us-central1/agentGateways/agent-egress"
    );
    assert_eq!(engines[0]["spec"]["identityType"], "AGENT_IDENTITY");
    let grants = state["projects"][0]["iamGrants"].as_array().unwrap();
    let holds = |role: &str, member: &str| grants.iter().any(|g| g["role"] == role && g["member"] == member);
    assert!(holds(
        "projects/sluice-demo/roles/agentGatewayUser",
        "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
    ));
    assert!(
        holds("roles/owner", "user:owner@example.com"),
        "unrelated bindings kept"
    );
}

#[test]
fn ingress_plan_converges_on_a_fresh_project() {
    let vars = ["project=sluice-demo", "pickle_gcs_uri=gs://agents/agent.pkl"];
    let creates = ["apis", "gateway_role", "ingress_gateway"];
    let cloud = converges_and_reruns_without_mutation("agent-gateway-ingress.json", &vars, &creates);
    let state = cloud.state();
    assert_eq!(
        state["agentGateways"][0]["googleManaged"]["governedAccessPath"],
        "CLIENT_TO_AGENT"
    );
    assert_eq!(state["reasoningEngines"].as_array().unwrap().len(), 1);
}

#[test]
fn both_plan_with_model_armor_in_another_project_converges() {
    let vars = [
        "project=sluice-demo",
        "pickle_gcs_uri=gs://agents/agent.pkl",
        "model_armor_template=agent-prompts",
        "model_armor_project=sluice-armor",
    ];
    let creates = [
        "egress_gateway",
        "ingress_gateway",
        "model_armor_callout",
        "model_armor_user",
    ];
    let cloud = converges_and_reruns_without_mutation("agent-gateway-both.json", &vars, &creates);
    let state = cloud.state();
    assert_eq!(state["agentGateways"].as_array().unwrap().len(), 2);
    let armor = state["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "sluice-armor")
        .unwrap();
    let members: Vec<&str> = armor["iamGrants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["role"] == "roles/modelarmor.user")
        .map(|g| g["member"].as_str().unwrap())
        .collect();
    assert_eq!(
        members,
        [
            "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com",
            "serviceAccount:service-100000000001@gcp-sa-dep.iam.gserviceaccount.com"
        ]
    );
}

#[test]
fn approved_gateways_policy_plan_converges() {
    let vars = [
        "project=sluice-demo",
        "organization=123456789012",
        "policy_parent=projects/sluice-demo",
        "egress_gateways=projects/sluice-demo/locations/us-central1/agentGateways/agent-egress",
    ];
    let creates = ["egress_constraint", "egress_policy"];
    let cloud = converges_and_reruns_without_mutation("approved-gateways-policy.json", &vars, &creates);
    let state = cloud.state();
    assert_eq!(
        state["orgPolicy"]["customConstraints"][0]["name"],
        "organizations/123456789012/customConstraints/custom.allowlistedEgressAgentGatewaysForAgentEngine"
    );
    assert_eq!(
        state["orgPolicy"]["policies"][0]["spec"]["rules"][0]["enforce"],
        true
    );
}

#[test]
fn model_armor_grants_are_skipped_when_the_templates_live_in_the_agent_project() {
    let cloud = Cloud::start_with(support::config_with_model_armor_in_the_agent_project());
    let sandbox = Sandbox::new();
    let vars = [
        "project=sluice-demo",
        "pickle_gcs_uri=gs://agents/agent.pkl",
        "model_armor_template=agent-prompts",
        "model_armor_project=sluice-demo",
    ];
    let preview = cloud.sluice(&sandbox, "plan", "agent-gateway-both.json", &vars);
    assert!(preview.status.success(), "{}", stderr(&preview));
    let skipped = ["model_armor_apis", "model_armor_callout", "model_armor_user"];
    support::assert_listed(&stdout(&preview), "/", &skipped);
}

#[test]
fn an_operator_resumes_a_refused_deploy_once_the_gateway_is_approved() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let admin = Sandbox::new();
    let allowlist = |gateways: &str| {
        [
            "project=sluice-demo".to_string(),
            "organization=123456789012".to_string(),
            "policy_parent=projects/sluice-demo".to_string(),
            format!("egress_gateways={gateways}"),
        ]
    };
    // The organisation allows only another project's gateway, and the policy is in force.
    let other = allowlist("projects/other/locations/us-central1/agentGateways/approved");
    let other: Vec<&str> = other.iter().map(String::as_str).collect();
    let output = cloud.sluice(&admin, "run", "approved-gateways-policy.json", &other);
    assert!(output.status.success(), "{}", stderr(&output));
    cloud.emulator.advance(std::time::Duration::from_secs(901));

    let vars = ["project=sluice-demo", "pickle_gcs_uri=gs://agents/agent.pkl"];
    let refused = cloud.sluice(&sandbox, "run", "agent-gateway-egress.json", &vars);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let text = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        text.contains("allowlist"),
        "the refusal names the allowlist: {text}"
    );
    assert!(cloud.state()["reasoningEngines"].as_array().unwrap().is_empty());
    let run = text
        .split("sluice resume ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the failure says how to resume")
        .to_string();

    // The admin approves our gateway; once that is in force the operator resumes.
    let ours = allowlist("projects/sluice-demo/locations/us-central1/agentGateways/agent-egress");
    let ours: Vec<&str> = ours.iter().map(String::as_str).collect();
    let output = cloud.sluice(&admin, "run", "approved-gateways-policy.json", &ours);
    assert!(output.status.success(), "{}", stderr(&output));
    cloud.emulator.advance(std::time::Duration::from_secs(901));
    let resumed = cloud.resume(&sandbox, &run);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(cloud.state()["reasoningEngines"].as_array().unwrap().len(), 1);
}

/// The policy plan after the egress plan, on a project where nobody enabled Org Policy: the
/// plan enables it itself, and converges.
#[test]
fn the_policy_plan_enables_org_policy_on_a_fresh_project_and_converges() {
    let mut config = support::config();
    config.organizations[0].projects[0].enabled_services.clear();
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let egress = ["project=sluice-demo", "pickle_gcs_uri=gs://agents/agent.pkl"];
    let output = cloud.sluice(&sandbox, "run", "agent-gateway-egress.json", &egress);
    assert!(output.status.success(), "{}", stderr(&output));
    let vars = [
        "project=sluice-demo",
        "organization=123456789012",
        "policy_parent=projects/sluice-demo",
        "egress_gateways=projects/sluice-demo/locations/us-central1/agentGateways/agent-egress",
    ];
    let output = cloud.sluice(&sandbox, "run", "approved-gateways-policy.json", &vars);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let state = cloud.state();
    assert_eq!(
        state["projects"][0]["services"]["orgpolicy.googleapis.com"]["usable"],
        true
    );
    assert_eq!(state["orgPolicy"]["policies"].as_array().unwrap().len(), 1);
}

/// A step calling an API that nobody enabled fails at its first attempt, naming the API and
/// the fix, instead of waiting out its not-yet window.
#[test]
fn a_call_to_an_api_nobody_enabled_fails_at_once_naming_it() {
    let mut config = support::config();
    config.organizations[0].projects[0].enabled_services.clear();
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let plan = serde_json::json!({"name": "policy-only", "steps": [{"id": "policy", "kind": "gcp.org_policy",
        "with": {"parent": "projects/sluice-demo", "constraint": "custom.egress"}}]});
    let path = sandbox.write_plan("policy-only.json", &plan);
    let scale = support::SCALE.to_string();
    let output = sandbox.run(
        support::HARNESS,
        &[
            "run",
            "--auto-approve",
            path.to_str().unwrap(),
            "--endpoint",
            cloud.emulator.base_url.as_str(),
            "--access-token",
            "test-token",
            "--time-scale",
            scale.as_str(),
        ],
    );
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("orgpolicy.googleapis.com is not enabled in projects/100000000001")
            && text.contains("gcloud services enable orgpolicy.googleapis.com --project 100000000001"),
        "{text}"
    );
    assert!(!text.contains("attempt 2"), "failed at its first attempt: {text}");
    let calls = cloud.emulator.requests();
    let policy_calls = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with("/v2/"))
        .count();
    assert!(policy_calls <= 3, "no waiting out a window: {calls}");
}
