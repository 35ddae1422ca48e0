//! `gcp.billing`: a project linked to a billing account.
//!
//! - **Guarantees:** when the step succeeds, project `project` is linked to `billing_account`
//!   and billing is enabled on it (`billingEnabled`); output `billing_account`. A project
//!   already linked to that account is left alone (no call but the read).
//! - **Assumptions:** the caller may link projects to the account
//!   (`billing.resourceAssociations.create`, e.g. roles/billing.user on the account) and may
//!   change the project's billing (`resourcemanager.projects.createBillingAssignment`, which a
//!   project owner has). A project linked to another account is relinked: the plan says which
//!   account the project must use. Cloud Billing is client-based: its API must be enabled in
//!   the caller's quota project.
//! - **Caveats:** refusals are permanent and per project, never retried: an account the caller
//!   cannot use (or that does not exist: Google does not tell them apart, 403), a closed account,
//!   and an account that already holds as many projects as it may (400 FAILED_PRECONDITION,
//!   "Cloud billing quota exceeded"). The step never unlinks.

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, GcpError};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::classify;

params! {
    /// The parameters of `gcp.billing`.
    struct BillingParams {
        project: text => "project id",
        billing_account: text => "billingAccounts/XXXXXX-XXXXXX-XXXXXX",
    }
}

pub struct Billing {
    cloud: Cloud,
}

impl Billing {
    pub fn new(cloud: Cloud) -> Self {
        Billing { cloud }
    }

    fn path(project: &str) -> String {
        format!("v1/projects/{project}/billingInfo")
    }

    /// The account the project is linked to ("" for none) and whether billing is enabled.
    async fn read(&self, project: &str) -> Result<(String, bool), StepError> {
        let client = self.cloud.client().await?;
        let info = client
            .get(&Api::CloudBilling, &Self::path(project))
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("reading the billing of project {project}"),
                    e,
                )
            })?;
        Ok((
            info["billingAccountName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            info["billingEnabled"].as_bool().unwrap_or(false),
        ))
    }

    fn refusal(&self, cx: &StepContext, project: &str, account: &str, e: GcpError) -> StepError {
        if e.is_permission_denied() && !e.is_service_disabled() {
            return StepError::permanent(format!(
                "step `{}`: linking project {project} to {account}: {e}. The caller cannot link projects \
                 to {account} (it needs billing.resourceAssociations.create on the account, e.g. \
                 roles/billing.user), or the account does not exist (`gcloud billing accounts list`)",
                cx.step_id
            ));
        }
        if e.is_failed_precondition() {
            return StepError::permanent(format!(
                "step `{}`: linking project {project} to {account}: {e}. Fix the account: reopen it if \
                 it is closed, raise its project limit (Google's \"billing quota increase\" form) or \
                 unlink a project from it, or give this project another `billing_account`",
                cx.step_id
            ));
        }
        classify(&self.cloud, &format!("linking project {project} to {account}"), e)
    }
}

fn outputs(account: &str) -> Outputs {
    Outputs::from([("billing_account".to_string(), json!(account))])
}

#[async_trait]
impl StepKind for Billing {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a project linked to a billing account",
            params: BillingParams::specs(),
            outputs: vec!["billing_account"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("billing_account", &checks::billing_account)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let params = BillingParams::parse(cx)?;
        let (project, account) = (params.project.as_str(), params.billing_account.as_str());
        let (linked, enabled) = self.read(project).await?;
        if linked == account && enabled {
            return Ok(Observation::Converged(outputs(account)));
        }
        let summary = if linked.is_empty() {
            format!("link project {project} to {account}")
        } else {
            format!("link project {project} to {account} (now {linked}, billing enabled: {enabled})")
        };
        Ok(Observation::Diverged(
            Change::update(summary).predicting(outputs(account)),
        ))
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let params = BillingParams::parse(cx)?;
        let (project, account) = (params.project.as_str(), params.billing_account.as_str());
        let client = self.cloud.client().await?;
        let body = json!({ "billingAccountName": account });
        // A PUT of the same link twice leaves the same state: retried by the client.
        let info: Value = client
            .put_as(&Api::CloudBilling, &Self::path(project), &body)
            .await
            .map_err(|e| self.refusal(cx, project, account, e))?;
        if info["billingAccountName"].as_str() != Some(account) || info["billingEnabled"] != true {
            return Err(StepError::retryable(format!(
                "linking project {project} to {account} answered {info}; observing again"
            )));
        }
        Ok(Applied::Done(outputs(account)))
    }
}
