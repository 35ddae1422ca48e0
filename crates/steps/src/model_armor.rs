//! `gcp.model_armor_template`: a read-only check that a Model Armor template exists.
//!
//! - **Guarantees:** when the step succeeds, the template `template_id` (and
//!   `response_template_id`, when given) exists in project `template_project` (else `project`)
//!   and region `region`; `name` names the first (`projects/{p}/locations/{region}/templates/{t}`),
//!   `response_name` the second (or the first again) and `project` the project holding them,
//!   ready for an authorization extension's metadata and the cross-project grants. The step never creates, changes or deletes anything: it only reads
//!   (`GET v1/projects/{p}/locations/{l}/templates/{t}` on `modelarmor.{region}.rep.googleapis.com`).
//! - **Assumptions:** Model Armor has no discovery document in the google-api-python-client
//!   package; the read is modelled from Google's REST reference (`projects.locations.templates`,
//!   resource `Template`). The caller may read templates (`modelarmor.templates.get`, e.g.
//!   roles/modelarmor.viewer) and `modelarmor.googleapis.com` is enabled in `project`.
//! - **Caveats:** a missing template is a permanent error naming the template, its project and
//!   region, and the fix (create it, or point the step at the project and region holding it):
//!   the plan stops before any later step mutates. The template's filters are not checked.
//!   Model Armor not enabled yet where the templates are is not a failure when observed (an
//!   earlier step of the plan may enable it, so `sluice plan` shows the check still to do); the
//!   step then reads again, strictly, when it runs: if nobody enabled the API, that read fails
//!   at once naming it.

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, StepContext, StepError, StepKind,
};
use sluice_gcp::Api;

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{classify, Reading};

params! {
    /// The parameters of `gcp.model_armor_template`.
    struct TemplateParams {
        project: text => "project id (of the gateway); the templates' too unless template_project is set",
        template_project: opt_text => "project holding the templates, when not `project`",
        region: text => "the templates' region, like us-central1 (the gateway's region)",
        template_id: text => "the template screening prompts (and responses, unless response_template_id)",
        response_template_id: opt_text => "a second template, screening responses",
    }
}

pub struct ModelArmorTemplate {
    cloud: Cloud,
}

impl ModelArmorTemplate {
    pub fn new(cloud: Cloud) -> Self {
        ModelArmorTemplate { cloud }
    }

    /// Reads the templates: their names, or a permanent error when one does not exist. With
    /// `Reading::Observe`, Model Armor not enabled yet gives `None` (an earlier step of the plan
    /// may enable it); with `Reading::Apply` it is an error (permanent when nobody enabled it).
    async fn read(&self, cx: &StepContext, reading: Reading) -> Result<Option<Outputs>, StepError> {
        let params = TemplateParams::parse(cx)?;
        let project = params.template_project.as_deref().unwrap_or(&params.project);
        let read = |id: &str| self.read_one(cx, project, &params.region, id.to_string(), reading);
        let Some(prompts) = read(&params.template_id).await? else {
            return Ok(None);
        };
        let responses = match &params.response_template_id {
            Some(id) => match read(id).await? {
                Some(name) => name,
                None => return Ok(None),
            },
            None => prompts.clone(),
        };
        Ok(Some(Outputs::from([
            ("name".to_string(), json!(prompts)),
            ("response_name".to_string(), json!(responses)),
            ("project".to_string(), json!(project)),
        ])))
    }

    /// The name of template `id` in `project` and `region`, read from Model Armor.
    async fn read_one(
        &self,
        cx: &StepContext,
        project: &str,
        region: &str,
        id: String,
        reading: Reading,
    ) -> Result<Option<String>, StepError> {
        let name = format!("projects/{project}/locations/{region}/templates/{id}");
        let client = self.cloud.client().await?;
        let api = Api::ModelArmor {
            region: region.to_string(),
        };
        match client.get(&api, &format!("v1/{name}")).await {
            // An answer is parsed into the field relied on; one without it is never success.
            Ok(template) => match template["name"].as_str() {
                Some(found) => Ok(Some(found.to_string())),
                None => Err(StepError::retryable(format!(
                    "step `{}`: Model Armor answered the read of {name} without the template's name",
                    cx.step_id
                ))),
            },
            Err(e) if reading == Reading::Observe && e.is_service_disabled() => Ok(None),
            Err(e) if e.is_not_found() => Err(StepError::permanent(format!(
                "step `{}`: Model Armor template `{id}` does not exist in project {project}, region \
                 {region} ({e}). Create it there (`gcloud model-armor templates create {id} \
                 --project={project} --location={region}`), or point the step at the project \
                 (`template_project`) and region holding it; Model Armor and the gateway must \
                 share the region",
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
            outputs: vec!["name", "response_name", "project"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("template_project", &checks::project_id)
            .string("region", &checks::region)
            .string("template_id", &checks::template_id)
            .string("response_template_id", &checks::template_id)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        Ok(match self.read(cx, Reading::Observe).await? {
            Some(outputs) => Observation::Converged(outputs),
            // Nothing will change: `apply` only reads, strictly, once the plan got this far.
            None => Observation::Diverged(Change::update(
                "check the templates once Model Armor is enabled (not yet where they are)",
            )),
        })
    }

    /// Reached only when `observe` found Model Armor not enabled; reads again, strictly.
    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        match self.read(cx, Reading::Apply).await? {
            Some(outputs) => Ok(Applied::Done(outputs)),
            None => Err(StepError::retryable(format!(
                "step `{}`: Model Armor answered neither the templates nor an error",
                cx.step_id
            ))),
        }
    }
}
