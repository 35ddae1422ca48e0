//! Authorization on agent gateways: Network Services v1 `projects.locations.authzExtensions`
//! (`networkservices.v1.json`) and Network Security v1 `projects.locations.authzPolicies`
//! (`networksecurity.v1.json`), each create / get / list / patch / delete. Both APIs poll their
//! operations at `v1/projects/{p}/locations/{l}/operations/{op}`, which
//! [`super::network_services`] answers for any operation in the shared table.
//!
//! Create, patch and delete answer operations that finish after `delays.authz_operation` (60 s;
//! Google gives no duration). As for agent gateways, the resource changes at once and only the
//! operation takes time, and an operation failing as a fault leaves the world unchanged. Names
//! always use the project id.
//!
//! Neither resource has an `etag` in Google's schemas (nor does delete take one), so there is
//! no etag check; a patch without `updateMask` overwrites every settable field, as the
//! discovery document says. A repeated `requestId` for the same resource and verb within
//! [`REQUEST_ID_SECONDS`] answers the first call's operation again and changes nothing, as the
//! discovery documents describe it (shared with Agent Registry in `api/resources.rs`).
//!
//! What is checked, from the discovery documents' field docs and Google's Agent Gateway docs:
//! - an extension's `service`: `iap.googleapis.com`, `modelarmor.{region}.rep.googleapis.com`
//!   with the region equal to the extension's location (else 400 INVALID_ARGUMENT), or
//!   anything else (a backend service or a domain name, accepted unchecked); `timeout`, when
//!   given, between 10 and 10,000 milliseconds;
//! - a policy's `target.resources`: agent gateways in the policy's location that exist (a
//!   missing one is 404 NOT_FOUND, a malformed one or one in another location 400
//!   INVALID_ARGUMENT); `loadBalancingScheme` must not be set for Agent Gateway; `action` is
//!   required, `CUSTOM` needs `customProvider` (whose `authzExtension.resources` must exist in
//!   the policy's location), `DENY_BY_DEFAULT` takes no rules, `CONTENT_AUTHZ` only `CUSTOM`;
//!   `policyProfile` (REQUEST_AUTHZ when unset, and shown so) cannot change;
//! - Google's Agent Gateway limits, as 400 FAILED_PRECONDITION at create and patch: an egress
//!   (`AGENT_TO_ANYWHERE`) gateway takes at most four policies; an ingress (`CLIENT_TO_AGENT`)
//!   gateway one policy, CONTENT_AUTHZ; an `iap.googleapis.com` extension is usable only from a
//!   REQUEST_AUTHZ policy and a Model Armor one only from a CONTENT_AUTHZ policy;
//! - an extension a policy uses cannot be deleted, nor patched to a service that policy's profile
//!   may not use (400 FAILED_PRECONDITION). Google does not
//!   document the status for that; it is a modelling choice.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{json, Value};

use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

use super::network_services::{governed_access_path, not_found, parent, valid_id, EMPTY_TYPE};
use super::resources::{
    page, page_size, remember_request, repeated, request_id, resume_after, settable_fields,
    start_typed_operation, top_level_mask, REQUEST_ID_SECONDS,
};

/// At most this many authorization policies on an egress agent gateway (Google's docs).
const EGRESS_POLICY_LIMIT: usize = 4;

/// One of the two resource types: where it lives and what its API calls things.
struct Kind {
    /// The collection in its names (`authzExtensions`).
    collection: &'static str,
    /// The create call's id parameter (`authzExtensionId`).
    id_param: &'static str,
    /// The schema's name, for messages.
    type_name: &'static str,
    type_url: &'static str,
    metadata_type: &'static str,
    /// The API's service name, under which its faults are configured.
    service: &'static str,
    updatable: &'static [&'static str],
    /// Checks a resource about to be stored (`old`: what it replaces) against the world.
    check: fn(&World, &Target, &Value, Option<&Value>) -> Result<(), ApiError>,
}

/// The resource a call is about: its location and full name, and the call's `requestId`.
struct Target {
    location: String,
    name: String,
    request: Option<String>,
}

const EXTENSIONS: Kind = Kind {
    collection: "authzExtensions",
    id_param: "authzExtensionId",
    type_name: "AuthzExtension",
    type_url: "type.googleapis.com/google.cloud.networkservices.v1.AuthzExtension",
    metadata_type: super::network_services::METADATA_TYPE,
    service: "networkservices.googleapis.com",
    updatable: &[
        "authority",
        "description",
        "failOpen",
        "forwardAttributes",
        "forwardHeaders",
        "labels",
        "loadBalancingScheme",
        "metadata",
        "service",
        "timeout",
        "wireFormat",
    ],
    check: check_extension,
};

const POLICIES: Kind = Kind {
    collection: "authzPolicies",
    id_param: "authzPolicyId",
    type_name: "AuthzPolicy",
    type_url: "type.googleapis.com/google.cloud.networksecurity.v1.AuthzPolicy",
    metadata_type: "type.googleapis.com/google.cloud.networksecurity.v1.OperationMetadata",
    service: "networksecurity.googleapis.com",
    updatable: &[
        "action",
        "customProvider",
        "description",
        "httpRules",
        "labels",
        "networkRules",
        "policyProfile",
        "target",
    ],
    check: check_policy,
};

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let (kind, project, location, id) = match segments.as_slice() {
        ["v1", "projects", project, "locations", location, collection, rest @ ..] if rest.len() <= 1 => {
            let kind = match *collection {
                "authzExtensions" => &EXTENSIONS,
                "authzPolicies" => &POLICIES,
                _ => return None,
            };
            (kind, *project, *location, rest.first().copied())
        }
        _ => return None,
    };
    if call.verb.is_some() {
        return None;
    }
    Some(match (&call.method, id) {
        (&Method::POST, None) => create(emulator, kind, project, location, call),
        (&Method::GET, None) => list(emulator, kind, project, location, call),
        (&Method::GET, Some(id)) => get(emulator, kind, (project, location, id), call),
        (&Method::PATCH, Some(id)) => patch(emulator, kind, (project, location, id), call),
        (&Method::DELETE, Some(id)) => delete(emulator, kind, (project, location, id), call),
        _ => return None,
    })
}

/// The resources of `collection` in the world, for the admin API's state.
pub fn state(world: &World, collection: &str) -> Vec<Value> {
    let infix = format!("/{collection}/");
    world
        .authz
        .iter()
        .filter(|(name, _)| name.contains(&infix))
        .map(|(_, body)| body.clone())
        .collect()
}

/// The call's target, with the project resolved to its id.
fn target(
    world: &mut World,
    kind: &Kind,
    (project, location, id): (&str, &str, &str),
    call: &Call,
) -> Result<Target, ApiError> {
    let (parent, _) = parent(world, project, location)?;
    Ok(Target {
        location: location.to_string(),
        name: format!("{parent}/{}/{id}", kind.collection),
        request: request_id(call)?,
    })
}

/// The operation a call with the same `requestId` already started, if any (answered again,
/// nothing changes).
fn retried(emulator: &Emulator, world: &World, target: &Target, verb: &str) -> Option<Value> {
    repeated(world, emulator.clock.now(), &target.name, verb, &target.request)
}

fn start(
    emulator: &Emulator,
    world: &mut World,
    kind: &Kind,
    target: &Target,
    verb: &str,
    outcome: Result<Value, ApiError>,
) -> Value {
    let parent = target
        .name
        .split_once(&format!("/{}/", kind.collection))
        .map_or("", |(parent, _)| parent)
        .to_string();
    let timing = (kind.metadata_type, emulator.config.delays.authz_operation);
    let body = start_typed_operation(emulator, world, &parent, (&target.name, verb), timing, outcome);
    let until = emulator.clock.after(REQUEST_ID_SECONDS);
    remember_request(world, (&target.name, verb), target.request.clone(), &body, until);
    body
}

/// Stores `body` under `target` and answers the operation, unless a fault fails it.
fn store(
    emulator: &Emulator,
    world: &mut World,
    kind: &Kind,
    target: &Target,
    verb: &str,
    body: Value,
) -> Value {
    let outcome = match emulator.faults.operation_failure(kind.service) {
        Some(error) => Err(error),
        None => {
            let response = crate::ops::typed(kind.type_url, &body);
            world.authz.insert(target.name.clone(), body);
            Ok(response)
        }
    };
    start(emulator, world, kind, target, verb, outcome)
}

fn create(
    emulator: &Emulator,
    kind: &Kind,
    project: &str,
    location: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let id = call.query(kind.id_param).unwrap_or_default();
    if id.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "{} is required.",
            kind.id_param
        )));
    }
    if !valid_id(id) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid {} \"{id}\": it must be 1 to 63 characters, start with a lowercase letter, and \
             contain only lowercase letters, digits and hyphens, not ending with a hyphen.",
            kind.id_param
        )));
    }
    let fields = settable_fields(&call.body, kind.updatable, &format!("an {}", kind.type_name))?;
    let now = timestamp(emulator.clock.now());
    let mut world = emulator.world();
    let target = target(&mut world, kind, (project, location, id), call)?;
    if let Some(operation) = retried(emulator, &world, &target, "create") {
        return Ok(operation);
    }
    if world.authz.contains_key(&target.name) {
        return Err(ApiError::already_exists(format!(
            "Resource '{}' already exists",
            target.name
        )));
    }
    let mut body = Value::Object(fields);
    (kind.check)(&world, &target, &body, None)?;
    body["name"] = json!(target.name);
    body["createTime"] = json!(now);
    body["updateTime"] = json!(now);
    normalize(kind, &mut body);
    Ok(store(emulator, &mut world, kind, &target, "create", body))
}

/// What Google shows for a field left unset: a policy's profile is REQUEST_AUTHZ.
fn normalize(kind: &Kind, body: &mut Value) {
    if kind.collection == POLICIES.collection && profile(body) == "REQUEST_AUTHZ" {
        body["policyProfile"] = json!("REQUEST_AUTHZ");
    }
}

fn get(emulator: &Emulator, kind: &Kind, at: (&str, &str, &str), call: &Call) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let target = target(&mut world, kind, at, call)?;
    world
        .authz
        .get(&target.name)
        .cloned()
        .ok_or_else(|| not_found(&target.name))
}

fn list(
    emulator: &Emulator,
    kind: &Kind,
    project: &str,
    location: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let page_size = page_size(call)?;
    let mut world = emulator.world();
    let (parent, _) = parent(&mut world, project, location)?;
    let prefix = format!("{parent}/{}/", kind.collection);
    let after = resume_after(call, &prefix)?;
    let items = world
        .authz
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, body)| (name.clone(), body.clone()))
        .collect();
    Ok(page(items, kind.collection, page_size, after))
}

fn patch(emulator: &Emulator, kind: &Kind, at: (&str, &str, &str), call: &Call) -> Result<Value, ApiError> {
    let mask = top_level_mask(call, kind.updatable, kind.type_name)?;
    let fields = settable_fields(&call.body, kind.updatable, &format!("an {}", kind.type_name))?;
    let now = timestamp(emulator.clock.now());
    let mut world = emulator.world();
    let target = target(&mut world, kind, at, call)?;
    if let Some(operation) = retried(emulator, &world, &target, "update") {
        return Ok(operation);
    }
    let old = world
        .authz
        .get(&target.name)
        .cloned()
        .ok_or_else(|| not_found(&target.name))?;
    let mut body = old.as_object().cloned().unwrap_or_default();
    for field in &mask {
        match fields.get(*field) {
            Some(value) => body.insert(field.to_string(), value.clone()),
            None => body.remove(*field),
        };
    }
    let mut body = Value::Object(body);
    (kind.check)(&world, &target, &body, Some(&old))?;
    body["updateTime"] = json!(now);
    normalize(kind, &mut body);
    Ok(store(emulator, &mut world, kind, &target, "update", body))
}

fn delete(emulator: &Emulator, kind: &Kind, at: (&str, &str, &str), call: &Call) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let target = target(&mut world, kind, at, call)?;
    if let Some(operation) = retried(emulator, &world, &target, "delete") {
        return Ok(operation);
    }
    if !world.authz.contains_key(&target.name) {
        return Err(not_found(&target.name));
    }
    if let Some((user, _)) = users_of(&world, &target.name).next() {
        return Err(ApiError::failed_precondition(format!(
            "The resource '{}' is used by '{user}' and cannot be deleted.",
            target.name
        )));
    }
    let outcome = match emulator.faults.operation_failure(kind.service) {
        Some(error) => Err(error),
        None => {
            world.authz.remove(&target.name);
            Ok(json!({ "@type": EMPTY_TYPE }))
        }
    };
    Ok(start(emulator, &mut world, kind, &target, "delete", outcome))
}

/// `projects/{p}/locations/{l}/{collection}/{id}` (optionally `//networkservices.googleapis.com/`
/// first) as the full name, with the project id, of a resource that exists; `None` otherwise.
fn resolve(world: &World, reference: &str, collection: &str) -> Option<String> {
    let reference = reference
        .strip_prefix("//networkservices.googleapis.com/")
        .unwrap_or(reference);
    match reference.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", project, "locations", location, c, id] if *c == collection => {
            let project = world
                .projects
                .iter()
                .find(|p| p.id == *project || p.number.to_string() == *project)?;
            let name = format!("projects/{}/locations/{location}/{collection}/{id}", project.id);
            let exists = match collection {
                "agentGateways" => world.agent_gateways.contains_key(&name),
                _ => world.authz.contains_key(&name),
            };
            exists.then_some(name)
        }
        _ => None,
    }
}

/// The location a well-formed reference names, if it is one.
fn reference_location<'a>(reference: &'a str, collection: &str) -> Option<&'a str> {
    let reference = reference
        .strip_prefix("//networkservices.googleapis.com/")
        .unwrap_or(reference);
    match reference.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", _, "locations", location, c, _] if *c == collection => Some(location),
        _ => None,
    }
}

/// Every reference in `references` resolved to the full name of an existing `collection`
/// resource in `location`, or Google's refusal.
fn resolve_all(
    world: &World,
    references: Vec<&str>,
    collection: &str,
    location: &str,
    field: &str,
) -> Result<Vec<String>, ApiError> {
    references
        .into_iter()
        .map(|reference| {
            match reference_location(reference, collection) {
                None => {
                    return Err(ApiError::invalid_argument(format!(
                        "Invalid resource name '{reference}' in {field}: expected \
                         projects/{{project}}/locations/{{location}}/{collection}/{{id}}."
                    )))
                }
                Some(other) if other != location => {
                    return Err(ApiError::invalid_argument(format!(
                        "'{reference}' in {field} is in {other}; it must be in {location}, the location of the policy."
                    )))
                }
                Some(_) => {}
            }
            resolve(world, reference, collection)
                .ok_or_else(|| ApiError::not_found(format!("Resource '{reference}' was not found")))
        })
        .collect()
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn profile(policy: &Value) -> &str {
    match policy["policyProfile"].as_str() {
        None | Some("POLICY_PROFILE_UNSPECIFIED") => "REQUEST_AUTHZ",
        Some(profile) => profile,
    }
}

fn extension_refs(policy: &Value) -> impl Iterator<Item = &str> {
    strings(&policy["customProvider"]["authzExtension"]["resources"])
}

fn policies(world: &World) -> impl Iterator<Item = (&String, &Value)> {
    world
        .authz
        .iter()
        .filter(|(name, _)| name.contains("/authzPolicies/"))
}

/// The policies that use the extension named `extension`.
fn users_of<'a>(world: &'a World, extension: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    policies(world).filter(move |(_, policy)| {
        extension_refs(policy).any(|r| resolve(world, r, "authzExtensions").as_deref() == Some(extension))
    })
}

/// The region of a Model Armor extension service (`modelarmor.{region}.rep.googleapis.com`).
fn model_armor_region(service: &str) -> Option<&str> {
    service
        .strip_prefix("modelarmor.")?
        .strip_suffix(".rep.googleapis.com")
}

/// 400 FAILED_PRECONDITION unless the policy `policy` of profile `profile` may use the
/// extension `extension` whose service is `service`: IAP only from REQUEST_AUTHZ, Model Armor
/// only from CONTENT_AUTHZ, anything else from either.
fn check_profile(extension: &str, service: &str, policy: &str, profile: &str) -> Result<(), ApiError> {
    let needs = match service {
        "iap.googleapis.com" => "REQUEST_AUTHZ",
        s if model_armor_region(s).is_some() => "CONTENT_AUTHZ",
        _ => return Ok(()),
    };
    if needs == profile {
        return Ok(());
    }
    Err(ApiError::failed_precondition(format!(
        "The authorization extension {extension} (service {service}) can only be referenced by an \
         AuthzPolicy with policyProfile {needs}; {policy} has policyProfile {profile}."
    )))
}

fn check_extension(world: &World, target: &Target, body: &Value, _: Option<&Value>) -> Result<(), ApiError> {
    let service = body["service"].as_str().unwrap_or_default();
    // A new service must still suit every policy that uses the extension.
    for (user, policy) in users_of(world, &target.name) {
        check_profile(&target.name, service, user, profile(policy))?;
    }
    if service.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "Field 'service' is required for {}.",
            target.name
        )));
    }
    if let Some(region) = model_armor_region(service) {
        if region != target.location {
            return Err(ApiError::invalid_argument(format!(
                "The Model Armor service '{service}' is in region {region}, but the authorization \
                 extension {} is in {}: Model Armor must be in the same region as the extension \
                 (modelarmor.{}.rep.googleapis.com).",
                target.name, target.location, target.location
            )));
        }
    }
    if let Some(timeout) = body["timeout"].as_str() {
        let seconds = timeout.strip_suffix('s').and_then(|n| n.parse::<f64>().ok());
        if !seconds.is_some_and(|s| (0.01..=10.0).contains(&s)) {
            return Err(ApiError::invalid_argument(format!(
                "Invalid timeout '{timeout}': the timeout must be between 10-10000 milliseconds."
            )));
        }
    }
    Ok(())
}

fn check_policy(world: &World, target: &Target, body: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = &target.name;
    let profile = profile(body);
    if let Some(old) = old {
        if self::profile(old) != profile {
            return Err(ApiError::invalid_argument(format!(
                "Field 'policyProfile' of {name} is immutable: it is {} and cannot be changed to {profile}.",
                self::profile(old)
            )));
        }
    }
    let action = body["action"].as_str().unwrap_or("AUTHZ_ACTION_UNSPECIFIED");
    if action == "AUTHZ_ACTION_UNSPECIFIED" {
        return Err(ApiError::invalid_argument(format!(
            "Field 'action' is required for {name}: one of ALLOW, DENY, CUSTOM, DENY_BY_DEFAULT."
        )));
    }
    if action == "CUSTOM" && body["customProvider"].as_object().is_none_or(|p| p.is_empty()) {
        return Err(ApiError::invalid_argument(format!(
            "Field 'customProvider' is required when the action of {name} is CUSTOM."
        )));
    }
    if action == "DENY_BY_DEFAULT" && (body.get("httpRules").is_some() || body.get("networkRules").is_some())
    {
        return Err(ApiError::invalid_argument(format!(
            "A DENY_BY_DEFAULT policy takes no httpRules or networkRules ({name})."
        )));
    }
    if profile == "CONTENT_AUTHZ" && action != "CUSTOM" {
        return Err(ApiError::invalid_argument(format!(
            "Only the CUSTOM action is allowed in the CONTENT_AUTHZ policy profile ({name} has {action})."
        )));
    }
    if body["target"]["loadBalancingScheme"]
        .as_str()
        .is_some_and(|s| s != "LOAD_BALANCING_SCHEME_UNSPECIFIED")
    {
        return Err(ApiError::invalid_argument(format!(
            "Field 'target.loadBalancingScheme' must not be specified when targeting an Agent Gateway ({name})."
        )));
    }
    let targets: Vec<&str> = strings(&body["target"]["resources"]).collect();
    if targets.is_empty() {
        return Err(ApiError::invalid_argument(format!(
            "Field 'target.resources' is required for {name}."
        )));
    }
    let gateways = resolve_all(
        world,
        targets,
        "agentGateways",
        &target.location,
        "target.resources",
    )?;
    let extensions = resolve_all(
        world,
        extension_refs(body).collect(),
        "authzExtensions",
        &target.location,
        "customProvider.authzExtension.resources",
    )?;
    for extension in &extensions {
        let service = world.authz[extension]["service"].as_str().unwrap_or_default();
        check_profile(extension, service, name, profile)?;
    }
    for gateway in &gateways {
        let others = policies_on(world, gateway, name);
        match governed_access_path(&world.agent_gateways[gateway].body) {
            Some("AGENT_TO_ANYWHERE") if others.len() >= EGRESS_POLICY_LIMIT => {
                return Err(ApiError::failed_precondition(format!(
                    "Agent gateway {gateway} (AGENT_TO_ANYWHERE) already has {} authorization \
                     policies ({}): an egress agent gateway supports at most {EGRESS_POLICY_LIMIT}.",
                    others.len(),
                    others.join(", ")
                )))
            }
            Some("CLIENT_TO_AGENT") if profile != "CONTENT_AUTHZ" => {
                return Err(ApiError::failed_precondition(format!(
                    "Agent gateway {gateway} (CLIENT_TO_AGENT) supports only a CONTENT_AUTHZ \
                     authorization policy; {name} has policyProfile {profile}."
                )))
            }
            Some("CLIENT_TO_AGENT") if !others.is_empty() => {
                return Err(ApiError::failed_precondition(format!(
                    "Agent gateway {gateway} (CLIENT_TO_AGENT) already has an authorization policy \
                     ({}): an ingress agent gateway supports a single policy.",
                    others.join(", ")
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The authorization policies that target the agent gateway `gateway` (its full name with the
/// project id), in name order, with their bodies.
pub fn policies_targeting<'a>(world: &'a World, gateway: &str) -> Vec<(&'a str, &'a Value)> {
    policies_on(world, gateway, "")
        .into_iter()
        .filter_map(|name| world.authz.get_key_value(&name))
        .map(|(name, policy)| (name.as_str(), policy))
        .collect()
}

/// The policies other than `except` that target `gateway`, by name.
fn policies_on(world: &World, gateway: &str, except: &str) -> Vec<String> {
    let targets: BTreeMap<&String, Vec<String>> = policies(world)
        .filter(|(name, _)| name.as_str() != except)
        .map(|(name, policy)| {
            let resolved = strings(&policy["target"]["resources"])
                .filter_map(|r| resolve(world, r, "agentGateways"))
                .collect();
            (name, resolved)
        })
        .collect();
    targets
        .into_iter()
        .filter(|(_, gateways)| gateways.iter().any(|g| g == gateway))
        .map(|(name, _)| name.clone())
        .collect()
}
