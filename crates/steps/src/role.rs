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
use sluice_engine::{async_trait, Applied, Change, KindSchema, Outputs, StepContext, StepError};
use sluice_gcp::{Api, GcpError, PostRetry, Role};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::classify;
use crate::reconcile::{Absent, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};

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

pub struct Wanted {
    project: String,
    role_id: String,
    title: String,
    description: String,
    permissions: BTreeSet<String>,
}

params! {
    /// The parameters of `gcp.custom_role`.
    struct RoleParams {
        project: text => "project id",
        role_id: text => "role id: letters, digits, _ and ., 3-64 long",
        title: text_or("Custom Agent Gateway access role") => "title",
        description: text_or("Custom role for Agent Gateway") => "description",
        permissions: strings => "permissions [default: networkservices.agentGateways.get/.use, networkservices.operations.get]",
    }
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let params = RoleParams::parse(cx)?;
        let mut permissions: BTreeSet<String> = params.permissions.into_iter().collect();
        if permissions.is_empty() {
            permissions = GATEWAY_PERMISSIONS.iter().map(|p| p.to_string()).collect();
        }
        Ok(Wanted {
            project: params.project,
            role_id: params.role_id,
            title: params.title,
            description: params.description,
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

impl CustomRole {
    /// Undeletes a soft-deleted role (its etag), giving the live role.
    async fn undelete(&self, wanted: &Wanted, role: &Role) -> Result<Role, StepError> {
        let name = wanted.name();
        let client = self.cloud.client().await?;
        client
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
            })
    }
}

#[async_trait]
impl Resource for CustomRole {
    type Wanted = Wanted;
    type Live = Role;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a project custom role with exactly the given permissions",
            params: RoleParams::specs(),
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

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("role {}", wanted.name())
    }

    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Role>, StepError> {
        let Lookup { wanted, reading, .. } = lookup;
        let client = self.cloud.client().await?;
        match reading.tolerate(client.get_as::<Role>(&Api::Iam, &wanted.path()).await) {
            Ok(role) => Ok(role),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(classify(
                &self.cloud,
                &format!("reading role {}", wanted.name()),
                e,
            )),
        }
    }

    async fn examine(&self, step: Step<'_, Wanted>, role: &Role) -> Result<Verdict, StepError> {
        let Step { wanted, .. } = step;
        let name = wanted.name();
        if role.deleted {
            return Ok(Verdict::Drift(
                Change::update(format!(
                    "undelete role {name} (soft-deleted) and set its permissions"
                ))
                .predicting(wanted.outputs()),
            ));
        }
        let differences = wanted.differences(role);
        Ok(if differences.is_empty() {
            Verdict::Converged(wanted.outputs())
        } else {
            Verdict::Drift(
                Change::update(format!("role {name}: {}", differences.join("; ")))
                    .predicting(wanted.outputs()),
            )
        })
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create role {} with {}",
            wanted.name(),
            wanted.permissions.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
        .predicting(wanted.outputs())
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { wanted, .. } = step;
        let body = json!({ "roleId": wanted.role_id, "role": wanted.body() });
        let client = self.cloud.client().await?;
        // The answer must be the role (name, etag): anything else is a bad response, retried,
        // never taken for a created role. The id is ours: a repeat answers 409.
        client
            .post_as::<Role>(
                &Api::Iam,
                &format!("v1/projects/{}/roles", wanted.project),
                &body,
                PostRetry::Safe,
            )
            .await?;
        Ok(Mutated::Applied(Applied::Done(wanted.outputs())))
    }

    fn create_refused(&self, step: Step<'_, Wanted>, e: GcpError) -> StepError {
        let Step { wanted, .. } = step;
        let name = wanted.name();
        if e.is_failed_precondition() {
            return StepError::permanent(format!(
                "role {name} was deleted and cannot be undeleted or reused yet (Google keeps \
                 deleted role ids for ~37 days): choose another `role_id`. {e}"
            ));
        }
        classify(&self.cloud, &format!("creating role {name}"), e)
    }

    fn missing_after_conflict(&self, step: Step<'_, Wanted>) -> StepError {
        let Step { wanted, .. } = step;
        StepError::retryable(format!("role {} is changing; reading again", wanted.name()))
    }

    async fn patch(&self, step: Step<'_, Wanted>, live: Current<'_, Role>) -> Result<Mutated, StepError> {
        let Step { wanted, .. } = step;
        let undeleted;
        let role = if live.deleted {
            undeleted = self.undelete(wanted, &live).await?;
            &undeleted
        } else {
            &*live
        };
        if !wanted.differences(role).is_empty() {
            let mut body = wanted.body();
            body["etag"] = json!(role.etag);
            let path = format!(
                "{}?updateMask=title,description,includedPermissions,stage",
                wanted.path()
            );
            let client = self.cloud.client().await?;
            client
                .patch_as::<Role>(&Api::Iam, &path, &body)
                .await
                .map_err(|e| classify(&self.cloud, &format!("updating role {}", wanted.name()), e))?;
        }
        Ok(Mutated::Applied(Applied::Done(wanted.outputs())))
    }
}
