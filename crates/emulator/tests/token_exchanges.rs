//! The exchanges beyond the JWT-bearer grant: gcloud user credentials' refresh-token grant on
//! `/token`, Google's STS token exchange on `/v1/token` (Workload Identity Federation), IAM
//! Credentials `generateAccessToken` (its answers checked against the discovery document), and
//! token-endpoint faults configured by the endpoint's service name.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::{
    EmulatorConfig, TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_REFRESH_TOKEN, TEST_SUBJECT_TOKEN,
};
use support::Client;

const AUDIENCE: &str =
    "//iam.googleapis.com/projects/100000000001/locations/global/workloadIdentityPools/ci/providers/github";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn form(client: &Client, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let response = client
        .http
        .post(format!("{}/{path}", client.base))
        .form(fields)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn refresh(client: &Client, secret: &str, refresh_token: &str) -> (u16, Value) {
    let fields = [
        ("grant_type", "refresh_token"),
        ("client_id", TEST_CLIENT_ID),
        ("client_secret", secret),
        ("refresh_token", refresh_token),
    ];
    form(client, "token", &fields).await
}

async fn exchange(client: &Client, subject_token: &str, audience: &str) -> (u16, Value) {
    let fields = [
        ("grant_type", EXCHANGE),
        ("audience", audience),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        ("requested_token_type", ACCESS_TOKEN),
        ("subject_token", subject_token),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    form(client, "v1/token", &fields).await
}

#[tokio::test]
async fn the_refresh_token_grant_accepts_the_configured_user_and_refuses_others() {
    let (_emulator, client) = Client::start().await;
    let (status, body) = refresh(&client, TEST_CLIENT_SECRET, TEST_REFRESH_TOKEN).await;
    assert_eq!(status, 200);
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert_eq!(
        (body["expires_in"].as_u64(), body["token_type"].as_str()),
        (Some(3599), Some("Bearer"))
    );
    let (status, body) = refresh(&client, TEST_CLIENT_SECRET, "1//revoked").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = refresh(&client, "wrong-secret", TEST_REFRESH_TOKEN).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn sts_exchanges_a_trusted_subject_token_for_an_access_token() {
    let (_emulator, client) = Client::start().await;
    let (status, body) = exchange(&client, TEST_SUBJECT_TOKEN, AUDIENCE).await;
    assert_eq!(status, 200);
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    let (status, body) = exchange(&client, "someone-elses-token", AUDIENCE).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = exchange(&client, TEST_SUBJECT_TOKEN, "my-pool").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn generate_access_token_answers_as_iam_credentials_defines_it() {
    let (_emulator, client) = Client::start().await;
    let path =
        "v1/projects/-/serviceAccounts/deployer@sluice-demo.iam.gserviceaccount.com:generateAccessToken";
    let scope = json!({ "scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s" });
    let (status, body) = client.call(Method::POST, path, Some(scope.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["accessToken"].as_str().unwrap().starts_with("ya29."));
    assert!(body["expireTime"].as_str().unwrap().ends_with('Z'));
    let (status, _) = client.send(Method::POST, path, Some(scope.clone()), None).await;
    assert_eq!(status, 401, "the caller needs a token");
    let (status, _) = client
        .call(Method::POST, path, Some(json!({ "scope": [] })))
        .await;
    assert_eq!(status, 400, "scope is required");
    let (status, _) = client
        .call(
            Method::POST,
            path,
            Some(json!({ "scope": ["x"], "lifetime": "7200s" })),
        )
        .await;
    assert_eq!(status, 400, "at most an hour");
    let (status, _) = client
        .call(
            Method::POST,
            "v1/projects/-/serviceAccounts/alice@example.com:generateAccessToken",
            Some(scope),
        )
        .await;
    assert_eq!(status, 404, "not a service account");
}

#[tokio::test]
async fn token_endpoint_faults_apply_only_when_configured_by_name() {
    let mut config = EmulatorConfig::default();
    config.faults.insert(
        "*".into(),
        serde_json::from_value(json!({ "error_503": 1.0 })).unwrap(),
    );
    let (_emulator, client) = Client::start_with(config.clone()).await;
    assert_eq!(
        refresh(&client, TEST_CLIENT_SECRET, TEST_REFRESH_TOKEN).await.0,
        200,
        "* spares /token"
    );
    config.faults.insert(
        "oauth2.googleapis.com".into(),
        serde_json::from_value(json!({ "error_503": 1.0 })).unwrap(),
    );
    config.faults.insert(
        "sts.googleapis.com".into(),
        serde_json::from_value(json!({ "error_503": 1.0 })).unwrap(),
    );
    let (_emulator, client) = Client::start_with(config).await;
    let (status, body) = refresh(&client, TEST_CLIENT_SECRET, TEST_REFRESH_TOKEN).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );
    assert_eq!(exchange(&client, TEST_SUBJECT_TOKEN, AUDIENCE).await.0, 503);
}
