//! Service Usage v1 / v1beta1 (`serviceusage.v1.json`, `serviceusage.v1beta1.json`):
//! services.enable / batchEnable (operations), services.get / batchGet, operations.get, and
//! services.generateServiceIdentity, which answers an operation that is already done and named
//! `finished.DONE_OPERATION` (polling that name answers 400, as on Google).
//!
//! An enable operation failing as a fault (`operation_error`) enables nothing: the APIs stay
//! disabled (or as they were), and the finished operation carries the INTERNAL error.
//! generateServiceIdentity's already-done operation never fails.

use axum::http::Method;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ops::Operation;
use crate::router::Call;
use crate::world::EnabledService;
use crate::Emulator;

/// The API's service name, under which its faults are configured.
const SERVICE: &str = "serviceusage.googleapis.com";
const DONE_OPERATION: &str = "finished.DONE_OPERATION";

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    Some(match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v1", "projects", project, "services"], Some("batchEnable")) => {
            let ids = call
                .body
                .get("serviceIds")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ids: Vec<String> = ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            enable(emulator, project, &ids, true)
        }
        (&Method::POST, ["v1", "projects", project, "services", service], Some("enable")) => {
            enable(emulator, project, &[service.to_string()], false)
        }
        (&Method::GET, ["v1", "projects", project, "services", service], None) => {
            get_service(emulator, project, service)
        }
        (&Method::GET, ["v1", "projects", project, "services"], Some("batchGet")) => {
            let names = call.query_all("names");
            if names.is_empty() || names.len() > 30 {
                Err(ApiError::invalid_argument(
                    "batchGet takes between 1 and 30 `names`",
                ))
            } else {
                names
                    .iter()
                    .map(|name| get_service(emulator, project, name.rsplit('/').next().unwrap_or(name)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|services| json!({ "services": services }))
            }
        }
        (
            &Method::POST,
            ["v1beta1", "projects", project, "services", service],
            Some("generateServiceIdentity"),
        ) => generate_service_identity(emulator, project, service),
        (
            &Method::GET,
            ["v1" | "v1beta1", DONE_OPERATION] | ["v1" | "v1beta1", "operations", DONE_OPERATION],
            None,
        ) => Err(ApiError::invalid_argument(format!(
            "Invalid operation name {DONE_OPERATION}: it was already done when it was returned"
        ))),
        (&Method::GET, ["v1" | "v1beta1", "operations", id], None) => {
            let name = format!("operations/{id}");
            let now = emulator.clock.now();
            emulator
                .world()
                .operations
                .get(&name)
                .map(|op| op.to_json(now))
                .ok_or_else(|| ApiError::not_found(format!("Operation {name} not found.")))
        }
        _ => return None,
    })
}

fn valid_service_name(name: &str) -> bool {
    name.strip_suffix(".googleapis.com").is_some_and(|prefix| {
        !prefix.is_empty()
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    })
}

fn service_json(project_number: u64, service: &str, enabled: bool) -> Value {
    json!({
        "name": format!("projects/{project_number}/services/{service}"),
        "parent": format!("projects/{project_number}"),
        "state": if enabled { "ENABLED" } else { "DISABLED" },
        "config": { "name": service },
    })
}

/// Enabling is all or nothing; an API already enabled stays as it is.
fn enable(emulator: &Emulator, project: &str, services: &[String], batch: bool) -> Result<Value, ApiError> {
    if services.is_empty() || services.len() > 20 {
        return Err(ApiError::invalid_argument(
            "serviceIds must name between 1 and 20 services",
        ));
    }
    if let Some(bad) = services.iter().find(|s| !valid_service_name(s)) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid service name `{bad}`: expected e.g. `iam.googleapis.com`"
        )));
    }
    let delays = &emulator.config.delays;
    let (done_at, usable_at) = (
        emulator.clock.after(delays.enable_operation),
        emulator.clock.after(delays.service_usable),
    );
    let mut world = emulator.world();
    let number = world.project_mut(project)?.number;
    let project = world.project_mut(project)?;
    let failure = emulator.faults.operation_failure(SERVICE);
    if failure.is_none() {
        for service in services {
            project.services.entry(service.clone()).or_insert(EnabledService {
                enabled_at: done_at,
                usable_at,
            });
        }
    }
    let enabled: Vec<Value> = services.iter().map(|s| service_json(number, s, true)).collect();
    let response = if batch {
        json!({ "@type": "type.googleapis.com/google.api.serviceusage.v1.BatchEnableServicesResponse", "services": enabled })
    } else {
        json!({ "@type": "type.googleapis.com/google.api.serviceusage.v1.EnableServiceResponse", "service": enabled[0] })
    };
    let outcome = failure.map_or(Ok(response), Err);
    let id = world.next_id();
    let operation = Operation {
        name: format!("operations/acat.p2-{number}-{id:08x}"),
        done_at,
        metadata: json!({
            "@type": "type.googleapis.com/google.api.serviceusage.v1.OperationMetadata",
            "resourceNames": services.iter().map(|s| format!("services/{s}/projectSettings/{number}")).collect::<Vec<_>>(),
        }),
        outcome,
    };
    let body = operation.to_json(emulator.clock.now());
    world.operations.insert(operation);
    Ok(body)
}

fn get_service(emulator: &Emulator, project: &str, service: &str) -> Result<Value, ApiError> {
    if !valid_service_name(service) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid service name `{service}`"
        )));
    }
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let project = world.project_mut(project)?;
    let enabled = project.services.get(service).is_some_and(|s| now >= s.enabled_at);
    Ok(service_json(project.number, service, enabled))
}

fn generate_service_identity(emulator: &Emulator, project: &str, service: &str) -> Result<Value, ApiError> {
    if !valid_service_name(service) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid service name `{service}`"
        )));
    }
    let usable_at = emulator.clock.after(emulator.config.delays.service_agent);
    let mut world = emulator.world();
    let project = world.project_mut(project)?;
    // Calling again returns the same identity and never delays agents already usable.
    let at = project
        .service_agents_usable_at
        .map_or(usable_at, |existing| existing.min(usable_at));
    project.service_agents_usable_at = Some(at);
    let short = service.trim_end_matches(".googleapis.com").replace('.', "-");
    let number = project.number;
    Ok(json!({
        "name": DONE_OPERATION,
        "done": true,
        "response": {
            "@type": "type.googleapis.com/google.api.serviceusage.v1beta1.ServiceIdentity",
            "email": format!("service-{number}@gcp-sa-{short}.iam.gserviceaccount.com"),
            "uniqueId": format!("1{:020}", number.wrapping_mul(7919).wrapping_add(short.len() as u64)),
        }
    }))
}
