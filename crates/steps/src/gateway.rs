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
use sluice_engine::{async_trait, Change, KindSchema, Outputs, PollOutcome, StepContext, StepError};
use sluice_gcp::{Api, GcpError, OperationFamily, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify, encode, Reading};
use crate::reconcile::{Absent, Claim, CreateError, Lookup, Mutated, Resource, Step, Verdict};

pub struct AgentGateway {
    cloud: Cloud,
}

impl AgentGateway {
    pub fn new(cloud: Cloud) -> Self {
        AgentGateway { cloud }
    }
}

params! {
    /// The parameters of `gcp.agent_gateway`.
    struct GatewayParams {
        project: text => "project id",
        region: text => "region, like us-central1",
        gateway_id: text => "gateway id: lowercase letters, digits, -",
        mode: text => "`egress` or `ingress`",
        adopt_existing: flag(true) => "use an existing gateway of the same mode [default: true]",
        registry: flag(true) => "link the project's Agent Registry [default: true]",
        description: opt_text => "description",
    }
}

pub struct Wanted {
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
        let params = GatewayParams::parse(cx)?;
        let mode = params.mode.trim().to_ascii_lowercase();
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
            project: params.project,
            region: params.region,
            gateway_id: params.gateway_id,
            mode,
            path,
            adopt: params.adopt_existing,
            registry: params.registry,
            description: params.description,
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

/// A gateway found in the project and region.
pub enum Gateway {
    /// Ours (`gateway_id`), with the wanted mode.
    Ours,
    /// Another gateway of the wanted mode (by name), which adoption takes.
    Other(String),
}

fn mode_of(gateway: &Value) -> &str {
    gateway["googleManaged"]["governedAccessPath"]
        .as_str()
        .unwrap_or("GOVERNED_ACCESS_PATH_UNSPECIFIED")
}

#[async_trait]
impl Resource for AgentGateway {
    type Wanted = Wanted;
    type Live = Gateway;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description:
                "a Google-managed Agent Gateway (egress AGENT_TO_ANYWHERE or ingress CLIENT_TO_AGENT)",
            params: GatewayParams::specs(),
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

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("gateway {}", wanted.name())
    }

    /// Ours, else another gateway of the wanted mode, else none; ours with another mode is a
    /// permanent error (a mode cannot be changed).
    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Gateway>, StepError> {
        let Lookup {
            cx, wanted, reading, ..
        } = lookup;
        let client = self.cloud.client().await?;
        let path = format!("v1/{}/agentGateways?pageSize=100", wanted.parent());
        // Observing, a disabled API has nothing in it (see `Reading`).
        let gateways = common::list_all(client, &Api::NetworkServices, &path, "agentGateways", reading)
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("listing the agent gateways of {}", wanted.parent()),
                    e,
                )
            })?;
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
            return Ok(Some(Gateway::Ours));
        }
        Ok(gateways
            .iter()
            .filter(|g| mode_of(g) == wanted.path)
            .find_map(|g| g["name"].as_str())
            .map(|other| Gateway::Other(other.to_string())))
    }

    fn claim(&self, step: Step<'_, Wanted>, gateway: &Gateway) -> Claim {
        let Step { cx, wanted } = step;
        match gateway {
            Gateway::Ours => Claim::Ours,
            Gateway::Other(_) if wanted.adopt => Claim::Adoptable,
            Gateway::Other(other) => Claim::Foreign(StepError::permanent(format!(
                "step `{}`: {other} is already the {} ({}) gateway of {}, and Google allows one per \
                 mode per project and region; set `adopt_existing` to true to use it, or delete it",
                cx.step_id,
                wanted.mode,
                wanted.path,
                wanted.parent()
            ))),
        }
    }

    async fn examine(&self, step: Step<'_, Wanted>, gateway: &Gateway) -> Result<Verdict, StepError> {
        let Step { wanted, .. } = step;
        // An existing gateway is never patched (see the module's caveats).
        Ok(Verdict::Converged(match gateway {
            Gateway::Ours => wanted.outputs(&wanted.name(), false),
            Gateway::Other(name) => {
                tracing::info!(
                    gateway = %name,
                    "adopting the existing {} agent gateway {name} instead of creating {}",
                    wanted.mode,
                    wanted.name()
                );
                wanted.outputs(name, true)
            }
        }))
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create {} agent gateway {} ({})",
            wanted.mode,
            wanted.name(),
            wanted.path
        ))
        .predicting(wanted.outputs(&wanted.name(), false))
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { wanted, .. } = step;
        let client = self.cloud.client().await?;
        let path = format!(
            "v1/{}/agentGateways?agentGatewayId={}",
            wanted.parent(),
            encode(&wanted.gateway_id)
        );
        // The id is ours: a repeat answers 409.
        let operation = client
            .post_as(&Api::NetworkServices, &path, &wanted.body(), PostRetry::Safe)
            .await?;
        Ok(Mutated::Operation(OperationFamily::NetworkServices, operation))
    }

    fn create_refused(&self, step: Step<'_, Wanted>, e: GcpError) -> StepError {
        let Step { wanted, .. } = step;
        let name = wanted.name();
        if e.is_failed_precondition() && !wanted.adopt {
            return StepError::permanent(format!(
                "creating gateway {name}: {e}. Set `adopt_existing` to true to use the existing gateway"
            ));
        }
        if e.is_failed_precondition() {
            return StepError::retryable(format!(
                "creating gateway {name}: {e}; observing again to adopt it"
            ));
        }
        classify(&self.cloud, &format!("creating gateway {name}"), e)
    }

    fn missing_after_conflict(&self, step: Step<'_, Wanted>) -> StepError {
        let Step { wanted, .. } = step;
        StepError::retryable(format!(
            "gateway {} already exists but is not listed yet; reading again",
            wanted.name()
        ))
    }

    async fn completed(&self, step: Step<'_, Wanted>, response: Value) -> Result<PollOutcome, StepError> {
        let Step { cx, wanted } = step;
        if let Some(name) = response["name"].as_str() {
            return Ok(PollOutcome::Done(wanted.outputs(name, false)));
        }
        // No gateway in the answer: read it back.
        Ok(
            match self
                .find(Lookup {
                    cx,
                    wanted,
                    reading: Reading::Apply,
                    labelled: &[],
                })
                .await?
            {
                Some(Gateway::Ours) => PollOutcome::Done(wanted.outputs(&wanted.name(), false)),
                _ => PollOutcome::Failed(StepError::retryable(format!(
                    "the create of {} finished but the gateway is not listed yet",
                    wanted.name()
                ))),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::common::encode;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("labels.sluice-key=\"ab\""), "labels.sluice-key%3D%22ab%22");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
