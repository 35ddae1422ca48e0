//! `gcp.project`: looks a project up by id (read only), so plans never ask for its number.
//!
//! - **Guarantees:** outputs `project_id`, `project_number` and `parent`
//!   (`organizations/N` or `folders/N`; empty while Resource Manager is not usable yet in the
//!   project, when the number comes from Service Usage instead); makes no mutation, ever.
//! - **Assumptions:** the project exists and the caller may read it
//!   (`resourcemanager.projects.get`).
//! - **Caveats:** a project that cannot be read fails the step: nothing here can create one.

use serde_json::json;
use sluice_engine::{
    async_trait, Applied, KindSchema, Observation, Outputs, StepContext, StepError, StepKind,
};
use sluice_gcp::Api;

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{classify, number_of};

params! {
    /// The parameters of `gcp.project`.
    struct ProjectParams {
        project: text => "project id",
    }
}

pub struct Project {
    cloud: Cloud,
}

impl Project {
    pub fn new(cloud: Cloud) -> Self {
        Project { cloud }
    }

    fn failure(&self, project: &str, e: sluice_gcp::GcpError) -> StepError {
        if e.is_not_found() || e.is_permission_denied() {
            StepError::permanent(format!(
                "project `{project}` does not exist or the caller cannot read it \
                 (resourcemanager.projects.get): {e}"
            ))
        } else {
            classify(&self.cloud, &format!("reading project {project}"), e)
        }
    }
}

#[async_trait]
impl StepKind for Project {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "looks a project up by id: its number and parent (read only)",
            params: ProjectParams::specs(),
            outputs: vec!["project_id", "project_number", "parent"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let ProjectParams { project } = ProjectParams::parse(cx)?;
        let project = project.as_str();
        let client = self.cloud.client().await?;
        let found = match client
            .get(&Api::ResourceManager, &format!("v3/projects/{project}"))
            .await
        {
            Ok(found) => found,
            // Resource Manager not usable yet in a fresh project: Service Usage (always on)
            // names the project by number too; only the parent stays unknown.
            Err(e) if e.is_service_disabled() => {
                let path = format!("v1/projects/{project}/services/serviceusage.googleapis.com");
                let service = client
                    .get(&Api::ServiceUsage, &path)
                    .await
                    .map_err(|e| self.failure(project, e))?;
                json!({ "name": service["parent"], "projectId": project, "parent": "" })
            }
            Err(e) => return Err(self.failure(project, e)),
        };
        let name = found["name"].as_str().unwrap_or_default();
        // Every project has a number: an answer without one is a bad answer, read again.
        let number = number_of(name).ok_or_else(|| {
            StepError::retryable(format!(
                "project `{project}`: the answer names no project number ({:?}); reading again",
                sluice_gcp::bounded(name, 100)
            ))
        })?;
        Ok(Observation::Converged(Outputs::from([
            (
                "project_id".to_string(),
                json!(found["projectId"].as_str().unwrap_or(project)),
            ),
            ("project_number".to_string(), json!(number)),
            ("parent".to_string(), found["parent"].clone()),
        ])))
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        Err(StepError::permanent(format!(
            "step `{}`: gcp.project only reads; it never changes anything",
            cx.step_id
        )))
    }
}
