//! What goes on the wire, seen by a one-shot fake server: the bearer token, the user agent,
//! the quota-project header; and answers that are not Google's JSON.

use serde_json::json;
use sluice_gcp::{Api, ClientOptions, GcpClient, RetryConfig, Status, TimeScale};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection with `response` (status line + body) and returns the request head.
async fn serve_once(status: &str, body: &str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buffer[..n]);
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.ok();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    (base, server)
}

fn options(base: &str) -> ClientOptions {
    ClientOptions {
        quota_project: Some("billing-project".into()),
        retry: RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        },
        ..ClientOptions::emulator(base, "test-token", TimeScale::new(0.001).unwrap())
    }
}

#[tokio::test]
async fn calls_carry_the_token_user_agent_and_quota_project() {
    let (base, server) = serve_once("200 OK", r#"{"ok": true}"#).await;
    let client = GcpClient::new(options(&base)).await.unwrap();
    let answer = client
        .get(&Api::OrgPolicy, "v2/projects/p/policies?pageSize=5")
        .await
        .unwrap();
    assert_eq!(answer, json!({ "ok": true }));
    let head = server.await.unwrap();
    assert!(
        head.starts_with("get /v2/projects/p/policies?pagesize=5 http/1.1"),
        "{head}"
    );
    assert!(head.contains("authorization: bearer test-token"), "{head}");
    assert!(
        head.contains(&format!("user-agent: sluice/{}", env!("CARGO_PKG_VERSION"))),
        "{head}"
    );
    assert!(head.contains("x-goog-user-project: billing-project"), "{head}");
}

#[tokio::test]
async fn an_error_body_that_is_not_the_envelope_names_the_path_and_status() {
    let (base, server) = serve_once("502 Bad Gateway", "<html>upstream down</html>").await;
    let client = GcpClient::new(options(&base)).await.unwrap();
    let error = client.get(&Api::Iam, "v1/projects/p/roles").await.unwrap_err();
    server.await.unwrap();
    assert_eq!(error.http_status, Some(502));
    assert!(error.is_retryable());
    assert!(
        error.message.contains("/v1/projects/p/roles") && error.message.contains("502"),
        "{error}"
    );
    assert!(!error.to_string().contains("test-token"));
}

#[tokio::test]
async fn a_success_body_that_is_not_json_is_a_bad_response() {
    let (base, server) = serve_once("200 OK", "not json").await;
    let client = GcpClient::new(options(&base)).await.unwrap();
    let error = client.get(&Api::Iam, "v1/projects/p/roles").await.unwrap_err();
    server.await.unwrap();
    assert_eq!(
        (error.status.clone(), error.http_status),
        (Status::BadResponse, Some(200))
    );
    assert!(error.message.contains("/v1/projects/p/roles"), "{error}");
    assert!(error.is_retryable(), "a non-JSON 200 is retried like a 5xx");
}
