//! A server whose certificate comes from a CA this machine does not trust (a TLS-inspecting
//! proxy, a private CA) fails the call at once: status TLS, never retried, the message naming the
//! host, saying the issuer is not trusted, and how to add a CA (SSL_CERT_FILE). Both for an API
//! call and for a token request.

mod support;

use std::sync::atomic::Ordering;

use sluice_emulator::test_service_account_key_json;
use sluice_gcp::{ClientOptions, Credentials, GcpClient, Status};

fn assert_untrusted(error: &sluice_gcp::GcpError, host: &str) {
    assert_eq!(error.status, Status::Tls, "{error}");
    assert!(!error.is_retryable(), "{error}");
    assert!(
        error
            .message
            .contains(&format!("certificate of {host} is not trusted")),
        "{error}"
    );
    assert!(error.message.contains("SSL_CERT_FILE"), "{error}");
}

#[tokio::test]
async fn an_untrusted_server_certificate_fails_the_call_at_once_naming_the_host() {
    let (addr, accepted) = support::loopback::untrusted_tls().await;
    let (client, answer) = support::get_over_tls(addr).await;
    let error = answer.unwrap_err();
    assert_untrusted(&error, &addr.to_string());
    assert_eq!(client.calls(), 1, "not retried");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection");
}

#[tokio::test]
async fn an_untrusted_token_endpoint_certificate_fails_the_token_request_at_once() {
    let (addr, accepted) = support::loopback::untrusted_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    std::fs::write(
        &key,
        test_service_account_key_json(&format!("https://{addr}/token")),
    )
    .unwrap();
    let client = GcpClient::new(ClientOptions {
        credentials: Credentials::KeyFile(key),
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let error = client.authenticate().await.unwrap_err();
    assert_untrusted(&error, &addr.to_string());
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "not retried");
}
