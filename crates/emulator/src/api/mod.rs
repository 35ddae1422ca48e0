//! Google's APIs, one module each, dispatched by path. APIs not emulated yet still answer as
//! Google does for a project where they are disabled (403 SERVICE_DISABLED), and otherwise
//! 501 UNIMPLEMENTED, so a client meets Google's enablement rules from the first call.

pub mod agent_registry;
pub mod authorization;
mod billing;
mod egress;
pub mod iam;
mod iam_credentials;
mod model_armor;
pub mod network_services;
pub mod oauth2;
pub mod org_policy;
pub mod projects;
mod resource_manager;
mod resources;
mod service_usage;
pub mod vertex_ai;

use serde_json::Value;

use crate::config::ApiKind;
use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

pub fn dispatch(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    if let Some(result) = service_usage::route(emulator, call) {
        return Some(result);
    }
    if let Some((service, project)) = owning_api(call) {
        if let Err(disabled) =
            emulator.require_usable(enablement_project(emulator, call, service, project), service)
        {
            return Some(Err(disabled));
        }
    }
    if let Some(quota_project) = projectless_call(emulator, call) {
        if let Err(disabled) = emulator.require_usable(quota_project, "cloudresourcemanager.googleapis.com") {
            return Some(Err(disabled));
        }
    }
    if let Some(result) = projects::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = billing::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = iam::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = resource_manager::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = network_services::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = authorization::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = model_armor::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = vertex_ai::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = agent_registry::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = org_policy::route(emulator, call) {
        return Some(result);
    }
    if let Some(result) = iam_credentials::route(emulator, call) {
        return Some(result);
    }
    let (service, project) = owning_api(call)?;
    let project = enablement_project(emulator, call, service, project);
    Some(emulator.require_usable(project, service).and_then(|()| {
        Err(ApiError::unimplemented(format!(
            "{service} is not emulated yet ({} {})",
            call.method,
            call.segments.join("/")
        )))
    }))
}

/// The project that must have `service` enabled for `call`, which targets `target`.
fn enablement_project(emulator: &Emulator, call: &Call, service: &str, target: String) -> String {
    consumer_project(emulator, service, target, call.quota_project.as_deref())
}

/// The project a call of `service` targeting `target` is checked and charged against (its
/// enablement, its quota): the target for a resource-based API; for a client-based one the
/// caller's `quota_project`, else the configured default, else the target
/// ([`crate::config::EmulatorConfig::api_kinds`]).
pub fn consumer_project(
    emulator: &Emulator,
    service: &str,
    target: String,
    quota_project: Option<&str>,
) -> String {
    match emulator.config.api_kind(service) {
        ApiKind::ResourceBased => target,
        ApiKind::ClientBased => quota_project
            .map(str::to_string)
            .or_else(|| emulator.config.default_quota_project.clone())
            .unwrap_or(target),
    }
}

/// For a Resource Manager call that names no project (`projects.create`, `projects.search`,
/// `v3/operations`), the caller's quota project (or the configured default), where the API
/// must be enabled; `None` when there is neither (the call is not checked).
fn projectless_call(emulator: &Emulator, call: &Call) -> Option<String> {
    match call.segments().as_slice() {
        ["v3", "projects"] | ["v3", "operations", _] => call
            .quota_project
            .clone()
            .or_else(|| emulator.config.default_quota_project.clone()),
        _ => None,
    }
}

/// Which API a project-scoped path belongs to, and the project it names.
fn owning_api(call: &Call) -> Option<(&'static str, String)> {
    let segments = call.segments();
    let service = match segments.as_slice() {
        ["v1", "projects", _, "roles", ..] => "iam.googleapis.com",
        ["v1" | "v3", "projects", _] => "cloudresourcemanager.googleapis.com",
        ["v1", "projects", _, "billingInfo"] => "cloudbilling.googleapis.com",
        ["v1", "projects", _, "locations", _, "agentGateways" | "authzExtensions", ..] => {
            "networkservices.googleapis.com"
        }
        ["v1", "projects", _, "locations", _, "authzPolicies", ..] => "networksecurity.googleapis.com",
        ["v1", "projects", _, "locations", _, "templates", ..] => "modelarmor.googleapis.com",
        ["v1" | "v1beta1", "projects", _, "locations", _, "reasoningEngines", ..] => {
            "aiplatform.googleapis.com"
        }
        ["v1", "projects", _, "locations", _, "services" | "agents", ..] => "agentregistry.googleapis.com",
        ["v2", "projects", _, "policies", ..] => "orgpolicy.googleapis.com",
        _ => return None,
    };
    Some((service, segments[2].to_string()))
}

/// The API a path belongs to, and the project it names if any: for latency, faults and quotas.
/// The shared operations path belongs to several APIs and is left out.
pub fn service_of_path(path: &str) -> Option<(&'static str, Option<String>)> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.split(':').next().unwrap_or(s))
        .collect();
    let project = (segments.get(1) == Some(&"projects"))
        .then(|| segments.get(2).map(|p| p.to_string()))
        .flatten();
    let service = match segments.as_slice() {
        ["v1" | "v1beta1", "projects", _, "services", ..] | ["v1" | "v1beta1", "operations", ..] => {
            "serviceusage.googleapis.com"
        }
        ["v1", "projects", _, "roles", ..] => "iam.googleapis.com",
        ["v1", "projects", "-", "serviceAccounts", ..] => "iamcredentials.googleapis.com",
        ["v1" | "v3", "projects", _] | ["v3", "projects"] | ["v3", "operations", ..] => {
            "cloudresourcemanager.googleapis.com"
        }
        ["v1", "projects", _, "billingInfo"] | ["v1", "billingAccounts", ..] => "cloudbilling.googleapis.com",
        [_, "projects", _, "locations", _, "agentGateways" | "authzExtensions", ..] => {
            "networkservices.googleapis.com"
        }
        [_, "projects", _, "locations", _, "authzPolicies", ..] => "networksecurity.googleapis.com",
        [_, "projects", _, "locations", _, "templates", ..] => "modelarmor.googleapis.com",
        [_, "projects", _, "locations", _, "reasoningEngines", ..] => "aiplatform.googleapis.com",
        [_, "projects", _, "locations", _, "services" | "agents", ..] => "agentregistry.googleapis.com",
        ["v2", ..] => "orgpolicy.googleapis.com",
        _ => return None,
    };
    Some((service, project))
}
