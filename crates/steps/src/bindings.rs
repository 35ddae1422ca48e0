//! `gcp.iam_binding`: a role granted to members on a project (IAM read-modify-write).
//!
//! - **Guarantees:** every `members` entry holds `role` through an unconditional binding on
//!   the project. Nothing else in the policy changes: members this step did not add, other
//!   roles and conditional bindings are kept. Steps that are ready together share one
//!   getIamPolicy and one setIamPolicy (the client coalesces them per project).
//! - **Assumptions:** members are written as IAM members (`serviceAccount:…`, `user:…`); a bare
//!   service-account email is accepted and prefixed.
//! - **Caveats:** a grant takes effect minutes after it is written (Google: ~2, sometimes 7+);
//!   the step does not wait for that, since nothing can observe it. Steps that need the grant
//!   (a deploy) treat the resulting permission failure as "not yet". A service agent that does
//!   not exist yet is retried within the client's bounded window, then reported as not yet.

use serde_json::json;
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, StepContext, StepError, StepKind,
};
use sluice_gcp::Grant;

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{absent_if_disabled, classify};

pub struct IamBinding {
    cloud: Cloud,
}

impl IamBinding {
    pub fn new(cloud: Cloud) -> Self {
        IamBinding { cloud }
    }
}

/// `serviceAccount:` in front of a bare service-account email.
fn member(text: &str) -> String {
    if text.contains(':') {
        text.to_string()
    } else if text.ends_with(".gserviceaccount.com") {
        format!("serviceAccount:{text}")
    } else {
        format!("user:{text}")
    }
}

params! {
    /// The parameters of `gcp.iam_binding`.
    struct BindingParams {
        project: text => "project id",
        role: text => "roles/… or projects/P/roles/ID",
        members: list => "members, like serviceAccount:EMAIL",
    }
}

fn wanted(cx: &StepContext) -> Result<(String, Vec<Grant>, Outputs), StepError> {
    let BindingParams {
        project,
        role,
        members,
    } = BindingParams::parse(cx)?;
    let members: Vec<String> = members.iter().map(|m| member(m)).collect();
    if members.is_empty() {
        return Err(StepError::permanent(format!(
            "step `{}`: `members` is empty; name at least one member",
            cx.step_id
        )));
    }
    let grants = members
        .iter()
        .map(|m| Grant::new(role.clone(), m.clone()))
        .collect();
    let outputs = Outputs::from([
        ("project".to_string(), json!(project)),
        ("role".to_string(), json!(role)),
        ("members".to_string(), json!(members)),
    ]);
    Ok((project, grants, outputs))
}

#[async_trait]
impl StepKind for IamBinding {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "grants a role to members on a project, keeping everything else in its policy",
            params: BindingParams::specs(),
            outputs: vec!["project", "role", "members"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("role", &checks::iam_role)
            .each("members", &checks::member)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let (project, grants, outputs) = wanted(cx)?;
        let policy = self.cloud.client().await?.project_policy(&project).await;
        let policy = absent_if_disabled(policy)
            .map_err(|e| classify(&self.cloud, &format!("reading the IAM policy of {project}"), e))?;
        let missing: Vec<&Grant> = grants
            .iter()
            .filter(|grant| {
                !policy
                    .as_ref()
                    .is_some_and(|p| p.holds(&grant.role, &grant.member))
            })
            .collect();
        if missing.is_empty() {
            return Ok(Observation::Converged(outputs));
        }
        let who: Vec<&str> = missing.iter().map(|g| g.member.as_str()).collect();
        Ok(Observation::Diverged(
            Change::create(format!(
                "grant {} to {} on {project}",
                grants[0].role,
                who.join(", ")
            ))
            .predicting(outputs),
        ))
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let (project, grants, outputs) = wanted(cx)?;
        self.cloud
            .client()
            .await?
            .add_project_grants(&project, &grants)
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("granting {} on {project}", grants[0].role),
                    e,
                )
            })?;
        Ok(Applied::Done(outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::member;

    #[test]
    fn bare_emails_become_members() {
        assert_eq!(
            member("service-1@gcp-sa-aiplatform-re.iam.gserviceaccount.com"),
            "serviceAccount:service-1@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
        );
        assert_eq!(member("group:ops@example.com"), "group:ops@example.com");
        assert_eq!(member("ana@example.com"), "user:ana@example.com");
    }
}
