//! Org Policy v2: custom constraints, policies and the effective policy, over HTTP.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::{FolderConfig, ProjectConfig};
use sluice_emulator::EmulatorConfig;
use support::Client;

const ORG: &str = "123456789012";
const CONDITION: &str = "has(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway) && resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway in ['projects/p/locations/us-central1/agentGateways/g',]";

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0].enabled_services = vec!["orgpolicy.googleapis.com".into()];
    config.organizations[0].folders = vec![FolderConfig {
        id: "555".into(),
        projects: vec![ProjectConfig {
            id: "in-folder".into(),
            number: 100_000_000_002,
            enabled_services: vec!["orgpolicy.googleapis.com".into()],
        }],
    }];
    Client::start_with(config).await
}

fn constraint(id: &str, condition: &str) -> Value {
    json!({
        "name": format!("organizations/{ORG}/customConstraints/{id}"),
        "resourceTypes": ["aiplatform.googleapis.com/ReasoningEngine"],
        "methodTypes": ["CREATE", "UPDATE"],
        "condition": condition,
        "actionType": "ALLOW",
        "displayName": "Approved gateways",
    })
}

async fn create_constraint(client: &Client, id: &str) -> (u16, Value) {
    client
        .call(
            Method::POST,
            &format!("v2/organizations/{ORG}/customConstraints"),
            Some(constraint(id, CONDITION)),
        )
        .await
}

fn enforced(name: &str) -> Value {
    json!({ "name": name, "spec": { "rules": [{ "enforce": true }] } })
}

#[tokio::test]
async fn custom_constraint_lifecycle() {
    let (_handle, client) = start().await;
    let path = format!("v2/organizations/{ORG}/customConstraints/custom.egress");
    let (status, _) = client.call(Method::GET, &path, None).await;
    assert_eq!(status, 404);

    let (status, body) = create_constraint(&client, "custom.egress").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["actionType"], "ALLOW");
    assert!(body["updateTime"].as_str().unwrap().ends_with('Z'));
    let (status, body) = create_constraint(&client, "custom.egress").await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );

    let (status, body) = client.call(Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["condition"], CONDITION);

    // PATCH overwrites everything.
    let mut replaced = constraint("custom.egress", "true");
    replaced["actionType"] = json!("DENY");
    let (status, body) = client.call(Method::PATCH, &path, Some(replaced)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["condition"], "true");
    assert_eq!(body["actionType"], "DENY");
    assert!(body.get("displayName").is_some());

    let (status, _) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200);
    let (status, _) = client.call(Method::GET, &path, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn custom_constraint_validation() {
    let (_handle, client) = start().await;
    let parent = format!("v2/organizations/{ORG}/customConstraints");
    let (status, body) = client
        .call(
            Method::POST,
            &parent,
            Some(constraint("custom.bad", "resource.spec. &&")),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ERROR: <input>"),
        "{body}"
    );

    let long = format!("'{}' == ''", "x".repeat(1000));
    let (status, _) = client
        .call(Method::POST, &parent, Some(constraint("custom.long", &long)))
        .await;
    assert_eq!(status, 400);

    let (status, _) = client
        .call(Method::POST, &parent, Some(constraint("notcustom", "true")))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn custom_constraints_list_in_pages() {
    let (_handle, client) = start().await;
    for id in ["custom.a", "custom.b", "custom.c"] {
        assert_eq!(create_constraint(&client, id).await.0, 200);
    }
    let parent = format!("v2/organizations/{ORG}/customConstraints");
    let (status, page) = client
        .call(Method::GET, &format!("{parent}?pageSize=2"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["customConstraints"].as_array().unwrap().len(), 2);
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, page) = client
        .call(
            Method::GET,
            &format!("{parent}?pageSize=2&pageToken={token}"),
            None,
        )
        .await;
    let rest = page["customConstraints"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0]["name"].as_str().unwrap().ends_with("custom.c"));
    assert!(page.get("nextPageToken").is_none());
}

#[tokio::test]
async fn policy_lifecycle_names_the_project_by_number_and_checks_etags() {
    let (_handle, client) = start().await;
    create_constraint(&client, "custom.egress").await;
    let name = "projects/sluice-demo/policies/custom.egress";
    let (status, body) = client
        .call(
            Method::POST,
            "v2/projects/sluice-demo/policies",
            Some(enforced(name)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "projects/100000000001/policies/custom.egress");
    assert_eq!(body["spec"]["rules"][0]["enforce"], true);
    let etag = body["etag"].as_str().unwrap().to_string();

    let (status, body) = client
        .call(
            Method::POST,
            "v2/projects/sluice-demo/policies",
            Some(enforced(name)),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );

    let (status, body) = client.call(Method::GET, &format!("v2/{name}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["etag"], etag.as_str());

    let mut update = json!({ "name": name, "spec": { "rules": [{ "enforce": false }] },
        "dryRunSpec": { "rules": [{ "enforce": true }] }, "etag": etag });
    let (status, body) = client
        .call(Method::PATCH, &format!("v2/{name}"), Some(update.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["etag"], etag.as_str());
    assert_eq!(body["dryRunSpec"]["rules"][0]["enforce"], true);
    // The old etag is now stale.
    let (status, body) = client
        .call(Method::PATCH, &format!("v2/{name}"), Some(update.clone()))
        .await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("ABORTED")));
    update.as_object_mut().unwrap().remove("etag");
    assert_eq!(
        client
            .call(Method::PATCH, &format!("v2/{name}"), Some(update))
            .await
            .0,
        200
    );

    let (status, _) = client.call(Method::DELETE, &format!("v2/{name}"), None).await;
    assert_eq!(status, 200);
    let (status, _) = client.call(Method::GET, &format!("v2/{name}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn policy_for_a_missing_custom_constraint_is_refused() {
    let (_handle, client) = start().await;
    let name = "projects/sluice-demo/policies/custom.nothing";
    let (status, body) = client
        .call(
            Method::POST,
            "v2/projects/sluice-demo/policies",
            Some(enforced(name)),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

#[tokio::test]
async fn effective_policy_inherits_from_organisation_and_folder() {
    let (_handle, client) = start().await;
    create_constraint(&client, "custom.egress").await;
    let effective = "v2/projects/in-folder/policies/custom.egress:getEffectivePolicy";
    let (status, body) = client.call(Method::GET, effective, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "projects/100000000002/policies/custom.egress");
    assert!(body["spec"].get("rules").is_none());

    let org_policy = format!("organizations/{ORG}/policies/custom.egress");
    let (status, body) = client
        .call(
            Method::POST,
            &format!("v2/organizations/{ORG}/policies"),
            Some(enforced(&org_policy)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = client.call(Method::GET, effective, None).await;
    assert_eq!(body["spec"]["rules"], json!([{ "enforce": true }]));

    // The folder's own spec replaces the organisation's.
    let folder = json!({ "name": "folders/555/policies/custom.egress",
        "spec": { "rules": [{ "enforce": false }] } });
    assert_eq!(
        client
            .call(Method::POST, "v2/folders/555/policies", Some(folder))
            .await
            .0,
        200
    );
    let (_, body) = client.call(Method::GET, effective, None).await;
    assert_eq!(body["spec"]["rules"], json!([{ "enforce": false }]));

    // inheritFromParent merges the project's rules after the folder's.
    let project = json!({ "name": "projects/in-folder/policies/custom.egress",
        "spec": { "inheritFromParent": true, "rules": [{ "enforce": true }] } });
    assert_eq!(
        client
            .call(Method::POST, "v2/projects/in-folder/policies", Some(project))
            .await
            .0,
        200
    );
    let (_, body) = client.call(Method::GET, effective, None).await;
    assert_eq!(
        body["spec"]["rules"],
        json!([{ "enforce": false }, { "enforce": true }])
    );

    // A project outside the folder sees only the organisation's policy.
    let (_, body) = client
        .call(
            Method::GET,
            "v2/projects/sluice-demo/policies/custom.egress:getEffectivePolicy",
            None,
        )
        .await;
    assert_eq!(body["spec"]["rules"], json!([{ "enforce": true }]));
}

#[tokio::test]
async fn reasoning_engine_create_is_refused_once_the_policy_has_propagated() {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0].enabled_services = vec![
        "orgpolicy.googleapis.com".into(),
        "aiplatform.googleapis.com".into(),
    ];
    let (_handle, client) = Client::start_with(config).await;
    create_constraint(&client, "custom.egress").await;
    let name = "projects/sluice-demo/policies/custom.egress";
    let (status, body) = client
        .call(
            Method::POST,
            "v2/projects/sluice-demo/policies",
            Some(enforced(name)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let engine = json!({
        "displayName": "unbound",
        "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://bucket/agent.pkl", "pythonVersion": "3.12" } },
    });
    let parent = "v1/projects/sluice-demo/locations/us-central1/reasoningEngines";
    // Not enforced yet: the policy takes up to 15 minutes to propagate.
    let (status, body) = client.call(Method::POST, parent, Some(engine.clone())).await;
    assert_eq!(status, 200, "{body}");
    client.advance(900.0).await;
    let (status, body) = client.call(Method::POST, parent, Some(engine)).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("[\"customConstraints/custom.egress\"]"),
        "{message}"
    );
}
