//! Resource Manager v1 / v3 (`cloudresourcemanager.v1.json`, `.v3.json`): v1 projects.get and
//! the project IAM policy (v3 projects are in `projects`). setIamPolicy replaces the whole policy: a stale etag is refused
//! (409 ABORTED), conditions need version 3, members are checked, a service agent that does not
//! exist yet is refused, and each new grant takes effect only after the propagation delay.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::router::Call;
use crate::world::Project;
use crate::Emulator;

const MAX_PRINCIPALS: usize = 1_500;
const MEMBER_PREFIXES: [&str; 8] = [
    "user:",
    "serviceAccount:",
    "group:",
    "domain:",
    "principal:",
    "principalSet:",
    "deleted:",
    "projectOwner:",
];

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    Some(match (&call.method, segments.as_slice(), call.verb.as_deref()) {
        (&Method::GET, ["v1", "projects", project], None) => {
            let mut world = emulator.world();
            world.project_any_state(project).map(|p| project_json(p))
        }
        (&Method::POST, ["v1" | "v3", "projects", project], Some("getIamPolicy")) => {
            let requested = call.body["options"]["requestedPolicyVersion"]
                .as_i64()
                .unwrap_or(1);
            let mut world = emulator.world();
            world.project_mut(project).and_then(|p| policy_json(p, requested))
        }
        (&Method::POST, ["v1" | "v3", "projects", project], Some("setIamPolicy")) => {
            set_policy(emulator, project, &call.body)
        }
        _ => return None,
    })
}

/// The v1 Project (v3 is in [`crate::api::projects`]).
fn project_json(project: &Project) -> Value {
    let (parent_type, parent_id) = project.parent.split_once('/').unwrap_or(("organizations", ""));
    let mut body = json!({
        "projectNumber": project.number.to_string(), "projectId": project.id, "name": project.display_name(),
        "lifecycleState": project.meta.state.as_str(),
        "createTime": crate::encoding::rfc3339(project.meta.create_time),
        "parent": { "type": parent_type.trim_end_matches('s'), "id": parent_id },
    });
    if !project.meta.labels.is_empty() {
        body["labels"] = json!(project.meta.labels);
    }
    body
}

/// An opaque base64 etag derived from the policy revision.
fn etag(revision: u64) -> String {
    crate::encoding::etag(revision)
}

fn policy_json(project: &Project, requested: i64) -> Result<Value, ApiError> {
    let policy = &project.iam_policy;
    let conditional = policy.bindings.iter().any(|b| b.get("condition").is_some());
    if conditional && requested < 3 {
        return Err(ApiError::invalid_argument(
            "The policy has conditional role bindings: request it with options.requestedPolicyVersion = 3.",
        ));
    }
    Ok(json!({ "version": policy.version, "etag": etag(policy.revision), "bindings": policy.bindings }))
}

fn set_policy(emulator: &Emulator, project_key: &str, body: &Value) -> Result<Value, ApiError> {
    let policy = &body["policy"];
    let bindings = policy["bindings"].as_array().cloned().unwrap_or_default();
    let version = policy["version"].as_i64().unwrap_or(1);
    let now = emulator.clock.now();
    let propagation = emulator.clock.after(emulator.config.delays.iam_propagation);
    let mut world = emulator.world();
    let roles_live = |name: &str, world: &crate::world::World| crate::api::iam::role_is_live(world, name);
    let project = world.project_mut(project_key)?.clone();
    if let Some(sent) = policy["etag"].as_str() {
        if sent != etag(project.iam_policy.revision) {
            return Err(ApiError::aborted("There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."));
        }
    }
    let mut principals = BTreeSet::new();
    let mut grants = BTreeSet::new();
    for binding in &bindings {
        let role = binding["role"].as_str().unwrap_or_default();
        check_role(role, &project, |name| roles_live(name, &world))?;
        if binding.get("condition").is_some() && version < 3 {
            return Err(ApiError::invalid_argument(format!(
                "The binding for {role} has a condition: set policy.version to 3."
            )));
        }
        for member in binding["members"].as_array().into_iter().flatten() {
            let member = member.as_str().unwrap_or_default();
            check_member(member, &project, now)?;
            principals.insert(member.to_string());
            grants.insert((role.to_string(), member.to_string()));
        }
    }
    if principals.len() > MAX_PRINCIPALS {
        return Err(ApiError::invalid_argument(format!(
            "The number of members in the policy ({}) is larger than the maximum allowed size {MAX_PRINCIPALS}.",
            principals.len()
        )));
    }
    let stored = world.project_mut(project_key)?;
    let previous = std::mem::take(&mut stored.iam_policy.effective_at);
    stored.iam_policy.effective_at = grants
        .into_iter()
        .map(|grant| {
            let at = previous.get(&grant).copied().unwrap_or(propagation);
            (grant, at)
        })
        .collect::<BTreeMap<_, _>>();
    stored.iam_policy.bindings = bindings;
    stored.iam_policy.version = version;
    stored.iam_policy.revision += 1;
    policy_json(stored, 3)
}

fn check_role(role: &str, project: &Project, live: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    if role.starts_with("roles/") {
        return Ok(());
    }
    let custom = role
        .strip_prefix("projects/")
        .and_then(|rest| rest.split_once("/roles/"));
    match custom {
        Some((owner, _)) if owner == project.id || owner == project.number.to_string() => {
            if live(role) {
                Ok(())
            } else {
                Err(ApiError::invalid_argument(format!(
                    "Role {role} does not exist or has been deleted."
                )))
            }
        }
        _ if role.starts_with("organizations/") => Ok(()),
        _ => Err(ApiError::invalid_argument(format!(
            "Role {role} is not a role that can be granted on this project."
        ))),
    }
}

/// The project's service agents exist only once generateServiceIdentity's delay has passed.
fn check_member(member: &str, project: &Project, now: std::time::Duration) -> Result<(), ApiError> {
    if member == "allUsers" || member == "allAuthenticatedUsers" {
        return Err(ApiError::invalid_argument(format!(
            "{member} cannot be granted roles on a project policy."
        )));
    }
    if !MEMBER_PREFIXES
        .iter()
        .any(|p| member.starts_with(p) && member.len() > p.len())
    {
        return Err(ApiError::invalid_argument(format!(
            "Invalid member `{member}`: members look like user:EMAIL, serviceAccount:EMAIL, group:EMAIL or domain:DOMAIN."
        )));
    }
    if let Some(email) = member.strip_prefix("serviceAccount:") {
        let agent_of_project = email.starts_with(&format!("service-{}@gcp-sa-", project.number));
        let exists = project.service_agents_usable_at.is_some_and(|at| now >= at);
        if agent_of_project && !exists {
            return Err(ApiError::invalid_argument(format!(
                "Service account {email} does not exist."
            )));
        }
    }
    Ok(())
}
