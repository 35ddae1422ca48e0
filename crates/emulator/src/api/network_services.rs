//! Network Services v1 agent gateways (`networkservices.v1.json`): agentGateways.create / get /
//! list / patch / delete, and `projects.locations.operations.get`, which answers any operation
//! in the shared table by its full name (Agent Registry and Vertex AI use the same path shape).
//!
//! Create, patch and delete answer operations that finish after `delays.gateway_operation`
//! (120 s) of emulated time (Google gives no duration; Terraform allows 30 minutes). The gateway is
//! visible from the create call on, a patch applies at once, and a delete removes the gateway at
//! once; only the operations take time. Names always use the project id, whether the call named
//! the project by id or by number.
//!
//! An operation failing as a fault (`operation_error`) is decided when the call is accepted,
//! and then its effect is simply not applied: a failing create never shows the gateway (GET is
//! 404 throughout, and the finished operation carries the INTERNAL error), a failing patch
//! leaves the previous gateway, a failing delete leaves the gateway.

use axum::http::Method;
use serde_json::{json, Value};

use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;

use super::resources::{
    new_etag, page, page_size, resume_after, settable_fields, start_typed_operation, top_level_mask,
};
use crate::Emulator;

/// The API's service name, under which its faults are configured.
const SERVICE: &str = "networkservices.googleapis.com";
const GATEWAY_TYPE: &str = "type.googleapis.com/google.cloud.networkservices.v1.AgentGateway";
pub(super) const METADATA_TYPE: &str =
    "type.googleapis.com/google.cloud.networkservices.v1.OperationMetadata";
pub(super) const EMPTY_TYPE: &str = "type.googleapis.com/google.protobuf.Empty";

/// The fields a caller may set; everything else on a gateway is output only.
const UPDATABLE: &[&str] = &[
    "agentConnectivityTemplate",
    "description",
    "googleManaged",
    "labels",
    "networkConfig",
    "protocols",
    "registries",
    "selfManaged",
];

/// A stored gateway.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredGateway {
    /// The AgentGateway as Google shows it (output fields included, no `@type`).
    pub body: Value,
}

impl StoredGateway {
    fn etag(&self) -> &str {
        self.body["etag"].as_str().unwrap_or_default()
    }
    fn mode(&self) -> Option<&str> {
        governed_access_path(&self.body)
    }
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    Some(match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v1", "projects", project, "locations", location, "agentGateways"], None) => {
            create(emulator, project, location, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "agentGateways"], None) => {
            list(emulator, project, location, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "agentGateways", id], None) => {
            get(emulator, project, location, id)
        }
        (&Method::PATCH, ["v1", "projects", project, "locations", location, "agentGateways", id], None) => {
            patch(emulator, project, location, id, call)
        }
        (&Method::DELETE, ["v1", "projects", project, "locations", location, "agentGateways", id], None) => {
            delete(emulator, project, location, id, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "operations", id], None) => {
            get_operation(emulator, project, location, id)
        }
        _ => return None,
    })
}

/// `projects/{id}/locations/{location}`, with the project resolved to its id.
pub(super) fn parent(world: &mut World, project: &str, location: &str) -> Result<(String, u64), ApiError> {
    let project = world.project_mut(project)?;
    Ok((
        format!("projects/{}/locations/{location}", project.id),
        project.number,
    ))
}

pub(super) fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Resource '{name}' was not found"))
}

pub(super) fn aborted(name: &str) -> ApiError {
    ApiError::aborted(format!(
        "The etag does not match the current etag of {name}: it was changed since it was read."
    ))
}

pub(super) fn governed_access_path(gateway: &Value) -> Option<&str> {
    gateway["googleManaged"]["governedAccessPath"]
        .as_str()
        .filter(|mode| *mode != "GOVERNED_ACCESS_PATH_UNSPECIFIED")
}

/// An RFC 1035 label of at most 63 characters, as Google's resource ids are.
pub(super) fn valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// Starts an operation on `target` that finishes after `delays.gateway_operation`.
fn start_operation(
    emulator: &Emulator,
    world: &mut World,
    parent: &str,
    target: &str,
    verb: &str,
    outcome: Result<Value, ApiError>,
) -> Value {
    let timing = (METADATA_TYPE, emulator.config.delays.gateway_operation);
    start_typed_operation(emulator, world, parent, (target, verb), timing, outcome)
}

fn with_type(gateway: &Value) -> Value {
    crate::ops::typed(GATEWAY_TYPE, gateway)
}

/// 400 FAILED_PRECONDITION when another gateway under `parent` has the same governed access
/// path: the seed allows one AGENT_TO_ANYWHERE and one CLIENT_TO_AGENT gateway per project and
/// region. Google does not document the exact status it answers for this.
fn check_one_per_mode(world: &World, parent: &str, name: &str, mode: Option<&str>) -> Result<(), ApiError> {
    let Some(mode) = mode else {
        return Ok(());
    };
    let prefix = format!("{parent}/agentGateways/");
    match world
        .agent_gateways
        .iter()
        .find(|(other, gateway)| other.starts_with(&prefix) && *other != name && gateway.mode() == Some(mode))
    {
        Some((existing, _)) => Err(ApiError::failed_precondition(format!(
            "Only one {mode} agent gateway is allowed per project and region: {existing} already exists."
        ))),
        None => Ok(()),
    }
}

fn create(emulator: &Emulator, project: &str, location: &str, call: &Call) -> Result<Value, ApiError> {
    let id = call.query("agentGatewayId").unwrap_or_default();
    if id.is_empty() {
        return Err(ApiError::invalid_argument("agentGatewayId is required."));
    }
    if !valid_id(id) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid agentGatewayId \"{id}\": it must be 1 to 63 characters, start with a lowercase \
             letter, and contain only lowercase letters, digits and hyphens, not ending with a hyphen."
        )));
    }
    let fields = settable_fields(&call.body, UPDATABLE, "an AgentGateway")?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let (parent, number) = parent(&mut world, project, location)?;
    let name = format!("{parent}/agentGateways/{id}");
    if world.agent_gateways.contains_key(&name) {
        return Err(ApiError::already_exists(format!(
            "Resource '{name}' already exists"
        )));
    }
    let mut body = Value::Object(fields);
    check_one_per_mode(&world, &parent, &name, governed_access_path(&body))?;
    let created = timestamp(now);
    let etag = new_etag(&mut world);
    body["name"] = json!(name);
    body["createTime"] = json!(created);
    body["updateTime"] = json!(created);
    body["etag"] = json!(etag);
    body["agentGatewayCard"] = json!({
        "serviceExtensionsServiceAccount": format!("service-{number}@gcp-sa-dep.iam.gserviceaccount.com"),
    });
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            let response = with_type(&body);
            world.agent_gateways.insert(name.clone(), StoredGateway { body });
            Ok(response)
        }
    };
    Ok(start_operation(
        emulator, &mut world, &parent, &name, "create", outcome,
    ))
}

fn get(emulator: &Emulator, project: &str, location: &str, id: &str) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let (parent, _) = parent(&mut world, project, location)?;
    let name = format!("{parent}/agentGateways/{id}");
    world
        .agent_gateways
        .get(&name)
        .map(|gateway| gateway.body.clone())
        .ok_or_else(|| not_found(&name))
}

fn list(emulator: &Emulator, project: &str, location: &str, call: &Call) -> Result<Value, ApiError> {
    let page_size = page_size(call)?;
    let mut world = emulator.world();
    let (parent, _) = parent(&mut world, project, location)?;
    let prefix = format!("{parent}/agentGateways/");
    let after = resume_after(call, &prefix)?;
    let items = world
        .agent_gateways
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, g)| (name.clone(), g.body.clone()))
        .collect();
    Ok(page(items, "agentGateways", page_size, after))
}

fn patch(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let mask = top_level_mask(call, UPDATABLE, "AgentGateway")?;
    let fields = settable_fields(&call.body, UPDATABLE, "an AgentGateway")?;
    let given_etag = call.body["etag"].as_str().filter(|e| !e.is_empty());
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let (parent, _) = parent(&mut world, project, location)?;
    let name = format!("{parent}/agentGateways/{id}");
    let mut gateway = world
        .agent_gateways
        .get(&name)
        .cloned()
        .ok_or_else(|| not_found(&name))?;
    if given_etag.is_some_and(|etag| etag != gateway.etag()) {
        return Err(aborted(&name));
    }
    let old_mode = gateway.mode().map(str::to_string);
    let mut body = gateway.body.as_object().cloned().unwrap_or_default();
    for field in &mask {
        match fields.get(*field) {
            Some(value) => body.insert(field.to_string(), value.clone()),
            None => body.remove(*field),
        };
    }
    let body = Value::Object(body);
    if governed_access_path(&body) != old_mode.as_deref() {
        return Err(ApiError::invalid_argument(format!(
            "googleManaged.governedAccessPath of {name} cannot be changed; create another gateway instead."
        )));
    }
    gateway.body = body;
    gateway.body["updateTime"] = json!(timestamp(now));
    gateway.body["etag"] = json!(new_etag(&mut world));
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            let response = with_type(&gateway.body);
            world.agent_gateways.insert(name.clone(), gateway);
            Ok(response)
        }
    };
    Ok(start_operation(
        emulator, &mut world, &parent, &name, "update", outcome,
    ))
}

fn delete(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let given_etag = call.query("etag").filter(|e| !e.is_empty());
    let mut world = emulator.world();
    let (parent, _) = parent(&mut world, project, location)?;
    let name = format!("{parent}/agentGateways/{id}");
    let gateway = world.agent_gateways.get(&name).ok_or_else(|| not_found(&name))?;
    if given_etag.is_some_and(|etag| etag != gateway.etag()) {
        return Err(aborted(&name));
    }
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            world.agent_gateways.remove(&name);
            Ok(json!({ "@type": EMPTY_TYPE }))
        }
    };
    Ok(start_operation(
        emulator, &mut world, &parent, &name, "delete", outcome,
    ))
}

/// Any operation in the shared table by its full name; a project number in the path finds the
/// operation named with the project id too.
fn get_operation(emulator: &Emulator, project: &str, location: &str, id: &str) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let asked = format!("projects/{project}/locations/{location}/operations/{id}");
    if let Some(operation) = world.operations.get(&asked) {
        return Ok(operation.to_json(now));
    }
    let by_id = world
        .project_mut(project)
        .ok()
        .map(|p| format!("projects/{}/locations/{location}/operations/{id}", p.id));
    by_id
        .and_then(|name| world.operations.get(&name).map(|op| op.to_json(now)))
        .ok_or_else(|| ApiError::not_found(format!("Operation {asked} not found.")))
}
