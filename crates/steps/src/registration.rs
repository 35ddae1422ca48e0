//! `gcp.agent_registration`: a deployed reasoning engine is registered in Agent Registry.
//!
//! - **Guarantees:** when the step succeeds, the project's Agent Registry lists an agent for
//!   `engine`: the one Agent Runtime registered automatically (`source: "automatic"`, found by
//!   its `agentregistry.googleapis.com/system/RuntimeReference` attribute), or a Service
//!   `services/SERVICE_ID` this step created after waiting `wait_for_automatic` for it
//!   (`source: "service"`). Outputs `agent` (the agent's name) and `source`.
//! - **Assumptions:** Agent Runtime registers what it deploys some time after the deploy
//!   (undocumented; minutes). The engine may be named by project number and the registry by
//!   project id, so references are matched on the whole URI or on `locations/L/reasoningEngines/ID`.
//!   A Service with id `service_id` is ours.
//! - **Caveats:** `apply` creates nothing: it starts the reconciler's grace wait
//!   ([`Resource::grace`](crate::reconcile::Resource::grace)), whose handle is
//!   `{"phase": "await_automatic", "deadline_unix_ms": N}` (wall-clock milliseconds, the wait
//!   already scaled by the cloud's time scale), persisted by the engine before the first poll.
//!   So a resumed run keeps the original deadline. The *poll* performs the fallback create
//!   once the deadline has passed, right after a strict re-read (an Agent Registry not usable
//!   yet is then "not yet", never a create bound to fail): this is safe to repeat because the service id is chosen
//!   here (a repeat answers 409 ALREADY_EXISTS, which is adopted) and the `requestId` is derived
//!   from the step's idempotency key (Google de-duplicates it for at least an hour). The poll
//!   then reads the Service back rather than waiting on the create's operation (a handle cannot
//!   change once persisted); the Service is readable as soon as the create is accepted.
//!   Should the automatic registration appear after the fallback, both exist.

use std::time::Duration;

use serde_json::json;
use sluice_engine::{async_trait, Change, KindSchema, Outputs, StepContext, StepError};
use sluice_gcp::{Api, Operation, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify, encode, key_token, Reading};
use crate::reconcile::{Absent, CreateError, Lookup, Mutated, Resource, Step, Verdict};

/// The attribute Agent Runtime sets on the agents it registers.
pub const RUNTIME_REFERENCE: &str = "agentregistry.googleapis.com/system/RuntimeReference";

pub struct AgentRegistration {
    cloud: Cloud,
}

impl AgentRegistration {
    pub fn new(cloud: Cloud) -> Self {
        AgentRegistration { cloud }
    }
}

params! {
    /// The parameters of `gcp.agent_registration`.
    struct RegistrationParams {
        project: text => "project id",
        region: text => "region, like us-central1",
        engine: text => "the engine's name (gcp.reasoning_engine `name`)",
        service_id: text => "id of the fallback Service: 4-63 of [a-z0-9-]",
        display_name: text => "display name of the fallback Service",
        wait_for_automatic: text_or("5m") =>
            "how long to wait for Agent Runtime's own registration [default: 5m]",
    }
}

pub struct Wanted {
    project: String,
    region: String,
    engine: String,
    service_id: String,
    display_name: String,
    wait: Duration,
}

/// 4 to 63 characters of `[a-z0-9-]`, as Agent Registry requires of service ids.
fn valid_service_id(id: &str) -> bool {
    (4..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let params = RegistrationParams::parse(cx)?;
        let service_id = params.service_id;
        if !valid_service_id(&service_id) {
            return Err(StepError::permanent(format!(
                "step `{}`: `service_id` `{service_id}` must be 4 to 63 characters of lowercase \
                 letters, digits and hyphens",
                cx.step_id
            )));
        }
        let display_name = params.display_name;
        if display_name.chars().count() > 63 {
            return Err(StepError::permanent(format!(
                "step `{}`: `display_name` is longer than Agent Registry's 63 characters",
                cx.step_id
            )));
        }
        let wait = sluice_engine::plan::parse_duration(&params.wait_for_automatic)
            .map_err(|e| StepError::permanent(format!("step `{}`: `wait_for_automatic`: {e}", cx.step_id)))?;
        let engine = params.engine;
        if !engine.contains("/reasoningEngines/") {
            return Err(StepError::permanent(format!(
                "step `{}`: `engine` `{engine}` is not a reasoning engine name \
                 (projects/P/locations/L/reasoningEngines/ID, the `name` output of gcp.reasoning_engine)",
                cx.step_id
            )));
        }
        Ok(Wanted {
            project: params.project,
            region: params.region,
            engine,
            service_id,
            display_name,
            wait,
        })
    }
    fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }
    fn service_name(&self) -> String {
        format!("{}/services/{}", self.parent(), self.service_id)
    }
    /// `locations/L/reasoningEngines/ID` of the engine.
    fn engine_tail(&self) -> &str {
        tail(&self.engine)
    }
}

fn tail(name: &str) -> &str {
    match name.find("locations/") {
        Some(at) => &name[at..],
        None => name,
    }
}

fn outputs(agent: &str, source: &str) -> Outputs {
    Outputs::from([
        ("agent".to_string(), json!(agent)),
        ("source".to_string(), json!(source)),
    ])
}

/// A UUID-shaped request id derived from the idempotency key, so a repeat de-duplicates.
pub fn request_id(key: &str) -> String {
    let hex = format!("{}{}", key_token(key), key_token(&format!("{key}#request")));
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

impl AgentRegistration {
    /// The agent Agent Runtime registered for the engine, if listed yet.
    async fn automatic(&self, wanted: &Wanted, reading: Reading) -> Result<Option<String>, StepError> {
        let client = self.cloud.client().await?;
        let uri = format!("//aiplatform.googleapis.com/{}", wanted.engine);
        let path = format!("v1/{}/agents?pageSize=100", wanted.parent());
        // The first agent referring to the engine is the answer.
        let found = common::find_in_pages(client, &Api::AgentRegistry, &path, "agents", reading, |agent| {
            let reference = agent["attributes"][RUNTIME_REFERENCE]["uri"].as_str()?;
            (reference == uri || tail(reference) == wanted.engine_tail())
                .then(|| agent["name"].as_str().map(str::to_string))
        })
        .await;
        found.map(Option::flatten).map_err(|e| {
            classify(
                &self.cloud,
                &format!("listing the agents of {}", wanted.parent()),
                e,
            )
        })
    }

    /// Our Service's agent (`registryResource`, else the service's name), if it exists.
    async fn service(&self, wanted: &Wanted, reading: Reading) -> Result<Option<String>, StepError> {
        let client = self.cloud.client().await?;
        let name = wanted.service_name();
        match reading.tolerate(client.get(&Api::AgentRegistry, &format!("v1/{name}")).await) {
            Ok(None) => Ok(None),
            Ok(Some(service)) => Ok(Some(
                service["registryResource"].as_str().unwrap_or(&name).to_string(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(classify(&self.cloud, &format!("reading service {name}"), e)),
        }
    }
}

#[async_trait]
impl Resource for AgentRegistration {
    type Wanted = Wanted;
    /// The outputs of the registration found.
    type Live = Outputs;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an Agent Runtime engine registered in Agent Registry (automatic, else a Service)",
            params: RegistrationParams::specs(),
            outputs: vec!["agent", "source"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("region", &checks::region)
            .string("service_id", &|id: &str| {
                valid_service_id(id).then_some(()).ok_or_else(|| {
                    format!(
                        "`{}` is not an Agent Registry service id: 4-63 of [a-z0-9-]",
                        sluice_gcp::bounded(id, 80)
                    )
                })
            })
            // Agent Registry: "Can have a maximum length of `63` characters."
            .string(
                "display_name",
                &checks::max_chars(63, "an Agent Registry display name"),
            )
            .string("wait_for_automatic", &checks::duration)
            .done()
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("service {}", wanted.service_name())
    }

    /// The automatic registration, else our Service.
    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Outputs>, StepError> {
        let Lookup { wanted, reading, .. } = lookup;
        if let Some(agent) = self.automatic(wanted, reading).await? {
            return Ok(Some(outputs(&agent, "automatic")));
        }
        Ok(self
            .service(wanted, reading)
            .await?
            .map(|agent| outputs(&agent, "service")))
    }

    async fn examine(&self, _step: Step<'_, Wanted>, found: &Outputs) -> Result<Verdict, StepError> {
        Ok(Verdict::Converged(found.clone()))
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "wait up to {:?} for Agent Runtime to register {}, then register it as service {}",
            wanted.wait,
            wanted.engine,
            wanted.service_name()
        ))
    }

    fn grace(&self, wanted: &Wanted) -> Option<Duration> {
        Some(wanted.wait)
    }

    fn awaiting(&self, wanted: &Wanted) -> String {
        format!(
            "waiting for Agent Runtime's automatic registration of {}",
            wanted.engine
        )
    }

    /// Creates our Service (safe to repeat: our id and a request id from the key).
    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { cx, wanted } = step;
        let client = self.cloud.client().await?;
        let name = wanted.service_name();
        let path = format!(
            "v1/{}/services?serviceId={}&requestId={}",
            wanted.parent(),
            encode(&wanted.service_id),
            request_id(&cx.idempotency_key)
        );
        let body = json!({
            "displayName": wanted.display_name,
            "description": format!("Agent Runtime engine {}", wanted.engine),
            "agentSpec": { "type": "NO_SPEC" },
        });
        tracing::info!(
            service = %name,
            "Agent Runtime has not registered {} yet; registering it as service {name}",
            wanted.engine
        );
        // An answer that is not an operation is a retried BAD_RESPONSE, not a registration.
        client
            .post_as::<Operation>(&Api::AgentRegistry, &path, &body, PostRetry::Safe)
            .await?;
        // The Service is readable as soon as the create is accepted.
        Ok(Mutated::ReadBack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_stable_uuids() {
        let id = request_id("run/registration");
        assert_eq!(id, request_id("run/registration"));
        assert_ne!(id, request_id("run/other"));
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
    }

    #[test]
    fn service_ids_are_checked() {
        assert!(valid_service_id("my-agent-1"));
        assert!(!valid_service_id("abc"));
        assert!(!valid_service_id("My-Agent"));
        assert!(!valid_service_id(&"a".repeat(64)));
    }

    #[test]
    fn engine_references_match_by_tail() {
        assert_eq!(
            tail("//aiplatform.googleapis.com/projects/100/locations/r/reasoningEngines/7"),
            tail("projects/demo/locations/r/reasoningEngines/7")
        );
    }
}
