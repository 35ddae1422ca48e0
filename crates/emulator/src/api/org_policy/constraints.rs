//! Organisation custom constraints: create, get, list, patch, delete.

use serde_json::{json, Map, Value};

use super::StoredConstraint;
use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

const MAX_CONDITION_CHARS: usize = 1000;
const DEFAULT_PAGE_SIZE: usize = 50;

pub(super) fn constraint_name(org: &str, id: &str) -> String {
    format!("organizations/{org}/customConstraints/{id}")
}

pub(super) fn require_org(emulator: &Emulator, org: &str) -> Result<(), ApiError> {
    if emulator.config.organizations.iter().any(|o| o.id == org) {
        Ok(())
    } else {
        Err(ApiError::permission_denied(format!(
            "Permission denied on resource 'organizations/{org}' (or it may not exist)."
        )))
    }
}

/// Checks a constraint body and returns it without output-only fields.
pub(super) fn validate_constraint(
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

pub(super) fn constraint_json(stored: &StoredConstraint) -> Value {
    let mut body = stored.body.clone();
    body.insert("updateTime".into(), json!(timestamp(stored.update_time)));
    Value::Object(body)
}

pub(super) fn constraint_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Requested entity was not found: custom constraint {name}."
    ))
}

pub(super) fn create_constraint(emulator: &Emulator, org: &str, body: &Value) -> Result<Value, ApiError> {
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

pub(super) fn get_constraint(emulator: &Emulator, org: &str, id: &str) -> Result<Value, ApiError> {
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

pub(super) fn list_constraints(emulator: &Emulator, org: &str, call: &Call) -> Result<Value, ApiError> {
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

pub(super) fn patch_constraint(
    emulator: &Emulator,
    org: &str,
    id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
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

pub(super) fn delete_constraint(emulator: &Emulator, org: &str, id: &str) -> Result<Value, ApiError> {
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
