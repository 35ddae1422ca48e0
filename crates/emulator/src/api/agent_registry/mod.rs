//! Agent Registry v1 (`agentregistry.v1.json`): services.create / get / list / patch / delete
//! (create, patch and delete answer operations) and the agents read model (agents.get / list).
//! Operations are polled through the shared `projects.locations.operations.get` route that
//! network_services.rs answers for every operation in the shared table.
//!
//! Create, patch and delete finish after `delays.registry_operation` (30 s) of emulated time (Google
//! gives no duration); their effect is visible at once. A repeated `requestId` for the same
//! resource within [`REQUEST_ID_SECONDS`](super::resources::REQUEST_ID_SECONDS) answers the first call's operation again and changes
//! nothing. Agents are derived: one per Service whose type is Agent (`agentSpec` set, or no spec
//! at all), named after the service, plus the agents Agent Runtime registers through
//! [`register_runtime_agent`]. Names always use the project id.
//!
//! An operation failing as a fault (`operation_error`) is decided when the call is accepted,
//! and then its effect is simply not applied: a failing create never shows the service, a
//! failing patch leaves the previous service, a failing delete leaves the service; the finished
//! operation carries the INTERNAL error.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;

use super::resources::{
    page, page_size, remember_request, repeated, request_id, resume_after, settable_fields,
    start_typed_operation, top_level_mask, REQUEST_ID_SECONDS,
};
use crate::Emulator;

mod agent_views;
#[cfg(test)]
mod tests;

use agent_views::{get_agent, list_agents};

/// The API's service name, under which its faults are configured.
const SERVICE: &str = "agentregistry.googleapis.com";
const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.agentregistry.v1.Service";
const METADATA_TYPE: &str = "type.googleapis.com/google.cloud.agentregistry.v1.OperationMetadata";
const EMPTY_TYPE: &str = "type.googleapis.com/google.protobuf.Empty";
/// The attribute naming the resource hosting a runtime agent.
#[cfg_attr(not(test), allow(dead_code))]
pub const RUNTIME_REFERENCE: &str = "agentregistry.googleapis.com/system/RuntimeReference";

/// The fields a caller may set on a Service; everything else is output only.
const UPDATABLE: &[&str] = &[
    "agentSpec",
    "description",
    "displayName",
    "endpointSpec",
    "interfaces",
    "mcpServerSpec",
];

/// A registered Service.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredService {
    /// The Service as Google shows it (output fields included, no `@type`).
    body: Value,
    /// The derived agent's `uid` and `agentId`, stable for the service's life.
    uid: String,
}

/// Everything Agent Registry keeps (services, runtime agents, request ids).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RegistryState {
    /// Services by full name `projects/{id}/locations/{l}/services/{s}`.
    services: BTreeMap<String, StoredService>,
    /// Agents registered by Agent Runtime, by full name: as Google shows them, and from when.
    runtime_agents: BTreeMap<String, (Value, Duration)>,
}

/// Registers the agent Agent Runtime deploys as `engine_name` (a reasoning engine's resource name,
/// `projects/{p}/locations/{l}/reasoningEngines/{id}`, or a full `//…` URI) in `project_id`
/// (an id or number) and `location`. The agent is named after the engine's last segment; calling
/// again for the same engine replaces it. The agent is listed from `visible_at` on (Vertex AI
/// passes the end of the deployment plus `delays.registry_agent`). World has no clock, so no
/// create/update times are set.
pub fn register_runtime_agent(
    world: &mut World,
    project_id: &str,
    location: &str,
    engine_name: &str,
    display_name: &str,
    visible_at: Duration,
) {
    let project = world
        .project_mut(project_id)
        .map(|p| p.id.clone())
        .unwrap_or_else(|_| project_id.to_string());
    let engine_id = engine_name.rsplit('/').next().unwrap_or(engine_name);
    let name = format!("projects/{project}/locations/{location}/agents/{engine_id}");
    let uri = if engine_name.starts_with("//") {
        engine_name.to_string()
    } else {
        format!("//aiplatform.googleapis.com/{engine_name}")
    };
    let uid = match world.agent_registry.runtime_agents.get(&name) {
        Some((existing, _)) => existing["uid"].as_str().unwrap_or_default().to_string(),
        None => uid(world),
    };
    let mut attributes = Map::new();
    attributes.insert(RUNTIME_REFERENCE.to_string(), json!({ "uri": uri }));
    let agent = json!({
        "name": name,
        "agentId": uid,
        "uid": uid,
        "displayName": display_name,
        "location": location,
        "attributes": attributes,
    });
    world
        .agent_registry
        .runtime_agents
        .insert(name, (agent, visible_at));
}

/// Removes the agent Agent Runtime registered for `engine_name` (the engine was deleted).
pub fn deregister_runtime_agent(world: &mut World, engine_name: &str) {
    let uri = format!("//aiplatform.googleapis.com/{engine_name}");
    world
        .agent_registry
        .runtime_agents
        .retain(|_, (agent, _)| agent["attributes"][RUNTIME_REFERENCE]["uri"] != uri.as_str());
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    Some(match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v1", "projects", project, "locations", location, "services"], None) => {
            create(emulator, project, location, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "services"], None) => {
            list_services(emulator, project, location, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "services", id], None) => {
            get_service(emulator, project, location, id)
        }
        (&Method::PATCH, ["v1", "projects", project, "locations", location, "services", id], None) => {
            patch(emulator, project, location, id, call)
        }
        (&Method::DELETE, ["v1", "projects", project, "locations", location, "services", id], None) => {
            delete(emulator, project, location, id, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "agents"], None) => {
            list_agents(emulator, project, location, call)
        }
        (&Method::GET, ["v1", "projects", project, "locations", location, "agents", id], None) => {
            get_agent(emulator, project, location, id)
        }
        _ => return None,
    })
}

/// `projects/{id}/locations/{location}`, with the project resolved to its id.
fn parent(world: &mut World, project: &str, location: &str) -> Result<String, ApiError> {
    let project = world.project_mut(project)?;
    Ok(format!("projects/{}/locations/{location}", project.id))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Resource '{name}' was not found"))
}

/// 4 to 63 characters of `[a-z0-9-]`, as the registry documents service ids.
fn valid_service_id(id: &str) -> bool {
    (4..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A deterministic UUID-shaped identifier.
fn uid(world: &mut World) -> String {
    let a = world.next_id().wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = a.rotate_left(29) ^ 0xD1B5_4A32_D192_ED03;
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The rules the schema's descriptions state for a Service's settable fields.
fn check_service(service: &Value) -> Result<(), ApiError> {
    let specs = ["agentSpec", "mcpServerSpec", "endpointSpec"]
        .iter()
        .filter(|f| !service[**f].is_null())
        .count();
    if specs > 1 {
        return Err(ApiError::invalid_argument(
            "Only one of agentSpec, mcpServerSpec and endpointSpec may be set.",
        ));
    }
    if let Some(name) = service["displayName"].as_str() {
        if name.chars().count() > 63 {
            return Err(ApiError::invalid_argument(
                "displayName can have a maximum length of 63 characters.",
            ));
        }
    }
    if let Some(description) = service["description"].as_str() {
        if description.chars().count() > 2048 {
            return Err(ApiError::invalid_argument(
                "description can have a maximum length of 2048 characters.",
            ));
        }
    }
    let spec = &service["agentSpec"];
    if spec.is_null() {
        return Ok(());
    }
    let has_content = spec["content"].as_object().is_some_and(|c| !c.is_empty());
    let has_interfaces = service["interfaces"].as_array().is_some_and(|i| !i.is_empty());
    match spec["type"].as_str() {
        Some("NO_SPEC") if has_content => Err(ApiError::invalid_argument(
            "agentSpec.content must be empty when agentSpec.type is NO_SPEC.",
        )),
        Some("A2A_AGENT_CARD") if has_interfaces => Err(ApiError::invalid_argument(
            "interfaces must be empty when agentSpec.type is A2A_AGENT_CARD.",
        )),
        Some("NO_SPEC" | "A2A_AGENT_CARD") => Ok(()),
        _ => Err(ApiError::invalid_argument("agentSpec.type is required.")),
    }
}

/// `registryResource`: the agent, MCP server or endpoint the service results in.
fn registry_resource(parent: &str, id: &str, service: &Value) -> String {
    let collection = if !service["mcpServerSpec"].is_null() {
        "mcpServers"
    } else if !service["endpointSpec"].is_null() {
        "endpoints"
    } else {
        "agents"
    };
    format!("{parent}/{collection}/{id}")
}

fn with_type(service: &Value) -> Value {
    crate::ops::typed(SERVICE_TYPE, service)
}

/// Starts an operation on `target` that finishes after `delays.registry_operation`, and
/// remembers `request` for it.
fn start_operation(
    emulator: &Emulator,
    world: &mut World,
    parent: &str,
    target: &str,
    verb: &str,
    request: Option<String>,
    outcome: Result<Value, ApiError>,
) -> Value {
    let timing = (METADATA_TYPE, emulator.config.delays.registry_operation);
    let body = start_typed_operation(emulator, world, parent, (target, verb), timing, outcome);
    let until = emulator.clock.after(REQUEST_ID_SECONDS);
    remember_request(world, (target, verb), request, &body, until);
    body
}

fn create(emulator: &Emulator, project: &str, location: &str, call: &Call) -> Result<Value, ApiError> {
    let id = call.query("serviceId").unwrap_or_default();
    if !valid_service_id(id) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid serviceId \"{id}\": it must be 4 to 63 characters of lowercase letters, digits \
             and hyphens."
        )));
    }
    let request = request_id(call)?;
    let fields = settable_fields(&call.body, UPDATABLE, "a Service")?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let parent = parent(&mut world, project, location)?;
    let name = format!("{parent}/services/{id}");
    if let Some(operation) = repeated(&world, now, &name, "create", &request) {
        return Ok(operation);
    }
    if world.agent_registry.services.contains_key(&name) {
        return Err(ApiError::already_exists(format!(
            "Resource '{name}' already exists"
        )));
    }
    let mut body = Value::Object(fields);
    check_service(&body)?;
    let created = timestamp(now);
    body["name"] = json!(name);
    body["createTime"] = json!(created);
    body["updateTime"] = json!(created);
    body["registryResource"] = json!(registry_resource(&parent, id, &body));
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            let response = with_type(&body);
            let uid = uid(&mut world);
            world
                .agent_registry
                .services
                .insert(name.clone(), StoredService { body, uid });
            Ok(response)
        }
    };
    Ok(start_operation(
        emulator, &mut world, &parent, &name, "create", request, outcome,
    ))
}

fn get_service(emulator: &Emulator, project: &str, location: &str, id: &str) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let name = format!("{}/services/{id}", parent(&mut world, project, location)?);
    world
        .agent_registry
        .services
        .get(&name)
        .map(|s| s.body.clone())
        .ok_or_else(|| not_found(&name))
}

fn list_services(emulator: &Emulator, project: &str, location: &str, call: &Call) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let prefix = format!("{}/services/", parent(&mut world, project, location)?);
    let (page_size, after) = (page_size(call)?, resume_after(call, &prefix)?);
    let items = world
        .agent_registry
        .services
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, s)| (name.clone(), s.body.clone()))
        .collect();
    Ok(page(items, "services", page_size, after))
}

fn patch(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let mask = top_level_mask(call, UPDATABLE, "Service")?;
    let request = request_id(call)?;
    let fields = settable_fields(&call.body, UPDATABLE, "a Service")?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let parent = parent(&mut world, project, location)?;
    let name = format!("{parent}/services/{id}");
    if let Some(operation) = repeated(&world, now, &name, "update", &request) {
        return Ok(operation);
    }
    let mut service = world
        .agent_registry
        .services
        .get(&name)
        .cloned()
        .ok_or_else(|| not_found(&name))?;
    let old_type = service.body["agentSpec"]["type"].clone();
    let mut body = service.body.as_object().cloned().unwrap_or_default();
    for field in &mask {
        match fields.get(*field) {
            Some(value) => body.insert(field.to_string(), value.clone()),
            None => body.remove(*field),
        };
    }
    let mut body = Value::Object(body);
    check_service(&body)?;
    if !old_type.is_null() && body["agentSpec"]["type"] != old_type {
        return Err(ApiError::invalid_argument(format!(
            "agentSpec.type of {name} is immutable."
        )));
    }
    if registry_resource(&parent, id, &body) != body["registryResource"].as_str().unwrap_or_default() {
        return Err(ApiError::invalid_argument(format!(
            "The type of {name} (agent, MCP server or endpoint) cannot be changed."
        )));
    }
    body["updateTime"] = json!(timestamp(now));
    service.body = body;
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            let response = with_type(&service.body);
            world.agent_registry.services.insert(name.clone(), service);
            Ok(response)
        }
    };
    Ok(start_operation(
        emulator, &mut world, &parent, &name, "update", request, outcome,
    ))
}

fn delete(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let request = request_id(call)?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let parent = parent(&mut world, project, location)?;
    let name = format!("{parent}/services/{id}");
    if let Some(operation) = repeated(&world, now, &name, "delete", &request) {
        return Ok(operation);
    }
    if !world.agent_registry.services.contains_key(&name) {
        return Err(not_found(&name));
    }
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            world.agent_registry.services.remove(&name);
            Ok(json!({ "@type": EMPTY_TYPE }))
        }
    };
    Ok(start_operation(
        emulator, &mut world, &parent, &name, "delete", request, outcome,
    ))
}

/// Services and runtime agents, for the admin API's state.
pub fn state(world: &World, now: Duration) -> Value {
    let services: Vec<&Value> = world.agent_registry.services.values().map(|s| &s.body).collect();
    let agents: Vec<&Value> = world
        .agent_registry
        .runtime_agents
        .values()
        .filter(|(_, visible_at)| *visible_at <= now)
        .map(|(agent, _)| agent)
        .collect();
    json!({ "services": services, "runtimeAgents": agents })
}
