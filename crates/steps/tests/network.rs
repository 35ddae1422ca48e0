//! The network half of the seed: Agent Gateway, a reasoning engine bound to it, and its
//! registration in Agent Registry — converging on a fresh project, refusing what Google
//! cannot do before doing anything, and never deploying twice.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_engine::RunState;
use support::{assert_succeeded, config, outputs, World};

const REGION: &str = "us-central1";
const APIS: [&str; 5] = [
    "aiplatform.googleapis.com",
    "networkservices.googleapis.com",
    "agentregistry.googleapis.com",
    "iam.googleapis.com",
    "cloudresourcemanager.googleapis.com",
];

/// APIs → project → service agents → custom role → grant → egress gateway → engine →
/// registration.
fn plan(wait_for_automatic: &str) -> Value {
    json!({
        "name": "network",
        "vars": { "project": { "type": "string", "required": true } },
        "steps": [
            { "id": "apis", "kind": "gcp.services", "with": { "project": "${vars.project}", "services": APIS } },
            { "id": "project", "kind": "gcp.project", "with": { "project": "${vars.project}" }, "after": ["apis"] },
            { "id": "identity", "kind": "gcp.service_identity",
              "with": { "project": "${vars.project}", "project_number": "${steps.project.outputs.project_number}" } },
            { "id": "role", "kind": "gcp.custom_role", "with": { "project": "${vars.project}", "role_id": "agentGatewayUser" },
              "after": ["apis"] },
            { "id": "grant", "kind": "gcp.iam_binding", "with": { "project": "${vars.project}",
              "role": "${steps.role.outputs.name}", "members": ["${steps.identity.outputs.reasoning_engine_agent}"] } },
            { "id": "gateway", "kind": "gcp.agent_gateway", "with": { "project": "${vars.project}", "region": REGION,
              "gateway_id": "egress", "mode": "egress" }, "after": ["apis"] },
            { "id": "engine", "kind": "gcp.reasoning_engine", "with": { "project": "${vars.project}", "region": REGION,
              "display_name": "demo-agent", "egress_gateway": "${steps.gateway.outputs.name}",
              "package": { "pickle_object_gcs_uri": "gs://demo/agent.pkl",
                           "dependency_files_gcs_uri": "gs://demo/deps.tar.gz",
                           "requirements_gcs_uri": "gs://demo/requirements.txt", "python_version": "3.12" } },
              "after": ["grant"] },
            { "id": "registration", "kind": "gcp.agent_registration", "with": { "project": "${vars.project}",
              "region": REGION, "engine": "${steps.engine.outputs.name}", "service_id": "demo-agent",
              "display_name": "Demo agent", "wait_for_automatic": wait_for_automatic } }
        ]
    })
}

fn project() -> [(&'static str, Value); 1] {
    [("project", json!("sluice-demo"))]
}

/// A config whose project has every API of the plan usable from the start.
fn enabled() -> sluice_emulator::EmulatorConfig {
    let mut config = config();
    config.organizations[0].projects[0].enabled_services = APIS.iter().map(|s| s.to_string()).collect();
    config
}

async fn engines(world: &World) -> Vec<Value> {
    let (status, body) = world
        .call(
            Method::GET,
            &format!("v1/projects/sluice-demo/locations/{REGION}/reasoningEngines"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["reasoningEngines"].as_array().cloned().unwrap_or_default()
}

async fn gateways(world: &World) -> Vec<Value> {
    let (status, body) = world
        .call(
            Method::GET,
            &format!("v1/projects/sluice-demo/locations/{REGION}/agentGateways"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["agentGateways"].as_array().cloned().unwrap_or_default()
}

/// The POSTs and PATCHes to reasoning engines (deploys and updates) in the log.
async fn engine_writes(world: &World) -> Vec<(String, String, u64)> {
    world
        .mutations()
        .await
        .into_iter()
        .filter(|(m, p, _)| {
            (m == "POST" || m == "PATCH") && p.contains("/reasoningEngines") && !p.contains("/operations/")
        })
        .collect()
}

fn error_of(summary: &sluice_engine::RunSummary, step: &str) -> String {
    let step = summary.steps.iter().find(|s| s.step_id == step).unwrap();
    step.error.as_ref().map(|e| e.message.clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_fresh_project_converges_adopts_the_automatic_registration_then_only_reads() {
    let world = World::start(config()).await;
    let summary = world.run(&plan("5m"), &project()).await;
    assert_succeeded(&summary);

    let gateway = outputs(&summary, "gateway");
    assert_eq!(
        gateway["name"],
        format!("projects/sluice-demo/locations/{REGION}/agentGateways/egress")
    );
    assert_eq!(gateway["adopted"], false);
    let listed = gateways(&world).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["googleManaged"]["governedAccessPath"],
        "AGENT_TO_ANYWHERE"
    );
    assert_eq!(
        listed[0]["registries"],
        json!([format!(
            "//agentregistry.googleapis.com/projects/sluice-demo/locations/{REGION}"
        )])
    );

    let engine = outputs(&summary, "engine");
    let name = engine["name"].as_str().unwrap();
    assert!(
        name.starts_with(&format!(
            "projects/100000000001/locations/{REGION}/reasoningEngines/"
        )),
        "{name}"
    );
    assert!(engine["effective_identity"]
        .as_str()
        .unwrap()
        .starts_with("principal://agents.global.proj-100000000001"));
    let deployed = engines(&world).await;
    assert_eq!(deployed.len(), 1, "exactly one engine: {deployed:?}");
    let spec = &deployed[0]["spec"];
    assert_eq!(spec["identityType"], "AGENT_IDENTITY");
    assert_eq!(spec["packageSpec"]["pickleObjectGcsUri"], "gs://demo/agent.pkl");
    assert_eq!(spec["packageSpec"]["pythonVersion"], "3.12");
    assert_eq!(
        spec["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]["agentGateway"],
        gateway["name"]
    );
    assert!(deployed[0]["labels"]["sluice-key"].is_string());

    let registration = outputs(&summary, "registration");
    assert_eq!(registration["source"], "automatic", "{registration:?}");
    let (status, _) = world
        .call(
            Method::GET,
            &format!("v1/projects/sluice-demo/locations/{REGION}/services/demo-agent"),
            None,
        )
        .await;
    assert_eq!(status, 404, "no fallback service was needed");

    let before = world.mutations().await.len();
    let again = world.run(&plan("5m"), &project()).await;
    assert_succeeded(&again);
    let after = world.mutations().await;
    assert_eq!(
        after.len(),
        before,
        "a second run only reads: {:?}",
        &after[before..]
    );
    assert_eq!(outputs(&again, "engine")["name"], name);
    assert_eq!(outputs(&again, "registration")["source"], "automatic");
}

#[tokio::test]
async fn without_waiting_for_the_automatic_registration_a_service_is_created() {
    let world = World::start(enabled()).await;
    let summary = world.run(&plan("0s"), &project()).await;
    assert_succeeded(&summary);
    let registration = outputs(&summary, "registration");
    assert_eq!(registration["source"], "service", "{registration:?}");
    assert_eq!(
        registration["agent"],
        format!("projects/sluice-demo/locations/{REGION}/agents/demo-agent")
    );
    let (status, service) = world
        .call(
            Method::GET,
            &format!("v1/projects/sluice-demo/locations/{REGION}/services/demo-agent"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{service}");
    assert_eq!(service["agentSpec"]["type"], "NO_SPEC");
    assert_eq!(service["displayName"], "Demo agent");
    assert_eq!(engines(&world).await.len(), 1);

    let before = world.mutations().await.len();
    let again = world.run(&plan("0s"), &project()).await;
    assert_succeeded(&again);
    let after = world.mutations().await;
    assert_eq!(
        after.len(),
        before,
        "a second run only reads: {:?}",
        &after[before..]
    );
}

#[tokio::test]
async fn a_deploy_before_the_grant_propagates_is_retried_into_one_engine() {
    let mut config = enabled();
    // Longer than two deploys: the first two deploys fail with PERMISSION_DENIED.
    config.delays.iam_propagation = 700.0;
    let world = World::start(config).await;
    let summary = world.run(&plan("5m"), &project()).await;
    assert_succeeded(&summary);
    let deploys = engine_writes(&world).await;
    assert!(
        deploys.len() >= 2,
        "the first deploy failed and was retried: {deploys:?}"
    );
    let deployed = engines(&world).await;
    assert_eq!(deployed.len(), 1, "exactly one engine: {deployed:?}");
    assert_eq!(outputs(&summary, "engine")["name"], deployed[0]["name"]);
}

/// Just the gateway step, with `adopt_existing` as given.
fn gateway_plan(adopt: bool) -> Value {
    json!({
        "name": "gateway",
        "steps": [
            { "id": "gateway", "kind": "gcp.agent_gateway", "with": { "project": "sluice-demo", "region": REGION,
              "gateway_id": "egress", "mode": "egress", "adopt_existing": adopt } }
        ]
    })
}

#[tokio::test]
async fn another_gateway_of_the_same_mode_is_refused_or_adopted_never_duplicated() {
    let world = World::start(enabled()).await;
    let (status, body) = world
        .call(
            Method::POST,
            &format!("v1/projects/sluice-demo/locations/{REGION}/agentGateways?agentGatewayId=existing"),
            Some(json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let creates = |log: Vec<(String, String, u64)>| {
        log.into_iter()
            .filter(|(m, p, _)| m == "POST" && p.ends_with("/agentGateways"))
            .count()
    };

    let refused = world.run(&gateway_plan(false), &[]).await;
    assert_eq!(refused.state, RunState::Failed);
    let error = error_of(&refused, "gateway");
    assert!(error.contains("agentGateways/existing"), "{error}");
    assert!(error.contains("adopt_existing"), "{error}");
    assert_eq!(
        creates(world.requests().await),
        1,
        "only the test's own create was sent"
    );

    let adopted = world.run(&gateway_plan(true), &[]).await;
    assert_succeeded(&adopted);
    let out = outputs(&adopted, "gateway");
    assert_eq!(out["adopted"], true);
    assert_eq!(
        out["name"],
        format!("projects/sluice-demo/locations/{REGION}/agentGateways/existing")
    );
    assert_eq!(creates(world.requests().await), 1, "adopted, not created");
    assert_eq!(gateways(&world).await.len(), 1);
}

#[tokio::test]
async fn a_bound_engine_is_never_rebound() {
    let world = World::start(enabled()).await;
    let first = world.run(&plan("0s"), &project()).await;
    assert_succeeded(&first);
    let writes = engine_writes(&world).await.len();

    let rebind = json!({
        "name": "rebind",
        "steps": [
            { "id": "engine", "kind": "gcp.reasoning_engine", "with": { "project": "sluice-demo", "region": REGION,
              "display_name": "demo-agent",
              "egress_gateway": format!("projects/sluice-demo/locations/{REGION}/agentGateways/other"),
              "package": { "pickle_object_gcs_uri": "gs://demo/agent.pkl" } } }
        ]
    });
    let summary = world.run(&rebind, &[]).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "engine");
    assert!(error.contains("cannot unbind"), "{error}");
    assert!(error.contains("agentGateways/other"), "{error}");
    assert!(error.contains("display_name"), "{error}");
    assert_eq!(
        engine_writes(&world).await.len(),
        writes,
        "nothing was sent to reasoningEngines"
    );
    assert_eq!(engines(&world).await.len(), 1);
}

#[tokio::test]
async fn a_lost_deploy_answer_never_makes_a_second_engine() {
    // Answers of Vertex AI calls are lost at random (seeded); find a seed whose run loses the
    // answer of a deploy, then check that run and the next leave exactly one engine.
    for seed in 1..=12u64 {
        let mut config = enabled();
        config.seed = seed;
        config.delays.iam_propagation = 0.0;
        config.faults.insert(
            "aiplatform.googleapis.com".into(),
            sluice_emulator::config::FaultConfig {
                answer_lost: 0.4,
                ..Default::default()
            },
        );
        let world = World::start(config).await;
        let _ = world.run(&plan("0s"), &project()).await;
        let lost = world
            .requests()
            .await
            .into_iter()
            .any(|(m, p, s)| m == "POST" && p.ends_with("/reasoningEngines") && s == 0);
        if !lost {
            continue;
        }
        let cleared = world
            .http
            .post(format!("{}/_emulator/faults", world.emulator.base_url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(cleared.status().is_success());
        let again = world.run(&plan("0s"), &project()).await;
        assert_succeeded(&again);
        let deployed = engines(&world).await;
        assert_eq!(
            deployed.len(),
            1,
            "exactly one engine after a lost answer: {deployed:?}"
        );
        let deploys: Vec<_> = engine_writes(&world)
            .await
            .into_iter()
            .filter(|(m, _, _)| m == "POST")
            .collect();
        assert_eq!(
            deploys.len(),
            1,
            "the lost deploy was never sent again: {deploys:?}"
        );
        return;
    }
    panic!("no seed lost a deploy answer");
}

#[tokio::test]
async fn a_gateway_outside_the_organisation_allowlist_is_a_permanent_error() {
    let mut config = enabled();
    config.organizations[0].projects[0]
        .enabled_services
        .push("orgpolicy.googleapis.com".into());
    config.delays.policy_propagation = 0.0;
    let world = World::start(config).await;
    let org = "123456789012";
    let (status, body) = world
        .call(
            Method::POST,
            &format!("v2/organizations/{org}/customConstraints"),
            Some(json!({
                "name": format!("organizations/{org}/customConstraints/custom.approvedGateways"),
                "resourceTypes": ["aiplatform.googleapis.com/ReasoningEngine"],
                "methodTypes": ["CREATE", "UPDATE"],
                "condition": "has(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway) && resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway in ['projects/p/locations/us-central1/agentGateways/g',]",
                "actionType": "ALLOW",
                "displayName": "Approved gateways",
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world
        .call(
            Method::POST,
            "v2/projects/sluice-demo/policies",
            Some(
                json!({ "name": "projects/sluice-demo/policies/custom.approvedGateways",
                         "spec": { "rules": [{ "enforce": true }] } }),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let summary = world.run(&plan("0s"), &project()).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "engine");
    assert!(error.contains("allowlist"), "{error}");
    assert!(
        error.contains("customConstraints/custom.approvedGateways"),
        "{error}"
    );
    assert!(engines(&world).await.is_empty());
    let refused = engine_writes(&world).await;
    assert_eq!(refused.len(), 1, "refused once, not retried: {refused:?}");
}

#[tokio::test]
async fn a_source_directory_is_sent_inline_as_a_tar_gz() {
    let world = World::start(enabled()).await;
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("agent.py"), "root_agent = object()\n").unwrap();
    std::fs::write(source.path().join("requirements.txt"), "google-adk\n").unwrap();
    let plan = json!({
        "name": "source",
        "steps": [
            { "id": "engine", "kind": "gcp.reasoning_engine", "with": { "project": "sluice-demo", "region": REGION,
              "display_name": "from-source", "source_dir": source.path().display().to_string(),
              "python_version": "3.12", "entrypoint_module": "agent", "entrypoint_object": "root_agent",
              "requirements_file": "requirements.txt", "labels": { "team": "agents" } } }
        ]
    });
    let summary = world.run(&plan, &[]).await;
    assert_succeeded(&summary);
    let deployed = engines(&world).await;
    assert_eq!(deployed.len(), 1);
    let spec = &deployed[0]["spec"]["sourceCodeSpec"];
    assert!(!spec["inlineSource"]["sourceArchive"].as_str().unwrap().is_empty());
    assert_eq!(spec["pythonSpec"]["entrypointModule"], "agent");
    assert_eq!(spec["pythonSpec"]["version"], "3.12");
    assert_eq!(deployed[0]["labels"]["team"], "agents");
}
