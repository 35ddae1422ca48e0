//! Resource Manager: projects.get (v1, v3) and the project IAM policy's read-modify-write rules.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::ProjectConfig;
use sluice_emulator::EmulatorConfig;
use support::Client;

const NUMBER: &str = "100000000001";

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0] = ProjectConfig {
        id: "sluice-demo".into(),
        number: 100_000_000_001,
        enabled_services: vec![
            "cloudresourcemanager.googleapis.com".into(),
            "iam.googleapis.com".into(),
        ],
    };
    Client::start_with(config).await
}

async fn get_policy(client: &Client, version: i64) -> (u16, Value) {
    let body = json!({ "options": { "requestedPolicyVersion": version } });
    client
        .call(Method::POST, "v3/projects/sluice-demo:getIamPolicy", Some(body))
        .await
}

async fn set_policy(client: &Client, policy: Value) -> (u16, Value) {
    client
        .call(
            Method::POST,
            "v3/projects/sluice-demo:setIamPolicy",
            Some(json!({ "policy": policy })),
        )
        .await
}

#[tokio::test]
async fn projects_get_answers_v1_and_v3_by_id_or_number() {
    let (_emulator, client) = start().await;
    let (status, v1) = client.call(Method::GET, "v1/projects/sluice-demo", None).await;
    assert_eq!(status, 200);
    assert_eq!(v1["projectNumber"], NUMBER);
    assert_eq!(
        v1["parent"],
        json!({ "type": "organization", "id": "123456789012" })
    );
    let (status, v3) = client
        .call(Method::GET, &format!("v3/projects/{NUMBER}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (v3["name"].as_str(), v3["projectId"].as_str()),
        (Some("projects/100000000001"), Some("sluice-demo"))
    );
}

#[tokio::test]
async fn set_iam_policy_is_a_read_modify_write_guarded_by_the_etag() {
    let (_emulator, client) = start().await;
    let (_, mut policy) = get_policy(&client, 3).await;
    let first_etag = policy["etag"].clone();
    assert_eq!(
        policy["bindings"][0]["role"], "roles/owner",
        "a seeded project has an owner"
    );
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "roles/viewer", "members": ["user:ana@example.com"] }));
    let (status, updated) = set_policy(&client, policy.clone()).await;
    assert_eq!(status, 200, "{updated}");
    assert_ne!(updated["etag"], first_etag);
    assert_eq!(updated["bindings"].as_array().unwrap().len(), 2);

    let (status, body) = set_policy(&client, policy).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "a stale etag is refused"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("concurrent policy changes"));
}

#[tokio::test]
async fn new_grants_take_effect_only_after_propagation() {
    let (_emulator, client) = start().await;
    let (_, mut policy) = get_policy(&client, 3).await;
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "roles/viewer", "members": ["user:ana@example.com"] }));
    assert_eq!(set_policy(&client, policy).await.0, 200);
    let effective = |state: &Value| -> Vec<(String, bool)> {
        state["projects"][0]["iamGrants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["role"].as_str().unwrap().to_string(),
                    g["effective"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(
        effective(&state),
        [
            ("roles/owner".to_string(), true),
            ("roles/viewer".to_string(), false)
        ]
    );
    client.advance(120.0).await;
    let (_, state) = client.send(Method::GET, "_emulator/state", None, None).await;
    assert_eq!(
        effective(&state),
        [
            ("roles/owner".to_string(), true),
            ("roles/viewer".to_string(), true)
        ]
    );
}

#[tokio::test]
async fn conditions_need_policy_version_3_and_are_kept() {
    let (_emulator, client) = start().await;
    let (_, mut policy) = get_policy(&client, 1).await;
    let conditional = json!({
        "role": "roles/viewer", "members": ["user:ana@example.com"],
        "condition": { "title": "expires", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')" }
    });
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(conditional.clone());
    assert_eq!(
        set_policy(&client, policy.clone()).await.0,
        400,
        "conditions with version 1"
    );
    policy["version"] = json!(3);
    assert_eq!(set_policy(&client, policy).await.0, 200);
    assert_eq!(
        get_policy(&client, 1).await.0,
        400,
        "a conditional policy read as version 1"
    );
    let (_, read) = get_policy(&client, 3).await;
    assert_eq!(read["version"], 3);
    assert_eq!(read["bindings"][1], conditional);
}

#[tokio::test]
async fn members_are_checked_and_service_agents_exist_only_after_their_delay() {
    let (_emulator, client) = start().await;
    let (_, base) = get_policy(&client, 3).await;
    let with_member = |member: &str| {
        let mut policy = base.clone();
        policy["bindings"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "role": "roles/viewer", "members": [member] }));
        policy
    };
    for bad in ["allUsers", "allAuthenticatedUsers", "ana@example.com", "user:"] {
        let (status, body) = set_policy(&client, with_member(bad)).await;
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (400, Some("INVALID_ARGUMENT")),
            "{bad}"
        );
    }
    let agent = format!("serviceAccount:service-{NUMBER}@gcp-sa-aiplatform-re.iam.gserviceaccount.com");
    let (status, body) = set_policy(&client, with_member(&agent)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{body}"
    );

    let identity = "v1beta1/projects/sluice-demo/services/aiplatform.googleapis.com:generateServiceIdentity";
    client.call(Method::POST, identity, Some(json!({}))).await;
    assert_eq!(
        set_policy(&client, with_member(&agent)).await.0,
        400,
        "not yet: the agent appears late"
    );
    client.advance(10.0).await;
    let (status, body) = set_policy(&client, with_member(&agent)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn policies_are_limited_to_1500_principals_and_custom_roles_must_exist() {
    let (_emulator, client) = start().await;
    let (_, mut policy) = get_policy(&client, 3).await;
    let members: Vec<String> = (0..1_500).map(|i| format!("user:u{i}@example.com")).collect();
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "roles/viewer", "members": members }));
    let (status, body) = set_policy(&client, policy).await;
    assert_eq!(status, 400, "1,500 plus the owner is 1,501");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1501"),
        "{body}"
    );

    let (_, mut policy) = get_policy(&client, 3).await;
    policy["bindings"].as_array_mut().unwrap().push(
        json!({ "role": "projects/sluice-demo/roles/noSuchRole", "members": ["user:ana@example.com"] }),
    );
    let (status, body) = set_policy(&client, policy).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{body}"
    );
}

#[tokio::test]
async fn a_custom_role_can_be_granted_while_it_exists_and_not_once_deleted() {
    let (_emulator, client) = start().await;
    let role = json!({
        "roleId": "agentGatewayUser",
        "role": { "title": "Agent Gateway user", "includedPermissions": ["networkservices.agentGateways.get", "networkservices.agentGateways.use", "networkservices.operations.get"] }
    });
    assert_eq!(
        client
            .call(Method::POST, "v1/projects/sluice-demo/roles", Some(role))
            .await
            .0,
        200
    );
    let (_, mut policy) = get_policy(&client, 3).await;
    let binding =
        json!({ "role": "projects/sluice-demo/roles/agentGatewayUser", "members": ["user:ana@example.com"] });
    policy["bindings"].as_array_mut().unwrap().push(binding);
    let (status, granted) = set_policy(&client, policy).await;
    assert_eq!(status, 200, "{granted}");

    assert_eq!(
        client
            .call(
                Method::DELETE,
                "v1/projects/sluice-demo/roles/agentGatewayUser",
                None
            )
            .await
            .0,
        200
    );
    let (status, body) = set_policy(&client, granted).await;
    assert_eq!(status, 400, "a deleted custom role cannot be granted: {body}");
}

#[tokio::test]
async fn v1_get_and_set_iam_policy_share_the_policy_and_its_etag_with_v3() {
    let (_emulator, client) = start().await;
    let (status, mut policy) = client
        .call(
            Method::POST,
            "v1/projects/sluice-demo:getIamPolicy",
            Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    let (_, v3) = get_policy(&client, 3).await;
    assert_eq!(policy, v3, "one policy, whichever version reads it");
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "roles/viewer", "members": ["user:ana@example.com"] }));
    let (status, updated) = client
        .call(
            Method::POST,
            "v1/projects/100000000001:setIamPolicy",
            Some(json!({ "policy": policy.clone() })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let (_, v3) = get_policy(&client, 3).await;
    assert_eq!(v3["bindings"], updated["bindings"]);
    assert_eq!(v3["etag"], updated["etag"]);
    let (status, stale) = client
        .call(
            Method::POST,
            "v1/projects/sluice-demo:setIamPolicy",
            Some(json!({ "policy": policy })),
        )
        .await;
    assert_eq!(
        (status, stale["error"]["status"].as_str()),
        (409, Some("ABORTED")),
        "v1 checks the etag too: {stale}"
    );
}
