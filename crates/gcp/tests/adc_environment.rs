//! Application default credentials read the environment as Google's libraries do:
//! `GOOGLE_APPLICATION_CREDENTIALS` (any credential type), gcloud's file under `CLOUDSDK_CONFIG`,
//! the metadata server at `GCE_METADATA_HOST`, and `GOOGLE_CLOUD_QUOTA_PROJECT`. A metadata
//! server that accepts connections but never answers ends the search after `metadata_timeout`
//! with an error saying what was tried. The tests set process-wide variables, so they take
//! turns (`ENV`).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sluice_emulator::{test_authorized_user_json, Emulator, EmulatorConfig};
use sluice_gcp::{Api, ClientOptions, Credentials, GcpClient, Status};

static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// No credentials file, an empty gcloud directory, and the metadata server at `metadata`.
fn bare_environment(gcloud: &std::path::Path, metadata: &str) {
    std::env::remove_var("GOOGLE_APPLICATION_CREDENTIALS");
    std::env::remove_var("GOOGLE_CLOUD_QUOTA_PROJECT");
    std::env::set_var("CLOUDSDK_CONFIG", gcloud);
    std::env::set_var("GCE_METADATA_HOST", metadata);
}

#[tokio::test]
async fn a_metadata_server_that_never_answers_ends_discovery_saying_what_was_tried() {
    let _turn = ENV.lock().await;
    let silent = support::loopback::silent().await;
    let gcloud = tempfile::tempdir().unwrap();
    bare_environment(gcloud.path(), &silent.to_string());
    let error = GcpClient::new(ClientOptions {
        metadata_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    })
    .await
    .unwrap_err();
    assert_eq!(error.status, Status::Config, "{error}");
    let well_known = gcloud.path().join("application_default_credentials.json");
    for tried in [
        "GOOGLE_APPLICATION_CREDENTIALS (not set)".to_string(),
        format!("gcloud's file {} (absent)", well_known.display()),
        format!("the metadata server at http://{silent} (GCE_METADATA_HOST; no answer within 200 ms)"),
    ] {
        assert!(error.message.contains(&tried), "{tried:?} in: {error}");
    }
}

#[tokio::test]
async fn the_metadata_server_at_gce_metadata_host_gives_the_token() {
    let _turn = ENV.lock().await;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let (metadata, mut heads) = support::loopback::answering(
        json!({ "access_token": "ya29.from-metadata", "expires_in": 3599, "token_type": "Bearer" })
            .to_string(),
    )
    .await;
    let gcloud = tempfile::tempdir().unwrap();
    bare_environment(gcloud.path(), &metadata.to_string());
    let client = GcpClient::new(ClientOptions {
        endpoint: Some(emulator.base_url.clone()),
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    client
        .get(
            &Api::ServiceUsage,
            "v1/projects/sluice-demo/services/iam.googleapis.com",
        )
        .await
        .unwrap();
    let head = heads.recv().await.unwrap();
    assert!(
        head.starts_with("GET /computeMetadata/v1/instance/service-accounts/default/token"),
        "{head}"
    );
    assert!(head.to_lowercase().contains("metadata-flavor: google"), "{head}");
}

#[tokio::test]
async fn google_application_credentials_and_the_quota_project_follow_googles_precedence() {
    let _turn = ENV.lock().await;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let gcloud = tempfile::tempdir().unwrap();
    bare_environment(gcloud.path(), "127.0.0.1:9");
    let mut adc: Value = serde_json::from_str(&test_authorized_user_json(&format!(
        "{}/token",
        emulator.base_url
    )))
    .unwrap();
    adc["quota_project_id"] = json!("from-file");
    let file = gcloud.path().join("job.json");
    std::fs::write(&file, adc.to_string()).unwrap();
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &file);
    let client = |flag: Option<&str>| {
        GcpClient::new(ClientOptions {
            endpoint: Some(emulator.base_url.clone()),
            credentials: Credentials::ApplicationDefault,
            quota_project: flag.map(str::to_string),
            ..ClientOptions::default()
        })
    };
    let from_file = client(None).await.unwrap();
    assert_eq!(from_file.quota_project(), Some("from-file"));
    from_file.authenticate().await.unwrap();
    std::env::set_var("GOOGLE_CLOUD_QUOTA_PROJECT", "from-env");
    assert_eq!(client(None).await.unwrap().quota_project(), Some("from-env"));
    assert_eq!(
        client(Some("from-flag")).await.unwrap().quota_project(),
        Some("from-flag")
    );
    std::env::remove_var("GOOGLE_CLOUD_QUOTA_PROJECT");
    let tokens = emulator
        .requests()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/token" && e["status"] == 200)
        .count();
    assert_eq!(
        tokens, 1,
        "the authorized_user file named by the variable got a token"
    );
}
