//! Checks of role ids, titles, permissions, update masks and etags, as Google answers them.

use super::{StoredRole, KNOWN_PERMISSIONS, MAX_TITLE_BYTES, UPDATABLE};
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;

pub(super) fn validate_role_id(role_id: &str) -> Result<(), ApiError> {
    let valid = (3..=64).contains(&role_id.len())
        && role_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_argument(format!(
            "The role_id ({role_id}) is not valid: it must be 3 to 64 letters, digits, underscores (_) and periods (.)."
        )))
    }
}

pub(super) fn validate_title(title: &str) -> Result<(), ApiError> {
    if title.len() > MAX_TITLE_BYTES {
        return Err(ApiError::invalid_argument(format!(
            "The role title is limited to {MAX_TITLE_BYTES} UTF-8 bytes; this one has {}.",
            title.len()
        )));
    }
    Ok(())
}

/// The permissions sorted and without duplicates, or 400 naming every unknown one.
pub(super) fn validate_permissions(mut permissions: Vec<String>) -> Result<Vec<String>, ApiError> {
    permissions.sort();
    permissions.dedup();
    let unknown: Vec<&str> = permissions
        .iter()
        .map(String::as_str)
        .filter(|p| !KNOWN_PERMISSIONS.contains(p))
        .collect();
    match unknown.as_slice() {
        [] => Ok(permissions),
        [one] => Err(ApiError::invalid_argument(format!(
            "Permission {one} is not valid."
        ))),
        many => Err(ApiError::invalid_argument(format!(
            "Permissions {} are not valid.",
            many.join(", ")
        ))),
    }
}

/// The fields the update mask names (lowerCamelCase), all four when there is no mask.
pub(super) fn update_mask(call: &Call) -> Result<Vec<&'static str>, ApiError> {
    let paths: Vec<&str> = call
        .query_all("updateMask")
        .into_iter()
        .flat_map(|mask| mask.split(','))
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .collect();
    if paths.is_empty() {
        return Ok(UPDATABLE.iter().map(|(camel, _)| *camel).collect());
    }
    let mut mask = Vec::new();
    for path in paths {
        let Some((camel, _)) = UPDATABLE.iter().find(|(c, s)| path == *c || path == *s) else {
            return Err(ApiError::invalid_argument(format!(
                "Invalid update_mask: \"{path}\" is not an updatable field of Role (title, description, includedPermissions, stage)."
            )));
        };
        if !mask.contains(camel) {
            mask.push(*camel);
        }
    }
    Ok(mask)
}

/// 409 ABORTED when `given` (already normalised) is set and is not the role's current etag.
pub(super) fn check_etag(given: Option<&str>, role: &StoredRole) -> Result<(), ApiError> {
    match given {
        Some(given) if normalise_etag(&role.etag, "etag").ok().as_deref() != Some(given) => {
            Err(ApiError::aborted(
                "The etag does not match the role's current etag: the role was changed since it \
                      was read. Read it again and retry.",
            ))
        }
        _ => Ok(()),
    }
}

/// A base64 etag in a comparable form: standard alphabet, no padding. A `+` that a query string
/// turned into a space is taken back, and the URL-safe alphabet is accepted.
pub(super) fn normalise_etag(etag: &str, at: &str) -> Result<String, ApiError> {
    let normal: String = etag
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            ' ' | '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let valid = normal.len() % 4 != 1
        && normal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if valid {
        Ok(normal)
    } else {
        Err(ApiError::invalid_argument(format!(
            "Invalid value at '{at}' (TYPE_BYTES), Base64 decoding failed for \"{etag}\""
        )))
    }
}

pub(super) fn new_etag(world: &mut World) -> String {
    crate::encoding::etag(world.next_id())
}

pub(super) fn to_hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn from_hex(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}
