//! `gcp.agent_gateway`: a Google-managed Agent Gateway of one mode (egress or ingress).
//!
//! - **Guarantees:** when the step succeeds, the project and region have an Agent Gateway whose
//!   `googleManaged.governedAccessPath` is the wanted mode (`egress` → `AGENT_TO_ANYWHERE`,
//!   `ingress` → `CLIENT_TO_AGENT`), and `name` names it. It is ours (`gateway_id`), or — with
//!   `adopt_existing` — the one gateway of that mode that already existed (`adopted: true`,
//!   logged). A gateway is created at most once: its id is chosen here, so a repeated create
//!   answers 409 ALREADY_EXISTS and the step adopts what the lost answer created.
//! - **Assumptions:** Google allows one gateway per mode per project and region (the seed's
//!   rule), so another gateway of the same mode is either adopted or a permanent error raised
//!   before any create. A gateway named `gateway_id` is ours.
//! - **Caveats:** an existing gateway is never patched: its description and registries are
//!   left as found (an adopted gateway may not be linked to Agent Registry). A gateway with our
//!   id but the other mode is a permanent error (the mode cannot be changed); delete it or
//!   choose another `gateway_id`.

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, OperationHandle, Outputs, ParamSpec, ParamType,
    PollOutcome, PollPolicy, StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, Operation, OperationFamily, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify, encode, flag, optional_text, text, Reading};

pub struct AgentGateway {
    cloud: Cloud,
}

impl AgentGateway {
    pub fn new(cloud: Cloud) -> Self {
        AgentGateway { cloud }
    }
}

struct Wanted {
    project: String,
    region: String,
    gateway_id: String,
    /// `egress` or `ingress`, as the plan says it.
    mode: String,
    /// Google's `governedAccessPath` for `mode`.
    path: &'static str,
    adopt: bool,
    registry: bool,
    description: Option<String>,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let mode = text(cx, "mode")?.trim().to_ascii_lowercase();
        let path = match mode.as_str() {
            "egress" => "AGENT_TO_ANYWHERE",
            "ingress" => "CLIENT_TO_AGENT",
            other => {
                return Err(StepError::permanent(format!(
                    "step `{}`: `mode` is `{other}`; it must be `egress` (AGENT_TO_ANYWHERE) or \
                     `ingress` (CLIENT_TO_AGENT)",
                    cx.step_id
                )))
            }
        };
        Ok(Wanted {
            project: text(cx, "project")?.to_string(),
            region: text(cx, "region")?.to_string(),
            gateway_id: text(cx, "gateway_id")?.to_string(),
            mode,
            path,
            adopt: flag(cx, "adopt_existing", true)?,
            registry: flag(cx, "registry", true)?,
            description: optional_text(cx, "description").map(str::to_string),
        })
    }
    fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.region)
    }
    fn name(&self) -> String {
        format!("{}/agentGateways/{}", self.parent(), self.gateway_id)
    }
    fn outputs(&self, name: &str, adopted: bool) -> Outputs {
        let id = name.rsplit('/').next().unwrap_or(&self.gateway_id);
        Outputs::from([
            ("name".to_string(), json!(name)),
            ("gateway_id".to_string(), json!(id)),
            ("mode".to_string(), json!(self.mode)),
            ("adopted".to_string(), json!(adopted)),
        ])
    }
    fn body(&self) -> Value {
        let mut body = json!({ "googleManaged": { "governedAccessPath": self.path } });
        if self.registry {
            body["registries"] = json!([format!(
                "//agentregistry.googleapis.com/projects/{}/locations/{}",
                self.project, self.region
            )]);
        }
        if let Some(description) = &self.description {
            body["description"] = json!(description);
        }
        body
    }
}

/// What observing found.
enum Found {
    /// Our gateway with the right mode.
    Ours,
    /// Another gateway of the wanted mode, which adoption takes.
    Adopted(String),
    /// Nothing of the wanted mode: create ours.
    Missing,
}

fn mode_of(gateway: &Value) -> &str {
    gateway["googleManaged"]["governedAccessPath"]
        .as_str()
        .unwrap_or("GOVERNED_ACCESS_PATH_UNSPECIFIED")
}

impl AgentGateway {
    /// Every gateway in the project and region (all pages).
    async fn list(&self, wanted: &Wanted, reading: Reading) -> Result<Vec<Value>, StepError> {
        let client = self.cloud.client().await?;
        let path = format!("v1/{}/agentGateways?pageSize=100", wanted.parent());
        // Observing, a disabled API has nothing in it (see `Reading`).
        common::list_all(client, &Api::NetworkServices, &path, "agentGateways", reading)
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("listing the agent gateways of {}", wanted.parent()),
                    e,
                )
            })
    }

    async fn find(&self, cx: &StepContext, wanted: &Wanted, reading: Reading) -> Result<Found, StepError> {
        let gateways = self.list(wanted, reading).await?;
        let ours = wanted.name();
        if let Some(gateway) = gateways.iter().find(|g| g["name"] == ours.as_str()) {
            let mode = mode_of(gateway);
            if mode != wanted.path {
                return Err(StepError::permanent(format!(
                    "step `{}`: gateway {ours} exists with mode {mode}, not {} (`{}`); a gateway's mode \
                     cannot be changed: delete it or choose another `gateway_id`",
                    cx.step_id, wanted.path, wanted.mode
                )));
            }
            return Ok(Found::Ours);
        }
        let other = gateways
            .iter()
            .filter(|g| mode_of(g) == wanted.path)
            .filter_map(|g| g["name"].as_str())
            .next();
        match other {
            None => Ok(Found::Missing),
            Some(other) if wanted.adopt => Ok(Found::Adopted(other.to_string())),
            Some(other) => Err(StepError::permanent(format!(
                "step `{}`: {other} is already the {} ({}) gateway of {}, and Google allows one per \
                 mode per project and region; set `adopt_existing` to true to use it, or delete it",
                cx.step_id,
                wanted.mode,
                wanted.path,
                wanted.parent()
            ))),
        }
    }

    fn converged(&self, wanted: &Wanted, found: Found) -> Option<Outputs> {
        match found {
            Found::Ours => Some(wanted.outputs(&wanted.name(), false)),
            Found::Adopted(name) => {
                tracing::info!(
                    gateway = %name,
                    "adopting the existing {} agent gateway {name} instead of creating {}",
                    wanted.mode,
                    wanted.name()
                );
                Some(wanted.outputs(&name, true))
            }
            Found::Missing => None,
        }
    }
}

#[async_trait]
impl StepKind for AgentGateway {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description:
                "a Google-managed Agent Gateway (egress AGENT_TO_ANYWHERE or ingress CLIENT_TO_AGENT)",
            params: vec![
                ParamSpec::required("project", ParamType::String, "project id"),
                ParamSpec::required("region", ParamType::String, "region, like us-central1"),
                ParamSpec::required(
                    "gateway_id",
                    ParamType::String,
                    "gateway id: lowercase letters, digits, -",
                ),
                ParamSpec::required("mode", ParamType::String, "`egress` or `ingress`"),
                ParamSpec::optional(
                    "adopt_existing",
                    ParamType::Bool,
                    "use an existing gateway of the same mode [default: true]",
                ),
                ParamSpec::optional(
                    "registry",
                    ParamType::Bool,
                    "link the project's Agent Registry [default: true]",
                ),
                ParamSpec::optional("description", ParamType::String, "description"),
            ],
            outputs: vec!["name", "gateway_id", "mode", "adopted"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("region", &checks::region)
            .string("gateway_id", &checks::resource_id)
            .string("mode", &checks::one_of(&["egress", "ingress"]))
            .string(
                "description",
                &checks::max_chars(1024, "an Agent Gateway description"),
            )
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let wanted = Wanted::from(cx)?;
        let found = self.find(cx, &wanted, Reading::Observe).await?;
        Ok(match self.converged(&wanted, found) {
            Some(outputs) => Observation::Converged(outputs),
            None => Observation::Diverged(
                Change::create(format!(
                    "create {} agent gateway {} ({})",
                    wanted.mode,
                    wanted.name(),
                    wanted.path
                ))
                .predicting(wanted.outputs(&wanted.name(), false)),
            ),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let wanted = Wanted::from(cx)?;
        // Re-read: the adoption rule is checked again right before creating.
        let found = self.find(cx, &wanted, Reading::Apply).await?;
        if let Some(outputs) = self.converged(&wanted, found) {
            return Ok(Applied::Done(outputs));
        }
        let client = self.cloud.client().await?;
        let path = format!(
            "v1/{}/agentGateways?agentGatewayId={}",
            wanted.parent(),
            encode(&wanted.gateway_id)
        );
        let name = wanted.name();
        match client
            .post_as::<Operation>(
                &Api::NetworkServices,
                &path,
                &wanted.body(),
                // The id is ours: a repeat answers 409, handled below.
                PostRetry::Safe,
            )
            .await
        {
            Ok(operation) if operation.done => Ok(Applied::Done(wanted.outputs(&name, false))),
            Ok(operation) => Ok(Applied::Started(common::handle(
                &OperationFamily::NetworkServices,
                &operation.name,
            ))),
            Err(e) if e.is_already_exists() => {
                // A create whose answer was lost: adopt what it made.
                match self.find(cx, &wanted, Reading::Apply).await? {
                    Found::Ours => Ok(Applied::Done(wanted.outputs(&name, false))),
                    _ => Err(StepError::retryable(format!(
                        "gateway {name} already exists but is not listed yet; reading again"
                    ))),
                }
            }
            Err(e) if e.is_failed_precondition() && !wanted.adopt => Err(StepError::permanent(format!(
                "creating gateway {name}: {e}. Set `adopt_existing` to true to use the existing gateway"
            ))),
            Err(e) if e.is_failed_precondition() => Err(StepError::retryable(format!(
                "creating gateway {name}: {e}; observing again to adopt it"
            ))),
            Err(e) => Err(classify(&self.cloud, &format!("creating gateway {name}"), e)),
        }
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud.get_poll_policy())
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let wanted = Wanted::from(cx)?;
        match common::poll_once(&self.cloud, cx, handle).await? {
            Err(outcome) => Ok(outcome),
            Ok(response) => {
                let name = match response["name"].as_str() {
                    Some(name) => name.to_string(),
                    None => {
                        // No gateway in the answer: read it back.
                        match self.find(cx, &wanted, Reading::Apply).await? {
                            Found::Ours => wanted.name(),
                            _ => {
                                return Ok(PollOutcome::Failed(StepError::retryable(format!(
                                    "the create of {} finished but the gateway is not listed yet",
                                    wanted.name()
                                ))))
                            }
                        }
                    }
                };
                Ok(PollOutcome::Done(wanted.outputs(&name, false)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("labels.sluice-key=\"ab\""), "labels.sluice-key%3D%22ab%22");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
