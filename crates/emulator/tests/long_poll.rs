//! Vertex AI's `operations:wait`: a long poll that answers when the operation is done or when
//! its timeout (in emulated time) passes. The emulator runs 1,000× faster than real time here,
//! so a 5-minute deploy is 300 ms; the test itself never sleeps.

mod support;

use reqwest::Method;
use serde_json::json;
use sluice_emulator::EmulatorConfig;
use support::Client;

const PARENT: &str = "v1/projects/sluice-demo/locations/us-central1";

#[tokio::test]
async fn wait_answers_at_its_timeout_or_when_the_operation_is_done() {
    let mut config = EmulatorConfig {
        time_scale: 0.001,
        ..EmulatorConfig::default()
    };
    config.organizations[0].projects[0].enabled_services = vec!["aiplatform.googleapis.com".into()];
    let (_emulator, client) = Client::start_with(config).await;
    let engine = json!({ "displayName": "waited", "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://b/a.pkl" } } });
    let (status, operation) = client
        .call(Method::POST, &format!("{PARENT}/reasoningEngines"), Some(engine))
        .await;
    assert_eq!(status, 200, "{operation}");
    let name = operation["name"].as_str().unwrap();

    let (status, early) = client
        .call(Method::POST, &format!("v1/{name}:wait?timeout=1s"), None)
        .await;
    assert_eq!(status, 200);
    assert!(early.get("done").is_none(), "the timeout passed first: {early}");

    let (status, done) = client
        .call(Method::POST, &format!("v1/{name}:wait?timeout=3600s"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        done["done"], true,
        "answered once the 300 s deploy finished: {done}"
    );
    assert_eq!(done["response"]["displayName"], "waited");

    let (status, _) = client
        .call(Method::POST, &format!("{PARENT}/operations/nope:wait"), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = client
        .call(Method::POST, &format!("v1/{name}:wait?timeout=soon"), None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = client
        .send(Method::POST, &format!("v1/{name}:wait"), None, None)
        .await;
    assert_eq!(status, 401);
}

/// The long poll waits on the emulated clock, not on a real-time tick: with emulated time all but
/// frozen (a million real seconds per emulated second), a `:wait` on a 300 s deploy answers the
/// finished operation once the admin API advances the clock past the deploy's end.
#[tokio::test]
async fn wait_answers_when_an_advance_of_the_clock_finishes_the_operation() {
    let mut config = EmulatorConfig {
        time_scale: 1e6,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.organizations[0].projects[0].enabled_services = vec!["aiplatform.googleapis.com".into()];
    let (_emulator, client) = Client::start_with(config).await;
    let engine = json!({ "displayName": "advanced", "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://b/a.pkl" } } });
    let (status, operation) = client
        .call(Method::POST, &format!("{PARENT}/reasoningEngines"), Some(engine))
        .await;
    assert_eq!(status, 200, "{operation}");
    let name = operation["name"].as_str().unwrap();
    let driver = async {
        loop {
            let (_, state) = client.call(Method::GET, "_emulator/state", None).await;
            assert!(state["waitingCalls"].is_u64(), "state counts waiting calls");
            if state["waitingCalls"] == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        client.advance(300.0).await;
    };
    let wait = format!("v1/{name}:wait?timeout=600s");
    let ((status, done), ()) = tokio::join!(client.call(Method::POST, &wait, None), driver);
    assert_eq!(status, 200);
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(done["response"]["displayName"], "advanced");
}
