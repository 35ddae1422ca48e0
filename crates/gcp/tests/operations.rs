//! Operations: Service Usage read with GET until done, a failed operation's code typed, Vertex
//! AI long-polled with `:wait`, `finished.DONE_OPERATION` never polled.

mod support;

use std::time::Duration;

use serde_json::json;
use sluice_emulator::config::FaultConfig;
use sluice_emulator::EmulatorConfig;
use sluice_gcp::{Api, Code, Operation, OperationFamily, PostRetry, DONE_OPERATION};
use support::{start, PROJECT};

#[tokio::test]
async fn an_enable_operation_is_read_until_done_as_the_clock_advances() {
    let env = start(EmulatorConfig::default(), &[], 0.001).await;
    let started = env
        .client
        .post(
            &Api::ServiceUsage,
            &format!("v1/projects/{PROJECT}/services:batchEnable"),
            &json!({ "serviceIds": ["aiplatform.googleapis.com"] }),
            PostRetry::Safe,
        )
        .await
        .unwrap();
    let operation = Operation::from_json(&started).unwrap();
    assert!(operation.name.starts_with("operations/"), "{operation:?}");
    let family = OperationFamily::ServiceUsage;
    let running = env.client.get_operation(&family, &operation.name).await.unwrap();
    assert!(!running.done, "{running:?}");
    env.admin.advance(5.0).await;
    let done = env
        .client
        .wait_operation(&family, &operation.name, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(done.done && done.error.is_none(), "{done:?}");
    assert!(done.response.is_some());
    assert_eq!(env.admin.calls_to(&operation.name).await.len(), 2, "one GET each");
}

#[tokio::test]
async fn a_failed_operation_reads_with_its_code_typed() {
    let mut config = EmulatorConfig::default();
    config.faults.insert(
        "serviceusage.googleapis.com".into(),
        FaultConfig {
            operation_error: 1.0,
            ..FaultConfig::default()
        },
    );
    let env = start(config, &[], 0.001).await;
    let started = support::enable_iam(&env.client).await;
    let name = Operation::from_json(&started).unwrap().name;
    env.admin.advance(60.0).await;
    let done = env
        .client
        .get_operation(&OperationFamily::ServiceUsage, &name)
        .await
        .unwrap();
    assert!(done.done, "{done:?}");
    let error = done.error.expect("the operation failed");
    assert_eq!(error.code, Code::Internal, "{error}");
    assert!(error.to_string().starts_with("code 13 "), "{error}");
}

#[tokio::test]
async fn a_done_operation_is_never_polled() {
    let env = start(EmulatorConfig::default(), &[], 0.001).await;
    let identity = env
        .client
        .post(
            &Api::ServiceUsage,
            &format!("v1beta1/projects/{PROJECT}/services/aiplatform.googleapis.com:generateServiceIdentity"),
            &json!({}),
            PostRetry::Safe,
        )
        .await
        .unwrap();
    let operation = Operation::from_json(&identity).unwrap();
    assert_eq!(operation.name, DONE_OPERATION);
    assert!(operation.done);
    assert!(operation.response.unwrap()["email"]
        .as_str()
        .unwrap()
        .contains("gcp-sa-aiplatform"));
    let family = OperationFamily::ServiceUsage;
    let error = env
        .client
        .get_operation(&family, DONE_OPERATION)
        .await
        .unwrap_err();
    assert!(error.message.contains("cannot be polled"), "{error}");
    let error = env
        .client
        .wait_operation(&family, DONE_OPERATION, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(error.http_status, None);
    assert_eq!(env.client.calls(), 1, "only generateServiceIdentity was sent");
}

#[tokio::test]
async fn vertex_ai_is_long_polled_with_wait() {
    let config = EmulatorConfig {
        time_scale: 0.001,
        ..EmulatorConfig::default()
    };
    let env = start(config, &["aiplatform"], 0.001).await;
    let region = Api::VertexAi {
        region: "us-central1".into(),
    };
    let engine = json!({ "displayName": "waited", "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://b/a.pkl" } } });
    let started = env
        .client
        .post(
            &region,
            &format!("v1/projects/{PROJECT}/locations/us-central1/reasoningEngines"),
            &engine,
            PostRetry::Unsafe,
        )
        .await
        .unwrap();
    let name = Operation::from_json(&started).unwrap().name;
    let family = OperationFamily::VertexAi {
        region: "us-central1".into(),
    };
    let early = env
        .client
        .wait_operation(&family, &name, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        !early.done,
        "a 300 s deploy is not done after a 1 s wait: {early:?}"
    );

    let admin = env.admin.clone();
    let (done, _) = tokio::join!(
        env.client
            .wait_operation(&family, &name, Duration::from_secs(3600)),
        admin.advance(300.0)
    );
    let done = done.unwrap();
    assert!(done.done && done.error.is_none(), "{done:?}");
    assert_eq!(done.response.unwrap()["displayName"], "waited");
    let waits = env.admin.calls_to(":wait").await;
    assert_eq!(waits, [("POST".to_string(), 200), ("POST".to_string(), 200)]);
}
