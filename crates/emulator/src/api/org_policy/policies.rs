//! Policies on projects, folders and organisations: create, get, patch, delete, and
//! getEffectivePolicy.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::constraints::constraint_name;
use super::hierarchy::{canonical, chain, merged_rules, organization_of, sync_folders};
use super::{Content, StoredPolicy};
use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

pub(super) fn policy_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Requested entity was not found: policy {name}."))
}

pub(super) fn spec_json(spec: &Value, at: Duration) -> Value {
    let mut spec = spec.as_object().cloned().unwrap_or_default();
    spec.remove("etag");
    spec.insert("updateTime".into(), json!(timestamp(at)));
    Value::Object(spec)
}

pub(super) fn policy_json(name: &str, stored: &StoredPolicy) -> Value {
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
pub(super) fn parse_policy(
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

pub(super) fn new_etag(world: &mut World) -> String {
    crate::encoding::etag(world.next_id())
}

pub(super) fn create_policy(
    emulator: &Emulator,
    kind: &str,
    id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
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

/// The canonical name of the policy for `constraint` on `kind/id`.
fn policy_name(
    emulator: &Emulator,
    world: &mut World,
    kind: &str,
    id: &str,
    constraint: &str,
) -> Result<String, ApiError> {
    sync_folders(emulator, world);
    Ok(format!(
        "{}/policies/{constraint}",
        canonical(emulator, world, kind, id)?
    ))
}

pub(super) fn get_policy(
    emulator: &Emulator,
    kind: &str,
    id: &str,
    constraint: &str,
) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let name = policy_name(emulator, &mut world, kind, id, constraint)?;
    let stored = world
        .org_policy
        .policies
        .get(&name)
        .ok_or_else(|| policy_not_found(&name))?;
    Ok(policy_json(&name, stored))
}

pub(super) fn aborted(name: &str) -> ApiError {
    ApiError::aborted(format!(
        "The etag given for policy {name} is stale: read the policy again and retry."
    ))
}

pub(super) fn patch_policy(
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

pub(super) fn delete_policy(
    emulator: &Emulator,
    kind: &str,
    id: &str,
    constraint: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let name = policy_name(emulator, &mut world, kind, id, constraint)?;
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

pub(super) fn effective_policy(
    emulator: &Emulator,
    kind: &str,
    id: &str,
    constraint: &str,
) -> Result<Value, ApiError> {
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
