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
//! - **Caveats:** `apply` creates nothing: it starts a wait of this kind's own, whose handle is
//!   `{"phase": "await_automatic", "deadline_unix_ms": N}` (wall-clock milliseconds, the wait
//!   already scaled by the cloud's time scale), persisted by the engine before the first poll.
//!   So a resumed run keeps the original deadline. The *poll* performs the fallback create
//!   once the deadline has passed: this is safe to repeat because the service id is chosen
//!   here (a repeat answers 409 ALREADY_EXISTS, which is adopted) and the `requestId` is derived
//!   from the step's idempotency key (Google de-duplicates it for at least an hour). The poll
//!   then reads the Service back rather than waiting on the create's operation (a handle cannot
//!   change once persisted); the Service is readable as soon as the create is accepted.
//!   Should the automatic registration appear after the fallback, both exist.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, OperationHandle, Outputs, ParamSpec, ParamType,
    PollOutcome, PollPolicy, StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, Operation, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, absent_if_disabled, classify, encode, key_token, optional_text, text, Reading};

/// The attribute Agent Runtime sets on the agents it registers.
pub const RUNTIME_REFERENCE: &str = "agentregistry.googleapis.com/system/RuntimeReference";

/// The handle's only phase.
const PHASE: &str = "await_automatic";

pub struct AgentRegistration {
    cloud: Cloud,
}

impl AgentRegistration {
    pub fn new(cloud: Cloud) -> Self {
        AgentRegistration { cloud }
    }
}

struct Wanted {
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
        let service_id = text(cx, "service_id")?.to_string();
        if !valid_service_id(&service_id) {
            return Err(StepError::permanent(format!(
                "step `{}`: `service_id` `{service_id}` must be 4 to 63 characters of lowercase \
                 letters, digits and hyphens",
                cx.step_id
            )));
        }
        let display_name = text(cx, "display_name")?.to_string();
        if display_name.chars().count() > 63 {
            return Err(StepError::permanent(format!(
                "step `{}`: `display_name` is longer than Agent Registry's 63 characters",
                cx.step_id
            )));
        }
        let wait_text = optional_text(cx, "wait_for_automatic").unwrap_or("5m");
        let wait = sluice_engine::plan::parse_duration(wait_text)
            .map_err(|e| StepError::permanent(format!("step `{}`: `wait_for_automatic`: {e}", cx.step_id)))?;
        let engine = text(cx, "engine")?.to_string();
        if !engine.contains("/reasoningEngines/") {
            return Err(StepError::permanent(format!(
                "step `{}`: `engine` `{engine}` is not a reasoning engine name \
                 (projects/P/locations/L/reasoningEngines/ID, the `name` output of gcp.reasoning_engine)",
                cx.step_id
            )));
        }
        Ok(Wanted {
            project: text(cx, "project")?.to_string(),
            region: text(cx, "region")?.to_string(),
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl AgentRegistration {
    /// The agent Agent Runtime registered for the engine, if listed yet.
    async fn automatic(&self, wanted: &Wanted) -> Result<Option<String>, StepError> {
        let client = self.cloud.client().await?;
        let uri = format!("//aiplatform.googleapis.com/{}", wanted.engine);
        let path = format!("v1/{}/agents?pageSize=100", wanted.parent());
        // The first agent referring to the engine is the answer. A disabled API has nothing in
        // it (`Reading::Observe`, as `absent_if_disabled`).
        let found = common::find_in_pages(
            client,
            &Api::AgentRegistry,
            &path,
            "agents",
            Reading::Observe,
            |agent| {
                let reference = agent["attributes"][RUNTIME_REFERENCE]["uri"].as_str()?;
                (reference == uri || tail(reference) == wanted.engine_tail())
                    .then(|| agent["name"].as_str().map(str::to_string))
            },
        )
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
    async fn service(&self, wanted: &Wanted) -> Result<Option<String>, StepError> {
        let client = self.cloud.client().await?;
        let name = wanted.service_name();
        match absent_if_disabled(client.get(&Api::AgentRegistry, &format!("v1/{name}")).await) {
            Ok(None) => Ok(None),
            Ok(Some(service)) => Ok(Some(
                service["registryResource"].as_str().unwrap_or(&name).to_string(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(classify(&self.cloud, &format!("reading service {name}"), e)),
        }
    }

    async fn registered(&self, wanted: &Wanted) -> Result<Option<Outputs>, StepError> {
        if let Some(agent) = self.automatic(wanted).await? {
            return Ok(Some(outputs(&agent, "automatic")));
        }
        Ok(self
            .service(wanted)
            .await?
            .map(|agent| outputs(&agent, "service")))
    }

    /// Creates our Service (safe to repeat: our id and a request id from the key).
    async fn create_service(&self, cx: &StepContext, wanted: &Wanted) -> Result<(), StepError> {
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
        match client
            // An answer that is not an operation is a retried BAD_RESPONSE, not a registration.
            .post_as::<Operation>(&Api::AgentRegistry, &path, &body, PostRetry::Safe)
            .await
        {
            Ok(_) => Ok(()),
            // Created by an earlier call whose answer was lost: adopted by the read that follows.
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(classify(&self.cloud, &format!("creating service {name}"), e)),
        }
    }
}

#[async_trait]
impl StepKind for AgentRegistration {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an Agent Runtime engine registered in Agent Registry (automatic, else a Service)",
            params: vec![
                ParamSpec::required("project", ParamType::String, "project id"),
                ParamSpec::required("region", ParamType::String, "region, like us-central1"),
                ParamSpec::required(
                    "engine",
                    ParamType::String,
                    "the engine's name (gcp.reasoning_engine `name`)",
                ),
                ParamSpec::required(
                    "service_id",
                    ParamType::String,
                    "id of the fallback Service: 4-63 of [a-z0-9-]",
                ),
                ParamSpec::required(
                    "display_name",
                    ParamType::String,
                    "display name of the fallback Service",
                ),
                ParamSpec::optional(
                    "wait_for_automatic",
                    ParamType::String,
                    "how long to wait for Agent Runtime's own registration [default: 5m]",
                ),
            ],
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

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let wanted = Wanted::from(cx)?;
        Ok(match self.registered(&wanted).await? {
            Some(outputs) => Observation::Converged(outputs),
            None => Observation::Diverged(Change::create(format!(
                "wait up to {:?} for Agent Runtime to register {}, then register it as service {}",
                wanted.wait,
                wanted.engine,
                wanted.service_name()
            ))),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let wanted = Wanted::from(cx)?;
        let deadline = now_ms() + self.cloud.scaled(wanted.wait).as_millis() as u64;
        Ok(Applied::Started(OperationHandle(json!({
            "phase": PHASE,
            "deadline_unix_ms": deadline,
        }))))
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud.get_poll_policy())
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let wanted = Wanted::from(cx)?;
        let deadline = match (handle.0["phase"].as_str(), handle.0["deadline_unix_ms"].as_u64()) {
            (Some(PHASE), Some(deadline)) => deadline,
            _ => {
                return Err(StepError::permanent(format!(
                    "step `{}`: handle {} is not one gcp.agent_registration wrote",
                    cx.step_id, handle.0
                )))
            }
        };
        if let Some(outputs) = self.registered(&wanted).await? {
            return Ok(PollOutcome::Done(outputs));
        }
        if now_ms() < deadline {
            return Ok(PollOutcome::Pending {
                progress: Some(format!(
                    "waiting for Agent Runtime's automatic registration of {}",
                    wanted.engine
                )),
            });
        }
        self.create_service(cx, &wanted).await?;
        Ok(match self.service(&wanted).await? {
            Some(agent) => PollOutcome::Done(outputs(&agent, "service")),
            None => PollOutcome::Pending {
                progress: Some(format!("registering service {}", wanted.service_name())),
            },
        })
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
