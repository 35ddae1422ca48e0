//! Cloud Billing v1 (`cloudbilling.v1.json`): projects.getBillingInfo,
//! projects.updateBillingInfo and billingAccounts.get, over the configured `billing_accounts`.
//!
//! Modelled on Google's documentation: linking needs `billing.resourceAssociations.create` on
//! the account, and an account the caller cannot use is indistinguishable from one that does
//! not exist (403 PERMISSION_DENIED); a closed account takes no projects (400
//! FAILED_PRECONDITION); an account holds at most `max_projects` projects (400
//! FAILED_PRECONDITION, "Cloud billing quota exceeded"); an empty `billingAccountName` unlinks.
//! `billingEnabled` is true when the project is linked to an open account. Cloud Billing is
//! client-based ([`crate::config::EmulatorConfig::api_kinds`]).

use axum::http::Method;
use serde_json::{json, Value};

use crate::config::BillingAccountConfig;
use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    Some(match (&call.method, segments.as_slice()) {
        (&Method::GET, ["v1", "projects", key, "billingInfo"]) => info(emulator, key),
        (&Method::PUT, ["v1", "projects", key, "billingInfo"]) => update(emulator, key, &call.body),
        (&Method::GET, ["v1", "billingAccounts", id]) => {
            let name = format!("billingAccounts/{id}");
            account(emulator, &name).map(account_json)
        }
        _ => return None,
    })
}

fn account<'a>(emulator: &'a Emulator, name: &str) -> Result<&'a BillingAccountConfig, ApiError> {
    emulator
        .config
        .billing_accounts
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            ApiError::permission_denied(format!(
                "The caller does not have permission (billing.resourceAssociations.create on {name}, or the account does not exist)."
            ))
            .with_error_info(
                "IAM_PERMISSION_DENIED",
                "cloudbilling.googleapis.com",
                json!({ "permission": "billing.resourceAssociations.create", "resource": name }),
            )
        })
}

fn account_json(account: &BillingAccountConfig) -> Value {
    json!({
        "name": account.name, "open": account.open, "displayName": account.display_name,
        "currencyCode": "USD",
    })
}

fn info(emulator: &Emulator, key: &str) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let id = world.project_mut(key)?.id.clone();
    let linked = world.billing_links.get(&id).cloned().unwrap_or_default();
    Ok(info_json(emulator, &id, &linked))
}

fn info_json(emulator: &Emulator, id: &str, linked: &str) -> Value {
    let open = emulator
        .config
        .billing_accounts
        .iter()
        .any(|a| a.name == linked && a.open);
    json!({
        "name": format!("projects/{id}/billingInfo"), "projectId": id,
        "billingAccountName": linked, "billingEnabled": open,
    })
}

fn update(emulator: &Emulator, key: &str, body: &Value) -> Result<Value, ApiError> {
    let wanted = body["billingAccountName"].as_str().unwrap_or_default();
    let mut world = emulator.world();
    let id = world.project_mut(key)?.id.clone();
    if wanted.is_empty() {
        world.billing_links.remove(&id);
        return Ok(info_json(emulator, &id, ""));
    }
    let account = account(emulator, wanted)?;
    if world.billing_links.get(&id).map(String::as_str) == Some(wanted) {
        return Ok(info_json(emulator, &id, wanted));
    }
    if !account.open {
        return Err(ApiError::failed_precondition(format!(
            "Billing account {wanted} is closed: it cannot be linked to projects."
        ))
        .with_error_info(
            "BILLING_ACCOUNT_CLOSED",
            "cloudbilling.googleapis.com",
            json!({ "billingAccount": wanted }),
        ));
    }
    let held = world.billing_links.values().filter(|a| *a == wanted).count();
    if let Some(max) = account.max_projects {
        if held >= max as usize {
            return Err(ApiError::failed_precondition(format!(
                "Cloud billing quota exceeded: billing account {wanted} already has the {max} projects it may hold. Unlink a project, request a higher limit, or use another account."
            ))
            .with_error_info(
                "BILLING_QUOTA_EXCEEDED",
                "cloudbilling.googleapis.com",
                json!({ "billingAccount": wanted }),
            ));
        }
    }
    world.billing_links.insert(id.clone(), wanted.to_string());
    Ok(info_json(emulator, &id, wanted))
}
