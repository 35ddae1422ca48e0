//! The fleet file: a plan, the variables every target shares, and the targets (existing
//! projects, N new test projects, or both). Reading it checks everything before anything runs:
//! every problem at once, each as `FILE: $.path: message`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use sluice_engine::{parse_plan, Plan, Registry, StepSpec, ValidatedPlan, VarInput};

use super::targets::{common_vars, Expansion, Locate};

/// The label that marks a project as made by a fleet; its value is the fleet's name.
pub const OWNER_LABEL_KEY: &str = "sluice-fleet";
/// Ids of the two steps put before the plan's own for a new project.
pub const NEW_PROJECT_STEP: &str = "fleet_new_project";
pub const BILLING_STEP: &str = "fleet_billing";
pub const DEFAULT_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The plan file, relative to the fleet file.
    pub plan: PathBuf,
    /// Variables every target shares.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Existing projects: one object of variables each.
    #[serde(default)]
    pub targets: Vec<Map<String, Value>>,
    #[serde(default)]
    pub new_projects: Option<NewProjects>,
    /// Targets in flight at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Client-side limits, requests per minute by API service (e.g. `iam.googleapis.com`),
    /// over Google's published defaults; 0 removes a service's limit.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
}

/// A request for N new test projects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProjects {
    pub count: usize,
    /// Project id with `{date}` (YYYYMMDD, UTC, the day the fleet run was created) and `{index}`
    /// (1..=count, zero-padded to the width of count).
    pub id_pattern: String,
    /// `organizations/N` or `folders/N`.
    pub parent: String,
    /// `billingAccounts/XXXXXX-XXXXXX-XXXXXX`.
    pub billing_account: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Projects carrying this fleet's label older than this are deleted by `fleet run`
    /// (e.g. `3d`, `36h`).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// One target, ready to run.
pub struct TargetPlan {
    pub name: String,
    pub new_project: bool,
    pub validated: ValidatedPlan,
}

/// A fleet file read and checked.
pub struct LoadedFleet {
    pub file: FleetFile,
    pub source: String,
    /// Digest of what the fleet is made from (file, plan, command-line variables), without the
    /// date: a fleet killed before midnight is continued after it.
    pub key: String,
    pub targets: Vec<TargetPlan>,
    pub ttl: Option<Duration>,
    pub date: String,
}

/// Reads and checks `path`. `cli_vars` override the fleet's common variables; `defaults` fill in
/// variables nobody gave (the embedded emulator's demo values). Err: every problem found.
pub fn load(
    path: &Path,
    cli_vars: &BTreeMap<String, VarInput>,
    defaults: &BTreeMap<String, String>,
    registry: &Registry,
    date: &str,
) -> Result<LoadedFleet, Vec<String>> {
    let source = path.display().to_string();
    let (raw, file) = read_fleet_file(path, &source)?;
    let mut problems = Vec::new();
    let at = |path: &str, message: String| format!("{source}: {path}: {message}");
    check_fields(&file, &at, &mut problems);
    let plan_path = path.parent().unwrap_or(Path::new(".")).join(&file.plan);
    let plan_source = plan_path.display().to_string();
    let (plan_text, plan) = read_plan(&plan_path, &file, &at, &mut problems);
    let before = problems.len();
    let ttl = check_new_projects(&file, &at, &mut problems);
    // Problems of `new_projects` are said once, there: not again by the kinds' checks of the
    // steps made from it.
    let new_projects_ok = problems.len() == before;
    let mut targets = Vec::new();
    if let Some(plan) = &plan {
        let common = common_vars(&file, cli_vars, defaults, plan);
        let mut expansion = Expansion::new(&plan_source, registry, &at);
        expansion.existing(&file, plan, &common, &mut problems);
        if let Some(new) = file.new_projects.as_ref().filter(|_| new_projects_ok) {
            expansion.new_projects(new, &file.name, date, plan, &common, &mut problems);
        }
        targets = expansion.finish(&mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(LoadedFleet {
        key: fleet_key(&raw, plan_text.as_deref(), cli_vars),
        file,
        source,
        targets,
        ttl,
        date: date.to_string(),
    })
}

/// The file as JSON (for the fleet's key) and as a [`FleetFile`]; a file that does not read or
/// parse is one problem.
fn read_fleet_file(path: &Path, source: &str) -> Result<(Value, FleetFile), Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{source}: cannot read the fleet file: {e}")])?;
    let raw: Value = serde_json::from_str(&text).map_err(|e| vec![format!("{source}: not JSON: {e}")])?;
    let file: FleetFile =
        serde_json::from_value(raw.clone()).map_err(|e| vec![format!("{source}: $: {e}")])?;
    Ok((raw, file))
}

/// The file's own fields: name, targets given at all, concurrency, rate limits.
fn check_fields(file: &FleetFile, at: Locate, problems: &mut Vec<String>) {
    if !is_label_value(&file.name) || file.name.is_empty() {
        problems.push(at("$.name", format!(
            "`{}` cannot be a label value (it marks the fleet's projects as `{OWNER_LABEL_KEY}={}`): use 1-63 lowercase letters, digits, `-` or `_`",
            file.name, file.name
        )));
    }
    if file.targets.is_empty() && file.new_projects.is_none() {
        problems.push(at(
            "$",
            "no targets: give `targets` (existing projects), `new_projects`, or both".into(),
        ));
    }
    if let Some(concurrency) = file.concurrency {
        if !(1..=1024).contains(&concurrency) {
            problems.push(at(
                "$.concurrency",
                format!("{concurrency} is out of range: use 1 to 1024"),
            ));
        }
    }
    for service in file.rate_limits.keys() {
        if !service.ends_with(".googleapis.com") {
            problems.push(at(
                &format!("$.rate_limits.{service}"),
                "name an API service, e.g. `iam.googleapis.com`".into(),
            ));
        }
    }
}

/// The plan's text (for the fleet's key) and the plan, if it reads and parses; a fleet's plan
/// must declare `project` and leave the fleet's own step ids free.
fn read_plan(
    plan_path: &Path,
    file: &FleetFile,
    at: Locate,
    problems: &mut Vec<String>,
) -> (Option<String>, Option<Plan>) {
    let plan_source = plan_path.display().to_string();
    let plan_text = match std::fs::read_to_string(plan_path) {
        Ok(text) => Some(text),
        Err(e) => {
            problems.push(at(
                "$.plan",
                format!("cannot read the plan {plan_source}: {e} (the path is relative to the fleet file)"),
            ));
            None
        }
    };
    let plan = plan_text
        .as_deref()
        .and_then(|text| match parse_plan(text, &plan_source) {
            Ok(plan) => Some(plan),
            Err(found) => {
                problems.extend(found.iter().map(|p| p.to_string()));
                None
            }
        });
    if let Some(plan) = &plan {
        if !plan.vars.contains_key("project") {
            problems.push(at(
                "$.plan",
                format!("the plan {plan_source} declares no `project` variable: a fleet target is a project"),
            ));
        }
        for id in [NEW_PROJECT_STEP, BILLING_STEP] {
            if plan.steps.iter().any(|s| s.id == id) && file.new_projects.is_some() {
                problems.push(at("$.plan", format!("the plan already has a step `{id}`, the id a fleet gives its project-creation steps; rename it")));
            }
        }
    }
    (plan_text, plan)
}

/// The fleet's key: a digest of the fleet file, the plan's text and the command-line variables.
fn fleet_key(raw: &Value, plan_text: Option<&str>, cli_vars: &BTreeMap<String, VarInput>) -> String {
    let canonical = serde_json::json!({
        "fleet": raw,
        "plan": plan_text,
        // Written out explicitly: the key must not change with a type's `Debug` output.
        "vars": cli_vars
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    VarInput::Text(text) => serde_json::json!({ "text": text }),
                    VarInput::Json(json) => serde_json::json!({ "json": json }),
                };
                (k.clone(), value)
            })
            .collect::<BTreeMap<_, _>>(),
    });
    sluice_engine::digest_hex(canonical.to_string().as_bytes())
}

/// The fleet file's `rate_limits`, read before the client is built (a file that does not parse
/// has none here and is reported by [`load`]).
pub fn rate_limits_of(path: &Path) -> BTreeMap<String, u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .and_then(|raw| serde_json::from_value(raw["rate_limits"].clone()).ok())
        .unwrap_or_default()
}

fn check_new_projects(file: &FleetFile, at: Locate, problems: &mut Vec<String>) -> Option<Duration> {
    let new = file.new_projects.as_ref()?;
    if !(1..=10_000).contains(&new.count) {
        problems.push(at(
            "$.new_projects.count",
            format!("{} is out of range: use 1 to 10000", new.count),
        ));
    }
    if new.count > 1 && !new.id_pattern.contains("{index}") {
        problems.push(at(
            "$.new_projects.id_pattern",
            "with more than one project the pattern needs `{index}`".into(),
        ));
    }
    let leftover = new.id_pattern.replace("{date}", "").replace("{index}", "");
    if leftover.contains('{') || leftover.contains('}') {
        problems.push(at(
            "$.new_projects.id_pattern",
            format!(
                "`{}`: only `{{date}}` and `{{index}}` may be used",
                new.id_pattern
            ),
        ));
    }
    let parent_ok = ["organizations/", "folders/"].iter().any(|prefix| {
        new.parent
            .strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    if !parent_ok {
        problems.push(at(
            "$.new_projects.parent",
            format!(
                "`{}` is not `organizations/NUMBER` or `folders/NUMBER`",
                new.parent
            ),
        ));
    }
    if !is_billing_account(&new.billing_account) {
        problems.push(at(
            "$.new_projects.billing_account",
            format!(
            "`{}` is not `billingAccounts/XXXXXX-XXXXXX-XXXXXX` (`gcloud billing accounts list` shows yours)",
            new.billing_account
        ),
        ));
    }
    for (key, value) in &new.labels {
        if key == OWNER_LABEL_KEY {
            problems.push(at(
                &format!("$.new_projects.labels.{key}"),
                format!("`{OWNER_LABEL_KEY}` is set by the fleet itself (to its name)"),
            ));
        } else if !is_label_key(key) {
            problems.push(at(
                &format!("$.new_projects.labels.{key}"),
                "a label key is 1-63 lowercase letters, digits, `-` or `_`, starting with a letter".into(),
            ));
        }
        if !is_label_value(value) {
            problems.push(at(
                &format!("$.new_projects.labels.{key}"),
                format!("`{value}`: a label value is at most 63 lowercase letters, digits, `-` or `_`"),
            ));
        }
    }
    if new.labels.len() + 1 > 64 {
        problems.push(at(
            "$.new_projects.labels",
            "a project holds at most 64 labels, the fleet's own included".into(),
        ));
    }
    let ttl = new.ttl.as_deref().and_then(|text| match parse_ttl(text) {
        Ok(ttl) => Some(ttl),
        Err(message) => {
            problems.push(at("$.new_projects.ttl", message));
            None
        }
    });
    if ttl.is_some() && !new.id_pattern.contains("{date}") {
        problems.push(at("$.new_projects.ttl", "a time to live needs `{date}` in id_pattern: otherwise each night would ask again for the ids the clean-up deleted (project ids are never reusable)".into()));
    }
    ttl
}

/// `7d`, `36h`, `90m`: how long a fleet's project lives.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = match text.strip_suffix('d') {
        Some(days) => days
            .trim()
            .parse::<f64>()
            .map(|d| Duration::from_secs_f64(d * 86_400.0))
            .map_err(|_| format!("`{text}` is not a duration: write e.g. `3d`, `36h` or `90m`")),
        None => sluice_engine::plan::parse_duration(text),
    }?;
    if ttl < Duration::from_secs(3600) {
        return Err(format!(
            "`{text}` is shorter than an hour: a fleet would delete projects it is still bootstrapping"
        ));
    }
    Ok(ttl)
}

/// The ids `new` asks for on `date` (YYYYMMDD).
pub fn project_ids(new: &NewProjects, date: &str) -> Vec<String> {
    let width = new.count.to_string().len();
    (1..=new.count)
        .map(|i| {
            new.id_pattern
                .replace("{date}", date)
                .replace("{index}", &format!("{i:0width$}"))
        })
        .collect()
}

/// The plan with the project created and its billing linked first: every step of the plan
/// comes after both (the two steps are listed last; the dependencies order them first).
pub fn with_project_creation(plan: &Plan, new: &NewProjects, fleet: &str) -> Plan {
    let mut labels: Map<String, Value> = new
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    labels.insert(OWNER_LABEL_KEY.into(), Value::String(fleet.to_string()));
    let mut with = Map::new();
    with.insert("project".into(), "${vars.project}".into());
    with.insert("parent".into(), new.parent.clone().into());
    with.insert("labels".into(), Value::Object(labels));
    with.insert("owner_label".into(), format!("{OWNER_LABEL_KEY}={fleet}").into());
    if let Some(name) = &new.display_name {
        with.insert("display_name".into(), name.clone().into());
    }
    let create = StepSpec {
        id: NEW_PROJECT_STEP.into(),
        kind: "gcp.new_project".into(),
        with,
        after: vec![],
        when: None,
        timeout: None,
        retry: None,
    };
    let mut with = Map::new();
    with.insert("project".into(), "${vars.project}".into());
    with.insert("billing_account".into(), new.billing_account.clone().into());
    let billing = StepSpec {
        id: BILLING_STEP.into(),
        kind: "gcp.billing".into(),
        with,
        after: vec![NEW_PROJECT_STEP.into()],
        when: None,
        timeout: None,
        retry: None,
    };
    let mut composed = plan.clone();
    for step in &mut composed.steps {
        step.after.push(BILLING_STEP.into());
    }
    // Put after the plan's own steps (the `after` edges order them first), so that a problem
    // reported at `$.steps[N]` is at the same index as in the plan file.
    composed.steps.extend([create, billing]);
    composed
}

/// Google's project id rule: 6-30 characters, lowercase letters, digits and hyphens, starting
/// with a letter, not ending with a hyphen.
pub(super) fn check_project_id(id: &str) -> Result<(), String> {
    let ok = (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err("a project id is 6-30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen".into())
    }
}

fn is_label_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase()) && is_label_value(key)
}

fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn is_billing_account(name: &str) -> bool {
    name.strip_prefix("billingAccounts/").is_some_and(|id| {
        let parts: Vec<&str> = id.split('-').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| p.len() == 6 && p.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(pattern: &str, count: usize) -> NewProjects {
        NewProjects {
            count,
            id_pattern: pattern.into(),
            parent: "organizations/1".into(),
            billing_account: "billingAccounts/000000-AAAAAA-000000".into(),
            labels: BTreeMap::new(),
            display_name: None,
            ttl: None,
        }
    }

    #[test]
    fn ids_carry_the_date_and_a_zero_padded_index() {
        let ids = project_ids(&new("t-{date}-{index}", 12), "20261204");
        assert_eq!(ids.first().map(String::as_str), Some("t-20261204-01"));
        assert_eq!(ids.last().map(String::as_str), Some("t-20261204-12"));
    }

    #[test]
    fn ttl_takes_days_and_refuses_less_than_an_hour() {
        assert_eq!(parse_ttl("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_ttl("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert!(parse_ttl("10m").unwrap_err().contains("shorter than an hour"));
        assert!(parse_ttl("soon").is_err());
    }

    #[test]
    fn billing_account_names_follow_googles_shape() {
        assert!(is_billing_account("billingAccounts/01A2B3-C4D5E6-F7A8B9"));
        assert!(!is_billing_account("billingAccounts/01a2b3-c4d5e6-f7a8b9"));
        assert!(!is_billing_account("01A2B3-C4D5E6-F7A8B9"));
    }
}
