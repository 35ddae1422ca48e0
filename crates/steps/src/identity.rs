//! `gcp.service_identity`: the Vertex AI service agents exist (generateServiceIdentity).
//!
//! - **Guarantees:** outputs the emails of the Vertex AI service agent
//!   (`service-N@gcp-sa-aiplatform`), the Reasoning Engine service agent (`…-re`) and the
//!   Service Extensions service agent (`…@gcp-sa-dep`) of project number N.
//! - **Assumptions:** generateServiceIdentity is idempotent (Google returns the same identity
//!   again), so the call is retried safely; it answers an operation that is already done, which
//!   is never polled.
//! - **Caveats:** Google offers no read of a service agent. The step counts the agents as
//!   existing once the Reasoning Engine agent is a member of the project's IAM policy (which the
//!   binding steps make it), so a first run calls generateServiceIdentity and a re-run only reads
//!   the policy. A freshly generated agent is not usable in IAM policies for a while; the
//!   binding steps wait for that.

use serde_json::json;
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, Operation, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{absent_if_disabled, classify};

params! {
    /// The parameters of `gcp.service_identity`.
    struct IdentityParams {
        project: text => "project id",
        project_number: number => "project number (from gcp.project)",
    }
}

pub struct ServiceIdentity {
    cloud: Cloud,
}

impl ServiceIdentity {
    pub fn new(cloud: Cloud) -> Self {
        ServiceIdentity { cloud }
    }
}

fn emails(number: &str) -> Outputs {
    Outputs::from([
        (
            "aiplatform_agent".to_string(),
            json!(format!(
                "service-{number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
            )),
        ),
        (
            "reasoning_engine_agent".to_string(),
            json!(format!(
                "service-{number}@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
            )),
        ),
        (
            "service_extensions_agent".to_string(),
            json!(format!("service-{number}@gcp-sa-dep.iam.gserviceaccount.com")),
        ),
    ])
}

#[async_trait]
impl StepKind for ServiceIdentity {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "ensures the Vertex AI service agents exist (generateServiceIdentity)",
            params: IdentityParams::specs(),
            outputs: vec![
                "aiplatform_agent",
                "reasoning_engine_agent",
                "service_extensions_agent",
            ],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("project_number", &checks::number)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let params = IdentityParams::parse(cx)?;
        let project = params.project.as_str();
        let number = params.project_number.to_string();
        let outputs = emails(&number);
        let agent = format!(
            "serviceAccount:{}",
            outputs["reasoning_engine_agent"].as_str().unwrap_or_default()
        );
        let policy = self.cloud.client().await?.project_policy(project).await;
        let policy = absent_if_disabled(policy)
            .map_err(|e| classify(&self.cloud, &format!("reading the IAM policy of {project}"), e))?;
        let known = policy.is_some_and(|p| p.bindings.iter().any(|b| b.members.contains(&agent)));
        Ok(if known {
            Observation::Converged(outputs)
        } else {
            Observation::Diverged(
                Change::create(format!("generate the Vertex AI service agents of {project}"))
                    .predicting(outputs),
            )
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let params = IdentityParams::parse(cx)?;
        let project = params.project.as_str();
        let number = params.project_number.to_string();
        let answer = self
            .cloud
            .client()
            .await?
            .post_as::<Operation>(
                &Api::ServiceUsage,
                &format!(
                    "v1beta1/projects/{project}/services/aiplatform.googleapis.com:generateServiceIdentity"
                ),
                &json!({}),
                PostRetry::Safe,
            )
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("generating the service agents of {project}"),
                    e,
                )
            })?;
        // Done when returned (`finished.DONE_OPERATION`): never polled. An answer without the
        // agent's email is a bad answer, not a generated agent: the call is made again.
        let email = answer
            .response
            .as_ref()
            .and_then(|r| r["email"].as_str())
            .filter(|_| answer.done);
        let Some(email) = email else {
            return Err(StepError::retryable(format!(
                "generateServiceIdentity for {project} answered no service agent email (a bad answer); \
                 calling it again"
            )));
        };
        let expected = emails(&number);
        if expected["aiplatform_agent"] != email {
            return Err(StepError::permanent(format!(
                "generateServiceIdentity answered {email}, not the agent of project number {number}: \
                 is `project_number` the number of `{project}`?"
            )));
        }
        Ok(Applied::Done(emails(&number)))
    }
}
