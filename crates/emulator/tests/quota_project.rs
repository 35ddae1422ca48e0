//! Where an API's enablement is checked. Google checks a resource-based API (Vertex AI, Network
//! Services, Agent Registry) in the project the call targets, and a client-based one (Resource
//! Manager, IAM role management, Org Policy) in the caller's quota project: the one named by
//! `x-goog-user-project`, else the project of the service account the token was issued to
//! (<https://cloud.google.com/docs/quotas/quota-project>). The old emulator checked every API in
//! the target project.

mod support;

use gcp_auth::TokenProvider;
use reqwest::Method;
use serde_json::Value;
use sluice_emulator::config::{ApiKind, ProjectConfig};
use sluice_emulator::{test_service_account_key_json, EmulatorConfig};
use support::{conforms, Client};

/// The project calls target.
const TARGET: &str = "sluice-target";
const TARGET_NUMBER: u64 = 100_000_000_007;
/// The project the caller names as its quota project.
const BILLING: &str = "sluice-billing";
const BILLING_NUMBER: u64 = 100_000_000_009;
/// The test service account's project (`sluice-test@sluice-demo.iam.gserviceaccount.com`).
const DEMO_NUMBER: u64 = 100_000_000_001;

fn roles() -> String {
    format!("v1/projects/{TARGET}/roles")
}

fn engines() -> String {
    format!("v1/projects/{TARGET}/locations/us-central1/reasoningEngines")
}

/// The target and the billing project, with these APIs enabled in each; sluice-demo has none.
fn world(target: &[&str], billing: &[&str]) -> EmulatorConfig {
    let mut config = EmulatorConfig {
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    let project = |id: &str, number: u64, services: &[&str]| ProjectConfig {
        id: id.into(),
        number,
        enabled_services: services.iter().map(|s| s.to_string()).collect(),
    };
    let projects = &mut config.organizations[0].projects;
    projects.push(project(TARGET, TARGET_NUMBER, target));
    projects.push(project(BILLING, BILLING_NUMBER, billing));
    config
}

/// A GET with a static token and, if given, `x-goog-user-project`.
async fn get(client: &Client, path: &str, quota_project: Option<&str>) -> (u16, Value) {
    let mut request = client
        .http
        .get(format!("{}/{path}", client.base))
        .bearer_auth("test-token");
    if let Some(project) = quota_project {
        request = request.header("x-goog-user-project", project);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    conforms("GET", path, status, &body);
    (status, body)
}

/// The SERVICE_DISABLED ErrorInfo of a 403: (service, consumer).
fn disabled(response: &(u16, Value)) -> (u16, &str, &str, &str) {
    let info = &response.1["error"]["details"][0];
    (
        response.0,
        info["reason"].as_str().unwrap_or_default(),
        info["metadata"]["service"].as_str().unwrap_or_default(),
        info["metadata"]["consumer"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_client_based_api_disabled_in_the_quota_project_is_refused_naming_the_quota_project() {
    let (_emulator, client) = Client::start_with(world(&["iam.googleapis.com"], &[])).await;
    let refused = get(&client, &roles(), Some(BILLING)).await;
    assert_eq!(
        disabled(&refused),
        (
            403,
            "SERVICE_DISABLED",
            "iam.googleapis.com",
            format!("projects/{BILLING_NUMBER}").as_str()
        ),
        "{}",
        refused.1
    );
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(&BILLING_NUMBER.to_string()), "{message}");
    // Without a quota project (a static token names none) the target's enablement counts.
    let (status, body) = get(&client, &roles(), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_client_based_api_enabled_in_the_quota_project_is_accepted_though_disabled_in_the_target() {
    let (_emulator, client) = Client::start_with(world(&[], &["iam.googleapis.com"])).await;
    let (status, body) = get(&client, &roles(), Some(BILLING)).await;
    assert_eq!(status, 200, "{body}");
    // Named by number too.
    let (status, body) = get(&client, &roles(), Some(&BILLING_NUMBER.to_string())).await;
    assert_eq!(status, 200, "{body}");
    let refused = get(&client, &roles(), None).await;
    assert_eq!(
        disabled(&refused).3,
        format!("projects/{TARGET_NUMBER}"),
        "{}",
        refused.1
    );
}

#[tokio::test]
async fn a_resource_based_api_is_checked_in_the_target_whatever_the_quota_project() {
    let (_emulator, client) = Client::start_with(world(&["aiplatform.googleapis.com"], &[])).await;
    let (status, body) = get(&client, &engines(), Some(BILLING)).await;
    assert_eq!(status, 200, "enabled in the target: {body}");

    let (_emulator, client) = Client::start_with(world(&[], &["aiplatform.googleapis.com"])).await;
    let refused = get(&client, &engines(), Some(BILLING)).await;
    assert_eq!(
        disabled(&refused),
        (
            403,
            "SERVICE_DISABLED",
            "aiplatform.googleapis.com",
            format!("projects/{TARGET_NUMBER}").as_str()
        ),
        "{}",
        refused.1
    );
}

#[tokio::test]
async fn a_quota_project_not_in_the_world_is_refused_as_an_invalid_consumer() {
    let (_emulator, client) = Client::start_with(world(&["iam.googleapis.com"], &[])).await;
    let refused = get(&client, &roles(), Some("no-such-project")).await;
    assert_eq!(refused.0, 403, "{}", refused.1);
    assert_eq!(refused.1["error"]["details"][0]["reason"], "CONSUMER_INVALID");
}

#[tokio::test]
async fn the_quota_project_defaults_to_the_service_accounts_project_then_to_the_configured_one() {
    let (emulator, client) = Client::start_with(world(&["iam.googleapis.com"], &[])).await;
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key_file.path(),
        test_service_account_key_json(&format!("{}/token", emulator.base_url)),
    )
    .unwrap();
    let account = gcp_auth::CustomServiceAccount::from_file(key_file.path()).unwrap();
    let token = account
        .token(&["https://www.googleapis.com/auth/cloud-platform"])
        .await
        .unwrap();
    // The token was issued to sluice-test@sluice-demo, and sluice-demo has no IAM.
    let refused = client
        .send(Method::GET, &roles(), None, Some(token.as_str()))
        .await;
    assert_eq!(
        disabled(&refused).3,
        format!("projects/{DEMO_NUMBER}"),
        "the service account's project: {}",
        refused.1
    );

    let mut config = world(&[], &["iam.googleapis.com"]);
    config.default_quota_project = Some(BILLING.into());
    let (_emulator, client) = Client::start_with(config).await;
    let (status, body) = get(&client, &roles(), None).await;
    assert_eq!(status, 200, "the configured default quota project: {body}");
}

#[tokio::test]
async fn an_api_configured_resource_based_ignores_the_quota_project() {
    let mut config = world(&["iam.googleapis.com"], &[]);
    config
        .api_kinds
        .insert("iam.googleapis.com".into(), ApiKind::ResourceBased);
    let (_emulator, client) = Client::start_with(config).await;
    let (status, body) = get(&client, &roles(), Some(BILLING)).await;
    assert_eq!(status, 200, "{body}");
}

/// A client-based API's per-minute quota is the quota project's: two calls about two different
/// projects, both naming the same quota project, share one quota.
#[tokio::test]
async fn a_client_based_api_charges_its_quota_to_the_quota_project() {
    let mut config = world(&[], &["iam.googleapis.com"]);
    config.quotas.insert("iam.googleapis.com".into(), 1);
    let (_emulator, client) = Client::start_with(config).await;
    let (status, body) = get(&client, &roles(), Some(BILLING)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&client, "v1/projects/sluice-demo/roles", Some(BILLING)).await;
    assert_eq!(status, 429, "the quota project's minute is used up: {body}");
    assert_eq!(
        body["error"]["details"][0]["metadata"]["consumer"],
        format!("projects/{BILLING}"),
        "{body}"
    );
}
