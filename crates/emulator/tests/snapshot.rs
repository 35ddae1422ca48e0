//! World snapshots: a world with resources of every kind, an operation in flight, a failed
//! operation and a de-duplicating `requestId` is snapshotted, written as JSON text, read back and
//! started as a second emulator, which is then the same world: the same state, the operation
//! finishing on the restored clock, the same next generated id, the same de-duplication. And a
//! snapshot that cannot be read is refused, saying why.
//!
//! Both emulators run with a time scale so large that their clocks stand still unless
//! advanced, so their states compare exactly.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::{Emulator, EmulatorConfig, EmulatorHandle, SnapshotError, WorldSnapshot};
use support::Client;

const PROJECT: &str = "sluice-demo";
const NUMBER: &str = "100000000001";
const LOCATION: &str = "v1/projects/sluice-demo/locations/us-central1";
const REGISTRY_SERVICE: &str =
    "services?serviceId=approved-agent&requestId=5f0c7a34-1b2c-4d5e-8f90-a1b2c3d4e5f6";

/// Clocks that stand still (10¹² real seconds per emulated second) and calls without latency.
fn still_config() -> EmulatorConfig {
    EmulatorConfig {
        time_scale: 1e12,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    }
}

fn engine(display_name: &str, gateway: &str) -> Value {
    json!({
        "displayName": display_name,
        "spec": {
            "packageSpec": { "pickleObjectGcsUri": "gs://bucket/agent.pkl", "pythonVersion": "3.12" },
            "deploymentSpec": { "agentGatewayConfig": { "agentToAnywhereConfig": { "agentGateway": gateway } } },
        }
    })
}

fn registry_service() -> Value {
    json!({ "displayName": "approved", "agentSpec": { "type": "NO_SPEC" },
        "interfaces": [{ "url": "https://agent.example.com", "protocolBinding": "HTTP_JSON" }] })
}

async fn ok(client: &Client, method: Method, path: &str, body: Value) -> Value {
    let (status, answer) = client.call(method, path, Some(body)).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// APIs enabled and usable, a custom role granted to the Reasoning Engine service agent, an
/// egress gateway, a registry service created with a `requestId`, a deploy that failed (its
/// engine gone, its operation holding the error) and a deploy still running. Returns the
/// running deploy's operation name.
async fn populate(client: &Client) -> String {
    let ids: Vec<String> = [
        "iam",
        "cloudresourcemanager",
        "networkservices",
        "aiplatform",
        "agentregistry",
    ]
    .iter()
    .map(|a| format!("{a}.googleapis.com"))
    .collect();
    let path = format!("v1/projects/{PROJECT}/services:batchEnable");
    ok(client, Method::POST, &path, json!({ "serviceIds": ids })).await;
    client.advance(65.0).await;
    let path =
        format!("v1beta1/projects/{PROJECT}/services/aiplatform.googleapis.com:generateServiceIdentity");
    ok(client, Method::POST, &path, json!({})).await;
    let role = json!({ "roleId": "agentGatewayUser", "role": { "title": "Agent Gateway access",
        "includedPermissions": ["networkservices.agentGateways.get", "networkservices.agentGateways.use"] } });
    ok(
        client,
        Method::POST,
        &format!("v1/projects/{PROJECT}/roles"),
        role,
    )
    .await;
    client.advance(10.0).await;
    let path = format!("v3/projects/{PROJECT}:getIamPolicy");
    let mut policy = ok(client, Method::POST, &path, json!({})).await;
    let agent = format!("serviceAccount:service-{NUMBER}@gcp-sa-aiplatform-re.iam.gserviceaccount.com");
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": format!("projects/{PROJECT}/roles/agentGatewayUser"), "members": [agent] }));
    let path = format!("v3/projects/{PROJECT}:setIamPolicy");
    ok(client, Method::POST, &path, json!({ "policy": policy })).await;
    let gateway = json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } });
    let path = format!("{LOCATION}/agentGateways?agentGatewayId=egress");
    ok(client, Method::POST, &path, gateway).await;
    let path = format!("{LOCATION}/{REGISTRY_SERVICE}");
    ok(client, Method::POST, &path, registry_service()).await;
    client.advance(200.0).await;
    let missing = format!("projects/{PROJECT}/locations/us-central1/agentGateways/nowhere");
    let path = format!("{LOCATION}/reasoningEngines");
    let failing = ok(client, Method::POST, &path, engine("unbound", &missing)).await;
    client.advance(300.0).await;
    let path = format!("v1/{}", failing["name"].as_str().unwrap());
    let failed = ok(client, Method::GET, &path, json!(null)).await;
    assert!(
        failed["error"].is_object(),
        "the deploy to a missing gateway fails: {failed}"
    );
    let gateway = format!("projects/{PROJECT}/locations/us-central1/agentGateways/egress");
    let path = format!("{LOCATION}/reasoningEngines");
    let running = ok(client, Method::POST, &path, engine("approved", &gateway)).await;
    assert!(
        running.get("done").is_none(),
        "the deploy is in flight: {running}"
    );
    running["name"].as_str().unwrap().to_string()
}

fn client_of(handle: &EmulatorHandle) -> Client {
    Client {
        http: reqwest::Client::new(),
        base: handle.base_url.clone(),
    }
}

#[tokio::test]
async fn a_restored_world_is_the_same_world_and_its_operations_finish_on_its_clock() {
    let (original, client) = Client::start_with(still_config()).await;
    let deploy = populate(&client).await;

    let text = serde_json::to_string(&original.snapshot().to_json()).unwrap();
    let read = WorldSnapshot::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(
        read.to_json().to_string(),
        text,
        "the snapshot reads back as written"
    );
    let restored = Emulator::start_from(still_config(), read).await.unwrap();
    let again = client_of(&restored);
    assert_eq!(
        restored.state(),
        original.state(),
        "the same world at the same instant"
    );
    assert!(
        restored.state()["agentGateways"].as_array().unwrap().len() == 1
            && restored.state()["reasoningEngines"].as_array().unwrap().len() == 1,
        "the gateway and the deploying engine are there: {}",
        restored.state()
    );

    let (_, running) = again.call(Method::GET, &format!("v1/{deploy}"), None).await;
    assert!(
        running.get("done").is_none(),
        "still running after the restore: {running}"
    );
    for side in [&client, &again] {
        side.advance(300.0).await;
    }
    let (_, finished) = again.call(Method::GET, &format!("v1/{deploy}"), None).await;
    assert_eq!(finished["done"], true, "{finished}");
    assert!(finished["response"]["name"].is_string(), "{finished}");
    assert_eq!(
        finished,
        client.call(Method::GET, &format!("v1/{deploy}"), None).await.1,
        "the operation ends as it does in the original"
    );

    // Generated ids and requestId de-duplication carry on where they were.
    let retried = format!("{LOCATION}/{REGISTRY_SERVICE}");
    let (first, second) = (
        ok(&client, Method::POST, &retried, registry_service()).await,
        ok(&again, Method::POST, &retried, registry_service()).await,
    );
    assert_eq!(first, second, "the retried requestId answers the same operation");
    let gateway = format!("projects/{PROJECT}/locations/us-central1/agentGateways/egress");
    let path = format!("{LOCATION}/reasoningEngines");
    let (one, other) = (
        ok(&client, Method::POST, &path, engine("second", &gateway)).await,
        ok(&again, Method::POST, &path, engine("second", &gateway)).await,
    );
    assert_eq!(one["name"], other["name"], "the next generated id is the same");
    assert_eq!(restored.state(), original.state());
    assert_eq!(restored.snapshot().to_json(), original.snapshot().to_json());
}

#[tokio::test]
async fn a_snapshot_that_cannot_be_read_is_refused_saying_why() {
    let good = Emulator::start(still_config())
        .await
        .unwrap()
        .snapshot()
        .to_json();
    assert!(WorldSnapshot::from_json(&good).is_ok());

    assert_eq!(
        WorldSnapshot::from_json(&json!({ "projects": [] })).unwrap_err(),
        SnapshotError::NotASnapshot
    );
    let mut newer = good.clone();
    newer["version"] = json!(2);
    let refused = WorldSnapshot::from_json(&newer).unwrap_err();
    assert_eq!(refused, SnapshotError::UnsupportedVersion { found: "2".into() });
    assert!(refused.to_string().contains("reads version 1"), "{refused}");

    let mut damaged = good.clone();
    damaged["world"]["projects"] = json!("not a list");
    assert!(matches!(
        WorldSnapshot::from_json(&damaged),
        Err(SnapshotError::Damaged(_))
    ));

    let mut unknown_status = good;
    unknown_status["world"]["operations"]["by_name"] = json!({ "operations/1": {
        "name": "operations/1", "done_at": { "secs": 0, "nanos": 0 }, "metadata": {},
        "outcome": { "Err": { "http": 400, "status": "NOT_A_STATUS", "message": "m", "details": [] } } } });
    let refused = WorldSnapshot::from_json(&unknown_status).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("`NOT_A_STATUS` is not a canonical status name"),
        "{refused}"
    );
}
