//! Model Armor v1 `projects.locations.templates.get`: `GET v1/projects/{p}/locations/{l}/templates/{t}`.
//!
//! Model Armor has no discovery document in the google-api-python-client package, so this is
//! modelled from Google's REST reference (`projects.locations.templates`, resource `Template`:
//! `name`, `createTime`, `updateTime`, `labels`, `filterConfig`; the other fields are left out).
//! No response body here can be checked against a vendored schema.
//!
//! Model Armor is regional: Google serves it at `modelarmor.{location}.rep.googleapis.com`. The
//! emulator has one base URL for every API (a client's `--endpoint`), so, as for Vertex AI's
//! regional hosts, the call is told apart by its path alone: no other API has a `templates`
//! collection under `projects/{p}/locations/{l}`. The location in the path is the region.
//!
//! Templates are seeded (`EmulatorConfig::model_armor_templates`); any other is 404 NOT_FOUND.
//! `modelarmor.googleapis.com` must be enabled in the template's project (checked with every API's
//! enablement in `api/mod.rs`). Times are the seeded projects' creation time, 2026-01-01.

use axum::http::Method;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::router::Call;
use crate::Emulator;

/// When every seeded template was created and last updated.
const SEEDED_TIME: &str = "2026-01-01T00:00:00Z";

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    match (&call.method, call.segments().as_slice(), call.verb.as_deref()) {
        (&Method::GET, ["v1", "projects", project, "locations", location, "templates", id], None) => {
            Some(get(emulator, project, location, id))
        }
        _ => None,
    }
}

fn get(emulator: &Emulator, project: &str, location: &str, id: &str) -> Result<Value, ApiError> {
    let (project_id, number) = {
        let mut world = emulator.world();
        let project = world.project_mut(project)?;
        (project.id.clone(), project.number.to_string())
    };
    let name = format!("projects/{project_id}/locations/{location}/templates/{id}");
    let template = emulator
        .config
        .model_armor_templates
        .iter()
        .find(|t| {
            (t.project == project_id || t.project == number) && t.location == location && t.template_id == id
        })
        .ok_or_else(|| ApiError::not_found(format!("Template {name} not found.")))?;
    let mut body = json!({
        "name": name,
        "createTime": SEEDED_TIME,
        "updateTime": SEEDED_TIME,
        "filterConfig": template.filter_config.clone().unwrap_or_else(|| json!({})),
    });
    if !template.labels.is_empty() {
        body["labels"] = json!(template.labels);
    }
    Ok(body)
}
