//! Resource Manager v3 projects: create (an operation), Google's id rules, ids never reused,
//! parents, the per-organisation creation quota, delete / undelete, and search with paging.
//! Every response is checked against the discovery document (`support::conforms`).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::{FolderConfig, ProjectConfig, ProjectMetadataConfig};
use sluice_emulator::EmulatorConfig;
use support::Client;

const ORG: &str = "organizations/123456789012";

fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0] = ProjectConfig::new(
        "sluice-demo",
        100_000_000_001,
        &["cloudresourcemanager.googleapis.com"],
    );
    config.organizations[0].folders = vec![FolderConfig {
        id: "555".into(),
        projects: vec![ProjectConfig::new("old-fleet-1", 100_000_000_002, &[])],
    }];
    config.project_metadata.insert(
        "old-fleet-1".into(),
        ProjectMetadataConfig {
            labels: [("sluice-fleet".to_string(), "nightly".to_string())].into(),
            create_time: Some("2025-06-01T00:00:00Z".into()),
            display_name: None,
        },
    );
    config.default_quota_project = Some("sluice-demo".into());
    config.taken_project_ids = vec!["someone-elses".into()];
    config
}

async fn create(client: &Client, id: &str, parent: &str, labels: Value) -> (u16, Value) {
    let body = json!({ "projectId": id, "parent": parent, "labels": labels });
    client.call(Method::POST, "v3/projects", Some(body)).await
}

/// Advances past the operation's delay and answers the finished operation.
async fn finish(client: &Client, operation: &Value) -> Value {
    client.advance(11.0).await;
    let name = operation["name"].as_str().unwrap();
    let (status, done) = client.call(Method::GET, &format!("v3/{name}"), None).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["done"], true, "{done}");
    done
}

#[tokio::test]
async fn create_answers_an_operation_whose_response_is_the_active_project() {
    let (emulator, client) = Client::start_with(config()).await;
    let (status, operation) = create(&client, "fleet-a-001", ORG, json!({ "sluice-fleet": "nightly" })).await;
    assert_eq!(status, 200, "{operation}");
    assert!(operation["name"].as_str().unwrap().starts_with("operations/cp."));
    assert!(operation.get("done").is_none(), "running until the delay passes");
    let (_, running) = client
        .call(
            Method::GET,
            &format!("v3/{}", operation["name"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(running.get("done").is_none());
    let done = finish(&client, &operation).await;
    let project = &done["response"];
    assert_eq!(
        project["@type"],
        "type.googleapis.com/google.cloud.resourcemanager.v3.Project"
    );
    assert_eq!(
        (project["state"].as_str(), project["projectId"].as_str()),
        (Some("ACTIVE"), Some("fleet-a-001"))
    );
    assert_eq!(project["labels"]["sluice-fleet"], "nightly");

    let (status, got) = client.call(Method::GET, "v3/projects/fleet-a-001", None).await;
    assert_eq!(status, 200);
    assert_eq!(got["parent"], ORG);
    assert_eq!(got["displayName"], "fleet-a-001");
    assert!(got["createTime"].as_str().unwrap().ends_with('Z'));

    // The caller owns it, and Service Usage works there at once (enabled by default).
    let (status, policy) = client
        .call(
            Method::POST,
            "v3/projects/fleet-a-001:getIamPolicy",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["bindings"][0]["role"], "roles/owner");
    let (status, service) = client
        .call(
            Method::GET,
            "v1/projects/fleet-a-001/services/serviceusage.googleapis.com",
            None,
        )
        .await;
    assert_eq!(
        (status, service["state"].as_str()),
        (200, Some("ENABLED")),
        "{service}"
    );
    let state = emulator.state();
    let shown = state["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "fleet-a-001")
        .unwrap();
    assert_eq!(
        (shown["state"].as_str(), shown["labels"]["sluice-fleet"].as_str()),
        (Some("ACTIVE"), Some("nightly"))
    );
}

#[tokio::test]
async fn create_time_is_wall_clock_time_advanced_by_emulated_time() {
    let (_emulator, client) = Client::start_with(config()).await;
    client.advance(86_400.0 * 3.0).await;
    let (_, operation) = create(&client, "fleet-later", ORG, json!({})).await;
    finish(&client, &operation).await;
    let (_, got) = client.call(Method::GET, "v3/projects/fleet-later", None).await;
    let created = got["createTime"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Three emulated days after the emulator started: the date is two or three days ahead.
    let days = |secs: u64| secs / 86_400;
    let created_day = created[..10].to_string();
    let expected: Vec<String> = [days(now) + 2, days(now) + 3]
        .into_iter()
        .map(|d| civil(d as i64))
        .collect();
    assert!(expected.contains(&created_day), "{created} vs {expected:?}");
    let (_, old) = client.call(Method::GET, "v3/projects/old-fleet-1", None).await;
    assert_eq!(old["createTime"], "2025-06-01T00:00:00.000000000Z");
}

/// `YYYY-MM-DD` of a day since the Unix epoch.
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[tokio::test]
async fn ids_are_checked_and_never_reused() {
    let (_emulator, client) = Client::start_with(config()).await;
    for bad in [
        "short",
        "1starts-with-digit",
        "Upper-case-id",
        "ends-with-",
        "way-too-long-for-a-project-id-x",
    ] {
        let (status, body) = create(&client, bad, ORG, json!({})).await;
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (400, Some("INVALID_ARGUMENT")),
            "{bad}: {body}"
        );
    }
    let (status, body) = create(&client, "good-id-1", ORG, json!({ "Bad": "x" })).await;
    assert_eq!(status, 400, "label keys are lowercase: {body}");

    let (_, operation) = create(&client, "fleet-dup-1", "folders/555", json!({})).await;
    finish(&client, &operation).await;
    for taken in ["fleet-dup-1", "someone-elses", "sluice-demo"] {
        let (status, body) = create(&client, taken, ORG, json!({})).await;
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (409, Some("ALREADY_EXISTS")),
            "{taken}: {body}"
        );
    }
    let (status, body) = client.call(Method::GET, "v3/projects/someone-elses", None).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );

    // Deleted, the id stays taken.
    let (status, deleting) = client.call(Method::DELETE, "v3/projects/fleet-dup-1", None).await;
    assert_eq!(status, 200, "{deleting}");
    let (status, _) = create(&client, "fleet-dup-1", ORG, json!({})).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn an_unknown_parent_is_permission_denied() {
    let (_emulator, client) = Client::start_with(config()).await;
    for parent in ["organizations/999", "folders/777"] {
        let (status, body) = create(&client, "fleet-orphan", parent, json!({})).await;
        assert_eq!(
            (status, body["error"]["status"].as_str()),
            (403, Some("PERMISSION_DENIED")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn creations_over_the_organisations_quota_are_resource_exhausted_with_retry_info() {
    let mut config = config();
    config.organizations[0].project_creation_per_minute = Some(2);
    let (_emulator, client) = Client::start_with(config).await;
    assert_eq!(create(&client, "fleet-q-1", ORG, json!({})).await.0, 200);
    assert_eq!(
        create(&client, "fleet-q-2", "folders/555", json!({})).await.0,
        200
    );
    let (status, body) = create(&client, "fleet-q-3", ORG, json!({})).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED")),
        "{body}"
    );
    let details = body["error"]["details"].as_array().unwrap();
    let of_type = |t: &str| {
        details
            .iter()
            .find(|d| d["@type"].as_str().unwrap().ends_with(t))
            .cloned()
    };
    assert!(of_type("RetryInfo").unwrap()["retryDelay"]
        .as_str()
        .unwrap()
        .ends_with('s'));
    assert_eq!(
        of_type("QuotaFailure").unwrap()["violations"][0]["subject"],
        "organizations/123456789012"
    );
    let (status, _) = client.call(Method::GET, "v3/projects/fleet-q-3", None).await;
    assert_eq!(status, 403, "nothing was created");
    client.advance(60.0).await;
    assert_eq!(
        create(&client, "fleet-q-3", ORG, json!({})).await.0,
        200,
        "the next minute"
    );
}

#[tokio::test]
async fn delete_requests_deletion_and_undelete_restores() {
    let (_emulator, client) = Client::start_with(config()).await;
    let (_, operation) = create(&client, "fleet-del-1", ORG, json!({})).await;
    finish(&client, &operation).await;
    let (status, operation) = client.call(Method::DELETE, "v3/projects/fleet-del-1", None).await;
    assert_eq!(status, 200);
    let done = finish(&client, &operation).await;
    assert_eq!(done["response"]["state"], "DELETE_REQUESTED");
    let (_, got) = client.call(Method::GET, "v3/projects/fleet-del-1", None).await;
    assert_eq!(got["state"], "DELETE_REQUESTED");
    assert!(got["deleteTime"].is_string());
    // Other APIs no longer serve it.
    let (status, _) = client
        .call(
            Method::GET,
            "v1/projects/fleet-del-1/services/serviceusage.googleapis.com",
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = client
        .call(Method::POST, "v3/projects/fleet-del-1:undelete", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{body}");
    let done = finish(&client, &body).await;
    assert_eq!(done["response"]["state"], "ACTIVE");
    let (_, got) = client.call(Method::GET, "v3/projects/fleet-del-1", None).await;
    assert_eq!(got["state"], "ACTIVE");
    assert!(got.get("deleteTime").is_none());
    let (status, body) = client
        .call(Method::POST, "v3/projects/fleet-del-1:undelete", Some(json!({})))
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION"))
    );
}

#[tokio::test]
async fn search_by_label_and_state_pages_through_the_matches() {
    let (_emulator, client) = Client::start_with(config()).await;
    for i in 0..5 {
        let (status, _) = create(
            &client,
            &format!("fleet-s-{i:03}"),
            ORG,
            json!({ "sluice-fleet": "nightly" }),
        )
        .await;
        assert_eq!(status, 200);
    }
    create(&client, "other-s-001", ORG, json!({ "team": "x" })).await;
    client.call(Method::DELETE, "v3/projects/fleet-s-004", None).await;

    let query = "labels.sluice-fleet:nightly%20AND%20state:ACTIVE";
    let mut ids = vec![];
    let mut token = String::new();
    loop {
        let path = format!("v3/projects:search?query={query}&pageSize=2&pageToken={token}");
        let (status, page) = client.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let projects = page["projects"].as_array().unwrap();
        assert!(projects.len() <= 2);
        ids.extend(
            projects
                .iter()
                .map(|p| p["projectId"].as_str().unwrap().to_string()),
        );
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        [
            "fleet-s-000",
            "fleet-s-001",
            "fleet-s-002",
            "fleet-s-003",
            "old-fleet-1"
        ]
    );

    // Side by side, terms match any of them (the discovery document's rule).
    let (_, either) = client
        .call(
            Method::GET,
            "v3/projects:search?query=id:other-s-001%20id:fleet-s-000",
            None,
        )
        .await;
    assert_eq!(either["projects"].as_array().unwrap().len(), 2);
    let (_, by_parent) = client
        .call(Method::GET, "v3/projects:search?query=parent:folders/555", None)
        .await;
    assert_eq!(by_parent["projects"][0]["projectId"], "old-fleet-1");
    let (status, _) = client
        .call(Method::GET, "v3/projects:search?query=colour:red", None)
        .await;
    assert_eq!(status, 400, "an unknown field is refused");
}

#[tokio::test]
async fn a_failed_create_operation_leaves_no_project_and_the_id_free() {
    let mut config = config();
    config.faults.insert(
        "cloudresourcemanager.googleapis.com".into(),
        sluice_emulator::config::FaultConfig {
            operation_error: 1.0,
            ..Default::default()
        },
    );
    let (_emulator, client) = Client::start_with(config).await;
    let (status, operation) = create(&client, "fleet-fail-1", ORG, json!({})).await;
    assert_eq!(status, 200, "{operation}");
    let done = finish(&client, &operation).await;
    assert_eq!(done["error"]["code"], 13, "{done}");
    let (status, _) = client.call(Method::GET, "v3/projects/fleet-fail-1", None).await;
    assert_eq!(status, 403, "no project was left");
    let (status, _) = client
        .send(Method::POST, "_emulator/faults", Some(json!({})), None)
        .await;
    assert_eq!(status, 200);
    let (status, operation) = create(&client, "fleet-fail-1", ORG, json!({})).await;
    assert_eq!(status, 200, "the id is still free: {operation}");
    assert_eq!(finish(&client, &operation).await["response"]["state"], "ACTIVE");
}
