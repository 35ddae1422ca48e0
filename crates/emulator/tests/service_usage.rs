//! The emulator over real HTTP on loopback: authentication, Service Usage, SERVICE_DISABLED for
//! other APIs, and the admin API. Time passes by advancing the emulated clock, never by waiting.

use reqwest::Method;
use serde_json::json;
mod support;

use support::Client;

const PROJECT: &str = "sluice-demo";
const NUMBER: &str = "100000000001";

#[tokio::test]
async fn calls_without_a_bearer_token_get_googles_401() {
    let (_emulator, client) = Client::start().await;
    for token in [None, Some(" ")] {
        let (status, body) = client
            .send(
                Method::GET,
                &format!("v1/projects/{PROJECT}/services/iam.googleapis.com"),
                None,
                token,
            )
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(body["error"]["code"], 401);
    }
}

#[tokio::test]
async fn batch_enable_is_an_operation_that_finishes_in_emulated_time() {
    let (_emulator, client) = Client::start().await;
    let ids = json!({ "serviceIds": ["iam.googleapis.com", "aiplatform.googleapis.com"] });
    let (status, operation) = client
        .call(
            Method::POST,
            &format!("v1/projects/{PROJECT}/services:batchEnable"),
            Some(ids),
        )
        .await;
    assert_eq!(status, 200);
    let name = operation["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("operations/"), "{name}");
    assert!(
        operation.get("done").is_none(),
        "running operations have no `done`: {operation}"
    );
    let service = format!("v1/projects/{PROJECT}/services/iam.googleapis.com");
    assert_eq!(
        client.call(Method::GET, &service, None).await.1["state"],
        "DISABLED"
    );

    client.advance(5.0).await;
    let (status, done) = client.call(Method::GET, &format!("v1/{name}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(done["done"], true);
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse"
    );
    assert_eq!(done["response"]["services"].as_array().unwrap().len(), 2);
    let (_, iam) = client.call(Method::GET, &service, None).await;
    assert_eq!(iam["state"], "ENABLED");
    assert_eq!(
        iam["name"],
        format!("projects/{NUMBER}/services/iam.googleapis.com"),
        "names carry the project number"
    );

    let (status, again) = client
        .call(
            Method::POST,
            &format!("v1/projects/{PROJECT}/services/iam.googleapis.com:enable"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "enabling an enabled API succeeds: {again}");
}

#[tokio::test]
async fn other_apis_answer_service_disabled_until_enablement_has_propagated() {
    let (_emulator, client) = Client::start().await;
    let roles = format!("v1/projects/{PROJECT}/roles");
    let (status, body) = client.call(Method::GET, &roles, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
    let info = &body["error"]["details"][0];
    assert_eq!(info["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(info["reason"], "SERVICE_DISABLED");
    assert_eq!(info["metadata"]["service"], "iam.googleapis.com");
    assert_eq!(info["metadata"]["consumer"], format!("projects/{NUMBER}"));

    client
        .call(
            Method::POST,
            &format!("v1/projects/{PROJECT}/services/iam.googleapis.com:enable"),
            Some(json!({})),
        )
        .await;
    client.advance(5.0).await;
    assert_eq!(
        client.call(Method::GET, &roles, None).await.0,
        403,
        "enabled, but not usable for a while"
    );
    client.advance(60.0).await;
    assert_ne!(
        client.call(Method::GET, &roles, None).await.0,
        403,
        "usable once enablement has propagated"
    );
}

#[tokio::test]
async fn generate_service_identity_answers_an_operation_already_done() {
    let (_emulator, client) = Client::start().await;
    let path =
        format!("v1beta1/projects/{PROJECT}/services/aiplatform.googleapis.com:generateServiceIdentity");
    let (status, first) = client.call(Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(first["name"], "finished.DONE_OPERATION");
    assert_eq!(first["done"], true);
    assert_eq!(
        first["response"]["email"],
        format!("service-{NUMBER}@gcp-sa-aiplatform.iam.gserviceaccount.com")
    );
    let (_, second) = client.call(Method::POST, &path, Some(json!({}))).await;
    assert_eq!(
        second["response"], first["response"],
        "calling again returns the same identity"
    );
    for poll in [
        "v1beta1/operations/finished.DONE_OPERATION",
        "v1beta1/finished.DONE_OPERATION",
    ] {
        let (status, body) = client.call(Method::GET, poll, None).await;
        assert_eq!(status, 400, "{poll}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    }
}

#[tokio::test]
async fn projects_are_named_by_id_or_number_and_bad_requests_are_refused() {
    let (_emulator, client) = Client::start().await;
    let (status, by_number) = client
        .call(
            Method::GET,
            &format!("v1/projects/{NUMBER}/services/iam.googleapis.com?alt=json&prettyPrint=false"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{by_number}");
    let (status, body) = client
        .call(
            Method::GET,
            "v1/projects/no-such-project/services/iam.googleapis.com",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );

    let too_many: Vec<String> = (0..21).map(|i| format!("api{i}.googleapis.com")).collect();
    let batch = format!("v1/projects/{PROJECT}/services:batchEnable");
    let (status, _) = client
        .call(Method::POST, &batch, Some(json!({ "serviceIds": too_many })))
        .await;
    assert_eq!(status, 400);
    let (status, body) = client
        .call(
            Method::POST,
            &batch,
            Some(json!({ "serviceIds": ["Not A Service"] })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let response = client
        .http
        .post(format!("{}/{batch}", client.base))
        .bearer_auth("t")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let (status, _) = client.call(Method::GET, "v9/nothing/here", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_admin_api_logs_requests_reports_state_and_resets() {
    let (emulator, client) = Client::start().await;
    client
        .call(
            Method::POST,
            &format!("v1/projects/{PROJECT}/services/iam.googleapis.com:enable"),
            Some(json!({})),
        )
        .await;
    client
        .call(Method::GET, &format!("v1/projects/{PROJECT}/roles"), None)
        .await;
    let (_, requests) = client.send(Method::GET, "_emulator/requests", None, None).await;
    let statuses: Vec<(String, u64)> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (
                format!("/v1/projects/{PROJECT}/services/iam.googleapis.com:enable"),
                200
            ),
            (format!("/v1/projects/{PROJECT}/roles"), 403)
        ]
    );
    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(
        state["projects"][0]["services"]["iam.googleapis.com"]["enabled"],
        false
    );
    assert_eq!(state["operations"], 1);

    let (status, _) = client
        .send(
            Method::POST,
            "_emulator/clock",
            Some(json!({ "advance_seconds": -1 })),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = client.send(Method::POST, "_emulator/reset", None, None).await;
    assert_eq!(status, 204);
    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(state["operations"], 0);
    assert!(state["projects"][0]["services"].as_object().unwrap().is_empty());
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_request_fields_are_refused_and_snake_case_is_accepted() {
    let (_emulator, client) = Client::start().await;
    let batch = format!("v1/projects/{PROJECT}/services:batchEnable");
    let (status, body) = client
        .call(
            Method::POST,
            &batch,
            Some(json!({ "serviceIds": ["iam.googleapis.com"], "colour": "red" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown name \"colour\""),
        "{body}"
    );
    let (status, body) = client
        .call(
            Method::POST,
            &batch,
            Some(json!({ "serviceIds": "iam.googleapis.com" })),
        )
        .await;
    assert_eq!(status, 400, "a string where the schema has an array: {body}");
    let (status, operation) = client
        .call(
            Method::POST,
            &batch,
            Some(json!({ "service_ids": ["iam.googleapis.com"] })),
        )
        .await;
    assert_eq!(status, 200, "{operation}");
}
