//! Whether an egress (`AGENT_TO_ANYWHERE`) agent gateway lets a reasoning engine reach the LLM it
//! declares. Google's guide warns that a gateway which does not allow an agent's LLM access makes
//! the Agent Runtime deployment fail; [`vertex_ai`](super::vertex_ai) fails the create or patch
//! operation with the [`llm_access_problem`] found here.
//!
//! The declared LLM access is what an ADK / google-genai agent reads to call Gemini on Vertex AI,
//! in `spec.deploymentSpec.env`: `GOOGLE_GENAI_USE_VERTEXAI` set to `true` (any case) or `1`
//! declares the host `{L}-aiplatform.googleapis.com`, where `L` is `GOOGLE_CLOUD_LOCATION` from
//! the same list (the engine's own location when absent or empty), and `aiplatform.googleapis.com`
//! when `L` is `global`. When a name appears twice, the last entry counts. Without
//! `GOOGLE_GENAI_USE_VERTEXAI` there is no declared access and nothing is checked.
//!
//! Evaluation follows the `AuthzPolicy.action` documentation (networksecurity.v1.json) over the
//! authorization policies targeting the gateway, taken in name order:
//! - `CUSTOM` policies are skipped: their extensions (IAP, Model Armor) decide per request, not
//!   at deploy time;
//! - a matching `DENY` policy denies; otherwise a matching `ALLOW` policy allows; otherwise a
//!   `DENY_BY_DEFAULT` policy denies; otherwise the host is allowed.
//!
//! A policy without `httpRules` matches every host; otherwise one of its rules must match. The
//! emulator knows only the destination host, so a rule's `from` and `when` are not evaluated (a
//! rule matches whatever they say), and neither are an operation's `paths`, `methods`,
//! `headerSet`, `snis` or `mcp`. A rule without `to`, or whose `to` lists neither `operations`
//! nor `notOperations`, matches every host. Otherwise, as the discovery document says, the rule
//! matches when ANY entry matches: an entry of `operations` matches when it has no `hosts` or one
//! of its `hosts` matches; an entry of `notOperations` matches when that is not so (so a
//! `notOperations` entry alone excludes its hosts). A host `StringMatch` is one of `exact`,
//! `prefix`, `suffix` or `contains`, compared without regard to case when `ignoreCase` is true.

use serde_json::Value;

use crate::error::ApiError;
use crate::world::World;

/// The environment variable that makes google-genai call Gemini through Vertex AI.
const USE_VERTEX_AI: &str = "GOOGLE_GENAI_USE_VERTEXAI";
/// The environment variable naming the Vertex AI location google-genai calls.
const CLOUD_LOCATION: &str = "GOOGLE_CLOUD_LOCATION";

/// The authorization policy that denies a host, and its action (`DENY` or `DENY_BY_DEFAULT`).
#[derive(Debug, PartialEq, Eq)]
struct Denial<'a> {
    policy: &'a str,
    action: &'a str,
}

/// Why the egress gateway `gateway` (stored under `gateway_key`) stops the engine `engine` in
/// `location` from reaching the LLM it declares, if it does: FAILED_PRECONDITION naming the host,
/// the gateway and the denying policy.
pub fn llm_access_problem(
    world: &World,
    gateway: &str,
    gateway_key: &str,
    engine: &Value,
    location: &str,
) -> Option<ApiError> {
    let host = declared_llm_host(engine, location)?;
    let policies = super::authorization::policies_targeting(world, gateway_key);
    let denial = denial(&policies, &host)?;
    Some(ApiError::failed_precondition(denial_message(
        &host, gateway, &denial,
    )))
}

fn denial_message(host: &str, gateway: &str, denial: &Denial) -> String {
    let advice = if denial.action == "DENY" {
        "Exclude the host from that DENY policy: DENY policies are evaluated before ALLOW policies."
    } else {
        "Allow the host in an ALLOW authorization policy on the gateway."
    };
    format!(
        "Agent Runtime deployment failed: the agent's LLM endpoint {host} is denied by egress agent \
         gateway {gateway} (authorization policy {}, {}). {advice}",
        denial.policy, denial.action
    )
}

/// The Vertex AI host an engine in `location` declares it calls its LLM on, if it declares one.
fn declared_llm_host(engine: &Value, location: &str) -> Option<String> {
    let env = &engine["spec"]["deploymentSpec"]["env"];
    let use_vertex_ai = env_value(env, USE_VERTEX_AI)?;
    if !(use_vertex_ai.eq_ignore_ascii_case("true") || use_vertex_ai == "1") {
        return None;
    }
    let llm_location = env_value(env, CLOUD_LOCATION)
        .filter(|l| !l.is_empty())
        .unwrap_or(location);
    Some(match llm_location {
        "global" => "aiplatform.googleapis.com".to_string(),
        regional => format!("{regional}-aiplatform.googleapis.com"),
    })
}

/// The value of the last `{ "name", "value" }` entry of `env` named `name`.
fn env_value<'a>(env: &'a Value, name: &str) -> Option<&'a str> {
    env.as_array()?
        .iter()
        .rev()
        .find(|entry| entry["name"].as_str() == Some(name))
        .map(|entry| entry["value"].as_str().unwrap_or_default())
}

/// The policy among `policies` (name, body) that denies `host`, in Google's evaluation order.
fn denial<'a>(policies: &[(&'a str, &'a Value)], host: &str) -> Option<Denial<'a>> {
    let first_matching = |action: &'a str| {
        policies
            .iter()
            .find(|(_, policy)| policy["action"].as_str() == Some(action) && policy_matches(policy, host))
            .map(|(name, _)| Denial { policy: name, action })
    };
    if let Some(denied) = first_matching("DENY") {
        return Some(denied);
    }
    if first_matching("ALLOW").is_some() {
        return None;
    }
    first_matching("DENY_BY_DEFAULT")
}

fn entries(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Whether `policy` matches a request to `host`: it has no `httpRules`, or one of them matches.
fn policy_matches(policy: &Value, host: &str) -> bool {
    let rules = entries(&policy["httpRules"]);
    rules.is_empty() || rules.iter().any(|rule| rule_matches(rule, host))
}

/// Whether an `AuthzRule` matches a request to `host`, judged by its `to` alone.
fn rule_matches(rule: &Value, host: &str) -> bool {
    let operations = entries(&rule["to"]["operations"]);
    let not_operations = entries(&rule["to"]["notOperations"]);
    if operations.is_empty() && not_operations.is_empty() {
        return true;
    }
    operations
        .iter()
        .any(|operation| operation_matches(operation, host))
        || not_operations
            .iter()
            .any(|operation| !operation_matches(operation, host))
}

/// Whether a `RequestOperation` matches `host`: it has no `hosts`, or one of them matches.
fn operation_matches(operation: &Value, host: &str) -> bool {
    let hosts = entries(&operation["hosts"]);
    hosts.is_empty() || hosts.iter().any(|matcher| string_matches(matcher, host))
}

/// Whether `value` satisfies the `StringMatch` `matcher`; a matcher of no kind matches nothing.
fn string_matches(matcher: &Value, value: &str) -> bool {
    let fold = |s: &str| {
        if matcher["ignoreCase"] == true {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let value = fold(value);
    let given = |kind: &str| matcher[kind].as_str().map(fold);
    if let Some(exact) = given("exact") {
        value == exact
    } else if let Some(prefix) = given("prefix") {
        value.starts_with(&prefix)
    } else if let Some(suffix) = given("suffix") {
        value.ends_with(&suffix)
    } else if let Some(contained) = given("contains") {
        value.contains(&contained)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::{declared_llm_host, denial, policy_matches, string_matches, Denial};

    const HOST: &str = "us-central1-aiplatform.googleapis.com";

    fn engine_with_env(env: Value) -> Value {
        json!({ "spec": { "deploymentSpec": { "env": env } } })
    }

    fn hosts_rule(field: &str, hosts: Value) -> Value {
        json!({ "httpRules": [{ "to": { field: [{ "hosts": hosts }] } }] })
    }

    #[test]
    fn string_matches_each_kind_and_honours_ignore_case() {
        assert!(string_matches(&json!({ "exact": HOST }), HOST));
        assert!(!string_matches(
            &json!({ "exact": "aiplatform.googleapis.com" }),
            HOST
        ));
        assert!(string_matches(&json!({ "prefix": "us-central1-" }), HOST));
        assert!(string_matches(
            &json!({ "suffix": "-aiplatform.googleapis.com" }),
            HOST
        ));
        assert!(!string_matches(&json!({ "suffix": ".example.com" }), HOST));
        assert!(string_matches(&json!({ "contains": "aiplatform" }), HOST));
        assert!(!string_matches(&json!({ "suffix": "GOOGLEAPIS.COM" }), HOST));
        assert!(string_matches(
            &json!({ "suffix": "GOOGLEAPIS.COM", "ignoreCase": true }),
            HOST
        ));
        assert!(!string_matches(&json!({ "ignoreCase": true }), HOST));
    }

    #[test]
    fn rules_match_through_operations_and_exclude_through_not_operations() {
        let suffix = json!([{ "suffix": "googleapis.com" }]);
        assert!(policy_matches(&json!({}), HOST), "no httpRules: everything");
        assert!(policy_matches(&json!({ "httpRules": [{}] }), HOST), "no to");
        assert!(policy_matches(&hosts_rule("operations", suffix.clone()), HOST));
        assert!(!policy_matches(
            &hosts_rule("operations", json!([{ "exact": "x.com" }])),
            HOST
        ));
        assert!(policy_matches(
            &json!({ "httpRules": [{ "to": { "operations": [{ "paths": [{ "prefix": "/v1" }] }] } }] }),
            HOST
        ));
        assert!(!policy_matches(
            &hosts_rule("notOperations", suffix.clone()),
            HOST
        ));
        assert!(policy_matches(
            &hosts_rule("notOperations", suffix),
            "api.openai.com"
        ));
    }

    #[test]
    fn the_declared_host_follows_the_environment() {
        let on = json!({ "name": "GOOGLE_GENAI_USE_VERTEXAI", "value": "TRUE" });
        let host = |env: Value| declared_llm_host(&engine_with_env(env), "us-central1");
        assert_eq!(host(json!([on])).as_deref(), Some(HOST));
        assert_eq!(
            host(json!([on, { "name": "GOOGLE_CLOUD_LOCATION", "value": "global" }])).as_deref(),
            Some("aiplatform.googleapis.com")
        );
        assert_eq!(
            host(json!([on, { "name": "GOOGLE_CLOUD_LOCATION", "value": "europe-west4" }])).as_deref(),
            Some("europe-west4-aiplatform.googleapis.com")
        );
        assert_eq!(
            host(json!([{ "name": "GOOGLE_GENAI_USE_VERTEXAI", "value": "1" }])).as_deref(),
            Some(HOST)
        );
        assert_eq!(
            host(json!([{ "name": "GOOGLE_GENAI_USE_VERTEXAI", "value": "false" }])),
            None
        );
        assert_eq!(
            host(json!([{ "name": "GOOGLE_CLOUD_LOCATION", "value": "global" }])),
            None
        );
        assert_eq!(declared_llm_host(&json!({ "spec": {} }), "us-central1"), None);
    }

    #[test]
    fn deny_beats_allow_which_beats_deny_by_default_and_custom_is_skipped() {
        let deny_by_default = json!({ "action": "DENY_BY_DEFAULT" });
        let allow = json!({ "action": "ALLOW", "httpRules": [{ "to": { "operations": [{ "hosts": [{ "exact": HOST }] }] } }] });
        let deny = json!({ "action": "DENY", "httpRules": [{ "to": { "operations": [{ "hosts": [{ "contains": "aiplatform" }] }] } }] });
        let custom = json!({ "action": "CUSTOM" });
        let denied_by = |policy, action| Some(Denial { policy, action });
        assert_eq!(denial(&[], HOST), None);
        assert_eq!(denial(&[("c", &custom)], HOST), None);
        assert_eq!(
            denial(&[("d", &deny_by_default)], HOST),
            denied_by("d", "DENY_BY_DEFAULT")
        );
        assert_eq!(denial(&[("a", &allow), ("d", &deny_by_default)], HOST), None);
        assert_eq!(
            denial(&[("a", &allow), ("d", &deny_by_default)], "api.openai.com"),
            denied_by("d", "DENY_BY_DEFAULT")
        );
        assert_eq!(
            denial(&[("a", &allow), ("x", &deny)], HOST),
            denied_by("x", "DENY")
        );
        assert_eq!(denial(&[("x", &deny)], "api.openai.com"), None);
    }
}
