//! Authorization on agent gateways: Network Services v1 authzExtensions, Network Security v1
//! authzPolicies (create / get / list / patch / delete as operations, Google's Agent Gateway
//! limits), and the Model Armor template read.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::{ModelArmorTemplateConfig, ProjectConfig};
use sluice_emulator::{discovery, EmulatorConfig};
use support::Client;

const NUMBER: u64 = 100_000_000_001;
const PARENT: &str = "v1/projects/sluice-demo/locations/us-central1";
const NAMES: &str = "projects/sluice-demo/locations/us-central1";
/// The emulator's (undocumented by Google) authorization operation duration.
const OPERATION_SECONDS: f64 = 60.0;
const MODEL_ARMOR: &str = "modelarmor.us-central1.rep.googleapis.com";

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0] = ProjectConfig::new(
        "sluice-demo",
        NUMBER,
        &[
            "networkservices.googleapis.com",
            "networksecurity.googleapis.com",
            "modelarmor.googleapis.com",
        ],
    );
    config.organizations[0]
        .projects
        .push(ProjectConfig::new("sluice-other", 100_000_000_002, &[]));
    config.model_armor_templates = vec![ModelArmorTemplateConfig {
        project: "sluice-demo".into(),
        location: "us-central1".into(),
        template_id: "prompts".into(),
        labels: [("team".to_string(), "a".to_string())].into(),
        filter_config: Some(json!({ "raiSettings": { "raiFilters": [
            { "filterType": "HARASSMENT", "confidenceLevel": "MEDIUM_AND_ABOVE" }
        ] } })),
    }];
    let (handle, client) = Client::start_with(config).await;
    for (id, mode) in [
        ("egress-gw", "AGENT_TO_ANYWHERE"),
        ("ingress-gw", "CLIENT_TO_AGENT"),
    ] {
        let (status, body) = client
            .call(
                Method::POST,
                &format!("{PARENT}/agentGateways?agentGatewayId={id}"),
                Some(json!({ "googleManaged": { "governedAccessPath": mode } })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    (handle, client)
}

/// The world of [`start`] plus two extensions: `armor` (Model Armor) and `iap`.
async fn start_with_extensions() -> (sluice_emulator::EmulatorHandle, Client) {
    let (handle, client) = start().await;
    created(&client, "authzExtensions", "armor", model_armor_extension()).await;
    created(&client, "authzExtensions", "iap", iap_extension()).await;
    (handle, client)
}

fn gateway(id: &str) -> String {
    format!("{NAMES}/agentGateways/{id}")
}

fn extension_name(id: &str) -> String {
    format!("{NAMES}/authzExtensions/{id}")
}

fn model_armor_extension() -> Value {
    json!({
        "service": MODEL_ARMOR,
        "timeout": "1s",
        "failOpen": false,
        "wireFormat": "EXT_PROC_GRPC",
        "metadata": { "model_armor_settings": "[{\"prompt_template_id\": \"projects/sluice-demo/locations/us-central1/templates/prompts\"}]" },
    })
}

fn iap_extension() -> Value {
    json!({ "service": "iap.googleapis.com", "timeout": "1s", "wireFormat": "EXT_AUTHZ_GRPC" })
}

/// A CUSTOM policy on `gateway_id` delegating to the extensions `extensions`.
fn custom_policy(gateway_id: &str, profile: &str, extensions: &[&str]) -> Value {
    let resources: Vec<String> = extensions.iter().map(|e| extension_name(e)).collect();
    json!({
        "target": { "resources": [gateway(gateway_id)] },
        "policyProfile": profile,
        "action": "CUSTOM",
        "customProvider": { "authzExtension": { "resources": resources } },
    })
}

fn allow_policy(gateway_id: &str) -> Value {
    json!({
        "target": { "resources": [gateway(gateway_id)] },
        "action": "ALLOW",
        "httpRules": [{ "to": { "operations": [{ "hosts": [{ "exact": "us-central1-aiplatform.googleapis.com" }] }] } }],
    })
}

async fn create(client: &Client, collection: &str, id: &str, body: Value) -> (u16, Value) {
    let param = match collection {
        "authzExtensions" => "authzExtensionId",
        _ => "authzPolicyId",
    };
    client
        .call(
            Method::POST,
            &format!("{PARENT}/{collection}?{param}={id}"),
            Some(body),
        )
        .await
}

async fn get(client: &Client, collection: &str, id: &str) -> (u16, Value) {
    client
        .call(Method::GET, &format!("{PARENT}/{collection}/{id}"), None)
        .await
}

async fn list(client: &Client, collection: &str) -> Vec<String> {
    let (status, body) = client
        .call(Method::GET, &format!("{PARENT}/{collection}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body[collection]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["name"].as_str()?.rsplit('/').next().map(str::to_string))
        .collect()
}

fn refused(answer: &(u16, Value), status: u16, code: &str) -> String {
    assert_eq!(
        (answer.0, answer.1["error"]["status"].as_str()),
        (status, Some(code)),
        "{}",
        answer.1
    );
    answer.1["error"]["message"].as_str().unwrap().to_string()
}

async fn patch(client: &Client, collection: &str, id: &str, mask: &str, body: Value) -> (u16, Value) {
    let path = format!("{PARENT}/{collection}/{id}?updateMask={mask}");
    client.call(Method::PATCH, &path, Some(body)).await
}

/// The message of a refused create, whose status and code are asserted.
async fn create_refused(
    client: &Client,
    collection: &str,
    id: &str,
    body: Value,
    status: u16,
    code: &str,
) -> String {
    refused(&create(client, collection, id, body).await, status, code)
}

/// Asserts that a policy create is refused as 400 FAILED_PRECONDITION (one of Google's limits)
/// with a message that says each of `says`.
async fn limit_refused(client: &Client, id: &str, body: Value, says: &[&str]) {
    let message = create_refused(client, "authzPolicies", id, body, 400, "FAILED_PRECONDITION").await;
    for said in says {
        assert!(message.contains(said), "{said:?} not in {message}");
    }
}

/// Polls an operation, checking it against the document of the API that made it (the support
/// client's automatic check looks the shared operations path up in the first document with it).
async fn operation(client: &Client, document: &str, name: &str) -> Value {
    let (status, body) = client.call(Method::GET, &format!("v1/{name}"), None).await;
    assert_eq!(status, 200, "{body}");
    let mut problems = discovery::check(document, "Operation", &body);
    problems.extend(discovery::check(document, "OperationMetadata", &body["metadata"]));
    if let Some(type_url) = body["response"]["@type"].as_str() {
        if !type_url.ends_with("protobuf.Empty") {
            let schema = type_url.rsplit('.').next().unwrap();
            problems.extend(discovery::check(document, schema, &body["response"]));
        }
    }
    assert!(problems.is_empty(), "{problems:?}\n{body}");
    body
}

/// Creates and lets the operation finish.
async fn created(client: &Client, collection: &str, id: &str, body: Value) -> Value {
    let (status, op) = create(client, collection, id, body).await;
    assert_eq!(status, 200, "{op}");
    op
}

#[tokio::test]
async fn an_extension_is_created_read_listed_patched_and_deleted_through_operations() {
    let (_emulator, client) = start().await;
    let (status, op) = create(&client, "authzExtensions", "armor", model_armor_extension()).await;
    assert_eq!(status, 200, "{op}");
    let op_name = op["name"].as_str().unwrap().to_string();
    assert!(
        op_name.starts_with(&format!("{NAMES}/operations/operation-")),
        "{op_name}"
    );
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.cloud.networkservices.v1.OperationMetadata"
    );
    assert_eq!(op["metadata"]["verb"], "create");
    assert_eq!(op["metadata"]["target"], extension_name("armor"));
    assert!(op.get("done").is_none(), "{op}");

    let (status, extension) = get(&client, "authzExtensions", "armor").await;
    assert_eq!(status, 200, "{extension}");
    assert_eq!(extension["name"], extension_name("armor"));
    assert_eq!(extension["service"], MODEL_ARMOR);
    assert_eq!(extension["metadata"], model_armor_extension()["metadata"]);
    assert!(extension["createTime"].is_string() && extension["updateTime"].is_string());
    assert!(
        extension.get("etag").is_none(),
        "AuthzExtension has no etag: {extension}"
    );

    client.advance(OPERATION_SECONDS - 1.0).await;
    assert!(operation(&client, "networkservices.v1", &op_name)
        .await
        .get("done")
        .is_none());
    client.advance(1.0).await;
    let done = operation(&client, "networkservices.v1", &op_name).await;
    assert_eq!(done["done"], true);
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.cloud.networkservices.v1.AuthzExtension"
    );
    assert_eq!(done["response"]["name"], extension["name"]);

    // Listing pages through the location's extensions only.
    created(&client, "authzExtensions", "iap", iap_extension()).await;
    let europe = "v1/projects/sluice-demo/locations/europe-west1";
    let (status, _) = client
        .call(
            Method::POST,
            &format!("{europe}/authzExtensions?authzExtensionId=elsewhere"),
            Some(iap_extension()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list(&client, "authzExtensions").await, ["armor", "iap"]);
    let (status, first) = client
        .call(Method::GET, &format!("{PARENT}/authzExtensions?pageSize=1"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(first["authzExtensions"].as_array().unwrap().len(), 1);
    let token = first["nextPageToken"]
        .as_str()
        .unwrap()
        .replace('/', "%2F")
        .replace(':', "%3A");
    let (_, second) = client
        .call(
            Method::GET,
            &format!("{PARENT}/authzExtensions?pageSize=1&pageToken={token}"),
            None,
        )
        .await;
    assert_eq!(second["authzExtensions"][0]["name"], extension_name("iap"));
    assert!(second.get("nextPageToken").is_none());

    // Patch: only the masked fields change.
    let path = format!("{PARENT}/authzExtensions/armor");
    let (status, op) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=failOpen,labels"),
            Some(json!({ "failOpen": true, "labels": { "team": "b" }, "service": "iap.googleapis.com" })),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["metadata"]["verb"], "update");
    let (_, after) = get(&client, "authzExtensions", "armor").await;
    assert_eq!(after["failOpen"], true);
    assert_eq!(after["labels"], json!({ "team": "b" }));
    assert_eq!(after["service"], MODEL_ARMOR, "not in the mask");
    assert_eq!(after["createTime"], extension["createTime"]);
    // Google's AuthzExtension has no etag: a body carrying one is refused as an unknown field.
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=failOpen"),
            Some(json!({ "failOpen": false, "etag": "abc" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = client
        .call(Method::PATCH, &format!("{path}?updateMask=name"), Some(json!({})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = patch(
        &client,
        "authzExtensions",
        "nope",
        "failOpen",
        json!({ "failOpen": true }),
    )
    .await;
    assert_eq!(status, 404);

    // Delete: gone at once, the operation answers Empty.
    let (status, op) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(get(&client, "authzExtensions", "armor").await.0, 404);
    assert_eq!(client.call(Method::DELETE, &path, None).await.0, 404);
    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, "networkservices.v1", op["name"].as_str().unwrap()).await;
    assert_eq!(
        done["response"],
        json!({ "@type": "type.googleapis.com/google.protobuf.Empty" })
    );
}

#[tokio::test]
async fn a_policy_is_created_read_listed_patched_and_deleted_through_operations() {
    let (_emulator, client) = start().await;
    created(&client, "authzExtensions", "armor", model_armor_extension()).await;
    let (status, op) = create(
        &client,
        "authzPolicies",
        "content",
        custom_policy("egress-gw", "CONTENT_AUTHZ", &["armor"]),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.cloud.networksecurity.v1.OperationMetadata"
    );
    let op_name = op["name"].as_str().unwrap().to_string();
    assert!(op_name.starts_with(&format!("{NAMES}/operations/")), "{op_name}");

    let (status, policy) = get(&client, "authzPolicies", "content").await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["name"], format!("{NAMES}/authzPolicies/content"));
    assert_eq!(policy["target"]["resources"], json!([gateway("egress-gw")]));
    assert_eq!(policy["policyProfile"], "CONTENT_AUTHZ");
    assert_eq!(
        policy["customProvider"]["authzExtension"]["resources"],
        json!([extension_name("armor")])
    );

    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, "networksecurity.v1", &op_name).await;
    assert_eq!(done["done"], true);
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.cloud.networksecurity.v1.AuthzPolicy"
    );

    // An unset profile is REQUEST_AUTHZ, and shown so.
    created(&client, "authzPolicies", "allow-llm", allow_policy("egress-gw")).await;
    let (_, allow) = get(&client, "authzPolicies", "allow-llm").await;
    assert_eq!(allow["policyProfile"], "REQUEST_AUTHZ");
    assert_eq!(list(&client, "authzPolicies").await, ["allow-llm", "content"]);

    // A policy's extension cannot be deleted while the policy uses it.
    let message = refused(
        &client
            .call(Method::DELETE, &format!("{PARENT}/authzExtensions/armor"), None)
            .await,
        400,
        "FAILED_PRECONDITION",
    );
    assert!(message.contains("authzPolicies/content"), "{message}");

    let path = format!("{PARENT}/authzPolicies/content");
    let (status, op) = client
        .call(
            Method::PATCH,
            &format!("{path}?updateMask=description"),
            Some(json!({ "description": "Model Armor on prompts" })),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let (_, patched) = get(&client, "authzPolicies", "content").await;
    assert_eq!(patched["description"], "Model Armor on prompts");
    assert_eq!(patched["target"], policy["target"]);
    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, "networksecurity.v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["response"]["description"], "Model Armor on prompts");

    let (status, op) = client.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(get(&client, "authzPolicies", "content").await.0, 404);
    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, "networksecurity.v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["done"], true);
    // Now the extension is free.
    let (status, _) = client
        .call(Method::DELETE, &format!("{PARENT}/authzExtensions/armor"), None)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn ids_are_required_valid_and_unique() {
    let (_emulator, client) = start().await;
    let answer = client
        .call(
            Method::POST,
            &format!("{PARENT}/authzExtensions"),
            Some(iap_extension()),
        )
        .await;
    refused(&answer, 400, "INVALID_ARGUMENT");
    create_refused(
        &client,
        "authzPolicies",
        "Bad_Id",
        allow_policy("egress-gw"),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    created(&client, "authzExtensions", "iap", iap_extension()).await;
    create_refused(
        &client,
        "authzExtensions",
        "iap",
        iap_extension(),
        409,
        "ALREADY_EXISTS",
    )
    .await;
}

#[tokio::test]
async fn an_egress_gateway_takes_at_most_four_policies() {
    let (_emulator, client) = start_with_extensions().await;
    created(
        &client,
        "authzPolicies",
        "p1",
        custom_policy("egress-gw", "CONTENT_AUTHZ", &["armor"]),
    )
    .await;
    created(
        &client,
        "authzPolicies",
        "p2",
        custom_policy("egress-gw", "REQUEST_AUTHZ", &["iap"]),
    )
    .await;
    created(&client, "authzPolicies", "p3", allow_policy("egress-gw")).await;
    // Named by project number, the gateway is the same gateway.
    let mut by_number = allow_policy("egress-gw");
    by_number["target"]["resources"] =
        json!([gateway("egress-gw").replace("sluice-demo", &NUMBER.to_string())]);
    created(&client, "authzPolicies", "p4", by_number).await;

    limit_refused(
        &client,
        "p5",
        allow_policy("egress-gw"),
        &["at most 4", &gateway("egress-gw")],
    )
    .await;
    assert_eq!(
        get(&client, "authzPolicies", "p5").await.0,
        404,
        "nothing created"
    );
    assert_eq!(list(&client, "authzPolicies").await, ["p1", "p2", "p3", "p4"]);

    // Once one is deleted there is room again.
    assert_eq!(
        client
            .call(Method::DELETE, &format!("{PARENT}/authzPolicies/p3"), None)
            .await
            .0,
        200
    );
    created(&client, "authzPolicies", "p5", allow_policy("egress-gw")).await;
}

#[tokio::test]
async fn an_ingress_gateway_takes_a_single_content_authz_policy() {
    let (_emulator, client) = start_with_extensions().await;

    // A REQUEST_AUTHZ policy, explicit or by default, is refused.
    limit_refused(
        &client,
        "request",
        custom_policy("ingress-gw", "REQUEST_AUTHZ", &["iap"]),
        &["CLIENT_TO_AGENT", "CONTENT_AUTHZ"],
    )
    .await;
    limit_refused(&client, "allow", allow_policy("ingress-gw"), &[]).await;

    created(
        &client,
        "authzPolicies",
        "content",
        custom_policy("ingress-gw", "CONTENT_AUTHZ", &["armor"]),
    )
    .await;
    limit_refused(
        &client,
        "second",
        custom_policy("ingress-gw", "CONTENT_AUTHZ", &["armor"]),
        &["single policy", "authzPolicies/content"],
    )
    .await;
    assert_eq!(
        list(&client, "authzPolicies").await,
        ["content"],
        "nothing else created"
    );

    // A patch that would put a second policy on the ingress gateway is refused too.
    created(
        &client,
        "authzPolicies",
        "on-egress",
        custom_policy("egress-gw", "CONTENT_AUTHZ", &["armor"]),
    )
    .await;
    refused(
        &patch(
            &client,
            "authzPolicies",
            "on-egress",
            "target",
            json!({ "target": { "resources": [gateway("ingress-gw")] } }),
        )
        .await,
        400,
        "FAILED_PRECONDITION",
    );
    let (_, unchanged) = get(&client, "authzPolicies", "on-egress").await;
    assert_eq!(unchanged["target"]["resources"], json!([gateway("egress-gw")]));
}

#[tokio::test]
async fn iap_serves_only_request_authz_and_model_armor_only_content_authz() {
    let (_emulator, client) = start_with_extensions().await;

    limit_refused(
        &client,
        "iap-content",
        custom_policy("egress-gw", "CONTENT_AUTHZ", &["iap"]),
        &["iap.googleapis.com", "REQUEST_AUTHZ"],
    )
    .await;
    limit_refused(
        &client,
        "armor-request",
        custom_policy("egress-gw", "REQUEST_AUTHZ", &["armor"]),
        &[MODEL_ARMOR, "CONTENT_AUTHZ"],
    )
    .await;
    assert!(list(&client, "authzPolicies").await.is_empty(), "nothing created");

    created(
        &client,
        "authzPolicies",
        "iap-request",
        custom_policy("egress-gw", "REQUEST_AUTHZ", &["iap"]),
    )
    .await;
    // A patch pointing the REQUEST_AUTHZ policy at the Model Armor extension is refused too.
    refused(
        &patch(
            &client,
            "authzPolicies",
            "iap-request",
            "customProvider",
            json!({ "customProvider": { "authzExtension": { "resources": [extension_name("armor")] } } }),
        )
        .await,
        400,
        "FAILED_PRECONDITION",
    );
    // So is repointing the extension the REQUEST_AUTHZ policy uses at Model Armor.
    let to_model_armor = json!({ "service": MODEL_ARMOR });
    let answer = patch(&client, "authzExtensions", "iap", "service", to_model_armor).await;
    refused(&answer, 400, "FAILED_PRECONDITION");
    let (_, unchanged) = get(&client, "authzPolicies", "iap-request").await;
    assert_eq!(
        unchanged["customProvider"]["authzExtension"]["resources"],
        json!([extension_name("iap")])
    );
}

#[tokio::test]
async fn the_policy_profile_is_immutable() {
    let (_emulator, client) = start().await;
    created(&client, "authzExtensions", "armor", model_armor_extension()).await;
    created(
        &client,
        "authzPolicies",
        "content",
        custom_policy("egress-gw", "CONTENT_AUTHZ", &["armor"]),
    )
    .await;
    let message = refused(
        &patch(
            &client,
            "authzPolicies",
            "content",
            "policyProfile",
            json!({ "policyProfile": "REQUEST_AUTHZ" }),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
    );
    assert!(
        message.contains("policyProfile") && message.contains("immutable"),
        "{message}"
    );
    let (_, policy) = get(&client, "authzPolicies", "content").await;
    assert_eq!(policy["policyProfile"], "CONTENT_AUTHZ");
    // Sending the same profile again is no change, and fine.
    let (status, body) = patch(
        &client,
        "authzPolicies",
        "content",
        "policyProfile,description",
        json!({ "policyProfile": "CONTENT_AUTHZ", "description": "x" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn model_armor_in_another_region_is_refused() {
    let (_emulator, client) = start().await;
    let mut body = model_armor_extension();
    body["service"] = json!("modelarmor.europe-west1.rep.googleapis.com");
    let message = create_refused(
        &client,
        "authzExtensions",
        "armor",
        body.clone(),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    assert!(
        message.contains("europe-west1") && message.contains("us-central1"),
        "{message}"
    );
    assert_eq!(
        get(&client, "authzExtensions", "armor").await.0,
        404,
        "nothing created"
    );
    // A patch that moves it to another region is refused the same way.
    created(&client, "authzExtensions", "armor", model_armor_extension()).await;
    refused(
        &patch(&client, "authzExtensions", "armor", "service", body).await,
        400,
        "INVALID_ARGUMENT",
    );
    // Other checks of Google's field docs: a timeout out of range, no service.
    let mut slow = iap_extension();
    slow["timeout"] = json!("11s");
    create_refused(&client, "authzExtensions", "slow", slow, 400, "INVALID_ARGUMENT").await;
    create_refused(
        &client,
        "authzExtensions",
        "nothing",
        json!({ "timeout": "1s" }),
        400,
        "INVALID_ARGUMENT",
    )
    .await;
}

#[tokio::test]
async fn what_a_policy_names_must_exist_in_its_location() {
    let (_emulator, client) = start().await;
    create_refused(
        &client,
        "authzPolicies",
        "p",
        allow_policy("no-such-gateway"),
        404,
        "NOT_FOUND",
    )
    .await;
    create_refused(
        &client,
        "authzPolicies",
        "p",
        custom_policy("egress-gw", "CONTENT_AUTHZ", &["no-such-extension"]),
        404,
        "NOT_FOUND",
    )
    .await;
    let mut elsewhere = allow_policy("egress-gw");
    elsewhere["target"]["resources"] =
        json!(["projects/sluice-demo/locations/europe-west1/agentGateways/egress-gw"]);
    create_refused(&client, "authzPolicies", "p", elsewhere, 400, "INVALID_ARGUMENT").await;
    let mut scheme = allow_policy("egress-gw");
    scheme["target"]["loadBalancingScheme"] = json!("INTERNAL_MANAGED");
    create_refused(&client, "authzPolicies", "p", scheme, 400, "INVALID_ARGUMENT").await;
    let mut no_action = allow_policy("egress-gw");
    no_action.as_object_mut().unwrap().remove("action");
    create_refused(&client, "authzPolicies", "p", no_action, 400, "INVALID_ARGUMENT").await;
    let custom_without_provider = json!({
        "target": { "resources": [gateway("egress-gw")] }, "action": "CUSTOM",
    });
    create_refused(
        &client,
        "authzPolicies",
        "p",
        custom_without_provider,
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    let mut deny_by_default = allow_policy("egress-gw");
    deny_by_default["action"] = json!("DENY_BY_DEFAULT");
    create_refused(
        &client,
        "authzPolicies",
        "p",
        deny_by_default,
        400,
        "INVALID_ARGUMENT",
    )
    .await;
    assert!(list(&client, "authzPolicies").await.is_empty());
}

#[tokio::test]
async fn a_model_armor_template_is_read_from_its_project_and_region() {
    let (_emulator, client) = start().await;
    let (status, template) = client
        .call(Method::GET, &format!("{PARENT}/templates/prompts"), None)
        .await;
    assert_eq!(status, 200, "{template}");
    assert_eq!(template["name"], format!("{NAMES}/templates/prompts"));
    assert_eq!(template["labels"], json!({ "team": "a" }));
    assert_eq!(
        template["filterConfig"]["raiSettings"]["raiFilters"][0]["filterType"],
        "HARASSMENT"
    );
    assert!(template["createTime"].is_string() && template["updateTime"].is_string());
    // By project number too.
    let by_number = format!("v1/projects/{NUMBER}/locations/us-central1/templates/prompts");
    assert_eq!(client.call(Method::GET, &by_number, None).await.0, 200);

    refused(
        &client
            .call(Method::GET, &format!("{PARENT}/templates/responses"), None)
            .await,
        404,
        "NOT_FOUND",
    );
    refused(
        &client
            .call(
                Method::GET,
                "v1/projects/sluice-demo/locations/europe-west1/templates/prompts",
                None,
            )
            .await,
        404,
        "NOT_FOUND",
    );
    // Model Armor must be enabled in the template's project.
    let answer = client
        .call(
            Method::GET,
            "v1/projects/sluice-other/locations/us-central1/templates/prompts",
            None,
        )
        .await;
    refused(&answer, 403, "PERMISSION_DENIED");
    assert_eq!(answer.1["error"]["details"][0]["reason"], "SERVICE_DISABLED");
    assert_eq!(
        answer.1["error"]["details"][0]["metadata"]["service"],
        "modelarmor.googleapis.com"
    );
}

#[tokio::test]
async fn a_project_without_network_security_answers_service_disabled() {
    let (_emulator, client) = start().await;
    let parent = "v1/projects/sluice-other/locations/us-central1";
    let answer = client
        .call(
            Method::POST,
            &format!("{parent}/authzPolicies?authzPolicyId=p"),
            Some(allow_policy("egress-gw")),
        )
        .await;
    refused(&answer, 403, "PERMISSION_DENIED");
    assert_eq!(
        answer.1["error"]["details"][0]["metadata"]["service"],
        "networksecurity.googleapis.com"
    );
    let answer = client
        .call(Method::GET, &format!("{parent}/authzExtensions"), None)
        .await;
    refused(&answer, 403, "PERMISSION_DENIED");
    assert_eq!(
        answer.1["error"]["details"][0]["metadata"]["service"],
        "networkservices.googleapis.com"
    );
}

#[tokio::test]
async fn the_state_lists_extensions_and_policies() {
    let (_emulator, client) = start().await;
    created(&client, "authzExtensions", "armor", model_armor_extension()).await;
    created(
        &client,
        "authzPolicies",
        "content",
        custom_policy("ingress-gw", "CONTENT_AUTHZ", &["armor"]),
    )
    .await;
    let (status, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(status, 200);
    let extensions = state["authzExtensions"].as_array().unwrap();
    assert_eq!(extensions.len(), 1);
    assert_eq!(extensions[0]["name"], extension_name("armor"));
    assert_eq!(extensions[0]["metadata"], model_armor_extension()["metadata"]);
    let policies = state["authzPolicies"].as_array().unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0]["target"]["resources"], json!([gateway("ingress-gw")]));
}

#[tokio::test]
async fn a_repeated_request_id_answers_the_first_operation_and_changes_nothing() {
    let (_emulator, client) = start().await;
    let request = "123e4567-e89b-12d3-a456-426614174000";
    let path = format!("{PARENT}/authzExtensions?authzExtensionId=iap&requestId={request}");
    let (status, first) = client.call(Method::POST, &path, Some(iap_extension())).await;
    assert_eq!(status, 200, "{first}");
    let (_, extension) = get(&client, "authzExtensions", "iap").await;
    // The retry of a create whose answer was lost: the same operation, not ALREADY_EXISTS.
    client.advance(10.0).await;
    let (status, again) = client.call(Method::POST, &path, Some(iap_extension())).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["name"], first["name"]);
    let (_, unchanged) = get(&client, "authzExtensions", "iap").await;
    assert_eq!(unchanged, extension);
    // Another request id is another call.
    let other = path.replace("426614174000", "426614174001");
    let answer = client.call(Method::POST, &other, Some(iap_extension())).await;
    refused(&answer, 409, "ALREADY_EXISTS");
    // A malformed one is refused.
    let bad = path.replace(request, "not-a-uuid");
    refused(
        &client.call(Method::POST, &bad, Some(iap_extension())).await,
        400,
        "INVALID_ARGUMENT",
    );

    // Delete too: the retry answers the first delete's operation, not NOT_FOUND.
    let delete = format!("{PARENT}/authzExtensions/iap?requestId={request}");
    let (status, deleted) = client.call(Method::DELETE, &delete, None).await;
    assert_eq!(status, 200, "{deleted}");
    let (status, again) = client.call(Method::DELETE, &delete, None).await;
    assert_eq!((status, &again["name"]), (200, &deleted["name"]));
}

#[tokio::test]
async fn a_failing_operation_leaves_the_world_as_it_was() {
    let (_emulator, client) = start_with_extensions().await;
    let faults = json!({ "networksecurity.googleapis.com": { "operation_error": 1.0 } });
    let (status, _) = client
        .send(Method::POST, "_emulator/faults", Some(faults), None)
        .await;
    assert_eq!(status, 200);
    let op = created(&client, "authzPolicies", "p", allow_policy("egress-gw")).await;
    assert_eq!(get(&client, "authzPolicies", "p").await.0, 404);
    client.advance(OPERATION_SECONDS).await;
    let done = operation(&client, "networksecurity.v1", op["name"].as_str().unwrap()).await;
    assert_eq!(done["error"]["code"], 13, "INTERNAL: {done}");
    assert!(list(&client, "authzPolicies").await.is_empty());
    // Network Services' extensions are not affected.
    let (status, _) = client
        .call(Method::GET, &format!("{PARENT}/authzExtensions/iap"), None)
        .await;
    assert_eq!(status, 200);
}
