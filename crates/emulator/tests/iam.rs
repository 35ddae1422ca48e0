//! IAM v1 custom roles over real HTTP on loopback, in a project where IAM is enabled from the start.
//! Days pass by advancing the emulated clock, never by waiting.

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::{EmulatorConfig, EmulatorHandle};

mod support;

use support::Client;

async fn start() -> (EmulatorHandle, Client) {
    let mut config = EmulatorConfig::default();
    config.organizations[0].projects[0].enabled_services = vec!["iam.googleapis.com".into()];
    Client::start_with(config).await
}

/// Creates `role_id` with `role`, asserting success.
async fn create(client: &Client, role_id: &str, role: Value) -> Value {
    let (status, body) = client
        .call(
            Method::POST,
            &roles(),
            Some(json!({ "roleId": role_id, "role": role })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

const PROJECT: &str = "sluice-demo";
const NUMBER: &str = "100000000001";
const DAY: f64 = 24.0 * 60.0 * 60.0;

fn roles() -> String {
    format!("v1/projects/{PROJECT}/roles")
}

fn role(id: &str) -> String {
    format!("v1/projects/{PROJECT}/roles/{id}")
}

fn gateway_user() -> Value {
    json!({
        "title": "Gateway user",
        "description": "Uses agent gateways",
        "includedPermissions": ["networkservices.agentGateways.use", "networkservices.agentGateways.get"],
        "stage": "GA",
    })
}

/// The error status of a failed call, with its HTTP code.
fn error(response: &(u16, Value)) -> (u16, &str) {
    (
        response.0,
        response.1["error"]["status"].as_str().unwrap_or("<none>"),
    )
}

fn message(response: &(u16, Value)) -> String {
    response.1["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Decodes standard base64 (with padding), or `None` when `text` is not valid base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let data = text.trim_end_matches('=');
    if text.len() - data.len() > 2 {
        return None;
    }
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in data.bytes() {
        let value = ALPHABET.iter().position(|&a| a == byte)? as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[tokio::test]
async fn create_answers_the_role_synchronously_and_get_reads_it_back() {
    let (_emulator, client) = start().await;
    // Addressed by project number: the name still carries the project id.
    let (status, created) = client
        .call(
            Method::POST,
            &format!("v1/projects/{NUMBER}/roles"),
            Some(json!({
                "roleId": "gatewayUser",
                "role": {
                    "title": "Gateway user",
                    "description": "Uses agent gateways",
                    "includedPermissions": ["networkservices.agentGateways.use", "networkservices.agentGateways.get",
                                            "networkservices.agentGateways.use"],
                },
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["name"], format!("projects/{PROJECT}/roles/gatewayUser"));
    assert_eq!(created["title"], "Gateway user");
    assert_eq!(created["description"], "Uses agent gateways");
    assert_eq!(
        created["includedPermissions"],
        json!([
            "networkservices.agentGateways.get",
            "networkservices.agentGateways.use"
        ]),
        "sorted, without duplicates"
    );
    assert!(
        created.get("stage").is_none(),
        "no stage given: ALPHA, which Google leaves out: {created}"
    );
    assert!(
        created.get("deleted").is_none(),
        "a live role has no `deleted`: {created}"
    );
    assert!(created.get("done").is_none(), "a Role, not an operation");
    let etag = created["etag"].as_str().unwrap();
    assert!(
        base64_decode(etag).is_some_and(|bytes| !bytes.is_empty()),
        "etag is base64: {etag}"
    );

    let (status, got) = client.call(Method::GET, &role("gatewayUser"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    let (status, by_number) = client
        .call(
            Method::GET,
            &format!("v1/projects/{NUMBER}/roles/gatewayUser"),
            None,
        )
        .await;
    assert_eq!((status, &by_number), (200, &created));

    let missing = client.call(Method::GET, &role("noSuchRole"), None).await;
    assert_eq!(error(&missing), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn create_refuses_a_name_bad_role_ids_unknown_permissions_and_unknown_fields() {
    let (_emulator, client) = start().await;
    let create = |body: Value| {
        let client = &client;
        async move { client.call(Method::POST, &roles(), Some(body)).await }
    };

    let named =
        create(json!({ "roleId": "named", "role": { "name": "projects/sluice-demo/roles/named" } })).await;
    assert_eq!(error(&named), (400, "INVALID_ARGUMENT"));

    let long = "a".repeat(65);
    for bad in ["ab", long.as_str(), "has-dash", "has space", "slash/es", ""] {
        let response = create(json!({ "roleId": bad, "role": { "title": "t" } })).await;
        assert_eq!(error(&response), (400, "INVALID_ARGUMENT"), "roleId {bad:?}");
    }
    for good in ["abc", "a.b_c9", &"Z".repeat(64)] {
        let response = create(json!({ "roleId": good, "role": { "title": "t" } })).await;
        assert_eq!(response.0, 200, "roleId {good:?}: {}", response.1);
    }

    let unknown = create(json!({
        "roleId": "unknownPermission",
        "role": { "includedPermissions": ["resourcemanager.projects.get", "compute.instances.fly"] },
    }))
    .await;
    assert_eq!(error(&unknown), (400, "INVALID_ARGUMENT"));
    assert!(
        message(&unknown).contains("compute.instances.fly"),
        "{}",
        unknown.1
    );

    let stage = create(json!({ "roleId": "badStage", "role": { "stage": "PREVIEW" } })).await;
    assert_eq!(error(&stage), (400, "INVALID_ARGUMENT"));
    let field = create(json!({ "roleId": "badField", "role": { "permissions": [] } })).await;
    assert_eq!(error(&field), (400, "INVALID_ARGUMENT"));
    assert!(message(&field).contains("permissions"), "{}", field.1);
    let title = create(json!({ "roleId": "longTitle", "role": { "title": "t".repeat(101) } })).await;
    assert_eq!(error(&title), (400, "INVALID_ARGUMENT"));

    let (status, _) = client.call(Method::GET, &role("unknownPermission"), None).await;
    assert_eq!(status, 404, "a refused create leaves nothing behind");
}

#[tokio::test]
async fn a_live_role_id_cannot_be_created_again() {
    let (_emulator, client) = start().await;
    create(&client, "gatewayUser", gateway_user()).await;
    let again = client
        .call(
            Method::POST,
            &roles(),
            Some(json!({ "roleId": "gatewayUser", "role": gateway_user() })),
        )
        .await;
    assert_eq!(error(&again), (409, "ALREADY_EXISTS"));
}

#[tokio::test]
async fn delete_is_soft_and_blocks_create_and_patch_until_undelete() {
    let (_emulator, client) = start().await;
    let created = create(&client, "gatewayUser", gateway_user()).await;

    let (status, deleted) = client.call(Method::DELETE, &role("gatewayUser"), None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["title"], created["title"]);
    assert_ne!(deleted["etag"], created["etag"]);
    let (status, got) = client.call(Method::GET, &role("gatewayUser"), None).await;
    assert_eq!(status, 200, "a deleted role is still returned");
    assert_eq!(got, deleted);

    let recreate = client
        .call(
            Method::POST,
            &roles(),
            Some(json!({ "roleId": "gatewayUser", "role": gateway_user() })),
        )
        .await;
    assert_eq!(error(&recreate), (400, "FAILED_PRECONDITION"));
    assert!(
        message(&recreate).contains("has been marked for deletion"),
        "{}",
        recreate.1
    );
    assert!(message(&recreate).contains("ndelete"), "{}", recreate.1);

    let patch = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=title", role("gatewayUser")),
            Some(json!({ "title": "New" })),
        )
        .await;
    assert_eq!(error(&patch), (400, "FAILED_PRECONDITION"));
    let delete_again = client.call(Method::DELETE, &role("gatewayUser"), None).await;
    assert_eq!(error(&delete_again), (400, "FAILED_PRECONDITION"));

    let (status, undeleted) = client
        .call(
            Method::POST,
            &format!("{}:undelete", role("gatewayUser")),
            Some(json!({ "etag": deleted["etag"] })),
        )
        .await;
    assert_eq!(status, 200, "{undeleted}");
    assert!(undeleted.get("deleted").is_none(), "live again: {undeleted}");
    assert_eq!(undeleted["includedPermissions"], created["includedPermissions"]);
    assert_ne!(undeleted["etag"], deleted["etag"]);
    let live = client
        .call(Method::POST, &format!("{}:undelete", role("gatewayUser")), None)
        .await;
    assert_eq!(
        error(&live),
        (400, "FAILED_PRECONDITION"),
        "undeleting a live role"
    );

    let (status, patched) = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=title", role("gatewayUser")),
            Some(json!({ "title": "New" })),
        )
        .await;
    assert_eq!((status, &patched["title"]), (200, &json!("New")));
}

#[tokio::test]
async fn undelete_works_for_seven_days_and_the_id_is_free_after_thirty_seven() {
    let (_emulator, client) = start().await;
    create(&client, "early", gateway_user()).await;
    create(&client, "late", gateway_user()).await;
    client.call(Method::DELETE, &role("early"), None).await;
    client.call(Method::DELETE, &role("late"), None).await;

    client.advance(7.0 * DAY - 60.0).await;
    let (status, _) = client
        .call(
            Method::POST,
            &format!("{}:undelete", role("early")),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "within 7 days");

    client.advance(120.0).await;
    let late = client
        .call(
            Method::POST,
            &format!("{}:undelete", role("late")),
            Some(json!({})),
        )
        .await;
    assert_eq!(error(&late), (400, "FAILED_PRECONDITION"), "after 7 days");
    let (status, body) = client.call(Method::GET, &role("late"), None).await;
    assert_eq!((status, &body["deleted"]), (200, &json!(true)));
    let recreate = client
        .call(
            Method::POST,
            &roles(),
            Some(json!({ "roleId": "late", "role": gateway_user() })),
        )
        .await;
    assert_eq!(
        error(&recreate),
        (400, "FAILED_PRECONDITION"),
        "the id is still taken"
    );

    client.advance(30.0 * DAY).await;
    let (status, _) = client.call(Method::GET, &role("late"), None).await;
    assert_eq!(status, 404, "purged 37 days after the delete");
    let recreated = create(&client, "late", json!({ "title": "Reborn" })).await;
    assert_eq!(recreated["title"], "Reborn");
    let (status, early) = client.call(Method::GET, &role("early"), None).await;
    assert_eq!(status, 200, "the undeleted role stays");
    assert!(early.get("deleted").is_none());
}

#[tokio::test]
async fn patch_applies_the_update_mask_and_refuses_a_stale_etag() {
    let (_emulator, client) = start().await;
    let created = create(&client, "gatewayUser", gateway_user()).await;

    let (status, titled) = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=title", role("gatewayUser")),
            Some(json!({ "title": "Renamed", "description": "ignored: not in the mask", "etag": created["etag"] })),
        )
        .await;
    assert_eq!(status, 200, "{titled}");
    assert_eq!(titled["title"], "Renamed");
    assert_eq!(titled["description"], created["description"]);
    assert_eq!(titled["includedPermissions"], created["includedPermissions"]);
    assert_ne!(titled["etag"], created["etag"], "every write makes a new etag");

    let stale = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=description", role("gatewayUser")),
            Some(json!({ "description": "stale", "etag": created["etag"] })),
        )
        .await;
    assert_eq!(error(&stale), (409, "ABORTED"));
    let (_, unchanged) = client.call(Method::GET, &role("gatewayUser"), None).await;
    assert_eq!(unchanged, titled, "a refused patch changes nothing");

    let (status, both) = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=includedPermissions,stage", role("gatewayUser")),
            Some(json!({
                "includedPermissions": ["modelarmor.templates.use"],
                "stage": "BETA",
                "etag": titled["etag"],
            })),
        )
        .await;
    assert_eq!(status, 200, "{both}");
    assert_eq!(both["includedPermissions"], json!(["modelarmor.templates.use"]));
    assert_eq!(both["stage"], "BETA");
    assert_eq!(both["title"], "Renamed");

    // No mask: all four fields are replaced by the body's.
    let (status, replaced) = client
        .call(
            Method::PATCH,
            &role("gatewayUser"),
            Some(json!({
                "title": "Replaced",
                "description": "all four",
                "includedPermissions": ["iam.roles.get"],
                "stage": "DEPRECATED",
            })),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        (
            &replaced["title"],
            &replaced["description"],
            &replaced["includedPermissions"],
            &replaced["stage"]
        ),
        (
            &json!("Replaced"),
            &json!("all four"),
            &json!(["iam.roles.get"]),
            &json!("DEPRECATED")
        )
    );

    let bad_mask = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=name", role("gatewayUser")),
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(error(&bad_mask), (400, "INVALID_ARGUMENT"));
    let bad_permission = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=includedPermissions", role("gatewayUser")),
            Some(json!({ "includedPermissions": ["storage.buckets.fly"] })),
        )
        .await;
    assert_eq!(error(&bad_permission), (400, "INVALID_ARGUMENT"));
    assert!(message(&bad_permission).contains("storage.buckets.fly"));
    let missing = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=title", role("noSuchRole")),
            Some(json!({ "title": "x" })),
        )
        .await;
    assert_eq!(error(&missing), (404, "NOT_FOUND"));
}

#[tokio::test]
async fn delete_and_undelete_refuse_a_stale_etag() {
    let (_emulator, client) = start().await;
    let created = create(&client, "gatewayUser", gateway_user()).await;
    let (_, patched) = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=title", role("gatewayUser")),
            Some(json!({ "title": "Renamed" })),
        )
        .await;

    let etag_query = |etag: &Value| {
        // Percent-encoded, as a client must: base64 may hold `+`, `/` and `=`.
        let etag = etag.as_str().unwrap();
        let encoded: String = etag
            .bytes()
            .map(|b| match b {
                b'+' => "%2B".to_string(),
                b'/' => "%2F".to_string(),
                b'=' => "%3D".to_string(),
                b => (b as char).to_string(),
            })
            .collect();
        format!("{}?etag={encoded}", role("gatewayUser"))
    };
    let stale = client
        .call(Method::DELETE, &etag_query(&created["etag"]), None)
        .await;
    assert_eq!(error(&stale), (409, "ABORTED"));
    let (status, deleted) = client
        .call(Method::DELETE, &etag_query(&patched["etag"]), None)
        .await;
    assert_eq!((status, &deleted["deleted"]), (200, &json!(true)), "{deleted}");

    let undelete = format!("{}:undelete", role("gatewayUser"));
    let stale = client
        .call(Method::POST, &undelete, Some(json!({ "etag": patched["etag"] })))
        .await;
    assert_eq!(error(&stale), (409, "ABORTED"));
    let not_base64 = client
        .call(Method::POST, &undelete, Some(json!({ "etag": "not base64!" })))
        .await;
    assert_eq!(error(&not_base64), (400, "INVALID_ARGUMENT"));
    let (status, _) = client
        .call(Method::POST, &undelete, Some(json!({ "etag": deleted["etag"] })))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn list_hides_deleted_roles_shows_permissions_only_in_full_view_and_pages() {
    let (_emulator, client) = start().await;
    let (status, empty) = client.call(Method::GET, &roles(), None).await;
    assert_eq!((status, &empty), (200, &json!({})), "no roles: an empty response");
    for id in ["role_a", "role_b", "role_c", "role_d", "role_e"] {
        create(&client, id, gateway_user()).await;
    }
    client.call(Method::DELETE, &role("role_c"), None).await;

    let names = |body: &Value| -> Vec<String> {
        body["roles"]
            .as_array()
            .map(|roles| {
                roles
                    .iter()
                    .map(|r| {
                        r["name"]
                            .as_str()
                            .unwrap()
                            .rsplit('/')
                            .next()
                            .unwrap()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (status, basic) = client.call(Method::GET, &roles(), None).await;
    assert_eq!(status, 200, "{basic}");
    assert_eq!(names(&basic), ["role_a", "role_b", "role_d", "role_e"]);
    assert!(basic.get("nextPageToken").is_none());
    let first = &basic["roles"][0];
    assert!(first.get("includedPermissions").is_none(), "BASIC view: {first}");
    assert_eq!(first["title"], "Gateway user");
    assert!(first["etag"].is_string());

    let (_, full) = client
        .call(
            Method::GET,
            &format!("{}?view=FULL&showDeleted=true", roles()),
            None,
        )
        .await;
    assert_eq!(names(&full), ["role_a", "role_b", "role_c", "role_d", "role_e"]);
    assert_eq!(full["roles"][2]["deleted"], true);
    assert_eq!(
        full["roles"][0]["includedPermissions"],
        json!([
            "networkservices.agentGateways.get",
            "networkservices.agentGateways.use"
        ])
    );

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("v1/projects/{NUMBER}/roles?pageSize=2");
        if let Some(token) = &token {
            path.push_str(&format!("&pageToken={token}"));
        }
        let (status, page) = client.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        seen.extend(names(&page));
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["role_a", "role_b", "role_d", "role_e"]);
    assert_eq!(pages, 2);

    for bad in [
        "view=EVERYTHING",
        "pageSize=-1",
        "pageToken=garbage",
        "showDeleted=maybe",
    ] {
        let response = client
            .call(Method::GET, &format!("{}?{bad}", roles()), None)
            .await;
        assert_eq!(error(&response), (400, "INVALID_ARGUMENT"), "{bad}");
    }
}

#[tokio::test]
async fn snake_case_input_is_accepted_and_an_alpha_stage_is_not_shown() {
    let (_emulator, client) = start().await;
    let (status, created) = client
        .call(
            Method::POST,
            &roles(),
            Some(json!({
                "role_id": "snaky",
                "role": { "title": "Snaky", "included_permissions": ["iam.roles.get"], "stage": "ALPHA" },
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["includedPermissions"], json!(["iam.roles.get"]));
    assert!(
        created.get("stage").is_none(),
        "the discovery document: an ALPHA stage is not included: {created}"
    );
    let (status, patched) = client
        .call(
            Method::PATCH,
            &format!("{}?update_mask=included_permissions", role("snaky")),
            Some(json!({ "included_permissions": ["iam.roles.get", "resourcemanager.projects.get"] })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["includedPermissions"],
        json!(["iam.roles.get", "resourcemanager.projects.get"])
    );
}

#[tokio::test]
async fn iam_needs_the_api_enabled_and_a_reset_forgets_every_role() {
    // The default config: IAM is not enabled.
    let (handle, plain) = Client::start_with(EmulatorConfig::default()).await;
    let disabled = plain
        .call(
            Method::POST,
            &roles(),
            Some(json!({ "roleId": "gatewayUser", "role": gateway_user() })),
        )
        .await;
    assert_eq!(error(&disabled), (403, "PERMISSION_DENIED"));
    plain
        .call(
            Method::POST,
            &format!("v1/projects/{PROJECT}/services/iam.googleapis.com:enable"),
            Some(json!({})),
        )
        .await;
    plain.advance(61.0).await;
    create(&plain, "gatewayUser", gateway_user()).await;

    let (_emulator, client) = start().await;
    create(&client, "gatewayUser", gateway_user()).await;
    let (status, _) = client.send(Method::POST, "_emulator/reset", None, None).await;
    assert_eq!(status, 204);
    let (status, _) = client.call(Method::GET, &role("gatewayUser"), None).await;
    assert_eq!(status, 404, "reset forgets roles");
    let (status, list) = client.call(Method::GET, &roles(), None).await;
    assert_eq!((status, list), (200, json!({})));

    let unknown_method = client
        .call(Method::PUT, &role("gatewayUser"), Some(json!({})))
        .await;
    assert_eq!(error(&unknown_method), (404, "NOT_FOUND"));
    handle.shutdown().await.unwrap();
}

/// iam.v1 `Role.stage`: ALPHA is the enum's first value (proto3's default), and "if the `ALPHA`
/// launch stage has been selected for a role, the `stage` field will not be included". A role
/// created without a stage, or patched with `stage` in the mask and none given, is ALPHA: a
/// later patch to BETA shows BETA, so the stage really was ALPHA and not merely hidden.
#[tokio::test]
async fn a_role_created_without_a_stage_is_alpha_not_ga() {
    let (_emulator, client) = start().await;
    let created = create(
        &client,
        "noStage",
        json!({ "title": "No stage", "includedPermissions": ["iam.roles.get"] }),
    )
    .await;
    assert!(created.get("stage").is_none(), "ALPHA is not shown: {created}");
    let (status, read) = client.call(Method::GET, &role("noStage"), None).await;
    assert_eq!(status, 200, "{read}");
    assert!(read.get("stage").is_none(), "still ALPHA when read: {read}");

    create(&client, "wasGa", gateway_user()).await;
    let (status, cleared) = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=stage", role("wasGa")),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert!(
        cleared.get("stage").is_none(),
        "a stage cleared through the mask is ALPHA, not GA: {cleared}"
    );
    let (status, beta) = client
        .call(
            Method::PATCH,
            &format!("{}?updateMask=stage", role("noStage")),
            Some(json!({ "stage": "BETA" })),
        )
        .await;
    assert_eq!((status, &beta["stage"]), (200, &json!("BETA")), "{beta}");
}
