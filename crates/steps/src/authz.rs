//! What `gcp.authz_extension` and `gcp.authz_policy` share: a resource found again by the
//! name the step chooses, drift on the fields the step sets, and a patch of only those fields.
//!
//! - **Guarantees:** a read never mutates; a patch names exactly the drifted top-level fields
//!   in `updateMask`, so fields the step does not set are left as found.
//! - **Assumptions:** both APIs (Network Services `authzExtensions`, Network Security
//!   `authzPolicies`) answer create and patch with a long-running operation whose response is
//!   the resource, and have no `etag` (Google's discovery documents).
//! - **Caveats:** Google omits a `false` boolean from its answers, so a wanted `false` matches a
//!   missing field; durations are compared by value. Objects (a policy's `target`,
//!   `customProvider`, `httpRules`, an extension's `metadata`) are compared whole: a field Google
//!   added to one would be reported as drift.

use serde_json::{Map, Value};
use sluice_engine::{Change, Outputs, PollOutcome, StepError};
use sluice_gcp::{Api, GcpError, Operation, OperationFamily, PostRetry};

use crate::cloud::Cloud;
use crate::common::{classify, Reading};
use crate::reconcile::{CreateError, Mutated, Verdict};

/// GET `v1/{name}`: the resource, or `None` when it does not exist (or, observing, when the API
/// is not enabled: nothing of it can exist).
pub async fn read(
    cloud: &Cloud,
    api: &Api,
    name: &str,
    reading: Reading,
) -> Result<Option<Value>, StepError> {
    let client = cloud.client().await?;
    match reading.tolerate(client.get(api, &format!("v1/{name}")).await) {
        Ok(found) => Ok(found),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(classify(cloud, &format!("reading {name}"), e)),
    }
}

/// The wanted top-level fields whose live value differs.
fn drifted<'a>(wanted: &'a Map<String, Value>, live: &Value) -> Vec<&'a str> {
    wanted
        .iter()
        .filter(|(key, want)| !same(want, &live[key.as_str()]))
        .map(|(key, _)| key.as_str())
        .collect()
}

/// Converged when no wanted field drifted, else the drift to patch (`what`: "authorization
/// policy").
pub fn verdict(what: &str, name: &str, wanted: &Map<String, Value>, live: &Value) -> Verdict {
    let drifted = drifted(wanted, live);
    if drifted.is_empty() {
        return Verdict::Converged(outputs(name));
    }
    Verdict::Drift(
        Change::update(format!("{what} {name}: set {}", drifted.join(", "))).predicting(outputs(name)),
    )
}

/// Whether a live value is the wanted one as Google shows it: a wanted `false` matches a missing
/// field, and durations match by value (Google answers `0.5s` as `0.500s`).
fn same(want: &Value, live: &Value) -> bool {
    let seconds = |v: &Value| v.as_str()?.strip_suffix('s')?.parse::<f64>().ok();
    match (want, live) {
        (Value::Bool(false), live) => live != &Value::Bool(true),
        (want, live) if seconds(want).is_some() => seconds(want) == seconds(live),
        (want, live) => want == live,
    }
}

/// POSTs a create to `path` (which carries the id the step chooses, so a repeat answers 409
/// and the reconciler adopts ours) and waits on the operation.
pub async fn create(
    cloud: &Cloud,
    family: OperationFamily,
    path: &str,
    body: Map<String, Value>,
) -> Result<Mutated, CreateError> {
    let client = cloud.client().await?;
    let operation = client
        .post_as(&family.api(), path, &Value::Object(body), PostRetry::Safe)
        .await?;
    Ok(Mutated::Operation(family, operation))
}

/// PATCHes the wanted fields of `name` that drifted from `live` (only those, by `updateMask`)
/// and waits on the operation.
pub async fn patch(
    cloud: &Cloud,
    family: OperationFamily,
    name: &str,
    wanted: &Map<String, Value>,
    live: &Value,
) -> Result<Mutated, StepError> {
    let fields = drifted(wanted, live);
    let body: Map<String, Value> = fields
        .iter()
        .filter_map(|f| wanted.get(*f).map(|v| (f.to_string(), v.clone())))
        .collect();
    let path = format!("v1/{name}?updateMask={}", fields.join(","));
    let client = cloud.client().await?;
    let operation: Operation = client
        .patch_as(&family.api(), &path, &Value::Object(body))
        .await
        .map_err(|e| refused(cloud, &format!("updating {name}"), e))?;
    Ok(Mutated::Operation(family, operation))
}

/// A refusal: Google's limits (400 FAILED_PRECONDITION) and bad values are permanent and say
/// what to change; the rest is classified.
pub fn refused(cloud: &Cloud, doing: &str, e: GcpError) -> StepError {
    if e.is_failed_precondition() || e.is_invalid_argument() {
        return StepError::permanent(format!(
            "{doing}: Google refused it: {e}. Change the plan (or remove what is in the way) and run again"
        ));
    }
    classify(cloud, doing, e)
}

/// A finished create or patch: its response names the resource.
pub fn completed(name: &str, response: &Value) -> PollOutcome {
    let name = response["name"].as_str().unwrap_or(name);
    PollOutcome::Done(outputs(name))
}

pub fn outputs(name: &str) -> Outputs {
    Outputs::from([("name".to_string(), serde_json::json!(name))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drift_ignores_how_google_shows_false_and_durations() {
        let wanted = json!({ "failOpen": false, "timeout": "0.5s", "service": "iap.googleapis.com" });
        let wanted = wanted.as_object().unwrap();
        let live = json!({ "timeout": "0.500s", "service": "iap.googleapis.com" });
        assert!(drifted(wanted, &live).is_empty());
        let live = json!({ "failOpen": true, "timeout": "1s", "service": "x" });
        assert_eq!(drifted(wanted, &live), ["failOpen", "service", "timeout"]);
    }
}
