//! # sluice-steps
//!
//! The Google Cloud step kinds (`gcp.*`) that route Vertex AI Agent Runtime through Agent
//! Gateway: each is a reconciler built on [`sluice_engine::StepKind`] (observe / apply / poll)
//! and [`sluice_gcp::GcpClient`].
//!
//! **What it must never do:** mutate in `observe`; create anything twice (every create is found
//! again by a name the step chooses or a label carrying the run's idempotency key); sleep for a
//! fixed time to wait out eventual consistency (it reports `not_yet` on the specific error and
//! the engine retries within a bounded window); hold or print a secret.
//!
//! ## Principal types
//! - [`Cloud`]: how kinds reach Google — a lazily built [`sluice_gcp::GcpClient`] (so plans
//!   without `gcp.*` steps never need credentials) and the time scale of every wait.
//! - [`register`] adds every kind to a [`sluice_engine::Registry`].
//! - `reconcile::Resource` and `reconcile::Reconciled`: the generic reconciler. Each Google
//!   resource kind (`role`, `gateway`, `engine`, `registration`, `constraint`, `policy`,
//!   `new_project`, `authz_extension`, `authz_policy`) implements `Resource` with only its
//!   specifics; `Reconciled` is its one `StepKind` and enforces the strict re-read before a
//!   mutation, the 409 adoption rule and label-before-create (each marked `INVARIANT` in
//!   `reconcile/flow.rs`). The other kinds (`services`, `project`, `identity`, `bindings`,
//!   `billing`, `model_armor`) are plain `StepKind`s.
//! - `params!`: each kind declares its parameters once; the parse and the schema come from it.
//!
//! ## The one non-obvious decision
//! Eventual consistency is an error class, not a delay: an API enabled but not usable yet
//! (`SERVICE_DISABLED`), a service agent that does not exist yet, a grant not yet propagated —
//! each maps to [`sluice_engine::StepError::NotYet`], which the engine retries with backoff until
//! the step's not-yet window closes. No step waits a fixed time.
//!
//! ## Example
//! ```no_run
//! use sluice_engine::Registry;
//! use sluice_gcp::ClientOptions;
//! use sluice_steps::{register, Cloud};
//!
//! let mut registry = Registry::with_builtins();
//! register(&mut registry, Cloud::new(ClientOptions::default()));
//! assert!(registry.get("gcp.reasoning_engine").is_some());
//! ```

// `GcpError` is a plain 144-byte struct passed by value on the error path only.
#![allow(clippy::result_large_err)]

#[macro_use]
mod params;

mod archive;
mod authz;
mod authz_extension;
mod authz_policy;
mod billing;
mod bindings;
mod checks;
mod cloud;
mod common;
mod constraint;
mod egress_access;
mod engine;
pub mod fleet_cleanup;
mod gateway;
mod governance;
mod identity;
mod model_armor;
mod new_project;
mod policy;
mod project;
mod reconcile;
mod registration;
mod role;
mod services;

pub use cloud::Cloud;
pub use fleet_cleanup::{delete_project, expired_fleet_projects, ExpiredProject};

use reconcile::Reconciled;
use sluice_engine::Registry;

/// Adds every `gcp.*` kind, all sharing `cloud`.
pub fn register(registry: &mut Registry, cloud: Cloud) {
    registry.register("gcp.services", services::Services::new(cloud.clone()));
    registry.register("gcp.project", project::Project::new(cloud.clone()));
    registry.register(
        "gcp.service_identity",
        identity::ServiceIdentity::new(cloud.clone()),
    );
    registry.register(
        "gcp.custom_role",
        Reconciled(role::CustomRole::new(cloud.clone())),
    );
    registry.register("gcp.iam_binding", bindings::IamBinding::new(cloud.clone()));
    registry.register(
        "gcp.agent_gateway",
        Reconciled(gateway::AgentGateway::new(cloud.clone())),
    );
    registry.register(
        "gcp.reasoning_engine",
        Reconciled(engine::ReasoningEngine::new(cloud.clone())),
    );
    registry.register(
        "gcp.agent_registration",
        Reconciled(registration::AgentRegistration::new(cloud.clone())),
    );
    registry.register(
        "gcp.custom_constraint",
        Reconciled(constraint::CustomConstraint::new(cloud.clone())),
    );
    registry.register(
        "gcp.org_policy",
        Reconciled(policy::OrgPolicy::new(cloud.clone())),
    );
    registry.register(
        "gcp.new_project",
        Reconciled(new_project::NewProject::new(cloud.clone())),
    );
    registry.register("gcp.billing", billing::Billing::new(cloud.clone()));
    registry.register(
        "gcp.authz_extension",
        Reconciled(authz_extension::AuthzExtension::new(cloud.clone())),
    );
    registry.register(
        "gcp.authz_policy",
        Reconciled(authz_policy::AuthzPolicy::new(cloud.clone())),
    );
    registry.register(
        "gcp.model_armor_template",
        model_armor::ModelArmorTemplate::new(cloud.clone()),
    );
    registry.add_rule(governance::GatewayGovernance);
}
