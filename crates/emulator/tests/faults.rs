//! Seeded faults and quotas: injected errors by API, the same statuses for the same seed,
//! per-minute quotas answered with RetryInfo, fault settings changed at runtime, dropped
//! connections (before the call or with its answer lost), and operations failing as a fault.

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

/// Google's proto3 JSON leaves empty lists out: an error with no detail messages has no
/// `details` key (the old emulator wrote `"details": []`), one with details keeps them.
#[tokio::test]
async fn an_error_without_details_leaves_the_details_key_out() {
    let (_emulator, client) = Client::start_with(config(
        1,
        &[(
            "iam.googleapis.com",
            FaultConfig {
                error_500: 1.0,
                ..FaultConfig::default()
            },
        )],
    ))
    .await;
    let (status, internal) = client
        .call(Method::GET, "v1/projects/sluice-demo/roles", None)
        .await;
    assert_eq!(status, 500, "{internal}");
    assert_eq!(internal["error"]["status"], "INTERNAL");
    assert!(internal["error"].get("details").is_none(), "{internal}");
    let (status, invalid) = client
        .call(Method::GET, "v1/projects/sluice-demo/services:batchGet", None)
        .await;
    assert_eq!(status, 400, "{invalid}");
    assert!(invalid["error"].get("details").is_none(), "{invalid}");
    let (status, disabled) = client
        .call(
            Method::GET,
            "v1/projects/sluice-demo/locations/global/agentGateways",
            None,
        )
        .await;
    assert_eq!(status, 403, "{disabled}");
    assert_eq!(
        disabled["error"]["details"][0]["reason"], "SERVICE_DISABLED",
        "{disabled}"
    );
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

/// The consumer a 429 names in its ErrorInfo, and its message.
fn exhausted_consumer(body: &serde_json::Value) -> (String, String) {
    let info = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .unwrap();
    (
        info["metadata"]["consumer"].as_str().unwrap().to_string(),
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn caller_quotas_count_each_caller_apart_and_project_quotas_still_apply() {
    let mut limited = config(1, &[]);
    limited.quotas.insert("serviceusage.googleapis.com".into(), 3);
    limited
        .caller_quotas
        .insert("serviceusage.googleapis.com".into(), 2);
    let (emulator, client) = Client::start_with(limited).await;
    let get = |token: &'static str| client.send(Method::GET, SERVICE, None, Some(token));
    assert_eq!(get("alice-token").await.0, 200);
    assert_eq!(get("alice-token").await.0, 200);
    let (status, body) = get("alice-token").await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    let (consumer, message) = exhausted_consumer(&body);
    assert!(
        consumer.starts_with("token:") && consumer.len() == 18,
        "{consumer}"
    );
    assert!(
        !message.contains("alice-token"),
        "no token in an answer: {message}"
    );
    assert!(message.contains("per user"), "{message}");

    // Alice's refused call was not counted against the project: Bob has one call left there.
    assert_eq!(get("bob-token").await.0, 200);
    let (status, body) = get("bob-token").await;
    assert_eq!(status, 429);
    assert_eq!(
        exhausted_consumer(&body).0,
        "projects/sluice-demo",
        "the project's quota"
    );

    client.advance(60.0).await;
    assert_eq!(get("alice-token").await.0, 200, "a new minute, a new allowance");

    // The log says, per call, the API and the emulated millisecond it arrived at.
    let log = emulator.requests();
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 6);
    assert!(entries
        .iter()
        .all(|e| e["service"] == "serviceusage.googleapis.com" && e["arrivedMs"].is_u64()));
    let last = entries.last().unwrap()["arrivedMs"].as_u64().unwrap();
    assert!(last >= 60_000, "after the advance: {last}");
    assert_eq!(
        entries
            .iter()
            .map(|e| e["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [200, 200, 429, 200, 429, 200]
    );
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

const PARENT: &str = "v1/projects/sluice-demo/locations/us-central1";
const GATEWAY: &str = "v1/projects/sluice-demo/locations/us-central1/agentGateways/egress-gw";

/// A config whose project has the APIs the operation tests call enabled.
fn enabled(seed: u64, faults: &[(&str, FaultConfig)]) -> EmulatorConfig {
    let mut config = config(seed, faults);
    config.organizations[0].projects[0].enabled_services = vec![
        "networkservices.googleapis.com".into(),
        "aiplatform.googleapis.com".into(),
    ];
    config
}

fn failing_operations() -> FaultConfig {
    FaultConfig {
        operation_error: 1.0,
        ..FaultConfig::default()
    }
}

async fn create_gateway(client: &Client) -> (u16, serde_json::Value) {
    client
        .call(
            Method::POST,
            &format!("{PARENT}/agentGateways?agentGatewayId=egress-gw"),
            Some(json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } })),
        )
        .await
}

/// The operation `op` names, polled through its API.
async fn poll(client: &Client, version: &str, op: &serde_json::Value) -> serde_json::Value {
    let name = op["name"].as_str().unwrap();
    let (status, body) = client.call(Method::GET, &format!("{version}/{name}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn assert_failed(done: &serde_json::Value) {
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(done["error"]["code"], 13, "{done}");
    assert_eq!(done["error"]["message"], "Internal error encountered.");
    assert!(
        done["error"].get("details").is_none(),
        "no details: proto3 JSON leaves the empty list out: {done}"
    );
    assert!(done.get("response").is_none(), "{done}");
}

/// Sends a call the way a client does and answers its status, or `None` when the connection
/// failed without an answer.
async fn raw(client: &Client, method: Method, path: &str, body: Option<serde_json::Value>) -> Option<u16> {
    let mut request = client
        .http
        .request(method, format!("{}/{path}", client.base))
        .bearer_auth("test-token");
    if let Some(body) = body {
        request = request.json(&body);
    }
    match request.send().await {
        Ok(response) => Some(response.status().as_u16()),
        Err(error) => {
            assert!(error.status().is_none(), "{error}");
            None
        }
    }
}

async fn logged_statuses(client: &Client) -> Vec<u64> {
    let (_, log) = client.send(Method::GET, "_emulator/requests", None, None).await;
    log.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["status"].as_u64().unwrap())
        .collect()
}

async fn set_faults(client: &Client, faults: serde_json::Value) {
    let (status, body) = client
        .send(Method::POST, "_emulator/faults", Some(faults), None)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_gateway_create_whose_operation_fails_leaves_no_gateway() {
    let (_emulator, client) = Client::start_with(enabled(
        1,
        &[("networkservices.googleapis.com", failing_operations())],
    ))
    .await;
    let (status, op) = create_gateway(&client).await;
    assert_eq!(status, 200, "{op}");
    assert!(op.get("done").is_none(), "{op}");
    client.advance(120.0).await;
    assert_failed(&poll(&client, "v1", &op).await);
    assert_eq!(client.call(Method::GET, GATEWAY, None).await.0, 404);
}

#[tokio::test]
async fn a_failing_gateway_patch_or_delete_leaves_the_gateway_as_it_was() {
    let (_emulator, client) = Client::start_with(enabled(1, &[])).await;
    create_gateway(&client).await;
    client.advance(120.0).await;
    let (_, before) = client.call(Method::GET, GATEWAY, None).await;
    set_faults(
        &client,
        json!({ "networkservices.googleapis.com": { "operation_error": 1.0 } }),
    )
    .await;
    let (status, patch) = client
        .call(
            Method::PATCH,
            &format!("{GATEWAY}?updateMask=description"),
            Some(json!({ "description": "changed" })),
        )
        .await;
    assert_eq!(status, 200, "{patch}");
    let (status, delete) = client.call(Method::DELETE, GATEWAY, None).await;
    assert_eq!(status, 200, "{delete}");
    client.advance(120.0).await;
    assert_failed(&poll(&client, "v1", &patch).await);
    assert_failed(&poll(&client, "v1", &delete).await);
    let (status, after) = client.call(Method::GET, GATEWAY, None).await;
    assert_eq!((status, after), (200, before));
}

#[tokio::test]
async fn a_reasoning_engine_create_whose_operation_fails_is_gone_once_done() {
    let (_emulator, client) =
        Client::start_with(enabled(1, &[("aiplatform.googleapis.com", failing_operations())])).await;
    let (status, op) = client
        .call(
            Method::POST,
            &format!("{PARENT}/reasoningEngines"),
            Some(json!({ "displayName": "agent" })),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let engine = op["name"]
        .as_str()
        .unwrap()
        .split("/operations/")
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        client.call(Method::GET, &format!("v1/{engine}"), None).await.0,
        200
    );
    client.advance(300.0).await;
    assert_failed(&poll(&client, "v1", &op).await);
    assert_eq!(
        client.call(Method::GET, &format!("v1/{engine}"), None).await.0,
        404
    );
}

#[tokio::test]
async fn a_failing_enable_leaves_the_api_disabled() {
    let (_emulator, client) = Client::start_with(config(
        1,
        &[("serviceusage.googleapis.com", failing_operations())],
    ))
    .await;
    let (status, op) = client
        .call(Method::POST, &format!("{SERVICE}:enable"), Some(json!({})))
        .await;
    assert_eq!(status, 200, "{op}");
    client.advance(65.0).await;
    assert_failed(&poll(&client, "v1", &op).await);
    let (_, service) = client.call(Method::GET, SERVICE, None).await;
    assert_eq!(service["state"], "DISABLED", "{service}");
    assert_eq!(
        client
            .call(Method::GET, "v1/projects/sluice-demo/roles", None)
            .await
            .0,
        403,
        "IAM is still disabled"
    );
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_and_changes_nothing() {
    let dropping = FaultConfig {
        dropped_connection: 1.0,
        ..FaultConfig::default()
    };
    let (_emulator, client) =
        Client::start_with(enabled(1, &[("networkservices.googleapis.com", dropping)])).await;
    let create = raw(
        &client,
        Method::POST,
        &format!("{PARENT}/agentGateways?agentGatewayId=egress-gw"),
        Some(json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } })),
    )
    .await;
    assert_eq!(create, None, "a connection error, not a status");
    assert_eq!(
        raw(&client, Method::GET, SERVICE, None).await,
        Some(200),
        "other APIs answer"
    );
    assert_eq!(
        logged_statuses(&client).await,
        [0, 200],
        "the dropped call is logged as 0"
    );
    set_faults(&client, json!({})).await;
    assert_eq!(
        client.call(Method::GET, GATEWAY, None).await.0,
        404,
        "nothing was created"
    );
}

#[tokio::test]
async fn a_lost_answer_is_a_connection_error_after_the_call_took_effect() {
    let losing = FaultConfig {
        answer_lost: 1.0,
        ..FaultConfig::default()
    };
    let (_emulator, client) =
        Client::start_with(enabled(1, &[("networkservices.googleapis.com", losing)])).await;
    let create = raw(
        &client,
        Method::POST,
        &format!("{PARENT}/agentGateways?agentGatewayId=egress-gw"),
        Some(json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } })),
    )
    .await;
    assert_eq!(create, None, "a connection error, not a status");
    assert_eq!(logged_statuses(&client).await, [0]);
    set_faults(&client, json!({})).await;
    let (status, gateway) = client.call(Method::GET, GATEWAY, None).await;
    assert_eq!(status, 200, "the create happened: {gateway}");
}

async fn outcomes(seed: u64) -> Vec<Option<u16>> {
    let flaky = FaultConfig {
        error_500: 0.2,
        dropped_connection: 0.3,
        ..FaultConfig::default()
    };
    let (_emulator, client) = Client::start_with(config(seed, &[("*", flaky)])).await;
    let mut out = Vec::new();
    for _ in 0..40 {
        out.push(raw(&client, Method::GET, SERVICE, None).await);
    }
    out
}

#[tokio::test]
async fn the_same_seed_drops_the_same_calls() {
    let (first, again, other) = (outcomes(7).await, outcomes(7).await, outcomes(8).await);
    assert_eq!(first, again, "same seed, same calls: same drops");
    assert_ne!(first, other, "another seed drops other calls");
    for outcome in [Some(200), Some(500), None] {
        assert!(first.contains(&outcome), "{outcome:?} in {first:?}");
    }
}

/// A config whose every API call stalls for 300 emulated seconds before it is handled.
fn stalling(time_scale: f64) -> EmulatorConfig {
    EmulatorConfig {
        time_scale,
        latency_ms: 300_000.0,
        ..EmulatorConfig::default()
    }
}

/// The emulated time (`atSeconds`) at which the request log saw each call answered.
async fn answered_at(client: &Client) -> Vec<f64> {
    let (_, log) = client.call(Method::GET, "_emulator/requests", None).await;
    log.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["atSeconds"].as_f64().unwrap())
        .collect()
}

/// A stall is emulated time, like every wait in the emulator: with emulated time all but frozen
/// (a million real seconds per emulated second), a call stalled for 300 s is answered as soon
/// as the admin API advances the clock past its end, at exactly that emulated time, instead of
/// waiting out a real-time delay.
#[tokio::test]
async fn a_stalled_call_ends_once_emulated_time_passes_its_end() {
    let (_emulator, client) = Client::start_with(stalling(1e6)).await;
    let driver = async {
        // Waits (without sleeping) until the call is parked on the emulated clock.
        let started = loop {
            let (_, state) = client.call(Method::GET, "_emulator/state", None).await;
            assert!(state["waitingCalls"].is_u64(), "state counts waiting calls");
            if state["waitingCalls"] == 1 {
                break state["nowSeconds"].as_f64().unwrap();
            }
            tokio::task::yield_now().await;
        };
        client.advance(300.0).await;
        started
    };
    let ((status, body), started) = tokio::join!(client.call(Method::GET, SERVICE, None), driver);
    assert_eq!(status, 200, "{body}");
    let at = answered_at(&client).await;
    assert_eq!(at.len(), 1, "{at:?}");
    assert!(
        at[0] >= started + 300.0 && at[0] < started + 301.0,
        "answered when emulated time reached the stall's end ({started} + 300 s), at {}",
        at[0]
    );
    let (_, state) = client.call(Method::GET, "_emulator/state", None).await;
    assert_eq!(state["waitingCalls"], 0, "{state}");
}

/// Under a small time scale (1,000× faster than real time) a 300 s stall passes by itself, and
/// the emulator's clock shows the call was held for the stall's emulated length.
#[tokio::test]
async fn a_stalled_call_under_a_small_time_scale_ends_after_its_emulated_length() {
    let (_emulator, client) = Client::start_with(stalling(0.001)).await;
    let (status, body) = client.call(Method::GET, SERVICE, None).await;
    assert_eq!(status, 200, "{body}");
    let at = answered_at(&client).await;
    assert_eq!(at.len(), 1, "{at:?}");
    assert!(at[0] >= 300.0, "held for 300 emulated seconds: {at:?}");
}

#[tokio::test]
async fn a_wrong_or_non_json_body_answers_200_and_the_call_has_no_effect() {
    let wrong = FaultConfig {
        wrong_body: 1.0,
        ..FaultConfig::default()
    };
    let mut iam = config(1, &[("*", wrong)]);
    iam.organizations[0].projects[0].enabled_services = vec!["iam.googleapis.com".into()];
    let (_emulator, client) = Client::start_with(iam).await;
    let roles = "v1/projects/sluice-demo/roles";
    let response = client
        .http
        .post(format!("{}/{roles}", client.base))
        .bearer_auth("test-token")
        .json(&json!({ "roleId": "gatewayUser", "role": { "title": "t", "includedPermissions": ["a.b.c"] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"done":false,"metadata":{}}"#);

    set_faults(&client, json!({ "*": { "non_json_body": 1.0 } })).await;
    let response = client
        .http
        .get(format!("{}/{SERVICE}", client.base))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&body).is_err(),
        "{body}"
    );

    set_faults(&client, json!({})).await;
    let (status, _) = client
        .call(Method::GET, &format!("{roles}/gatewayUser"), None)
        .await;
    assert_eq!(
        status, 404,
        "the create answered with a wrong body was not executed"
    );
}

#[tokio::test]
async fn the_body_faults_leave_earlier_faults_where_they_were() {
    let flaky = FaultConfig {
        error_500: 0.2,
        dropped_connection: 0.3,
        ..FaultConfig::default()
    };
    let with_bodies = FaultConfig {
        wrong_body: 0.2,
        non_json_body: 0.2,
        ..flaky.clone()
    };
    let mut seen = Vec::new();
    for fault in [flaky, with_bodies] {
        let (_emulator, client) = Client::start_with(config(7, &[("*", fault)])).await;
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(raw(&client, Method::GET, SERVICE, None).await);
        }
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1], "the same seed meets the same errors and drops");
}
