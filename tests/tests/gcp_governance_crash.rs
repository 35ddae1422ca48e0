//! The egress plan with every governance step on (IAP, Model Armor templates in another
//! project, an ALLOW list, deny-by-default), SIGKILLed at every boundary of each governance step
//! and inside each of their operations, then continued (alternately by `sluice resume RUN` and
//! by `sluice run`): one authorization extension and one authorization policy per purpose,
//! never two, each policy on the egress gateway; the guide's step-4 Model Armor grants; and,
//! besides, everything the plain egress crash matrix checks (one engine, one gateway, …).
//!
//! Creates are counted in the emulator's request log. Its paths carry no query, so not the id
//! a create names: per collection, the creates answered 2xx must number exactly the resources
//! found, and every other create must have been answered 409 ALREADY_EXISTS (adopted). As the
//! emulator creates nothing under an id that exists (409) and nothing is deleted (checked),
//! each id then had exactly one successful create. (Every crash point comes after a create was
//! answered, and a continued step observes before it creates, so these cases in fact repeat no
//! create; a repeat answered 409 stays allowed, as resumption allows it.)

mod support;

use serde_json::Value;
use support::crash::{
    at_boundaries, check_egress, crash_matrix, while_waiting, AGENT_RE, BOUNDARIES, EGRESS_GATEWAY,
};
use support::Cloud;

const PLAN: &str = "agent-gateway-egress.json";
const VARS: [&str; 9] = [
    "project=sluice-demo",
    "pickle_gcs_uri=gs://agents/agent.pkl",
    "iap=true",
    "model_armor_template=agent-prompts",
    "model_armor_response_template=agent-responses",
    "model_armor_project=sluice-armor",
    r#"egress_allow_hosts=["us-central1-aiplatform.googleapis.com"]"#,
    "egress_default_deny=true",
    "agent_uses_vertex_ai=true",
];
/// The steps these variables turn on.
const STEPS: [&str; 12] = [
    "authz_apis",
    "model_armor_apis",
    "model_armor_callout",
    "model_armor_user",
    "model_armor_apis_here",
    "model_armor_templates",
    "egress_model_armor_extension",
    "egress_model_armor_policy",
    "iap_extension",
    "iap_policy",
    "egress_allow",
    "egress_deny_by_default",
];
/// Only reads: it never reaches after-intent or after-mutation.
const READ_ONLY: &str = "model_armor_templates";
/// The steps that wait on no operation (IAM bindings, and the read); every other one waits on
/// one (API enablement, extension and policy creates).
const NO_OPERATION: [&str; 3] = ["model_armor_callout", "model_armor_user", READ_ONLY];

fn operations() -> Vec<&'static str> {
    STEPS.into_iter().filter(|s| !NO_OPERATION.contains(s)).collect()
}

const LOCATION: &str = "projects/sluice-demo/locations/us-central1";
/// The service extensions service agent of `sluice-demo`.
const AGENT_DEP: &str = "serviceAccount:service-100000000001@gcp-sa-dep.iam.gserviceaccount.com";

/// The extensions, by id, with the service each calls.
const EXTENSIONS: [(&str, &str); 2] = [
    ("agent-egress-iap", "iap.googleapis.com"),
    (
        "agent-egress-model-armor",
        "modelarmor.us-central1.rep.googleapis.com",
    ),
];

/// The policies, by id, with their action.
const POLICIES: [(&str, &str); 4] = [
    ("agent-egress-allow", "ALLOW"),
    ("agent-egress-deny-by-default", "DENY_BY_DEFAULT"),
    ("agent-egress-iap", "CUSTOM"),
    ("agent-egress-model-armor", "CUSTOM"),
];

/// The resources of `collection` in the emulator, by id.
fn by_id<'a>(state: &'a Value, collection: &str) -> Vec<(String, &'a Value)> {
    let prefix = format!("{LOCATION}/{collection}/");
    let mut found: Vec<(String, &Value)> = state[collection]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap();
            let id = name.strip_prefix(&prefix).unwrap_or(name);
            (id.to_string(), r)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Checks that `collection`'s creates in the request log allow only one success per resource:
/// as many answered 2xx as there are resources, the rest answered 409, and no delete.
fn check_creates(cloud: &Cloud, collection: &str, resources: usize, case: &str) {
    let requests = cloud.emulator.requests();
    let calls: Vec<(&str, &str, u64)> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .filter(|(_, path, _)| path.contains(&format!("/{collection}")))
        .collect();
    let creates: Vec<u64> = calls
        .iter()
        .filter(|(method, path, _)| *method == "POST" && path.ends_with(&format!("/{collection}")))
        .map(|(_, _, status)| *status)
        .collect();
    let succeeded = creates.iter().filter(|s| (200..300).contains(*s)).count();
    assert_eq!(
        succeeded, resources,
        "{case}: one successful create per {collection} id: {creates:?}"
    );
    assert!(
        creates.iter().all(|s| (200..300).contains(s) || *s == 409),
        "{case}: a repeated {collection} create was answered 409 only: {creates:?}"
    );
    assert!(
        calls.iter().all(|(method, _, _)| *method != "DELETE"),
        "{case}: no {collection} deleted: {calls:?}"
    );
}

/// The governed egress plan's world: the egress checks, then one extension and one policy per
/// purpose (each created once), each policy on the egress gateway, and the step-4 grants.
fn check_governed(cloud: &Cloud, case: &str) {
    let state = cloud.state();
    check_egress(cloud, &state, case);

    let found = by_id(&state, "authzExtensions");
    let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        EXTENSIONS.map(|(id, _)| id),
        "{case}: one extension per purpose"
    );
    for ((id, extension), (_, service)) in found.iter().zip(EXTENSIONS) {
        assert_eq!(extension["service"], service, "{case}: extension {id}");
    }
    check_creates(cloud, "authzExtensions", found.len(), case);

    let found = by_id(&state, "authzPolicies");
    let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, POLICIES.map(|(id, _)| id), "{case}: one policy per purpose");
    for ((id, policy), (_, action)) in found.iter().zip(POLICIES) {
        assert_eq!(policy["action"], action, "{case}: policy {id}");
        assert_eq!(
            policy["target"]["resources"],
            serde_json::json!([EGRESS_GATEWAY]),
            "{case}: policy {id} targets the egress gateway"
        );
    }
    check_creates(cloud, "authzPolicies", found.len(), case);

    for (project, role) in [
        ("sluice-demo", "roles/modelarmor.calloutUser"),
        ("sluice-armor", "roles/modelarmor.user"),
    ] {
        for member in [AGENT_RE, AGENT_DEP] {
            assert!(
                cloud.holds(project, role, member),
                "{case}: {member} holds {role} on {project}"
            );
        }
    }
}

#[test]
fn killed_at_every_governance_step_boundary_the_run_continues_to_one_of_each() {
    let reached = crash_matrix(PLAN, &VARS, at_boundaries(&STEPS), &check_governed);
    assert_eq!(
        reached,
        STEPS.len() * BOUNDARIES.len() - 2,
        "every crash point was reached, but {READ_ONLY}'s after-intent and after-mutation"
    );
}

#[test]
fn killed_while_waiting_on_each_governance_operation_the_run_reattaches() {
    let operations = operations();
    assert_eq!(operations.len(), 9, "{operations:?}");
    let reached = crash_matrix(PLAN, &VARS, while_waiting(&operations), &check_governed);
    assert_eq!(reached, operations.len(), "every operation was waited on");
}
