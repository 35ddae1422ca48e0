//! IAM Credentials v1 (`iamcredentials.v1.json`): `generateAccessToken`, the call behind
//! service-account impersonation (`--impersonate-service-account`, `impersonated_service_account`
//! files, and `external_account` files with a `service_account_impersonation_url`).
//!
//! `POST v1/projects/-/serviceAccounts/{email}:generateAccessToken {scope, lifetime, delegates}`
//! answers `{accessToken, expireTime}`. As Google: the project must be the `-` wildcard, `scope`
//! is required, `lifetime` is at most 3600 s (the default without an org policy extending it),
//! and the account must be a service account. The caller's bearer token is checked by the
//! router like every API call; the emulator does not model who may impersonate whom.

use axum::http::Method;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::router::Call;
use crate::{encoding, Emulator};

/// Google's default and maximum `lifetime` without the org policy that extends it.
const MAX_LIFETIME_SECONDS: f64 = 3600.0;

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    match (&call.method, segments.as_slice(), call.verb.as_deref()) {
        (
            &Method::POST,
            ["v1", "projects", project, "serviceAccounts", account],
            Some("generateAccessToken"),
        ) => Some(generate_access_token(emulator, project, account, &call.body)),
        _ => None,
    }
}

fn generate_access_token(
    emulator: &Emulator,
    project: &str,
    account: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    if project != "-" {
        return Err(ApiError::invalid_argument(
            "The `-` wildcard character is required in the resource name: projects/-/serviceAccounts/{ACCOUNT}.",
        ));
    }
    let scopes: Vec<&str> = body["scope"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if scopes.is_empty() {
        return Err(ApiError::invalid_argument("Scope is required."));
    }
    let lifetime = match body.get("lifetime") {
        None | Some(Value::Null) => MAX_LIFETIME_SECONDS,
        Some(value) => value
            .as_str()
            .and_then(|text| text.strip_suffix('s'))
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n > 0.0)
            .ok_or_else(|| ApiError::invalid_argument(format!("Invalid lifetime: {value}")))?,
    };
    if lifetime > MAX_LIFETIME_SECONDS {
        return Err(ApiError::invalid_argument(format!(
            "The lifetime {lifetime}s exceeds the maximum of {MAX_LIFETIME_SECONDS}s; an org policy \
             (constraints/iam.allowServiceAccountCredentialLifetimeExtension) is needed for more."
        )));
    }
    if !account.ends_with(".gserviceaccount.com") || !account.contains('@') {
        return Err(ApiError::not_found(format!(
            "Not found; Gaia id not found for email {account}"
        )));
    }
    let expires = emulator.clock.now() + std::time::Duration::from_secs_f64(lifetime);
    Ok(json!({
        "accessToken": super::oauth2::issue(emulator, &format!("serviceAccount:{account}"), &scopes.join(" ")),
        "expireTime": encoding::timestamp(expires),
    }))
}
