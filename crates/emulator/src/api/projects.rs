//! Resource Manager v3 projects (`cloudresourcemanager.v3.json`): create, get, delete,
//! undelete, search, and `v3/operations/{id}`.
//!
//! Modelled on Google's documentation:
//! - project ids are 6–30 characters of lowercase letters, digits and hyphens, start with a
//!   letter and do not end with a hyphen (400 INVALID_ARGUMENT otherwise); they are unique
//!   across Google Cloud and never reused: an id in the world in any state, or configured as
//!   taken elsewhere (`taken_project_ids`), is 409 ALREADY_EXISTS on create;
//! - the parent must be an organisation or folder of the world: any other is 403
//!   PERMISSION_DENIED (Google cannot tell a caller about a parent it may not use);
//! - labels: at most 64, keys `[a-z]([-a-z0-9_]*[a-z0-9_])?` of 1–63 characters (Google's
//!   description also allows `_` and international lowercase letters; the emulator takes ASCII),
//!   values the same or empty;
//! - create, delete and undelete answer an operation `operations/cp.N` that is done after
//!   `delays.project_create`; its response is the Project (`@type`
//!   `google.cloud.resourcemanager.v3.Project`). The new project is gettable at once (Google's
//!   `CreateProjectMetadata.gettable`), ACTIVE, owned by the caller (`roles/owner`: the service
//!   account `POST /token` issued the token to, else `user:owner@example.com`), and has
//!   Google's default services enabled ([`DEFAULT_SERVICES`]). A seeded `operation_error` fault
//!   fails the create with no project left;
//! - creations per organisation per emulated minute are limited by
//!   `project_creation_per_minute` (429 RESOURCE_EXHAUSTED with RetryInfo and QuotaFailure);
//! - delete puts the project in DELETE_REQUESTED at once (restorable with undelete; never
//!   purged here). A DELETE_REQUESTED project answers `projects.get` and `search`, and every
//!   other API refuses it as a project the caller cannot use (403, [`crate::world::World::project_mut`]);
//! - search takes Google's query: `field:value` terms over `id`/`projectId`, `name`/
//!   `displayName`, `parent`, `parent.type`, `parent.id`, `state`/`lifecycleState`, `labels`,
//!   `labels.KEY` (`:*` for present, a trailing `*` for a prefix), case-insensitive. Terms
//!   side by side match *any* of them, as the discovery document says; terms joined by `AND`
//!   must all match (`labels.a:b AND state:ACTIVE`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ops::{typed, Operation};
use crate::router::Call;
use crate::world::{EnabledService, IamPolicy, Project, ProjectMeta, ProjectState, World, OWNER};
use crate::Emulator;

const SERVICE: &str = "cloudresourcemanager.googleapis.com";
const PROJECT_TYPE: &str = "type.googleapis.com/google.cloud.resourcemanager.v3.Project";
const MAX_LABELS: usize = 64;

/// What Google enables in a project created with the console or gcloud ("Services enabled by
/// default", <https://cloud.google.com/service-usage/docs/enabled-service#default>).
pub const DEFAULT_SERVICES: [&str; 18] = [
    "analyticshub.googleapis.com",
    "bigquery.googleapis.com",
    "bigqueryconnection.googleapis.com",
    "bigquerydatapolicy.googleapis.com",
    "bigquerymigration.googleapis.com",
    "bigqueryreservation.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudapis.googleapis.com",
    "cloudtrace.googleapis.com",
    "dataform.googleapis.com",
    "dataplex.googleapis.com",
    "datastore.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "servicemanagement.googleapis.com",
    "serviceusage.googleapis.com",
    "sql-component.googleapis.com",
    "storage.googleapis.com",
];

/// Project creations per organisation in the current emulated minute.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CreationLog {
    by_org: BTreeMap<String, (u64, u32)>,
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    Some(match (&call.method, segments.as_slice(), call.verb.as_deref()) {
        (&Method::POST, ["v3", "projects"], None) => create(emulator, call),
        (&Method::GET, ["v3", "projects"], Some("search")) => search(emulator, call),
        (&Method::GET, ["v3", "projects", key], None) => {
            let mut world = emulator.world();
            world.project_any_state(key).map(|p| project_json(p))
        }
        (&Method::DELETE, ["v3", "projects", key], None) => delete(emulator, key),
        (&Method::POST, ["v3", "projects", key], Some("undelete")) => undelete(emulator, key),
        (&Method::GET, ["v3", "operations", id], None) => {
            let name = format!("operations/{id}");
            let now = emulator.clock.now();
            match emulator.world().operations.get(&name) {
                Some(operation) => Ok(operation.to_json(now)),
                None => Err(ApiError::not_found(format!("Operation {name} not found."))),
            }
        }
        _ => return None,
    })
}

/// The v3 Project as Google shows it; `labels` and `deleteTime` only when set.
pub fn project_json(project: &Project) -> Value {
    let meta = &project.meta;
    let mut body = json!({
        "name": format!("projects/{}", project.number), "projectId": project.id,
        "displayName": project.display_name(), "state": meta.state.as_str(), "parent": project.parent,
        "createTime": crate::encoding::rfc3339(meta.create_time),
        "etag": crate::encoding::etag(meta.revision),
    });
    if !meta.labels.is_empty() {
        body["labels"] = json!(meta.labels);
    }
    if let Some(at) = meta.delete_time {
        body["deleteTime"] = json!(crate::encoding::rfc3339(at));
    }
    body
}

/// Google's project id rule, or why `id` breaks it.
pub fn id_problem(id: &str) -> Option<String> {
    let ok_chars = id
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    let first_letter = id.bytes().next().is_some_and(|c| c.is_ascii_lowercase());
    if !(6..=30).contains(&id.len()) || !ok_chars || !first_letter || id.ends_with('-') {
        return Some(format!(
            "project_id \"{id}\" is invalid: it must be 6 to 30 lowercase ASCII letters, digits, or hyphens, start with a letter, and not end with a hyphen."
        ));
    }
    None
}

/// Google's label rules (keys and values), or the first problem.
pub fn labels_problem(labels: &BTreeMap<String, String>) -> Option<String> {
    if labels.len() > MAX_LABELS {
        return Some(format!(
            "A resource can have at most {MAX_LABELS} labels; this one has {}.",
            labels.len()
        ));
    }
    let part_ok = |s: &str| {
        s.len() <= 63
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
    };
    for (key, value) in labels {
        let key_ok = part_ok(key) && key.bytes().next().is_some_and(|c| c.is_ascii_lowercase());
        if !key_ok {
            return Some(format!(
                "Label key \"{key}\" is invalid: keys are 1 to 63 lowercase letters, digits, hyphens or underscores, starting with a letter."
            ));
        }
        if !part_ok(value) {
            return Some(format!(
                "Label value \"{value}\" of key \"{key}\" is invalid: values are at most 63 lowercase letters, digits, hyphens or underscores."
            ));
        }
    }
    None
}

fn display_name_problem(name: &str) -> Option<String> {
    let ok = (4..=30).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " -'\"!".contains(c));
    (!ok).then(|| format!(
        "display_name \"{name}\" is invalid: 4 to 30 letters, digits, hyphens, single or double quotes, spaces or exclamation points."
    ))
}

/// The organisation id a parent (`organizations/N` or `folders/N`) of the world belongs to.
fn parent_org(emulator: &Emulator, parent: &str) -> Option<String> {
    let orgs = &emulator.config.organizations;
    if let Some(id) = parent.strip_prefix("organizations/") {
        return orgs.iter().find(|o| o.id == id).map(|o| o.id.clone());
    }
    let id = parent.strip_prefix("folders/")?;
    orgs.iter()
        .find(|o| o.folders.iter().any(|f| f.id == id))
        .map(|o| o.id.clone())
}

fn create(emulator: &Emulator, call: &Call) -> Result<Value, ApiError> {
    let body = &call.body;
    let id = body["projectId"].as_str().unwrap_or_default();
    if id.is_empty() {
        return Err(ApiError::invalid_argument("project_id is required."));
    }
    if let Some(problem) = id_problem(id) {
        return Err(ApiError::invalid_argument(problem));
    }
    let display_name = body["displayName"].as_str().unwrap_or_default();
    if let Some(problem) = (!display_name.is_empty())
        .then(|| display_name_problem(display_name))
        .flatten()
    {
        return Err(ApiError::invalid_argument(problem));
    }
    let labels: BTreeMap<String, String> = body["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    if let Some(problem) = labels_problem(&labels) {
        return Err(ApiError::invalid_argument(problem));
    }
    let parent = body["parent"].as_str().unwrap_or_default();
    if parent.is_empty() {
        return Err(ApiError::invalid_argument(
            "parent is required: organizations/N or folders/N.",
        ));
    }
    let org = parent_org(emulator, parent).ok_or_else(|| {
        ApiError::permission_denied(format!(
            "Permission 'resourcemanager.projects.create' denied on resource '{parent}' (or it may not exist)."
        ))
        .with_error_info(
            "IAM_PERMISSION_DENIED",
            "cloudresourcemanager.googleapis.com",
            json!({ "permission": "resourcemanager.projects.create", "resource": parent }),
        )
    })?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let taken_here = world.projects.iter().any(|p| p.id == id);
    if taken_here || emulator.config.taken_project_ids.iter().any(|t| t == id) {
        return Err(ApiError::already_exists(format!(
            "Requested entity already exists: project id \"{id}\" is in use (project ids are unique across Google Cloud and cannot be reused)."
        )));
    }
    charge_creation(emulator, &mut world, &org, now)?;
    let number = world
        .projects
        .iter()
        .map(|p| p.number)
        .max()
        .unwrap_or(100_000_000_000)
        + 1;
    let wall = emulator.clock.wall(now);
    let project = new_project(id, number, parent, display_name, labels, &call.caller, wall);
    let response = typed(PROJECT_TYPE, &project_json(&project));
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            world.projects.push(project);
            Ok(response)
        }
    };
    let metadata = json!({
        "@type": "type.googleapis.com/google.cloud.resourcemanager.v3.CreateProjectMetadata",
        "createTime": crate::encoding::rfc3339(wall), "gettable": true,
    });
    Ok(start(emulator, &mut world, metadata, outcome))
}

fn new_project(
    id: &str,
    number: u64,
    parent: &str,
    display_name: &str,
    labels: BTreeMap<String, String>,
    caller: &Option<String>,
    wall: Duration,
) -> Project {
    let owner = caller.clone().unwrap_or_else(|| OWNER.to_string());
    let services = DEFAULT_SERVICES
        .iter()
        .map(|s| {
            let on = EnabledService {
                enabled_at: Duration::ZERO,
                usable_at: Duration::ZERO,
            };
            (s.to_string(), on)
        })
        .collect();
    Project {
        id: id.to_string(),
        number,
        parent: parent.to_string(),
        services,
        service_agents_usable_at: None,
        iam_policy: IamPolicy {
            version: 1,
            revision: 1,
            bindings: vec![json!({ "role": "roles/owner", "members": [owner] })],
            effective_at: BTreeMap::from([(("roles/owner".to_string(), owner), Duration::ZERO)]),
        },
        meta: ProjectMeta {
            display_name: display_name.to_string(),
            labels,
            state: ProjectState::Active,
            create_time: wall,
            delete_time: None,
            revision: 1,
        },
    }
}

/// Counts one creation under organisation `org`; 429 once over its per-minute limit.
fn charge_creation(emulator: &Emulator, world: &mut World, org: &str, now: Duration) -> Result<(), ApiError> {
    let limit = emulator
        .config
        .organizations
        .iter()
        .find(|o| o.id == org)
        .and_then(|o| o.project_creation_per_minute);
    let Some(limit) = limit else {
        return Ok(());
    };
    let minute = now.as_secs() / 60;
    let used = world
        .project_creations
        .by_org
        .entry(org.to_string())
        .or_insert((minute, 0));
    if used.0 != minute {
        *used = (minute, 0);
    }
    if used.1 >= limit {
        let wait = 60 - now.as_secs() % 60;
        let mut error = ApiError {
            http: 429,
            status: "RESOURCE_EXHAUSTED",
            message: format!("Quota exceeded for quota metric 'Project creation requests' and limit 'Project creation requests per minute' of service '{SERVICE}' for organization '{org}'."),
            details: vec![],
        }
        .with_error_info("RATE_LIMIT_EXCEEDED", "googleapis.com", json!({ "service": SERVICE, "consumer": format!("organizations/{org}") }));
        error.details.push(
            json!({ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{wait}s") }),
        );
        error.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{ "subject": format!("organizations/{org}"), "description": "Project creation requests per minute" }]
        }));
        return Err(error);
    }
    used.1 += 1;
    Ok(())
}

fn delete(emulator: &Emulator, key: &str) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let wall = emulator.clock.wall(now);
    let mut world = emulator.world();
    let project = world.project_any_state(key)?;
    if project.meta.state == ProjectState::Active {
        project.meta.state = ProjectState::DeleteRequested;
        project.meta.delete_time = Some(wall);
        project.meta.revision += 1;
    }
    let response = typed(PROJECT_TYPE, &project_json(project));
    let metadata =
        json!({ "@type": "type.googleapis.com/google.cloud.resourcemanager.v3.DeleteProjectMetadata" });
    Ok(start(emulator, &mut world, metadata, Ok(response)))
}

fn undelete(emulator: &Emulator, key: &str) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let project = world.project_any_state(key)?;
    if project.meta.state != ProjectState::DeleteRequested {
        return Err(ApiError::failed_precondition(format!(
            "Project {} is not in state DELETE_REQUESTED: only a project whose deletion was requested can be undeleted.",
            project.id
        )));
    }
    project.meta.state = ProjectState::Active;
    project.meta.delete_time = None;
    project.meta.revision += 1;
    let response = typed(PROJECT_TYPE, &project_json(project));
    let metadata =
        json!({ "@type": "type.googleapis.com/google.cloud.resourcemanager.v3.UndeleteProjectMetadata" });
    Ok(start(emulator, &mut world, metadata, Ok(response)))
}

/// Stores an operation `operations/cp.N` done after `delays.project_create`; answers it.
fn start(emulator: &Emulator, world: &mut World, metadata: Value, outcome: Result<Value, ApiError>) -> Value {
    let now = emulator.clock.now();
    let operation = Operation {
        name: format!("operations/cp.{}", world.next_id()),
        done_at: emulator.clock.after(emulator.config.delays.project_create),
        metadata,
        outcome,
    };
    let body = operation.to_json(now);
    world.operations.insert(operation);
    body
}

fn search(emulator: &Emulator, call: &Call) -> Result<Value, ApiError> {
    let query = Query::parse(call.query("query").unwrap_or_default())?;
    let page_size = crate::api::resources::page_size(call)?;
    let after = crate::api::resources::resume_after(call, "projects/")?;
    let world = emulator.world();
    let mut found: Vec<(String, Value)> = world
        .projects
        .iter()
        .filter(|p| query.matches(p))
        .map(|p| (format!("projects/{:020}", p.number), project_json(p)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(crate::api::resources::page(found, "projects", page_size, after))
}

/// A search query: groups joined by `AND`, each matching when any of its terms does.
struct Query {
    groups: Vec<Vec<(String, String)>>,
}

impl Query {
    fn parse(text: &str) -> Result<Query, ApiError> {
        let mut groups = vec![vec![]];
        for token in text.split_whitespace() {
            match token {
                "AND" => groups.push(vec![]),
                "OR" => {}
                term => {
                    let (field, value) = term
                        .split_once(':')
                        .or_else(|| term.split_once('='))
                        .ok_or_else(|| bad_query(text, term))?;
                    let field = field.to_ascii_lowercase();
                    let known = matches!(
                        field.as_str(),
                        "id" | "projectid"
                            | "name"
                            | "displayname"
                            | "parent"
                            | "parent.type"
                            | "parent.id"
                            | "state"
                            | "lifecyclestate"
                            | "labels"
                    ) || field.strip_prefix("labels.").is_some_and(|k| !k.is_empty());
                    if !known {
                        return Err(bad_query(text, term));
                    }
                    let value = value.trim_matches('"').to_ascii_lowercase();
                    if let Some(group) = groups.last_mut() {
                        group.push((field, value));
                    }
                }
            }
        }
        groups.retain(|g| !g.is_empty());
        Ok(Query { groups })
    }

    fn matches(&self, project: &Project) -> bool {
        self.groups.iter().all(|group| {
            group
                .iter()
                .any(|(field, value)| term_matches(project, field, value))
        })
    }
}

fn bad_query(query: &str, term: &str) -> ApiError {
    ApiError::invalid_argument(format!(
        "Invalid query \"{query}\": cannot parse \"{term}\"; write terms like labels.env:prod or state:ACTIVE."
    ))
}

/// `pattern` (lowercase) against `text`, case-insensitive: `*` alone matches anything, a
/// trailing `*` a prefix.
fn like(pattern: &str, text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => text.starts_with(prefix),
        None => text == pattern,
    }
}

fn term_matches(project: &Project, field: &str, value: &str) -> bool {
    let (parent_type, parent_id) = project.parent.split_once('/').unwrap_or_default();
    match field {
        "id" | "projectid" => like(value, &project.id),
        "name" | "displayname" => like(value, project.display_name()),
        "parent" => like(value, &project.parent),
        "parent.type" => like(value, parent_type.trim_end_matches('s')),
        "parent.id" => like(value, parent_id),
        "state" | "lifecyclestate" => like(value, project.meta.state.as_str()),
        "labels" => project
            .meta
            .labels
            .iter()
            .any(|(k, v)| like(value, k) || like(value, v)),
        _ => field
            .strip_prefix("labels.")
            .and_then(|key| project.meta.labels.get(key))
            .is_some_and(|v| like(value, v)),
    }
}
