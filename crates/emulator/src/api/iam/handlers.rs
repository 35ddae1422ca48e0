//! The handlers of projects.roles: create, get, patch, delete, undelete, list.

use std::ops::Bound;

use serde_json::{Map, Value};

use super::request::{check_fields, field, object, string_field, RoleInput};
use super::storage::{load, parent_of, purge, role_json, role_name, role_not_found, save};
use super::validation::{
    check_etag, from_hex, new_etag, normalise_etag, to_hex, update_mask, validate_permissions,
    validate_role_id, validate_title,
};
use super::{StoredRole, DEFAULT_PAGE_SIZE, DEFAULT_STAGE, MAX_PAGE_SIZE, UNDELETE_WINDOW};
use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

pub(super) fn create(emulator: &Emulator, project: &str, body: &Value) -> Result<Value, ApiError> {
    let body = object(body, "")?;
    check_fields(&body, &[("roleId", "role_id"), ("role", "role")], "")?;
    let role_id = string_field(&body, ("roleId", "role_id"), "")?.unwrap_or_default();
    validate_role_id(&role_id)?;
    let input = match field(&body, ("role", "role")) {
        Some(role) => RoleInput::parse(role, "role")?,
        None => RoleInput::default(),
    };
    if input.name.as_deref().is_some_and(|name| !name.is_empty()) {
        return Err(ApiError::invalid_argument(
            "The role name must not be set when creating a role: it is made from the parent and the role_id.",
        ));
    }
    let title = input.title.unwrap_or_default();
    validate_title(&title)?;
    let included_permissions = validate_permissions(input.permissions.unwrap_or_default())?;
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, &role_id, now)?;
    if let Some(existing) = load(&world, &name) {
        return Err(match existing.deleted_at {
            Some(_) => ApiError::failed_precondition(format!(
                "You can't create a role_id ({role_id}) which has been marked for deletion. Undelete it \
                 (POST v1/{name}:undelete) within 7 days of the delete, or choose another role_id: a \
                 deleted role_id can be reused only 37 days after the delete."
            )),
            None => ApiError::already_exists(format!(
                "A role named {role_id} in {} already exists.",
                parent_of(&name)
            )),
        });
    }
    let role = StoredRole {
        title,
        description: input.description.unwrap_or_default(),
        included_permissions,
        stage: input.stage.unwrap_or(DEFAULT_STAGE).to_string(),
        etag: new_etag(&mut world),
        deleted_at: None,
    };
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

pub(super) fn get(emulator: &Emulator, project: &str, role_id: &str) -> Result<Value, ApiError> {
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    Ok(role_json(&name, &role, true))
}

pub(super) fn patch(
    emulator: &Emulator,
    project: &str,
    role_id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let input = RoleInput::parse(&call.body, "")?;
    let mask = update_mask(call)?;
    let title = mask.contains(&"title").then(|| input.title.unwrap_or_default());
    if let Some(title) = &title {
        validate_title(title)?;
    }
    let description = mask
        .contains(&"description")
        .then(|| input.description.unwrap_or_default());
    let permissions = match mask.contains(&"includedPermissions") {
        true => Some(validate_permissions(input.permissions.unwrap_or_default())?),
        false => None,
    };
    let stage = mask
        .contains(&"stage")
        .then(|| input.stage.unwrap_or(DEFAULT_STAGE));
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let mut role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    if role.deleted_at.is_some() {
        return Err(ApiError::failed_precondition(format!(
            "You can't update role_id ({name}) as it is marked for deletion: undelete it first."
        )));
    }
    check_etag(input.etag.as_deref(), &role)?;
    if let Some(title) = title {
        role.title = title;
    }
    if let Some(description) = description {
        role.description = description;
    }
    if let Some(permissions) = permissions {
        role.included_permissions = permissions;
    }
    if let Some(stage) = stage {
        role.stage = stage.to_string();
    }
    role.etag = new_etag(&mut world);
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

pub(super) fn delete(
    emulator: &Emulator,
    project: &str,
    role_id: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let etag = match call.query("etag") {
        Some(etag) => Some(normalise_etag(etag, "etag")?).filter(|e| !e.is_empty()),
        None => None,
    };
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let mut role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    if role.deleted_at.is_some() {
        return Err(ApiError::failed_precondition(format!(
            "You can't delete role_id ({name}) as it is already deleted."
        )));
    }
    check_etag(etag.as_deref(), &role)?;
    role.deleted_at = Some(now);
    role.etag = new_etag(&mut world);
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

pub(super) fn undelete(
    emulator: &Emulator,
    project: &str,
    role_id: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let body = object(body, "")?;
    check_fields(&body, &[("etag", "etag")], "")?;
    let etag = match string_field(&body, ("etag", "etag"), "")? {
        Some(etag) => Some(normalise_etag(&etag, "etag")?).filter(|e| !e.is_empty()),
        None => None,
    };
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let name = role_name(&mut world, project, role_id, now)?;
    let mut role = load(&world, &name).ok_or_else(|| role_not_found(&name))?;
    match role.deleted_at {
        None => {
            return Err(ApiError::failed_precondition(format!(
                "You can't undelete role_id ({name}) as it is not deleted."
            )))
        }
        Some(at) if now >= at + UNDELETE_WINDOW => {
            return Err(ApiError::failed_precondition(format!(
                "You can't undelete role_id ({name}): it was deleted more than 7 days ago and will be \
                 permanently deleted; its role_id can be reused 37 days after the delete."
            )))
        }
        Some(_) => {}
    }
    check_etag(etag.as_deref(), &role)?;
    role.deleted_at = None;
    role.etag = new_etag(&mut world);
    save(&mut world, &name, &role);
    Ok(role_json(&name, &role, true))
}

pub(super) fn list(emulator: &Emulator, project: &str, call: &Call) -> Result<Value, ApiError> {
    let page_size = match call.query("pageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(size) => match size.parse::<i64>() {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) if size > 0 => usize::try_from(size).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
            _ => {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid value for pageSize: \"{size}\" (a non-negative int32; at most {MAX_PAGE_SIZE} are returned)"
                )))
            }
        },
    };
    let show_deleted = match call.query("showDeleted") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for showDeleted: \"{other}\" (true or false)"
            )))
        }
    };
    let full = match call.query("view") {
        None | Some("BASIC") => false,
        Some("FULL") => true,
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Invalid value for view: \"{other}\" (BASIC or FULL)"
            )))
        }
    };
    let now = emulator.clock.now();
    let mut world = emulator.world();
    let project_id = world.project_mut(project)?.id.clone();
    purge(&mut world, now);
    let prefix = format!("projects/{project_id}/roles/");
    let after = match call.query("pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => Some(
            from_hex(token)
                .filter(|last| last.starts_with(&prefix))
                .ok_or_else(|| ApiError::invalid_argument(format!("Invalid page token \"{token}\"")))?,
        ),
    };
    let from = match &after {
        Some(last) => Bound::Excluded(last.as_str()),
        None => Bound::Included(prefix.as_str()),
    };
    let mut page: Vec<(String, StoredRole)> = Vec::new();
    let mut more = false;
    for (name, stored) in world.iam_roles.range::<str, _>((from, Bound::Unbounded)) {
        if !name.starts_with(&prefix) {
            break;
        }
        if stored.deleted_at.is_some() && !show_deleted {
            continue;
        }
        if page.len() == page_size {
            more = true;
            break;
        }
        page.push((name.clone(), stored.clone()));
    }
    let mut response = Map::new();
    if !page.is_empty() {
        let roles = page
            .iter()
            .map(|(name, role)| role_json(name, role, full))
            .collect();
        response.insert("roles".into(), Value::Array(roles));
    }
    if let (true, Some((last, _))) = (more, page.last()) {
        response.insert("nextPageToken".into(), Value::String(to_hex(last)));
    }
    Ok(Value::Object(response))
}
