//! The first steps of the seed: APIs, project lookup, service agents, custom role, bindings —
//! converging on a fresh project, then only observing.

mod support;

use serde_json::{json, Value};
use support::{assert_succeeded, config, outputs, World};

fn plan() -> Value {
    json!({
        "name": "iam",
        "vars": { "project": { "type": "string", "required": true } },
        "steps": [
            { "id": "apis", "kind": "gcp.services", "with": { "project": "${vars.project}",
              "services": ["aiplatform.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com",
                           "networkservices.googleapis.com"] } },
            { "id": "project", "kind": "gcp.project", "with": { "project": "${vars.project}" }, "after": ["apis"] },
            { "id": "identity", "kind": "gcp.service_identity",
              "with": { "project": "${vars.project}", "project_number": "${steps.project.outputs.project_number}" } },
            { "id": "role", "kind": "gcp.custom_role", "with": { "project": "${vars.project}", "role_id": "agentGatewayUser" },
              "after": ["apis"] },
            { "id": "grant", "kind": "gcp.iam_binding", "with": { "project": "${vars.project}",
              "role": "${steps.role.outputs.name}", "members": ["${steps.identity.outputs.reasoning_engine_agent}"] } },
            { "id": "viewer", "kind": "gcp.iam_binding", "with": { "project": "${vars.project}",
              "role": "roles/viewer", "members": ["${steps.identity.outputs.service_extensions_agent}"] } }
        ]
    })
}

#[tokio::test]
async fn a_fresh_project_converges_and_a_second_run_only_reads() {
    let world = World::start(config()).await;
    let summary = world.run(&plan(), &[("project", json!("sluice-demo"))]).await;
    assert_succeeded(&summary);
    assert_eq!(outputs(&summary, "project")["project_number"], "100000000001");
    assert_eq!(
        outputs(&summary, "identity")["reasoning_engine_agent"],
        "service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
    );
    let (status, role) = world
        .call(
            reqwest::Method::GET,
            "v1/projects/sluice-demo/roles/agentGatewayUser",
            None,
        )
        .await;
    assert_eq!(status, 200, "{role}");
    let mut permissions: Vec<&str> = role["includedPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    permissions.sort();
    assert_eq!(
        permissions,
        [
            "networkservices.agentGateways.get",
            "networkservices.agentGateways.use",
            "networkservices.operations.get"
        ]
    );
    let (_, policy) = world
        .call(
            reqwest::Method::POST,
            "v3/projects/sluice-demo:getIamPolicy",
            Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
        )
        .await;
    let bindings = policy["bindings"].as_array().unwrap();
    let holds = |role: &str, member: &str| {
        bindings
            .iter()
            .any(|b| b["role"] == role && b["members"].as_array().unwrap().iter().any(|m| m == member))
    };
    assert!(holds(
        "projects/sluice-demo/roles/agentGatewayUser",
        "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
    ));
    assert!(
        holds("roles/owner", "user:owner@example.com"),
        "the owner is kept"
    );
    let sets = world
        .mutations()
        .await
        .into_iter()
        .filter(|(_, p, s)| p.ends_with(":setIamPolicy") && *s == 200)
        .count();
    assert!(sets >= 1, "bindings were written");

    let before = world.mutations().await.len();
    let again = world.run(&plan(), &[("project", json!("sluice-demo"))]).await;
    assert_succeeded(&again);
    let after = world.mutations().await;
    assert_eq!(
        after.len(),
        before,
        "a second run only reads: {:?}",
        &after[before..]
    );
}

fn role_plan() -> Value {
    json!({
        "name": "role",
        "steps": [
            { "id": "apis", "kind": "gcp.services", "with": { "project": "sluice-demo",
              "services": ["iam.googleapis.com"] } },
            { "id": "role", "kind": "gcp.custom_role", "after": ["apis"],
              "with": { "project": "sluice-demo", "role_id": "agentGatewayUser" } }
        ]
    })
}

async fn permissions(world: &World) -> (Vec<String>, bool) {
    let (status, role) = world
        .call(
            reqwest::Method::GET,
            "v1/projects/sluice-demo/roles/agentGatewayUser",
            None,
        )
        .await;
    assert_eq!(status, 200, "{role}");
    let mut list: Vec<String> = role["includedPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    list.sort();
    (list, role["deleted"] == true)
}

#[tokio::test]
async fn a_drifted_role_is_patched_and_a_deleted_one_undeleted() {
    let mut config = config();
    config.organizations[0].projects[0].enabled_services = vec!["iam.googleapis.com".into()];
    let world = World::start(config).await;
    // Someone made the role with one permission too few and one too many.
    let drifted = json!({ "roleId": "agentGatewayUser", "role": { "title": "old",
        "includedPermissions": ["networkservices.agentGateways.get", "networkservices.agentGateways.list"] } });
    let (status, _) = world
        .call(
            reqwest::Method::POST,
            "v1/projects/sluice-demo/roles",
            Some(drifted),
        )
        .await;
    assert_eq!(status, 200);
    let wanted = vec![
        "networkservices.agentGateways.get".to_string(),
        "networkservices.agentGateways.use".to_string(),
        "networkservices.operations.get".to_string(),
    ];
    assert_succeeded(&world.run(&role_plan(), &[]).await);
    assert_eq!(permissions(&world).await, (wanted.clone(), false));
    let patches = world
        .mutations()
        .await
        .iter()
        .filter(|(m, _, _)| m == "PATCH")
        .count();
    assert_eq!(patches, 1, "one patch, no create");

    let (status, _) = world
        .call(
            reqwest::Method::DELETE,
            "v1/projects/sluice-demo/roles/agentGatewayUser",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(permissions(&world).await.1, "soft-deleted");
    assert_succeeded(&world.run(&role_plan(), &[]).await);
    assert_eq!(permissions(&world).await, (wanted, false), "undeleted");
    let undeletes = world
        .mutations()
        .await
        .iter()
        .filter(|(_, p, _)| p.ends_with(":undelete"))
        .count();
    assert_eq!(undeletes, 1);
    let before = world.mutations().await.len();
    assert_succeeded(&world.run(&role_plan(), &[]).await);
    assert_eq!(world.mutations().await.len(), before, "converged: no mutation");
}
