//! `gcp.services`: the APIs a project needs, enabled.
//!
//! - **Guarantees:** every listed API is ENABLED when the step succeeds; one `batchGet` per 30
//!   APIs to observe, one `batchEnable` per 20 to apply (enabling an enabled API is harmless,
//!   so the call is retried safely).
//! - **Assumptions:** the caller may enable services (`serviceusage.services.enable`).
//! - **Caveats:** ENABLED is not yet usable: an API answers `SERVICE_DISABLED` for minutes
//!   after. Later steps treat that answer as "not yet" and retry within their window, so this
//!   step does not wait for it.

use serde_json::json;
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, OperationHandle, Outputs, PollOutcome, PollPolicy,
    StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, Operation, OperationFamily, Page, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify};

params! {
    /// The parameters of `gcp.services`.
    struct ServicesParams {
        project: text => "project id",
        services: list => "API names, like iam.googleapis.com",
    }
}

pub struct Services {
    cloud: Cloud,
}

impl Services {
    pub fn new(cloud: Cloud) -> Self {
        Services { cloud }
    }

    /// The listed APIs that are not ENABLED.
    async fn disabled(&self, project: &str, wanted: &[String]) -> Result<Vec<String>, StepError> {
        let client = self.cloud.client().await?;
        let mut disabled = Vec::new();
        for chunk in wanted.chunks(30) {
            let names: Vec<String> = chunk
                .iter()
                .map(|s| format!("names=projects/{project}/services/{s}"))
                .collect();
            let path = format!("v1/projects/{project}/services:batchGet?{}", names.join("&"));
            // A batchGet answer is a page of services: `{"done":false}` is not "none enabled".
            let answer = client
                .get_as::<Page>(&Api::ServiceUsage, &path)
                .await
                .map_err(|e| classify(&self.cloud, &format!("reading the APIs of project {project}"), e))?;
            let states = answer["services"].as_array().cloned().unwrap_or_default();
            for service in chunk {
                let enabled = states.iter().any(|s| {
                    s["name"]
                        .as_str()
                        .is_some_and(|n| n.ends_with(&format!("/services/{service}")))
                        && s["state"] == "ENABLED"
                });
                if !enabled {
                    disabled.push(service.clone());
                }
            }
        }
        Ok(disabled)
    }
}

fn outputs(project: &str, services: &[String]) -> Outputs {
    Outputs::from([
        ("project".to_string(), json!(project)),
        ("services".to_string(), json!(services)),
    ])
}

#[async_trait]
impl StepKind for Services {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "enables APIs in a project (Service Usage batchEnable)",
            params: ServicesParams::specs(),
            outputs: vec!["project", "services"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .each("services", &checks::service_name)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let ServicesParams {
            project,
            services: wanted,
        } = ServicesParams::parse(cx)?;
        let project = project.as_str();
        let disabled = self.disabled(project, &wanted).await?;
        Ok(if disabled.is_empty() {
            Observation::Converged(outputs(project, &wanted))
        } else {
            Observation::Diverged(
                Change::create(format!("enable {} in {project}", disabled.join(", ")))
                    .predicting(outputs(project, &wanted)),
            )
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let ServicesParams {
            project,
            services: wanted,
        } = ServicesParams::parse(cx)?;
        let project = project.as_str();
        let disabled = self.disabled(project, &wanted).await?;
        let client = self.cloud.client().await?;
        // batchEnable takes at most 20 ids; plans name fewer, so one operation is waited on and
        // any further chunk is enabled by the re-observe that follows.
        let Some(chunk) = disabled.chunks(20).next() else {
            return Ok(Applied::Done(outputs(project, &wanted)));
        };
        // An answer that is not an operation (no name) is a retried BAD_RESPONSE, never "done".
        let operation = client
            .post_as::<Operation>(
                &Api::ServiceUsage,
                &format!("v1/projects/{project}/services:batchEnable"),
                &json!({ "serviceIds": chunk }),
                PostRetry::Safe,
            )
            .await
            .map_err(|e| classify(&self.cloud, &format!("enabling APIs in {project}"), e))?;
        if operation.done {
            return Ok(Applied::Done(outputs(project, &wanted)));
        }
        Ok(Applied::Started(common::handle(
            &OperationFamily::ServiceUsage,
            &operation.name,
        )))
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud.get_poll_policy())
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let ServicesParams {
            project,
            services: wanted,
        } = ServicesParams::parse(cx)?;
        let project = project.as_str();
        match common::poll_once(&self.cloud, cx, handle).await? {
            Err(outcome) => Ok(outcome),
            Ok(_) => {
                // More than 20 APIs: the rest are enabled by observing again.
                if !self.disabled(project, &wanted).await?.is_empty() {
                    return Ok(PollOutcome::Failed(StepError::retryable(format!(
                        "some APIs of {project} are still disabled; enabling the rest"
                    ))));
                }
                Ok(PollOutcome::Done(outputs(project, &wanted)))
            }
        }
    }
}
