//! Org Policy v2 (`orgpolicy.v2.json`): organisation custom constraints (create, get, list, patch,
//! delete) and policies on projects, folders and organisations (create, get, patch, delete,
//! getEffectivePolicy), plus the enforcement Vertex AI asks for on ReasoningEngine CREATE/UPDATE
//! ([`check_reasoning_engine`]). Everything is synchronous.
//!
//! Modelling choices (Google documents none of these):
//! - Policies are named with the project *number*, even when addressed by id.
//! - A policy for a `custom.*` constraint that does not exist in the resource's organisation is
//!   refused with 400 INVALID_ARGUMENT (Google's exact behaviour is unspecified). Other
//!   (managed / built-in) constraint names are accepted as given: there is no catalogue.
//! - PATCH of a policy replaces `spec` and `dryRunSpec` whole; `updateMask` is ignored. The etag,
//!   when given in the body, must be current (stale → 409 ABORTED).
//! - Inheritance for getEffectivePolicy and enforcement walks organisation → folder → project.
//!   A level with a `spec` replaces the rules so far, unless the spec has `inheritFromParent: true`,
//!   in which case its rules are appended to the inherited ones; `reset: true` clears them. A
//!   constraint is enforced when any resulting rule has `enforce: true`. getEffectivePolicy shows
//!   the configured state at once; enforcement uses only what has propagated.
//! - Propagation: a policy write takes effect `delays.policy_propagation` (900 s) after it was made
//!   ("up to 15 minutes"); until then the previous content of that policy (if it had propagated)
//!   keeps applying. A delete takes effect at once.
//! - CEL: `has(resource.a.b.c)` is answered from the resource JSON before evaluation, so a missing
//!   intermediate field gives false instead of an error. An evaluation error (or a non-bool result)
//!   refuses for ALLOW constraints (fail closed) and does not refuse for DENY constraints.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

const REASONING_ENGINE: &str = "aiplatform.googleapis.com/ReasoningEngine";
const MAX_CONDITION_CHARS: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 50;

/// Everything Org Policy keeps (custom constraints, policies).
#[derive(Debug, Clone, Default)]
pub struct OrgPolicyState {
    /// By full name `organizations/{org}/customConstraints/custom.X`.
    constraints: BTreeMap<String, StoredConstraint>,
    /// By canonical name `{projects/NUMBER|folders/F|organizations/O}/policies/{constraint}`.
    policies: BTreeMap<String, StoredPolicy>,
    /// Folder id → organisation id, copied from the configuration on every Org Policy call (the
    /// world does not keep folder parents; enforcement has only the world).
    folder_orgs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct StoredConstraint {
    /// The constraint as given, without `updateTime`.
    body: Map<String, Value>,
    update_time: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Content {
    spec: Option<Value>,
    dry_run_spec: Option<Value>,
}

#[derive(Debug, Clone)]
struct StoredPolicy {
    content: Content,
    etag: String,
    set_at: Duration,
    /// When the last write is enforced (`set_at` plus the configured propagation delay).
    in_force_at: Duration,
    /// What applied before the last write, while that write propagates.
    previous: Option<Content>,
}

impl StoredPolicy {
    /// The content being enforced at `now`.
    fn in_force(&self, now: Duration) -> Option<&Content> {
        if self.in_force_at <= now {
            Some(&self.content)
        } else {
            self.previous.as_ref()
        }
    }
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    let kind_ok = |k: &str| matches!(k, "projects" | "folders" | "organizations");
    let result = match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v2", "organizations", org, "customConstraints"], None) => {
            create_constraint(emulator, org, &call.body)
        }
        (&Method::GET, ["v2", "organizations", org, "customConstraints"], None) => {
            list_constraints(emulator, org, call)
        }
        (&Method::GET, ["v2", "organizations", org, "customConstraints", id], None) => {
            get_constraint(emulator, org, id)
        }
        (&Method::PATCH, ["v2", "organizations", org, "customConstraints", id], None) => {
            patch_constraint(emulator, org, id, &call.body)
        }
        (&Method::DELETE, ["v2", "organizations", org, "customConstraints", id], None) => {
            delete_constraint(emulator, org, id)
        }
        (&Method::POST, ["v2", kind, id, "policies"], None) if kind_ok(kind) => {
            create_policy(emulator, kind, id, &call.body)
        }
        (&Method::GET, ["v2", kind, id, "policies", c], None) if kind_ok(kind) => {
            get_policy(emulator, kind, id, c)
        }
        (&Method::GET, ["v2", kind, id, "policies", c], Some("getEffectivePolicy")) if kind_ok(kind) => {
            effective_policy(emulator, kind, id, c)
        }
        (&Method::PATCH, ["v2", kind, id, "policies", c], None) if kind_ok(kind) => {
            patch_policy(emulator, kind, id, c, &call.body)
        }
        (&Method::DELETE, ["v2", kind, id, "policies", c], None) if kind_ok(kind) => {
            delete_policy(emulator, kind, id, c, call)
        }
        _ => return None,
    };
    Some(result)
}

// ---- custom constraints ----

fn constraint_name(org: &str, id: &str) -> String {
    format!("organizations/{org}/customConstraints/{id}")
}

fn require_org(emulator: &Emulator, org: &str) -> Result<(), ApiError> {
    if emulator.config.organizations.iter().any(|o| o.id == org) {
        Ok(())
    } else {
        Err(ApiError::permission_denied(format!(
            "Permission denied on resource 'organizations/{org}' (or it may not exist)."
        )))
    }
}

/// Checks a constraint body and returns it without output-only fields.
fn validate_constraint(
    body: &Value,
    expected_name: Option<&str>,
    org: &str,
) -> Result<Map<String, Value>, ApiError> {
    let mut body = body
        .as_object()
        .cloned()
        .ok_or_else(|| ApiError::invalid_argument("A custom constraint is required."))?;
    body.remove("updateTime");
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let prefix = format!("organizations/{org}/customConstraints/custom.");
    let valid = name
        .strip_prefix(&prefix)
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()));
    if !valid {
        return Err(ApiError::invalid_argument(format!(
            "Invalid custom constraint name '{name}': expected organizations/{org}/customConstraints/custom.{{name}} (letters and digits)."
        )));
    }
    if let Some(expected) = expected_name {
        if name != expected {
            return Err(ApiError::invalid_argument(format!(
                "The custom constraint name '{name}' does not match the request path ('{expected}')."
            )));
        }
    }
    let condition = body.get("condition").and_then(Value::as_str).unwrap_or_default();
    if condition.trim().is_empty() {
        return Err(ApiError::invalid_argument(
            "The custom constraint condition is required.",
        ));
    }
    if condition.chars().count() > MAX_CONDITION_CHARS {
        return Err(ApiError::invalid_argument(format!(
            "The custom constraint condition must be at most {MAX_CONDITION_CHARS} characters."
        )));
    }
    if let Err(error) = cel::Program::compile(condition) {
        return Err(ApiError::invalid_argument(format!(
            "Invalid CEL condition in custom constraint {name}: {error}"
        )));
    }
    match body.get("actionType").and_then(Value::as_str) {
        Some("ALLOW" | "DENY") => {}
        _ => {
            return Err(ApiError::invalid_argument(
                "The custom constraint actionType must be ALLOW or DENY.",
            ))
        }
    }
    let resource_types = body.get("resourceTypes").and_then(Value::as_array);
    if resource_types.is_none_or(|r| r.is_empty()) {
        return Err(ApiError::invalid_argument(
            "The custom constraint must name at least one resource type.",
        ));
    }
    Ok(body)
}

fn constraint_json(stored: &StoredConstraint) -> Value {
    let mut body = stored.body.clone();
    body.insert("updateTime".into(), json!(timestamp(stored.update_time)));
    Value::Object(body)
}

fn constraint_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Requested entity was not found: custom constraint {name}."
    ))
}

fn create_constraint(emulator: &Emulator, org: &str, body: &Value) -> Result<Value, ApiError> {
    require_org(emulator, org)?;
    let body = validate_constraint(body, None, org)?;
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let now = emulator.clock.now();
    let mut world = emulator.world();
    if world.org_policy.constraints.contains_key(&name) {
        return Err(ApiError::already_exists(format!(
            "Custom constraint {name} already exists."
        )));
    }
    let stored = StoredConstraint {
        body,
        update_time: now,
    };
    let out = constraint_json(&stored);
    world.org_policy.constraints.insert(name, stored);
    Ok(out)
}

fn get_constraint(emulator: &Emulator, org: &str, id: &str) -> Result<Value, ApiError> {
    require_org(emulator, org)?;
    let name = constraint_name(org, id);
    let world = emulator.world();
    let stored = world
        .org_policy
        .constraints
        .get(&name)
        .ok_or_else(|| constraint_not_found(&name))?;
    Ok(constraint_json(stored))
}

fn list_constraints(emulator: &Emulator, org: &str, call: &Call) -> Result<Value, ApiError> {
    require_org(emulator, org)?;
    let page_size = match call.query_all("pageSize").first() {
        Some(size) => size
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_argument(format!("Invalid pageSize '{size}'.")))?,
        None => 0,
    };
    let page_size = if page_size == 0 {
        DEFAULT_PAGE_SIZE
    } else {
        page_size
    };
    let start = match call.query_all("pageToken").first() {
        Some(token) if !token.is_empty() => token
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_argument(format!("Invalid pageToken '{token}'.")))?,
        _ => 0,
    };
    let prefix = format!("organizations/{org}/customConstraints/");
    let world = emulator.world();
    let all: Vec<Value> = world
        .org_policy
        .constraints
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(_, stored)| constraint_json(stored))
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(page_size).cloned().collect();
    let mut out = Map::new();
    if !page.is_empty() {
        out.insert("customConstraints".into(), Value::Array(page));
    }
    if start + page_size < all.len() {
        out.insert("nextPageToken".into(), json!((start + page_size).to_string()));
    }
    Ok(Value::Object(out))
}

fn patch_constraint(emulator: &Emulator, org: &str, id: &str, body: &Value) -> Result<Value, ApiError> {
    require_org(emulator, org)?;
    let name = constraint_name(org, id);
    let body = validate_constraint(body, Some(&name), org)?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let stored = world
        .org_policy
        .constraints
        .get_mut(&name)
        .ok_or_else(|| constraint_not_found(&name))?;
    *stored = StoredConstraint {
        body,
        update_time: now,
    };
    Ok(constraint_json(stored))
}

fn delete_constraint(emulator: &Emulator, org: &str, id: &str) -> Result<Value, ApiError> {
    require_org(emulator, org)?;
    let name = constraint_name(org, id);
    let mut world = emulator.world();
    world
        .org_policy
        .constraints
        .remove(&name)
        .ok_or_else(|| constraint_not_found(&name))?;
    Ok(json!({}))
}

// ---- policies ----

/// Copies folder parents from the configuration into the state (see `folder_orgs`).
fn sync_folders(emulator: &Emulator, world: &mut World) {
    for org in &emulator.config.organizations {
        for folder in &org.folders {
            world
                .org_policy
                .folder_orgs
                .insert(folder.id.clone(), org.id.clone());
        }
    }
}

/// The canonical resource name (`projects/NUMBER`, `folders/F`, `organizations/O`).
fn canonical(emulator: &Emulator, world: &mut World, kind: &str, id: &str) -> Result<String, ApiError> {
    match kind {
        "projects" => Ok(format!("projects/{}", world.project_mut(id)?.number)),
        "folders" if world.org_policy.folder_orgs.contains_key(id) => Ok(format!("folders/{id}")),
        "organizations" if emulator.config.organizations.iter().any(|o| o.id == id) => {
            Ok(format!("organizations/{id}"))
        }
        _ => Err(ApiError::permission_denied(format!(
            "Permission denied on resource '{kind}/{id}' (or it may not exist)."
        ))),
    }
}

/// The resource and its ancestors, organisation first, from a canonical name.
fn chain(world: &World, resource: &str) -> Vec<String> {
    let mut out = vec![resource.to_string()];
    let mut current = resource.to_string();
    loop {
        let parent = if let Some(number) = current.strip_prefix("projects/") {
            world
                .projects
                .iter()
                .find(|p| p.number.to_string() == number || p.id == number)
                .map(|p| p.parent.clone())
        } else if let Some(folder) = current.strip_prefix("folders/") {
            world
                .org_policy
                .folder_orgs
                .get(folder)
                .map(|org| format!("organizations/{org}"))
        } else {
            None
        };
        match parent {
            Some(parent) => {
                out.push(parent.clone());
                current = parent;
            }
            None => break,
        }
    }
    out.reverse();
    out
}

fn organization_of(chain: &[String]) -> Option<&str> {
    chain.first().and_then(|r| r.strip_prefix("organizations/"))
}

fn policy_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Requested entity was not found: policy {name}."))
}

fn spec_json(spec: &Value, at: Duration) -> Value {
    let mut spec = spec.as_object().cloned().unwrap_or_default();
    spec.remove("etag");
    spec.insert("updateTime".into(), json!(timestamp(at)));
    Value::Object(spec)
}

fn policy_json(name: &str, stored: &StoredPolicy) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if let Some(spec) = &stored.content.spec {
        out.insert("spec".into(), spec_json(spec, stored.set_at));
    }
    if let Some(spec) = &stored.content.dry_run_spec {
        out.insert("dryRunSpec".into(), spec_json(spec, stored.set_at));
    }
    out.insert("etag".into(), json!(stored.etag));
    Value::Object(out)
}

/// Checks a policy body against the path; returns the canonical policy name and its content.
fn parse_policy(
    emulator: &Emulator,
    world: &mut World,
    resource: &str,
    constraint_in_path: Option<&str>,
    body: &Value,
) -> Result<(String, Content), ApiError> {
    let body = body
        .as_object()
        .ok_or_else(|| ApiError::invalid_argument("A policy is required."))?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let parts: Vec<&str> = name.split('/').collect();
    let (kind, id, constraint) = match parts.as_slice() {
        [kind, id, "policies", constraint] if !constraint.is_empty() => (*kind, *id, *constraint),
        _ => {
            return Err(ApiError::invalid_argument(format!(
                "Invalid policy name '{name}': expected {{projects|folders|organizations}}/{{id}}/policies/{{constraint}}."
            )))
        }
    };
    let named = canonical(emulator, world, kind, id)
        .map_err(|_| ApiError::invalid_argument(format!("Invalid policy name '{name}'.")))?;
    if named != resource || constraint_in_path.is_some_and(|c| c != constraint) {
        return Err(ApiError::invalid_argument(format!(
            "The policy name '{name}' does not match the request path."
        )));
    }
    if let Some(id) = constraint.strip_prefix("custom.") {
        // Google's exact answer for a policy on a custom constraint that does not exist is
        // unspecified; the emulator refuses it with 400 INVALID_ARGUMENT.
        let ancestors = chain(world, resource);
        let org = organization_of(&ancestors).unwrap_or_default();
        let full = constraint_name(org, &format!("custom.{id}"));
        if !world.org_policy.constraints.contains_key(&full) {
            return Err(ApiError::invalid_argument(format!(
                "Constraint constraints/{constraint} does not exist: no custom constraint {full}."
            )));
        }
    }
    let content = Content {
        spec: body.get("spec").cloned(),
        dry_run_spec: body.get("dryRunSpec").cloned(),
    };
    Ok((format!("{resource}/policies/{constraint}"), content))
}

fn new_etag(world: &mut World) -> String {
    crate::encoding::etag(world.next_id())
}

fn create_policy(emulator: &Emulator, kind: &str, id: &str, body: &Value) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    sync_folders(emulator, &mut world);
    let resource = canonical(emulator, &mut world, kind, id)?;
    let (name, content) = parse_policy(emulator, &mut world, &resource, None, body)?;
    if world.org_policy.policies.contains_key(&name) {
        return Err(ApiError::already_exists(format!("Policy {name} already exists.")));
    }
    let stored = StoredPolicy {
        content,
        etag: new_etag(&mut world),
        set_at: now,
        in_force_at: emulator.clock.after(emulator.config.delays.policy_propagation),
        previous: None,
    };
    let out = policy_json(&name, &stored);
    world.org_policy.policies.insert(name, stored);
    Ok(out)
}

fn get_policy(emulator: &Emulator, kind: &str, id: &str, constraint: &str) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    sync_folders(emulator, &mut world);
    let name = format!(
        "{}/policies/{constraint}",
        canonical(emulator, &mut world, kind, id)?
    );
    let stored = world
        .org_policy
        .policies
        .get(&name)
        .ok_or_else(|| policy_not_found(&name))?;
    Ok(policy_json(&name, stored))
}

fn aborted(name: &str) -> ApiError {
    ApiError::aborted(format!(
        "The etag given for policy {name} is stale: read the policy again and retry."
    ))
}

fn patch_policy(
    emulator: &Emulator,
    kind: &str,
    id: &str,
    constraint: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    sync_folders(emulator, &mut world);
    let resource = canonical(emulator, &mut world, kind, id)?;
    let (name, content) = parse_policy(emulator, &mut world, &resource, Some(constraint), body)?;
    let etag = body.get("etag").and_then(Value::as_str).filter(|e| !e.is_empty());
    let fresh = new_etag(&mut world);
    let stored = world
        .org_policy
        .policies
        .get_mut(&name)
        .ok_or_else(|| policy_not_found(&name))?;
    if etag.is_some_and(|e| e != stored.etag) {
        return Err(aborted(&name));
    }
    stored.previous = stored.in_force(now).cloned();
    stored.content = content;
    stored.etag = fresh;
    stored.set_at = now;
    stored.in_force_at = emulator.clock.after(emulator.config.delays.policy_propagation);
    Ok(policy_json(&name, stored))
}

fn delete_policy(
    emulator: &Emulator,
    kind: &str,
    id: &str,
    constraint: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    sync_folders(emulator, &mut world);
    let name = format!(
        "{}/policies/{constraint}",
        canonical(emulator, &mut world, kind, id)?
    );
    let stored = world
        .org_policy
        .policies
        .get(&name)
        .ok_or_else(|| policy_not_found(&name))?;
    if let Some(etag) = call.query_all("etag").first().filter(|e| !e.is_empty()) {
        if *etag != stored.etag {
            return Err(aborted(&name));
        }
    }
    world.org_policy.policies.remove(&name);
    Ok(json!({}))
}

/// Merged rules of one spec kind down the chain (see the module notes), or None when no level
/// has such a spec. `pick` chooses the spec of a level.
fn merged_rules<'a>(
    levels: impl Iterator<Item = Option<&'a Content>>,
    pick: fn(&Content) -> Option<&Value>,
) -> Option<Vec<Value>> {
    let mut rules: Option<Vec<Value>> = None;
    for content in levels.flatten() {
        let Some(spec) = pick(content) else { continue };
        let own: Vec<Value> = spec["rules"].as_array().cloned().unwrap_or_default();
        if spec["reset"].as_bool() == Some(true) {
            rules = Some(own);
        } else if spec["inheritFromParent"].as_bool() == Some(true) {
            rules.get_or_insert_with(Vec::new).extend(own);
        } else {
            rules = Some(own);
        }
    }
    rules
}

fn effective_policy(emulator: &Emulator, kind: &str, id: &str, constraint: &str) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    sync_folders(emulator, &mut world);
    let resource = canonical(emulator, &mut world, kind, id)?;
    let ancestors = chain(&world, &resource);
    let levels = ancestors.iter().map(|r| {
        world
            .org_policy
            .policies
            .get(&format!("{r}/policies/{constraint}"))
            .map(|p| &p.content)
    });
    let rules = merged_rules(levels, |c| c.spec.as_ref()).unwrap_or_default();
    let mut spec = Map::new();
    if !rules.is_empty() {
        spec.insert("rules".into(), Value::Array(rules));
    }
    Ok(json!({ "name": format!("{resource}/policies/{constraint}"), "spec": spec }))
}

// ---- enforcement ----

/// Enforcement for Vertex AI: Ok unless an enforced custom constraint on
/// `aiplatform.googleapis.com/ReasoningEngine` refuses this CREATE or UPDATE of `resource`
/// (the ReasoningEngine JSON, camelCase) in `project_id` at emulated time `now`.
pub fn check_reasoning_engine(
    world: &World,
    project_id: &str,
    method_type: &str,
    resource: &Value,
    now: Duration,
) -> Result<(), ApiError> {
    let Some(project) = world
        .projects
        .iter()
        .find(|p| p.id == project_id || p.number.to_string() == project_id)
    else {
        return Ok(());
    };
    let ancestors = chain(world, &format!("projects/{}", project.number));
    let Some(org) = organization_of(&ancestors) else {
        return Ok(());
    };
    let prefix = format!("organizations/{org}/customConstraints/");
    let target = resource
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("projects/{}", project.number));
    for (full, constraint) in world.org_policy.constraints.range(prefix.clone()..) {
        let Some(id) = full.strip_prefix(&prefix) else {
            break;
        };
        let body = &constraint.body;
        let listed = |field: &str, wanted: &str| {
            body.get(field)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(wanted)))
        };
        if !listed("resourceTypes", REASONING_ENGINE) || !listed("methodTypes", method_type) {
            continue;
        }
        let levels = || {
            ancestors.iter().map(|r| {
                world
                    .org_policy
                    .policies
                    .get(&format!("{r}/policies/{id}"))
                    .and_then(|p| p.in_force(now))
            })
        };
        let enforced = |rules: Option<Vec<Value>>| {
            rules.is_some_and(|rules| rules.iter().any(|r| r["enforce"].as_bool() == Some(true)))
        };
        let live = enforced(merged_rules(levels(), |c| c.spec.as_ref()));
        let dry = enforced(merged_rules(levels(), |c| c.dry_run_spec.as_ref()));
        if !live && !dry {
            continue;
        }
        let condition = body.get("condition").and_then(Value::as_str).unwrap_or_default();
        let allow = body.get("actionType").and_then(Value::as_str) == Some("ALLOW");
        let refuse = match evaluate(condition, resource) {
            Ok(result) => result != allow,
            Err(error) => {
                tracing::info!(constraint = %full, %error, "org policy condition failed to evaluate");
                allow
            }
        };
        if !refuse {
            continue;
        }
        if live {
            return Err(ApiError::failed_precondition(format!(
                "Operation denied by org policy on resource '{target}': [\"customConstraints/{id}\"]."
            )));
        }
        tracing::info!(
            constraint = %full,
            resource = %target,
            "dry-run org policy would deny {method_type} of {target}"
        );
    }
    Ok(())
}

/// Evaluates a constraint condition with `resource` bound to the resource JSON.
fn evaluate(condition: &str, resource: &Value) -> Result<bool, String> {
    let source = answer_has_macros(condition, resource);
    let program = cel::Program::compile(&source).map_err(|e| e.to_string())?;
    let mut context = cel::Context::default();
    let value = cel::to_value(resource).map_err(|e| e.to_string())?;
    context.add_variable_from_value("resource", value);
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("condition gave {other:?}, not a bool")),
        Err(error) => Err(error.to_string()),
    }
}

/// Replaces each `has(resource.a.b)` by `true` or `false`, looked up in the resource JSON, so a
/// missing intermediate field reads as absent rather than failing the evaluation. A field that is
/// null or an empty string, list or object counts as absent (proto3 presence).
fn answer_has_macros(condition: &str, resource: &Value) -> String {
    let mut out = String::with_capacity(condition.len());
    let mut rest = condition;
    while let Some(at) = rest.find("has(") {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        let after = &rest[at + 4..];
        let close = after.find(')');
        let path = close.map(|c| after[..c].trim());
        let fields = path.and_then(|p| p.strip_prefix("resource.")).filter(|p| {
            p.split('.')
                .all(|f| !f.is_empty() && f.chars().all(|c| c.is_alphanumeric() || c == '_'))
        });
        match (boundary, fields, close) {
            (true, Some(fields), Some(close)) => {
                let mut value = resource;
                let mut present = true;
                for field in fields.split('.') {
                    match value.get(field) {
                        Some(v) => value = v,
                        None => {
                            present = false;
                            break;
                        }
                    }
                }
                let empty = matches!(value, Value::Null)
                    || value.as_str() == Some("")
                    || value.as_array().is_some_and(Vec::is_empty)
                    || value.as_object().is_some_and(Map::is_empty);
                out.push_str(&rest[..at]);
                out.push_str(if present && !empty { "true" } else { "false" });
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..at + 4]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Custom constraints and policies, for the admin API's state.
pub fn state(world: &World, now: Duration) -> Value {
    let constraints: Vec<&Map<String, Value>> =
        world.org_policy.constraints.values().map(|c| &c.body).collect();
    let policies: Vec<Value> = world
        .org_policy
        .policies
        .iter()
        .map(|(name, p)| {
            json!({ "name": name, "spec": p.content.spec, "dryRunSpec": p.content.dry_run_spec,
                    "enforced": p.in_force_at <= now })
        })
        .collect();
    json!({ "customConstraints": constraints, "policies": policies })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Project;

    const GATEWAY: &str = "projects/p/locations/us-central1/agentGateways/approved";
    const CONDITION: &str = "has(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway) &&\nresource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway != '' &&\n(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway in [\n  'projects/p/locations/us-central1/agentGateways/approved',\n  'projects/q/locations/us-central1/agentGateways/other',\n])";

    fn world(parent: &str) -> World {
        let mut world = World::default();
        world.projects.push(Project {
            id: "demo".into(),
            number: 100_000_000_001,
            parent: parent.into(),
            services: Default::default(),
            service_agents_usable_at: None,
            iam_policy: Default::default(),
            meta: Default::default(),
        });
        world.org_policy.folder_orgs.insert("55".into(), "1".into());
        world
    }

    fn add_constraint(world: &mut World, id: &str, action: &str, condition: &str, methods: &[&str]) {
        let name = format!("organizations/1/customConstraints/{id}");
        let body = json!({
            "name": name, "resourceTypes": [REASONING_ENGINE], "methodTypes": methods,
            "condition": condition, "actionType": action,
        });
        let body = body.as_object().cloned().unwrap();
        world.org_policy.constraints.insert(
            name,
            StoredConstraint {
                body,
                update_time: Duration::ZERO,
            },
        );
    }

    fn add_policy(world: &mut World, resource: &str, id: &str, content: Content, at: Duration) {
        world.org_policy.policies.insert(
            format!("{resource}/policies/{id}"),
            StoredPolicy {
                content,
                etag: "x".into(),
                set_at: at,
                in_force_at: at + Duration::from_secs(900),
                previous: None,
            },
        );
    }

    fn enforce() -> Content {
        Content {
            spec: Some(json!({ "rules": [{ "enforce": true }] })),
            dry_run_spec: None,
        }
    }

    fn engine(gateway: Option<&str>) -> Value {
        match gateway {
            Some(g) => json!({ "displayName": "a", "spec": { "deploymentSpec": { "agentGatewayConfig": {
                "agentToAnywhereConfig": { "agentGateway": g } } } } }),
            None => json!({ "displayName": "a", "spec": {} }),
        }
    }

    const LATER: Duration = Duration::from_secs(901);

    #[test]
    fn allow_constraint_refuses_unapproved_gateways_after_propagation() {
        let mut w = world("organizations/1");
        add_constraint(&mut w, "custom.egress", "ALLOW", CONDITION, &["CREATE", "UPDATE"]);
        add_policy(
            &mut w,
            "projects/100000000001",
            "custom.egress",
            enforce(),
            Duration::ZERO,
        );
        // Before propagation nothing is enforced.
        let early = Duration::from_secs(899);
        assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(None), early).is_ok());
        // After: approved gateway passes, missing (has() false) and other gateways are refused.
        assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(Some(GATEWAY)), LATER).is_ok());
        let error = check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).unwrap_err();
        assert_eq!((error.http, error.status), (400, "FAILED_PRECONDITION"));
        assert!(
            error.message.contains("[\"customConstraints/custom.egress\"]"),
            "{}",
            error.message
        );
        let other = engine(Some("projects/x/locations/us-central1/agentGateways/rogue"));
        assert!(check_reasoning_engine(&w, "100000000001", "UPDATE", &other, LATER).is_err());
        // A method type the constraint does not list is not checked.
        assert!(check_reasoning_engine(&w, "demo", "DELETE", &engine(None), LATER).is_ok());
    }

    #[test]
    fn deny_constraint_inherited_from_folder_and_organisation() {
        let mut w = world("folders/55");
        add_constraint(
            &mut w,
            "custom.noEgress",
            "DENY",
            "has(resource.spec.deploymentSpec.agentGatewayConfig)",
            &["CREATE"],
        );
        add_policy(
            &mut w,
            "organizations/1",
            "custom.noEgress",
            enforce(),
            Duration::ZERO,
        );
        assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).is_ok());
        assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(Some(GATEWAY)), LATER).is_err());
        // The folder turns it off (own rules, no inheritance).
        let off = Content {
            spec: Some(json!({ "rules": [{ "enforce": false }] })),
            dry_run_spec: None,
        };
        add_policy(&mut w, "folders/55", "custom.noEgress", off, Duration::ZERO);
        assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(Some(GATEWAY)), LATER).is_ok());
    }

    #[test]
    fn dry_run_never_refuses_and_evaluation_errors_fail_closed_for_allow() {
        let mut w = world("organizations/1");
        add_constraint(&mut w, "custom.dry", "ALLOW", CONDITION, &["CREATE"]);
        let dry = Content {
            spec: None,
            dry_run_spec: Some(json!({ "rules": [{ "enforce": true }] })),
        };
        add_policy(&mut w, "projects/100000000001", "custom.dry", dry, Duration::ZERO);
        assert!(check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).is_ok());

        add_constraint(
            &mut w,
            "custom.broken",
            "ALLOW",
            "resource.spec.missing.field == 'x'",
            &["CREATE"],
        );
        add_policy(
            &mut w,
            "projects/100000000001",
            "custom.broken",
            enforce(),
            Duration::ZERO,
        );
        let error = check_reasoning_engine(&w, "demo", "CREATE", &engine(None), LATER).unwrap_err();
        assert!(error.message.contains("custom.broken"));
    }

    #[test]
    fn has_macros_are_answered_from_the_json() {
        let resource = json!({ "spec": { "a": { "b": "x" }, "e": "" } });
        assert_eq!(
            answer_has_macros(
                "has(resource.spec.a.b) && has(resource.spec.z.y) || has(resource.spec.e)",
                &resource
            ),
            "true && false || false"
        );
        assert_eq!(answer_has_macros("xhas(a)", &resource), "xhas(a)");
    }
}
