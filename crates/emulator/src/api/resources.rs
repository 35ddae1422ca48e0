//! What the resource APIs (Network Services, Network Security, Vertex AI, Agent Registry) answer
//! alike: Google's list paging (`pageSize`, an opaque `pageToken` naming the last resource
//! served), a body's settable fields, a top-level `updateMask`, etags, and `requestId`
//! de-duplication.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::encoding::timestamp;
use crate::error::ApiError;
use crate::ops::Operation;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// `pageSize`: 50 when absent or 0, at most 1,000; a negative or non-number is refused.
pub fn page_size(call: &Call) -> Result<usize, ApiError> {
    match call.query("pageSize") {
        None | Some("") => Ok(DEFAULT_PAGE_SIZE),
        Some(size) => match size.parse::<i32>() {
            Ok(0) => Ok(DEFAULT_PAGE_SIZE),
            Ok(n) if n > 0 => Ok((n as usize).min(MAX_PAGE_SIZE)),
            _ => Err(ApiError::invalid_argument(format!(
                "Invalid value for pageSize: \"{size}\""
            ))),
        },
    }
}

/// The resource name a `pageToken` resumes after; the token must come from a list under
/// `prefix`.
pub fn resume_after(call: &Call, prefix: &str) -> Result<Option<String>, ApiError> {
    let Some(token) = call.query("pageToken").filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    token
        .strip_prefix("after:")
        .filter(|name| name.starts_with(prefix))
        .map(|name| Some(name.to_string()))
        .ok_or_else(|| ApiError::invalid_argument(format!("Invalid page token \"{token}\"")))
}

/// One page of `items` (sorted by name) under `key`, with `nextPageToken` when more remain.
pub fn page(items: Vec<(String, Value)>, key: &str, page_size: usize, after: Option<String>) -> Value {
    let matching: Vec<(String, Value)> = items
        .into_iter()
        .filter(|(name, _)| after.as_ref().is_none_or(|after| name > after))
        .collect();
    let more = matching.len() > page_size;
    let page = &matching[..matching.len().min(page_size)];
    let mut out = json!({ key: page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>() });
    if let (true, Some((last, _))) = (more, page.last()) {
        out["nextPageToken"] = json!(format!("after:{last}"));
    }
    out
}

/// The `updatable` fields of `body` (a `type_name` object), refusing anything but an object.
pub fn settable_fields(
    body: &Value,
    updatable: &[&str],
    type_name: &str,
) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Null => Ok(Map::new()),
        Value::Object(object) => Ok(object
            .iter()
            .filter(|(k, _)| updatable.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()),
        other => Err(ApiError::invalid_argument(format!(
            "Invalid JSON payload received. Expected {type_name} object, got {other}"
        ))),
    }
}

/// The top-level fields an `updateMask` names (a nested path selects its top-level field);
/// every updatable field when there is no mask.
pub fn top_level_mask(
    call: &Call,
    updatable: &[&'static str],
    type_name: &str,
) -> Result<Vec<&'static str>, ApiError> {
    let Some(mask) = call.query("updateMask").filter(|m| !m.trim().is_empty()) else {
        return Ok(updatable.to_vec());
    };
    mask.split(',')
        .map(str::trim)
        .map(|path| {
            let top = path.split('.').next().unwrap_or_default();
            let top = crate::discovery::snake_to_camel(top);
            updatable.iter().copied().find(|f| *f == top).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "Invalid field mask path \"{path}\": not an updatable field of {type_name}."
                ))
            })
        })
        .collect()
}

/// A fresh opaque etag.
pub fn new_etag(world: &mut World) -> String {
    format!("{:016x}", world.next_id().wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// How long a `requestId` de-duplicates retries, in emulated seconds (Google: at least 60 minutes).
pub const REQUEST_ID_SECONDS: f64 = 3600.0;

/// A UUID in its 8-4-4-4-12 hex form, not all zeros, as Google's `requestId`s must be.
pub fn valid_request_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
        && id.bytes().any(|b| b != b'0' && b != b'-')
}

/// The call's `requestId`, if it has one; a malformed one is refused.
pub fn request_id(call: &Call) -> Result<Option<String>, ApiError> {
    match call.query("requestId").filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(id) if valid_request_id(id) => Ok(Some(id.to_ascii_lowercase())),
        Some(id) => Err(ApiError::invalid_argument(format!(
            "Invalid requestId \"{id}\": it must be a valid non-zero UUID."
        ))),
    }
}

/// The operation an earlier `verb` call on `target` with the same request id started, while
/// the id still de-duplicates: a repeated call answers it again and changes nothing.
pub fn repeated(
    world: &World,
    now: Duration,
    target: &str,
    verb: &str,
    request: &Option<String>,
) -> Option<Value> {
    let request = request.as_ref()?;
    let key = (target.to_string(), verb.to_string(), request.clone());
    let (operation, until) = world.request_ids.get(&key)?;
    if now >= *until {
        return None;
    }
    world.operations.get(operation).map(|op| op.to_json(now))
}

/// Remembers that `request` started `operation` (its JSON) for a `verb` call on `target`, until
/// `until`.
pub fn remember_request(
    world: &mut World,
    (target, verb): (&str, &str),
    request: Option<String>,
    operation: &Value,
    until: Duration,
) {
    if let (Some(request), Some(name)) = (request, operation["name"].as_str()) {
        world.request_ids.insert(
            (target.to_string(), verb.to_string(), request),
            (name.to_string(), until),
        );
    }
}

/// Starts an operation on `target` (`verb`: create, update, delete) under `parent`, with
/// metadata of `metadata_type` (the API's `OperationMetadata`), finishing after `seconds`. The
/// operation is named `{parent}/operations/operation-N`, as Network Services and Network
/// Security both name theirs.
pub fn start_typed_operation(
    emulator: &Emulator,
    world: &mut World,
    parent: &str,
    (target, verb): (&str, &str),
    (metadata_type, seconds): (&str, f64),
    outcome: Result<Value, ApiError>,
) -> Value {
    let now = emulator.clock.now();
    let done_at = emulator.clock.after(seconds);
    let id = world.next_id();
    let operation = Operation {
        name: format!("{parent}/operations/operation-{id}"),
        done_at,
        metadata: json!({
            "@type": metadata_type,
            "createTime": timestamp(now),
            "target": target,
            "verb": verb,
            "requestedCancellation": false,
            "apiVersion": "v1",
        }),
        outcome,
    };
    let body = operation.to_json(now);
    world.operations.insert(operation);
    body
}
