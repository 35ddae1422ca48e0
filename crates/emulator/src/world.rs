//! The emulated world: projects (id ↔ number) under organisations and folders, with the state
//! each API keeps about them, and every long-running operation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{EmulatorConfig, ProjectConfig};
use crate::error::ApiError;
use crate::ops::Operations;

/// An API enabled in a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnabledService {
    /// When `services.get` starts saying ENABLED (the enable operation is done).
    pub enabled_at: Duration,
    /// When calls to the API in this project stop answering SERVICE_DISABLED.
    pub usable_at: Duration,
}

/// The member every seeded project's policy starts with, as `roles/owner`.
pub const OWNER: &str = "user:owner@example.com";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub number: u64,
    /// `organizations/N` or `folders/N`.
    pub parent: String,
    pub services: BTreeMap<String, EnabledService>,
    /// When the service agents made by generateServiceIdentity become usable IAM members.
    pub service_agents_usable_at: Option<Duration>,
    pub iam_policy: IamPolicy,
    /// What Resource Manager v3 shows besides id, number and parent.
    pub meta: ProjectMeta,
}

/// A project's lifecycle state (Resource Manager v3 `Project.state`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProjectState {
    #[default]
    Active,
    /// Deleted, restorable with `projects.undelete` (Google purges after about 30 days; the
    /// emulator never does, and the id stays taken either way).
    DeleteRequested,
}

impl ProjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectState::Active => "ACTIVE",
            ProjectState::DeleteRequested => "DELETE_REQUESTED",
        }
    }
}

/// Labels, display name, lifecycle and times of a project. Times are wall-clock time since the
/// Unix epoch ([`crate::clock::Clock::wall`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectMeta {
    /// Empty: the id is shown.
    pub display_name: String,
    pub labels: BTreeMap<String, String>,
    pub state: ProjectState,
    pub create_time: Duration,
    pub delete_time: Option<Duration>,
    /// Bumped on every change of the project itself; its etag is derived from it.
    pub revision: u64,
}

/// When configured projects were created unless the config says otherwise: 2026-01-01T00:00:00Z.
const SEEDED_CREATE_TIME: Duration = Duration::from_secs(1_767_225_600);

impl Project {
    pub fn display_name(&self) -> &str {
        if self.meta.display_name.is_empty() {
            &self.id
        } else {
            &self.meta.display_name
        }
    }
}

/// A project's IAM policy, with when each grant takes effect.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IamPolicy {
    pub version: i64,
    /// Bumped on every change; the etag is derived from it.
    pub revision: u64,
    /// `Binding` objects as Google shows them (role, members, optional condition).
    pub bindings: Vec<Value>,
    /// (role, member) → when the grant takes effect (propagation).
    #[serde(with = "crate::snapshot::pairs")]
    pub effective_at: BTreeMap<(String, String), Duration>,
}

/// Everything the emulator keeps, saved whole by [`crate::WorldSnapshot`]: a field added here
/// is part of the snapshot (and needs `SNAPSHOT_VERSION` bumped when older snapshots cannot
/// give it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct World {
    pub projects: Vec<Project>,
    pub operations: Operations,
    pub iam_roles: std::collections::BTreeMap<String, crate::api::iam::StoredRole>,
    /// Agent gateways by full name `projects/{id}/locations/{l}/agentGateways/{g}`.
    pub agent_gateways: std::collections::BTreeMap<String, crate::api::network_services::StoredGateway>,
    /// Authorization extensions (Network Services) and policies (Network Security) by full name
    /// (`projects/{id}/locations/{l}/authzExtensions/{e}`, `…/authzPolicies/{p}`), as Google
    /// shows them.
    pub authz: BTreeMap<String, Value>,
    /// `requestId`s of the resource APIs: (resource name, verb, requestId) → (operation name,
    /// when the id stops de-duplicating).
    #[serde(with = "crate::snapshot::pairs")]
    pub request_ids: BTreeMap<(String, String, String), (String, Duration)>,
    pub vertex_ai: crate::api::vertex_ai::VertexState,
    pub agent_registry: crate::api::agent_registry::RegistryState,
    pub org_policy: crate::api::org_policy::OrgPolicyState,
    /// Project creations per organisation, for its creation quota.
    pub project_creations: crate::api::projects::CreationLog,
    /// The billing account each project is linked to, by project id.
    pub billing_links: BTreeMap<String, String>,
    next_id: u64,
}

impl World {
    pub fn from_config(config: &EmulatorConfig) -> Self {
        let mut world = World::default();
        let mut add = |project: &ProjectConfig, parent: String| {
            let services = project
                .enabled_services
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        EnabledService {
                            enabled_at: Duration::ZERO,
                            usable_at: Duration::ZERO,
                        },
                    )
                })
                .collect();
            let configured = config.project_metadata.get(&project.id);
            let meta = ProjectMeta {
                display_name: configured
                    .and_then(|m| m.display_name.clone())
                    .unwrap_or_default(),
                labels: configured.map(|m| m.labels.clone()).unwrap_or_default(),
                state: ProjectState::Active,
                create_time: configured
                    .and_then(|m| m.create_time.as_deref())
                    .and_then(crate::encoding::parse_rfc3339)
                    .unwrap_or(SEEDED_CREATE_TIME),
                delete_time: None,
                revision: 1,
            };
            world.projects.push(Project {
                meta,
                id: project.id.clone(),
                number: project.number,
                parent,
                services,
                service_agents_usable_at: None,
                iam_policy: IamPolicy {
                    version: 1,
                    revision: 1,
                    bindings: vec![json!({ "role": "roles/owner", "members": [OWNER] })],
                    effective_at: BTreeMap::from([(
                        ("roles/owner".to_string(), OWNER.to_string()),
                        Duration::ZERO,
                    )]),
                },
            });
        };
        for org in &config.organizations {
            for project in &org.projects {
                add(project, format!("organizations/{}", org.id));
            }
            for folder in &org.folders {
                for project in &folder.projects {
                    add(project, format!("folders/{}", folder.id));
                }
            }
        }
        world.next_id = config.seed.wrapping_mul(0x9E37_79B9).max(1);
        world
    }

    /// The ACTIVE project named by id or number, as Google accepts both; an unknown one, or one
    /// whose deletion was requested, is refused the way Google refuses a project the caller
    /// cannot use (403, without saying whether it exists). Resource Manager reads a project in
    /// any state with [`World::project_any_state`].
    pub fn project_mut(&mut self, key: &str) -> Result<&mut Project, ApiError> {
        match self.project_any_state(key) {
            Ok(project) if project.meta.state == ProjectState::Active => Ok(project),
            _ => Err(unknown_project(key)),
        }
    }

    /// The project named by id or number, whatever its state.
    pub fn project_any_state(&mut self, key: &str) -> Result<&mut Project, ApiError> {
        self.projects
            .iter_mut()
            .find(|p| p.id == key || p.number.to_string() == key)
            .ok_or_else(|| unknown_project(key))
    }

    /// A fresh id for generated names; deterministic for a given seed.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Everything, for the admin API.
    pub fn to_json(&self, now: Duration) -> Value {
        let projects: Vec<Value> = self
            .projects
            .iter()
            .map(|p| {
                let services: BTreeMap<&String, Value> = p
                    .services
                    .iter()
                    .map(|(name, s)| {
                        (
                            name,
                            json!({ "enabled": now >= s.enabled_at, "usable": now >= s.usable_at }),
                        )
                    })
                    .collect();
                let grants: Vec<Value> = p
                    .iam_policy
                    .effective_at
                    .iter()
                    .map(|((role, member), at)| json!({ "role": role, "member": member, "effective": now >= *at }))
                    .collect();
                json!({
                    "id": p.id, "number": p.number.to_string(), "parent": p.parent, "services": services,
                    "displayName": p.display_name(), "labels": p.meta.labels, "state": p.meta.state.as_str(),
                    "createTime": crate::encoding::rfc3339(p.meta.create_time),
                    "deleteTime": p.meta.delete_time.map(crate::encoding::rfc3339),
                    "billingAccount": self.billing_links.get(&p.id),
                    "serviceAgentsUsable": p.service_agents_usable_at.map(|at| now >= at),
                    "iamGrants": grants,
                })
            })
            .collect();
        let roles: BTreeMap<&String, Value> = self
            .iam_roles
            .iter()
            .map(|(name, r)| {
                (
                    name,
                    json!({ "title": r.title, "includedPermissions": r.included_permissions,
                               "stage": r.stage, "deleted": r.deleted_at.is_some() }),
                )
            })
            .collect();
        let gateways: Vec<&Value> = self.agent_gateways.values().map(|g| &g.body).collect();
        let engines: Vec<&Value> = self
            .vertex_ai
            .engines
            .values()
            .filter(|e| e.gone_at.is_none_or(|at| now < at))
            .map(|e| &e.body)
            .collect();
        json!({
            "projects": projects,
            "operations": self.operations.count(),
            "iamRoles": roles,
            "agentGateways": gateways,
            "authzExtensions": crate::api::authorization::state(self, "authzExtensions"),
            "authzPolicies": crate::api::authorization::state(self, "authzPolicies"),
            "reasoningEngines": engines,
            "agentRegistry": crate::api::agent_registry::state(self, now),
            "orgPolicy": crate::api::org_policy::state(self, now),
        })
    }
}

/// Google's 403 for a project the caller cannot use (or that does not exist).
pub fn unknown_project(key: &str) -> ApiError {
    ApiError::permission_denied(format!(
        "Permission denied on resource project {key} (or it may not exist)."
    ))
    .with_error_info(
        "CONSUMER_INVALID",
        "googleapis.com",
        json!({ "consumer": format!("projects/{key}") }),
    )
}
