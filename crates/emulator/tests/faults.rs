//! Seeded faults and quotas: injected errors by API, the same statuses for the same seed,
//! per-minute quotas answered with RetryInfo, and fault settings changed at runtime.

mod support;

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;
use sluice_emulator::config::FaultConfig;
use sluice_emulator::EmulatorConfig;
use support::Client;

const SERVICE: &str = "v1/projects/sluice-demo/services/iam.googleapis.com";

fn config(seed: u64, faults: &[(&str, FaultConfig)]) -> EmulatorConfig {
    let mut config = EmulatorConfig {
        seed,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.faults = faults
        .iter()
        .map(|(api, f)| (api.to_string(), f.clone()))
        .collect::<BTreeMap<_, _>>();
    config
}

async fn statuses(client: &Client, calls: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..calls {
        out.push(client.call(Method::GET, SERVICE, None).await.0);
    }
    out
}

#[tokio::test]
async fn an_api_configured_to_fail_answers_googles_error_and_others_are_untouched() {
    let unavailable = FaultConfig {
        error_503: 1.0,
        ..FaultConfig::default()
    };
    let (_emulator, client) = Client::start_with(config(1, &[("iam.googleapis.com", unavailable)])).await;
    client
        .call(Method::POST, &format!("{SERVICE}:enable"), Some(json!({})))
        .await;
    client.advance(65.0).await;
    let (status, body) = client
        .call(Method::GET, "v1/projects/sluice-demo/roles", None)
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );
    assert_eq!(
        statuses(&client, 5).await,
        [200; 5],
        "Service Usage has no faults configured"
    );
}

async fn run(seed: u64, faults: &FaultConfig) -> Vec<u16> {
    let (_emulator, client) = Client::start_with(config(seed, &[("*", faults.clone())])).await;
    statuses(&client, 40).await
}

#[tokio::test]
async fn the_same_seed_meets_the_same_faults() {
    let flaky = FaultConfig {
        error_500: 0.3,
        error_429: 0.2,
        ..FaultConfig::default()
    };
    let (first, again, other) = (run(7, &flaky).await, run(7, &flaky).await, run(8, &flaky).await);
    assert_eq!(first, again, "same seed, same calls: same faults");
    assert_ne!(first, other, "another seed draws other faults");
    for status in [200, 500, 429] {
        assert!(first.contains(&status), "{status} in {first:?}");
    }
}

#[tokio::test]
async fn quotas_answer_429_with_retry_info_until_the_next_minute() {
    let mut limited = config(1, &[]);
    limited.quotas.insert("serviceusage.googleapis.com".into(), 3);
    let (_emulator, client) = Client::start_with(limited).await;
    assert_eq!(statuses(&client, 3).await, [200, 200, 200]);
    let (status, body) = client.call(Method::GET, SERVICE, None).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    let details = body["error"]["details"].as_array().unwrap();
    let retry = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    assert!(retry["retryDelay"].as_str().unwrap().ends_with('s'));
    assert!(details
        .iter()
        .any(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure"));
    client.advance(60.0).await;
    assert_eq!(statuses(&client, 1).await, [200], "a new minute, a new allowance");
}

#[tokio::test]
async fn faults_change_at_runtime_and_reset_restores_the_config() {
    let (_emulator, client) = Client::start_with(config(1, &[])).await;
    let failing = json!({ "serviceusage.googleapis.com": { "error_500": 1.0 } });
    let (status, _) = client
        .send(Method::POST, "_emulator/faults", Some(failing.clone()), None)
        .await;
    assert_eq!(status, 200);
    let (_, now) = client.send(Method::GET, "_emulator/faults", None, None).await;
    assert_eq!(now["serviceusage.googleapis.com"]["error_500"], 1.0);
    assert_eq!(statuses(&client, 2).await, [500, 500]);
    let (status, _) = client
        .send(
            Method::POST,
            "_emulator/faults",
            Some(json!({ "x": { "colour": 1 } })),
            None,
        )
        .await;
    assert_eq!(status, 400, "unknown fault fields are refused");
    client.send(Method::POST, "_emulator/reset", None, None).await;
    assert_eq!(statuses(&client, 2).await, [200, 200]);
}
