//! Cloud Billing v1: reading and linking a project's billing account; an unknown account is 403,
//! a closed or full one 400 FAILED_PRECONDITION; an empty name unlinks. Every response is
//! checked against the discovery document.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::config::{BillingAccountConfig, ProjectConfig};
use sluice_emulator::EmulatorConfig;
use support::Client;

const OPEN: &str = "billingAccounts/000000-AAAAAA-000001";
const CLOSED: &str = "billingAccounts/000000-AAAAAA-000002";
const SMALL: &str = "billingAccounts/000000-AAAAAA-000003";

fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig::default();
    let services = [
        "cloudbilling.googleapis.com",
        "cloudresourcemanager.googleapis.com",
    ];
    config.organizations[0].projects = vec![
        ProjectConfig::new("sluice-demo", 100_000_000_001, &services),
        ProjectConfig::new("fleet-b-001", 100_000_000_002, &[]),
        ProjectConfig::new("fleet-b-002", 100_000_000_003, &[]),
    ];
    config.default_quota_project = Some("sluice-demo".into());
    let account = |name: &str, open: bool, max: Option<u32>| BillingAccountConfig {
        name: name.into(),
        open,
        max_projects: max,
        display_name: "Test billing".into(),
    };
    config.billing_accounts = vec![
        account(OPEN, true, None),
        account(CLOSED, false, None),
        account(SMALL, true, Some(1)),
    ];
    config
}

async fn link(client: &Client, project: &str, account: &str) -> (u16, Value) {
    client
        .call(
            Method::PUT,
            &format!("v1/projects/{project}/billingInfo"),
            Some(json!({ "billingAccountName": account })),
        )
        .await
}

#[tokio::test]
async fn a_project_is_linked_read_and_unlinked() {
    let (_emulator, client) = Client::start_with(config()).await;
    let (status, info) = client
        .call(Method::GET, "v1/projects/fleet-b-001/billingInfo", None)
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info,
        json!({ "name": "projects/fleet-b-001/billingInfo", "projectId": "fleet-b-001",
                "billingAccountName": "", "billingEnabled": false })
    );
    let (status, info) = link(&client, "fleet-b-001", OPEN).await;
    assert_eq!(
        (status, info["billingEnabled"].as_bool()),
        (200, Some(true)),
        "{info}"
    );
    assert_eq!(
        link(&client, "fleet-b-001", OPEN).await.0,
        200,
        "linking again is a no-op"
    );
    let (_, info) = client
        .call(Method::GET, "v1/projects/fleet-b-001/billingInfo", None)
        .await;
    assert_eq!(info["billingAccountName"], OPEN);
    let (status, info) = link(&client, "fleet-b-001", "").await;
    assert_eq!((status, info["billingEnabled"].as_bool()), (200, Some(false)));
    let (status, account) = client.call(Method::GET, &format!("v1/{OPEN}"), None).await;
    assert_eq!(
        (status, account["open"].as_bool()),
        (200, Some(true)),
        "{account}"
    );
}

#[tokio::test]
async fn unknown_closed_and_full_accounts_are_refused() {
    let (_emulator, client) = Client::start_with(config()).await;
    let (status, body) = link(&client, "fleet-b-001", "billingAccounts/999999-999999-999999").await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let (status, body) = link(&client, "fleet-b-001", CLOSED).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("closed"));
    assert_eq!(link(&client, "fleet-b-001", SMALL).await.0, 200);
    let (status, body) = link(&client, "fleet-b-002", SMALL).await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota exceeded"),
        "{body}"
    );
    let (_, info) = client
        .call(Method::GET, "v1/projects/fleet-b-002/billingInfo", None)
        .await;
    assert_eq!(info["billingAccountName"], "", "nothing was linked");
}

#[tokio::test]
async fn billing_is_client_based_and_needs_the_api_in_the_quota_project() {
    let mut config = config();
    config.organizations[0].projects[0].enabled_services = vec![];
    let (_emulator, client) = Client::start_with(config).await;
    let (status, body) = client
        .call(Method::GET, "v1/projects/fleet-b-001/billingInfo", None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["details"][0]["reason"], "SERVICE_DISABLED");
    assert_eq!(
        body["error"]["details"][0]["metadata"]["consumer"], "projects/100000000001",
        "checked in the quota project, not the target"
    );
}
