//! Whether an egress Agent Gateway's authorization policies let an agent reach a host: the
//! decision behind `sluice plan`'s warning (policies as the plan will make them) and behind the
//! reason a failed deploy is given (policies as Google holds them).
//!
//! Google evaluates an Agent Gateway's policies in this order: CUSTOM (an extension decides per
//! request), then DENY, then ALLOW, then DENY_BY_DEFAULT; a request no policy decides is let
//! through. Only the destination host is known here, so a rule's `from` and `when` are taken to
//! match (an agent's own traffic is what they would select), and CUSTOM policies are left out:
//! IAP and Model Armor judge each request, not whether a host may be reached at all.

use serde_json::Value;

/// The host an agent calling Gemini on Vertex AI from `location` reaches.
pub fn vertex_ai_host(location: &str) -> String {
    match location {
        "global" => "aiplatform.googleapis.com".to_string(),
        region => format!("{region}-aiplatform.googleapis.com"),
    }
}

/// What the policies decide for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Denied by this policy (its name, or the step that makes it) and action.
    Denied {
        policy: String,
        action: String,
    },
}

/// A policy as Google shows it (`action`, `httpRules`), with a name to report it by.
pub struct Policy<'a> {
    pub name: String,
    pub body: &'a Value,
}

/// Whether `host` may be reached through a gateway holding `policies`.
pub fn decide(policies: &[Policy<'_>], host: &str) -> Decision {
    let with_action = |action: &'static str| {
        policies
            .iter()
            .filter(move |p| p.body["action"].as_str() == Some(action))
    };
    let denied = |policy: &Policy, action: &str| Decision::Denied {
        policy: policy.name.clone(),
        action: action.to_string(),
    };
    if let Some(policy) = with_action("DENY").find(|p| matches(p.body, host)) {
        return denied(policy, "DENY");
    }
    if with_action("ALLOW").any(|p| matches(p.body, host)) {
        return Decision::Allowed;
    }
    match with_action("DENY_BY_DEFAULT").next() {
        Some(policy) => denied(policy, "DENY_BY_DEFAULT"),
        None => Decision::Allowed,
    }
}

/// Whether a policy's rules select requests to `host` (a policy without rules selects all).
fn matches(policy: &Value, host: &str) -> bool {
    match policy["httpRules"].as_array() {
        None => true,
        Some(rules) => rules.iter().any(|rule| rule_matches(rule, host)),
    }
}

fn rule_matches(rule: &Value, host: &str) -> bool {
    let to = &rule["to"];
    if to.is_null() {
        return true;
    }
    let any_of = |key: &str| {
        (to[key].as_array()).map(|operations| operations.iter().any(|op| operation_matches(op, host)))
    };
    any_of("operations").unwrap_or(true) && !any_of("notOperations").unwrap_or(false)
}

/// An operation selects `host` when it names no hosts or one of its hosts matches.
fn operation_matches(operation: &Value, host: &str) -> bool {
    match operation["hosts"].as_array() {
        None => true,
        Some(hosts) if hosts.is_empty() => true,
        Some(hosts) => hosts.iter().any(|m| string_matches(m, host)),
    }
}

/// Google's `StringMatch`: exact, prefix, suffix or contains, optionally ignoring case.
fn string_matches(matcher: &Value, text: &str) -> bool {
    let fold = |s: &str| match matcher["ignoreCase"].as_bool() {
        Some(true) => s.to_ascii_lowercase(),
        _ => s.to_string(),
    };
    let text = fold(text);
    let test = |key: &str, f: fn(&str, &str) -> bool| matcher[key].as_str().map(|p| f(&text, &fold(p)));
    test("exact", |t, p| t == p)
        .or_else(|| test("prefix", |t, p| t.starts_with(p)))
        .or_else(|| test("suffix", |t, p| t.ends_with(p)))
        .or_else(|| test("contains", |t, p| t.contains(p)))
        .unwrap_or(false)
}

/// `httpRules` selecting requests to exactly these hosts.
pub fn host_rules(hosts: &[String]) -> Value {
    let hosts: Vec<Value> = hosts.iter().map(|h| serde_json::json!({ "exact": h })).collect();
    serde_json::json!([{ "to": { "operations": [{ "hosts": hosts }] } }])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOST: &str = "us-central1-aiplatform.googleapis.com";

    fn decide_with(bodies: &[Value]) -> Decision {
        let policies: Vec<Policy> = (bodies.iter().enumerate())
            .map(|(i, body)| Policy {
                name: format!("p{i}"),
                body,
            })
            .collect();
        decide(&policies, HOST)
    }

    fn denied(policy: &str, action: &str) -> Decision {
        Decision::Denied {
            policy: policy.into(),
            action: action.into(),
        }
    }

    #[test]
    fn without_policies_or_with_only_custom_ones_everything_passes() {
        assert_eq!(decide_with(&[]), Decision::Allowed);
        assert_eq!(decide_with(&[json!({ "action": "CUSTOM" })]), Decision::Allowed);
    }

    #[test]
    fn deny_by_default_denies_what_no_allow_selects() {
        let deny_all = json!({ "action": "DENY_BY_DEFAULT" });
        assert_eq!(
            decide_with(std::slice::from_ref(&deny_all)),
            denied("p0", "DENY_BY_DEFAULT")
        );
        let other = json!({ "action": "ALLOW", "httpRules": host_rules(&["api.example.com".into()]) });
        assert_eq!(
            decide_with(&[deny_all.clone(), other]),
            denied("p0", "DENY_BY_DEFAULT")
        );
        let allow = json!({ "action": "ALLOW", "httpRules": host_rules(&[HOST.into()]) });
        assert_eq!(decide_with(&[deny_all, allow]), Decision::Allowed);
    }

    #[test]
    fn a_matching_deny_beats_a_matching_allow() {
        let allow = json!({ "action": "ALLOW" });
        let deny = json!({ "action": "DENY", "httpRules": [{ "to": { "operations": [{ "hosts": [{ "suffix": ".googleapis.com" }] }] } }] });
        assert_eq!(decide_with(&[allow, deny]), denied("p1", "DENY"));
    }

    #[test]
    fn string_matches_follow_google_s_string_match() {
        let rule = |m: Value| json!({ "action": "DENY", "httpRules": [{ "to": { "operations": [{ "hosts": [m] }] } }] });
        assert_ne!(
            decide_with(&[rule(json!({ "prefix": "us-central1-" }))]),
            Decision::Allowed
        );
        assert_ne!(
            decide_with(&[rule(json!({ "contains": "aiplatform" }))]),
            Decision::Allowed
        );
        assert_eq!(
            decide_with(&[rule(json!({ "exact": HOST.to_uppercase() }))]),
            Decision::Allowed
        );
        let folded = json!({ "exact": HOST.to_uppercase(), "ignoreCase": true });
        assert_ne!(decide_with(&[rule(folded)]), Decision::Allowed);
    }

    #[test]
    fn not_operations_exclude_a_host() {
        let deny = json!({ "action": "DENY", "httpRules": [{ "to": { "notOperations": [{ "hosts": [{ "exact": HOST }] }] } }] });
        assert_eq!(decide_with(&[deny]), Decision::Allowed);
    }

    #[test]
    fn the_global_location_has_no_region_prefix() {
        assert_eq!(vertex_ai_host("global"), "aiplatform.googleapis.com");
        assert_eq!(
            vertex_ai_host("europe-west4"),
            "europe-west4-aiplatform.googleapis.com"
        );
    }
}
