//! A test every resource kind on the reconciler runs: in a project where nothing is enabled,
//! `observe` may read each API as holding nothing, but the strict re-read before a mutation
//! fails first, so no kind sends a create or patch.

mod support;

use serde_json::{json, Value};
use support::{config, World};

const REGION: &str = "us-central1";
const ENGINE: &str = "projects/sluice-demo/locations/us-central1/reasoningEngines/1";

/// One step of every resource kind whose API is enabled per project, none depending on another.
fn plan() -> Value {
    json!({
        "name": "reconciled",
        "steps": [
            { "id": "role", "kind": "gcp.custom_role",
              "with": { "project": "sluice-demo", "role_id": "agentGatewayUser" } },
            { "id": "gateway", "kind": "gcp.agent_gateway", "with": { "project": "sluice-demo",
              "region": REGION, "gateway_id": "egress", "mode": "egress" } },
            { "id": "engine", "kind": "gcp.reasoning_engine", "with": { "project": "sluice-demo",
              "region": REGION, "display_name": "demo-agent",
              "package": { "pickle_object_gcs_uri": "gs://demo/agent.pkl" } } },
            { "id": "registration", "kind": "gcp.agent_registration", "with": { "project": "sluice-demo",
              "region": REGION, "engine": ENGINE, "service_id": "demo-agent",
              "display_name": "Demo agent", "wait_for_automatic": "0s" } },
            { "id": "policy", "kind": "gcp.org_policy", "with": { "parent": "projects/sluice-demo",
              "constraint": "custom.egress" } },
            { "id": "extension", "kind": "gcp.authz_extension", "with": { "project": "sluice-demo",
              "region": REGION, "extension_id": "iap", "service": "iap" } },
            { "id": "authz", "kind": "gcp.authz_policy", "with": { "project": "sluice-demo",
              "region": REGION, "policy_id": "allow", "action": "ALLOW",
              "gateway": "projects/sluice-demo/locations/us-central1/agentGateways/egress" } }
        ]
    })
}

#[tokio::test]
async fn no_resource_kind_mutates_before_a_strict_read_succeeds() {
    let world = World::start(config()).await;
    let summary = world.run(&plan(), &[]).await;
    for step in [
        "role",
        "gateway",
        "engine",
        "registration",
        "policy",
        "extension",
        "authz",
    ] {
        let record = summary.steps.iter().find(|s| s.step_id == step).unwrap();
        let message = record
            .error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or_default();
        assert!(message.contains("not enabled"), "{step}: {message}");
    }
    assert_eq!(world.mutations().await, vec![], "nothing was sent but reads");
}
