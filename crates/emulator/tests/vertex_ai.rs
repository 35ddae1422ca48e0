//! Vertex AI reasoningEngines (v1, v1beta1): create / get / list / patch / delete as operations,
//! gateway binding rules (an egress gateway's authorization policies denying the agent's declared
//! LLM access included), agent identity, and SERVICE_DISABLED.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::ProjectConfig;
use sluice_emulator::{discovery, EmulatorConfig};
use support::Client;

const NUMBER: u64 = 100_000_000_001;
const PARENT: &str = "v1/projects/sluice-demo/locations/us-central1";
const BETA_PARENT: &str = "v1beta1/projects/sluice-demo/locations/us-central1";
/// The emulator's (undocumented by Google) engine operation duration.
const OPERATION_SECONDS: f64 = 300.0;
const PROPAGATION_SECONDS: f64 = 60.0;
const EGRESS_GW: &str = "projects/sluice-demo/locations/us-central1/agentGateways/egress-gw";
const INGRESS_GW: &str = "projects/sluice-demo/locations/us-central1/agentGateways/ingress-gw";

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.delays.iam_propagation = PROPAGATION_SECONDS;
    config.organizations[0].projects[0] = ProjectConfig {
        id: "sluice-demo".into(),
        number: NUMBER,
        enabled_services: vec![
            "aiplatform.googleapis.com".into(),
            "networkservices.googleapis.com".into(),
            "networksecurity.googleapis.com".into(),
            "cloudresourcemanager.googleapis.com".into(),
            "iam.googleapis.com".into(),
        ],
    };
    config.organizations[0].projects.push(ProjectConfig {
        id: "sluice-other".into(),
        number: 100_000_000_002,
        enabled_services: vec![],
    });
    Client::start_with(config).await
}

fn engine(display_name: &str) -> Value {
    json!({
        "displayName": display_name,
        "labels": { "team": "sluice" },
        "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://bucket/agent.pkl", "pythonVersion": "3.12" } },
    })
}

fn bound_engine(egress: Option<&str>, ingress: Option<&str>) -> Value {
    let mut body = engine("bound");
    if let Some(gw) = egress {
        body["spec"]["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]["agentGateway"] =
            json!(gw);
    }
    if let Some(gw) = ingress {
        body["spec"]["deploymentSpec"]["agentGatewayConfig"]["clientToAgentConfig"]["agentGateway"] =
            json!(gw);
    }
    body
}

async fn create(client: &Client, parent: &str, body: Value) -> (u16, Value) {
    client
        .call(Method::POST, &format!("{parent}/reasoningEngines"), Some(body))
        .await
}

/// The engine name (`projects/N/locations/L/reasoningEngines/ID`) an operation name belongs to.
fn engine_of(operation: &Value) -> String {
    let name = operation["name"].as_str().unwrap();
    name.split("/operations/").next().unwrap().to_string()
}

/// Polls an operation without the support client's automatic check (which cannot find the
/// prefixed `GoogleCloudAiplatformV1ReasoningEngine` schema from the `@type`), checking it here.
async fn operation(client: &Client, version: &str, name: &str) -> (u16, Value) {
    let response = client
        .http
        .get(format!("{}/{version}/{name}", client.base))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    if status == 200 {
        let document = format!("aiplatform.{version}");
        let mut problems = discovery::check(&document, "GoogleLongrunningOperation", &body);
        if body["response"]["@type"]
            .as_str()
            .is_some_and(|t| t.ends_with(".ReasoningEngine"))
        {
            let schema = if version == "v1" {
                "GoogleCloudAiplatformV1ReasoningEngine"
            } else {
                "GoogleCloudAiplatformV1beta1ReasoningEngine"
            };
            let mut engine = body["response"].clone();
            engine.as_object_mut().unwrap().remove("@type");
            problems.extend(discovery::check(&document, schema, &engine));
        }
        assert!(problems.is_empty(), "{problems:?}\n{body}");
    }
    (status, body)
}

async fn make_gateway(client: &Client, id: &str, mode: &str) {
    let (status, body) = client
        .call(
            Method::POST,
            &format!("{PARENT}/agentGateways?agentGatewayId={id}"),
            Some(json!({ "googleManaged": { "governedAccessPath": mode } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Makes the Reasoning Engine service agent exist and grants it `role`.
async fn grant_service_agent(client: &Client, role: &str) {
    let identity = "v1beta1/projects/sluice-demo/services/aiplatform.googleapis.com:generateServiceIdentity";
    client.call(Method::POST, identity, Some(json!({}))).await;
    client.advance(60.0).await;
    let (status, mut policy) = client
        .call(
            Method::POST,
            "v3/projects/sluice-demo:getIamPolicy",
            Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    let agent = format!("serviceAccount:service-{NUMBER}@gcp-sa-aiplatform-re.iam.gserviceaccount.com");
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": role, "members": [agent] }));
    let (status, body) = client
        .call(
            Method::POST,
            "v3/projects/sluice-demo:setIamPolicy",
            Some(json!({ "policy": policy })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn make_custom_role(client: &Client, permissions: &[&str]) -> String {
    let role = json!({
        "roleId": "agentGatewayUser",
        "role": { "title": "Agent Gateway user", "includedPermissions": permissions }
    });
    let (status, body) = client
        .call(Method::POST, "v1/projects/sluice-demo/roles", Some(role))
        .await;
    assert_eq!(status, 200, "{body}");
    "projects/sluice-demo/roles/agentGatewayUser".to_string()
}

#[tokio::test]
async fn create_answers_an_operation_and_the_engine_exists_at_once() {
    let (_emulator, client) = start().await;
    let (status, op) = create(&client, PARENT, engine("agent")).await;
    assert_eq!(status, 200, "{op}");
    let name = op["name"].as_str().unwrap().to_string();
    let prefix = format!("projects/{NUMBER}/locations/us-central1/reasoningEngines/");
    let rest = name.strip_prefix(&prefix).expect(&name);
    let (id, op_id) = rest.split_once("/operations/").expect(&name);
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{name}");
    assert!(!op_id.is_empty());
    assert!(op.get("done").is_none(), "{op}");

    let (status, got) = client
        .call(Method::GET, &format!("{PARENT}/reasoningEngines/{id}"), None)
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], format!("{prefix}{id}"));
    assert_eq!(got["displayName"], "agent");
    assert!(got["etag"].is_string() && got["createTime"].is_string(), "{got}");

    client.advance(OPERATION_SECONDS - 1.0).await;
    let (status, running) = operation(&client, "v1", &name).await;
    assert_eq!(status, 200);
    assert!(running.get("done").is_none(), "{running}");
    client.advance(1.0).await;
    let (_, done) = operation(&client, "v1", &name).await;
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.cloud.aiplatform.v1.ReasoningEngine"
    );
    assert_eq!(done["response"]["name"], got["name"]);

    // Project by number works too.
    let (status, _) = client
        .call(
            Method::GET,
            &format!("v1/projects/{NUMBER}/locations/us-central1/reasoningEngines/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn v1beta1_operations_name_the_v1beta1_type() {
    let (_emulator, client) = start().await;
    let (status, op) = create(&client, BETA_PARENT, engine("beta")).await;
    assert_eq!(status, 200, "{op}");
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1beta1", op["name"].as_str().unwrap()).await;
    assert_eq!(
        done["response"]["@type"], "type.googleapis.com/google.cloud.aiplatform.v1beta1.ReasoningEngine",
        "{done}"
    );
}

#[tokio::test]
async fn create_requires_a_display_name_and_is_not_idempotent() {
    let (_emulator, client) = start().await;
    let (status, body) = create(&client, PARENT, json!({ "description": "nameless" })).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );

    let (_, first) = create(&client, PARENT, engine("same")).await;
    let (_, second) = create(&client, PARENT, engine("same")).await;
    assert_ne!(engine_of(&first), engine_of(&second));
    let (status, list) = client
        .call(Method::GET, &format!("{PARENT}/reasoningEngines"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["reasoningEngines"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn get_of_a_missing_engine_is_404() {
    let (_emulator, client) = start().await;
    let (status, body) = client
        .call(Method::GET, &format!("{PARENT}/reasoningEngines/12345"), None)
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[tokio::test]
async fn list_filters_on_display_name_and_labels_and_pages() {
    let (_emulator, client) = start().await;
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y"), ("a", "y")] {
        let mut body = engine(name);
        body["labels"] = json!({ "team": team });
        assert_eq!(create(&client, PARENT, body).await.0, 200);
    }
    let list = |query: String| {
        let client = &client;
        async move {
            let (status, body) = client
                .call(Method::GET, &format!("{PARENT}/reasoningEngines?{query}"), None)
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let names = |body: &Value| -> Vec<String> {
        body["reasoningEngines"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["displayName"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let by_name = list("filter=display_name%3D%22a%22".into()).await;
    assert_eq!(names(&by_name), ["a", "a"]);
    let by_label = list("filter=labels.team%3D%22x%22".into()).await;
    assert_eq!(names(&by_label), ["a", "b"]);
    let both = list("filter=display_name%3D%22a%22%20AND%20labels.team%3D%22y%22".into()).await;
    assert_eq!(names(&both), ["a"]);

    let first = list("pageSize=3".into()).await;
    assert_eq!(names(&first).len(), 3);
    let token = first["nextPageToken"].as_str().unwrap();
    let second = list(format!("pageSize=3&pageToken={}", urlencode(token))).await;
    assert_eq!(names(&second).len(), 1);
    assert!(second.get("nextPageToken").is_none(), "{second}");

    let (status, _) = client
        .call(
            Method::GET,
            &format!("{PARENT}/reasoningEngines?filter=create_time%3E%222020%22"),
            None,
        )
        .await;
    assert_eq!(status, 400);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn patch_applies_the_mask_checks_the_etag_and_is_an_operation() {
    let (_emulator, client) = start().await;
    let (_, op) = create(&client, PARENT, engine("before")).await;
    let name = engine_of(&op);
    let path = format!("v1/{name}");
    let (_, got) = client.call(Method::GET, &path, None).await;
    let etag = got["etag"].as_str().unwrap().to_string();

    let (status, op) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=display_name"),
            Some(json!({ "displayName": "after", "description": "ignored", "etag": etag })),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert!(op["name"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{name}/operations/")));
    let (_, got) = client.call(Method::GET, &path, None).await;
    assert_eq!(got["displayName"], "after");
    assert!(got.get("description").is_none(), "{got}");
    assert_ne!(got["etag"], etag.as_str());

    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=displayName"),
            Some(json!({ "displayName": "stale", "etag": etag })),
        )
        .await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("ABORTED")));

    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["response"]["displayName"], "after", "{done}");
}

#[tokio::test]
async fn delete_is_an_operation_with_an_empty_response() {
    let (_emulator, client) = start().await;
    let (_, op) = create(&client, PARENT, engine("doomed")).await;
    let path = format!("v1/{}", engine_of(&op));
    let (status, op) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(client.call(Method::GET, &path, None).await.0, 404);
    assert_eq!(client.call(Method::DELETE, &path, None).await.0, 404);
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["done"], true);
    assert_eq!(
        done["response"],
        json!({ "@type": "type.googleapis.com/google.protobuf.Empty" })
    );
}

#[tokio::test]
async fn binding_to_gateways_needs_the_right_modes_and_a_propagated_grant() {
    let (_emulator, client) = start().await;
    make_gateway(&client, "egress-gw", "AGENT_TO_ANYWHERE").await;
    make_gateway(&client, "ingress-gw", "CLIENT_TO_AGENT").await;

    // Missing gateway: the operation fails after its time, and the engine goes.
    let missing = "projects/sluice-demo/locations/us-central1/agentGateways/nope";
    let (_, op) = create(&client, PARENT, bound_engine(Some(missing), None)).await;
    let path = format!("v1/{}", engine_of(&op));
    assert_eq!(client.call(Method::GET, &path, None).await.0, 200);
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 9, "FAILED_PRECONDITION: {done}");
    assert_eq!(client.call(Method::GET, &path, None).await.0, 404);

    // Wrong mode (ingress gateway used for egress).
    let (_, op) = create(&client, PARENT, bound_engine(Some(INGRESS_GW), None)).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 9, "{done}");

    // Another region.
    let elsewhere = "projects/sluice-demo/locations/europe-west1/agentGateways/egress-gw";
    let (_, op) = create(&client, PARENT, bound_engine(Some(elsewhere), None)).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 9, "{done}");

    // Right gateways, but the service agent holds nothing.
    let (_, op) = create(&client, PARENT, bound_engine(Some(EGRESS_GW), Some(INGRESS_GW))).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 7, "PERMISSION_DENIED: {done}");

    // A custom role without .use is not enough.
    let role = make_custom_role(&client, &["networkservices.agentGateways.get"]).await;
    grant_service_agent(&client, &role).await;
    client.advance(PROPAGATION_SECONDS).await;
    let (_, op) = create(&client, PARENT, bound_engine(Some(EGRESS_GW), None)).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 7, "{done}");
}

#[tokio::test]
async fn a_custom_role_grant_binds_only_once_propagated() {
    let (_emulator, client) = start().await;
    make_gateway(&client, "egress-gw", "AGENT_TO_ANYWHERE").await;
    make_gateway(&client, "ingress-gw", "CLIENT_TO_AGENT").await;
    let role = make_custom_role(
        &client,
        &[
            "networkservices.agentGateways.get",
            "networkservices.agentGateways.use",
        ],
    )
    .await;
    grant_service_agent(&client, &role).await;

    // Not propagated yet.
    let (_, op) = create(&client, PARENT, bound_engine(Some(EGRESS_GW), Some(INGRESS_GW))).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 7, "{done}");

    let (_, op) = create(&client, PARENT, bound_engine(Some(EGRESS_GW), Some(INGRESS_GW))).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(
        done["response"]["spec"]["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]
            ["agentGateway"],
        EGRESS_GW
    );
    let path = format!("v1/{}", engine_of(&op));
    assert_eq!(client.call(Method::GET, &path, None).await.0, 200);
}

#[tokio::test]
async fn a_predefined_role_grant_binds_and_a_bound_engine_cannot_be_unbound() {
    let (_emulator, client) = start().await;
    make_gateway(&client, "egress-gw", "AGENT_TO_ANYWHERE").await;
    grant_service_agent(&client, "roles/networkservices.agentGatewayUser").await;
    client.advance(PROPAGATION_SECONDS).await;
    let (_, op) = create(&client, PARENT, bound_engine(Some(EGRESS_GW), None)).await;
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert!(done.get("error").is_none(), "{done}");
    let path = format!("v1/{}", engine_of(&op));

    // Removing the gateway.
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=spec.deployment_spec.agent_gateway_config"),
            Some(json!({ "spec": {} })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    // Changing it.
    let other = "projects/sluice-demo/locations/us-central1/agentGateways/other-gw";
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=spec"),
            Some(bound_engine(Some(other), None)),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION"))
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("unbind"),
        "{body}"
    );
    // Other fields still change.
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=description"),
            Some(json!({ "description": "still bound" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn agent_identity_fills_the_effective_identity() {
    let (_emulator, client) = start().await;
    let mut body = engine("identity");
    body["spec"]["identityType"] = json!("AGENT_IDENTITY");
    let (_, op) = create(&client, PARENT, body).await;
    let name = engine_of(&op);
    let (_, got) = client.call(Method::GET, &format!("v1/{name}"), None).await;
    assert_eq!(
        got["spec"]["effectiveIdentity"],
        format!("principal://agents.global.proj-{NUMBER}.system.id.goog/resources/aiplatform/{name}")
    );

    // Snake case, as Google's Python SDK sends it.
    let (status, op) = create(
        &client,
        PARENT,
        json!({ "display_name": "sa", "spec": { "service_account": "sa@sluice-demo.iam.gserviceaccount.com" } }),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let (_, got) = client
        .call(Method::GET, &format!("v1/{}", engine_of(&op)), None)
        .await;
    assert_eq!(
        got["spec"]["effectiveIdentity"],
        "sa@sluice-demo.iam.gserviceaccount.com"
    );
}

#[tokio::test]
async fn a_project_without_aiplatform_answers_service_disabled() {
    let (_emulator, client) = start().await;
    let (status, body) = create(
        &client,
        "v1/projects/sluice-other/locations/us-central1",
        engine("x"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(body["error"]["details"][0]["reason"], "SERVICE_DISABLED");
    assert_eq!(
        body["error"]["details"][0]["metadata"]["service"],
        "aiplatform.googleapis.com"
    );
}

#[tokio::test]
async fn operations_get_404s_for_unknown_names() {
    let (_emulator, client) = start().await;
    let (_, op) = create(&client, PARENT, engine("w")).await;
    let (status, _) = client
        .call(
            Method::GET,
            &format!("v1/{}/operations/999", engine_of(&op)),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_deployed_engine_appears_in_agent_registry_after_a_delay_and_leaves_when_deleted() {
    let mut config = EmulatorConfig::default();
    config.delays.engine_operation = 100.0;
    config.delays.registry_agent = 50.0;
    config.organizations[0].projects[0].enabled_services = vec![
        "aiplatform.googleapis.com".into(),
        "agentregistry.googleapis.com".into(),
    ];
    let (_emulator, client) = Client::start_with(config).await;
    let agents = "v1/projects/sluice-demo/locations/us-central1/agents";
    let (status, op) = create(&client, PARENT, engine("Support bot")).await;
    assert_eq!(status, 200, "{op}");
    let engine_name = engine_of(&op);
    let id = engine_name.rsplit('/').next().unwrap().to_string();

    // The configured operation duration, not the default 300 s.
    client.advance(99.0).await;
    assert!(operation(&client, "v1", op["name"].as_str().unwrap())
        .await
        .1
        .get("done")
        .is_none());
    client.advance(1.0).await;
    assert_eq!(
        operation(&client, "v1", op["name"].as_str().unwrap()).await.1["done"],
        true
    );
    assert!(
        registry_agents(&client).await.is_empty(),
        "not registered the moment it is deployed"
    );

    client.advance(50.0).await;
    let registered = registry_agents(&client).await;
    assert_eq!(registered.len(), 1, "{registered:?}");
    let agent = &registered[0];
    assert_eq!(
        agent["name"],
        format!("projects/sluice-demo/locations/us-central1/agents/{id}")
    );
    assert_eq!(agent["displayName"], "Support bot");
    assert_eq!(
        agent["attributes"]["agentregistry.googleapis.com/system/RuntimeReference"]["uri"],
        format!("//aiplatform.googleapis.com/{engine_name}")
    );
    let (status, got) = client.call(Method::GET, &format!("{agents}/{id}"), None).await;
    assert_eq!((status, &got), (200, agent));

    let (status, _) = client
        .call(Method::DELETE, &format!("{PARENT}/reasoningEngines/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert!(
        registry_agents(&client).await.is_empty(),
        "a deleted engine leaves the registry"
    );
}

#[tokio::test]
async fn an_engine_that_fails_to_deploy_is_never_registered() {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0].enabled_services = vec![
        "aiplatform.googleapis.com".into(),
        "agentregistry.googleapis.com".into(),
        "networkservices.googleapis.com".into(),
    ];
    let (_emulator, client) = Client::start_with(config).await;
    // Bound to a gateway that does not exist: the operation ends in error.
    let (status, op) = create(&client, PARENT, bound_engine(Some(EGRESS_GW), None)).await;
    assert_eq!(status, 200, "{op}");
    client.advance(OPERATION_SECONDS + 3600.0).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    assert!(done["error"].is_object(), "{done}");
    let (status, listed) = client
        .call(
            Method::GET,
            "v1/projects/sluice-demo/locations/us-central1/agents",
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    assert!(
        listed["agents"].as_array().is_none_or(|a| a.is_empty()),
        "{listed}"
    );
}

/// The agents Agent Registry lists in the demo project's us-central1.
async fn registry_agents(client: &Client) -> Vec<Value> {
    let (status, body) = client
        .call(
            Method::GET,
            "v1/projects/sluice-demo/locations/us-central1/agents",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["agents"].as_array().cloned().unwrap_or_default()
}

/// The body the Vertex AI SDK sends for `reasoning_engines.ReasoningEngine.create`: proto
/// (snake_case) field names, labels with snake_case keys, and `class_methods` whose items are
/// free-form OpenAPI objects (`type: object`, `additionalProperties: any`). Google converts only
/// the field names its schema declares, so the labels and the class methods come back exactly as
/// sent (the old router camelCased them all: `team_name` became `teamName`, `api_mode` became
/// `apiMode`), while the declared fields given by their proto names are accepted and answered by
/// their JSON names.
#[tokio::test]
async fn a_vertex_sdk_snake_case_create_keeps_label_keys_and_class_methods_as_sent() {
    let (_emulator, client) = start().await;
    let labels = json!({ "team_name": "sluice", "cost_center": "r_and_d" });
    let class_methods = json!([
        {
            "name": "query",
            "api_mode": "",
            "description": "Runs the agent",
            "parameters": {
                "type": "object",
                "properties": { "input": { "type": "string" }, "max_tokens": { "type": "integer" } },
                "required": ["input"],
            },
        },
        { "name": "stream_query", "api_mode": "stream", "parameters": { "additional_properties": true } },
    ]);
    let (status, op) = create(
        &client,
        PARENT,
        json!({
            "display_name": "sdk-agent",
            "description": "deployed by the Vertex AI SDK",
            "labels": labels,
            "spec": {
                "agent_framework": "langchain",
                "package_spec": {
                    "pickle_object_gcs_uri": "gs://bucket/agent.pkl",
                    "dependency_files_gcs_uri": "gs://bucket/dependencies.tar.gz",
                    "requirements_gcs_uri": "gs://bucket/requirements.txt",
                    "python_version": "3.12",
                },
                "class_methods": class_methods,
            },
        }),
    )
    .await;
    assert_eq!(
        status, 200,
        "declared fields by their proto names are accepted: {op}"
    );
    let (status, got) = client
        .call(Method::GET, &format!("v1/{}", engine_of(&op)), None)
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["labels"], labels, "map keys are not field names");
    assert_eq!(
        got["spec"]["classMethods"], class_methods,
        "free-form content is kept exactly"
    );
    assert_eq!(got["displayName"], "sdk-agent");
    assert_eq!(got["spec"]["agentFramework"], "langchain");
    assert_eq!(
        got["spec"]["packageSpec"]["pickleObjectGcsUri"],
        "gs://bucket/agent.pkl"
    );
    assert_eq!(got["spec"]["packageSpec"]["pythonVersion"], "3.12");
    assert!(got.get("display_name").is_none(), "{got}");

    // The label is found again under the key it was created with.
    let (status, listed) = client
        .call(
            Method::GET,
            &format!("{PARENT}/reasoningEngines?filter=labels.team_name%3D%22sluice%22"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed["reasoningEngines"][0]["displayName"], "sdk-agent",
        "{listed}"
    );
}

#[tokio::test]
async fn operations_list_shows_an_engines_running_and_finished_operations_in_pages() {
    let (_emulator, client) = start().await;
    let (_, create_op) = create(&client, PARENT, engine("listed")).await;
    let name = engine_of(&create_op);
    let list = format!("v1/{name}/operations");
    let (status, listed) = client.call(Method::GET, &list, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["operations"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["operations"][0]["name"], create_op["name"]);
    assert!(
        listed["operations"][0].get("done").is_none(),
        "still running: {listed}"
    );

    client.advance(OPERATION_SECONDS).await;
    let (_, patch_op) = client
        .call(
            Method::PATCH,
            &format!("v1/{name}?updateMask=displayName"),
            Some(json!({ "displayName": "renamed" })),
        )
        .await;
    let (_, first) = client
        .call(Method::GET, &format!("{list}?pageSize=1"), None)
        .await;
    assert_eq!(first["operations"][0]["name"], create_op["name"]);
    assert_eq!(first["operations"][0]["done"], true, "{first}");
    let token = first["nextPageToken"].as_str().expect("a second page");
    let (_, second) = client
        .call(
            Method::GET,
            &format!("{list}?pageSize=1&pageToken={}", urlencode(token)),
            None,
        )
        .await;
    assert_eq!(second["operations"][0]["name"], patch_op["name"]);
    assert!(second["operations"][0].get("done").is_none(), "{second}");
    assert!(second.get("nextPageToken").is_none(), "{second}");

    let (status, _) = client
        .call(Method::GET, &format!("{list}?filter=done%3Dfalse"), None)
        .await;
    assert_eq!(status, 400);
    let missing = format!("{PARENT}/reasoningEngines/404/operations");
    assert_eq!(client.call(Method::GET, &missing, None).await.0, 404);
}

/// The Vertex AI host an agent in us-central1 calls Gemini on.
const LLM_HOST: &str = "us-central1-aiplatform.googleapis.com";
const POLICIES: &str = "projects/sluice-demo/locations/us-central1/authzPolicies";

/// An engine bound to the egress gateway; with `uses_llm`, its environment makes google-genai
/// call Gemini on Vertex AI.
fn llm_engine(uses_llm: bool) -> Value {
    let mut body = bound_engine(Some(EGRESS_GW), None);
    if uses_llm {
        body["spec"]["deploymentSpec"]["env"] = json!([
            { "name": "GOOGLE_GENAI_USE_VERTEXAI", "value": "TRUE" },
            { "name": "GOOGLE_CLOUD_PROJECT", "value": "sluice-demo" },
        ]);
    }
    body
}

/// An authorization policy on the egress gateway; with `hosts`, one rule matching those hosts.
fn egress_policy(action: &str, hosts: Option<Value>) -> Value {
    let mut policy = json!({ "target": { "resources": [EGRESS_GW] }, "action": action });
    if let Some(hosts) = hosts {
        policy["httpRules"] = json!([{ "to": { "operations": [{ "hosts": hosts }] } }]);
    }
    policy
}

/// The world of [`start`] with the egress gateway, a service agent allowed to use it, and the
/// authorization policies `policies` (id, body) on it.
async fn start_with_egress_policies(
    policies: Vec<(&str, Value)>,
) -> (sluice_emulator::EmulatorHandle, Client) {
    let (handle, client) = start().await;
    make_gateway(&client, "egress-gw", "AGENT_TO_ANYWHERE").await;
    grant_service_agent(&client, "roles/networkservices.agentGatewayUser").await;
    client.advance(PROPAGATION_SECONDS).await;
    for (id, policy) in policies {
        let path = format!("{PARENT}/authzPolicies?authzPolicyId={id}");
        let (status, body) = client.call(Method::POST, &path, Some(policy)).await;
        assert_eq!(status, 200, "{body}");
    }
    (handle, client)
}

/// Creates `body`, lets its operation finish, and answers the finished operation and whether the
/// engine still exists then.
async fn deployed(client: &Client, body: Value) -> (Value, bool) {
    let (status, op) = create(client, PARENT, body).await;
    assert_eq!(status, 200, "{op}");
    let path = format!("v1/{}", engine_of(&op));
    assert_eq!(
        client.call(Method::GET, &path, None).await.0,
        200,
        "visible while deploying"
    );
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(client, "v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["done"], true, "{done}");
    (done, client.call(Method::GET, &path, None).await.0 == 200)
}

/// Asserts that `done` failed with FAILED_PRECONDITION for the LLM host, denied by `policy`
/// acting as `action`.
fn denied_llm_access(done: &Value, policy: &str, action: &str) {
    assert_eq!(done["error"]["code"], 9, "FAILED_PRECONDITION: {done}");
    let message = done["error"]["message"].as_str().unwrap();
    for said in [LLM_HOST, EGRESS_GW, &format!("{POLICIES}/{policy}, {action})")] {
        assert!(message.contains(said), "{said:?} not in {message}");
    }
}

#[tokio::test]
async fn a_deny_by_default_egress_gateway_fails_the_deploy_of_an_agent_that_calls_gemini() {
    let deny_all = egress_policy("DENY_BY_DEFAULT", None);
    let (_emulator, client) = start_with_egress_policies(vec![("deny-all", deny_all)]).await;
    let (done, exists) = deployed(&client, llm_engine(true)).await;
    denied_llm_access(&done, "deny-all", "DENY_BY_DEFAULT");
    assert_eq!(
        done["error"]["message"],
        format!(
            "Agent Runtime deployment failed: the agent's LLM endpoint {LLM_HOST} is denied by egress \
             agent gateway {EGRESS_GW} (authorization policy {POLICIES}/deny-all, DENY_BY_DEFAULT). \
             Allow the host in an ALLOW authorization policy on the gateway."
        )
    );
    assert!(!exists, "the engine is gone once its create fails");
}

#[tokio::test]
async fn an_allow_policy_for_the_llm_host_lets_the_agent_deploy() {
    let (_emulator, client) = start_with_egress_policies(vec![
        ("deny-all", egress_policy("DENY_BY_DEFAULT", None)),
        (
            "allow-llm",
            egress_policy("ALLOW", Some(json!([{ "exact": LLM_HOST }]))),
        ),
    ])
    .await;
    let (done, exists) = deployed(&client, llm_engine(true)).await;
    assert!(done.get("error").is_none(), "{done}");
    assert!(exists);
}

#[tokio::test]
async fn an_agent_that_declares_no_llm_access_deploys_behind_deny_by_default() {
    let deny_all = egress_policy("DENY_BY_DEFAULT", None);
    let (_emulator, client) = start_with_egress_policies(vec![("deny-all", deny_all)]).await;
    let (done, exists) = deployed(&client, llm_engine(false)).await;
    assert!(done.get("error").is_none(), "{done}");
    assert!(exists);
}

#[tokio::test]
async fn a_deny_policy_matching_the_llm_host_beats_an_allow_policy() {
    let (_emulator, client) = start_with_egress_policies(vec![
        (
            "allow-llm",
            egress_policy("ALLOW", Some(json!([{ "exact": LLM_HOST }]))),
        ),
        (
            "deny-vertex",
            egress_policy(
                "DENY",
                Some(json!([{ "suffix": "-AIPLATFORM.googleapis.com", "ignoreCase": true }])),
            ),
        ),
    ])
    .await;
    let (done, exists) = deployed(&client, llm_engine(true)).await;
    denied_llm_access(&done, "deny-vertex", "DENY");
    assert!(!exists);
}

#[tokio::test]
async fn a_patch_binding_a_gateway_that_denies_the_llm_fails_and_is_not_applied() {
    let deny_all = egress_policy("DENY_BY_DEFAULT", None);
    let (_emulator, client) = start_with_egress_policies(vec![("deny-all", deny_all)]).await;
    let mut unbound = llm_engine(true);
    unbound["spec"]["deploymentSpec"]
        .as_object_mut()
        .unwrap()
        .remove("agentGatewayConfig");
    let (done, _) = deployed(&client, unbound).await;
    assert!(
        done.get("error").is_none(),
        "an unbound engine is not checked: {done}"
    );
    let path = format!("v1/{}", done["response"]["name"].as_str().unwrap());

    let (status, op) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=spec"),
            Some(llm_engine(true)),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    client.advance(OPERATION_SECONDS).await;
    let (_, done) = operation(&client, "v1", op["name"].as_str().unwrap()).await;
    denied_llm_access(&done, "deny-all", "DENY_BY_DEFAULT");
    let (_, got) = client.call(Method::GET, &path, None).await;
    assert!(
        got["spec"]["deploymentSpec"].get("agentGatewayConfig").is_none(),
        "not applied: {got}"
    );
}
