//! `gcp.authz_extension`: a Network Services authorization extension (`authzExtensions`) that an
//! Agent Gateway's authorization policies call: IAP (request authorization) or Model Armor
//! (content authorization).
//!
//! - **Guarantees:** when the step succeeds, `projects/{project}/locations/{region}/authzExtensions/{extension_id}`
//!   exists with the step's `service`, `failOpen`, and (when given) `timeout`, `wireFormat` and
//!   Model Armor templates; `name` names it. It is created at most once: its id is chosen here,
//!   so a repeated create answers 409 ALREADY_EXISTS and the step adopts what the lost answer
//!   created. A field the step sets that drifted is patched (only that field, by `updateMask`).
//! - **Assumptions:** `service` is `iap` (→ `iap.googleapis.com`), `model_armor` (→
//!   `modelarmor.{region}.rep.googleapis.com`, the step's region: Model Armor and the gateway
//!   must share it) or a literal service Google accepts. The Model Armor templates go in the
//!   extension's `metadata` as Google's Model Armor integration names them:
//!   `model_armor_settings` = a JSON list of one `{"request_template_id", "response_template_id"}`
//!   (full template names). An extension named `extension_id` is ours.
//! - **Caveats:** refused at validation: a bad id, a Model Armor service or template in another
//!   region than `region`, templates on a service that is not Model Armor, a timeout outside
//!   Google's 10 ms–10 s. A `timeout` is Google's duration form (`0.5s`). Which policy profile may
//!   use the extension (IAP only from REQUEST_AUTHZ, Model Armor only from CONTENT_AUTHZ) is
//!   checked by Google when a policy names it. Fields the step does not set are left as found.

use serde_json::{json, Map, Value};
use sluice_engine::{async_trait, Change, KindSchema, ParamProblem, PollOutcome, StepContext, StepError};
use sluice_gcp::{Api, GcpError, OperationFamily};

use crate::authz;
use crate::checks;
use crate::cloud::Cloud;
use crate::common::encode;
use crate::reconcile::{Absent, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};

pub struct AuthzExtension {
    cloud: Cloud,
}

impl AuthzExtension {
    pub fn new(cloud: Cloud) -> Self {
        AuthzExtension { cloud }
    }
}

params! {
    /// The parameters of `gcp.authz_extension`.
    struct ExtensionParams {
        project: text => "project id",
        region: text => "region, like us-central1 (the gateway's)",
        extension_id: text => "extension id: lowercase letters, digits, -",
        service: text => "`iap`, `model_armor`, or a service name Google accepts",
        request_template: opt_text => "Model Armor template for prompts: projects/P/locations/REGION/templates/T",
        response_template: opt_text => "Model Armor template for responses: projects/P/locations/REGION/templates/T",
        fail_open: flag(false) => "let traffic through when the extension fails [default: false]",
        timeout: opt_text => "how long the gateway waits, like 0.5s (10 ms to 10 s)",
        wire_format: opt_text => "Google's wireFormat, like EXT_PROC_GRPC",
    }
}

/// The service a `service` parameter names, in `region`.
pub(crate) fn service_name(service: &str, region: &str) -> String {
    match service.trim() {
        "iap" => "iap.googleapis.com".to_string(),
        "model_armor" => format!("modelarmor.{region}.rep.googleapis.com"),
        other => other.to_string(),
    }
}

/// The region of a Model Armor service (`modelarmor.{region}.rep.googleapis.com`).
pub(crate) fn model_armor_region(service: &str) -> Option<&str> {
    service
        .strip_prefix("modelarmor.")?
        .strip_suffix(".rep.googleapis.com")
}

/// The region of a template name (`projects/P/locations/L/templates/T`).
fn template_region(template: &str) -> Option<&str> {
    match template.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", _, "locations", location, "templates", _] => Some(location),
        _ => None,
    }
}

fn timeout(text: &str) -> Result<(), String> {
    let seconds = text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok());
    if seconds.is_some_and(|s| (0.01..=10.0).contains(&s)) {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a timeout Google accepts: write seconds like 0.5s, between 0.01s and 10s"
        ))
    }
}

pub struct Wanted {
    project: String,
    region: String,
    extension_id: String,
    /// The settable fields the step sets, as Google shows them.
    fields: Map<String, Value>,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let params = ExtensionParams::parse(cx)?;
        let service = service_name(&params.service, &params.region);
        let mut fields = Map::new();
        fields.insert("service".into(), json!(service));
        fields.insert("failOpen".into(), json!(params.fail_open));
        if let Some(timeout) = params.timeout {
            fields.insert("timeout".into(), json!(timeout));
        }
        if let Some(format) = params.wire_format {
            fields.insert("wireFormat".into(), json!(format));
        }
        let mut settings = Map::new();
        if let Some(template) = params.request_template {
            settings.insert("request_template_id".into(), json!(template));
        }
        if let Some(template) = params.response_template {
            settings.insert("response_template_id".into(), json!(template));
        }
        if !settings.is_empty() {
            if model_armor_region(&service).is_none() {
                return Err(StepError::permanent(format!(
                    "step `{}`: Model Armor templates need `service: model_armor`, not `{service}`",
                    cx.step_id
                )));
            }
            let list = Value::Array(vec![Value::Object(settings)]).to_string();
            fields.insert("metadata".into(), json!({ "model_armor_settings": list }));
        }
        Ok(Wanted {
            project: params.project,
            region: params.region,
            extension_id: params.extension_id,
            fields,
        })
    }
    fn name(&self) -> String {
        format!(
            "projects/{}/locations/{}/authzExtensions/{}",
            self.project, self.region, self.extension_id
        )
    }
}

#[async_trait]
impl Resource for AuthzExtension {
    type Wanted = Wanted;
    type Live = Value;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an authorization extension (IAP or Model Armor) for Agent Gateway policies",
            params: ExtensionParams::specs(),
            outputs: vec!["name"],
        }
    }

    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        let mut problems = checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("region", &checks::region)
            .string("extension_id", &checks::resource_id)
            .string("timeout", &timeout)
            .done();
        let known = |key: &str| {
            params
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && !s.contains("${"))
        };
        let Some(region) = known("region") else {
            return problems;
        };
        let service = known("service").map(|s| service_name(s, region));
        if let Some(other) = service.as_deref().and_then(model_armor_region) {
            if other != region {
                problems.push(ParamProblem::new(
                    "service",
                    format!(
                        "Model Armor service {} is in region {other}, but the extension is in {region}: \
                         Model Armor and the gateway must share the region (use `model_armor`)",
                        service.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        for key in ["request_template", "response_template"] {
            let Some(template) = known(key) else { continue };
            if let Some(service) = service.as_deref().filter(|s| model_armor_region(s).is_none()) {
                problems.push(ParamProblem::new(
                    key,
                    format!("a Model Armor template needs `service: model_armor`, not `{service}`"),
                ));
            }
            match template_region(template) {
                None => problems.push(ParamProblem::new(
                    key,
                    format!("`{template}` is not a template name: write projects/P/locations/{region}/templates/T"),
                )),
                Some(other) if other != region => problems.push(ParamProblem::new(
                    key,
                    format!(
                        "template `{template}` is in region {other}, but the extension is in {region}: \
                         Model Armor templates must be in the gateway's region"
                    ),
                )),
                Some(_) => {}
            }
        }
        problems
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("authorization extension {}", wanted.name())
    }

    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Value>, StepError> {
        authz::read(
            &self.cloud,
            &Api::NetworkServices,
            &lookup.wanted.name(),
            lookup.reading,
        )
        .await
    }

    async fn examine(&self, step: Step<'_, Wanted>, live: &Value) -> Result<Verdict, StepError> {
        let wanted = step.wanted;
        Ok(authz::verdict(
            "authorization extension",
            &wanted.name(),
            &wanted.fields,
            live,
        ))
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create authorization extension {} ({})",
            wanted.name(),
            wanted.fields["service"].as_str().unwrap_or_default()
        ))
        .predicting(authz::outputs(&wanted.name()))
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let wanted = step.wanted;
        let path = format!(
            "v1/projects/{}/locations/{}/authzExtensions?authzExtensionId={}",
            wanted.project,
            wanted.region,
            encode(&wanted.extension_id)
        );
        authz::create(
            &self.cloud,
            OperationFamily::NetworkServices,
            &path,
            wanted.fields.clone(),
        )
        .await
    }

    fn create_refused(&self, step: Step<'_, Wanted>, e: GcpError) -> StepError {
        authz::refused(
            &self.cloud,
            &format!("creating {}", self.describe(step.wanted)),
            e,
        )
    }

    async fn patch(&self, step: Step<'_, Wanted>, live: Current<'_, Value>) -> Result<Mutated, StepError> {
        let wanted = step.wanted;
        authz::patch(
            &self.cloud,
            OperationFamily::NetworkServices,
            &wanted.name(),
            &wanted.fields,
            &live,
        )
        .await
    }

    async fn completed(&self, step: Step<'_, Wanted>, response: Value) -> Result<PollOutcome, StepError> {
        Ok(authz::completed(&step.wanted.name(), &response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_regions() {
        assert_eq!(service_name("iap", "us-central1"), "iap.googleapis.com");
        let armor = service_name("model_armor", "europe-west4");
        assert_eq!(armor, "modelarmor.europe-west4.rep.googleapis.com");
        assert_eq!(model_armor_region(&armor), Some("europe-west4"));
        assert_eq!(model_armor_region("iap.googleapis.com"), None);
        assert_eq!(
            template_region("projects/p/locations/us-east1/templates/t"),
            Some("us-east1")
        );
        assert_eq!(template_region("t"), None);
        assert!(timeout("0.5s").is_ok());
        assert!(timeout("11s").is_err());
        assert!(timeout("500ms").is_err());
    }

    #[test]
    fn check_refuses_another_region() {
        let params = json!({
            "project": "p-123456", "region": "us-central1", "extension_id": "armor",
            "service": "modelarmor.us-east1.rep.googleapis.com",
            "request_template": "projects/p/locations/us-east1/templates/t",
        });
        let problems = AuthzExtension::new(Cloud::new(Default::default())).check(params.as_object().unwrap());
        let params: Vec<_> = problems.iter().map(|p| p.param.as_str()).collect();
        assert_eq!(params, ["service", "request_template"], "{problems:?}");
    }
}
