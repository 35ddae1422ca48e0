//! Every credential type against the emulator's token endpoint (`/token`: JWT-bearer and
//! refresh-token grants), its STS endpoint (`/v1/token`) and IAM Credentials
//! (`generateAccessToken`): each gets a token and calls an API with it, and the request log shows
//! the exchanges Google's libraries would make. Refusals fail at once with the server's reason;
//! token-endpoint 503s are retried like API errors. No secret ever shows.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use sluice_emulator::{
    test_authorized_user_json, test_service_account_key_json, Emulator, EmulatorConfig, EmulatorHandle,
    TEST_REFRESH_TOKEN, TEST_SUBJECT_TOKEN,
};
use sluice_gcp::{Api, ClientOptions, Code, Credentials, GcpClient, RetryConfig, Status, TimeScale};

const SERVICE: &str = "v1/projects/sluice-demo/services/serviceusage.googleapis.com";
const TARGET_SA: &str = "deployer@sluice-demo.iam.gserviceaccount.com";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/100000000001/locations/global/workloadIdentityPools/ci/providers/github";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn options(emulator: &EmulatorHandle, credentials: Credentials) -> ClientOptions {
    ClientOptions {
        endpoint: Some(emulator.base_url.clone()),
        credentials,
        time_scale: TimeScale::new(0.001).unwrap(),
        ..ClientOptions::default()
    }
}

/// The paths the emulator was called on, in order, with their statuses.
fn log(emulator: &EmulatorHandle) -> Vec<(String, u64)> {
    emulator
        .requests()
        .as_array()
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

fn generate_access_token(account: &str) -> String {
    format!("/v1/projects/-/serviceAccounts/{account}:generateAccessToken")
}

/// The log of one token, impersonation, then the call.
fn impersonated_call() -> Vec<(String, u64)> {
    vec![
        ("/token".into(), 200),
        (generate_access_token(TARGET_SA), 200),
        (format!("/{SERVICE}"), 200),
    ]
}

/// The committed test key file, its `token_uri` at the emulator, written in `dir`.
fn test_key(emulator: &EmulatorHandle, dir: &Path, name: &str) -> std::path::PathBuf {
    write(
        dir,
        name,
        &test_service_account_key_json(&format!("{}/token", emulator.base_url)),
    )
}

/// Builds a client from `credentials`, calls one API, and returns the request log.
async fn call_with(emulator: &EmulatorHandle, options: ClientOptions) -> Vec<(String, u64)> {
    let client = GcpClient::new(options).await.unwrap();
    let service = client.get(&Api::ServiceUsage, SERVICE).await.unwrap();
    assert_eq!(
        service["name"],
        "projects/100000000001/services/serviceusage.googleapis.com"
    );
    log(emulator)
}

#[tokio::test]
async fn a_key_file_gets_a_token_from_the_token_endpoint_and_calls_an_api() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = test_key(&emulator, dir.path(), "key.json");
    let calls = call_with(&emulator, options(&emulator, Credentials::KeyFile(key))).await;
    assert_eq!(
        calls,
        [("/token".into(), 200), (format!("/{SERVICE}"), 200)],
        "one token, then the call"
    );
}

#[tokio::test]
async fn an_authorized_user_file_trades_its_refresh_token_and_calls_an_api() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "adc.json",
        &test_authorized_user_json(&format!("{}/token", emulator.base_url)),
    );
    let calls = call_with(&emulator, options(&emulator, Credentials::KeyFile(file))).await;
    assert_eq!(calls, [("/token".into(), 200), (format!("/{SERVICE}"), 200)]);
}

#[tokio::test]
async fn an_external_account_file_exchanges_its_subject_token_at_sts_then_impersonates() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let subject = write(dir.path(), "oidc-token", &format!("{TEST_SUBJECT_TOKEN}\n"));
    let config = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", emulator.base_url),
        "service_account_impersonation_url":
            format!("{}{}", emulator.base_url, generate_access_token(TARGET_SA)),
        "credential_source": { "file": subject, "format": { "type": "text" } },
    });
    let file = write(dir.path(), "wif.json", &config.to_string());
    let calls = call_with(&emulator, options(&emulator, Credentials::KeyFile(file))).await;
    assert_eq!(
        calls,
        [
            ("/v1/token".into(), 200),
            (generate_access_token(TARGET_SA), 200),
            (format!("/{SERVICE}"), 200)
        ],
        "STS exchange, impersonation, then the call"
    );
}

#[tokio::test]
async fn an_external_account_reads_a_url_sourced_subject_token() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (source, mut heads) =
        support::loopback::answering(json!({ "value": TEST_SUBJECT_TOKEN }).to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", emulator.base_url),
        "credential_source": {
            "url": format!("http://{source}/token?resource=api"),
            "headers": { "Metadata": "True" },
            "format": { "type": "json", "subject_token_field_name": "value" }
        },
    });
    let file = write(dir.path(), "wif.json", &config.to_string());
    let calls = call_with(&emulator, options(&emulator, Credentials::KeyFile(file))).await;
    assert_eq!(calls, [("/v1/token".into(), 200), (format!("/{SERVICE}"), 200)]);
    let head = heads.recv().await.unwrap();
    assert!(head.starts_with("GET /token?resource=api "), "{head}");
    assert!(head.to_lowercase().contains("metadata: true"), "{head}");
}

#[tokio::test]
async fn an_impersonated_service_account_file_uses_its_source_then_generate_access_token() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source: Value = serde_json::from_str(&test_authorized_user_json(&format!(
        "{}/token",
        emulator.base_url
    )))
    .unwrap();
    let config = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url":
            format!("{}{}", emulator.base_url, generate_access_token(TARGET_SA)),
        "delegates": [],
        "source_credentials": source,
    });
    let file = write(dir.path(), "impersonated.json", &config.to_string());
    let calls = call_with(&emulator, options(&emulator, Credentials::KeyFile(file))).await;
    assert_eq!(calls, impersonated_call());
}

#[tokio::test]
async fn impersonate_service_account_exchanges_the_keys_token_through_generate_access_token() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = test_key(&emulator, dir.path(), "key.json");
    let calls = call_with(
        &emulator,
        ClientOptions {
            impersonate_service_account: Some(TARGET_SA.into()),
            ..options(&emulator, Credentials::KeyFile(key))
        },
    )
    .await;
    assert_eq!(calls, impersonated_call());
}

#[tokio::test]
async fn a_refused_key_fails_at_once_with_the_servers_reason_and_never_the_key() {
    let config = EmulatorConfig {
        service_account_keys: vec![],
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = test_key(&emulator, dir.path(), "key.json");
    let client = GcpClient::new(options(&emulator, Credentials::KeyFile(key)))
        .await
        .unwrap();
    let error = client.get(&Api::ServiceUsage, SERVICE).await.unwrap_err();
    assert!(
        error.message.contains("invalid_grant: Invalid JWT Signature."),
        "the server's reason: {error}"
    );
    assert!(error.message.contains("key.json"), "names the file: {error}");
    assert_eq!(
        (error.status.clone(), error.http_status),
        (Status::Google(Code::Unauthenticated), Some(400))
    );
    assert!(!error.is_retryable());
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("BEGIN"),
        "the key never shows"
    );
    assert_eq!(
        log(&emulator),
        [("/token".into(), 400)],
        "one refusal, not retried; no API call without a token"
    );
}

#[tokio::test]
async fn a_refused_refresh_token_names_the_reason_never_the_secrets() {
    let emulator = Emulator::start(EmulatorConfig {
        authorized_users: vec![],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "adc.json",
        &test_authorized_user_json(&format!("{}/token", emulator.base_url)),
    );
    let client = GcpClient::new(options(&emulator, Credentials::KeyFile(file)))
        .await
        .unwrap();
    let error = client.authenticate().await.unwrap_err();
    assert!(error.message.contains("invalid_client"), "{error}");
    let text = format!("{error} {error:?}");
    assert!(!text.contains(TEST_REFRESH_TOKEN), "{text}");
    assert!(!text.contains("sluice-test-client-secret"), "{text}");
}

fn flaky_token_endpoint(chance: f64, seed: u64) -> EmulatorConfig {
    let mut config = EmulatorConfig {
        seed,
        ..EmulatorConfig::default()
    };
    config.faults.insert(
        "oauth2.googleapis.com".into(),
        serde_json::from_value(json!({ "error_503": chance })).unwrap(),
    );
    config
}

fn retries(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        ..RetryConfig::default()
    }
}

#[tokio::test]
async fn token_endpoint_503s_are_retried_like_api_errors() {
    // With seed 3, token requests meet 503 before one succeeds (asserted below).
    let emulator = Emulator::start(flaky_token_endpoint(0.5, 3)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = test_key(&emulator, dir.path(), "key.json");
    let calls = call_with(
        &emulator,
        ClientOptions {
            retry: retries(6),
            ..options(&emulator, Credentials::KeyFile(key.clone()))
        },
    )
    .await;
    let tokens: Vec<u64> = calls
        .iter()
        .filter(|(path, _)| path == "/token")
        .map(|(_, status)| *status)
        .collect();
    assert!(tokens.contains(&503), "the seed gives 503s: {calls:?}");
    assert_eq!(tokens.last(), Some(&200), "{calls:?}");
    assert_eq!(calls.last().unwrap(), &(format!("/{SERVICE}"), 200));

    // Always 503: every attempt is used, and the error keeps the status.
    let emulator = Emulator::start(flaky_token_endpoint(1.0, 1)).await.unwrap();
    let key = test_key(&emulator, dir.path(), "key2.json");
    let client = GcpClient::new(ClientOptions {
        retry: retries(4),
        ..options(&emulator, Credentials::KeyFile(key))
    })
    .await
    .unwrap();
    let error = client.authenticate().await.unwrap_err();
    assert_eq!(error.http_status, Some(503), "{error}");
    assert!(error.message.contains("HTTP 503"), "{error}");
    assert!(error.is_retryable());
    assert_eq!(log(&emulator), vec![("/token".to_string(), 503); 4]);
}

#[tokio::test]
async fn the_credentials_files_quota_project_is_sent_unless_the_option_overrides_it() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (api, mut heads) = support::loopback::answering("{}".into()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut adc: Value = serde_json::from_str(&test_authorized_user_json(&format!(
        "{}/token",
        emulator.base_url
    )))
    .unwrap();
    adc["quota_project_id"] = json!("billing-from-file");
    let file = write(dir.path(), "adc.json", &adc.to_string());
    for (option, expected) in [
        (None, "billing-from-file"),
        (Some("billing-from-flag"), "billing-from-flag"),
    ] {
        let client = GcpClient::new(ClientOptions {
            endpoint: Some(format!("http://{api}")),
            credentials: Credentials::KeyFile(file.clone()),
            quota_project: option.map(str::to_string),
            ..ClientOptions::default()
        })
        .await
        .unwrap();
        client.get(&Api::ServiceUsage, SERVICE).await.unwrap();
        let head = heads.recv().await.unwrap().to_lowercase();
        assert!(
            head.contains(&format!("x-goog-user-project: {expected}")),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_fresh_token_is_reused_by_later_and_concurrent_calls() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = test_key(&emulator, dir.path(), "key.json");
    let client = GcpClient::new(options(&emulator, Credentials::KeyFile(key)))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        client.get(&Api::ServiceUsage, SERVICE),
        client.get(&Api::ServiceUsage, SERVICE)
    );
    a.unwrap();
    b.unwrap();
    client.get(&Api::ServiceUsage, SERVICE).await.unwrap();
    let tokens = log(&emulator).iter().filter(|(path, _)| path == "/token").count();
    assert_eq!(tokens, 1, "one token for three calls");
}

#[tokio::test]
async fn impersonation_needs_a_service_account_email_not_a_path() {
    for account in [
        "deployer",
        "a/../../x@p.iam.gserviceaccount.com",
        "x@p.iam.gserviceaccount.com:signJwt",
    ] {
        let error = GcpClient::new(ClientOptions {
            credentials: Credentials::StaticToken(sluice_gcp::Secret::new("t")),
            impersonate_service_account: Some(account.into()),
            ..ClientOptions::default()
        })
        .await
        .unwrap_err();
        assert_eq!(error.status, Status::Config, "{account}: {error}");
        assert!(error.message.contains("by its email"), "{error}");
    }
}
