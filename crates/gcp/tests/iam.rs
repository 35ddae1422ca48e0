//! IAM read-modify-write: what is kept, what is added, one get and one set for grants ready
//! together, ABORTED restarts, and members that do not exist yet.

mod support;

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::EmulatorConfig;
use sluice_gcp::{ClientOptions, GcpClient, Grant, RetryConfig, TimeScale};
use support::{start, Admin, NUMBER, PROJECT};

const GET: &str = ":getIamPolicy";
const SET: &str = ":setIamPolicy";

fn conditional() -> Value {
    json!({ "role": "roles/editor", "members": ["user:cond@example.com"],
            "condition": { "title": "until 2030", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')" } })
}

/// Sets the policy behind the client's back: a read-modify-write with raw HTTP.
async fn set_directly(admin: &Admin, edit: impl FnOnce(&mut Value)) {
    let (status, mut policy) = admin
        .call(
            Method::POST,
            &format!("v3/projects/{PROJECT}:getIamPolicy"),
            json!({ "options": { "requestedPolicyVersion": 3 } }),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    edit(&mut policy);
    let (status, body) = admin
        .call(
            Method::POST,
            &format!("v3/projects/{PROJECT}:setIamPolicy"),
            json!({ "policy": policy }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn bindings(policy: &Value) -> &Vec<Value> {
    policy["bindings"].as_array().unwrap()
}

fn members(policy: &Value, role: &str) -> Vec<String> {
    bindings(policy)
        .iter()
        .filter(|b| b["role"] == role && b.get("condition").is_none())
        .flat_map(|b| {
            b["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test]
async fn grants_are_added_keeping_other_members_and_conditions_and_a_repeat_sets_nothing() {
    let env = start(EmulatorConfig::default(), &["cloudresourcemanager"], 0.001).await;
    set_directly(&env.admin, |policy| {
        policy["version"] = json!(3);
        policy["bindings"] =
            json!([{ "role": "roles/viewer", "members": ["user:keep@example.com"] }, conditional()]);
    })
    .await;
    let wanted = [
        Grant::new("roles/viewer", "user:new@example.com"),
        Grant::new("roles/browser", "user:new@example.com"),
        Grant::new("roles/viewer", "user:keep@example.com"),
    ];
    let added = env.client.add_project_grants(PROJECT, &wanted).await.unwrap();
    assert_eq!(added, wanted[..2], "the already-present grant is not reported");

    let policy = env.client.project_policy(PROJECT).await.unwrap().json;
    assert_eq!(policy["version"], 3);
    assert_eq!(
        members(&policy, "roles/viewer"),
        ["user:keep@example.com", "user:new@example.com"]
    );
    assert_eq!(members(&policy, "roles/browser"), ["user:new@example.com"]);
    assert!(
        bindings(&policy).contains(&conditional()),
        "conditional binding kept: {policy}"
    );

    let sets = env.admin.calls_to(SET).await.len();
    let again = env.client.add_project_grants(PROJECT, &wanted).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        env.admin.calls_to(SET).await.len(),
        sets,
        "nothing to add: no setIamPolicy"
    );
}

#[tokio::test]
async fn grants_ready_together_cost_one_get_and_one_set() {
    let env = start(EmulatorConfig::default(), &["cloudresourcemanager"], 0.001).await;
    let grant = |n: u32| Grant::new("roles/viewer", format!("user:u{n}@example.com"));
    let c = &env.client;
    let (one, two, three, four) = ([grant(1)], [grant(2)], [grant(3), grant(1)], [grant(4)]);
    let (a, b, d, e) = tokio::join!(
        c.add_project_grants(PROJECT, &one),
        c.add_project_grants(PROJECT, &two),
        c.add_project_grants(PROJECT, &three),
        c.add_project_grants(PROJECT, &four),
    );
    assert_eq!(a.unwrap(), [grant(1)]);
    assert_eq!(b.unwrap(), [grant(2)]);
    assert_eq!(d.unwrap(), [grant(3), grant(1)], "in the order asked");
    assert_eq!(e.unwrap(), [grant(4)]);
    assert_eq!(env.admin.calls_to(GET).await, [("POST".to_string(), 200)]);
    assert_eq!(env.admin.calls_to(SET).await, [("POST".to_string(), 200)]);

    // Spawned tasks that are ready together coalesce the same way.
    let tasks: Vec<_> = (5..9)
        .map(|n| {
            let client = env.client.clone();
            tokio::spawn(async move { client.add_project_grants(PROJECT, &[grant(n)]).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 1);
    }
    assert_eq!(env.admin.calls_to(GET).await.len(), 2);
    assert_eq!(env.admin.calls_to(SET).await.len(), 2);
    let policy = env.client.project_policy(PROJECT).await.unwrap().json;
    assert_eq!(members(&policy, "roles/viewer").len(), 8);
}

#[tokio::test]
async fn a_concurrent_change_aborts_the_set_and_the_whole_cycle_restarts() {
    let env = start(EmulatorConfig::default(), &["cloudresourcemanager"], 0.001).await;
    let admin = env.admin.clone();
    env.client.set_iam_test_hook(Arc::new(move |cycle| {
        let admin = admin.clone();
        Box::pin(async move {
            if cycle == 0 {
                set_directly(&admin, |policy| {
                    policy["bindings"] =
                        json!([{ "role": "roles/viewer", "members": ["user:other@example.com"] }]);
                })
                .await;
            }
        })
    }));
    let added = env
        .client
        .add_project_grants(PROJECT, &[Grant::new("roles/viewer", "user:mine@example.com")])
        .await
        .unwrap();
    assert_eq!(added.len(), 1);
    let statuses: Vec<u64> = env
        .admin
        .calls_to(SET)
        .await
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        statuses,
        [200, 409, 200],
        "direct set, our stale set, our set after re-reading"
    );
    let policy = env.client.project_policy(PROJECT).await.unwrap().json;
    assert_eq!(
        members(&policy, "roles/viewer"),
        ["user:other@example.com", "user:mine@example.com"]
    );
}

fn member_wait_client(base: &str, wait: Duration) -> ClientOptions {
    ClientOptions {
        retry: RetryConfig {
            member_wait: wait,
            ..RetryConfig::default()
        },
        ..ClientOptions::emulator(base, "test-token", TimeScale::new(0.001).unwrap())
    }
}

async fn generate_identity(admin: &Admin) -> Grant {
    let (status, body) = admin
        .call(
            Method::POST,
            &format!("v1beta1/projects/{PROJECT}/services/aiplatform.googleapis.com:generateServiceIdentity"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Grant::new(
        "roles/viewer",
        format!("serviceAccount:service-{NUMBER}@gcp-sa-aiplatform-re.iam.gserviceaccount.com"),
    )
}

#[tokio::test]
async fn a_service_agent_that_does_not_exist_yet_is_retried_until_it_does() {
    // The emulator's clock only moves when advanced; the agent appears 10 emulated s after
    // generateServiceIdentity.
    let env = start(EmulatorConfig::default(), &["cloudresourcemanager"], 0.001).await;
    let grant = generate_identity(&env.admin).await;
    let client = GcpClient::new(member_wait_client(
        &env.emulator.base_url,
        Duration::from_secs(3600),
    ))
    .await
    .unwrap();
    let admin = env.admin.clone();
    let advance = async {
        while !admin.calls_to(SET).await.iter().any(|(_, status)| *status == 400) {
            tokio::task::yield_now().await;
        }
        admin.advance(10.0).await;
    };
    let (added, ()) = tokio::join!(
        client.add_project_grants(PROJECT, std::slice::from_ref(&grant)),
        advance
    );
    assert_eq!(added.unwrap(), std::slice::from_ref(&grant));
    let sets = env.admin.calls_to(SET).await;
    assert_eq!(sets.first().map(|(_, s)| *s), Some(400));
    assert_eq!(sets.last().map(|(_, s)| *s), Some(200));
}

#[tokio::test]
async fn a_member_still_missing_after_the_window_is_returned() {
    let env = start(EmulatorConfig::default(), &["cloudresourcemanager"], 0.001).await;
    let grant = generate_identity(&env.admin).await;
    let client = GcpClient::new(member_wait_client(
        &env.emulator.base_url,
        Duration::from_secs(60),
    ))
    .await
    .unwrap();
    let error = client.add_project_grants(PROJECT, &[grant]).await.unwrap_err();
    assert!(error.is_member_missing(), "{error}");
    assert_eq!(error.http_status, Some(400));
    assert!(error.message.contains("does not exist"), "{error}");
    assert!(
        env.admin.calls_to(SET).await.len() >= 2,
        "retried within the window"
    );
}
