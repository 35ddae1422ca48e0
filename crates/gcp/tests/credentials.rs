//! A service-account key file (`--credentials KEY.json`) through gcp_auth, unchanged, against
//! the emulator's OAuth2 token endpoint: the client signs a JWT, gets a token, and calls an API
//! with it. A key the token endpoint does not know fails with an error that never shows the key.

use sluice_emulator::{test_service_account_key_json, Emulator, EmulatorConfig};
use sluice_gcp::{Api, ClientOptions, Credentials, GcpClient};

#[tokio::test]
async fn a_key_file_gets_a_token_from_the_token_endpoint_and_calls_an_api() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        key.path(),
        test_service_account_key_json(&format!("{}/token", emulator.base_url)),
    )
    .unwrap();
    let client = GcpClient::new(ClientOptions {
        endpoint: Some(emulator.base_url.clone()),
        credentials: Credentials::KeyFile(key.path().to_path_buf()),
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let service = client
        .get(
            &Api::ServiceUsage,
            "v1/projects/sluice-demo/services/serviceusage.googleapis.com",
        )
        .await
        .unwrap();
    assert_eq!(
        service["name"],
        "projects/100000000001/services/serviceusage.googleapis.com"
    );
    let log = emulator.requests();
    let paths: Vec<(&str, u64)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("/token", 200),
            (
                "/v1/projects/sluice-demo/services/serviceusage.googleapis.com",
                200
            )
        ],
        "one token, then the call"
    );
}

#[tokio::test]
async fn a_key_the_token_endpoint_refuses_fails_without_showing_the_key() {
    let config = EmulatorConfig {
        service_account_keys: vec![],
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.unwrap();
    let key_json = test_service_account_key_json(&format!("{}/token", emulator.base_url));
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), &key_json).unwrap();
    let client = GcpClient::new(ClientOptions {
        endpoint: Some(emulator.base_url.clone()),
        credentials: Credentials::KeyFile(key.path().to_path_buf()),
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let error = client
        .get(
            &Api::ServiceUsage,
            "v1/projects/sluice-demo/services/iam.googleapis.com",
        )
        .await
        .unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("PRIVATE KEY"), "the key never shows");
    assert!(!text.contains("BEGIN"), "the key never shows");
    assert_eq!(
        emulator
            .requests()
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["path"] == "/v1/projects/sluice-demo/services/iam.googleapis.com")
            .count(),
        0,
        "no API call without a token"
    );
}
