use std::time::Duration;

use serde_json::{json, Value};

use super::enforcement::*;
use super::*;
use crate::world::{Project, World};

const GATEWAY: &str = "projects/p/locations/us-central1/agentGateways/approved";
const CONDITION: &str = "has(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway) &&\nresource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway != '' &&\n(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway in [\n  'projects/p/locations/us-central1/agentGateways/approved',\n  'projects/q/locations/us-central1/agentGateways/other',\n])";

fn world(parent: &str) -> World {
    let mut world = World::default();
    world.projects.push(Project {
        id: "demo".into(),
        number: 100_000_000_001,
        parent: parent.into(),
        services: Default::default(),
        service_agents_usable_at: None,
        iam_policy: Default::default(),
        meta: Default::default(),
    });
    world.org_policy.folder_orgs.insert("55".into(), "1".into());
    world
}

fn add_constraint(world: &mut World, id: &str, action: &str, condition: &str, methods: &[&str]) {
    let name = format!("organizations/1/customConstraints/{id}");
    let body = json!({
        "name": name, "resourceTypes": [REASONING_ENGINE], "methodTypes": methods,
        "condition": condition, "actionType": action,
    });
    let body = body.as_object().cloned().unwrap();
    world.org_policy.constraints.insert(
        name,
        StoredConstraint {
            body,
            update_time: Duration::ZERO,
        },
    );
}

fn add_policy(world: &mut World, resource: &str, id: &str, content: Content, at: Duration) {
    world.org_policy.policies.insert(
        format!("{resource}/policies/{id}"),
        StoredPolicy {
            content,
            etag: "x".into(),
            set_at: at,
            in_force_at: at + Duration::from_secs(900),
            previous: None,
        },
    );
}

fn enforce() -> Content {
    Content {
        spec: Some(json!({ "rules": [{ "enforce": true }] })),
        dry_run_spec: None,
    }
}

fn engine(gateway: Option<&str>) -> Value {
    match gateway {
        Some(g) => json!({ "displayName": "a", "spec": { "deploymentSpec": { "agentGatewayConfig": {
            "agentToAnywhereConfig": { "agentGateway": g } } } } }),
        None => json!({ "displayName": "a", "spec": {} }),
    }
}

const LATER: Duration = Duration::from_secs(901);

#[test]
fn allow_constraint_refuses_unapproved_gateways_after_propagation() {
    let mut w = world("organizations/1");
    add_constraint(&mut w, "custom.egress", "ALLOW", CONDITION, &["CREATE", "UPDATE"]);
    add_policy(
        &mut w,
        "projects/100000000001",
        "custom.egress",
        enforce(),
        Duration::ZERO,
    );
    // Before propagation nothing is enforced.
    let early = Duration::from_secs(899);
    assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(None), early).is_ok());
    // After: approved gateway passes, missing (has() false) and other gateways are refused.
    assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(Some(GATEWAY)), LATER).is_ok());
    let error = check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).unwrap_err();
    assert_eq!((error.http, error.status), (400, "FAILED_PRECONDITION"));
    assert!(
        error.message.contains("[\"customConstraints/custom.egress\"]"),
        "{}",
        error.message
    );
    let other = engine(Some("projects/x/locations/us-central1/agentGateways/rogue"));
    assert!(check_reasoning_engine(&w, "100000000001", "UPDATE", &other, LATER).is_err());
    // A method type the constraint does not list is not checked.
    assert!(check_reasoning_engine(&w, "demo", "DELETE", &engine(None), LATER).is_ok());
}

#[test]
fn deny_constraint_inherited_from_folder_and_organisation() {
    let mut w = world("folders/55");
    add_constraint(
        &mut w,
        "custom.noEgress",
        "DENY",
        "has(resource.spec.deploymentSpec.agentGatewayConfig)",
        &["CREATE"],
    );
    add_policy(
        &mut w,
        "organizations/1",
        "custom.noEgress",
        enforce(),
        Duration::ZERO,
    );
    assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).is_ok());
    assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(Some(GATEWAY)), LATER).is_err());
    // The folder turns it off (own rules, no inheritance).
    let off = Content {
        spec: Some(json!({ "rules": [{ "enforce": false }] })),
        dry_run_spec: None,
    };
    add_policy(&mut w, "folders/55", "custom.noEgress", off, Duration::ZERO);
    assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(Some(GATEWAY)), LATER).is_ok());
}

#[test]
fn dry_run_never_refuses_and_evaluation_errors_fail_closed_for_allow() {
    let mut w = world("organizations/1");
    add_constraint(&mut w, "custom.dry", "ALLOW", CONDITION, &["CREATE"]);
    let dry = Content {
        spec: None,
        dry_run_spec: Some(json!({ "rules": [{ "enforce": true }] })),
    };
    add_policy(&mut w, "projects/100000000001", "custom.dry", dry, Duration::ZERO);
    assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).is_ok());

    add_constraint(
        &mut w,
        "custom.broken",
        "ALLOW",
        "resource.spec.missing.field == 'x'",
        &["CREATE"],
    );
    add_policy(
        &mut w,
        "projects/100000000001",
        "custom.broken",
        enforce(),
        Duration::ZERO,
    );
    let error = check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).unwrap_err();
    assert!(error.message.contains("custom.broken"));
}

#[test]
fn has_macros_are_answered_from_the_json() {
    let resource = json!({ "spec": { "a": { "b": "x" }, "e": "" } });
    assert_eq!(
        answer_has_macros(
            "has(resource.spec.a.b) && has(resource.spec.z.y) || has(resource.spec.e)",
            &resource
        ),
        "true && false || false"
    );
    assert_eq!(answer_has_macros("xhas(a)", &resource), "xhas(a)");
}
