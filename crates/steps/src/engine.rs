//! `gcp.reasoning_engine`: an agent deployed to Vertex AI Agent Runtime (a reasoning engine),
//! optionally bound to Agent Gateways, running as its own agent identity.
//!
//! - **Guarantees:** when the step succeeds, exactly one engine of this step exists in the
//!   project and region (display name `display_name`), bound to exactly the wanted gateways
//!   (`egress_gateway` → `agentToAnywhereConfig`, `ingress_gateway` → `clientToAgentConfig`),
//!   with `spec.identityType: AGENT_IDENTITY`, and no create, update or delete of it still
//!   running. Outputs `name` as the server names it
//!   (`projects/NUMBER/locations/L/reasoningEngines/ID`), `engine_id` and
//!   `effective_identity`. The engine is never created twice: Google chooses its id, so the
//!   create is sent once (`PostRetry::Unsafe`) and `apply` observes again right before it; a
//!   lost answer is found afterwards by the `sluice-key` label (the run's idempotency key) or
//!   the display name.
//! - **Assumptions:** within a project and region, the display name identifies the agent:
//!   an engine with this display name (or this step's `sluice-key` label) is this step's
//!   engine, whichever plan version created it. Code is given as `package` (pickled object
//!   and files in Cloud Storage) or `source_dir` (a local directory, sent inline as a tar.gz).
//!   An existing engine's code, labels and description are not compared or updated.
//! - **Caveats:** Google cannot unbind or re-bind an engine from its gateway: an existing
//!   engine bound differently from what the plan asks is a permanent error raised before any
//!   call that changes anything; the fix is to delete that engine or give the step a new
//!   `display_name` (a second engine). A deploy that fails because the service agent's grant on
//!   the gateway has not propagated yet, or the gateway is not there yet (operation error 9 or
//!   7), sends the step back to observe: the failed engine is gone by then and a new one is
//!   created. An organisation policy refusing the gateway is a permanent error naming the
//!   constraint. An engine found while an operation on it (its create, an update, a delete) is
//!   still running is not deployed yet: the step waits on that operation (listed with
//!   `reasoningEngines.operations.list`), then observes again, so a create that fails is never
//!   taken for a deployed engine. An existing engine without agent identity (another
//!   `identityType`, or none) is drift: it is patched (`updateMask=spec.identityType`, and
//!   `spec.serviceAccount`, which agent identity must not have); should Vertex AI refuse that
//!   patch, the step fails permanently, naming the engine and how to replace it.
//!   With `uses_vertex_ai`, the agent declares it calls Gemini on Vertex AI
//!   (`deploymentSpec.env` GOOGLE_GENAI_USE_VERTEXAI=TRUE; an existing engine's env is not
//!   compared). A deploy of such an agent that fails while its egress gateway's authorization
//!   policies (read back from Network Security) deny `REGION-aiplatform.googleapis.com` is a
//!   permanent error naming the policy and the ALLOW to add: another deploy would fail alike.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};
use sluice_engine::{
    async_trait, Change, KindSchema, Outputs, PollOutcome, PollPolicy, StepContext, StepError,
};
use sluice_gcp::{Api, GcpError, OperationFamily, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify, encode, key_token, Reading};
use crate::egress_access::{self, Decision, Policy};
use crate::reconcile::{Absent, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};

/// The label carrying the step's idempotency key (as [`key_token`]).
pub const KEY_LABEL: &str = "sluice-key";

pub struct ReasoningEngine {
    cloud: Cloud,
}

impl ReasoningEngine {
    pub fn new(cloud: Cloud) -> Self {
        ReasoningEngine { cloud }
    }
}

/// The `package` parameter's keys and their names on the wire (`spec.packageSpec`).
const PACKAGE_FIELDS: [(&str, &str); 4] = [
    ("pickle_object_gcs_uri", "pickleObjectGcsUri"),
    ("dependency_files_gcs_uri", "dependencyFilesGcsUri"),
    ("requirements_gcs_uri", "requirementsGcsUri"),
    ("python_version", "pythonVersion"),
];

params! {
    /// The parameters of `gcp.reasoning_engine`.
    struct EngineParams {
        project: text => "project id",
        region: text => "region, like us-central1",
        display_name: text => "display name; identifies the engine",
        description: opt_text => "description",
        egress_gateway: opt_text => "full name of an egress (AGENT_TO_ANYWHERE) gateway",
        ingress_gateway: opt_text => "full name of an ingress (CLIENT_TO_AGENT) gateway",
        package: object => "code in Cloud Storage: pickle_object_gcs_uri, dependency_files_gcs_uri, \
                            requirements_gcs_uri, python_version",
        source_dir: opt_text => "local source directory, sent inline",
        python_version: opt_text => "with source_dir: Python version",
        entrypoint_module: opt_text => "with source_dir: module",
        entrypoint_object: opt_text => "with source_dir: object",
        requirements_file: opt_text => "with source_dir: requirements file",
        labels: object => "labels (sluice-key is added)",
        uses_vertex_ai: flag(false) => "the agent calls Gemini on Vertex AI (its deployment gets \
                                        GOOGLE_GENAI_USE_VERTEXAI=TRUE), so it must reach \
                                        REGION-aiplatform.googleapis.com [default: false]",
    }
}

pub struct Wanted {
    project: String,
    region: String,
    display_name: String,
    egress: Option<String>,
    ingress: Option<String>,
    token: String,
    labels: Map<String, Value>,
    description: Option<String>,
    /// The LLM endpoint the agent declares it reaches (through its egress gateway, if any).
    llm_host: Option<String>,
    /// The code's parameters, packed only when a create is sent.
    code: EngineParams,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let params = EngineParams::parse(cx)?;
        let token = key_token(&cx.idempotency_key);
        let mut labels = match &params.labels {
            None => Map::new(),
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    if !value.is_string() {
                        return Err(StepError::permanent(format!(
                            "step `{}`: label `{key}` must be a string, found {value}",
                            cx.step_id
                        )));
                    }
                }
                labels.clone()
            }
            Some(other) => {
                return Err(StepError::permanent(format!(
                    "step `{}`: `labels` must be an object of strings, found {other}",
                    cx.step_id
                )))
            }
        };
        labels.insert(KEY_LABEL.to_string(), json!(token));
        Ok(Wanted {
            project: params.project.clone(),
            region: params.region.clone(),
            display_name: params.display_name.clone(),
            egress: params.egress_gateway.clone(),
            ingress: params.ingress_gateway.clone(),
            token,
            labels,
            description: params.description.clone(),
            llm_host: (params.uses_vertex_ai).then(|| egress_access::vertex_ai_host(&params.region)),
            code: params,
        })
    }
    fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }
    fn family(&self) -> OperationFamily {
        OperationFamily::VertexAi {
            region: self.region.clone(),
        }
    }
    fn api(&self) -> Api {
        self.family().api()
    }
    /// The wanted gateway config, as `spec.deploymentSpec.agentGatewayConfig`.
    fn gateway_config(&self) -> Option<Value> {
        if self.egress.is_none() && self.ingress.is_none() {
            return None;
        }
        let mut config = json!({});
        if let Some(egress) = &self.egress {
            config["agentToAnywhereConfig"] = json!({ "agentGateway": egress });
        }
        if let Some(ingress) = &self.ingress {
            config["clientToAgentConfig"] = json!({ "agentGateway": ingress });
        }
        Some(config)
    }
    fn describe_gateways(egress: &Option<String>, ingress: &Option<String>) -> String {
        let one = |g: &Option<String>| g.clone().unwrap_or_else(|| "none".into());
        format!("egress {}, ingress {}", one(egress), one(ingress))
    }
}

/// The (egress, ingress) gateways an engine is bound to.
fn bound(engine: &Value) -> (Option<String>, Option<String>) {
    let config = &engine["spec"]["deploymentSpec"]["agentGatewayConfig"];
    let name = |v: &Value| {
        v["agentGateway"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    (
        name(&config["agentToAnywhereConfig"]),
        name(&config["clientToAgentConfig"]),
    )
}

/// A gateway name without its project (`locations/L/agentGateways/ID`): Google may name the
/// project by number where the plan used its id, and a gateway must be in the engine's project.
fn gateway_key(name: &Option<String>) -> Option<String> {
    name.as_ref().map(|n| match n.find("/locations/") {
        Some(at) if n.starts_with("projects/") => n[at + 1..].to_string(),
        _ => n.clone(),
    })
}

fn outputs_of(engine: &Value) -> Outputs {
    let name = engine["name"].as_str().unwrap_or_default();
    Outputs::from([
        ("name".to_string(), json!(name)),
        (
            "engine_id".to_string(),
            json!(name.rsplit('/').next().unwrap_or_default()),
        ),
        (
            "effective_identity".to_string(),
            engine["spec"]["effectiveIdentity"].clone(),
        ),
    ])
}

/// The constraint named in an Org Policy refusal (`customConstraints/…`), if any.
fn constraint_in(message: &str) -> Option<String> {
    let at = message.find("customConstraints/")?;
    let name: String = message[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        .collect();
    Some(name)
}

/// Builds `spec.packageSpec` or `spec.sourceCodeSpec` from the parameters.
fn code_spec(step_id: &str, code: &EngineParams) -> Result<(&'static str, Value), StepError> {
    let package = code.package.as_ref();
    let source_dir = code.source_dir.as_deref();
    match (package, source_dir) {
        (Some(_), Some(_)) | (None, None) => Err(StepError::permanent(format!(
            "step `{}`: give exactly one of `package` (code in Cloud Storage) and `source_dir` \
             (a local directory)",
            step_id
        ))),
        (Some(package), None) => {
            let Some(object) = package.as_object() else {
                return Err(StepError::permanent(format!(
                    "step `{}`: `package` must be an object with {}",
                    step_id,
                    PACKAGE_FIELDS.map(|(k, _)| k).join(", ")
                )));
            };
            let mut spec = Map::new();
            for (key, value) in object {
                let Some((_, wire)) = PACKAGE_FIELDS.iter().find(|(k, _)| k == key) else {
                    return Err(StepError::permanent(format!(
                        "step `{}`: `package.{key}` is unknown; the keys are {}",
                        step_id,
                        PACKAGE_FIELDS.map(|(k, _)| k).join(", ")
                    )));
                };
                match value.as_str() {
                    Some(text) if !text.trim().is_empty() => {
                        spec.insert(wire.to_string(), json!(text));
                    }
                    // Empty or null leaves the field out (plans pass optional URIs as "").
                    Some(_) => {}
                    None if value.is_null() => {}
                    _ => {
                        return Err(StepError::permanent(format!(
                            "step `{}`: `package.{key}` must be a non-empty string",
                            step_id
                        )))
                    }
                }
            }
            if !spec.contains_key("pickleObjectGcsUri") {
                return Err(StepError::permanent(format!(
                    "step `{}`: `package.pickle_object_gcs_uri` is required (gs://… of the pickled agent)",
                    step_id
                )));
            }
            Ok(("packageSpec", Value::Object(spec)))
        }
        (None, Some(dir)) => {
            let archive = crate::archive::tar_gz_base64(Path::new(dir)).map_err(|e| {
                StepError::permanent(format!("step `{}`: cannot pack `source_dir` {dir}: {e}", step_id))
            })?;
            let mut python = Map::new();
            for (value, wire) in [
                (&code.python_version, "version"),
                (&code.entrypoint_module, "entrypointModule"),
                (&code.entrypoint_object, "entrypointObject"),
                (&code.requirements_file, "requirementsFile"),
            ] {
                if let Some(value) = value {
                    python.insert(wire.to_string(), json!(value));
                }
            }
            Ok((
                "sourceCodeSpec",
                json!({
                    "inlineSource": { "sourceArchive": archive },
                    "pythonSpec": python,
                }),
            ))
        }
    }
}

/// Whether an engine runs as its own agent identity.
fn has_agent_identity(engine: &Value) -> bool {
    engine["spec"]["identityType"] == "AGENT_IDENTITY"
}

impl ReasoningEngine {
    /// Engines matching `filter` (all pages).
    async fn list(&self, wanted: &Wanted, filter: &str, reading: Reading) -> Result<Vec<Value>, StepError> {
        let path = format!(
            "v1/{}/reasoningEngines?pageSize=100&filter={}",
            wanted.parent(),
            encode(filter)
        );
        let client = self.cloud.client().await?;
        common::list_all(client, &wanted.api(), &path, "reasoningEngines", reading)
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("listing the reasoning engines of {}", wanted.parent()),
                    e,
                )
            })
    }

    /// The name of an operation on `engine` still running (its create, an update, a delete),
    /// if there is one: until it ends, the engine is not known to be deployed.
    async fn running_operation(&self, wanted: &Wanted, engine: &Value) -> Result<Option<String>, StepError> {
        let name = engine["name"].as_str().unwrap_or_default();
        let path = format!("v1/{name}/operations?pageSize=100");
        let client = self.cloud.client().await?;
        // The first operation still running is the answer: no page after it is read.
        let running =
            common::find_in_pages(client, &wanted.api(), &path, "operations", Reading::Apply, |op| {
                op["name"]
                    .as_str()
                    .filter(|_| op["done"] != true)
                    .map(str::to_string)
            })
            .await;
        match running {
            Ok(running) => Ok(running),
            // Listed a moment ago: a failed create has just ended and taken the engine with it.
            Err(e) if e.is_not_found() => Err(StepError::retryable(format!(
                "reasoning engine {name} disappeared while it was read; observing again"
            ))),
            Err(e) => Err(classify(
                &self.cloud,
                &format!("listing the operations of reasoning engine {name}"),
                e,
            )),
        }
    }

    fn body(&self, cx: &StepContext, wanted: &Wanted) -> Result<Value, StepError> {
        let (field, code) = code_spec(&cx.step_id, &wanted.code)?;
        let mut spec = json!({ "identityType": "AGENT_IDENTITY" });
        spec[field] = code;
        if let Some(config) = wanted.gateway_config() {
            spec["deploymentSpec"]["agentGatewayConfig"] = config;
        }
        if wanted.llm_host.is_some() {
            // What makes an ADK or google-genai agent call Gemini on Vertex AI; the platform
            // sets the project and location itself.
            spec["deploymentSpec"]["env"] = json!([{ "name": "GOOGLE_GENAI_USE_VERTEXAI", "value": "TRUE" }]);
        }
        let mut body = json!({
            "displayName": wanted.display_name,
            "labels": wanted.labels,
            "spec": spec,
        });
        if let Some(description) = &wanted.description {
            body["description"] = json!(description);
        }
        Ok(body)
    }

    /// A refused deploy or update, classified; an organisation policy refusal names its
    /// constraint and what to ask for.
    fn refusal(&self, wanted: &Wanted, doing: &str, e: GcpError) -> StepError {
        if e.is_failed_precondition() {
            if let Some(constraint) = constraint_in(&e.message) {
                return StepError::permanent(format!(
                    "{doing}: the organisation policy {constraint} refused it: the gateway ({}) is not \
                     on the organisation's allowlist. Ask an organisation policy administrator to allow \
                     it in {constraint}. {e}",
                    Wanted::describe_gateways(&wanted.egress, &wanted.ingress)
                ));
            }
        }
        classify(&self.cloud, doing, e)
    }
}

/// How an engine's identity reads in a message.
fn identity_of(engine: &Value) -> String {
    let kind = engine["spec"]["identityType"]
        .as_str()
        .unwrap_or("no identityType");
    match engine["spec"]["effectiveIdentity"].as_str() {
        Some(identity) => format!("{kind}, running as {identity}"),
        None => kind.to_string(),
    }
}

#[async_trait]
impl Resource for ReasoningEngine {
    type Wanted = Wanted;
    type Live = Value;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an agent on Vertex AI Agent Runtime (reasoning engine), bound to Agent Gateways",
            params: EngineParams::specs(),
            outputs: vec!["name", "engine_id", "effective_identity"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("region", &checks::region)
            .string(
                "display_name",
                &checks::max_chars(128, "a Vertex AI display name"),
            )
            .string("egress_gateway", &crate::constraint::check_gateway)
            .string("ingress_gateway", &crate::constraint::check_gateway)
            .string("package.pickle_object_gcs_uri", &checks::gcs_uri)
            .string("package.dependency_files_gcs_uri", &checks::gcs_uri)
            .string("package.requirements_gcs_uri", &checks::gcs_uri)
            .string("package.python_version", &checks::python_version)
            .string("python_version", &checks::python_version)
            .done()
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    /// The code's parameters are checked before anything is reported as a change.
    fn preflight(&self, step: Step<'_, Wanted>) -> Result<(), StepError> {
        let Step { cx, wanted } = step;
        code_spec(&cx.step_id, &wanted.code).map(drop)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("reasoning engine `{}`", wanted.display_name)
    }

    /// Google chooses the id: what this step created carries its `sluice-key` label.
    async fn by_label(&self, step: Step<'_, Wanted>, reading: Reading) -> Result<Vec<Value>, StepError> {
        let Step { wanted, .. } = step;
        let filter = format!("labels.{KEY_LABEL}=\"{}\"", wanted.token);
        self.list(wanted, &filter, reading).await
    }

    /// This step's engine among those `labelled` and those named `display_name`, if one
    /// exists; a permanent error when it cannot be used as is.
    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Value>, StepError> {
        let Lookup {
            cx,
            wanted,
            reading,
            labelled,
        } = lookup;
        let by_name = format!("display_name=\"{}\"", wanted.display_name.replace('"', "\\\""));
        let named = self.list(wanted, &by_name, reading).await?;
        let found: BTreeMap<&str, &Value> = labelled
            .iter()
            .chain(&named)
            .filter_map(|engine| Some((engine["name"].as_str()?, engine)))
            .collect();
        if found.len() > 1 {
            let names: Vec<&str> = found.keys().copied().collect();
            return Err(StepError::permanent(format!(
                "step `{}`: {} reasoning engines are named `{}` or carry this step's label \
                 {KEY_LABEL}={}: {}. Delete the extra ones so one remains",
                cx.step_id,
                found.len(),
                wanted.display_name,
                wanted.token,
                names.join(", ")
            )));
        }
        let Some(engine) = found.into_values().next() else {
            return Ok(None);
        };
        let (egress, ingress) = bound(engine);
        if gateway_key(&egress) != gateway_key(&wanted.egress)
            || gateway_key(&ingress) != gateway_key(&wanted.ingress)
        {
            let name = engine["name"].as_str().unwrap_or_default();
            return Err(StepError::permanent(format!(
                "step `{}`: reasoning engine {name} is bound to {}, but the plan asks for {}. Google \
                 cannot unbind an engine from its gateway or re-bind it to another, so nothing was \
                 changed. To use the new gateway, delete {name} and run again, or give this step a \
                 new `display_name` to deploy a second engine (the old one stays bound until deleted)",
                cx.step_id,
                Wanted::describe_gateways(&egress, &ingress),
                Wanted::describe_gateways(&wanted.egress, &wanted.ingress),
            )));
        }
        Ok(Some(engine.clone()))
    }

    async fn examine(&self, step: Step<'_, Wanted>, engine: &Value) -> Result<Verdict, StepError> {
        let Step { wanted, .. } = step;
        if let Some(operation) = self.running_operation(wanted, engine).await? {
            return Ok(Verdict::Running(wanted.family(), operation));
        }
        if !has_agent_identity(engine) {
            return Ok(Verdict::Drift(Change::update(format!(
                "give reasoning engine {} agent identity (spec.identityType AGENT_IDENTITY; it has {})",
                engine["name"].as_str().unwrap_or_default(),
                identity_of(engine)
            ))));
        }
        Ok(Verdict::Converged(outputs_of(engine)))
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "deploy reasoning engine `{}` in {} ({})",
            wanted.display_name,
            wanted.parent(),
            Wanted::describe_gateways(&wanted.egress, &wanted.ingress)
        ))
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { cx, wanted } = step;
        let body = self.body(cx, wanted)?;
        let client = self.cloud.client().await?;
        let operation = client
            .post_as(
                &wanted.api(),
                &format!("v1/{}/reasoningEngines", wanted.parent()),
                &body,
                // Google chooses the id: a repeat would deploy a second engine.
                PostRetry::Unsafe,
            )
            .await?;
        Ok(Mutated::Operation(wanted.family(), operation))
    }

    fn create_refused(&self, step: Step<'_, Wanted>, e: GcpError) -> StepError {
        let Step { wanted, .. } = step;
        self.refusal(
            wanted,
            &format!("deploying reasoning engine `{}`", wanted.display_name),
            e,
        )
    }

    /// Switches an existing engine to agent identity (dropping any service account, which agent
    /// identity must not have), or refuses permanently, naming the engine and the way out.
    async fn patch(&self, step: Step<'_, Wanted>, engine: Current<'_, Value>) -> Result<Mutated, StepError> {
        let Step { cx, wanted } = step;
        let name = engine["name"].as_str().unwrap_or_default();
        let mut mask = vec!["spec.identityType"];
        if engine["spec"].get("serviceAccount").is_some() {
            mask.push("spec.serviceAccount");
        }
        let mut body = json!({ "spec": { "identityType": "AGENT_IDENTITY" } });
        if let Some(etag) = engine["etag"].as_str() {
            body["etag"] = json!(etag);
        }
        let client = self.cloud.client().await?;
        let doing = format!("giving reasoning engine {name} agent identity");
        let answer = client
            .patch_as(
                &wanted.api(),
                &format!("v1/{name}?updateMask={}", encode(&mask.join(","))),
                &body,
            )
            .await
            .map_err(|e| {
                if e.is_invalid_argument()
                    || (e.is_failed_precondition() && constraint_in(&e.message).is_none())
                {
                    return StepError::permanent(format!(
                        "step `{}`: reasoning engine {name} does not run as its agent identity ({}), \
                         and Vertex AI refused to switch it to AGENT_IDENTITY: {e}. Nothing was \
                         changed. Delete {name} and run again to deploy it with agent identity, or \
                         give this step a new `display_name` to deploy a second engine",
                        cx.step_id,
                        identity_of(&engine)
                    ));
                }
                self.refusal(wanted, &doing, e)
            })?;
        Ok(Mutated::Operation(wanted.family(), answer))
    }

    async fn completed(&self, step: Step<'_, Wanted>, response: Value) -> Result<PollOutcome, StepError> {
        let Step { cx, wanted } = step;
        let engine = match response["name"].is_string() {
            true => Some(response),
            // A delete, or an answer without the engine: read it.
            false => {
                let labelled = self.by_label(step, Reading::Apply).await?;
                let reading = Reading::Apply;
                let labelled = &labelled;
                self.find(Lookup {
                    cx,
                    wanted,
                    reading,
                    labelled,
                })
                .await?
            }
        };
        Ok(match engine {
            // The operation waited on may be another tool's, leaving the engine as it wanted.
            Some(engine) if has_agent_identity(&engine) => PollOutcome::Done(outputs_of(&engine)),
            Some(engine) => PollOutcome::Failed(StepError::retryable(format!(
                "the operation on reasoning engine {} finished without agent identity; observing again",
                engine["name"].as_str().unwrap_or_default()
            ))),
            None => PollOutcome::Failed(StepError::retryable(format!(
                "the operation on `{}` finished but the engine is not listed; observing again",
                wanted.display_name
            ))),
        })
    }

    /// A deploy that failed while the egress gateway's policies deny the agent's LLM endpoint
    /// failed for that: retrying would deploy again into the same refusal, so it is permanent,
    /// naming the policy and the fix. The policies are read from the cloud, not guessed from
    /// the error's wording.
    async fn operation_failed(&self, step: Step<'_, Wanted>, error: StepError) -> StepError {
        let Step { cx, wanted } = step;
        let (Some(host), Some(gateway)) = (&wanted.llm_host, &wanted.egress) else {
            return error;
        };
        if matches!(error, StepError::Permanent { .. }) {
            return error;
        }
        let Ok(policies) = self.policies_on(wanted, gateway).await else {
            return error;
        };
        let named: Vec<Policy> = (policies.iter())
            .map(|body| Policy {
                name: body["name"].as_str().unwrap_or("an unnamed policy").to_string(),
                body,
            })
            .collect();
        match egress_access::decide(&named, host) {
            Decision::Allowed => error,
            Decision::Denied { policy, action } => StepError::permanent(format!(
                "step `{}`: the deploy of `{}` failed: {error}. Authorization policy {policy} \
                 ({action}) on egress gateway {gateway} denies {host}, so another deploy would fail \
                 too. Allow the host in an ALLOW policy on the gateway (with the shipped plans: \
                 --var 'egress_allow_hosts=[\"{host}\"]'), then run again",
                cx.step_id, wanted.display_name
            )),
        }
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud.long_poll_policy())
    }
}

impl ReasoningEngine {
    /// The authorization policies in the engine's region that target `gateway`.
    async fn policies_on(&self, wanted: &Wanted, gateway: &str) -> Result<Vec<Value>, StepError> {
        let client = self.cloud.client().await?;
        let path = format!("v1/{}/authzPolicies", wanted.parent());
        let all = common::list_all(
            client,
            &Api::NetworkSecurity,
            &path,
            "authzPolicies",
            Reading::Apply,
        )
        .await
        .map_err(|e| classify(&self.cloud, "listing authorization policies", e))?;
        let key = gateway_key(&Some(gateway.to_string()));
        Ok(all
            .into_iter()
            .filter(|policy| {
                (policy["target"]["resources"].as_array().into_iter().flatten())
                    .any(|target| gateway_key(&target.as_str().map(str::to_string)) == key)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_names_compare_without_the_project() {
        assert_eq!(
            gateway_key(&Some("projects/demo/locations/r/agentGateways/g".into())),
            gateway_key(&Some("projects/100/locations/r/agentGateways/g".into()))
        );
        assert_ne!(
            gateway_key(&Some("projects/demo/locations/r/agentGateways/g".into())),
            gateway_key(&None)
        );
    }

    #[test]
    fn constraints_are_read_from_refusals() {
        assert_eq!(
            constraint_in(
                "Operation denied by org policy on resource 'projects/1': [\"customConstraints/custom.egress\"]."
            )
            .as_deref(),
            Some("customConstraints/custom.egress")
        );
        assert_eq!(constraint_in("nothing here"), None);
    }
}
