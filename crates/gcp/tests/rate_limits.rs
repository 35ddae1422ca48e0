//! Client-side rate limits, checked from the emulator's request log on emulated time: the calls
//! one shared client sends for a service never exceed its rate in any 60-second window, and
//! quotas lower than the demand (per project and per caller) slow calls down without failing
//! any, the limiter halving its rate on 429s and recovering after.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use sluice_emulator::{Emulator, EmulatorConfig};
use sluice_gcp::{Api, ClientOptions, GcpClient, RetryConfig, TimeScale};
use support::PROJECT;

const SERVICE_USAGE: &str = "serviceusage.googleapis.com";

fn path() -> String {
    format!("v1/projects/{PROJECT}/services/iam.googleapis.com")
}

/// The most requests of `service` the log shows arriving in one 60-second window of emulated
/// time (every window that starts at an arrival: the fullest window starts at one).
fn fullest_minute(log: &[Value], service: &str) -> usize {
    let mut arrivals: Vec<u64> = log
        .iter()
        .filter(|e| e["service"] == service)
        .map(|e| e["arrivedMs"].as_u64().expect("arrivedMs in the log"))
        .collect();
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|i| arrivals[i..].partition_point(|t| *t < arrivals[i] + 60_000))
        .max()
        .unwrap_or(0)
}

fn limited(base: &str, token: &str, scale: f64, rpm: u32) -> ClientOptions {
    ClientOptions {
        rate_limits: BTreeMap::from([(SERVICE_USAGE.to_string(), rpm)]),
        ..ClientOptions::emulator(base, token, TimeScale::new(scale).unwrap())
    }
}

/// Sends `calls` GETs of the Service Usage path from `tasks` concurrent tasks through `client`;
/// returns how many failed.
async fn hammer(client: &GcpClient, tasks: usize, calls: usize) -> Vec<String> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let client = client.clone();
        let mine = (task..calls).step_by(tasks).count();
        handles.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..mine {
                if let Err(error) = client.get(&Api::ServiceUsage, &path()).await {
                    failures.push(error.to_string());
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for handle in handles {
        failures.extend(handle.await.unwrap());
    }
    failures
}

/// 60 calls from 50 tasks at a limit of 20 a minute: three windows' worth. Both clocks run 10×
/// faster than real time, so the client's 5 % margin is 300 ms of real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_sent_never_exceed_the_rate_in_any_minute_of_the_servers_clock() {
    const RATE: u32 = 20;
    // Time 10x faster: the limiter's 5 % margin is then 300 ms of real time, more than a loaded
    // machine delays a call between the client and the emulator (at 50x, 60 ms, it once failed
    // with every test of the crate running on two cores; at 20x, 150 ms, once with the whole
    // workspace's tests running on two cores).
    let scale = 0.1;
    let config = EmulatorConfig {
        time_scale: scale,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start(config).await.unwrap();
    let client = GcpClient::new(limited(&emulator.base_url, "test-token", scale, RATE))
        .await
        .unwrap();

    let failures = hammer(&client, 50, 3 * RATE as usize).await;
    assert!(failures.is_empty(), "{failures:?}");

    let log = emulator.requests();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 3 * RATE as usize, "one request per call");
    assert!(log.iter().all(|e| e["status"] == 200));
    let fullest = fullest_minute(log, SERVICE_USAGE);
    assert_eq!(fullest, RATE as usize, "full windows, never more than the rate");

    let stats = client.rate_stats();
    assert_eq!(
        stats.len(),
        1,
        "only the configured service is limited: {stats:?}"
    );
    assert_eq!(stats[0].service, SERVICE_USAGE);
    assert_eq!(stats[0].configured_per_minute, RATE);
    assert_eq!(stats[0].sent, 3 * u64::from(RATE));
    assert!(stats[0].delayed >= 2 * u64::from(RATE) - 1, "{stats:?}");
    assert_eq!(stats[0].exhausted, 0);
}

/// Two callers (two tokens, two clients) share a project whose quota (10 a minute) and whose
/// per-caller quota (8) are below the demand, and below the clients' own limits (30). With one
/// attempt per call, only quota handling can make every call succeed: 429s are waited out
/// without using attempts, and each limiter halves its rate, then recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_below_the_demand_slow_calls_down_and_fail_none() {
    let scale = 0.01;
    let mut config = EmulatorConfig {
        time_scale: scale,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.quotas.insert(SERVICE_USAGE.into(), 10);
    config.caller_quotas.insert(SERVICE_USAGE.into(), 8);
    let emulator = Emulator::start(config).await.unwrap();
    let once = |token: &str| ClientOptions {
        retry: RetryConfig {
            max_attempts: 1,
            ..RetryConfig::default()
        },
        ..limited(&emulator.base_url, token, scale, 30)
    };
    let alice = GcpClient::new(once("alice-token")).await.unwrap();
    let bob = GcpClient::new(once("bob-token")).await.unwrap();

    let (a, b) = tokio::join!(hammer(&alice, 6, 12), hammer(&bob, 6, 12));
    assert!(a.is_empty() && b.is_empty(), "{a:?} {b:?}");

    let log = emulator.requests();
    let log = log.as_array().unwrap();
    assert_eq!(log.iter().filter(|e| e["status"] == 200).count(), 24);
    assert!(log
        .iter()
        .all(|e| matches!(e["status"].as_u64(), Some(200 | 429))));
    assert!(log.iter().any(|e| e["status"] == 429), "the quotas were met");

    let exhausted: u64 = [&alice, &bob].iter().map(|c| c.rate_stats()[0].exhausted).sum();
    assert!(exhausted > 0);
    for client in [&alice, &bob] {
        let before = &client.rate_stats()[0];
        if before.exhausted == 0 {
            continue;
        }
        assert!(before.current_per_minute < 30.0, "halved on 429: {before:?}");
        // In a fresh minute of the emulator's, a call succeeds at once, and by then the rate has
        // grown back some.
        emulator.advance(Duration::from_secs(60));
        client.get(&Api::ServiceUsage, &path()).await.unwrap();
        let after = &client.rate_stats()[0];
        assert!(
            after.current_per_minute > before.current_per_minute || after.current_per_minute == 30.0,
            "recovering: {before:?} then {after:?}"
        );
    }
}

/// A call whose 429s outlast `quota_patience` fails with RESOURCE_EXHAUSTED, still retryable (a
/// step retries it later).
#[tokio::test]
async fn quota_patience_bounds_the_wait() {
    let mut config = EmulatorConfig {
        time_scale: 1.0,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.quotas.insert(SERVICE_USAGE.into(), 1);
    let emulator = Emulator::start(config).await.unwrap();
    let impatient = GcpClient::new(ClientOptions {
        quota_patience: Duration::from_secs(30),
        ..limited(&emulator.base_url, "test-token", 0.001, 100)
    })
    .await
    .unwrap();
    impatient.get(&Api::ServiceUsage, &path()).await.unwrap();
    // The emulator runs in real time: its minute does not end within 30 s × 0.001.
    let error = impatient.get(&Api::ServiceUsage, &path()).await.unwrap_err();
    assert!(error.is_quota_exhausted() && error.is_retryable(), "{error}");
    assert_eq!(
        impatient.rate_stats()[0].exhausted,
        1,
        "one 429, then patience ran out"
    );
}

/// Google refuses a call over quota before running it, so a 429 is retried even for an Unsafe
/// POST (a reasoning engine, whose id the server picks): one engine is created, no duplicate.
#[tokio::test]
async fn an_unsafe_post_refused_for_quota_is_sent_again_and_creates_once() {
    // An emulated minute is 3 s here, and the GET and the first POST are sent at the start of
    // one: on a loaded machine a shorter minute could end between them, and the POST would not
    // be refused at all.
    let mut config = EmulatorConfig {
        time_scale: 0.05,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.quotas.insert("aiplatform.googleapis.com".into(), 1);
    let env = support::start(config, &["aiplatform"], 0.05).await;
    let region = Api::VertexAi {
        region: "us-central1".into(),
    };
    let engines = format!("v1/projects/{PROJECT}/locations/us-central1/reasoningEngines");
    env.admin.start_a_minute().await;
    env.client.get(&region, &engines).await.unwrap();
    let engine = serde_json::json!({ "displayName": "once",
        "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://b/a.pkl" } } });
    env.client
        .post(&region, &engines, &engine, sluice_gcp::PostRetry::Unsafe)
        .await
        .unwrap();
    let posts: Vec<u64> = env
        .admin
        .calls_to("/reasoningEngines")
        .await
        .into_iter()
        .filter(|(method, _)| method == "POST")
        .map(|(_, status)| status)
        .collect();
    assert_eq!(posts.last(), Some(&200));
    assert!(
        posts[..posts.len() - 1].iter().all(|s| *s == 429) && posts.len() >= 2,
        "{posts:?}"
    );
    let state = env.emulator.state();
    assert_eq!(
        state["reasoningEngines"].as_array().map(Vec::len),
        Some(1),
        "{state}"
    );
}
