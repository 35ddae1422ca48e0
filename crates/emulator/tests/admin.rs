//! The admin API's request log: every API call counted, bounded by `request_log_limit`.

mod support;

use reqwest::Method;
use serde_json::Value;
use sluice_emulator::EmulatorConfig;
use support::Client;

const SERVICE: &str = "v1/projects/sluice-demo/services/serviceusage.googleapis.com";

async fn logged_paths(client: &Client) -> Vec<(String, u64)> {
    let (status, log) = client.send(Method::GET, "_emulator/requests", None, None).await;
    assert_eq!(status, 200);
    log.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_request_log_keeps_the_most_recent_calls_and_counts_the_dropped() {
    let config = EmulatorConfig {
        request_log_limit: 3,
        ..EmulatorConfig::default()
    };
    let (_emulator, client) = Client::start_with(config).await;
    for _ in 0..4 {
        assert_eq!(client.call(Method::GET, SERVICE, None).await.0, 200);
    }
    let (status, _) = client.send(Method::GET, SERVICE, None, None).await;
    assert_eq!(status, 401);
    let log = logged_paths(&client).await;
    let path = format!("/{SERVICE}");
    assert_eq!(
        log,
        [(path.clone(), 200), (path.clone(), 200), (path, 401)],
        "the last three calls, the unauthenticated one included"
    );
    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(state["requestsDropped"], 2);

    let (status, _) = client.send(Method::POST, "_emulator/reset", None, None).await;
    assert_eq!(status, 204);
    assert!(logged_paths(&client).await.is_empty());
    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(state["requestsDropped"], Value::from(0));
}

#[tokio::test]
async fn state_lists_every_resource() {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0].enabled_services = vec![
        "iam.googleapis.com".into(),
        "networkservices.googleapis.com".into(),
        "aiplatform.googleapis.com".into(),
    ];
    let (_emulator, client) = Client::start_with(config).await;
    let role = serde_json::json!({ "roleId": "gwUser", "role": { "title": "t",
        "includedPermissions": ["networkservices.agentGateways.get"] } });
    assert_eq!(
        client
            .call(Method::POST, "v1/projects/sluice-demo/roles", Some(role))
            .await
            .0,
        200
    );
    let gateway = serde_json::json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } });
    let path = "v1/projects/sluice-demo/locations/us-central1/agentGateways?agentGatewayId=egress";
    assert_eq!(client.call(Method::POST, path, Some(gateway)).await.0, 200);
    let engine = serde_json::json!({ "displayName": "bot" });
    let path = "v1/projects/sluice-demo/locations/us-central1/reasoningEngines";
    assert_eq!(client.call(Method::POST, path, Some(engine)).await.0, 200);

    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    let role = &state["iamRoles"]["projects/sluice-demo/roles/gwUser"];
    assert_eq!(
        role["includedPermissions"],
        serde_json::json!(["networkservices.agentGateways.get"])
    );
    assert_eq!(role["deleted"], false);
    assert_eq!(
        state["agentGateways"][0]["name"],
        "projects/sluice-demo/locations/us-central1/agentGateways/egress"
    );
    assert_eq!(state["reasoningEngines"][0]["displayName"], "bot");
    for key in ["agentRegistry", "orgPolicy", "projects", "operations"] {
        assert!(!state[key].is_null(), "{key} in {state}");
    }
    assert_eq!(state["operations"], 2, "the gateway's and the engine's");
}
