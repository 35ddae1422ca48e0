//! Agent Registry v1: services (create / get / list / patch / delete as operations, requestId
//! de-duplication) and the agents read model.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::ProjectConfig;
use sluice_emulator::EmulatorConfig;
use support::Client;

const NUMBER: u64 = 100_000_000_001;
const PARENT: &str = "v1/projects/sluice-demo/locations/us-central1";
/// The emulator's (undocumented by Google) registry operation duration.
const OPERATION_SECONDS: f64 = 30.0;
const REQUEST: &str = "123e4567-e89b-12d3-a456-426614174000";

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0] = ProjectConfig {
        id: "sluice-demo".into(),
        number: NUMBER,
        enabled_services: vec!["agentregistry.googleapis.com".into()],
    };
    config.organizations[0].projects.push(ProjectConfig {
        id: "sluice-other".into(),
        number: 100_000_000_002,
        enabled_services: vec![],
    });
    Client::start_with(config).await
}

fn card_service() -> Value {
    json!({
        "displayName": "Support",
        "description": "Answers support questions",
        "agentSpec": {
            "type": "A2A_AGENT_CARD",
            "content": {
                "name": "support-agent",
                "version": "1.2.0",
                "protocolVersion": "0.3.0",
                "url": "https://support.example.com/a2a",
            },
        },
    })
}

fn plain_service() -> Value {
    json!({
        "agentSpec": { "type": "NO_SPEC" },
        "interfaces": [{ "url": "https://plain.example.com", "protocolBinding": "HTTP_JSON" }],
    })
}

async fn create(client: &Client, id: &str, request: Option<&str>, body: Value) -> (u16, Value) {
    let request = request.map(|r| format!("&requestId={r}")).unwrap_or_default();
    client
        .call(
            Method::POST,
            &format!("{PARENT}/services?serviceId={id}{request}"),
            Some(body),
        )
        .await
}

async fn operation(client: &Client, name: &str) -> Value {
    let (status, body) = client.call(Method::GET, &format!("v1/{name}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn error_status(body: &Value) -> Option<&str> {
    body["error"]["status"].as_str()
}

#[tokio::test]
async fn create_answers_an_operation_done_after_thirty_seconds() {
    let (_emulator, client) = start().await;
    let (status, op) = create(&client, "support", Some(REQUEST), card_service()).await;
    assert_eq!(status, 200, "{op}");
    let name = op["name"].as_str().unwrap().to_string();
    assert!(
        name.starts_with("projects/sluice-demo/locations/us-central1/operations/operation-"),
        "{name}"
    );
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.cloud.agentregistry.v1.OperationMetadata"
    );
    assert_eq!(op["metadata"]["verb"], "create");
    assert!(op.get("done").is_none(), "{op}");

    client.advance(OPERATION_SECONDS - 5.0).await;
    assert!(operation(&client, &name).await.get("done").is_none());
    client.advance(6.0).await;
    let done = operation(&client, &name).await;
    assert_eq!(done["done"], true, "{done}");
    let service = &done["response"];
    assert_eq!(
        service["@type"],
        "type.googleapis.com/google.cloud.agentregistry.v1.Service"
    );
    assert_eq!(
        service["name"],
        "projects/sluice-demo/locations/us-central1/services/support"
    );
    assert_eq!(
        service["registryResource"],
        "projects/sluice-demo/locations/us-central1/agents/support"
    );
    assert!(service["createTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(service["updateTime"], service["createTime"]);
    assert_eq!(service["displayName"], "Support");
}

#[tokio::test]
async fn the_project_number_names_the_same_services() {
    let (_emulator, client) = start().await;
    let by_number = format!("v1/projects/{NUMBER}/locations/us-central1");
    let (status, op) = client
        .call(
            Method::POST,
            &format!("{by_number}/services?serviceId=plain"),
            Some(plain_service()),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert!(op["name"].as_str().unwrap().starts_with("projects/sluice-demo/"));
    let (status, service) = client
        .call(Method::GET, &format!("{PARENT}/services/plain"), None)
        .await;
    assert_eq!(status, 200, "{service}");
}

#[tokio::test]
async fn create_refuses_bad_ids_and_duplicates() {
    let (_emulator, client) = start().await;
    for bad in ["abc", "Upper-case", "under_score", &"a".repeat(64), ""] {
        let (status, body) = create(&client, bad, None, plain_service()).await;
        assert_eq!(
            (status, error_status(&body)),
            (400, Some("INVALID_ARGUMENT")),
            "{bad}"
        );
    }
    let (status, body) = create(&client, "plain", Some("not-a-uuid"), plain_service()).await;
    assert_eq!((status, error_status(&body)), (400, Some("INVALID_ARGUMENT")));
    let (status, body) = create(
        &client,
        "nospec",
        None,
        json!({ "agentSpec": { "type": "NO_SPEC", "content": { "a": 1 } } }),
    )
    .await;
    assert_eq!(
        (status, error_status(&body)),
        (400, Some("INVALID_ARGUMENT")),
        "{body}"
    );

    assert_eq!(create(&client, "plain", None, plain_service()).await.0, 200);
    let (status, body) = create(&client, "plain", None, plain_service()).await;
    assert_eq!((status, error_status(&body)), (409, Some("ALREADY_EXISTS")));
    // Another request id is a different request: still a duplicate.
    let (status, body) = create(&client, "plain", Some(REQUEST), plain_service()).await;
    assert_eq!((status, error_status(&body)), (409, Some("ALREADY_EXISTS")));
}

#[tokio::test]
async fn a_repeated_request_id_answers_the_same_operation_for_sixty_minutes() {
    let (_emulator, client) = start().await;
    let (status, first) = create(&client, "support", Some(REQUEST), card_service()).await;
    assert_eq!(status, 200, "{first}");
    client.advance(600.0).await;
    let (status, again) = create(&client, "support", Some(REQUEST), card_service()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["name"], first["name"]);
    assert_eq!(again["done"], true, "{again}");
    let (_, listed) = client
        .call(Method::GET, &format!("{PARENT}/services"), None)
        .await;
    assert_eq!(listed["services"].as_array().unwrap().len(), 1, "{listed}");
    client.advance(3600.0).await;
    let (status, body) = create(&client, "support", Some(REQUEST), card_service()).await;
    assert_eq!((status, error_status(&body)), (409, Some("ALREADY_EXISTS")));
}

#[tokio::test]
async fn get_list_patch_and_delete() {
    let (_emulator, client) = start().await;
    let (status, body) = client
        .call(Method::GET, &format!("{PARENT}/services/absent"), None)
        .await;
    assert_eq!((status, error_status(&body)), (404, Some("NOT_FOUND")));
    for id in ["svc-a", "svc-b", "svc-c"] {
        assert_eq!(create(&client, id, None, plain_service()).await.0, 200);
    }
    let (status, page) = client
        .call(Method::GET, &format!("{PARENT}/services?pageSize=2"), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "projects/sluice-demo/locations/us-central1/services/svc-a",
            "projects/sluice-demo/locations/us-central1/services/svc-b"
        ]
    );
    let token = page["nextPageToken"].as_str().unwrap();
    let (_, rest) = client
        .call(
            Method::GET,
            &format!("{PARENT}/services?pageSize=2&pageToken={token}"),
            None,
        )
        .await;
    assert_eq!(rest["services"].as_array().unwrap().len(), 1);
    assert!(rest.get("nextPageToken").is_none(), "{rest}");

    client.advance(60.0).await;
    let (status, op) = client
        .call(
            Method::PATCH,
            &format!("{PARENT}/services/svc-a?updateMask=displayName,description"),
            Some(json!({ "displayName": "A", "description": "first", "interfaces": [] })),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["metadata"]["verb"], "update");
    let (_, service) = client
        .call(Method::GET, &format!("{PARENT}/services/svc-a"), None)
        .await;
    assert_eq!(service["displayName"], "A");
    assert_eq!(service["description"], "first");
    // Not in the mask: unchanged.
    assert_eq!(service["interfaces"].as_array().unwrap().len(), 1);
    assert_ne!(service["updateTime"], service["createTime"]);
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{PARENT}/services/svc-a?updateMask=name"),
            Some(json!({ "displayName": "A" })),
        )
        .await;
    assert_eq!((status, error_status(&body)), (400, Some("INVALID_ARGUMENT")));
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{PARENT}/services/absent?updateMask=displayName"),
            Some(json!({ "displayName": "A" })),
        )
        .await;
    assert_eq!((status, error_status(&body)), (404, Some("NOT_FOUND")));
    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, op["name"].as_str().unwrap()).await;
    assert_eq!(done["response"]["displayName"], "A", "{done}");

    let (status, op) = client
        .call(Method::DELETE, &format!("{PARENT}/services/svc-b"), None)
        .await;
    assert_eq!(status, 200, "{op}");
    let (status, _) = client
        .call(Method::GET, &format!("{PARENT}/services/svc-b"), None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = client
        .call(Method::DELETE, &format!("{PARENT}/services/svc-b"), None)
        .await;
    assert_eq!((status, error_status(&body)), (404, Some("NOT_FOUND")));
    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, op["name"].as_str().unwrap()).await;
    assert_eq!(
        done["response"],
        json!({ "@type": "type.googleapis.com/google.protobuf.Empty" })
    );
}

#[tokio::test]
async fn agents_are_derived_from_registered_services() {
    let (_emulator, client) = start().await;
    let (_, listed) = client.call(Method::GET, &format!("{PARENT}/agents"), None).await;
    assert!(listed["agents"].as_array().unwrap().is_empty(), "{listed}");
    assert_eq!(create(&client, "support", None, card_service()).await.0, 200);
    assert_eq!(create(&client, "plain", None, plain_service()).await.0, 200);
    let (status, listed) = client.call(Method::GET, &format!("{PARENT}/agents"), None).await;
    assert_eq!(status, 200, "{listed}");
    let agents = listed["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{listed}");
    assert_eq!(
        agents[0]["name"],
        "projects/sluice-demo/locations/us-central1/agents/plain"
    );
    assert_eq!(agents[0]["protocols"][0]["type"], "CUSTOM");
    let (status, agent) = client
        .call(Method::GET, &format!("{PARENT}/agents/support"), None)
        .await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent, agents[1]);
    assert_eq!(agent["displayName"], "Support");
    assert_eq!(agent["version"], "1.2.0");
    assert_eq!(agent["card"]["type"], "A2A_AGENT_CARD");
    assert_eq!(agent["protocols"][0]["type"], "A2A_AGENT");
    assert_eq!(
        agent["protocols"][0]["interfaces"][0]["url"],
        "https://support.example.com/a2a"
    );
    assert!(!agent["uid"].as_str().unwrap().is_empty());

    let (status, page) = client
        .call(Method::GET, &format!("{PARENT}/agents?pageSize=1"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["agents"].as_array().unwrap().len(), 1);
    assert!(page["nextPageToken"].is_string(), "{page}");

    client
        .call(Method::DELETE, &format!("{PARENT}/services/support"), None)
        .await;
    let (status, body) = client
        .call(Method::GET, &format!("{PARENT}/agents/support"), None)
        .await;
    assert_eq!((status, error_status(&body)), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn a_project_without_agent_registry_enabled_is_refused() {
    let (_emulator, client) = start().await;
    let other = "v1/projects/sluice-other/locations/us-central1";
    for (method, path, body) in [
        (Method::GET, format!("{other}/agents"), None),
        (Method::GET, format!("{other}/services"), None),
        (
            Method::POST,
            format!("{other}/services?serviceId=plain"),
            Some(plain_service()),
        ),
    ] {
        let (status, body) = client.call(method, &path, body).await;
        assert_eq!(
            (status, error_status(&body)),
            (403, Some("PERMISSION_DENIED")),
            "{body}"
        );
        assert_eq!(
            body["error"]["details"][0]["reason"], "SERVICE_DISABLED",
            "{body}"
        );
    }
}
