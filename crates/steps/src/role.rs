//! `gcp.custom_role`: a project custom role with exactly the given permissions.
//!
//! - **Guarantees:** the role `projects/P/roles/ID` exists, is not deleted, and has exactly
//!   `permissions` (by default the three Agent Gateway permissions the seed names) and `title`.
//!   It is created, undeleted (when soft-deleted) and patched as needed; a live role that
//!   matches is left alone.
//! - **Assumptions:** the role id is ours: a live role with that id is adopted and corrected.
//! - **Caveats:** a role deleted more than 7 days ago cannot be undeleted and its id cannot be
//!   reused for ~37 days: the step fails naming that, and a new `role_id` is the fix.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, ParamSpec, ParamType, StepContext,
    StepError, StepKind,
};
use sluice_gcp::{Api, GcpError, PostRetry, Role};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{classify, optional_text, strings, text, Reading};

/// What the seed grants the Reasoning Engine service agent.
pub const GATEWAY_PERMISSIONS: [&str; 3] = [
    "networkservices.agentGateways.get",
    "networkservices.agentGateways.use",
    "networkservices.operations.get",
];

pub struct CustomRole {
    cloud: Cloud,
}

impl CustomRole {
    pub fn new(cloud: Cloud) -> Self {
        CustomRole { cloud }
    }
}

struct Wanted {
    project: String,
    role_id: String,
    title: String,
    description: String,
    permissions: BTreeSet<String>,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let mut permissions: BTreeSet<String> = strings(cx, "permissions")?.into_iter().collect();
        if permissions.is_empty() {
            permissions = GATEWAY_PERMISSIONS.iter().map(|p| p.to_string()).collect();
        }
        Ok(Wanted {
            project: text(cx, "project")?.to_string(),
            role_id: text(cx, "role_id")?.to_string(),
            title: optional_text(cx, "title")
                .unwrap_or("Custom Agent Gateway access role")
                .to_string(),
            description: optional_text(cx, "description")
                .unwrap_or("Custom role for Agent Gateway")
                .to_string(),
            permissions,
        })
    }
    fn name(&self) -> String {
        format!("projects/{}/roles/{}", self.project, self.role_id)
    }
    fn path(&self) -> String {
        format!("v1/{}", self.name())
    }
    fn outputs(&self) -> Outputs {
        Outputs::from([("name".to_string(), json!(self.name()))])
    }
    /// What differs in a live role, for a person; empty when it matches.
    fn differences(&self, role: &Role) -> Vec<String> {
        let have: BTreeSet<String> = role.included_permissions.iter().cloned().collect();
        let mut out = Vec::new();
        let missing: Vec<_> = self.permissions.difference(&have).cloned().collect();
        let extra: Vec<_> = have.difference(&self.permissions).cloned().collect();
        if !missing.is_empty() {
            out.push(format!("add {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            out.push(format!("remove {}", extra.join(", ")));
        }
        if role.title != self.title {
            out.push("set the title".into());
        }
        out
    }
    fn body(&self) -> Value {
        json!({
            "title": self.title,
            "description": self.description,
            "includedPermissions": self.permissions,
            "stage": "GA",
        })
    }
}

enum Found {
    Missing,
    Deleted(Role),
    Live(Role),
}

impl CustomRole {
    async fn read(&self, wanted: &Wanted, reading: Reading) -> Result<Found, StepError> {
        let client = self.cloud.client().await?;
        match reading.tolerate(client.get_as::<Role>(&Api::Iam, &wanted.path()).await) {
            Ok(Some(role)) if role.deleted => Ok(Found::Deleted(role)),
            Ok(Some(role)) => Ok(Found::Live(role)),
            Ok(None) => Ok(Found::Missing),
            Err(e) if e.is_not_found() => Ok(Found::Missing),
            Err(e) => Err(classify(
                &self.cloud,
                &format!("reading role {}", wanted.name()),
                e,
            )),
        }
    }

    async fn patch(&self, wanted: &Wanted, role: &Role) -> Result<Role, GcpError> {
        let mut body = wanted.body();
        body["etag"] = json!(role.etag);
        let path = format!(
            "{}?updateMask=title,description,includedPermissions,stage",
            wanted.path()
        );
        let client = self
            .cloud
            .client()
            .await
            .map_err(|e| GcpError::config(e.to_string()))?;
        client.patch_as(&Api::Iam, &path, &body).await
    }
}

#[async_trait]
impl StepKind for CustomRole {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a project custom role with exactly the given permissions",
            params: vec![
                ParamSpec::required("project", ParamType::String, "project id"),
                ParamSpec::required("role_id", ParamType::String, "role id: letters, digits, _ and ., 3-64 long"),
                ParamSpec::optional("title", ParamType::String, "title"),
                ParamSpec::optional("description", ParamType::String, "description"),
                ParamSpec::optional(
                    "permissions",
                    ParamType::List,
                    "permissions [default: networkservices.agentGateways.get/.use, networkservices.operations.get]",
                ),
            ],
            outputs: vec!["name"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("role_id", &checks::role_id)
            // IAM: "Typically this is limited to 100 UTF-8 bytes."
            .string("title", &checks::max_chars(100, "an IAM role title"))
            .each("permissions", &checks::permission)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let wanted = Wanted::from(cx)?;
        let name = wanted.name();
        Ok(match self.read(&wanted, Reading::Observe).await? {
            Found::Missing => Observation::Diverged(
                Change::create(format!(
                    "create role {name} with {}",
                    wanted.permissions.iter().cloned().collect::<Vec<_>>().join(", ")
                ))
                .predicting(wanted.outputs()),
            ),
            Found::Deleted(_) => Observation::Diverged(
                Change::update(format!(
                    "undelete role {name} (soft-deleted) and set its permissions"
                ))
                .predicting(wanted.outputs()),
            ),
            Found::Live(role) => {
                let differences = wanted.differences(&role);
                if differences.is_empty() {
                    Observation::Converged(wanted.outputs())
                } else {
                    Observation::Diverged(
                        Change::update(format!("role {name}: {}", differences.join("; ")))
                            .predicting(wanted.outputs()),
                    )
                }
            }
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let wanted = Wanted::from(cx)?;
        let name = wanted.name();
        let client = self.cloud.client().await?;
        let role = match self.read(&wanted, Reading::Apply).await? {
            Found::Missing => {
                let body = json!({ "roleId": wanted.role_id, "role": wanted.body() });
                // The answer must be the role (name, etag): anything else is a bad response,
                // retried, never taken for a created role.
                let created = client
                    .post_as::<Role>(
                        &Api::Iam,
                        &format!("v1/projects/{}/roles", wanted.project),
                        &body,
                        // The id is ours: a repeat answers 409, handled below.
                        PostRetry::Safe,
                    )
                    .await;
                match created {
                    Ok(_) => return Ok(Applied::Done(wanted.outputs())),
                    Err(e) if e.is_already_exists() => {
                        // A create whose answer was lost: adopt it and check it.
                        match self.read(&wanted, Reading::Apply).await? {
                            Found::Live(role) => role,
                            _ => {
                                return Err(StepError::retryable(format!(
                                    "role {name} is changing; reading again"
                                )))
                            }
                        }
                    }
                    Err(e) if e.is_failed_precondition() => {
                        return Err(StepError::permanent(format!(
                            "role {name} was deleted and cannot be undeleted or reused yet (Google keeps \
                             deleted role ids for ~37 days): choose another `role_id`. {e}"
                        )))
                    }
                    Err(e) => return Err(classify(&self.cloud, &format!("creating role {name}"), e)),
                }
            }
            Found::Deleted(role) => {
                let undeleted = client
                    .post_as::<Role>(
                        &Api::Iam,
                        &format!("{}:undelete", wanted.path()),
                        &json!({ "etag": role.etag }),
                        PostRetry::Safe,
                    )
                    .await
                    .map_err(|e| {
                        if e.is_failed_precondition() {
                            StepError::permanent(format!(
                                "role {name} was deleted more than 7 days ago and cannot be undeleted: \
                                 choose another `role_id`. {e}"
                            ))
                        } else {
                            classify(&self.cloud, &format!("undeleting role {name}"), e)
                        }
                    })?;
                undeleted
            }
            Found::Live(role) => role,
        };
        if wanted.differences(&role).is_empty() {
            return Ok(Applied::Done(wanted.outputs()));
        }
        self.patch(&wanted, &role)
            .await
            .map_err(|e| classify(&self.cloud, &format!("updating role {name}"), e))?;
        Ok(Applied::Done(wanted.outputs()))
    }
}
