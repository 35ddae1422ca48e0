//! The plan rule for a governed Agent Gateway: Google's limits on authorization policies and
//! extensions, checked across the steps of a plan before any call, and the warning that an
//! egress gateway's policies would deny the LLM endpoint the agent declares it needs.
//!
//! Steps are related by what their parameters read: a policy's `gateway` reading a
//! `gcp.agent_gateway` step's outputs (or naming the gateway that step makes), a policy's
//! `extensions` reading `gcp.authz_extension` steps, an extension's templates reading a
//! `gcp.model_armor_template` step, an engine's `egress_gateway` reading a gateway step. A
//! relation or value not known before the run is not judged here: Google refuses a broken limit
//! when the call is made, and the step reports it.
//!
//! Refused: a fifth policy on an egress gateway; a second, or a non-CONTENT_AUTHZ, policy on an
//! ingress gateway; an IAP extension in a CONTENT_AUTHZ policy (and Model Armor in a
//! REQUEST_AUTHZ one); Model Armor templates in another region than the extension using them.

use serde_json::{json, Value};
use sluice_engine::{Finding, PlanRule, PlannedStep};

use crate::authz_extension::{model_armor_region, service_name};
use crate::authz_policy::rules_of;
use crate::egress_access::{self, Decision, Policy};

/// At most this many authorization policies on an egress agent gateway (Google's docs).
const EGRESS_POLICY_LIMIT: usize = 4;

/// Google's Agent Gateway limits and the egress LLM-access warning, across a plan's steps.
pub struct GatewayGovernance;

impl PlanRule for GatewayGovernance {
    fn check(&self, steps: &[PlannedStep<'_>]) -> Vec<Finding> {
        let plan = Plan { steps };
        let mut findings = Vec::new();
        for gateway in plan.of_kind("gcp.agent_gateway") {
            match gateway.text("mode").map(str::trim) {
                Some("egress") => findings.extend(plan.egress_limit(gateway)),
                Some("ingress") => findings.extend(plan.ingress_limit(gateway)),
                _ => {}
            }
            findings.extend(plan.llm_access(gateway));
        }
        for policy in plan.of_kind("gcp.authz_policy") {
            findings.extend(plan.extension_profiles(policy));
        }
        for extension in plan.of_kind("gcp.authz_extension") {
            findings.extend(plan.template_regions(extension));
        }
        findings
    }
}

struct Plan<'s, 'a> {
    steps: &'s [PlannedStep<'a>],
}

impl<'s, 'a> Plan<'s, 'a> {
    fn of_kind(&self, kind: &'s str) -> impl Iterator<Item = &'s PlannedStep<'a>> + 's {
        self.steps.iter().filter(move |s| s.kind == kind)
    }

    fn step(&self, id: &str) -> Option<&'s PlannedStep<'a>> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The step of kind `kind` that `param` of `step` reads from, or (for a gateway) names.
    fn related(&self, step: &PlannedStep, param: &str, kind: &str) -> Option<&'s PlannedStep<'a>> {
        let read = (step.reads_from(param).iter())
            .filter_map(|id| self.step(id))
            .find(|s| s.kind == kind);
        read.or_else(|| {
            let named = step.text(param)?;
            (self.steps.iter()).find(|s| s.kind == kind && gateway_name(s).as_deref() == Some(named))
        })
    }

    /// The policy steps targeting `gateway`, in plan order.
    fn policies_on(&self, gateway: &PlannedStep) -> Vec<&'s PlannedStep<'a>> {
        self.of_kind("gcp.authz_policy")
            .filter(|p| self.related(p, "gateway", "gcp.agent_gateway").map(|g| g.id) == Some(gateway.id))
            .collect()
    }

    fn egress_limit(&self, gateway: &PlannedStep) -> Option<Finding> {
        let policies = self.policies_on(gateway);
        let over = policies.get(EGRESS_POLICY_LIMIT)?;
        Some(Finding::refuse(
            over.id,
            Some("gateway"),
            format!(
                "egress agent gateway `{}` would get {} authorization policies ({}): Google allows \
                 at most {EGRESS_POLICY_LIMIT} on an egress (Agent-to-Anywhere) gateway; merge rules \
                 into fewer policies or drop one",
                gateway.id,
                policies.len(),
                ids(&policies)
            ),
        ))
    }

    fn ingress_limit(&self, gateway: &PlannedStep) -> Vec<Finding> {
        let policies = self.policies_on(gateway);
        let mut findings = Vec::new();
        if let Some(second) = policies.get(1) {
            findings.push(Finding::refuse(
                second.id,
                Some("gateway"),
                format!(
                    "ingress agent gateway `{}` would get {} authorization policies ({}): an ingress \
                     (Client-to-Agent) gateway takes a single CONTENT_AUTHZ policy; keep one",
                    gateway.id,
                    policies.len(),
                    ids(&policies)
                ),
            ));
        }
        for policy in policies {
            let profile = profile_of(policy);
            if profile.as_deref().is_some_and(|p| p != "CONTENT_AUTHZ") {
                findings.push(Finding::refuse(
                    policy.id,
                    Some("profile"),
                    format!(
                        "ingress agent gateway `{}` takes only a CONTENT_AUTHZ policy (Model Armor), \
                         not {}: put request authorization (IAP, ALLOW/DENY rules) on an egress gateway \
                         or drop this policy",
                        gateway.id,
                        profile.unwrap_or_default()
                    ),
                ));
            }
        }
        findings
    }

    /// IAP only from REQUEST_AUTHZ, Model Armor only from CONTENT_AUTHZ.
    fn extension_profiles(&self, policy: &PlannedStep) -> Vec<Finding> {
        let Some(profile) = profile_of(policy) else {
            return Vec::new();
        };
        let extensions = (policy.reads_from("extensions").iter()).filter_map(|id| self.step(id));
        let mut findings = Vec::new();
        for extension in extensions.filter(|s| s.kind == "gcp.authz_extension") {
            let (Some(service), Some(region)) = (extension.text("service"), extension.text("region")) else {
                continue;
            };
            let service = service_name(service, region);
            let needs = match service.as_str() {
                "iap.googleapis.com" => "REQUEST_AUTHZ",
                other if model_armor_region(other).is_some() => "CONTENT_AUTHZ",
                _ => continue,
            };
            if profile != needs {
                findings.push(Finding::refuse(
                    policy.id,
                    Some("extensions"),
                    format!(
                        "extension step `{}` calls {service}, which Google lets only a {needs} policy \
                         use; this policy is {profile}: set `profile: {needs}` or call another extension",
                        extension.id
                    ),
                ));
            }
        }
        findings
    }

    /// Model Armor templates (read from a template step) in the extension's region.
    fn template_regions(&self, extension: &PlannedStep) -> Vec<Finding> {
        let Some(region) = extension.text("region") else {
            return Vec::new();
        };
        let mut findings = Vec::new();
        for param in ["request_template", "response_template"] {
            let Some(template) = self.related(extension, param, "gcp.model_armor_template") else {
                continue;
            };
            match template.text("region") {
                Some(other) if other != region => findings.push(Finding::refuse(
                    extension.id,
                    Some(param),
                    format!(
                        "the Model Armor template of step `{}` is in region {other}, but this extension \
                         (and its gateway) is in {region}: Model Armor and the gateway must share the \
                         region; use a template in {region}",
                        template.id
                    ),
                )),
                _ => {}
            }
        }
        findings
    }

    /// The warning: an engine bound to `gateway` declares an LLM endpoint its policies deny.
    fn llm_access(&self, gateway: &PlannedStep) -> Vec<Finding> {
        let engines = self.of_kind("gcp.reasoning_engine").filter(|e| {
            e.known.get("uses_vertex_ai") == Some(&json!(true))
                && self
                    .related(e, "egress_gateway", "gcp.agent_gateway")
                    .map(|g| g.id)
                    == Some(gateway.id)
        });
        let Some(bodies) = self
            .policies_on(gateway)
            .into_iter()
            .map(planned_policy)
            .collect::<Option<Vec<_>>>()
        else {
            // A policy whose action or rules come from another step: nothing to judge by.
            return Vec::new();
        };
        let policies: Vec<Policy> = (bodies.iter())
            .map(|(id, body)| Policy {
                name: format!("step `{id}`"),
                body,
            })
            .collect();
        let mut findings = Vec::new();
        for engine in engines {
            let Some(region) = engine.text("region") else {
                continue;
            };
            let host = egress_access::vertex_ai_host(region);
            if let Decision::Denied { policy, action } = egress_access::decide(&policies, &host) {
                findings.push(Finding::warn(
                    engine.id,
                    Some("uses_vertex_ai"),
                    format!(
                        "the agent calls Gemini on Vertex AI ({host}), but egress gateway `{}` would deny \
                         it ({policy}, {action}): the deploy would fail, only after minutes. Allow the \
                         host in an ALLOW policy on the gateway (the shipped plans: --var \
                         'egress_allow_hosts=[\"{host}\"]')",
                        gateway.id
                    ),
                ));
            }
        }
        findings
    }
}

/// The name a gateway step gives its gateway, when its parameters are known.
fn gateway_name(gateway: &PlannedStep) -> Option<String> {
    let (project, region, id) = (
        gateway.text("project")?,
        gateway.text("region")?,
        gateway.text("gateway_id")?,
    );
    Some(format!(
        "projects/{project}/locations/{region}/agentGateways/{id}"
    ))
}

/// A policy step's profile, as Google will hold it (REQUEST_AUTHZ when not given).
fn profile_of(policy: &PlannedStep) -> Option<String> {
    match policy.known.get("profile") {
        None if policy.reads_from("profile").is_empty() => Some("REQUEST_AUTHZ".into()),
        None => None,
        Some(value) => value.as_str().map(|p| p.trim().to_ascii_uppercase()),
    }
}

/// A policy step's `action` and `httpRules` as Google will hold them; `None` when they are not
/// all known before the run.
fn planned_policy<'p>(policy: &'p PlannedStep) -> Option<(&'p str, Value)> {
    let known = |param: &str| policy.reads_from(param).is_empty();
    if !(known("action") && known("http_rules") && known("hosts")) {
        return None;
    }
    let action = policy.text("action")?.trim().to_ascii_uppercase();
    let hosts: Vec<String> = (policy
        .known
        .get("hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten())
    .filter_map(|h| h.as_str().map(str::to_string))
    .collect();
    let mut body = json!({ "action": action });
    if let Some(Ok(rules)) = rules_of(policy.known.get("http_rules"), &hosts) {
        body["httpRules"] = rules;
    }
    Some((policy.id, body))
}

fn ids(steps: &[&PlannedStep]) -> String {
    let ids: Vec<String> = steps.iter().map(|s| format!("`{}`", s.id)).collect();
    ids.join(", ")
}
