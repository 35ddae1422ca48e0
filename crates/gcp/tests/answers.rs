//! A 200 whose body is not what the call returns (the emulator's `wrong_body` and
//! `non_json_body` faults, which leave the call unexecuted) is a retryable `BAD_RESPONSE`,
//! never a success.

mod support;

use serde_json::json;
use sluice_emulator::config::FaultConfig;
use sluice_emulator::EmulatorConfig;
use sluice_gcp::{Api, Grant, PostRetry, Role, Status};
use support::{start, PROJECT};

fn faulty(seed: u64, api: &str, fault: FaultConfig) -> EmulatorConfig {
    let mut config = EmulatorConfig {
        seed,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.faults.insert(api.into(), fault);
    config
}

#[tokio::test]
async fn a_policy_answer_without_an_etag_is_a_retryable_bad_response_not_a_grant() {
    let always = FaultConfig {
        wrong_body: 1.0,
        ..FaultConfig::default()
    };
    let config = faulty(1, "cloudresourcemanager.googleapis.com", always);
    let env = start(config, &["cloudresourcemanager"], 0.001).await;
    let error = env.client.project_policy(PROJECT).await.unwrap_err();
    assert_eq!(
        (error.status.clone(), error.http_status),
        (Status::BadResponse, Some(200))
    );
    assert!(error.is_bad_response() && error.is_retryable(), "{error}");
    assert_eq!(env.client.calls(), 6, "retried like a 5xx, up to max_attempts");

    let grant = Grant::new("roles/viewer", "user:ana@example.com");
    let error = env
        .client
        .add_project_grants(PROJECT, &[grant])
        .await
        .expect_err("a grant whose policy calls answered `{\"done\":false}` did not happen");
    assert!(error.is_bad_response(), "{error}");
    let state = env.emulator.state();
    let grants = state["projects"][0]["iamGrants"].as_array().unwrap();
    assert!(!grants.iter().any(|g| g["member"] == "user:ana@example.com"));
}

#[tokio::test]
async fn a_role_create_answered_with_a_wrong_body_is_resent_until_the_role_comes_back() {
    let half = FaultConfig {
        wrong_body: 0.5,
        ..FaultConfig::default()
    };
    // Seed 3's first call meets the fault (asserted below).
    let env = start(faulty(3, "iam.googleapis.com", half), &["iam"], 0.001).await;
    let body = json!({ "roleId": "gatewayUser", "role": { "title": "t", "includedPermissions": ["networkservices.agentGateways.use"] } });
    let role: Role = env
        .client
        .post_as(
            &Api::Iam,
            &format!("v1/projects/{PROJECT}/roles"),
            &body,
            PostRetry::Safe,
        )
        .await
        .unwrap();
    assert_eq!(role.name, format!("projects/{PROJECT}/roles/gatewayUser"));
    assert!(!role.etag.is_empty());
    let posts = env.admin.calls_to("/roles").await;
    assert!(
        posts.len() >= 2,
        "the wrong body was met and the create resent: {posts:?}"
    );
    let read: Role = env
        .client
        .get_as(&Api::Iam, &format!("v1/projects/{PROJECT}/roles/gatewayUser"))
        .await
        .unwrap();
    assert_eq!(read.included_permissions, ["networkservices.agentGateways.use"]);
}

#[tokio::test]
async fn a_read_answered_with_a_non_json_200_is_retried() {
    let half = FaultConfig {
        non_json_body: 0.5,
        ..FaultConfig::default()
    };
    let env = start(faulty(3, "serviceusage.googleapis.com", half), &[], 0.001).await;
    let service = env
        .client
        .get(
            &Api::ServiceUsage,
            &format!("v1/projects/{PROJECT}/services/iam.googleapis.com"),
        )
        .await
        .unwrap();
    assert_eq!(service["state"], "DISABLED");
    assert!(env.client.calls() >= 2, "the non-JSON answer was met and retried");
}
