//! What every `gcp.*` kind shares: parameters, the mapping of Google errors to step error
//! classes, and operation handles.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sluice_engine::{OperationHandle, PollOutcome, StepContext, StepError};
use sluice_gcp::{Api, Code, GcpClient, GcpError, GoogleOperation, Operation, OperationFamily, Page};

use crate::cloud::Cloud;

/// A required, non-empty string parameter.
pub fn text<'a>(cx: &'a StepContext, name: &str) -> Result<&'a str, StepError> {
    let value = cx.str_param(name)?;
    if value.trim().is_empty() {
        return Err(StepError::permanent(format!(
            "step `{}`: parameter `{name}` is empty; give it a value",
            cx.step_id
        )));
    }
    Ok(value)
}

/// An optional string parameter; empty counts as absent.
pub fn optional_text<'a>(cx: &'a StepContext, name: &str) -> Option<&'a str> {
    cx.params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// A list-of-strings parameter (absent = empty).
pub fn strings(cx: &StepContext, name: &str) -> Result<Vec<String>, StepError> {
    match cx.params.get(name) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
                other => Err(StepError::permanent(format!(
                    "step `{}`: parameter `{name}` must be a list of non-empty strings, found {other}",
                    cx.step_id
                ))),
            })
            .collect(),
        Some(other) => Err(StepError::permanent(format!(
            "step `{}`: parameter `{name}` must be a list of strings, found {other}",
            cx.step_id
        ))),
    }
}

/// A boolean parameter with a default.
pub fn flag(cx: &StepContext, name: &str, default: bool) -> Result<bool, StepError> {
    match cx.params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(StepError::permanent(format!(
            "step `{}`: parameter `{name}` must be true or false, found {other}",
            cx.step_id
        ))),
    }
}

/// Classifies a failed call for the engine: transient → retryable (with the server's delay),
/// eventual consistency → not yet, anything else → permanent. `doing` says what the step was
/// doing ("reading custom role X"), so the message stands alone.
pub fn classify(cloud: &Cloud, doing: &str, error: GcpError) -> StepError {
    let delay = error.retry_delay.map(|d| cloud.scaled(d));
    if error.is_service_never_enabled() {
        // DISABLED in Service Usage: nothing enabled it, so waiting cannot help.
        let service = error.error_info("service").unwrap_or("the API");
        let consumer = error.error_info("consumer").unwrap_or("the project");
        let project = consumer.strip_prefix("projects/").unwrap_or(consumer);
        return StepError::permanent(format!(
            "{doing}: {service} is not enabled in {consumer} (SERVICE_DISABLED, and Service Usage \
             reports it DISABLED). Enable it: add it to the plan's `gcp.services` step, or run \
             `gcloud services enable {service} --project {project}`; then resume"
        ));
    }
    if error.is_service_disabled() {
        let service = error.error_info("service").unwrap_or("the API");
        return StepError::NotYet {
            message: format!(
                "{doing}: {service} is not usable in the project yet (SERVICE_DISABLED; it takes minutes \
                 after being enabled)"
            ),
            delay: Some(cloud.scaled(Duration::from_secs(5))),
        };
    }
    if error.is_member_missing() {
        return StepError::NotYet {
            message: format!("{doing}: a member does not exist yet (service agents appear late): {error}"),
            delay: Some(cloud.scaled(Duration::from_secs(5))),
        };
    }
    if error.is_retryable() || error.is_aborted() {
        return StepError::Retryable {
            message: format!("{doing}: {error}"),
            delay,
        };
    }
    if error.is_permission_denied() || error.is_unauthenticated() {
        return StepError::permanent(format!(
            "{doing}: {error}. The caller lacks a permission this step needs; README \"Permissions\" lists them"
        ));
    }
    StepError::permanent(format!("{doing}: {error}"))
}

/// A read that answers "API not usable" counts as finding nothing: nothing of that API can
/// exist in a project where it was never enabled, and where it was just enabled a create fails
/// the same way and is retried as not yet. So `sluice plan` can list a fresh project's creates.
pub fn absent_if_disabled<T>(result: Result<T, GcpError>) -> Result<Option<T>, GcpError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_service_disabled() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// GET `path` on `api`: the resource, or `None` when it does not exist (404).
pub async fn read_optional(
    cloud: &Cloud,
    api: &Api,
    path: &str,
    doing: &str,
) -> Result<Option<Value>, StepError> {
    match cloud.client().await?.get(api, path).await {
        Ok(found) => Ok(Some(found)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(classify(cloud, doing, e)),
    }
}

/// How a step reads: `observe` counts a disabled API as finding nothing (so `sluice plan` lists
/// creates); `apply` re-reads strictly, so a disabled API is a not-yet error before any
/// mutation is sent, instead of a create that is bound to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Observe,
    Apply,
}

impl Reading {
    pub fn tolerate<T>(self, result: Result<T, GcpError>) -> Result<Option<T>, GcpError> {
        match self {
            Reading::Observe => absent_if_disabled(result),
            Reading::Apply => result.map(Some),
        }
    }
}

/// Walks the list at `path` (which has a query already) page by page, handing every item
/// under `key` to `visit` until it returns `Some`: that is the answer, and no further page is
/// read. `Ok(None)` when no item was chosen, or when `reading` counts a disabled API as
/// holding nothing (see [`Reading`]).
pub async fn find_in_pages<T>(
    client: &GcpClient,
    api: &Api,
    path: &str,
    key: &str,
    reading: Reading,
    mut visit: impl FnMut(&Value) -> Option<T>,
) -> Result<Option<T>, GcpError> {
    let mut token: Option<String> = None;
    loop {
        let mut page_path = path.to_string();
        if let Some(token) = &token {
            page_path.push_str(&format!("&pageToken={}", encode(token)));
        }
        let Some(page) = reading.tolerate(client.get_as::<Page>(api, &page_path).await)? else {
            return Ok(None);
        };
        if let Some(found) = page[key].as_array().into_iter().flatten().find_map(&mut visit) {
            return Ok(Some(found));
        }
        match page["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(None),
        }
    }
}

/// Every item under `key` of the list at `path`, all pages (see [`find_in_pages`]); none
/// when `reading` counts a disabled API as holding nothing.
pub async fn list_all(
    client: &GcpClient,
    api: &Api,
    path: &str,
    key: &str,
    reading: Reading,
) -> Result<Vec<Value>, GcpError> {
    let mut items = Vec::new();
    find_in_pages(client, api, path, key, reading, |item| {
        items.push(item.clone());
        None::<()>
    })
    .await?;
    Ok(items)
}

/// A handle to persist, from its typed form: every handle a kind stores is a serde type, so
/// writing and reading it back cannot disagree about its shape.
pub fn stored_handle<T: Serialize>(handle: &T) -> OperationHandle {
    // The handle types here are plain structs of strings, numbers and booleans, which always
    // serialise; Null would only be refused when read back.
    OperationHandle(serde_json::to_value(handle).unwrap_or(Value::Null))
}

/// Reads a stored handle back into its type; a damaged one (or one another kind wrote) is a
/// permanent error naming it.
pub fn read_stored<T: DeserializeOwned>(cx: &StepContext, handle: &OperationHandle) -> Result<T, StepError> {
    // INVARIANT: a stored handle is read only through its type's serde, the one definition of
    // its shape; anything else is refused, never guessed at.
    T::deserialize(&handle.0).map_err(|why| {
        StepError::permanent(format!(
            "step `{}`: operation handle {} is not one this kind wrote ({why})",
            cx.step_id, handle.0
        ))
    })
}

/// The persisted handle of a Google operation: its family and name, serialised as a
/// [`GoogleOperation`] (`{"family", "region", "name"}`, the shape every version stored).
pub fn handle(family: &OperationFamily, name: &str) -> OperationHandle {
    stored_handle(&GoogleOperation {
        family: family.clone(),
        name: name.to_string(),
    })
}

/// Reads a Google operation's handle back; a damaged one is a permanent error naming it.
pub fn family_and_name(
    cx: &StepContext,
    handle: &OperationHandle,
) -> Result<(OperationFamily, String), StepError> {
    let operation: GoogleOperation = read_stored(cx, handle)?;
    Ok((operation.family, operation.name))
}

/// One look at an operation (a long poll for Vertex AI): pending, or its finished result.
/// A finished operation's error is classified like a call's: a not-usable-yet or permission
/// problem inside it sends the step back to observe.
pub async fn poll_once(
    cloud: &Cloud,
    cx: &StepContext,
    handle: &OperationHandle,
) -> Result<Result<Value, PollOutcome>, StepError> {
    let (family, name) = family_and_name(cx, handle)?;
    let client = cloud.client().await?;
    let operation = match client
        .wait_operation(&family, &name, Duration::from_secs(300))
        .await
    {
        Ok(operation) => operation,
        // Google no longer knows it (operations expire): nothing is left to wait on, so the
        // step observes again rather than failing on it for good.
        Err(e) if e.is_not_found() => {
            return Ok(Err(PollOutcome::Failed(StepError::retryable(format!(
                "operation {name} is no longer known ({e}); observing again"
            )))))
        }
        Err(e) => return Err(classify(cloud, &format!("reading operation {name}"), e)),
    };
    Ok(finished(cloud, operation))
}

/// `Ok(response)` for a finished successful operation; otherwise what to tell the engine.
pub fn finished(cloud: &Cloud, operation: Operation) -> Result<Value, PollOutcome> {
    if !operation.done {
        let progress = operation
            .metadata
            .as_ref()
            .and_then(|m| m["verb"].as_str().or(m["statusMessage"].as_str()))
            .map(|v| format!("{v}: {}", operation.name))
            .or_else(|| Some(operation.name.clone()));
        return Err(PollOutcome::Pending { progress });
    }
    match operation.error {
        None => Ok(operation.response.unwrap_or(Value::Null)),
        Some(error) => {
            let message = format!("operation {} failed: {error}", operation.name);
            let outcome = match error.code {
                // Google's own transient failures.
                Code::Internal | Code::Unavailable | Code::Aborted | Code::DeadlineExceeded => {
                    StepError::Retryable {
                        message,
                        delay: Some(cloud.scaled(Duration::from_secs(2))),
                    }
                }
                // Usually a grant still propagating.
                Code::FailedPrecondition | Code::PermissionDenied => StepError::NotYet {
                    message,
                    delay: Some(cloud.scaled(Duration::from_secs(10))),
                },
                _ => StepError::permanent(message),
            };
            Err(PollOutcome::Failed(outcome))
        }
    }
}

/// The number in `projects/123…` (Resource Manager names projects by number).
pub fn number_of(name: &str) -> Option<String> {
    name.strip_prefix("projects/")
        .filter(|n| crate::checks::numeric(n))
        .map(str::to_string)
}

/// A stable, label-safe token for an idempotency key (16 lowercase hex digits).
pub fn key_token(key: &str) -> String {
    // FNV-1a 64: stable across versions and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tokens_are_stable_and_label_safe() {
        assert_eq!(key_token("abc/step"), key_token("abc/step"));
        assert_ne!(key_token("abc/step"), key_token("abc/other"));
        let token = key_token("x");
        assert_eq!(token.len(), 16);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    fn context() -> StepContext {
        StepContext {
            run_id: "run".into(),
            step_id: "deploy".into(),
            params: serde_json::Map::new(),
            idempotency_key: "run/deploy".into(),
            attempt: 1,
        }
    }

    #[test]
    fn handles_stored_by_earlier_versions_read_back() {
        let stored = OperationHandle(serde_json::json!({"family": "vertex_ai",
            "region": "europe-west4", "name": "projects/1/locations/europe-west4/operations/9"}));
        let (family, name) = family_and_name(&context(), &stored).unwrap();
        assert_eq!(
            family,
            OperationFamily::VertexAi {
                region: "europe-west4".into()
            }
        );
        assert_eq!(name, "projects/1/locations/europe-west4/operations/9");
        assert_eq!(handle(&family, &name), stored, "written as it was");
        let stored = OperationHandle(serde_json::json!({"family": "resource_manager",
            "region": null, "name": "operations/cp.4"}));
        assert_eq!(
            family_and_name(&context(), &stored).unwrap(),
            (OperationFamily::ResourceManager, "operations/cp.4".to_string())
        );
        assert_eq!(
            handle(&OperationFamily::ResourceManager, "operations/cp.4"),
            stored
        );
    }

    #[test]
    fn a_damaged_handle_is_a_permanent_error_naming_it() {
        for damaged in [
            serde_json::json!({"family": "vertex_ai", "region": null, "name": "operations/x"}),
            serde_json::json!({"family": "compute", "region": null, "name": "operations/x"}),
            serde_json::json!({"family": "service_usage", "region": null}),
            serde_json::json!(null),
        ] {
            let error = family_and_name(&context(), &OperationHandle(damaged.clone())).unwrap_err();
            assert!(matches!(error, StepError::Permanent { .. }), "{error:?}");
            let message = error.message();
            assert!(
                message.contains("step `deploy`") && message.contains(&damaged.to_string()),
                "{message}"
            );
        }
    }

    #[test]
    fn project_numbers_come_from_names() {
        assert_eq!(number_of("projects/123").as_deref(), Some("123"));
        assert_eq!(number_of("projects/demo"), None);
        assert_eq!(number_of("folders/1"), None);
    }
}
