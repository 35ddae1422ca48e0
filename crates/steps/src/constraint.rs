//! `gcp.custom_constraint`: an organisation custom constraint that lets Reasoning Engines bind
//! only to approved Agent Gateways (the seed's "Restrict Agent Runtime to approved Agent
//! Gateways").
//!
//! - **Guarantees:** `organizations/O/customConstraints/ID` exists with exactly the seed's ALLOW
//!   rule for `aiplatform.googleapis.com/ReasoningEngine` on CREATE and UPDATE: the gateway field
//!   of `mode` (`agentToAnywhereConfig` for egress, `clientToAgentConfig` for ingress) is present,
//!   not empty, and one of `allowed_gateways`; and with the given display name and description.
//!   It is created, or overwritten (PATCH) when any of those fields differs; a matching
//!   constraint is left alone. Names and the condition's length (≤ 1,000 characters) are checked
//!   before any call, so a bad plan fails without touching the organisation.
//! - **Assumptions:** the constraint id is ours: an existing constraint with that id is adopted
//!   and corrected. The caller holds `orgpolicy.customConstraints.*` on the organisation.
//! - **Caveats:** a constraint enforces nothing by itself: a `gcp.org_policy` step must enforce
//!   it on a project, folder or organisation. An empty `allowed_gateways` approves nothing: once
//!   enforced, every Reasoning Engine create or update in scope is refused. Gateways are written
//!   as given (by project id or number): Google compares the strings, so write them exactly as
//!   deployments name them.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use sluice_engine::{async_trait, Applied, Change, KindSchema, Outputs, StepContext, StepError};
use sluice_gcp::{Api, PostRetry, Resource as Answer};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{classify, read_optional};
use crate::reconcile::{Absent, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};

/// The resource type the seed's constraints govern.
pub const REASONING_ENGINE: &str = "aiplatform.googleapis.com/ReasoningEngine";
/// Org Policy's limit on a custom constraint's condition, in characters.
pub const MAX_CONDITION_CHARS: usize = 1000;
/// Google's limit on a custom constraint name (`custom.` included).
pub const MAX_CONSTRAINT_ID_CHARS: usize = 70;
const METHOD_TYPES: [&str; 2] = ["CREATE", "UPDATE"];
const DEFAULT_DESCRIPTION: &str = "Reasoning Engines can only be bound to a pre-approved list of \
                                   Agent Gateway instances. Binding to any other gateway is denied.";

pub struct CustomConstraint {
    cloud: Cloud,
}

impl CustomConstraint {
    pub fn new(cloud: Cloud) -> Self {
        CustomConstraint { cloud }
    }
}

/// Checks a custom constraint id: `custom.` then letters and digits, at most 70 characters.
pub fn check_constraint_id(id: &str) -> Result<(), String> {
    let Some(rest) = id.strip_prefix("custom.") else {
        return Err(format!(
            "constraint id `{id}` must start with `custom.` (e.g. custom.allowlistedEgressAgentGatewaysForAgentEngine)"
        ));
    };
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "constraint id `{id}`: after `custom.` Google allows only letters and digits (no dots, dashes or underscores)"
        ));
    }
    let length = id.chars().count();
    if length > MAX_CONSTRAINT_ID_CHARS {
        return Err(format!(
            "constraint id `{id}` is {length} characters; Google allows at most {MAX_CONSTRAINT_ID_CHARS} (`custom.` included)"
        ));
    }
    Ok(())
}

/// Checks a full gateway name `projects/P/locations/L/agentGateways/G`.
pub fn check_gateway(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    };
    match parts.as_slice() {
        ["projects", project, "locations", location, "agentGateways", gateway]
            if segment_ok(project) && segment_ok(location) && segment_ok(gateway) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{name}` is not a full Agent Gateway name: write projects/PROJECT/locations/REGION/agentGateways/NAME"
        )),
    }
}

/// `text` as a CEL string literal: single quotes, with `\` and `'` escaped.
pub fn cel_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if matches!(c, '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The seed's ALLOW condition on `field` (`agentToAnywhereConfig` or `clientToAgentConfig`).
pub fn condition(field: &str, gateways: &[String]) -> String {
    let path = format!("resource.spec.deploymentSpec.agentGatewayConfig.{field}.agentGateway");
    let list: Vec<String> = gateways.iter().map(|g| cel_quote(g)).collect();
    format!("has({path}) && {path} != '' && ({path} in [{}])", list.join(", "))
}

/// The condition, or an error saying how many of these gateways fit in 1,000 characters.
pub fn bounded_condition(field: &str, gateways: &[String]) -> Result<String, String> {
    let full = condition(field, gateways);
    let length = full.chars().count();
    if length <= MAX_CONDITION_CHARS {
        return Ok(full);
    }
    let fit = (0..=gateways.len())
        .rev()
        .find(|n| condition(field, &gateways[..*n]).chars().count() <= MAX_CONDITION_CHARS)
        .unwrap_or(0);
    Err(format!(
        "the allowlist condition for {} gateways would be {length} characters, over Org Policy's limit \
         of {MAX_CONDITION_CHARS}: only the first {fit} fit. Split the gateways over several constraints \
         (one per `gcp.custom_constraint` step; a resource must satisfy every ALLOW constraint, so each \
         must list all gateways its scope may use) or use shorter names",
        gateways.len()
    ))
}

/// The gateway field of a mode.
pub fn field_of(mode: &str) -> Option<&'static str> {
    match mode {
        "egress" => Some("agentToAnywhereConfig"),
        "ingress" => Some("clientToAgentConfig"),
        _ => None,
    }
}

params! {
    /// The parameters of `gcp.custom_constraint`.
    struct ConstraintParams {
        organization: text => "numeric organisation id",
        constraint_id: text => "custom.NAME: letters and digits after `custom.`, at most 70 characters",
        mode: text => "egress (agentToAnywhereConfig) or ingress (clientToAgentConfig)",
        allowed_gateways: list =>
            "approved gateways, projects/P/locations/L/agentGateways/G (empty: none approved)",
        display_name: opt_text =>
            "display name [default: Restrict Reasoning Engine Egress|Ingress to Approved Agent Gateways]",
        description: text_or(DEFAULT_DESCRIPTION) => "description [default: the seed's]",
    }
}

pub struct Wanted {
    organization: String,
    constraint_id: String,
    condition: String,
    display_name: String,
    description: String,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let bad = |message: String| StepError::permanent(format!("step `{}`: {message}", cx.step_id));
        let params = ConstraintParams::parse(cx)?;
        let organization = params.organization.trim().to_string();
        if !organization.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "`organization` must be the numeric organisation id (like 123456789012), not `{organization}`"
            )));
        }
        let constraint_id = params.constraint_id.trim().to_string();
        check_constraint_id(&constraint_id).map_err(bad)?;
        let mode = params.mode.trim();
        let field = field_of(mode)
            .ok_or_else(|| bad(format!("`mode` must be `egress` or `ingress`, not `{mode}`")))?;
        for gateway in &params.allowed_gateways {
            check_gateway(gateway).map_err(|e| bad(format!("`allowed_gateways`: {e}")))?;
        }
        let condition = bounded_condition(field, &params.allowed_gateways).map_err(bad)?;
        let direction = if mode == "egress" { "Egress" } else { "Ingress" };
        Ok(Wanted {
            organization,
            constraint_id,
            condition,
            display_name: params.display_name.unwrap_or_else(|| {
                format!("Restrict Reasoning Engine {direction} to Approved Agent Gateways")
            }),
            description: params.description,
        })
    }
    fn name(&self) -> String {
        format!(
            "organizations/{}/customConstraints/{}",
            self.organization, self.constraint_id
        )
    }
    fn path(&self) -> String {
        format!("v2/{}", self.name())
    }
    fn outputs(&self) -> Outputs {
        Outputs::from([
            ("name".to_string(), json!(self.name())),
            ("constraint_id".to_string(), json!(self.constraint_id)),
        ])
    }
    fn body(&self) -> Value {
        json!({
            "name": self.name(),
            "resourceTypes": [REASONING_ENGINE],
            "methodTypes": METHOD_TYPES,
            "condition": self.condition,
            "actionType": "ALLOW",
            "displayName": self.display_name,
            "description": self.description,
        })
    }
    /// What differs in a live constraint, for a person; empty when it matches.
    fn differences(&self, live: &Value) -> Vec<String> {
        let set = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let wanted = self.body();
        let mut out = Vec::new();
        for field in ["resourceTypes", "methodTypes"] {
            if set(&live[field]) != set(&wanted[field]) {
                out.push(format!("set {field} to {}", wanted[field]));
            }
        }
        if live["condition"].as_str() != Some(self.condition.as_str()) {
            out.push("replace the condition (the approved gateways)".into());
        }
        for field in ["actionType", "displayName", "description"] {
            if live[field].as_str().unwrap_or_default() != wanted[field].as_str().unwrap_or_default() {
                out.push(format!("set {field}"));
            }
        }
        out
    }
}

#[async_trait]
impl Resource for CustomConstraint {
    type Wanted = Wanted;
    type Live = Value;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description:
                "an organisation custom constraint allowing Reasoning Engines only approved Agent Gateways",
            params: ConstraintParams::specs(),
            outputs: vec!["name", "constraint_id"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("organization", &checks::number)
            .string("constraint_id", &check_constraint_id)
            .string("mode", &checks::one_of(&["egress", "ingress"]))
            .each("allowed_gateways", &check_gateway)
            // Org Policy: display name ≤ 200 characters, description ≤ 2,000.
            .string(
                "display_name",
                &checks::max_chars(200, "a custom constraint display name"),
            )
            .string(
                "description",
                &checks::max_chars(2000, "a custom constraint description"),
            )
            .done()
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("custom constraint {}", wanted.name())
    }

    /// Org-level: read strictly whatever `reading` says.
    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Value>, StepError> {
        let Lookup { wanted, .. } = lookup;
        let doing = format!("reading custom constraint {}", wanted.name());
        read_optional(&self.cloud, &Api::OrgPolicy, &wanted.path(), &doing).await
    }

    async fn examine(&self, step: Step<'_, Wanted>, live: &Value) -> Result<Verdict, StepError> {
        let Step { wanted, .. } = step;
        let differences = wanted.differences(live);
        Ok(if differences.is_empty() {
            Verdict::Converged(wanted.outputs())
        } else {
            Verdict::Drift(
                Change::update(format!(
                    "custom constraint {}: {}",
                    wanted.name(),
                    differences.join("; ")
                ))
                .predicting(wanted.outputs()),
            )
        })
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create custom constraint {} (ALLOW on ReasoningEngine CREATE/UPDATE; enforces \
             nothing until an org policy enforces it)",
            wanted.name()
        ))
        .predicting(wanted.outputs())
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { wanted, .. } = step;
        let client = self.cloud.client().await?;
        // The name is ours: a repeat answers 409.
        client
            .post_as::<Answer>(
                &Api::OrgPolicy,
                &format!("v2/organizations/{}/customConstraints", wanted.organization),
                &wanted.body(),
                PostRetry::Safe,
            )
            .await?;
        Ok(Mutated::Applied(Applied::Done(wanted.outputs())))
    }

    fn missing_after_conflict(&self, step: Step<'_, Wanted>) -> StepError {
        let Step { wanted, .. } = step;
        StepError::retryable(format!(
            "custom constraint {} exists and does not; reading again",
            wanted.name()
        ))
    }

    /// Overwrites the constraint.
    async fn patch(&self, step: Step<'_, Wanted>, _live: Current<'_, Value>) -> Result<Mutated, StepError> {
        let Step { wanted, .. } = step;
        let client = self.cloud.client().await?;
        client
            .patch_as::<Answer>(&Api::OrgPolicy, &wanted.path(), &wanted.body())
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("updating custom constraint {}", wanted.name()),
                    e,
                )
            })?;
        Ok(Mutated::Applied(Applied::Done(wanted.outputs())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "projects/p/locations/us-central1/agentGateways/a";
    const B: &str = "projects/100000000001/locations/europe-west4/agentGateways/b";

    #[test]
    fn quoting_escapes_backslashes_and_quotes() {
        assert_eq!(cel_quote(A), format!("'{A}'"));
        assert_eq!(cel_quote(r"it's"), r"'it\'s'");
        assert_eq!(cel_quote(r"a\b"), r"'a\\b'");
        assert_eq!(cel_quote(r"\'"), r"'\\\''");
        assert_eq!(cel_quote(""), "''");
    }

    #[test]
    fn the_condition_is_the_seeds() {
        let path = "resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway";
        assert_eq!(
            condition("agentToAnywhereConfig", &[A.to_string(), B.to_string()]),
            format!("has({path}) && {path} != '' && ({path} in ['{A}', '{B}'])")
        );
        let ingress = condition("clientToAgentConfig", &[]);
        assert!(
            ingress.contains("clientToAgentConfig.agentGateway in [])"),
            "{ingress}"
        );
    }

    #[test]
    fn the_length_limit_says_how_many_gateways_fit() {
        let gateway =
            |i: usize| format!("projects/project-{i:04}/locations/us-central1/agentGateways/gateway-{i:04}");
        let many: Vec<String> = (0..20).map(gateway).collect();
        let error = bounded_condition("agentToAnywhereConfig", &many).unwrap_err();
        // Fixed part is ~241 characters; each name is 64 + 4 (quotes and separator).
        let fit = (0..=20)
            .rev()
            .find(|n| condition("agentToAnywhereConfig", &many[..*n]).chars().count() <= 1000)
            .unwrap();
        assert!(fit > 0 && fit < 20);
        assert!(error.contains(&format!("only the first {fit} fit")), "{error}");
        assert!(error.contains("limit of 1000"), "{error}");
        let ok = bounded_condition("agentToAnywhereConfig", &many[..fit]).unwrap();
        assert!(ok.chars().count() <= 1000);
    }

    #[test]
    fn constraint_ids_follow_googles_rule() {
        assert!(check_constraint_id("custom.allowlistedEgressAgentGatewaysForAgentEngine").is_ok());
        assert!(check_constraint_id("allowlisted")
            .unwrap_err()
            .contains("must start with `custom.`"));
        assert!(check_constraint_id("custom.")
            .unwrap_err()
            .contains("only letters and digits"));
        assert!(check_constraint_id("custom.no-dashes")
            .unwrap_err()
            .contains("only letters and digits"));
        let long = format!("custom.{}", "a".repeat(64));
        assert_eq!(long.len(), 71);
        assert!(check_constraint_id(&long).unwrap_err().contains("at most 70"));
        assert!(check_constraint_id(&long[..70]).is_ok());
    }

    #[test]
    fn gateways_must_be_full_names() {
        assert!(check_gateway(A).is_ok());
        assert!(check_gateway(B).is_ok());
        for bad in [
            "gateway-a",
            "projects/p/locations/us-central1/agentGateways/",
            "projects/p/locations/us-central1/gateways/a",
            "projects/p/locations/us-central1/agentGateways/a/extra",
            "projects/p/locations/us-central1/agentGateways/it's",
        ] {
            let error = check_gateway(bad).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
            assert!(error.contains("projects/PROJECT/locations/REGION/agentGateways/NAME"));
        }
    }

    fn context(params: Value) -> StepContext {
        StepContext {
            run_id: "run".into(),
            step_id: "egress_constraint".into(),
            params: params.as_object().cloned().unwrap(),
            idempotency_key: "key".into(),
            attempt: 1,
        }
    }

    fn error(params: Value) -> String {
        match Wanted::from(&context(params)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.message().to_string(),
        }
    }

    #[test]
    fn parameters_are_checked_with_clear_messages() {
        let good = json!({ "organization": "123456789012", "constraint_id": "custom.egress",
                           "mode": "egress", "allowed_gateways": [A, B] });
        let wanted = Wanted::from(&context(good.clone())).unwrap();
        assert_eq!(
            wanted.name(),
            "organizations/123456789012/customConstraints/custom.egress"
        );
        assert_eq!(wanted.description, DEFAULT_DESCRIPTION);
        assert_eq!(
            wanted.display_name,
            "Restrict Reasoning Engine Egress to Approved Agent Gateways"
        );
        let with = |key: &str, value: Value| {
            let mut params = good.clone();
            params[key] = value;
            params
        };
        let message = error(with("allowed_gateways", json!([A, "projects/p/agentGateways/x"])));
        assert!(message.starts_with("step `egress_constraint`"), "{message}");
        assert!(
            message.contains("`projects/p/agentGateways/x`"),
            "names the bad one: {message}"
        );
        let message = error(with("organization", json!("acme")));
        assert!(message.contains("numeric organisation id"), "{message}");
        let message = error(with("mode", json!("both")));
        assert!(message.contains("`egress` or `ingress`"), "{message}");
        let message = error(with("constraint_id", json!("allowlisted")));
        assert!(message.contains("must start with `custom.`"), "{message}");
        let long: Vec<String> = (0..30)
            .map(|i| format!("projects/p/locations/us-central1/agentGateways/gateway-{i:03}"))
            .collect();
        let message = error(with("allowed_gateways", json!(long)));
        assert!(message.contains("only the first"), "{message}");
        // An empty list is allowed: nothing is approved.
        let none = Wanted::from(&context(with("allowed_gateways", json!([])))).unwrap();
        assert!(none.condition.ends_with("in [])"), "{}", none.condition);
    }

    #[test]
    fn modes_name_their_fields() {
        assert_eq!(field_of("egress"), Some("agentToAnywhereConfig"));
        assert_eq!(field_of("ingress"), Some("clientToAgentConfig"));
        assert_eq!(field_of("both"), None);
    }
}
