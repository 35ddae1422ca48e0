//! Roles in the world: load, save, purge after the delete window, names and their JSON.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::validation::validate_role_id;
use super::{StoredRole, PURGED_AFTER};
use crate::error::ApiError;
use crate::world::World;

/// Whether `name` (`projects/{PROJECT_ID or NUMBER}/roles/{ROLE_ID}`) is a custom role that exists
/// and is not deleted: what a policy binding may grant.
pub fn role_is_live(world: &World, name: &str) -> bool {
    let Some((project, role_id)) = name
        .strip_prefix("projects/")
        .and_then(|rest| rest.split_once("/roles/"))
    else {
        return false;
    };
    world
        .projects
        .iter()
        .find(|p| p.id == project || p.number.to_string() == project)
        .and_then(|p| world.iam_roles.get(&format!("projects/{}/roles/{role_id}", p.id)))
        .is_some_and(|role| role.deleted_at.is_none())
}

/// The role stored under `name`, if any.
pub(super) fn load(world: &World, name: &str) -> Option<StoredRole> {
    world.iam_roles.get(name).cloned()
}

pub(super) fn save(world: &mut World, name: &str, role: &StoredRole) {
    world.iam_roles.insert(name.to_string(), role.clone());
}

/// Forgets roles deleted 37 days ago or more: their ids are free again.
pub(super) fn purge(world: &mut World, now: Duration) {
    world
        .iam_roles
        .retain(|_, role| role.deleted_at.is_none_or(|at| now < at + PURGED_AFTER));
}

/// The full name of a role, with the project id even when `project` is its number; checks the role
/// id and purges expired roles first.
pub(super) fn role_name(
    world: &mut World,
    project: &str,
    role_id: &str,
    now: Duration,
) -> Result<String, ApiError> {
    validate_role_id(role_id)?;
    let project_id = world.project_mut(project)?.id.clone();
    purge(world, now);
    Ok(format!("projects/{project_id}/roles/{role_id}"))
}

pub(super) fn parent_of(name: &str) -> &str {
    name.split("/roles/").next().unwrap_or(name)
}

pub(super) fn role_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("The role named {name} was not found."))
}

/// Google's proto3 JSON: empty values are left out, and `stage` when it is `ALPHA`.
pub(super) fn role_json(name: &str, role: &StoredRole, full: bool) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if !role.title.is_empty() {
        out.insert("title".into(), json!(role.title));
    }
    if !role.description.is_empty() {
        out.insert("description".into(), json!(role.description));
    }
    if full && !role.included_permissions.is_empty() {
        out.insert("includedPermissions".into(), json!(role.included_permissions));
    }
    if role.stage != "ALPHA" {
        out.insert("stage".into(), json!(role.stage));
    }
    out.insert("etag".into(), json!(role.etag));
    if role.deleted_at.is_some() {
        out.insert("deleted".into(), json!(true));
    }
    Value::Object(out)
}
