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

#[cfg(test)]
mod tests {
    use serde_json::{json, Map, Value};
    use sluice_engine::Severity;

    use super::*;

    /// A step with `with` known as given, except `${…}` texts (which read other steps).
    fn step(id: &'static str, kind: &'static str, with: Value) -> PlannedStep<'static> {
        let with = with.as_object().cloned().unwrap_or_default();
        let known: Map<String, Value> = (with.iter())
            .filter(|(_, v)| !v.to_string().contains("${"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        PlannedStep::new(id, kind, known, &with)
    }

    fn gateway(id: &'static str, mode: &str) -> PlannedStep<'static> {
        step(
            id,
            "gcp.agent_gateway",
            json!({ "project": "p", "region": "r1", "gateway_id": id, "mode": mode }),
        )
    }

    fn policy(id: &'static str, gateway: &str, profile: &str, action: &str) -> PlannedStep<'static> {
        let with = json!({ "gateway": format!("${{steps.{gateway}.outputs.name}}"), "profile": profile, "action": action });
        step(id, "gcp.authz_policy", with)
    }

    fn refusals(steps: &[PlannedStep]) -> Vec<(String, Option<String>)> {
        (GatewayGovernance.check(steps).into_iter())
            .filter(|f| f.severity == Severity::Refuse)
            .map(|f| (f.step, f.param))
            .collect()
    }

    #[test]
    fn an_egress_gateway_takes_four_policies_and_refuses_the_fifth() {
        let ids = ["a", "b", "c", "d", "e"];
        let mut steps = vec![gateway("gw", "egress")];
        steps.extend(
            ids[..4]
                .iter()
                .map(|id| policy(id, "gw", "REQUEST_AUTHZ", "ALLOW")),
        );
        assert!(refusals(&steps).is_empty());
        steps.push(policy(ids[4], "gw", "REQUEST_AUTHZ", "ALLOW"));
        assert_eq!(refusals(&steps), [("e".to_string(), Some("gateway".to_string()))]);
    }

    #[test]
    fn policies_on_another_gateway_do_not_count() {
        let mut steps = vec![gateway("gw", "egress"), gateway("other", "egress")];
        steps.extend(["a", "b", "c", "d"].map(|id| policy(id, "gw", "REQUEST_AUTHZ", "ALLOW")));
        steps.push(policy("e", "other", "REQUEST_AUTHZ", "ALLOW"));
        assert!(refusals(&steps).is_empty());
    }

    #[test]
    fn a_policy_naming_the_gateway_by_its_full_name_counts_for_it() {
        let mut steps = vec![gateway("gw", "ingress")];
        steps.push(policy("a", "gw", "CONTENT_AUTHZ", "CUSTOM"));
        let named = json!({ "gateway": "projects/p/locations/r1/agentGateways/gw", "profile": "CONTENT_AUTHZ", "action": "CUSTOM" });
        steps.push(step("b", "gcp.authz_policy", named));
        assert_eq!(refusals(&steps), [("b".to_string(), Some("gateway".to_string()))]);
    }

    #[test]
    fn an_ingress_gateway_takes_one_content_authz_policy() {
        let steps = [
            gateway("gw", "ingress"),
            policy("a", "gw", "CONTENT_AUTHZ", "CUSTOM"),
        ];
        assert!(refusals(&steps).is_empty());
        let steps = [
            gateway("gw", "ingress"),
            policy("a", "gw", "REQUEST_AUTHZ", "ALLOW"),
        ];
        assert_eq!(refusals(&steps), [("a".to_string(), Some("profile".to_string()))]);
        // Unset, the profile is Google's default: REQUEST_AUTHZ.
        let unset = step(
            "a",
            "gcp.authz_policy",
            json!({ "gateway": "${steps.gw.outputs.name}", "action": "ALLOW" }),
        );
        assert_eq!(refusals(&[gateway("gw", "ingress"), unset]).len(), 1);
    }

    #[test]
    fn iap_is_for_request_authz_and_model_armor_for_content_authz() {
        let extension = |id: &'static str, service: &str| {
            step(
                id,
                "gcp.authz_extension",
                json!({ "region": "r1", "service": service }),
            )
        };
        let custom = |id: &'static str, profile: &str, extension: &str| {
            let with = json!({ "gateway": "${steps.gw.outputs.name}", "profile": profile, "action": "CUSTOM",
                "extensions": [format!("${{steps.{extension}.outputs.name}}")] });
            step(id, "gcp.authz_policy", with)
        };
        let steps = [
            gateway("gw", "egress"),
            extension("iap", "iap"),
            extension("armor", "model_armor"),
            custom("ok_iap", "REQUEST_AUTHZ", "iap"),
            custom("ok_armor", "CONTENT_AUTHZ", "armor"),
            custom("bad_iap", "CONTENT_AUTHZ", "iap"),
            custom("bad_armor", "REQUEST_AUTHZ", "armor"),
        ];
        let extensions = Some("extensions".to_string());
        assert_eq!(
            refusals(&steps),
            [
                ("bad_iap".to_string(), extensions.clone()),
                ("bad_armor".to_string(), extensions)
            ]
        );
    }

    #[test]
    fn templates_must_share_the_extension_s_region() {
        let templates = |region: &str| {
            step(
                "templates",
                "gcp.model_armor_template",
                json!({ "region": region, "template_id": "t" }),
            )
        };
        let extension = || {
            let with = json!({ "region": "r1", "service": "model_armor",
                "request_template": "${steps.templates.outputs.name}",
                "response_template": "${steps.templates.outputs.response_name}" });
            step("armor", "gcp.authz_extension", with)
        };
        assert!(refusals(&[templates("r1"), extension()]).is_empty());
        let found = refusals(&[templates("r2"), extension()]);
        let params: Vec<Option<String>> = found.into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            params,
            [Some("request_template".into()), Some("response_template".into())]
        );
    }

    fn engine(uses_vertex_ai: bool) -> PlannedStep<'static> {
        let with = json!({ "region": "r1", "egress_gateway": "${steps.gw.outputs.name}", "uses_vertex_ai": uses_vertex_ai });
        step("agent", "gcp.reasoning_engine", with)
    }

    fn warnings(steps: &[PlannedStep]) -> Vec<String> {
        (GatewayGovernance.check(steps).into_iter())
            .filter(|f| f.severity == Severity::Warn)
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn deny_by_default_without_an_allow_for_the_llm_host_is_warned_of() {
        let deny = policy("deny", "gw", "REQUEST_AUTHZ", "DENY_BY_DEFAULT");
        let found = warnings(&[gateway("gw", "egress"), deny, engine(true)]);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].contains("r1-aiplatform.googleapis.com") && found[0].contains("step `deny`"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn no_warning_when_the_host_is_allowed_or_not_needed_or_not_known() {
        let deny = || policy("deny", "gw", "REQUEST_AUTHZ", "DENY_BY_DEFAULT");
        let allow = |hosts: Value| {
            let with = json!({ "gateway": "${steps.gw.outputs.name}", "action": "ALLOW", "hosts": hosts });
            step("allow", "gcp.authz_policy", with)
        };
        let allowed = allow(json!(["r1-aiplatform.googleapis.com"]));
        assert!(warnings(&[gateway("gw", "egress"), deny(), allowed, engine(true)]).is_empty());
        assert!(warnings(&[gateway("gw", "egress"), deny(), engine(false)]).is_empty());
        // The allowed hosts come from another step: nothing to judge by.
        let unknown = allow(json!("${steps.hosts.outputs.list}"));
        assert!(warnings(&[gateway("gw", "egress"), deny(), unknown, engine(true)]).is_empty());
        let other = allow(json!(["api.example.com"]));
        assert_eq!(
            warnings(&[gateway("gw", "egress"), deny(), other, engine(true)]).len(),
            1
        );
    }
}
