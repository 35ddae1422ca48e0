//! Network Services v1: agent gateways (create / get / list / patch / delete as operations) and
//! `projects.locations.operations.get`.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::ProjectConfig;
use sluice_emulator::{discovery, EmulatorConfig};
use support::Client;

const NUMBER: u64 = 100_000_000_001;
const PARENT: &str = "v1/projects/sluice-demo/locations/us-central1";
/// The emulator's (undocumented by Google) gateway operation duration.
const OPERATION_SECONDS: f64 = 120.0;

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0] = ProjectConfig {
        id: "sluice-demo".into(),
        number: NUMBER,
        enabled_services: vec!["networkservices.googleapis.com".into()],
    };
    config.organizations[0].projects.push(ProjectConfig {
        id: "sluice-other".into(),
        number: 100_000_000_002,
        enabled_services: vec![],
    });
    Client::start_with(config).await
}

fn egress() -> Value {
    json!({
        "description": "egress",
        "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" },
        "registries": ["//agentregistry.googleapis.com/projects/sluice-demo/locations/us-central1"],
    })
}

fn ingress() -> Value {
    json!({ "googleManaged": { "governedAccessPath": "CLIENT_TO_AGENT" } })
}

async fn create(client: &Client, parent: &str, id: &str, body: Value) -> (u16, Value) {
    client
        .call(
            Method::POST,
            &format!("{parent}/agentGateways?agentGatewayId={id}"),
            Some(body),
        )
        .await
}

/// Polls an operation. A finished one is fetched without the support client's automatic check
/// (which looks the path up in the first document that has it, Agent Registry's, whose schemas
/// lack AgentGateway) and checked here against Network Services' own schemas instead.
async fn operation(client: &Client, name: &str) -> (u16, Value) {
    let response = client
        .http
        .get(format!("{}/v1/{name}", client.base))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    if status == 200 {
        let mut problems = discovery::check("networkservices.v1", "Operation", &body);
        problems.extend(discovery::check(
            "networkservices.v1",
            "OperationMetadata",
            &body["metadata"],
        ));
        if body["response"]["@type"]
            .as_str()
            .is_some_and(|t| t.ends_with(".AgentGateway"))
        {
            problems.extend(discovery::check(
                "networkservices.v1",
                "AgentGateway",
                &body["response"],
            ));
        }
        assert!(problems.is_empty(), "{problems:?}\n{body}");
    }
    (status, body)
}

fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && text.ends_with('Z')
}

#[tokio::test]
async fn create_answers_an_operation_and_the_gateway_exists_at_once() {
    let (_emulator, client) = start().await;
    let (status, op) = create(&client, PARENT, "egress-gw", egress()).await;
    assert_eq!(status, 200, "{op}");
    let name = op["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("projects/sluice-demo/locations/us-central1/operations/operation-"),
        "{name}"
    );
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.cloud.networkservices.v1.OperationMetadata"
    );
    assert!(op.get("done").is_none(), "{op}");

    let (status, gateway) = client
        .call(Method::GET, &format!("{PARENT}/agentGateways/egress-gw"), None)
        .await;
    assert_eq!(status, 200, "{gateway}");
    assert_eq!(
        gateway["name"],
        "projects/sluice-demo/locations/us-central1/agentGateways/egress-gw"
    );
    assert_eq!(gateway["description"], "egress");
    assert_eq!(
        gateway["googleManaged"]["governedAccessPath"],
        "AGENT_TO_ANYWHERE"
    );
    assert!(is_rfc3339(gateway["createTime"].as_str().unwrap()), "{gateway}");
    assert!(is_rfc3339(gateway["updateTime"].as_str().unwrap()), "{gateway}");
    assert!(!gateway["etag"].as_str().unwrap().is_empty());
    assert_eq!(
        gateway["agentGatewayCard"]["serviceExtensionsServiceAccount"],
        format!("service-{NUMBER}@gcp-sa-dep.iam.gserviceaccount.com")
    );

    let (status, running) = operation(&client, &name).await;
    assert_eq!(status, 200);
    assert!(running.get("done").is_none(), "{running}");
    client.advance(OPERATION_SECONDS - 10.0).await;
    let (_, running) = operation(&client, &name).await;
    assert!(running.get("done").is_none(), "{running}");
    client.advance(11.0).await;
    let (status, done) = operation(&client, &name).await;
    assert_eq!(status, 200);
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.cloud.networkservices.v1.AgentGateway"
    );
    assert_eq!(done["response"]["name"], gateway["name"]);
    assert_eq!(done["response"]["etag"], gateway["etag"]);
}

#[tokio::test]
async fn create_refuses_a_missing_or_invalid_id_and_a_duplicate() {
    let (_emulator, client) = start().await;
    let (status, body) = client
        .call(Method::POST, &format!("{PARENT}/agentGateways"), Some(egress()))
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    for bad in ["Upper", "1starts-with-digit", "ends-with-", "under_score"] {
        let (status, body) = create(&client, PARENT, bad, egress()).await;
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (400, Some("INVALID_ARGUMENT")),
            "{bad}"
        );
    }
    assert_eq!(create(&client, PARENT, "gw", egress()).await.0, 200);
    let (status, body) = create(&client, PARENT, "gw", ingress()).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );
}

#[tokio::test]
async fn one_gateway_per_mode_per_project_and_region() {
    let (_emulator, client) = start().await;
    assert_eq!(create(&client, PARENT, "egress-a", egress()).await.0, 200);
    let (status, body) = create(&client, PARENT, "egress-b", egress()).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("projects/sluice-demo/locations/us-central1/agentGateways/egress-a"),
        "{body}"
    );
    // The other mode in the same region, and the same mode in another region, are fine.
    assert_eq!(create(&client, PARENT, "ingress-a", ingress()).await.0, 200);
    let europe = "v1/projects/sluice-demo/locations/europe-west1";
    assert_eq!(create(&client, europe, "egress-b", egress()).await.0, 200);
    // Once the first is deleted, its mode is free again.
    let (status, _) = client
        .call(Method::DELETE, &format!("{PARENT}/agentGateways/egress-a"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(create(&client, PARENT, "egress-b", egress()).await.0, 200);
}

#[tokio::test]
async fn get_of_an_absent_gateway_is_not_found_and_project_numbers_are_accepted() {
    let (_emulator, client) = start().await;
    let (status, body) = client
        .call(Method::GET, &format!("{PARENT}/agentGateways/nope"), None)
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let by_number = format!("v1/projects/{NUMBER}/locations/us-central1");
    assert_eq!(create(&client, &by_number, "gw", egress()).await.0, 200);
    let (status, gateway) = client
        .call(Method::GET, &format!("{PARENT}/agentGateways/gw"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        gateway["name"],
        "projects/sluice-demo/locations/us-central1/agentGateways/gw"
    );
}

#[tokio::test]
async fn list_pages_through_the_gateways_of_one_location() {
    let (_emulator, client) = start().await;
    assert_eq!(create(&client, PARENT, "a-gw", egress()).await.0, 200);
    assert_eq!(create(&client, PARENT, "b-gw", ingress()).await.0, 200);
    assert_eq!(create(&client, PARENT, "c-gw", json!({})).await.0, 200);
    let europe = "v1/projects/sluice-demo/locations/europe-west1";
    assert_eq!(create(&client, europe, "elsewhere", egress()).await.0, 200);

    let (status, all) = client
        .call(Method::GET, &format!("{PARENT}/agentGateways"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(all["agentGateways"].as_array().unwrap().len(), 3);
    assert!(all.get("nextPageToken").is_none());

    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("{PARENT}/agentGateways?pageSize=2");
        if let Some(token) = &token {
            path.push_str(&format!(
                "&pageToken={}",
                token.replace('/', "%2F").replace(':', "%3A")
            ));
        }
        let (status, page) = client.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["agentGateways"].as_array().unwrap();
        assert!(items.len() <= 2);
        names.extend(items.iter().map(|g| g["name"].as_str().unwrap().to_string()));
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    let ids: Vec<&str> = names.iter().map(|n| n.rsplit('/').next().unwrap()).collect();
    assert_eq!(ids, ["a-gw", "b-gw", "c-gw"]);

    let (status, body) = client
        .call(
            Method::GET,
            &format!("{PARENT}/agentGateways?pageToken=bogus"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

#[tokio::test]
async fn patch_applies_the_mask_checks_the_etag_and_keeps_the_mode() {
    let (_emulator, client) = start().await;
    assert_eq!(create(&client, PARENT, "gw", egress()).await.0, 200);
    let path = format!("{PARENT}/agentGateways/gw");
    let (_, before) = client.call(Method::GET, &path, None).await;
    let etag = before["etag"].as_str().unwrap().to_string();

    let (status, op) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=description,labels"),
            Some(json!({ "description": "changed", "labels": { "team": "a" }, "registries": [], "etag": etag })),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert!(op.get("done").is_none());
    let (_, after) = client.call(Method::GET, &path, None).await;
    assert_eq!(after["description"], "changed");
    assert_eq!(after["labels"], json!({ "team": "a" }));
    // Not in the mask: untouched.
    assert_eq!(after["registries"], before["registries"]);
    assert_eq!(after["createTime"], before["createTime"]);
    assert_ne!(after["etag"], before["etag"]);

    // The old etag is stale now.
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=description"),
            Some(json!({ "description": "again", "etag": etag })),
        )
        .await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("ABORTED")));

    // The governed access path cannot change.
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=googleManaged.governedAccessPath"),
            Some(ingress()),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let (_, unchanged) = client.call(Method::GET, &path, None).await;
    assert_eq!(
        unchanged["googleManaged"]["governedAccessPath"],
        "AGENT_TO_ANYWHERE"
    );

    // An unknown mask path is refused; an absent gateway is not found.
    let (status, _) = client
        .call(Method::PATCH, &format!("{path}?updateMask=name"), Some(json!({})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = client
        .call(
            Method::PATCH,
            &format!("{PARENT}/agentGateways/nope?updateMask=description"),
            Some(json!({ "description": "x" })),
        )
        .await;
    assert_eq!(status, 404);

    client.advance(OPERATION_SECONDS + 1.0).await;
    let (_, done) = operation(&client, op["name"].as_str().unwrap()).await;
    assert_eq!(done["done"], true);
    assert_eq!(done["response"]["description"], "changed");
    assert_eq!(done["response"]["etag"], after["etag"]);
}

#[tokio::test]
async fn delete_checks_the_etag_removes_the_gateway_at_once_and_answers_empty() {
    let (_emulator, client) = start().await;
    assert_eq!(create(&client, PARENT, "gw", egress()).await.0, 200);
    let path = format!("{PARENT}/agentGateways/gw");
    let (_, gateway) = client.call(Method::GET, &path, None).await;

    let (status, body) = client
        .call(Method::DELETE, &format!("{path}?etag=0123456789abcdef"), None)
        .await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("ABORTED")));

    let etag = gateway["etag"].as_str().unwrap();
    let (status, op) = client
        .call(Method::DELETE, &format!("{path}?etag={etag}"), None)
        .await;
    assert_eq!(status, 200, "{op}");
    assert!(op.get("done").is_none());
    let (status, _) = client.call(Method::GET, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 404);

    client.advance(OPERATION_SECONDS).await;
    let (status, done) = operation(&client, op["name"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(done["done"], true);
    assert_eq!(
        done["response"],
        json!({ "@type": "type.googleapis.com/google.protobuf.Empty" })
    );
}

#[tokio::test]
async fn operations_get_answers_by_full_name_and_404_for_unknown() {
    let (_emulator, client) = start().await;
    let (_, op) = create(&client, PARENT, "gw", egress()).await;
    let name = op["name"].as_str().unwrap();
    let (status, running) = client.call(Method::GET, &format!("v1/{name}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(running["name"], name);
    assert!(running.get("done").is_none());
    // By project number as well.
    let by_number = name.replace("sluice-demo", &NUMBER.to_string());
    let (status, same) = client.call(Method::GET, &format!("v1/{by_number}"), None).await;
    assert_eq!((status, &same["name"]), (200, &running["name"]));
    let (status, body) = client
        .call(Method::GET, &format!("{PARENT}/operations/operation-0"), None)
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[tokio::test]
async fn a_project_without_network_services_answers_service_disabled() {
    let (_emulator, client) = start().await;
    let parent = "v1/projects/sluice-other/locations/us-central1";
    let (status, body) = create(&client, parent, "gw", egress()).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    assert_eq!(
        body["error"]["details"][0]["reason"], "SERVICE_DISABLED",
        "{body}"
    );
    let (status, body) = client
        .call(Method::GET, &format!("{parent}/agentGateways"), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["details"][0]["reason"], "SERVICE_DISABLED");
}
