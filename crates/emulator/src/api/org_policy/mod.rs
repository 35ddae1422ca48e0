//! Org Policy v2 (`orgpolicy.v2.json`): organisation custom constraints (create, get, list, patch,
//! delete) and policies on projects, folders and organisations (create, get, patch, delete,
//! getEffectivePolicy), plus the enforcement Vertex AI asks for on ReasoningEngine CREATE/UPDATE
//! ([`check_reasoning_engine`]). Everything is synchronous.
//!
//! Modelling choices (Google documents none of these):
//! - Policies are named with the project *number*, even when addressed by id.
//! - A policy for a `custom.*` constraint that does not exist in the resource's organisation is
//!   refused with 400 INVALID_ARGUMENT (Google's exact behaviour is unspecified). Other
//!   (managed / built-in) constraint names are accepted as given: there is no catalogue.
//! - PATCH of a policy replaces `spec` and `dryRunSpec` whole; `updateMask` is ignored. The etag,
//!   when given in the body, must be current (stale → 409 ABORTED).
//! - Inheritance for getEffectivePolicy and enforcement walks organisation → folder → project.
//!   A level with a `spec` replaces the rules so far, unless the spec has `inheritFromParent: true`,
//!   in which case its rules are appended to the inherited ones; `reset: true` clears them. A
//!   constraint is enforced when any resulting rule has `enforce: true`. getEffectivePolicy shows
//!   the configured state at once; enforcement uses only what has propagated.
//! - Propagation: a policy write takes effect `delays.policy_propagation` (900 s) after it was made
//!   ("up to 15 minutes"); until then the previous content of that policy (if it had propagated)
//!   keeps applying. A delete takes effect at once.
//! - CEL: `has(resource.a.b.c)` is answered from the resource JSON before evaluation, so a missing
//!   intermediate field gives false instead of an error. An evaluation error (or a non-bool result)
//!   refuses for ALLOW constraints (fail closed) and does not refuse for DENY constraints.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

const REASONING_ENGINE: &str = "aiplatform.googleapis.com/ReasoningEngine";

/// Everything Org Policy keeps (custom constraints, policies).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct OrgPolicyState {
    /// By full name `organizations/{org}/customConstraints/custom.X`.
    constraints: BTreeMap<String, StoredConstraint>,
    /// By canonical name `{projects/NUMBER|folders/F|organizations/O}/policies/{constraint}`.
    policies: BTreeMap<String, StoredPolicy>,
    /// Folder id → organisation id, copied from the configuration on every Org Policy call (the
    /// world does not keep folder parents; enforcement has only the world).
    folder_orgs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredConstraint {
    /// The constraint as given, without `updateTime`.
    body: Map<String, Value>,
    update_time: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Content {
    spec: Option<Value>,
    dry_run_spec: Option<Value>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredPolicy {
    content: Content,
    etag: String,
    set_at: Duration,
    /// When the last write is enforced (`set_at` plus the configured propagation delay).
    in_force_at: Duration,
    /// What applied before the last write, while that write propagates.
    previous: Option<Content>,
}

impl StoredPolicy {
    /// The content being enforced at `now`.
    fn in_force(&self, now: Duration) -> Option<&Content> {
        if self.in_force_at <= now {
            Some(&self.content)
        } else {
            self.previous.as_ref()
        }
    }
}

pub fn route(emulator: &Emulator, call: &Call) -> Option<Result<Value, ApiError>> {
    let segments = call.segments();
    let verb = call.verb.as_deref();
    let kind_ok = |k: &str| matches!(k, "projects" | "folders" | "organizations");
    let result = match (&call.method, segments.as_slice(), verb) {
        (&Method::POST, ["v2", "organizations", org, "customConstraints"], None) => {
            create_constraint(emulator, org, &call.body)
        }
        (&Method::GET, ["v2", "organizations", org, "customConstraints"], None) => {
            list_constraints(emulator, org, call)
        }
        (&Method::GET, ["v2", "organizations", org, "customConstraints", id], None) => {
            get_constraint(emulator, org, id)
        }
        (&Method::PATCH, ["v2", "organizations", org, "customConstraints", id], None) => {
            patch_constraint(emulator, org, id, &call.body)
        }
        (&Method::DELETE, ["v2", "organizations", org, "customConstraints", id], None) => {
            delete_constraint(emulator, org, id)
        }
        (&Method::POST, ["v2", kind, id, "policies"], None) if kind_ok(kind) => {
            create_policy(emulator, kind, id, &call.body)
        }
        (&Method::GET, ["v2", kind, id, "policies", c], None) if kind_ok(kind) => {
            get_policy(emulator, kind, id, c)
        }
        (&Method::GET, ["v2", kind, id, "policies", c], Some("getEffectivePolicy")) if kind_ok(kind) => {
            effective_policy(emulator, kind, id, c)
        }
        (&Method::PATCH, ["v2", kind, id, "policies", c], None) if kind_ok(kind) => {
            patch_policy(emulator, kind, id, c, &call.body)
        }
        (&Method::DELETE, ["v2", kind, id, "policies", c], None) if kind_ok(kind) => {
            delete_policy(emulator, kind, id, c, call)
        }
        _ => return None,
    };
    Some(result)
}

mod constraints;
mod enforcement;
mod hierarchy;
mod policies;
#[cfg(test)]
mod tests;

use constraints::{create_constraint, delete_constraint, get_constraint, list_constraints, patch_constraint};
pub use enforcement::check_reasoning_engine;
use policies::{create_policy, delete_policy, effective_policy, get_policy, patch_policy};

/// Custom constraints and policies, for the admin API's state.
pub fn state(world: &World, now: Duration) -> Value {
    let constraints: Vec<&Map<String, Value>> =
        world.org_policy.constraints.values().map(|c| &c.body).collect();
    let policies: Vec<Value> = world
        .org_policy
        .policies
        .iter()
        .map(|(name, p)| {
            json!({ "name": name, "spec": p.content.spec, "dryRunSpec": p.content.dry_run_spec,
                    "enforced": p.in_force_at <= now })
        })
        .collect();
    json!({ "customConstraints": constraints, "policies": policies })
}
