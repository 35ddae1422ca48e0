//! `gcp.reasoning_engine` meeting an engine it did not just deploy: one whose create is still
//! running (in progress, not converged) and one without agent identity (drift, repaired).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_engine::store::StepAppend;
use sluice_engine::{parse_plan, validate, OperationHandle, StepRecord, StepStatus, Store};
use support::{assert_succeeded, config, outputs, World};

const REGION: &str = "us-central1";
const ENGINES: &str = "v1/projects/sluice-demo/locations/us-central1/reasoningEngines";

/// A config whose project has Vertex AI usable, and deploys taking `deploy` emulated seconds.
fn vertex_ai(deploy: f64) -> sluice_emulator::EmulatorConfig {
    let mut config = config();
    config.organizations[0].projects[0].enabled_services = vec!["aiplatform.googleapis.com".into()];
    config.delays.engine_operation = deploy;
    config
}

/// Just the engine step, with no gateway, found by its display name.
fn plan() -> Value {
    json!({
        "name": "engine",
        "steps": [
            { "id": "engine", "kind": "gcp.reasoning_engine", "with": { "project": "sluice-demo", "region": REGION,
              "display_name": "demo-agent", "package": { "pickle_object_gcs_uri": "gs://demo/agent.pkl" } } }
        ]
    })
}

/// Deploys an engine named `demo-agent` as another tool would; returns its name.
async fn deploy_elsewhere(world: &World, spec: Value) -> String {
    let (status, operation) = world
        .call(
            Method::POST,
            ENGINES,
            Some(json!({ "displayName": "demo-agent", "spec": spec })),
        )
        .await;
    assert_eq!(status, 200, "{operation}");
    let name = operation["name"].as_str().unwrap();
    name[..name.find("/operations/").unwrap()].to_string()
}

async fn set_faults(world: &World, faults: Value) {
    let (status, body) = world.call(Method::POST, "_emulator/faults", Some(faults)).await;
    assert_eq!(status, 200, "{body}");
}

async fn engines(world: &World) -> Vec<Value> {
    let (status, body) = world.call(Method::GET, ENGINES, None).await;
    assert_eq!(status, 200, "{body}");
    body["reasoningEngines"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_engine_whose_create_is_still_running_is_waited_on_not_taken_as_deployed() {
    let deploy = 1500.0;
    let world = World::start(vertex_ai(deploy)).await;
    // Someone's deploy of this agent is under way, and is going to fail.
    set_faults(
        &world,
        json!({ "aiplatform.googleapis.com": { "operation_error": 1.0 } }),
    )
    .await;
    let doomed = deploy_elsewhere(&world, json!({ "identityType": "AGENT_IDENTITY" })).await;
    set_faults(&world, json!({})).await;

    let summary = world.run(&plan(), &[]).await;
    assert_succeeded(&summary);
    let name = outputs(&summary, "engine")["name"].as_str().unwrap().to_string();
    assert_ne!(name, doomed, "the engine whose deploy failed is not the result");
    let operations_read = world.requests().await.into_iter().any(|(m, p, _)| {
        m == "GET"
            && p.ends_with(&format!(
                "{}/operations",
                &doomed[doomed.find("/locations").unwrap()..]
            ))
    });
    assert!(operations_read, "the engine's operations were listed");

    // Once every deploy in flight has finished, the engine the step named exists.
    world.emulator.advance(Duration::from_secs_f64(deploy + 1.0));
    let listed: Vec<String> = engines(&world)
        .await
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, [name]);
}

#[tokio::test]
async fn an_adopted_engine_without_agent_identity_is_given_it() {
    let world = World::start(vertex_ai(300.0)).await;
    let existing = deploy_elsewhere(
        &world,
        json!({ "identityType": "SERVICE_ACCOUNT", "serviceAccount": "agent@sluice-demo.iam.gserviceaccount.com" }),
    )
    .await;
    world.emulator.advance(Duration::from_secs(301));

    let summary = world.run(&plan(), &[]).await;
    assert_succeeded(&summary);
    let out = outputs(&summary, "engine");
    assert_eq!(out["name"], existing, "the existing engine was adopted");
    assert!(
        out["effective_identity"]
            .as_str()
            .unwrap()
            .starts_with("principal://agents.global.proj-100000000001"),
        "{out:?}"
    );
    let listed = engines(&world).await;
    assert_eq!(listed.len(), 1, "no second engine: {listed:?}");
    assert_eq!(listed[0]["spec"]["identityType"], "AGENT_IDENTITY");
    assert!(
        listed[0]["spec"].get("serviceAccount").is_none(),
        "agent identity takes no service account: {}",
        listed[0]
    );
    let writes: Vec<(String, String, u64)> = world
        .mutations()
        .await
        .into_iter()
        .filter(|(_, p, _)| p.contains("/reasoningEngines"))
        .collect();
    assert_eq!(writes.len(), 2, "the test's deploy and one patch: {writes:?}");
    assert_eq!(writes[1].0, "PATCH");

    let before = world.mutations().await.len();
    let again = world.run(&plan(), &[]).await;
    assert_succeeded(&again);
    assert_eq!(world.mutations().await.len(), before, "then no change");
}

#[tokio::test]
async fn a_stored_operation_google_no_longer_knows_is_let_go_and_the_step_observes_again() {
    let world = World::start(vertex_ai(300.0)).await;
    let plan = parse_plan(&plan().to_string(), "plan.json").unwrap();
    let validated = validate(plan, "plan.json", &world.registry, &BTreeMap::new()).unwrap();
    let engine = world.engine();
    let run = engine.start(&validated, "plan.json").unwrap();
    // An earlier session failed while waiting on an operation that has since expired.
    let mut record = StepRecord::pending("engine");
    record.status = StepStatus::Failed {
        unsettled: Some(OperationHandle(json!({
            "family": "vertex_ai", "region": REGION,
            "name": "projects/100000000001/locations/us-central1/reasoningEngines/1/operations/2",
        }))),
    };
    let append = StepAppend {
        steps: vec![record],
        ..StepAppend::default()
    };
    world.store.append_steps(&run.run_id, append).unwrap();

    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let summary = engine.execute(&run.run_id, shutdown).await.unwrap();
    assert_succeeded(&summary);
    assert_eq!(engines(&world).await.len(), 1, "deployed once observed again");
}
