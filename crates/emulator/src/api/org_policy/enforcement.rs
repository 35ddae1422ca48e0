//! The enforcement Vertex AI asks for on ReasoningEngine CREATE / UPDATE: enforced custom
//! constraints, their CEL conditions evaluated against the resource JSON.

use std::time::Duration;

use serde_json::{Map, Value};

use super::hierarchy::{chain, merged_rules, organization_of};
use super::REASONING_ENGINE;
use crate::error::ApiError;
use crate::world::World;

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
pub(super) fn evaluate(condition: &str, resource: &Value) -> Result<bool, String> {
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
pub(super) fn answer_has_macros(condition: &str, resource: &Value) -> String {
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
