//! Each late-consistency case converges without fixed sleeps: an API enabled but not usable
//! yet, a service agent that is not yet usable as an IAM member, and (in network.rs) a grant
//! not yet propagated when the deploy starts. The emulator's request log shows the case was met.

mod support;

use serde_json::{json, Value};
use support::{assert_succeeded, config, World};

fn plan() -> Value {
    json!({
        "name": "late",
        "steps": [
            { "id": "apis", "kind": "gcp.services", "with": { "project": "sluice-demo",
              "services": ["aiplatform.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com"] } },
            { "id": "project", "kind": "gcp.project", "with": { "project": "sluice-demo" } },
            { "id": "identity", "kind": "gcp.service_identity", "after": ["apis"],
              "with": { "project": "sluice-demo", "project_number": "${steps.project.outputs.project_number}" } },
            { "id": "role", "kind": "gcp.custom_role", "after": ["apis"],
              "with": { "project": "sluice-demo", "role_id": "agentGatewayUser" } },
            { "id": "grant", "kind": "gcp.iam_binding", "with": { "project": "sluice-demo",
              "role": "${steps.role.outputs.name}", "members": ["${steps.identity.outputs.reasoning_engine_agent}"] } }
        ]
    })
}

#[tokio::test]
async fn an_api_that_is_enabled_but_not_usable_yet_is_waited_for() {
    let mut config = config();
    // Ten emulated minutes from enabling to usable.
    config.delays.service_usable = 600.0;
    let world = World::start(config).await;
    let summary = world.run(&plan(), &[]).await;
    assert_succeeded(&summary);
    let disabled = world
        .requests()
        .await
        .into_iter()
        .filter(|(_, path, status)| *status == 403 && path.contains("/roles/"))
        .count();
    assert!(disabled > 0, "the role step met SERVICE_DISABLED first");
    let (status, _) = world
        .call(
            reqwest::Method::GET,
            "v1/projects/sluice-demo/roles/agentGatewayUser",
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_service_agent_not_yet_usable_as_a_member_is_retried_until_it_is() {
    let mut config = config();
    config.delays.service_agent = 300.0;
    config.delays.service_usable = 0.0;
    let world = World::start(config).await;
    let summary = world.run(&plan(), &[]).await;
    assert_succeeded(&summary);
    let sets: Vec<u64> = world
        .requests()
        .await
        .into_iter()
        .filter(|(_, path, _)| path.ends_with(":setIamPolicy"))
        .map(|(_, _, status)| status)
        .collect();
    assert!(
        sets.first() == Some(&400),
        "the first write met \"does not exist\": {sets:?}"
    );
    assert_eq!(sets.last(), Some(&200), "{sets:?}");
    let (_, policy) = world
        .call(
            reqwest::Method::POST,
            "v3/projects/sluice-demo:getIamPolicy",
            Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
        )
        .await;
    let granted = policy["bindings"].as_array().unwrap().iter().any(|b| {
        b["role"] == "projects/sluice-demo/roles/agentGatewayUser"
            && b["members"][0]
                == "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
    });
    assert!(granted, "{policy}");
}
