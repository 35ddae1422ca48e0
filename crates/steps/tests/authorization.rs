//! Governance on an Agent Gateway: a Model Armor template check, an authorization extension
//! and an authorization policy — converging, then only reading; refusing a missing template
//! before any mutation (and a Model Armor API nobody enabled at once); and Google's limits on a
//! gateway's policies, met at run time, as permanent errors.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::ModelArmorTemplateConfig;
use sluice_engine::RunState;
use support::{assert_succeeded, config, outputs, World};

const REGION: &str = "us-central1";
const GATEWAY: &str = "projects/sluice-demo/locations/us-central1/agentGateways/egress";

/// The demo project with the gateway's, the policies' and Model Armor's APIs enabled, and a
/// Model Armor template `prompts` in it.
fn enabled() -> sluice_emulator::EmulatorConfig {
    let mut config = config();
    config.organizations[0].projects[0].enabled_services = [
        "networkservices.googleapis.com",
        "networksecurity.googleapis.com",
        "modelarmor.googleapis.com",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    config.model_armor_templates.push(ModelArmorTemplateConfig {
        project: "sluice-demo".into(),
        location: REGION.into(),
        template_id: "prompts".into(),
        labels: Default::default(),
        filter_config: None,
    });
    config
}

/// Template check → gateway → Model Armor extension → CONTENT_AUTHZ policy.
fn plan(template: &str) -> Value {
    json!({
        "name": "governed",
        "steps": [
            { "id": "template", "kind": "gcp.model_armor_template",
              "with": { "project": "sluice-demo", "region": REGION, "template_id": template } },
            { "id": "gateway", "kind": "gcp.agent_gateway", "with": { "project": "sluice-demo", "region": REGION,
              "gateway_id": "egress", "mode": "egress" }, "after": ["template"] },
            { "id": "extension", "kind": "gcp.authz_extension", "with": { "project": "sluice-demo",
              "region": REGION, "extension_id": "armor", "service": "model_armor",
              "request_template": "${steps.template.outputs.name}",
              "response_template": "${steps.template.outputs.name}" }, "after": ["gateway"] },
            { "id": "policy", "kind": "gcp.authz_policy", "with": { "project": "sluice-demo", "region": REGION,
              "policy_id": "content", "gateway": "${steps.gateway.outputs.name}", "profile": "CONTENT_AUTHZ",
              "action": "CUSTOM", "extensions": ["${steps.extension.outputs.name}"] } }
        ]
    })
}

async fn get(world: &World, path: &str) -> Value {
    let (status, body) = world.call(Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn error_of(summary: &sluice_engine::RunSummary, step: &str) -> String {
    let step = summary.steps.iter().find(|s| s.step_id == step).unwrap();
    step.error.as_ref().map(|e| e.message.clone()).unwrap_or_default()
}

#[tokio::test]
async fn a_governed_gateway_converges_then_only_reads() {
    let world = World::start(enabled()).await;
    let summary = world.run(&plan("prompts"), &[]).await;
    assert_succeeded(&summary);

    let template = format!("projects/sluice-demo/locations/{REGION}/templates/prompts");
    assert_eq!(outputs(&summary, "template")["name"], template);
    let extension = format!("projects/sluice-demo/locations/{REGION}/authzExtensions/armor");
    assert_eq!(outputs(&summary, "extension")["name"], extension);
    let policy = format!("projects/sluice-demo/locations/{REGION}/authzPolicies/content");
    assert_eq!(outputs(&summary, "policy")["name"], policy);

    let live = get(&world, &format!("v1/{extension}")).await;
    assert_eq!(live["service"], format!("modelarmor.{REGION}.rep.googleapis.com"));
    let settings: Value =
        serde_json::from_str(live["metadata"]["model_armor_settings"].as_str().unwrap()).unwrap();
    assert_eq!(
        settings,
        json!([{ "request_template_id": template, "response_template_id": template }])
    );
    let live = get(&world, &format!("v1/{policy}")).await;
    assert_eq!(live["target"]["resources"], json!([GATEWAY]));
    assert_eq!(live["policyProfile"], "CONTENT_AUTHZ");
    assert_eq!(
        live["customProvider"]["authzExtension"]["resources"],
        json!([extension])
    );

    let before = world.mutations().await.len();
    let again = world.run(&plan("prompts"), &[]).await;
    assert_succeeded(&again);
    let after = world.mutations().await;
    assert_eq!(
        after.len(),
        before,
        "the second run mutated: {:?}",
        &after[before..]
    );
}

#[tokio::test]
async fn a_drifted_extension_is_patched_by_update_mask() {
    let world = World::start(enabled()).await;
    assert_succeeded(&world.run(&plan("prompts"), &[]).await);
    let extension = format!("v1/projects/sluice-demo/locations/{REGION}/authzExtensions/armor");
    let (status, body) = world
        .call(
            Method::PATCH,
            &format!("{extension}?updateMask=failOpen"),
            Some(json!({ "failOpen": true })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let before = world.mutations().await.len();
    assert_succeeded(&world.run(&plan("prompts"), &[]).await);
    let patches: Vec<_> = world.mutations().await[before..]
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .cloned()
        .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(patches[0].1.contains("authzExtensions/armor"), "{patches:?}");
    assert_eq!(get(&world, &extension).await["failOpen"], false);
}

#[tokio::test]
async fn a_missing_template_fails_its_check_before_any_mutation() {
    let world = World::start(enabled()).await;
    let summary = world.run(&plan("absent"), &[]).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "template");
    assert!(
        error.contains("`absent`")
            && error.contains("sluice-demo")
            && error.contains(REGION)
            && error.contains("Create it"),
        "{error}"
    );
    assert_eq!(world.mutations().await, vec![]);
}

/// Model Armor not enabled and no step enabling it: the check fails at its first attempt, naming
/// the API, rather than waiting out the not-yet window.
#[tokio::test]
async fn a_template_check_where_model_armor_was_never_enabled_fails_at_once_naming_the_api() {
    let mut never = enabled();
    never.organizations[0].projects[0]
        .enabled_services
        .retain(|s| s != "modelarmor.googleapis.com");
    let world = World::start(never).await;
    let summary = world.run(&plan("prompts"), &[]).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "template");
    assert!(
        error.contains("modelarmor.googleapis.com") && error.contains("not enabled"),
        "{error}"
    );
    let record = summary.steps.iter().find(|s| s.step_id == "template").unwrap();
    assert_eq!(record.attempts, 1, "permanent, not retried: {record:?}");
    assert_eq!(world.mutations().await, vec![]);
}

/// A plan that would make five is refused at validation (`governance.rs`); here the first four
/// come from another plan, so only Google can tell.
#[tokio::test]
async fn a_fifth_policy_on_an_egress_gateway_is_refused_naming_the_limit() {
    let world = World::start(enabled()).await;
    let mut steps = vec![json!({ "id": "gateway", "kind": "gcp.agent_gateway", "with": {
        "project": "sluice-demo", "region": REGION, "gateway_id": "egress", "mode": "egress" } })];
    for i in 1..=4 {
        let after = if i == 1 {
            "gateway".to_string()
        } else {
            format!("p{}", i - 1)
        };
        steps.push(
            json!({ "id": format!("p{i}"), "kind": "gcp.authz_policy", "with": {
            "project": "sluice-demo", "region": REGION, "policy_id": format!("allow-{i}"),
            "gateway": GATEWAY, "action": "ALLOW" }, "after": [after] }),
        );
    }
    assert_succeeded(&world.run(&json!({ "name": "four", "steps": steps }), &[]).await);
    let fifth = json!({ "name": "fifth", "steps": [{ "id": "p5", "kind": "gcp.authz_policy", "with": {
        "project": "sluice-demo", "region": REGION, "policy_id": "allow-5", "gateway": GATEWAY, "action": "ALLOW" } }] });
    let summary = world.run(&fifth, &[]).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "p5");
    assert!(
        error.contains("at most 4") && error.contains("allow-5"),
        "{error}"
    );
    // Permanent: sent once, not retried.
    let refused: Vec<_> = world
        .mutations()
        .await
        .into_iter()
        .filter(|(m, p, s)| m == "POST" && p.ends_with("/authzPolicies") && *s == 400)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

/// As above: the first policy comes from another plan.
#[tokio::test]
async fn a_second_policy_on_an_ingress_gateway_is_refused() {
    let world = World::start(enabled()).await;
    let ingress = format!("projects/sluice-demo/locations/{REGION}/agentGateways/ingress");
    let plan = json!({ "name": "ingress", "steps": [
        { "id": "template", "kind": "gcp.model_armor_template",
          "with": { "project": "sluice-demo", "region": REGION, "template_id": "prompts" } },
        { "id": "gateway", "kind": "gcp.agent_gateway", "with": { "project": "sluice-demo", "region": REGION,
          "gateway_id": "ingress", "mode": "ingress" } },
        { "id": "extension", "kind": "gcp.authz_extension", "with": { "project": "sluice-demo",
          "region": REGION, "extension_id": "armor", "service": "model_armor",
          "request_template": "${steps.template.outputs.name}" } },
        { "id": "first", "kind": "gcp.authz_policy", "with": { "project": "sluice-demo", "region": REGION,
          "policy_id": "first", "gateway": "${steps.gateway.outputs.name}", "profile": "CONTENT_AUTHZ",
          "action": "CUSTOM", "extensions": ["${steps.extension.outputs.name}"] } }
    ]});
    assert_succeeded(&world.run(&plan, &[]).await);
    let extension = format!("projects/sluice-demo/locations/{REGION}/authzExtensions/armor");
    let second = json!({ "name": "second", "steps": [
        { "id": "second", "kind": "gcp.authz_policy", "with": { "project": "sluice-demo", "region": REGION,
          "policy_id": "second", "gateway": ingress, "profile": "CONTENT_AUTHZ",
          "action": "CUSTOM", "extensions": [extension] } }
    ]});
    let summary = world.run(&second, &[]).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "second");
    assert!(error.contains("single policy"), "{error}");
}

#[tokio::test]
async fn ours_with_another_profile_fails_saying_it_is_immutable() {
    let world = World::start(enabled()).await;
    assert_succeeded(&world.run(&plan("prompts"), &[]).await);
    let before = world.mutations().await.len();
    let other = json!({ "name": "other", "steps": [
        { "id": "policy", "kind": "gcp.authz_policy", "with": { "project": "sluice-demo", "region": REGION,
          "policy_id": "content", "gateway": GATEWAY, "profile": "REQUEST_AUTHZ", "action": "ALLOW" } }
    ]});
    let summary = world.run(&other, &[]).await;
    assert_eq!(summary.state, RunState::Failed);
    let error = error_of(&summary, "policy");
    assert!(
        error.contains("CONTENT_AUTHZ") && error.contains("delete the policy or choose another `policy_id`"),
        "{error}"
    );
    assert_eq!(world.mutations().await.len(), before, "nothing was sent");
}
