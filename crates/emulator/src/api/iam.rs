//! IAM v1 custom roles at project level (`iam.v1.json`): projects.roles create, get, patch, delete,
//! undelete and list. All synchronous (no operations). Roles are named
//! `projects/{PROJECT_ID}/roles/{ROLE_ID}` with the project *id*, even when the path names the project
//! by number.
//!
//! Deletion is soft, as on Google: a deleted role is still returned by get (`"deleted": true`),
//! listed only with `showDeleted=true`, can be undeleted for 7 emulated days, and blocks its role id
//! until it is purged 37 days after the delete; after that it is gone (404) and the id is free.
//!
//! Output follows proto3 JSON as Google does: empty strings and lists and a false `deleted` are
//! omitted, and so is `stage` when it is `ALPHA` (the discovery document says so). Input accepts
//! lowerCamelCase and snake_case names and refuses unknown fields. Permissions are checked against
//! [`KNOWN_PERMISSIONS`], a small stand-in for Google's catalogue.
//!
//! A role created without a stage, or patched with `stage` in the mask and none given, is `ALPHA`:
//! the first value of `Role.stage` in the discovery document, proto3's default, and the stage
//! Google leaves out of its answers.
//!
//! Modelling choices (Google documents none of these): a patch without `updateMask` replaces all four updatable fields; etags are 8 bytes of
//! base64 drawn from the world's id sequence, new on every write.
//!
//! State: `World::iam_roles` maps each full role name to its [`StoredRole`], so a reset clears it.
//! [`role_is_live`] answers for other APIs (setIamPolicy) whether a custom role may be granted.

use std::ops::Bound;
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

const DAY: u64 = 24 * 60 * 60;
/// How long after a delete the role can be undeleted.
const UNDELETE_WINDOW: Duration = Duration::from_secs(7 * DAY);
/// How long after a delete the role is purged and its id can be reused.
const PURGED_AFTER: Duration = Duration::from_secs(37 * DAY);
const DEFAULT_PAGE_SIZE: usize = 300;
const MAX_PAGE_SIZE: usize = 1000;
const MAX_TITLE_BYTES: usize = 100;
/// `Role.stage`, in the discovery document's order.
const STAGES: [&str; 6] = ["ALPHA", "BETA", "GA", "DEPRECATED", "DISABLED", "EAP"];
/// An unset stage: proto3's zero value, the first of [`STAGES`].
const DEFAULT_STAGE: &str = STAGES[0];
/// The fields an update mask may name, as (lowerCamelCase, snake_case).
const UPDATABLE: [(&str, &str); 4] = [
    ("title", "title"),
    ("description", "description"),
    ("includedPermissions", "included_permissions"),
    ("stage", "stage"),
];
/// The fields of `Role`, as (lowerCamelCase, snake_case).
const ROLE_FIELDS: [(&str, &str); 7] = [
    ("name", "name"),
    ("title", "title"),
    ("description", "description"),
    ("includedPermissions", "included_permissions"),
    ("stage", "stage"),
    ("etag", "etag"),
    ("deleted", "deleted"),
];

/// The permissions a custom role may include. A stand-in for Google's catalogue: the permissions
/// on the APIs Sluice drives that its roles are expected to grant, and a few neighbours.
pub const KNOWN_PERMISSIONS: &[&str] = &[
    "aiplatform.reasoningEngines.create",
    "aiplatform.reasoningEngines.delete",
    "aiplatform.reasoningEngines.get",
    "aiplatform.reasoningEngines.list",
    "aiplatform.reasoningEngines.update",
    "iam.roles.get",
    "iam.roles.list",
    "modelarmor.templates.get",
    "modelarmor.templates.list",
    "modelarmor.templates.use",
    "networkservices.agentGateways.create",
    "networkservices.agentGateways.delete",
    "networkservices.agentGateways.get",
    "networkservices.agentGateways.list",
    "networkservices.agentGateways.update",
    "networkservices.agentGateways.use",
    "networkservices.operations.get",
    "networkservices.operations.list",
    "resourcemanager.projects.get",
    "resourcemanager.projects.getIamPolicy",
    "serviceusage.services.get",
    "serviceusage.services.list",
    "serviceusage.services.use",
];

/// A project-level custom role, keyed in the world by its full name.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRole {
    pub title: String,
    pub description: String,
    /// Sorted, without duplicates.
    pub included_permissions: Vec<String>,
    /// One of [`STAGES`].
    pub stage: String,
    /// Base64; new on every write.
    pub etag: String,
    /// Emulated time of the soft delete; `None` while the role is live.
    pub deleted_at: Option<Duration>,
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    Some(match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v1", "projects", project, "roles"], None) => create(emulator, project, &call.body),
        (&Method::GET, ["v1", "projects", project, "roles"], None) => list(emulator, project, call),
        (&Method::GET, ["v1", "projects", project, "roles", role], None) => get(emulator, project, role),
        (&Method::PATCH, ["v1", "projects", project, "roles", role], None) => {
            patch(emulator, project, role, call)
        }
        (&Method::DELETE, ["v1", "projects", project, "roles", role], None) => {
            delete(emulator, project, role, call)
        }
        (&Method::POST, ["v1", "projects", project, "roles", role], Some("undelete")) => {
            undelete(emulator, project, role, &call.body)
        }
        (_, ["v1", "projects", _, "roles", ..], _) => {
            let verb = verb.map(|v| format!(":{v}")).unwrap_or_default();
            Err(ApiError::not_found(format!(
                "The requested URL /{}{verb} was not found on this server ({} is not a method of IAM roles).",
                call.segments.join("/"),
                call.method
            )))
        }
        _ => return None,
    })
}

// ---- handlers ----

fn create(emulator: &Emulator, project: &str, body: &Value) -> Result<Value, ApiError> {
    let body = object(body, "")?;
    check_fields(&body, &[("roleId", "role_id"), ("role", "role")], "")?;
    let role_id = string_field(&body, ("roleId", "role_id"), "")?.unwrap_or_default();
    validate_role_id(&role_id)?;
    let input = match field(&body, ("role", "role")) {
        Some(role) => RoleInput::parse(role, "role")?,
        None => RoleInput::default(),
    };
    if input.name.as_deref().is_some_and(|name| !name.is_empty()) {
        return Err(ApiError::invalid_argument(
            "The role name must not be set when creating a role: it is made from the parent and the role_id.",
        ));
    }
    let title = input.title.unwrap_or_default();
    validate_title(&title)?;
    let included_permissions = validate_permissions(input.permissions.unwrap_or_default())?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, &role_id, now)?;
    if let Some(existing) = load(&world, &name) {
        return Err(match existing.deleted_at {
            Some(_) => ApiError::failed_precondition(format!(
                "You can't create a role_id ({role_id}) which has been marked for deletion. Undelete it \
                 (POST v1/{name}:undelete) within 7 days of the delete, or choose another role_id: a \
                 deleted role_id can be reused only 37 days after the delete."
            )),
            None => ApiError::already_exists(format!(
                "A role named {role_id} in {} already exists.",
                parent_of(&name)
            )),
        });
    }
    let role = StoredRole {
        title,
        description: input.description.unwrap_or_default(),
        included_permissions,
        stage: input.stage.unwrap_or(DEFAULT_STAGE).to_string(),
        etag: new_etag(&mut world),
        deleted_at: None,
    };
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

fn get(emulator: &Emulator, project: &str, role_id: &str) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    Ok(role_json(&name, &role, true))
}

fn patch(emulator: &Emulator, project: &str, role_id: &str, call: &Call) -> Result<Value, ApiError> {
    let input = RoleInput::parse(&call.body, "")?;
    let mask = update_mask(call)?;
    let title = mask.contains(&"title").then(|| input.title.unwrap_or_default());
    if let Some(title) = &title {
        validate_title(title)?;
    }
    let description = mask
        .contains(&"description")
        .then(|| input.description.unwrap_or_default());
    let permissions = match mask.contains(&"includedPermissions") {
        true => Some(validate_permissions(input.permissions.unwrap_or_default())?),
        false => None,
    };
    let stage = mask
        .contains(&"stage")
        .then(|| input.stage.unwrap_or(DEFAULT_STAGE));
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let mut role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    if role.deleted_at.is_some() {
        return Err(ApiError::failed_precondition(format!(
            "You can't update role_id ({name}) as it is marked for deletion: undelete it first."
        )));
    }
    check_etag(input.etag.as_deref(), &role)?;
    if let Some(title) = title {
        role.title = title;
    }
    if let Some(description) = description {
        role.description = description;
    }
    if let Some(permissions) = permissions {
        role.included_permissions = permissions;
    }
    if let Some(stage) = stage {
        role.stage = stage.to_string();
    }
    role.etag = new_etag(&mut world);
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

fn delete(emulator: &Emulator, project: &str, role_id: &str, call: &Call) -> Result<Value, ApiError> {
    let etag = match call.query("etag") {
        Some(etag) => Some(normalise_etag(etag, "etag")?).filter(|e| !e.is_empty()),
        None => None,
    };
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let mut role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    if role.deleted_at.is_some() {
        return Err(ApiError::failed_precondition(format!(
            "You can't delete role_id ({name}) as it is already deleted."
        )));
    }
    check_etag(etag.as_deref(), &role)?;
    role.deleted_at = Some(now);
    role.etag = new_etag(&mut world);
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

fn undelete(emulator: &Emulator, project: &str, role_id: &str, body: &Value) -> Result<Value, ApiError> {
    let body = object(body, "")?;
    check_fields(&body, &[("etag", "etag")], "")?;
    let etag = match string_field(&body, ("etag", "etag"), "")? {
        Some(etag) => Some(normalise_etag(&etag, "etag")?).filter(|e| !e.is_empty()),
        None => None,
    };
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let mut role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    match role.deleted_at {
        None => {
            return Err(ApiError::failed_precondition(format!(
                "You can't undelete role_id ({name}) as it is not deleted."
            )))
        }
        Some(at) if now >= at + UNDELETE_WINDOW => {
            return Err(ApiError::failed_precondition(format!(
                "You can't undelete role_id ({name}): it was deleted more than 7 days ago and will be \
                 permanently deleted; its role_id can be reused 37 days after the delete."
            )))
        }
        Some(_) => {}
    }
    check_etag(etag.as_deref(), &role)?;
    role.deleted_at = None;
    role.etag = new_etag(&mut world);
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

fn list(emulator: &Emulator, project: &str, call: &Call) -> Result<Value, ApiError> {
    let page_size = match call.query("pageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(size) => match size.parse::<i64>() {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) if size > 0 => usize::try_from(size).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid value for pageSize: \"{size}\" (a non-negative int32; at most {MAX_PAGE_SIZE} are returned)"
                )))
            }
        },
    };
    let show_deleted = match call.query("showDeleted") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for showDeleted: \"{other}\" (true or false)"
            )))
        }
    };
    let full = match call.query("view") {
        None | Some("BASIC") => false,
        Some("FULL") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for view: \"{other}\" (BASIC or FULL)"
            )))
        }
    };
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let project_id = world.project_mut(project)?.id.clone();
    purge(&mut world, now);
    let prefix = format!("projects/{project_id}/roles/");
    let after = match call.query("pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            from_hex(token)
                .filter(|last| last.starts_with(&prefix))
                .ok_or_else(|| ApiError::invalid_argument(format!("Invalid page token \"{token}\"")))?,
        ),
    };
    let from = match &after {
        Some(last) => Bound::Excluded(last.as_str()),
        None => Bound::Included(prefix.as_str()),
    };
    let mut page: Vec<(String, StoredRole)> = Vec::new();
    let mut more = false;
    for (name, stored) in world.iam_roles.range::<str, _>((from, Bound::Unbounded)) {
        if !name.starts_with(&prefix) {
            break;
        }
        if stored.deleted_at.is_some() && !show_deleted {
            continue;
        }
        if page.len() == page_size {
            more = true;
            break;
        }
        page.push((name.clone(), stored.clone()));
    }
    let mut response = Map::new();
    if !page.is_empty() {
        let roles = page
            .iter()
            .map(|(name, role)| role_json(name, role, full))
            .collect();
        response.insert("roles".into(), Value::Array(roles));
    }
    if let (true, Some((last, _))) = (more, page.last()) {
        response.insert("nextPageToken".into(), Value::String(to_hex(last)));
    }
    Ok(Value::Object(response))
}

// ---- storage ----

/// Whether `name` (`projects/{PROJECT_ID or NUMBER}/roles/{ROLE_ID}`) is a custom role that exists
/// and is not deleted: what a policy binding may grant.
pub fn role_is_live(world: &World, name: &str) -> bool {
    let Some((project, role_id)) = name
        .strip_prefix("projects/")
        .and_then(|rest| rest.split_once("/roles/"))
    else {
        return false;
    };
    world
        .projects
        .iter()
        .find(|p| p.id == project || p.number.to_string() == project)
        .and_then(|p| world.iam_roles.get(&format!("projects/{}/roles/{role_id}", p.id)))
        .is_some_and(|role| role.deleted_at.is_none())
}

/// The role stored under `name`, if any.
fn load(world: &World, name: &str) -> Option<StoredRole> {
    world.iam_roles.get(name).cloned()
}

fn save(world: &mut World, name: &str, role: &StoredRole) {
    world.iam_roles.insert(name.to_string(), role.clone());
}

/// Forgets roles deleted 37 days ago or more: their ids are free again.
fn purge(world: &mut World, now: Duration) {
    world
        .iam_roles
        .retain(|_, role| role.deleted_at.is_none_or(|at| now < at + PURGED_AFTER));
}

/// The full name of a role, with the project id even when `project` is its number; checks the role
/// id and purges expired roles first.
fn role_name(world: &mut World, project: &str, role_id: &str, now: Duration) -> Result<String, ApiError> {
    validate_role_id(role_id)?;
    let project_id = world.project_mut(project)?.id.clone();
    purge(world, now);
    Ok(format!("projects/{project_id}/roles/{role_id}"))
}

fn parent_of(name: &str) -> &str {
    name.split("/roles/").next().unwrap_or(name)
}

fn role_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("The role named {name} was not found."))
}

/// Google's proto3 JSON: empty values are left out, and `stage` when it is `ALPHA`.
fn role_json(name: &str, role: &StoredRole, full: bool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if !role.title.is_empty() {
        out.insert("title".into(), json!(role.title));
    }
    if !role.description.is_empty() {
        out.insert("description".into(), json!(role.description));
    }
    if full && !role.included_permissions.is_empty() {
        out.insert("includedPermissions".into(), json!(role.included_permissions));
    }
    if role.stage != "ALPHA" {
        out.insert("stage".into(), json!(role.stage));
    }
    out.insert("etag".into(), json!(role.etag));
    if role.deleted_at.is_some() {
        out.insert("deleted".into(), json!(true));
    }
    Value::Object(out)
}

// ---- validation ----

fn validate_role_id(role_id: &str) -> Result<(), ApiError> {
    let valid = (3..=64).contains(&role_id.len())
        && role_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "The role_id ({role_id}) is not valid: it must be 3 to 64 letters, digits, underscores (_) and periods (.)."
        )))
    }
}

fn validate_title(title: &str) -> Result<(), ApiError> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "The role title is limited to {MAX_TITLE_BYTES} UTF-8 bytes; this one has {}.",
            title.len()
        )));
    }
    Ok(())
}

/// The permissions sorted and without duplicates, or 400 naming every unknown one.
fn validate_permissions(mut permissions: Vec<String>) -> Result<Vec<String>, ApiError> {
    permissions.sort();
    permissions.dedup();
    let unknown: Vec<&str> = permissions
        .iter()
        .map(String::as_str)
        .filter(|p| !KNOWN_PERMISSIONS.contains(p))
        .collect();
    match unknown.as_slice() {
        [] => Ok(permissions),
        [one] => Err(ApiError::invalid_argument(format!(
            "Permission {one} is not valid."
        ))),
        many => Err(ApiError::invalid_argument(format!(
            "Permissions {} are not valid.",
            many.join(", ")
        ))),
    }
}

/// The fields the update mask names (lowerCamelCase), all four when there is no mask.
fn update_mask(call: &Call) -> Result<Vec<&'static str>, ApiError> {
    let paths: Vec<&str> = call
        .query_all("updateMask")
        .into_iter()
        .flat_map(|mask| mask.split(','))
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .collect();
    if paths.is_empty() {
        return Ok(UPDATABLE.iter().map(|(camel, _)| *camel).collect());
    }
    let mut mask = Vec::new();
    for path in paths {
        let Some((camel, _)) = UPDATABLE.iter().find(|(c, s)| path == *c || path == *s) else {
            return Err(ApiError::invalid_argument(format!(
                "Invalid update_mask: \"{path}\" is not an updatable field of Role (title, description, includedPermissions, stage)."
            )));
        };
        if !mask.contains(camel) {
            mask.push(*camel);
        }
    }
    Ok(mask)
}

/// 409 ABORTED when `given` (already normalised) is set and is not the role's current etag.
fn check_etag(given: Option<&str>, role: &StoredRole) -> Result<(), ApiError> {
    match given {
        Some(given) if normalise_etag(&role.etag, "etag").ok().as_deref() != Some(given) => {
            Err(ApiError::aborted(
                "The etag does not match the role's current etag: the role was changed since it \
                      was read. Read it again and retry.",
            ))
        }
        _ => Ok(()),
    }
}

/// A base64 etag in a comparable form: standard alphabet, no padding. A `+` that a query string
/// turned into a space is taken back, and the URL-safe alphabet is accepted.
fn normalise_etag(etag: &str, at: &str) -> Result<String, ApiError> {
    let normal: String = etag
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            ' ' | '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let valid = normal.len() % 4 != 1
        && normal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if valid {
        Ok(normal)
    } else {
        Err(ApiError::invalid_argument(format!(
            "Invalid value at '{at}' (TYPE_BYTES), Base64 decoding failed for \"{etag}\""
        )))
    }
}

fn new_etag(world: &mut World) -> String {
    crate::encoding::etag(world.next_id())
}

fn to_hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

// ---- request parsing ----

/// A `Role` in a request; `None` for a field that is absent or null.
#[derive(Debug, Default)]
struct RoleInput {
    name: Option<String>,
    title: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<String>>,
    stage: Option<&'static str>,
    /// Normalised (see [`normalise_etag`]); `None` when empty.
    etag: Option<String>,
}

impl RoleInput {
    /// `at` is where the role sits in the request (`role` in CreateRoleRequest, empty for the body).
    fn parse(value: &Value, at: &str) -> Result<Self, ApiError> {
        let role = object(value, at)?;
        check_fields(&role, &ROLE_FIELDS, at)?;
        let permissions = match field(&role, ("includedPermissions", "included_permissions")) {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_string).ok_or_else(|| {
                            invalid_value(&path(at, "includedPermissions"), "TYPE_STRING", item)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => {
                return Err(invalid_value(
                    &path(at, "includedPermissions"),
                    "TYPE_STRING",
                    other,
                ))
            }
        };
        let stage = match string_field(&role, ("stage", "stage"), at)? {
            None => None,
            Some(stage) => Some(*STAGES.iter().find(|s| **s == stage).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid value at '{}' (type.googleapis.com/google.iam.admin.v1.Role.RoleLaunchStage), \"{stage}\" (one of {})",
                    path(at, "stage"),
                    STAGES.join(", ")
                ))
            })?),
        };
        if let Some(deleted) = field(&role, ("deleted", "deleted")) {
            if !deleted.is_boolean() {
                return Err(invalid_value(&path(at, "deleted"), "TYPE_BOOL", deleted));
            }
        }
        let etag = match string_field(&role, ("etag", "etag"), at)? {
            Some(etag) => Some(normalise_etag(&etag, &path(at, "etag"))?).filter(|e| !e.is_empty()),
            None => None,
        };
        Ok(RoleInput {
            name: string_field(&role, ("name", "name"), at)?,
            title: string_field(&role, ("title", "title"), at)?,
            description: string_field(&role, ("description", "description"), at)?,
            permissions,
            stage,
            etag,
        })
    }
}

/// The request object at `at`; an absent body or null is an empty object.
fn object(value: &Value, at: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map.clone()),
        other => Err(ApiError::invalid_argument(format!(
            "Invalid JSON payload received. Expected an object{}, got {other}",
            if at.is_empty() {
                String::new()
            } else {
                format!(" at '{at}'")
            }
        ))),
    }
}

/// Google's answer to a field the message does not have.
fn check_fields(object: &Map<String, Value>, known: &[(&str, &str)], at: &str) -> Result<(), ApiError> {
    match object
        .keys()
        .find(|key| !known.iter().any(|(camel, snake)| key == camel || key == snake))
    {
        None => Ok(()),
        Some(key) => Err(ApiError::invalid_argument(format!(
            "Invalid JSON payload received. Unknown name \"{key}\"{}: Cannot find field.",
            if at.is_empty() {
                String::new()
            } else {
                format!(" at '{at}'")
            }
        ))),
    }
}

/// A field by its lowerCamelCase or snake_case name; null counts as absent.
fn field<'a>(object: &'a Map<String, Value>, (camel, snake): (&str, &str)) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|v| !v.is_null())
}

fn string_field(
    object: &Map<String, Value>,
    names: (&str, &str),
    at: &str,
) -> Result<Option<String>, ApiError> {
    match field(object, names) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_value(&path(at, names.0), "TYPE_STRING", other)),
    }
}

fn invalid_value(at: &str, kind: &str, value: &Value) -> ApiError {
    ApiError::invalid_argument(format!(
        "Invalid JSON payload received. Invalid value at '{at}' ({kind}), {value}"
    ))
}

fn path(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_string()
    } else {
        format!("{at}.{field}")
    }
}
