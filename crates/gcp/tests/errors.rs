//! Google's error envelope, typed: NOT_FOUND, ABORTED (stale etag), SERVICE_DISABLED.

mod support;

use serde_json::json;
use sluice_emulator::EmulatorConfig;
use sluice_gcp::{Api, Code, PostRetry, Status};
use support::{start, PROJECT};

#[tokio::test]
async fn a_missing_resource_is_not_found_with_its_path() {
    let env = start(EmulatorConfig::default(), &["iam"], 0.001).await;
    let error = env
        .client
        .get(&Api::Iam, &format!("v1/projects/{PROJECT}/roles/nope"))
        .await
        .unwrap_err();
    assert_eq!(error.http_status, Some(404));
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.url, format!("/v1/projects/{PROJECT}/roles/nope"));
    assert!(!error.message.is_empty());
    assert!(!error.is_retryable());
    assert_eq!(env.client.calls(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn a_stale_etag_is_aborted() {
    let env = start(EmulatorConfig::default(), &["cloudresourcemanager"], 0.001).await;
    let policy = env.client.project_policy(PROJECT).await.unwrap().json;
    let set = format!("v3/projects/{PROJECT}:setIamPolicy");
    let mut changed = policy.clone();
    changed["bindings"] = json!([{ "role": "roles/viewer", "members": ["user:a@example.com"] }]);
    env.client
        .post(
            &Api::ResourceManager,
            &set,
            &json!({ "policy": changed }),
            PostRetry::Safe,
        )
        .await
        .unwrap();
    let error = env
        .client
        .post(
            &Api::ResourceManager,
            &set,
            &json!({ "policy": changed }),
            PostRetry::Safe,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (error.http_status, error.status.clone()),
        (Some(409), Status::Google(Code::Aborted))
    );
    assert!(error.is_aborted() && !error.is_already_exists(), "{error}");
    assert!(error.message.contains("concurrent policy changes"), "{error}");
}

#[tokio::test]
async fn an_api_not_enabled_is_service_disabled_with_its_error_info() {
    let env = start(EmulatorConfig::default(), &[], 0.001).await;
    let error = env
        .client
        .get(&Api::Iam, &format!("v1/projects/{PROJECT}/roles"))
        .await
        .unwrap_err();
    assert_eq!(error.http_status, Some(403));
    assert!(error.is_permission_denied(), "{error}");
    assert!(error.is_service_disabled(), "{error}");
    assert_eq!(error.reason.as_deref(), Some("SERVICE_DISABLED"));
    let info = error
        .details
        .iter()
        .find(|d| d["@type"].as_str().unwrap_or_default().ends_with("ErrorInfo"))
        .expect("ErrorInfo kept in details");
    assert_eq!(info["metadata"]["service"], "iam.googleapis.com");
    let shown = error.to_string();
    assert!(
        shown.contains("SERVICE_DISABLED") && !shown.contains("test-token"),
        "{shown}"
    );
}

#[tokio::test]
async fn service_disabled_says_whether_anyone_enabled_the_api() {
    let env = start(EmulatorConfig::default(), &[], 0.001).await;
    let roles = format!("v1/projects/{PROJECT}/roles");
    let never = env.client.get(&Api::Iam, &roles).await.unwrap_err();
    assert!(never.is_service_disabled());
    assert_eq!(never.service_state.as_deref(), Some("DISABLED"));
    assert!(never.is_service_never_enabled(), "{never}");
    assert_eq!(never.error_info("service"), Some("iam.googleapis.com"));

    support::enable_iam(&env.client).await;
    env.admin.advance(6.0).await;
    let late = env.client.get(&Api::Iam, &roles).await.unwrap_err();
    assert!(late.is_service_disabled(), "enabled, not usable yet: {late}");
    assert_eq!(late.service_state.as_deref(), Some("ENABLED"));
    assert!(!late.is_service_never_enabled());
}
