//! The approved-gateways plan (`plans/approved-gateways-policy.json`) against the emulator:
//! it converges, then only reads; a changed allowlist patches the constraint alone; and once
//! the policy has propagated, the emulator refuses a Reasoning Engine bound to a gateway the
//! constraint does not approve.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::{assert_succeeded, config, outputs, World};

const ORG: &str = "123456789012";
const CONSTRAINT: &str = "custom.allowlistedEgressAgentGatewaysForAgentEngine";
const APPROVED: &str = "projects/sluice-demo/locations/us-central1/agentGateways/approved";
const OTHER: &str = "projects/sluice-demo/locations/us-central1/agentGateways/other";
const FIELD: &str = "resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway";

fn plan() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plans/approved-gateways-policy.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn vars(gateways: &[&str]) -> Vec<(&'static str, Value)> {
    vec![
        ("project", json!("sluice-demo")),
        ("organization", json!(ORG)),
        ("policy_parent", json!("projects/sluice-demo")),
        ("egress_gateways", json!(gateways)),
    ]
}

/// The demo world with Org Policy and Vertex AI usable in `sluice-demo`.
async fn world() -> World {
    let mut config = config();
    config.organizations[0].projects[0].enabled_services = vec![
        "orgpolicy.googleapis.com".into(),
        "aiplatform.googleapis.com".into(),
    ];
    World::start(config).await
}

fn expected_condition(gateways: &[&str]) -> String {
    let list: Vec<String> = gateways.iter().map(|g| format!("'{g}'")).collect();
    format!(
        "has({FIELD}) && {FIELD} != '' && ({FIELD} in [{}])",
        list.join(", ")
    )
}

async fn constraint(world: &World) -> Value {
    let (status, body) = world
        .call(
            Method::GET,
            &format!("v2/organizations/{ORG}/customConstraints/{CONSTRAINT}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn policy(world: &World) -> Value {
    let (status, body) = world
        .call(
            Method::GET,
            &format!("v2/projects/sluice-demo/policies/{CONSTRAINT}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_plan_converges_and_a_second_run_only_reads() {
    let world = world().await;
    let summary = world.run(&plan(), &vars(&[APPROVED])).await;
    assert_succeeded(&summary);
    let skipped: Vec<&str> = summary
        .steps
        .iter()
        .filter(|s| s.state().as_str() == "skipped")
        .map(|s| s.step_id.as_str())
        .collect();
    assert_eq!(
        skipped,
        ["ingress_constraint", "ingress_policy"],
        "ingress is off by default"
    );
    assert_eq!(
        outputs(&summary, "egress_constraint")["name"],
        format!("organizations/{ORG}/customConstraints/{CONSTRAINT}")
    );
    assert_eq!(
        outputs(&summary, "egress_policy")["name"],
        format!("projects/sluice-demo/policies/{CONSTRAINT}")
    );
    assert_eq!(outputs(&summary, "egress_policy")["enforced"], true);

    let live = constraint(&world).await;
    assert_eq!(live["condition"], expected_condition(&[APPROVED]));
    assert_eq!(live["actionType"], "ALLOW");
    assert_eq!(
        live["resourceTypes"],
        json!(["aiplatform.googleapis.com/ReasoningEngine"])
    );
    assert_eq!(live["methodTypes"], json!(["CREATE", "UPDATE"]));
    assert_eq!(
        live["displayName"],
        "Restrict Reasoning Engine Egress to Approved Agent Gateways"
    );
    let set = policy(&world).await;
    assert_eq!(set["spec"]["rules"], json!([{ "enforce": true }]), "{set}");

    let before = world.mutations().await;
    assert_eq!(
        before.len(),
        2,
        "one constraint create and one policy create: {before:?}"
    );
    let again = world.run(&plan(), &vars(&[APPROVED])).await;
    assert_succeeded(&again);
    let after = world.mutations().await;
    assert_eq!(
        after.len(),
        before.len(),
        "a second run only reads: {:?}",
        &after[before.len()..]
    );
}

#[tokio::test]
async fn a_changed_allowlist_patches_the_constraint_and_leaves_the_policy() {
    let world = world().await;
    assert_succeeded(&world.run(&plan(), &vars(&[APPROVED])).await);
    let policy_before = policy(&world).await;
    let before = world.mutations().await.len();

    let summary = world.run(&plan(), &vars(&[APPROVED, OTHER])).await;
    assert_succeeded(&summary);
    let changes: Vec<_> = world.mutations().await.split_off(before);
    assert_eq!(
        changes,
        [(
            "PATCH".to_string(),
            format!("/v2/organizations/{ORG}/customConstraints/{CONSTRAINT}"),
            200
        )],
        "exactly one PATCH of the constraint"
    );
    assert_eq!(
        constraint(&world).await["condition"],
        expected_condition(&[APPROVED, OTHER])
    );
    assert_eq!(
        policy(&world).await["etag"],
        policy_before["etag"],
        "the policy is untouched"
    );
}

#[tokio::test]
async fn the_enforced_policy_refuses_an_unapproved_gateway() {
    let world = world().await;
    assert_succeeded(&world.run(&plan(), &vars(&[APPROVED])).await);

    // Enforcement takes up to 15 minutes: move the emulated clock past it.
    let response = world
        .http
        .post(format!("{}/_emulator/clock", world.emulator.base_url))
        .json(&json!({ "advance_seconds": 901 }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let engine = json!({
        "displayName": "unapproved",
        "spec": {
            "packageSpec": { "pickleObjectGcsUri": "gs://bucket/agent.pkl", "pythonVersion": "3.12" },
            "deploymentSpec": { "agentGatewayConfig": { "agentToAnywhereConfig": { "agentGateway": OTHER } } },
        }
    });
    let (status, body) = world
        .call(
            Method::POST,
            "v1/projects/sluice-demo/locations/us-central1/reasoningEngines",
            Some(engine),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(CONSTRAINT), "names the constraint: {message}");
}

#[tokio::test]
async fn a_drifted_policy_is_patched_back() {
    let world = world().await;
    assert_succeeded(&world.run(&plan(), &vars(&[APPROVED])).await);
    let set = policy(&world).await;
    // Someone turns enforcement off by hand.
    let (status, body) = world
        .call(
            Method::PATCH,
            &format!("v2/projects/sluice-demo/policies/{CONSTRAINT}"),
            Some(json!({
                "name": format!("projects/sluice-demo/policies/{CONSTRAINT}"),
                "spec": { "rules": [{ "enforce": false }] },
                "etag": set["etag"],
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = world.mutations().await.len();

    assert_succeeded(&world.run(&plan(), &vars(&[APPROVED])).await);
    let changes: Vec<_> = world.mutations().await.split_off(before);
    assert_eq!(
        changes,
        [(
            "PATCH".to_string(),
            format!("/v2/projects/sluice-demo/policies/{CONSTRAINT}"),
            200
        )],
        "exactly one PATCH of the policy"
    );
    assert_eq!(
        policy(&world).await["spec"]["rules"],
        json!([{ "enforce": true }])
    );
}

#[tokio::test]
async fn an_empty_allowlist_is_a_valid_constraint_and_the_policy_can_wait() {
    let world = world().await;
    let plan = json!({
        "name": "wait",
        "steps": [
            { "id": "constraint", "kind": "gcp.custom_constraint", "with": { "organization": ORG,
              "constraint_id": CONSTRAINT, "mode": "egress", "allowed_gateways": [] } },
            { "id": "policy", "kind": "gcp.org_policy", "with": { "parent": "projects/sluice-demo",
              "constraint": "${steps.constraint.outputs.constraint_id}", "wait_until_effective": true } }
        ]
    });
    let summary = world.run(&plan, &[]).await;
    assert_succeeded(&summary);
    assert_eq!(constraint(&world).await["condition"], expected_condition(&[]));
    assert_eq!(outputs(&summary, "policy")["enforced"], true);
    let reads = world
        .requests()
        .await
        .into_iter()
        .filter(|(m, p, s)| m == "GET" && p.ends_with(":getEffectivePolicy") && *s == 200)
        .count();
    assert!(reads >= 1, "poll read the effective policy");
}
