//! IAM v1 custom roles at project level (`iam.v1.json`): projects.roles create, get, patch, delete,
//! undelete and list. All synchronous (no operations). Roles are named
//! `projects/{PROJECT_ID}/roles/{ROLE_ID}` with the project *id*, even when the path names the project
//! by number.
//!
//! Deletion is soft, as on Google: a deleted role is still returned by get (`"deleted": true`),
//! listed only with `showDeleted=true`, can be undeleted for 7 emulated days, and blocks its role id
//! until it is purged 37 days after the delete; after that it is gone (404) and the id is free.
//!
//! Output follows proto3 JSON as Google does: empty strings and lists and a false `deleted` are
//! omitted, and so is `stage` when it is `ALPHA` (the discovery document says so). Input accepts
//! lowerCamelCase and snake_case names and refuses unknown fields. Permissions are checked against
//! [`KNOWN_PERMISSIONS`], a small stand-in for Google's catalogue.
//!
//! A role created without a stage, or patched with `stage` in the mask and none given, is `ALPHA`:
//! the first value of `Role.stage` in the discovery document, proto3's default, and the stage
//! Google leaves out of its answers.
//!
//! Modelling choices (Google documents none of these): a patch without `updateMask` replaces all four updatable fields; etags are 8 bytes of
//! base64 drawn from the world's id sequence, new on every write.
//!
//! State: `World::iam_roles` maps each full role name to its [`StoredRole`], so a reset clears it.
//! [`role_is_live`] answers for other APIs (setIamPolicy) whether a custom role may be granted.

use std::time::Duration;

use axum::http::Method;
use serde_json::Value;

use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

mod handlers;
mod request;
mod storage;
mod validation;

use handlers::{create, delete, get, list, patch, undelete};
pub use storage::role_is_live;

const DAY: u64 = 24 * 60 * 60;
/// How long after a delete the role can be undeleted.
const UNDELETE_WINDOW: Duration = Duration::from_secs(7 * DAY);
/// How long after a delete the role is purged and its id can be reused.
const PURGED_AFTER: Duration = Duration::from_secs(37 * DAY);
const DEFAULT_PAGE_SIZE: usize = 300;
const MAX_PAGE_SIZE: usize = 1000;
const MAX_TITLE_BYTES: usize = 100;
/// `Role.stage`, in the discovery document's order.
const STAGES: [&str; 6] = ["ALPHA", "BETA", "GA", "DEPRECATED", "DISABLED", "EAP"];
/// An unset stage: proto3's zero value, the first of [`STAGES`].
const DEFAULT_STAGE: &str = STAGES[0];
/// The fields an update mask may name, as (lowerCamelCase, snake_case).
const UPDATABLE: [(&str, &str); 4] = [
    ("title", "title"),
    ("description", "description"),
    ("includedPermissions", "included_permissions"),
    ("stage", "stage"),
];
/// The fields of `Role`, as (lowerCamelCase, snake_case).
const ROLE_FIELDS: [(&str, &str); 7] = [
    ("name", "name"),
    ("title", "title"),
    ("description", "description"),
    ("includedPermissions", "included_permissions"),
    ("stage", "stage"),
    ("etag", "etag"),
    ("deleted", "deleted"),
];

/// The permissions a custom role may include. A stand-in for Google's catalogue: the permissions
/// on the APIs Sluice drives that its roles are expected to grant, and a few neighbours.
pub const KNOWN_PERMISSIONS: &[&str] = &[
    "aiplatform.reasoningEngines.create",
    "aiplatform.reasoningEngines.delete",
    "aiplatform.reasoningEngines.get",
    "aiplatform.reasoningEngines.list",
    "aiplatform.reasoningEngines.update",
    "iam.roles.get",
    "iam.roles.list",
    "modelarmor.templates.get",
    "modelarmor.templates.list",
    "modelarmor.templates.use",
    "networkservices.agentGateways.create",
    "networkservices.agentGateways.delete",
    "networkservices.agentGateways.get",
    "networkservices.agentGateways.list",
    "networkservices.agentGateways.update",
    "networkservices.agentGateways.use",
    "networkservices.operations.get",
    "networkservices.operations.list",
    "resourcemanager.projects.get",
    "resourcemanager.projects.getIamPolicy",
    "serviceusage.services.get",
    "serviceusage.services.list",
    "serviceusage.services.use",
];

/// A project-level custom role, keyed in the world by its full name.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredRole {
    pub title: String,
    pub description: String,
    /// Sorted, without duplicates.
    pub included_permissions: Vec<String>,
    /// One of [`STAGES`].
    pub stage: String,
    /// Base64; new on every write.
    pub etag: String,
    /// Emulated time of the soft delete; `None` while the role is live.
    pub deleted_at: Option<Duration>,
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    Some(match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v1", "projects", project, "roles"], None) => create(emulator, project, &call.body),
        (&Method::GET, ["v1", "projects", project, "roles"], None) => list(emulator, project, call),
        (&Method::GET, ["v1", "projects", project, "roles", role], None) => get(emulator, project, role),
        (&Method::PATCH, ["v1", "projects", project, "roles", role], None) => {
            patch(emulator, project, role, call)
        }
        (&Method::DELETE, ["v1", "projects", project, "roles", role], None) => {
            delete(emulator, project, role, call)
        }
        (&Method::POST, ["v1", "projects", project, "roles", role], Some("undelete")) => {
            undelete(emulator, project, role, &call.body)
        }
        (_, ["v1", "projects", _, "roles", ..], _) => {
            let verb = verb.map(|v| format!(":{v}")).unwrap_or_default();
            Err(ApiError::not_found(format!(
                "The requested URL /{}{verb} was not found on this server ({} is not a method of IAM roles).",
                call.segments.join("/"),
                call.method
            )))
        }
        _ => return None,
    })
}
