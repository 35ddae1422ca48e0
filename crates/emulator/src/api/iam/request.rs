//! Reading a `Role` from a request: lowerCamelCase or snake_case names, unknown fields refused,
//! each field's type checked.

use serde_json::{Map, Value};

use super::validation::normalise_etag;
use super::{ROLE_FIELDS, STAGES};
use crate::error::ApiError;

/// A `Role` in a request; `None` for a field that is absent or null.
#[derive(Debug, Default)]
pub(super) struct RoleInput {
    pub(super) name: Option<String>,
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) permissions: Option<Vec<String>>,
    pub(super) stage: Option<&'static str>,
    /// Normalised (see [`normalise_etag`]); `None` when empty.
    pub(super) etag: Option<String>,
}

impl RoleInput {
    /// `at` is where the role sits in the request (`role` in CreateRoleRequest, empty for the body).
    pub(super) fn parse(value: &Value, at: &str) -> Result<Self, ApiError> {
        let role = object(value, at)?;
        check_fields(&role, &ROLE_FIELDS, at)?;
        let permissions = match field(&role, ("includedPermissions", "included_permissions")) {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_string).ok_or_else(|| {
                            invalid_value(&path(at, "includedPermissions"), "TYPE_STRING", item)
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => {
                return Err(invalid_value(
                    &path(at, "includedPermissions"),
                    "TYPE_STRING",
                    other,
                ))
            }
        };
        let stage = match string_field(&role, ("stage", "stage"), at)? {
            None => None,
            Some(stage) => Some(*STAGES.iter().find(|s| **s == stage).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid value at '{}' (type.googleapis.com/google.iam.admin.v1.Role.RoleLaunchStage), \"{stage}\" (one of {})",
                    path(at, "stage"),
                    STAGES.join(", ")
                ))
            })?),
        };
        if let Some(deleted) = field(&role, ("deleted", "deleted")) {
            if !deleted.is_boolean() {
                return Err(invalid_value(&path(at, "deleted"), "TYPE_BOOL", deleted));
            }
        }
        let etag = match string_field(&role, ("etag", "etag"), at)? {
            Some(etag) => Some(normalise_etag(&etag, &path(at, "etag"))?).filter(|e| !e.is_empty()),
            None => None,
        };
        Ok(RoleInput {
            name: string_field(&role, ("name", "name"), at)?,
            title: string_field(&role, ("title", "title"), at)?,
            description: string_field(&role, ("description", "description"), at)?,
            permissions,
            stage,
            etag,
        })
    }
}

/// The request object at `at`; an absent body or null is an empty object.
pub(super) fn object(value: &Value, at: &str) -> Result<Map<String, Value>, ApiError> {
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map.clone()),
        other => Err(ApiError::invalid_argument(format!(
            "Invalid JSON payload received. Expected an object{}, got {other}",
            if at.is_empty() {
                String::new()
            } else {
                format!(" at '{at}'")
            }
        ))),
    }
}

/// Google's answer to a field the message does not have.
pub(super) fn check_fields(
    object: &Map<String, Value>,
    known: &[(&str, &str)],
    at: &str,
) -> Result<(), ApiError> {
    match object
        .keys()
        .find(|key| !known.iter().any(|(camel, snake)| key == camel || key == snake))
    {
        None => Ok(()),
        Some(key) => Err(ApiError::invalid_argument(format!(
            "Invalid JSON payload received. Unknown name \"{key}\"{}: Cannot find field.",
            if at.is_empty() {
                String::new()
            } else {
                format!(" at '{at}'")
            }
        ))),
    }
}

/// A field by its lowerCamelCase or snake_case name; null counts as absent.
pub(super) fn field<'a>(object: &'a Map<String, Value>, (camel, snake): (&str, &str)) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|v| !v.is_null())
}

pub(super) fn string_field(
    object: &Map<String, Value>,
    names: (&str, &str),
    at: &str,
) -> Result<Option<String>, ApiError> {
    match field(object, names) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid_value(&path(at, names.0), "TYPE_STRING", other)),
    }
}

pub(super) fn invalid_value(at: &str, kind: &str, value: &Value) -> ApiError {
    ApiError::invalid_argument(format!(
        "Invalid JSON payload received. Invalid value at '{at}' ({kind}), {value}"
    ))
}

pub(super) fn path(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_string()
    } else {
        format!("{at}.{field}")
    }
}
