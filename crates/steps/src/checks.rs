//! What the `gcp.*` kinds check at validation ([`StepKind::check`]), before anything runs:
//! Google's id patterns, its documented length limits, enums, durations and `gs://` URIs, on
//! every parameter known before the run. A refused value never reaches Google, so a bad value
//! cannot fail a run after its first side effects.
//!
//! [`StepKind::check`]: sluice_engine::StepKind::check

use serde_json::{Map, Value};
use sluice_engine::ParamProblem;
use sluice_gcp::bounded;

/// A rule on one string: `Err` says what is wrong and how to fix it.
pub type Rule<'r> = &'r dyn Fn(&str) -> Result<(), String>;

/// The checks of one step's known parameters, collecting every problem.
pub struct Checks<'a> {
    params: &'a Map<String, Value>,
    problems: Vec<ParamProblem>,
}

impl<'a> Checks<'a> {
    pub fn new(params: &'a Map<String, Value>) -> Self {
        Checks {
            params,
            problems: Vec::new(),
        }
    }

    /// The value at `path` (`name` or `name.key`), if known.
    fn value(&self, path: &str) -> Option<&'a Value> {
        let mut parts = path.split('.');
        let mut value = self.params.get(parts.next()?)?;
        for key in parts {
            value = value.get(key)?;
        }
        Some(value)
    }

    /// Applies `rule` to the string at `path`, when it is known and not empty (an empty
    /// optional value means "none"; required ones are checked by `text` when the step runs).
    pub fn string(mut self, path: &str, rule: Rule) -> Self {
        if let Some(text) = self.value(path).and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if let Err(message) = rule(text) {
                self.problems.push(ParamProblem::new(path, message));
            }
        }
        self
    }

    /// Applies `rule` to each string of the list at `path`.
    pub fn each(mut self, path: &str, rule: Rule) -> Self {
        let items = self.value(path).and_then(Value::as_array);
        for (i, item) in items.into_iter().flatten().enumerate() {
            if let Some(Err(message)) = item.as_str().map(rule) {
                self.problems
                    .push(ParamProblem::new(format!("{path}[{i}]"), message));
            }
        }
        self
    }

    /// Checks the object of labels at `path` (when known): Google's key and value rules, at
    /// most 64 labels, string values.
    pub fn labels(mut self, path: &str) -> Self {
        let Some(value) = self.value(path) else {
            return self;
        };
        let Some(labels) = value.as_object() else {
            if !value.is_null() && !value.as_str().is_some_and(|s| s.contains("${")) {
                let message = "must be an object of labels, like {\"team\": \"agents\"}";
                self.problems.push(ParamProblem::new(path, message));
            }
            return self;
        };
        if labels.len() > 64 {
            let message = format!("has {} labels; Google allows at most 64", labels.len());
            self.problems.push(ParamProblem::new(path, message));
        }
        for (key, value) in labels {
            let problem = match value.as_str() {
                None => Some(format!("the value of label `{}` must be a string", shown(key))),
                Some(text) => label_key(key).and_then(|()| label_value(text)).err(),
            };
            if let Some(message) = problem {
                self.problems
                    .push(ParamProblem::new(format!("{path}.{key}"), message));
            }
        }
        self
    }

    pub fn done(self) -> Vec<ParamProblem> {
        self.problems
    }
}

/// `text` for a message: at most 80 characters.
fn shown(text: &str) -> String {
    bounded(text, 80)
}

/// `lengths` lowercase letters, digits and hyphens, starting with a letter, not ending with
/// a hyphen.
fn lowercase_id(id: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A project id: 6–30 lowercase letters, digits and hyphens, starting with a letter, not
/// ending with a hyphen (Resource Manager).
pub fn project_id(id: &str) -> Result<(), String> {
    verdict(
        lowercase_id(id, 6..=30),
        id,
        "a project id: Google's are 6-30 lowercase letters, digits and hyphens, \
             starting with a letter and not ending with a hyphen; give the project id (not its \
             name or number)",
    )
}

/// A Google Cloud region such as `us-central1` or `europe-west4`.
pub fn region(region: &str) -> Result<(), String> {
    let mut parts = region.split('-');
    let ok = region.len() <= 63
        && parts
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts.next().is_some_and(|p| {
            let letters = p.trim_end_matches(|c: char| c.is_ascii_digit());
            !letters.is_empty() && letters.len() < p.len() && letters.bytes().all(|b| b.is_ascii_lowercase())
        })
        && parts.next().is_none();
    verdict(
        ok,
        region,
        "a region: write one like `us-central1` or `europe-west4` (not a zone)",
    )
}

/// A custom role id: 3–64 letters, digits, `_` and `.` (IAM `CreateRoleRequest.roleId`).
pub fn role_id(id: &str) -> Result<(), String> {
    let ok = (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    verdict(
        ok,
        id,
        "a custom role id: IAM allows 3-64 letters, digits, `_` and `.`",
    )
}

/// A resource id of RFC 1035 shape: 1–63 lowercase letters, digits and hyphens, starting with
/// a letter, not ending with a hyphen (Agent Gateway ids).
pub fn resource_id(id: &str) -> Result<(), String> {
    verdict(
        lowercase_id(id, 1..=63),
        id,
        "a valid id: 1-63 lowercase letters, digits and hyphens, starting with a \
             letter and not ending with a hyphen",
    )
}

/// A Model Armor template id: 1-63 letters (either case), digits, `-` and `_`, starting with a
/// letter or digit. Google publishes no stricter pattern; this refuses only what cannot be a
/// path segment of its name.
pub fn template_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    verdict(
        first && rest && id.len() <= 63,
        id,
        "a Model Armor template id: 1-63 letters, digits, `-` and `_`, starting with a letter or digit",
    )
}

/// At most `limit` characters, naming Google's limit (`what` it is a limit of).
pub fn max_chars(limit: usize, what: &'static str) -> impl Fn(&str) -> Result<(), String> {
    move |text: &str| {
        let length = text.chars().count();
        if length <= limit {
            return Ok(());
        }
        Err(format!(
            "the value is {length} characters long; {what} is limited to {limit} characters: shorten it"
        ))
    }
}

/// One of `options`.
pub fn one_of(options: &'static [&'static str]) -> impl Fn(&str) -> Result<(), String> {
    move |text: &str| {
        if options.contains(&text) {
            return Ok(());
        }
        let listed: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
        Err(format!("`{}` is not one of {}", shown(text), listed.join(", ")))
    }
}

/// A duration: `250ms`, `10s`, `5m`, `1h`.
pub fn duration(text: &str) -> Result<(), String> {
    // parse_duration's message names the value and an example of a duration.
    sluice_engine::plan::parse_duration(text)
        .map(|_| ())
        .map_err(|e| bounded(&e, 200))
}

/// A Cloud Storage object URI: `gs://BUCKET/OBJECT`.
pub fn gcs_uri(uri: &str) -> Result<(), String> {
    let Some((bucket, object)) = uri.strip_prefix("gs://").and_then(|rest| rest.split_once('/')) else {
        return verdict(false, uri, "a Cloud Storage object URI: write gs://BUCKET/OBJECT");
    };
    if object.is_empty() {
        return verdict(
            false,
            uri,
            "a Cloud Storage object URI: name an object after the bucket, gs://BUCKET/OBJECT",
        );
    }
    // Cloud Storage bucket names: 3 to 63 characters (222 with dots), lowercase letters,
    // digits, `-`, `_` and `.`, starting and ending with a letter or digit.
    let limit = if bucket.contains('.') { 222 } else { 63 };
    let edges = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=limit).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
        && edges(bucket.bytes().next())
        && edges(bucket.bytes().last());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` names the bucket `{}`, which is not a Cloud Storage bucket name: 3 to {limit} \
             lowercase letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
            shown(uri),
            shown(bucket)
        ))
    }
}

/// A Python version the runtime offers, written `3.N`.
pub fn python_version(version: &str) -> Result<(), String> {
    let ok = version.strip_prefix("3.").is_some_and(numeric);
    verdict(ok, version, "a Python version: write it like `3.12`")
}

/// An API's service name, like `iam.googleapis.com`.
pub fn service_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 253
        && name.strip_suffix(".googleapis.com").is_some_and(|head| {
            !head.is_empty()
                && head
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        });
    verdict(
        ok,
        name,
        "an API service name: write it like `iam.googleapis.com`",
    )
}

/// An IAM permission: `service.resource.verb`.
pub fn permission(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    let ok = parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    verdict(
        ok,
        name,
        "an IAM permission: write it like `networkservices.agentGateways.use`",
    )
}

/// A role to grant: `roles/NAME`, `projects/P/roles/ID` or `organizations/O/roles/ID`.
pub fn iam_role(role: &str) -> Result<(), String> {
    let ok = match role.split('/').collect::<Vec<_>>().as_slice() {
        ["roles", name] => !name.is_empty(),
        ["projects", project, "roles", id] => project_id(project).is_ok() && role_id(id).is_ok(),
        ["organizations", org, "roles", id] => numeric(org) && role_id(id).is_ok(),
        _ => false,
    };
    verdict(
        ok,
        role,
        "a role: write roles/NAME, projects/PROJECT/roles/ID or \
             organizations/NUMBER/roles/ID",
    )
}

/// A member of a project policy: `user:`, `serviceAccount:`, `group:`, `domain:`,
/// `principal:` or `principalSet:` (a bare email is accepted and prefixed). Google rejects
/// `allUsers` and `allAuthenticatedUsers` on project policies.
pub fn member(member: &str) -> Result<(), String> {
    if matches!(member, "allUsers" | "allAuthenticatedUsers") {
        return Err(format!(
            "`{member}` cannot be granted on a project policy (Google rejects it); name a user, group or service account"
        ));
    }
    let ok = match member.split_once(':') {
        Some((kind, rest)) => {
            matches!(
                kind,
                "user" | "serviceAccount" | "group" | "domain" | "principal" | "principalSet" | "deleted"
            ) && !rest.is_empty()
        }
        None => member.contains('@') && !member.starts_with('@') && !member.ends_with('@'),
    };
    verdict(
        ok,
        member,
        "an IAM member: write it like serviceAccount:EMAIL, user:EMAIL or group:EMAIL",
    )
}

/// `Ok` when `ok`; else "`VALUE` is not WHAT" (the value cut to 80 characters).
fn verdict(ok: bool, value: &str, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("`{}` is not {what}", shown(value)))
    }
}

/// A label key: 1–63 lowercase letters, digits, `-` and `_`, starting with a letter (Google's
/// label rules; international lowercase letters, which Google also allows, are refused here).
pub fn label_key(key: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    verdict(
        ok,
        key,
        "a label key: 1-63 lowercase letters, digits, `-` and `_`, starting with a letter",
    )
}

/// A label value: at most 63 lowercase letters, digits, `-` and `_` (may be empty).
pub fn label_value(value: &str) -> Result<(), String> {
    let ok = value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    verdict(
        ok,
        value,
        "a label value: at most 63 lowercase letters, digits, `-` and `_`",
    )
}

/// A label written `KEY=VALUE` (the owner label of a fleet's projects).
pub fn key_value_label(text: &str) -> Result<(), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "`{}` is not a label: write it KEY=VALUE, like sluice-fleet=nightly",
            shown(text)
        ));
    };
    label_key(key)?;
    if value.is_empty() {
        return Err(format!(
            "`{}` has an empty value: an owner label needs one",
            shown(text)
        ));
    }
    label_value(value)
}

/// A project's parent: `organizations/N` or `folders/N`.
pub fn project_parent(parent: &str) -> Result<(), String> {
    let ok = parent
        .strip_prefix("organizations/")
        .or_else(|| parent.strip_prefix("folders/"))
        .is_some_and(numeric);
    verdict(
        ok,
        parent,
        "a project parent: write `organizations/NUMBER` or `folders/NUMBER`",
    )
}

/// A project display name: 4–30 letters, digits, hyphens, quotes, spaces or `!`.
pub fn project_display_name(name: &str) -> Result<(), String> {
    let ok = (4..=30).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " -'\"!".contains(c));
    verdict(
        ok,
        name,
        "a project display name: 4-30 letters, digits, hyphens, single or double quotes, \
         spaces or exclamation points",
    )
}

/// A billing account name: `billingAccounts/` and an id of three groups of six uppercase
/// letters or digits (`012345-ABCDEF-678901`).
pub fn billing_account(name: &str) -> Result<(), String> {
    let ok = name.strip_prefix("billingAccounts/").is_some_and(|id| {
        let groups: Vec<&str> = id.split('-').collect();
        groups.len() == 3
            && groups
                .iter()
                .all(|g| g.len() == 6 && g.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    });
    verdict(
        ok,
        name,
        "a billing account: write `billingAccounts/XXXXXX-XXXXXX-XXXXXX` (see `gcloud billing accounts list`)",
    )
}

/// Digits only, at least one.
pub fn numeric(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// A number (a project or organisation number).
pub fn number(text: &str) -> Result<(), String> {
    verdict(numeric(text), text, "a number: give the numeric id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_follow_googles_patterns() {
        assert!(project_id("sluice-demo").is_ok());
        for bad in ["demo", "Sluice-demo", "sluice-demo-", "1sluice", &"a".repeat(31)] {
            assert!(project_id(bad).is_err(), "{bad}");
        }
        assert!(region("us-central1").is_ok() && region("europe-west4").is_ok());
        assert!(region("us-central1-a").is_err() && region("uscentral").is_err());
        assert!(role_id("agentGatewayUser").is_ok() && role_id("a-b").is_err() && role_id("ab").is_err());
        assert!(resource_id("agent-egress").is_ok() && resource_id("Agent").is_err());
        assert!(template_id("Agent_Prompts-1").is_ok() && template_id("9t").is_ok());
        for bad in ["", "-t", "a/b", "t.x", &"t".repeat(64)] {
            assert!(template_id(bad).is_err(), "{bad}");
        }
        assert!(gcs_uri("gs://agents/agent.pkl").is_ok() && gcs_uri("https://x/y").is_err());
        assert!(gcs_uri("gs://bucket").is_err(), "an object is needed");
        let short = gcs_uri("gs://a/agent.pkl").unwrap_err();
        assert!(
            short.contains("bucket `a`") && short.contains("3 to 63"),
            "{short}"
        );
        assert!(
            gcs_uri("gs://Agents/agent.pkl").is_err(),
            "no capitals in bucket names"
        );
        assert!(python_version("3.12").is_ok() && python_version("python3").is_err());
        assert!(duration("5m").is_ok() && duration("forever").is_err());
        assert!(iam_role("projects/sluice-demo/roles/agentGatewayUser").is_ok());
        assert!(iam_role("roles/viewer").is_ok() && iam_role("viewer").is_err());
        assert!(member("serviceAccount:a@b.iam.gserviceaccount.com").is_ok());
        assert!(member("allUsers").is_err() && member("robot:x").is_err());
        assert!(service_name("iam.googleapis.com").is_ok() && service_name("iam").is_err());
        assert!(permission("networkservices.agentGateways.use").is_ok() && permission("use").is_err());
        assert!(project_parent("organizations/123").is_ok() && project_parent("folders/9").is_ok());
        assert!(project_parent("projects/1").is_err() && project_parent("organizations/x").is_err());
        assert!(key_value_label("sluice-fleet=nightly").is_ok());
        for bad in ["sluice-fleet", "Fleet=x", "fleet=", "fleet=Night"] {
            assert!(key_value_label(bad).is_err(), "{bad}");
        }
        assert!(billing_account("billingAccounts/012345-ABCDEF-678901").is_ok());
        assert!(billing_account("012345-ABCDEF-678901").is_err());
        assert!(project_display_name("Fleet 1!").is_ok() && project_display_name("abc").is_err());
        let params = json!({ "labels": { "team": "agents", "Bad": "x", "ok": "Upper" } });
        let problems = Checks::new(params.as_object().unwrap()).labels("labels").done();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn a_long_value_is_refused_without_being_echoed() {
        let long = "x".repeat(1_000_000);
        let params = json!({ "display_name": long, "package": { "python_version": "two" } });
        let problems = Checks::new(params.as_object().unwrap())
            .string("display_name", &max_chars(128, "a Vertex AI display name"))
            .string("package.python_version", &python_version)
            .string("absent", &project_id)
            .done();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].param, "display_name");
        assert!(problems[0].message.contains("1000000 characters") && problems[0].message.len() < 200);
        assert_eq!(problems[1].param, "package.python_version");
    }
}
