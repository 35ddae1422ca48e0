//! Retries: 503s converge for a GET, RetryInfo is read from a 429, an Unsafe POST is sent
//! once, a Safe one is retried.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sluice_emulator::EmulatorConfig;
use sluice_gcp::{Api, ClientOptions, Code, GcpClient, PostRetry, RetryConfig, Status, TimeScale};
use support::{start, PROJECT};

fn client_options(base: &str, max_attempts: u32) -> ClientOptions {
    ClientOptions {
        retry: RetryConfig {
            max_attempts,
            ..RetryConfig::default()
        },
        ..ClientOptions::emulator(base, "test-token", TimeScale::new(0.001).unwrap())
    }
}

#[tokio::test]
async fn a_get_meeting_503s_converges() {
    let env = start(EmulatorConfig::default(), &[], 0.001).await;
    env.admin.set_faults(json!({ "*": { "error_503": 0.5 } })).await;
    let client = GcpClient::new(client_options(&env.emulator.base_url, 20))
        .await
        .unwrap();
    let path = format!("v1/projects/{PROJECT}/services/iam.googleapis.com");
    for _ in 0..4 {
        let service = client.get(&Api::ServiceUsage, &path).await.unwrap();
        assert_eq!(service["state"], "DISABLED");
    }
    let log = env.admin.calls_to("/services/iam.googleapis.com").await;
    let unavailable = log.iter().filter(|(_, status)| *status == 503).count();
    assert!(unavailable >= 1, "the seed gives some 503s: {log:?}");
    assert_eq!(log.iter().filter(|(_, status)| *status == 200).count(), 4);
    assert_eq!(client.calls(), log.len() as u64, "every attempt counted");
}

#[tokio::test]
async fn a_429_carries_the_retry_info_delay_and_converges_once_the_minute_passes() {
    let config = EmulatorConfig {
        quotas: BTreeMap::from([("serviceusage.googleapis.com".to_string(), 1)]),
        ..EmulatorConfig::default()
    };
    let env = start(config, &[], 0.001).await;
    let path = format!("v1/projects/{PROJECT}/services/iam.googleapis.com");
    // No patience for quota: the 429 comes back at once (with patience it is waited out,
    // without using attempts: tests/rate_limits.rs).
    let once = GcpClient::new(ClientOptions {
        quota_patience: Duration::ZERO,
        ..client_options(&env.emulator.base_url, 1)
    })
    .await
    .unwrap();
    once.get(&Api::ServiceUsage, &path).await.unwrap();
    let error = once.get(&Api::ServiceUsage, &path).await.unwrap_err();
    assert_eq!(error.status, Status::Google(Code::ResourceExhausted));
    assert_eq!(error.reason.as_deref(), Some("RATE_LIMIT_EXCEEDED"));
    let delay = error.retry_delay.expect("RetryInfo kept");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(60),
        "the rest of the minute: {delay:?}"
    );
    assert!(error.is_retryable());

    // With retries, the call converges once emulated time reaches the next minute.
    let client = GcpClient::new(client_options(&env.emulator.base_url, 50))
        .await
        .unwrap();
    let admin = env.admin.clone();
    let advance = async {
        while admin
            .calls_to(&path)
            .await
            .iter()
            .filter(|(_, s)| *s == 429)
            .count()
            < 2
        {
            tokio::task::yield_now().await;
        }
        admin.advance(60.0).await;
    };
    let (result, ()) = tokio::join!(client.get(&Api::ServiceUsage, &path), advance);
    assert_eq!(
        result.unwrap()["name"].as_str().unwrap().rsplit('/').next(),
        Some("iam.googleapis.com")
    );
}

#[tokio::test]
async fn an_unsafe_post_is_sent_once_and_a_safe_one_is_retried() {
    let env = start(
        EmulatorConfig::default(),
        &["aiplatform", "cloudresourcemanager"],
        0.001,
    )
    .await;
    env.admin.set_faults(json!({ "*": { "error_503": 1.0 } })).await;
    let client = GcpClient::new(client_options(&env.emulator.base_url, 3))
        .await
        .unwrap();

    let engines = format!("v1/projects/{PROJECT}/locations/us-central1/reasoningEngines");
    let engine =
        json!({ "displayName": "once", "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://b/a.pkl" } } });
    let region = Api::VertexAi {
        region: "us-central1".into(),
    };
    let error = client
        .post(&region, &engines, &engine, PostRetry::Unsafe)
        .await
        .unwrap_err();
    assert_eq!(error.http_status, Some(503));
    assert_eq!(
        env.admin.calls_to("/reasoningEngines").await,
        [("POST".to_string(), 503)]
    );

    let error = client.project_policy(PROJECT).await.unwrap_err();
    assert_eq!(error.status, Status::Google(Code::Unavailable));
    assert_eq!(
        env.admin.calls_to(":getIamPolicy").await.len(),
        3,
        "max_attempts 3"
    );
    assert_eq!(client.calls(), 4);
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_retried_even_for_an_unsafe_post() {
    // Bind then drop a listener: the port refuses connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = GcpClient::new(client_options(&base, 3)).await.unwrap();
    let error = client
        .post(&Api::Iam, "v1/projects/p/roles", &json!({}), PostRetry::Unsafe)
        .await
        .unwrap_err();
    assert_eq!(error.status, Status::Transport);
    assert!(error.is_retryable());
    assert_eq!(
        client.calls(),
        3,
        "nothing was sent, so retrying cannot duplicate"
    );
    assert_eq!(error.url, "/v1/projects/p/roles");
}

/// A call the server holds far beyond the client's scaled timeout (300 s emulated at 1,000×:
/// 2 s real, the floor) ends with a timeout instead of waiting on a fixed 300 s of real time:
/// here the emulator, in real time, stalls the call for 30 s, which the old client waited out.
#[tokio::test]
async fn a_stalled_call_times_out_on_the_scaled_clock_not_after_300_real_seconds() {
    let config = EmulatorConfig {
        time_scale: 1.0,
        latency_ms: 30_000.0,
        ..EmulatorConfig::default()
    };
    let env = start(config, &[], 0.001).await;
    let client = GcpClient::new(client_options(&env.emulator.base_url, 1))
        .await
        .unwrap();
    let path = format!("v1/projects/{PROJECT}/services/iam.googleapis.com");
    let error = client.get(&Api::ServiceUsage, &path).await.unwrap_err();
    assert_eq!(error.status, Status::Transport, "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
}
