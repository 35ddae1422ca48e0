//! Base URLs per API (regional Vertex AI included), the one override, and the http refusal.

use sluice_gcp::{Api, ClientOptions, Credentials, GcpClient, Secret, Status, TimeScale};

fn token() -> Credentials {
    Credentials::StaticToken(Secret::new("test-token"))
}

#[tokio::test]
async fn google_hosts_per_api_with_regional_vertex_ai() {
    let client = GcpClient::new(ClientOptions {
        credentials: token(),
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let cases = [
        (Api::ServiceUsage, "https://serviceusage.googleapis.com"),
        (Api::Iam, "https://iam.googleapis.com"),
        (
            Api::ResourceManager,
            "https://cloudresourcemanager.googleapis.com",
        ),
        (Api::NetworkServices, "https://networkservices.googleapis.com"),
        (
            Api::VertexAi {
                region: "europe-west4".into(),
            },
            "https://europe-west4-aiplatform.googleapis.com",
        ),
        (Api::AgentRegistry, "https://agentregistry.googleapis.com"),
        (Api::OrgPolicy, "https://orgpolicy.googleapis.com"),
    ];
    for (api, url) in cases {
        assert_eq!(client.base_url(&api), url, "{api:?}");
    }
}

#[tokio::test]
async fn one_override_serves_every_api_and_loopback_http_is_accepted() {
    for endpoint in [
        "http://127.0.0.1:8085/",
        "http://[::1]:9",
        "http://localhost:1",
        "https://proxy.example.com",
    ] {
        let client = GcpClient::new(ClientOptions {
            endpoint: Some(endpoint.into()),
            credentials: token(),
            ..ClientOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        let trimmed = endpoint.trim_end_matches('/');
        assert_eq!(client.base_url(&Api::Iam), trimmed);
        assert_eq!(
            client.base_url(&Api::VertexAi {
                region: "us-central1".into()
            }),
            trimmed
        );
    }
}

#[tokio::test]
async fn plain_http_elsewhere_is_refused_naming_the_fix() {
    for endpoint in ["http://example.com", "http://10.0.0.1:80", "ftp://127.0.0.1"] {
        let error = GcpClient::new(ClientOptions {
            endpoint: Some(endpoint.into()),
            credentials: token(),
            ..ClientOptions::default()
        })
        .await
        .unwrap_err();
        assert_eq!(error.status, Status::Config);
        assert!(error.message.contains(endpoint), "{error}");
        assert!(error.message.contains("https://"), "names the fix: {error}");
    }
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output() {
    let secret = Secret::new("ya29.very-secret");
    assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
    let client = GcpClient::new(ClientOptions::emulator(
        "http://127.0.0.1:1",
        "ya29.very-secret",
        TimeScale::REAL,
    ))
    .await
    .unwrap();
    let shown = format!(
        "{client:?} {:?}",
        ClientOptions::emulator("http://127.0.0.1:1", "ya29.very-secret", TimeScale::REAL)
    );
    assert!(!shown.contains("very-secret"), "{shown}");
}
