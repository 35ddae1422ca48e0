//! `gcp.authz_policy`: a Network Security authorization policy (`authzPolicies`) on an Agent
//! Gateway.
//!
//! - **Guarantees:** when the step succeeds, `projects/{project}/locations/{region}/authzPolicies/{policy_id}`
//!   exists targeting `gateway` with the step's `policyProfile`, `action`, extensions (for
//!   `CUSTOM`) and `httpRules` (when given); `name` names it. It is created at most once: its id
//!   is chosen here, so a repeated create answers 409 ALREADY_EXISTS and the step adopts what the
//!   lost answer created. A drifted field the step sets is patched (only it, by `updateMask`).
//! - **Assumptions:** `gateway` and `extensions` are full resource names in the policy's
//!   project and region. Google enforces Agent Gateway's limits when the policy is created or
//!   patched (an egress gateway takes at most four policies, an ingress one a single
//!   CONTENT_AUTHZ policy; IAP extensions only from REQUEST_AUTHZ, Model Armor only from
//!   CONTENT_AUTHZ): each refusal is a permanent error carrying Google's message, which names
//!   the limit. A policy named `policy_id` is ours.
//! - **Caveats:** refused at validation (each rule when its values are known then; otherwise
//!   when the step starts, before any call): unknown `profile` or `action`, `CUSTOM` without
//!   `extensions` (or extensions without `CUSTOM`), `CONTENT_AUTHZ` with another action than
//!   `CUSTOM`, `DENY_BY_DEFAULT` with `http_rules`. Whether an extension is IAP or Model Armor is
//!   not known at validation (only its name is): Google refuses the mismatch. A `gateway` that
//!   is not an agent gateway name in `region` is refused at validation. `policyProfile`
//!   is immutable: ours with another profile is a permanent error (delete it or choose another
//!   `policy_id`).

use serde_json::{json, Map, Value};
use sluice_engine::{async_trait, Change, KindSchema, ParamProblem, PollOutcome, StepContext, StepError};
use sluice_gcp::{Api, GcpError, OperationFamily};

use crate::authz;
use crate::checks;
use crate::cloud::Cloud;
use crate::common::encode;
use crate::egress_access;
use crate::reconcile::{Absent, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};

const PROFILES: &[&str] = &["REQUEST_AUTHZ", "CONTENT_AUTHZ"];
const ACTIONS: &[&str] = &["ALLOW", "DENY", "CUSTOM", "DENY_BY_DEFAULT"];

pub struct AuthzPolicy {
    cloud: Cloud,
}

impl AuthzPolicy {
    pub fn new(cloud: Cloud) -> Self {
        AuthzPolicy { cloud }
    }
}

params! {
    /// The parameters of `gcp.authz_policy`.
    struct PolicyParams {
        project: text => "project id",
        region: text => "region, like us-central1 (the gateway's)",
        policy_id: text => "policy id: lowercase letters, digits, -",
        gateway: text => "the agent gateway: projects/P/locations/R/agentGateways/G",
        profile: text_or("REQUEST_AUTHZ") => "REQUEST_AUTHZ or CONTENT_AUTHZ [default: REQUEST_AUTHZ]",
        action: text => "ALLOW, DENY, CUSTOM or DENY_BY_DEFAULT",
        extensions: strings => "authorization extensions (full names), for CUSTOM",
        http_rules: object => "Google's httpRules (a JSON list), optional",
        hosts: strings => "hosts the policy selects (exact names, like us-central1-aiplatform.googleapis.com), \
                           added to httpRules: for an egress ALLOW, what the agent may reach",
    }
}

pub struct Wanted {
    project: String,
    region: String,
    policy_id: String,
    profile: String,
    /// The settable fields the step sets and may patch, as Google shows them (`policyProfile`,
    /// immutable, is checked by `find`).
    fields: Map<String, Value>,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let params = PolicyParams::parse(cx)?;
        let profile = params.profile.trim().to_ascii_uppercase();
        let action = params.action.trim().to_ascii_uppercase();
        let extensions = !params.extensions.is_empty();
        let rules = rules_of(params.http_rules.as_ref(), &params.hosts);
        let given = Rules {
            http_rules: params.http_rules.is_some(),
            hosts: !params.hosts.is_empty(),
        };
        if let Some(problem) = problems(Some(&profile), Some(&action), Some(extensions), Some(given))
            .into_iter()
            .next()
        {
            return Err(StepError::permanent(format!(
                "step `{}`: `{}`: {}",
                cx.step_id, problem.param, problem.message
            )));
        }
        let mut fields = Map::new();
        fields.insert("target".into(), json!({ "resources": [params.gateway] }));
        fields.insert("action".into(), json!(action));
        if !params.extensions.is_empty() {
            fields.insert(
                "customProvider".into(),
                json!({ "authzExtension": { "resources": params.extensions } }),
            );
        }
        match rules {
            Some(Ok(rules)) => {
                fields.insert("httpRules".into(), rules);
            }
            Some(Err(found)) => {
                return Err(StepError::permanent(format!(
                    "step `{}`: `http_rules` must be a list of Google's rules, found {found}",
                    cx.step_id
                )))
            }
            None => {}
        }
        Ok(Wanted {
            project: params.project,
            region: params.region,
            policy_id: params.policy_id,
            profile,
            fields,
        })
    }
    fn name(&self) -> String {
        format!(
            "projects/{}/locations/{}/authzPolicies/{}",
            self.project, self.region, self.policy_id
        )
    }
}

/// The `httpRules` a policy gets: `http_rules` followed by a rule selecting `hosts`; `None`
/// for neither, `Err` with what `http_rules` was when it is not a list.
pub(crate) fn rules_of(http_rules: Option<&Value>, hosts: &[String]) -> Option<Result<Value, Value>> {
    let mut rules = match http_rules {
        None => Vec::new(),
        Some(Value::Array(rules)) => rules.clone(),
        Some(other) => return Some(Err(other.clone())),
    };
    if !hosts.is_empty() {
        rules.extend(
            egress_access::host_rules(hosts)
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    (http_rules.is_some() || !hosts.is_empty()).then_some(Ok(Value::Array(rules)))
}

/// Which of the two ways of giving rules a step uses.
#[derive(Clone, Copy)]
struct Rules {
    http_rules: bool,
    hosts: bool,
}

/// What is wrong with a profile, action, extensions (whether any) and rules (which given);
/// `None` is unknown (from another step's outputs, or omitted: validation cannot tell), and a
/// rule involving an unknown value is not checked.
fn problems(
    profile: Option<&str>,
    action: Option<&str>,
    extensions: Option<bool>,
    rules: Option<Rules>,
) -> Vec<ParamProblem> {
    let mut problems = Vec::new();
    if let Some(profile) = profile.filter(|p| !PROFILES.contains(p)) {
        problems.push(ParamProblem::new(
            "profile",
            format!("`{profile}` is not a policy profile: use REQUEST_AUTHZ or CONTENT_AUTHZ"),
        ));
        return problems;
    }
    if let Some(action) = action.filter(|a| !ACTIONS.contains(a)) {
        problems.push(ParamProblem::new(
            "action",
            format!("`{action}` is not an action: use ALLOW, DENY, CUSTOM or DENY_BY_DEFAULT"),
        ));
        return problems;
    }
    let Some(action) = action else {
        return problems;
    };
    if action == "CUSTOM" && extensions == Some(false) {
        problems.push(ParamProblem::new(
            "extensions",
            "a CUSTOM policy needs `extensions`: the authorization extensions it calls",
        ));
    }
    if action != "CUSTOM" && extensions == Some(true) {
        problems.push(ParamProblem::new(
            "extensions",
            format!("only a CUSTOM policy calls extensions; this one is {action}"),
        ));
    }
    if profile == Some("CONTENT_AUTHZ") && action != "CUSTOM" {
        problems.push(ParamProblem::new(
            "action",
            format!("a CONTENT_AUTHZ policy must be CUSTOM (Google allows no other action), not {action}"),
        ));
    }
    if action == "DENY_BY_DEFAULT" {
        let given = rules.map(|r| [("http_rules", r.http_rules), ("hosts", r.hosts)]);
        for (param, _) in given.iter().flatten().filter(|(_, given)| *given) {
            problems.push(ParamProblem::new(
                *param,
                format!(
                    "a DENY_BY_DEFAULT policy takes no `{param}`: allow traffic with another, ALLOW policy"
                ),
            ));
        }
    }
    problems
}

#[async_trait]
impl Resource for AuthzPolicy {
    type Wanted = Wanted;
    type Live = Value;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an authorization policy on an Agent Gateway (REQUEST_AUTHZ or CONTENT_AUTHZ)",
            params: PolicyParams::specs(),
            outputs: vec!["name"],
        }
    }

    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        let mut found = checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("region", &checks::region)
            .string("policy_id", &checks::resource_id)
            .done();
        let known = |key: &str| {
            params
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.contains("${"))
                .map(|s| s.trim().to_ascii_uppercase())
        };
        let region = params
            .get("region")
            .and_then(Value::as_str)
            .filter(|r| !r.contains("${"));
        let gateway = params
            .get("gateway")
            .and_then(Value::as_str)
            .filter(|g| !g.contains("${"));
        if let (Some(region), Some(gateway)) = (region, gateway) {
            let parts: Vec<&str> = gateway.split('/').collect();
            if !matches!(parts.as_slice(), ["projects", _, "locations", r, "agentGateways", _] if *r == region)
            {
                found.push(ParamProblem::new(
                    "gateway",
                    format!(
                        "`{gateway}` is not an agent gateway in {region}: write \
                         projects/P/locations/{region}/agentGateways/G (a policy and its gateway share the region)"
                    ),
                ));
            }
        }
        let (profile, action) = (known("profile"), known("action"));
        let extensions = params
            .get("extensions")
            .and_then(Value::as_array)
            .map(|items| !items.is_empty());
        let given = |key: &str| {
            params
                .get(key)
                .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        };
        let rules = Rules {
            http_rules: given("http_rules").is_some(),
            hosts: given("hosts").is_some(),
        };
        found.extend(problems(
            profile.as_deref(),
            action.as_deref(),
            extensions,
            Some(rules),
        ));
        found
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("authorization policy {}", wanted.name())
    }

    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Value>, StepError> {
        let Lookup {
            cx, wanted, reading, ..
        } = lookup;
        let name = wanted.name();
        let found = authz::read(&self.cloud, &Api::NetworkSecurity, &name, reading).await?;
        if let Some(policy) = &found {
            let profile = policy["policyProfile"].as_str().unwrap_or("REQUEST_AUTHZ");
            if profile != wanted.profile {
                return Err(StepError::permanent(format!(
                    "step `{}`: authorization policy {name} exists with policyProfile {profile}, not {}; \
                     a policy's profile cannot be changed: delete the policy or choose another `policy_id`",
                    cx.step_id, wanted.profile
                )));
            }
        }
        Ok(found)
    }

    async fn examine(&self, step: Step<'_, Wanted>, live: &Value) -> Result<Verdict, StepError> {
        let wanted = step.wanted;
        Ok(authz::verdict(
            "authorization policy",
            &wanted.name(),
            &wanted.fields,
            live,
        ))
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create authorization policy {} ({} {})",
            wanted.name(),
            wanted.profile,
            wanted.fields["action"].as_str().unwrap_or_default()
        ))
        .predicting(authz::outputs(&wanted.name()))
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let wanted = step.wanted;
        let path = format!(
            "v1/projects/{}/locations/{}/authzPolicies?authzPolicyId={}",
            wanted.project,
            wanted.region,
            encode(&wanted.policy_id)
        );
        let mut body = wanted.fields.clone();
        body.insert("policyProfile".into(), json!(wanted.profile));
        authz::create(&self.cloud, OperationFamily::NetworkSecurity, &path, body).await
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
            OperationFamily::NetworkSecurity,
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

    fn check(params: Value) -> Vec<String> {
        AuthzPolicy::new(Cloud::new(Default::default()))
            .check(params.as_object().unwrap())
            .into_iter()
            .map(|p| p.param)
            .collect()
    }

    #[test]
    fn check_refuses_bad_profiles_and_actions() {
        let base = json!({"project": "p-123456", "region": "us-central1", "policy_id": "p",
                          "gateway": "projects/p/locations/us-central1/agentGateways/g"});
        let with = |extra: Value| {
            let mut params = base.clone();
            params
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            check(params)
        };
        assert_eq!(with(json!({"profile": "BOTH", "action": "ALLOW"})), ["profile"]);
        assert_eq!(with(json!({"action": "MAYBE"})), ["action"]);
        assert_eq!(
            with(json!({"action": "CUSTOM", "extensions": []})),
            ["extensions"]
        );
        // Omitted or from another step: not known at validation.
        assert!(with(json!({"action": "CUSTOM"})).is_empty());
        assert_eq!(
            with(json!({"profile": "CONTENT_AUTHZ", "action": "ALLOW"})),
            ["action"]
        );
        assert!(
            with(json!({"profile": "CONTENT_AUTHZ", "action": "CUSTOM", "extensions": ["x"]})).is_empty()
        );
        assert!(with(json!({"action": "${vars.action}"})).is_empty());
        let elsewhere = "projects/p/locations/us-east1/agentGateways/g";
        assert_eq!(
            with(json!({"action": "ALLOW", "gateway": elsewhere})),
            ["gateway"]
        );
    }
}
