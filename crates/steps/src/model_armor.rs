//! `gcp.model_armor_template`: a read-only check that a Model Armor template exists.
//!
//! - **Guarantees:** when the step succeeds, the template `template_id` exists in project
//!   `project` and region `region`, and `name` names it
//!   (`projects/{p}/locations/{region}/templates/{t}`), ready for an authorization extension's
//!   metadata. The step never creates, changes or deletes anything: it only reads
//!   (`GET v1/projects/{p}/locations/{l}/templates/{t}` on `modelarmor.{region}.rep.googleapis.com`).
//! - **Assumptions:** Model Armor has no discovery document in the google-api-python-client
//!   package; the read is modelled from Google's REST reference (`projects.locations.templates`,
//!   resource `Template`). The caller may read templates (`modelarmor.templates.get`, e.g.
//!   roles/modelarmor.viewer) and `modelarmor.googleapis.com` is enabled in `project`.
//! - **Caveats:** a missing template is a permanent error naming the template, its project and
//!   region, and the fix (create it, or point the step at the project and region holding it):
//!   the plan stops before any later step mutates. The template's filters are not checked.

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, KindSchema, Observation, Outputs, StepContext, StepError, StepKind,
};
use sluice_gcp::Api;

use crate::checks;
use crate::cloud::Cloud;
use crate::common::classify;

params! {
    /// The parameters of `gcp.model_armor_template`.
    struct TemplateParams {
        project: text => "project id holding the template",
        region: text => "the template's region, like us-central1 (the gateway's region)",
        template_id: text => "the template id",
    }
}

pub struct ModelArmorTemplate {
    cloud: Cloud,
}

impl ModelArmorTemplate {
    pub fn new(cloud: Cloud) -> Self {
        ModelArmorTemplate { cloud }
    }

    /// Reads the template: its name, or a permanent error when it does not exist.
    async fn read(&self, cx: &StepContext) -> Result<Outputs, StepError> {
        let params = TemplateParams::parse(cx)?;
        let (project, region, id) = (&params.project, &params.region, &params.template_id);
        let name = format!("projects/{project}/locations/{region}/templates/{id}");
        let client = self.cloud.client().await?;
        let api = Api::ModelArmor {
            region: region.clone(),
        };
        match client.get(&api, &format!("v1/{name}")).await {
            Ok(template) => {
                let name = template["name"].as_str().unwrap_or(&name);
                Ok(Outputs::from([("name".to_string(), json!(name))]))
            }
            Err(e) if e.is_not_found() => Err(StepError::permanent(format!(
                "step `{}`: Model Armor template `{id}` does not exist in project {project}, region \
                 {region} ({e}). Create it there (`gcloud model-armor templates create {id} \
                 --project={project} --location={region}`), or set `project` and `region` to where \
                 it is; Model Armor and the gateway must share the region",
                cx.step_id
            ))),
            Err(e) => Err(classify(
                &self.cloud,
                &format!("reading Model Armor template {name}"),
                e,
            )),
        }
    }
}

#[async_trait]
impl StepKind for ModelArmorTemplate {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a Model Armor template that must exist (read only)",
            params: TemplateParams::specs(),
            outputs: vec!["name"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("region", &checks::region)
            .string("template_id", &checks::resource_id)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        Ok(Observation::Converged(self.read(cx).await?))
    }

    /// Never reached (observe converges or fails); reads again all the same.
    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        Ok(Applied::Done(self.read(cx).await?))
    }
}
