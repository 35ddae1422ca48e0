//! What an `--emulator` run or fleet changed in the emulated world: the world is taken before
//! the run starts ([`Before::take`]) and compared with the world after, so what the demo
//! configuration already held (the owner's IAM grants, APIs enabled beforehand, the Model Armor
//! templates) is not shown as the run's doing.

use serde_json::Value;
use sluice_emulator::EmulatorHandle;

/// The emulated world as it was before a run, and how many API calls it had answered.
pub struct Before {
    state: Value,
    calls: usize,
}

impl Before {
    pub fn take(emulator: &EmulatorHandle) -> Self {
        Before {
            state: emulator.state(),
            calls: call_count(emulator),
        }
    }
}

fn call_count(emulator: &EmulatorHandle) -> usize {
    emulator.requests().as_array().map_or(0, Vec::len)
}

/// Prints what the run changed, one line per resource, after the number of API calls it made;
/// on stderr when stdout carries a JSON document.
pub fn print_changes(emulator: &EmulatorHandle, before: &Before, on_stderr: bool) {
    let calls = call_count(emulator).saturating_sub(before.calls);
    let lines = changed(&before.state, &emulator.state());
    let mut out = vec![String::new()];
    if lines.is_empty() {
        out.push(format!(
            "in the emulated world ({calls} API calls): nothing changed"
        ));
    } else {
        out.push(format!(
            "in the emulated world ({calls} API calls), changed by this run:"
        ));
        out.extend(lines.iter().map(|line| format!("  {line}")));
    }
    for line in out {
        if on_stderr {
            errln!("{line}");
        } else {
            outln!("{line}");
        }
    }
}

/// One line per resource of `after` that is new or differs from `before`.
pub fn changed(before: &Value, after: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, role) in after["iamRoles"].as_object().into_iter().flatten() {
        if before["iamRoles"].get(name) != Some(role) {
            let permissions = role["includedPermissions"].as_array().map_or(0, Vec::len);
            lines.push(format!("custom role      {name} ({permissions} permissions)"));
        }
    }
    for project in items(after, &["projects"]) {
        let id = text(project, "id");
        let earlier = items(before, &["projects"]).find(|p| p["id"] == project["id"]);
        lines.extend(project_line(project, earlier));
        for grant in project["iamGrants"].as_array().into_iter().flatten() {
            let held = earlier.is_some_and(|p| {
                p["iamGrants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|g| g == grant)
            });
            if !held {
                lines.push(format!(
                    "IAM grant        {} → {} on {id}",
                    text(grant, "role"),
                    text(grant, "member")
                ));
            }
        }
    }
    let named: [(&[&str], Line); 8] = [
        (&["agentGateways"], |g| {
            format!(
                "agent gateway    {} ({})",
                text(g, "name"),
                g["googleManaged"]["governedAccessPath"].as_str().unwrap_or("?")
            )
        }),
        (&["authzExtensions"], |e| {
            format!("authz extension  {} ({})", text(e, "name"), text(e, "service"))
        }),
        (&["authzPolicies"], |p| {
            let targets: Vec<&str> = (p["target"]["resources"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect();
            format!(
                "authz policy     {} ({} {} on {})",
                text(p, "name"),
                p["policyProfile"].as_str().unwrap_or("REQUEST_AUTHZ"),
                text(p, "action"),
                targets.join(", ")
            )
        }),
        (&["reasoningEngines"], |e| {
            format!(
                "reasoning engine {} \"{}\"",
                text(e, "name"),
                e["displayName"].as_str().unwrap_or("")
            )
        }),
        (&["agentRegistry", "runtimeAgents"], |a| {
            format!("registered agent {}", text(a, "name"))
        }),
        (&["agentRegistry", "services"], |s| {
            format!("registry service {}", text(s, "name"))
        }),
        (&["orgPolicy", "customConstraints"], |c| {
            format!("constraint       {}", text(c, "name"))
        }),
        (&["orgPolicy", "policies"], |p| {
            format!("org policy       {}", text(p, "name"))
        }),
    ];
    for (path, line) in named {
        for item in items(after, path) {
            if !items(before, path).any(|earlier| earlier == item) {
                lines.push(line(item));
            }
        }
    }
    lines
}

/// A resource's line, from its JSON.
type Line = fn(&Value) -> String;

/// A project the run created, or whose APIs, billing, labels or state it changed: the APIs
/// counted are the ones it enabled.
fn project_line(project: &Value, earlier: Option<&Value>) -> Option<String> {
    let services = |p: &Value| -> Vec<String> {
        p["services"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect()
    };
    let had = earlier.map(services).unwrap_or_default();
    let enabled = services(project).iter().filter(|s| !had.contains(s)).count();
    let differs = |key: &str| earlier.is_none_or(|e| e[key] != project[key]);
    let mut parts = Vec::new();
    if enabled > 0 {
        parts.push(format!("{enabled} APIs enabled"));
    }
    if let Some(billing) = project["billingAccount"]
        .as_str()
        .filter(|b| !b.is_empty() && differs("billingAccount"))
    {
        parts.push(format!("billing {billing}"));
    }
    if let Some(labels) = project["labels"]
        .as_object()
        .filter(|l| !l.is_empty() && differs("labels"))
    {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        parts.push(format!("labels {}", pairs.join(",")));
    }
    if parts.is_empty() && !differs("state") {
        return None;
    }
    let state = project["state"].as_str().unwrap_or("ACTIVE");
    let new = if earlier.is_none() { ", new" } else { "" };
    Some(format!(
        "project          {}: {state}{new}{}",
        text(project, "id"),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    ))
}

/// The array at `path` in `state`.
fn items<'a>(state: &'a Value, path: &[&str]) -> impl Iterator<Item = &'a Value> {
    path.iter()
        .fold(state, |value, key| &value[*key])
        .as_array()
        .into_iter()
        .flatten()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_what_the_run_added_or_changed_is_listed_and_only_the_apis_it_enabled_are_counted() {
        let owner = json!({"role": "roles/owner", "member": "user:owner@example.com"});
        let before = json!({
            "iamRoles": {"projects/p/roles/old": {"includedPermissions": ["a"]}},
            "projects": [
                {"id": "p", "state": "ACTIVE", "services": {"orgpolicy.googleapis.com": {}}, "iamGrants": [owner]},
                {"id": "quiet", "state": "ACTIVE", "services": {"a": {}}, "iamGrants": [owner]}
            ],
            "agentGateways": [{"name": "gw-old", "googleManaged": {"governedAccessPath": "X"}}]
        });
        let mut after = before.clone();
        after["iamRoles"]["projects/p/roles/new"] = json!({"includedPermissions": ["a", "b"]});
        after["projects"][0]["services"]["iam.googleapis.com"] = json!({});
        after["projects"][0]["services"]["aiplatform.googleapis.com"] = json!({});
        after["projects"][0]["iamGrants"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "roles/r", "member": "serviceAccount:sa@x"}));
        after["projects"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "fresh", "state": "ACTIVE", "services": {"a": {}}, "labels": {"k": "v"}}));
        after["agentGateways"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "gw-new", "googleManaged": {"governedAccessPath": "Y"}}));
        assert_eq!(
            changed(&before, &after),
            [
                "custom role      projects/p/roles/new (2 permissions)",
                "project          p: ACTIVE (2 APIs enabled)",
                "IAM grant        roles/r → serviceAccount:sa@x on p",
                "project          fresh: ACTIVE, new (1 APIs enabled, labels k=v)",
                "agent gateway    gw-new (Y)",
            ]
        );
        assert!(
            changed(&before, &before).is_empty(),
            "nothing changed, nothing listed"
        );
    }

    #[test]
    fn a_project_the_run_deleted_is_listed_with_its_state() {
        let before = json!({"projects": [{"id": "old", "state": "ACTIVE", "services": {}}]});
        let after = json!({"projects": [{"id": "old", "state": "DELETE_REQUESTED", "services": {}}]});
        assert_eq!(
            changed(&before, &after),
            ["project          old: DELETE_REQUESTED"]
        );
    }
}
