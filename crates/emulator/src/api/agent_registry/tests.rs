use super::agent_views::agents;
use super::*;
use crate::api::resources::valid_request_id;
use crate::world::{IamPolicy, Project};

fn world() -> World {
    let mut world = World::default();
    world.projects.push(Project {
        id: "sluice-demo".into(),
        number: 42,
        parent: "organizations/1".into(),
        services: BTreeMap::new(),
        service_agents_usable_at: None,
        iam_policy: IamPolicy::default(),
        meta: Default::default(),
    });
    world
}

#[test]
fn runtime_agent_points_at_its_engine() {
    let mut world = world();
    let engine = "projects/42/locations/us-central1/reasoningEngines/777";
    register_runtime_agent(
        &mut world,
        "42",
        "us-central1",
        engine,
        "Support bot",
        Duration::ZERO,
    );
    let listed = agents(
        &world,
        "projects/sluice-demo/locations/us-central1",
        "us-central1",
        Duration::ZERO,
    );
    assert_eq!(listed.len(), 1);
    let (name, agent) = &listed[0];
    assert_eq!(name, "projects/sluice-demo/locations/us-central1/agents/777");
    assert_eq!(agent["displayName"], "Support bot");
    assert_eq!(
        agent["attributes"][RUNTIME_REFERENCE]["uri"],
        format!("//aiplatform.googleapis.com/{engine}")
    );
    let uid = agent["uid"].clone();
    register_runtime_agent(
        &mut world,
        "sluice-demo",
        "us-central1",
        engine,
        "Renamed",
        Duration::ZERO,
    );
    let listed = agents(
        &world,
        "projects/sluice-demo/locations/us-central1",
        "us-central1",
        Duration::ZERO,
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1["uid"], uid);
    assert_eq!(listed[0].1["displayName"], "Renamed");
    assert!(agents(
        &world,
        "projects/sluice-demo/locations/europe-west1",
        "europe-west1",
        Duration::ZERO
    )
    .is_empty());
    let problems = crate::discovery::check("agentregistry.v1", "Agent", &listed[0].1);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn ids_are_checked() {
    assert!(valid_service_id("abcd"));
    assert!(valid_service_id("a-1-b"));
    assert!(!valid_service_id("abc"));
    assert!(!valid_service_id("ABCD"));
    assert!(!valid_service_id(&"a".repeat(64)));
    assert!(valid_request_id("123e4567-e89b-12d3-a456-426614174000"));
    assert!(!valid_request_id("00000000-0000-0000-0000-000000000000"));
    assert!(!valid_request_id("not-a-uuid"));
}

/// The runtime agent through the HTTP list and get, on a real server.
#[tokio::test]
async fn runtime_agents_are_listed_over_http() {
    let mut config = crate::EmulatorConfig::default();
    config.organizations[0].projects[0] = crate::config::ProjectConfig {
        id: "sluice-demo".into(),
        number: 42,
        enabled_services: vec!["agentregistry.googleapis.com".into()],
    };
    let emulator = std::sync::Arc::new(crate::Emulator::new(config));
    let engine = "projects/sluice-demo/locations/us-central1/reasoningEngines/777";
    register_runtime_agent(
        &mut emulator.world(),
        "sluice-demo",
        "us-central1",
        engine,
        "Bot",
        Duration::ZERO,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, crate::router::router(emulator)).await });
    let http = reqwest::Client::new();
    let get = |path: String| {
        let request = http.get(format!("{base}/{path}")).bearer_auth("test-token");
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let parent = "v1/projects/42/locations/us-central1";
    let (status, listed) = get(format!("{parent}/agents")).await;
    assert_eq!(status, 200, "{listed}");
    let problems = crate::discovery::check("agentregistry.v1", "ListAgentsResponse", &listed);
    assert!(problems.is_empty(), "{problems:?}");
    let agent = &listed["agents"][0];
    assert_eq!(
        agent["name"],
        "projects/sluice-demo/locations/us-central1/agents/777"
    );
    assert_eq!(
        agent["attributes"][RUNTIME_REFERENCE]["uri"],
        format!("//aiplatform.googleapis.com/{engine}")
    );
    let (status, got) = get(format!("{parent}/agents/777")).await;
    assert_eq!((status, &got), (200, agent));
    server.abort();
}
