//! Vertex AI reasoningEngines v1 / v1beta1 (`aiplatform.v1.json`, `.v1beta1.json`):
//! reasoningEngines.create / get / list / patch / delete, and
//! `projects.locations.reasoningEngines.operations.get` / `.list`.
//!
//! Create, patch and delete answer operations named
//! `projects/{NUMBER}/locations/{l}/reasoningEngines/{id}/operations/{op}` that finish after
//! `delays.engine_operation` (300 s) of emulated time. The engine id is a server-generated number, so
//! create is not idempotent. Names always use the project number, as Google's do.
//!
//! Choices where Google is silent:
//! - The outcome of a create or patch is decided at request time and shown when the operation
//!   finishes. A create whose gateway binding fails leaves the engine visible until its operation
//!   finishes, then the engine is gone (the operation shows the error). A patch whose binding
//!   fails is not applied. An operation failing as a fault (`operation_error`, INTERNAL) is
//!   the same: a failing create's engine is visible until its operation finishes, then gone;
//!   a failing patch is not applied; a failing delete leaves the engine.
//! - A gateway that is missing, in another project or region, or of the wrong
//!   `governedAccessPath` fails the operation with FAILED_PRECONDITION; a Reasoning Engine service
//!   agent without `networkservices.agentGateways.get` and `.use` (through a grant whose propagation
//!   is complete) fails it with PERMISSION_DENIED. The predefined roles considered to grant both
//!   are [`GATEWAY_ROLES`]; a custom role counts while it is live and includes both permissions.
//!   IAM conditions on the binding are not evaluated.
//! - Then, as Google's guide warns that a gateway not allowing an agent's LLM access makes the
//!   deployment fail: an egress gateway whose authorization policies deny the LLM host the engine
//!   declares in `spec.deploymentSpec.env` (`GOOGLE_GENAI_USE_VERTEXAI`, see [`super::egress`])
//!   fails the operation with FAILED_PRECONDITION naming the host, the gateway and the policy.
//!   The patch of a bound engine is checked the same way.
//! - A patch that removes or changes the gateway of an engine that has one answers 400
//!   FAILED_PRECONDITION at once.
//! - `spec.identityType: AGENT_IDENTITY` sets `spec.effectiveIdentity` to
//!   `principal://agents.global.proj-{NUMBER}.system.id.goog/resources/aiplatform/projects/{NUMBER}/locations/{l}/reasoningEngines/{id}`;
//!   otherwise it is `spec.serviceAccount` if given, else the Reasoning Engine service agent.
//! - List `filter` supports only an AND of `display_name="x"` (or `displayName`) and
//!   `labels.KEY="v"` terms; anything else is 400 INVALID_ARGUMENT.
//! - Org Policy (`org_policy::check_reasoning_engine`) is consulted for CREATE / UPDATE before the
//!   request is accepted; a refusal is the call's own error, not the operation's.
//! - Delete's `force` is accepted and ignored (engines have no child resources here).
//! - operations.list answers an existing engine's operations, running and finished, sorted by
//!   name, with `pageSize` / `pageToken` paging; an engine that does not exist is NOT_FOUND.
//!   `filter` is supported only empty, and `returnPartialSuccess` is UNIMPLEMENTED (as the
//!   discovery document says it is by default).
//! - `:wait` on operations is a long poll served by the router (it must be async), not here.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Value};

use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::ops::Operation;
use crate::router::Call;
use crate::world::World;

use super::resources::{new_etag, page, page_size, resume_after, settable_fields};
use crate::Emulator;

/// The API's service name, under which its faults are configured.
const SERVICE: &str = "aiplatform.googleapis.com";
const EMPTY_TYPE: &str = "type.googleapis.com/google.protobuf.Empty";

/// The fields a caller may set; everything else on an engine is output only.
const UPDATABLE: &[&str] = &[
    "displayName",
    "description",
    "labels",
    "spec",
    "contextSpec",
    "encryptionSpec",
];

/// Predefined roles taken to include `networkservices.agentGateways.get` and `.use`.
pub const GATEWAY_ROLES: &[&str] = &[
    "roles/networkservices.agentGatewayUser",
    "roles/networkservices.admin",
    "roles/editor",
    "roles/owner",
];

const NEEDED_PERMISSIONS: &[&str] = &[
    "networkservices.agentGateways.get",
    "networkservices.agentGateways.use",
];

/// Everything Vertex AI keeps (reasoning engines).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct VertexState {
    /// By full name `projects/{NUMBER}/locations/{l}/reasoningEngines/{id}`.
    pub engines: BTreeMap<String, StoredEngine>,
}

/// A stored reasoning engine.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredEngine {
    /// The ReasoningEngine as Google shows it (output fields included, no `@type`).
    pub body: Value,
    /// When a create that fails finishes: the engine disappears then.
    pub gone_at: Option<Duration>,
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    Some(match (&call.method, segments.as_slice(), verb) {
        (
            &Method::POST,
            [v @ ("v1" | "v1beta1"), "projects", p, "locations", l, "reasoningEngines"],
            None,
        ) => create(emulator, v, p, l, call),
        (&Method::GET, ["v1" | "v1beta1", "projects", p, "locations", l, "reasoningEngines"], None) => {
            list(emulator, p, l, call)
        }
        (&Method::GET, ["v1" | "v1beta1", "projects", p, "locations", l, "reasoningEngines", id], None) => {
            get(emulator, p, l, id)
        }
        (
            &Method::PATCH,
            [v @ ("v1" | "v1beta1"), "projects", p, "locations", l, "reasoningEngines", id],
            None,
        ) => patch(emulator, v, p, l, id, call),
        (
            &Method::DELETE,
            [v @ ("v1" | "v1beta1"), "projects", p, "locations", l, "reasoningEngines", id],
            None,
        ) => delete(emulator, v, p, l, id),
        (
            &Method::GET,
            ["v1" | "v1beta1", "projects", p, "locations", l, "reasoningEngines", id, "operations", op],
            None,
        ) => get_operation(emulator, p, l, id, op),
        (
            &Method::GET,
            ["v1" | "v1beta1", "projects", p, "locations", l, "reasoningEngines", id, "operations"],
            None,
        ) => list_operations(emulator, p, l, id, call),
        _ => return None,
    })
}

/// `projects/{NUMBER}/locations/{location}`, the project id and number.
fn parent(world: &mut World, project: &str, location: &str) -> Result<(String, String, u64), ApiError> {
    let project = world.project_mut(project)?;
    Ok((
        format!("projects/{}/locations/{location}", project.number),
        project.id.clone(),
        project.number,
    ))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("The ReasoningEngine does not exist: {name}"))
}

fn aborted(name: &str) -> ApiError {
    ApiError::aborted(format!(
        "The etag does not match the current etag of {name}: it was changed since it was read."
    ))
}

/// Drops engines whose failing create has finished.
fn purge(world: &mut World, now: Duration) {
    world
        .vertex_ai
        .engines
        .retain(|_, engine| engine.gone_at.is_none_or(|at| now < at));
}

fn type_prefix(version: &str) -> String {
    format!("type.googleapis.com/google.cloud.aiplatform.{version}")
}

fn with_type(version: &str, engine: &Value) -> Value {
    crate::ops::typed(&format!("{}.ReasoningEngine", type_prefix(version)), engine)
}

/// Starts an operation on engine `name` that finishes after `delays.engine_operation`.
fn start_operation(
    emulator: &Emulator,
    world: &mut World,
    name: &str,
    metadata_type: &str,
    outcome: Result<Value, ApiError>,
) -> Value {
    let now = emulator.clock.now();
    let id = world.next_id();
    let operation = Operation {
        name: format!("{name}/operations/{id}"),
        done_at: emulator.clock.after(emulator.config.delays.engine_operation),
        metadata: json!({
            "@type": metadata_type,
            "genericMetadata": { "createTime": timestamp(now), "updateTime": timestamp(now) },
        }),
        outcome,
    };
    let body = operation.to_json(now);
    world.operations.insert(operation);
    body
}

/// The (egress, ingress) gateway names an engine is bound to.
fn gateways(engine: &Value) -> (Option<String>, Option<String>) {
    let config = &engine["spec"]["deploymentSpec"]["agentGatewayConfig"];
    let name = |v: &Value| {
        v["agentGateway"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    (
        name(&config["agentToAnywhereConfig"]),
        name(&config["clientToAgentConfig"]),
    )
}

/// Whether `member` holds every needed permission through a grant whose propagation is done.
fn member_may_use_gateways(world: &World, project_id: &str, member: &str, now: Duration) -> bool {
    let Some(project) = world.projects.iter().find(|p| p.id == project_id) else {
        return false;
    };
    let roles: Vec<&String> = project
        .iam_policy
        .effective_at
        .iter()
        .filter(|((_, m), at)| m == member && **at <= now)
        .map(|((role, _), _)| role)
        .collect();
    if roles.iter().any(|role| GATEWAY_ROLES.contains(&role.as_str())) {
        return true;
    }
    NEEDED_PERMISSIONS.iter().all(|permission| {
        roles.iter().any(|role| {
            crate::api::iam::role_is_live(world, role)
                && role
                    .strip_prefix("projects/")
                    .and_then(|rest| rest.split_once("/roles/"))
                    .and_then(|(p, id)| {
                        let p = world
                            .projects
                            .iter()
                            .find(|x| x.id == p || x.number.to_string() == p)?;
                        world.iam_roles.get(&format!("projects/{}/roles/{id}", p.id))
                    })
                    .is_some_and(|stored| stored.included_permissions.iter().any(|x| x == permission))
        })
    })
}

/// The governed access path and the `agentGatewayConfig` field of an engine's egress gateway.
const EGRESS: (&str, &str) = ("AGENT_TO_ANYWHERE", "agentToAnywhereConfig");
/// The governed access path and the `agentGatewayConfig` field of an engine's ingress gateway.
const INGRESS: (&str, &str) = ("CLIENT_TO_AGENT", "clientToAgentConfig");

/// The stored name of `gateway`, which an engine in project `project_id` / `number`, `location`
/// binds through `agentGatewayConfig.{field}`, if it exists there with governed access path
/// `mode`; otherwise why the binding fails.
fn bound_gateway(
    world: &World,
    project_id: &str,
    number: u64,
    location: &str,
    gateway: &str,
    (mode, field): (&str, &str),
) -> Result<String, ApiError> {
    let parts: Vec<&str> = gateway.split('/').collect();
    let key = match parts.as_slice() {
        ["projects", p, "locations", l, "agentGateways", g]
            if (*p == project_id || *p == number.to_string()) && *l == location =>
        {
            format!("projects/{project_id}/locations/{l}/agentGateways/{g}")
        }
        _ => {
            return Err(ApiError::failed_precondition(format!(
                "agentGatewayConfig.{field}.agentGateway \"{gateway}\" must name an agent gateway in \
                 project {project_id} and region {location}."
            )))
        }
    };
    let Some(stored) = world.agent_gateways.get(&key) else {
        return Err(ApiError::failed_precondition(format!(
            "Agent gateway {gateway} does not exist."
        )));
    };
    if stored.body["googleManaged"]["governedAccessPath"].as_str() != Some(mode) {
        return Err(ApiError::failed_precondition(format!(
            "agentGatewayConfig.{field} needs a {mode} agent gateway; {gateway} is not one."
        )));
    }
    Ok(key)
}

/// PERMISSION_DENIED unless the Reasoning Engine service agent of project `number` may use
/// agent gateways.
fn check_service_agent(world: &World, project_id: &str, number: u64, now: Duration) -> Result<(), ApiError> {
    let member = format!("serviceAccount:service-{number}@gcp-sa-aiplatform-re.iam.gserviceaccount.com");
    if member_may_use_gateways(world, project_id, &member, now) {
        return Ok(());
    }
    Err(ApiError::permission_denied(format!(
        "The Reasoning Engine service agent {} lacks permission networkservices.agentGateways.get \
         and networkservices.agentGateways.use on the agent gateway.",
        member.trim_start_matches("serviceAccount:")
    )))
}

/// Why binding `engine` in project `project_id`/`number`, `location` to its gateways fails, if it
/// does: a gateway that is wrong, a service agent without permission, or an egress gateway that
/// denies the engine's declared LLM access ([`super::egress`]), checked in that order.
fn binding_problem(
    world: &World,
    project_id: &str,
    number: u64,
    location: &str,
    engine: &Value,
    now: Duration,
) -> Option<ApiError> {
    let (egress, ingress) = gateways(engine);
    let bind = |gateway: &Option<String>, path| {
        gateway
            .as_deref()
            .map(|gateway| bound_gateway(world, project_id, number, location, gateway, path))
            .transpose()
    };
    let egress_key = match (bind(&egress, EGRESS), bind(&ingress, INGRESS)) {
        (Err(problem), _) | (_, Err(problem)) => return Some(problem),
        (Ok(egress_key), Ok(_)) => egress_key,
    };
    if egress.is_none() && ingress.is_none() {
        return None;
    }
    if let Err(problem) = check_service_agent(world, project_id, number, now) {
        return Some(problem);
    }
    let (gateway, key) = egress.zip(egress_key)?;
    super::egress::llm_access_problem(world, &gateway, &key, engine, location)
}

/// Sets `spec.effectiveIdentity` from `spec.identityType`.
fn fill_identity(engine: &mut Value, number: u64) {
    if !engine["spec"].is_object() {
        return;
    }
    let name = engine["name"].as_str().unwrap_or_default().to_string();
    let identity = if engine["spec"]["identityType"] == "AGENT_IDENTITY" {
        format!("principal://agents.global.proj-{number}.system.id.goog/resources/aiplatform/{name}")
    } else {
        engine["spec"]["serviceAccount"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("service-{number}@gcp-sa-aiplatform-re.iam.gserviceaccount.com"))
    };
    engine["spec"]["effectiveIdentity"] = json!(identity);
}

fn create(
    emulator: &Emulator,
    version: &str,
    project: &str,
    location: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let fields = settable_fields(&call.body, UPDATABLE, "a ReasoningEngine")?;
    if fields
        .get("displayName")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(ApiError::invalid_argument("displayName is required."));
    }
    let now = emulator.clock.now();
    let mut world = emulator.world();
    purge(&mut world, now);
    let (parent, project_id, number) = parent(&mut world, project, location)?;
    let name = format!("{parent}/reasoningEngines/{}", world.next_id());
    let mut body = Value::Object(fields);
    let created = timestamp(now);
    body["name"] = json!(name);
    body["createTime"] = json!(created);
    body["updateTime"] = json!(created);
    body["etag"] = json!(new_etag(&mut world));
    fill_identity(&mut body, number);
    crate::api::org_policy::check_reasoning_engine(&world, &project_id, "CREATE", &body, now)?;
    let problem = binding_problem(&world, &project_id, number, location, &body, now)
        .or_else(|| emulator.faults.operation_failure(SERVICE));
    let gone_at = problem
        .is_some()
        .then(|| emulator.clock.after(emulator.config.delays.engine_operation));
    let outcome = match problem {
        Some(error) => Err(error),
        None => Ok(with_type(version, &body)),
    };
    let display_name = body["displayName"].as_str().unwrap_or_default().to_string();
    world
        .vertex_ai
        .engines
        .insert(name.clone(), StoredEngine { body, gone_at });
    let metadata = format!("{}.CreateReasoningEngineOperationMetadata", type_prefix(version));
    let operation = start_operation(emulator, &mut world, &name, &metadata, outcome);
    if gone_at.is_none() {
        // Agent Runtime registers what it deploys in Agent Registry, some time after deploying.
        let deployed = emulator.clock.after(emulator.config.delays.engine_operation);
        let visible_at = deployed + Duration::from_secs_f64(emulator.config.delays.registry_agent.max(0.0));
        crate::api::agent_registry::register_runtime_agent(
            &mut world,
            &project_id,
            location,
            &name,
            &display_name,
            visible_at,
        );
    }
    Ok(operation)
}

fn get(emulator: &Emulator, project: &str, location: &str, id: &str) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    purge(&mut world, now);
    let (parent, _, _) = parent(&mut world, project, location)?;
    let name = format!("{parent}/reasoningEngines/{id}");
    world
        .vertex_ai
        .engines
        .get(&name)
        .map(|engine| engine.body.clone())
        .ok_or_else(|| not_found(&name))
}

/// One `field = "value"` term of a list filter.
enum Term {
    DisplayName(String),
    Label(String, String),
}

fn parse_filter(filter: &str) -> Result<Vec<Term>, ApiError> {
    let invalid = || {
        ApiError::invalid_argument(format!(
            "Unsupported filter \"{filter}\": only AND of display_name=\"x\" and labels.KEY=\"v\" terms."
        ))
    };
    if filter.trim().is_empty() {
        return Ok(vec![]);
    }
    filter
        .split(" AND ")
        .map(|term| {
            let (field, value) = term.split_once('=').ok_or_else(invalid)?;
            let (field, value) = (field.trim(), value.trim());
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(invalid)?
                .to_string();
            match field {
                "display_name" | "displayName" => Ok(Term::DisplayName(value)),
                _ => match field.strip_prefix("labels.") {
                    Some(key) if !key.is_empty() => Ok(Term::Label(key.to_string(), value)),
                    _ => Err(invalid()),
                },
            }
        })
        .collect()
}

fn matches_filter(engine: &Value, terms: &[Term]) -> bool {
    terms.iter().all(|term| match term {
        Term::DisplayName(v) => engine["displayName"].as_str() == Some(v),
        Term::Label(k, v) => engine["labels"][k].as_str() == Some(v),
    })
}

fn list(emulator: &Emulator, project: &str, location: &str, call: &Call) -> Result<Value, ApiError> {
    let page_size = page_size(call)?;
    let terms = parse_filter(call.query("filter").unwrap_or_default())?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    purge(&mut world, now);
    let (parent, _, _) = parent(&mut world, project, location)?;
    let prefix = format!("{parent}/reasoningEngines/");
    let after = resume_after(call, &prefix)?;
    let items = world
        .vertex_ai
        .engines
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .filter(|(_, engine)| matches_filter(&engine.body, &terms))
        .map(|(name, e)| (name.clone(), e.body.clone()))
        .collect();
    Ok(page(items, "reasoningEngines", page_size, after))
}

/// The `updateMask` paths, camelCased segment by segment; each must start with an updatable field.
fn update_mask(call: &Call) -> Result<Vec<Vec<String>>, ApiError> {
    let Some(mask) = call.query("updateMask").filter(|m| !m.trim().is_empty()) else {
        return Ok(UPDATABLE.iter().map(|f| vec![f.to_string()]).collect());
    };
    mask.split(',')
        .map(str::trim)
        .map(|path| {
            let segments: Vec<String> = path.split('.').map(crate::discovery::snake_to_camel).collect();
            if UPDATABLE.contains(&segments[0].as_str()) {
                Ok(segments)
            } else {
                Err(ApiError::invalid_argument(format!(
                    "Invalid field mask path \"{path}\": not an updatable field of ReasoningEngine."
                )))
            }
        })
        .collect()
}

/// Copies the value at `path` in `from` into `to`, or removes it from `to` when `from` lacks it.
fn apply_path(to: &mut Value, from: &Value, path: &[String]) {
    let (last, init) = path.split_last().expect("mask paths are never empty");
    let mut source = Some(from);
    for segment in path {
        source = source.and_then(|s| s.get(segment));
    }
    let mut target = to;
    for segment in init {
        if !target[segment.as_str()].is_object() {
            if source.is_none() {
                return;
            }
            target[segment.as_str()] = json!({});
        }
        target = &mut target[segment.as_str()];
    }
    match (source, target.as_object_mut()) {
        (Some(value), Some(object)) => {
            object.insert(last.clone(), value.clone());
        }
        (None, Some(object)) => {
            object.remove(last);
        }
        _ => {}
    }
}

fn patch(
    emulator: &Emulator,
    version: &str,
    project: &str,
    location: &str,
    id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let mask = update_mask(call)?;
    let fields = Value::Object(settable_fields(&call.body, UPDATABLE, "a ReasoningEngine")?);
    let given_etag = call.body["etag"].as_str().filter(|e| !e.is_empty());
    let now = emulator.clock.now();
    let mut world = emulator.world();
    purge(&mut world, now);
    let (parent, project_id, number) = parent(&mut world, project, location)?;
    let name = format!("{parent}/reasoningEngines/{id}");
    let engine = world
        .vertex_ai
        .engines
        .get(&name)
        .cloned()
        .ok_or_else(|| not_found(&name))?;
    if given_etag.is_some_and(|etag| Some(etag) != engine.body["etag"].as_str()) {
        return Err(aborted(&name));
    }
    let mut body = engine.body.clone();
    for path in &mask {
        apply_path(&mut body, &fields, path);
    }
    let (old_egress, old_ingress) = gateways(&engine.body);
    let (new_egress, new_ingress) = gateways(&body);
    for (old, new, field) in [
        (old_egress, new_egress, "agentToAnywhereConfig"),
        (old_ingress, new_ingress, "clientToAgentConfig"),
    ] {
        if old.is_some() && old != new {
            return Err(ApiError::failed_precondition(format!(
                "Cannot unbind {name} from agent gateway {}: \
                 spec.deploymentSpec.agentGatewayConfig.{field}.agentGateway cannot be removed or changed.",
                old.unwrap_or_default()
            )));
        }
    }
    body["updateTime"] = json!(timestamp(now));
    body["etag"] = json!(new_etag(&mut world));
    fill_identity(&mut body, number);
    crate::api::org_policy::check_reasoning_engine(&world, &project_id, "UPDATE", &body, now)?;
    let problem = binding_problem(&world, &project_id, number, location, &body, now)
        .or_else(|| emulator.faults.operation_failure(SERVICE));
    let outcome = match problem {
        Some(error) => Err(error),
        None => {
            let response = with_type(version, &body);
            world.vertex_ai.engines.insert(
                name.clone(),
                StoredEngine {
                    body,
                    gone_at: engine.gone_at,
                },
            );
            Ok(response)
        }
    };
    let metadata = format!("{}.UpdateReasoningEngineOperationMetadata", type_prefix(version));
    Ok(start_operation(emulator, &mut world, &name, &metadata, outcome))
}

fn delete(
    emulator: &Emulator,
    version: &str,
    project: &str,
    location: &str,
    id: &str,
) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    purge(&mut world, now);
    let (parent, _, _) = parent(&mut world, project, location)?;
    let name = format!("{parent}/reasoningEngines/{id}");
    if !world.vertex_ai.engines.contains_key(&name) {
        return Err(not_found(&name));
    }
    let outcome = match emulator.faults.operation_failure(SERVICE) {
        Some(error) => Err(error),
        None => {
            world.vertex_ai.engines.remove(&name);
            crate::api::agent_registry::deregister_runtime_agent(&mut world, &name);
            Ok(json!({ "@type": EMPTY_TYPE }))
        }
    };
    Ok(start_operation(
        emulator,
        &mut world,
        &name,
        &format!("{}.DeleteOperationMetadata", type_prefix(version)),
        outcome,
    ))
}

/// An engine's operation by name; the project may be given by id or number.
fn get_operation(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
    op: &str,
) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let (parent, _, _) = parent(&mut world, project, location)?;
    let name = format!("{parent}/reasoningEngines/{id}/operations/{op}");
    world
        .operations
        .get(&name)
        .map(|operation| operation.to_json(now))
        .ok_or_else(|| ApiError::not_found(format!("Operation {name} not found.")))
}

/// An engine's operations (`reasoningEngines.operations.list`).
fn list_operations(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let page_size = page_size(call)?;
    if call.query("filter").is_some_and(|f| !f.trim().is_empty()) {
        return Err(ApiError::invalid_argument(
            "Unsupported filter: operations of a reasoning engine are listed unfiltered.",
        ));
    }
    if call.query("returnPartialSuccess") == Some("true") {
        return Err(ApiError::unimplemented(
            "returnPartialSuccess is not supported for reasoning engine operations.",
        ));
    }
    let now = emulator.clock.now();
    let mut world = emulator.world();
    purge(&mut world, now);
    let (parent, _, _) = parent(&mut world, project, location)?;
    let engine = format!("{parent}/reasoningEngines/{id}");
    if !world.vertex_ai.engines.contains_key(&engine) {
        return Err(not_found(&engine));
    }
    let prefix = format!("{engine}/operations/");
    let after = resume_after(call, &prefix)?;
    let items = world
        .operations
        .under(&prefix)
        .into_iter()
        .map(|op| (op.name.clone(), op.to_json(now)))
        .collect();
    Ok(page(items, "operations", page_size, after))
}
