//! Saved plans: `sluice plan --out FILE` writes what was reviewed (the plan file's contents, the
//! variables as resolved, the target without credentials, every step's preview) and
//! `sluice run FILE` applies it only while every step still observes as it was saved.
//!
//! A saved plan is told from a plan file by its content: a JSON object with
//! `sluice_saved_plan` (the format's version). It holds the plan's text, so editing the plan
//! file afterwards does not change what it applies; and its variables, so `--var` and
//! `--vars-file` are refused with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_engine::{digest_hex, parse_plan, Registry, ValidatedPlan, VarInput};

use super::plan_file;
use super::preview::{Counts, Row};
use crate::args::{CloudArgs, VarArgs};
use crate::error::CliError;

/// The version of the saved-plan format this sluice writes and reads.
pub const SAVED_PLAN_VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    pub sluice_saved_plan: u32,
    /// The sluice that saved it (for people; a saved plan is checked by its previews).
    pub sluice_version: String,
    pub created_at_ms: u64,
    pub plan: SavedPlanFile,
    /// Every declared variable's value, as resolved when the plan was saved.
    pub vars: BTreeMap<String, Value>,
    pub target: SavedTarget,
    pub changes: bool,
    pub counts: Counts,
    pub steps: Vec<Row>,
}

/// The plan file as it was read.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlanFile {
    pub name: String,
    /// The path it was read from.
    pub source: String,
    /// `digest_hex` of `contents`: catches a saved plan edited by hand.
    pub digest: String,
    pub contents: String,
}

/// Where the previews were observed. Never holds a token or a credentials file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SavedTarget {
    /// Google Cloud's own endpoints (no `--endpoint`).
    Google,
    /// `--endpoint URL` (or `SLUICE_ENDPOINT`), without any user:password part.
    Endpoint { url: String },
    /// The embedded emulator (`--emulator`).
    Emulator,
}

impl SavedTarget {
    pub fn of(args: &CloudArgs) -> SavedTarget {
        match (&args.emulator, &args.endpoint) {
            (true, _) => SavedTarget::Emulator,
            (false, Some(url)) => SavedTarget::Endpoint {
                url: without_userinfo(url).trim_end_matches('/').to_string(),
            },
            (false, None) => SavedTarget::Google,
        }
    }

    fn describe(&self) -> String {
        match self {
            SavedTarget::Google => "Google Cloud (no --endpoint)".into(),
            SavedTarget::Endpoint { url } => format!("--endpoint {url}"),
            SavedTarget::Emulator => "the embedded emulator (--emulator)".into(),
        }
    }

    /// The cloud flags naming this target, after a space (empty for Google).
    pub fn flags_hint(&self) -> String {
        match self {
            SavedTarget::Google => String::new(),
            SavedTarget::Endpoint { url } => format!(" --endpoint {url}"),
            SavedTarget::Emulator => " --emulator".into(),
        }
    }
}

/// `url` without a `user:password@` part.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Reads `text` as a saved plan when it is one (a JSON object with `sluice_saved_plan`); `None`
/// for anything else (a plan file, or text that is not JSON: the plan parser explains it).
pub fn detect(text: &str, file: &Path) -> Option<Result<SavedPlan, CliError>> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let version = object.get("sluice_saved_plan")?;
    if version.as_u64() != Some(u64::from(SAVED_PLAN_VERSION)) {
        return Some(Err(CliError::bad_input(format!(
            "{} is a saved plan of format {version}, which this sluice does not read (it reads {SAVED_PLAN_VERSION})",
            file.display()
        ))
        .with_hint("save it again with this sluice: sluice plan PLAN --out FILE")));
    }
    Some(serde_json::from_value(Value::Object(object)).map_err(|error| {
        CliError::bad_input(format!("{} is not a valid saved plan: {error}", file.display()))
            .with_hint("save it again: sluice plan PLAN --out FILE")
    }))
}

impl SavedPlan {
    pub fn new(validated: &ValidatedPlan, source: &str, text: &str, args: &CloudArgs, rows: &[Row]) -> Self {
        let counts = Counts::of(rows);
        let created_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        SavedPlan {
            sluice_saved_plan: SAVED_PLAN_VERSION,
            sluice_version: env!("CARGO_PKG_VERSION").into(),
            created_at_ms,
            plan: SavedPlanFile {
                name: validated.plan.name.clone(),
                source: source.into(),
                digest: digest_hex(text.as_bytes()),
                contents: text.into(),
            },
            vars: validated.vars.clone(),
            target: SavedTarget::of(args),
            changes: counts.changes(),
            counts,
            steps: rows.to_vec(),
        }
    }

    /// Writes the saved plan to `file` at once (a temporary file renamed over it), readable by
    /// its owner only: it holds the variables in clear.
    pub fn write(&self, file: &Path) -> Result<(), CliError> {
        let cannot = |error: &dyn std::fmt::Display| {
            CliError::bad_input(format!(
                "cannot write the saved plan to {}: {error}",
                file.display()
            ))
        };
        let dir = match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(|e| cannot(&e))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| cannot(&e))?;
        temporary
            .write_all(format!("{text}\n").as_bytes())
            .map_err(|e| cannot(&e))?;
        temporary.persist(file).map_err(|e| cannot(&e.error))?;
        Ok(())
    }

    /// Refuses `--var` and `--vars-file`: the variables are in the saved plan.
    pub fn refuse_vars(&self, file: &Path, vars: &VarArgs) -> Result<(), CliError> {
        if vars.vars.is_empty() && vars.vars_file.is_none() {
            return Ok(());
        }
        Err(CliError::bad_input(format!(
            "{} is a saved plan: its variables are the ones it was saved with, so --var and --vars-file are refused",
            file.display()
        ))
        .with_hint(format!(
            "to change them, plan again: sluice plan {} --var … --out {}",
            self.plan.source,
            file.display()
        )))
    }

    /// Refuses a target other than the one the previews were observed on.
    pub fn check_target(&self, file: &Path, args: &CloudArgs) -> Result<(), CliError> {
        let now = SavedTarget::of(args);
        if now == self.target {
            return Ok(());
        }
        Err(CliError::bad_input(format!(
            "{} was saved against {}, and this run targets {}",
            file.display(),
            self.target.describe(),
            now.describe()
        ))
        .with_hint(format!(
            "apply it where it was reviewed: sluice run {}{}, or plan again against this target",
            file.display(),
            self.target.flags_hint()
        )))
    }

    /// The plan it holds, parsed and validated again with its variables (exit 2 when it was
    /// edited, or is no longer valid for this sluice).
    pub fn validated(&self, file: &Path, registry: &Registry) -> Result<ValidatedPlan, CliError> {
        if digest_hex(self.plan.contents.as_bytes()) != self.plan.digest {
            return Err(CliError::bad_input(format!(
                "the plan inside the saved plan {} does not match its digest: it was edited",
                file.display()
            ))
            .with_hint("save it again: sluice plan PLAN --out FILE"));
        }
        let source = &self.plan.source;
        let plan = parse_plan(&self.plan.contents, source).map_err(|p| plan_file::invalid_plan(&p))?;
        let given: BTreeMap<String, VarInput> = self
            .vars
            .iter()
            .map(|(name, value)| (name.clone(), VarInput::Json(value.clone())))
            .collect();
        let validated = plan_file::validate_given(plan, source, registry, &given)?;
        if validated.vars != self.vars {
            return Err(CliError::bad_input(format!(
                "the variables saved in {} resolve differently now",
                file.display()
            ))
            .with_hint("save it again: sluice plan PLAN --out FILE"));
        }
        Ok(validated)
    }

    /// Refuses (exit 6) when some step no longer observes as it was saved, naming each.
    pub fn check_unchanged(&self, file: &Path, now: &[Row]) -> Result<(), CliError> {
        let drifted = drifted(&self.steps, now);
        if drifted.is_empty() {
            return Ok(());
        }
        let mut error = CliError::saved_plan_stale(format!(
            "the saved plan {} no longer matches what its steps observe ({} step{} drifted); nothing was changed",
            file.display(),
            drifted.len(),
            if drifted.len() == 1 { "" } else { "s" }
        ))
        .with_hint(format!(
            "review it again: sluice plan {} [--var …] --out {}{}, then sluice run {}",
            self.plan.source,
            file.display(),
            self.target.flags_hint(),
            file.display()
        ));
        for line in drifted {
            error = error.with_detail(line);
        }
        Err(error)
    }
}

/// One line per step whose preview differs: `  STEP: was `…`, now `…``. Create and update are
/// compared with their summaries, known-later with the steps they wait on; a not-yet reason's
/// wording is not compared.
fn drifted(saved: &[Row], now: &[Row]) -> Vec<String> {
    let shown = |row: Option<&Row>| match row {
        Some(row) => format!("{} {}", row.action.mark(), row.text()),
        None => "not in the plan".into(),
    };
    let same = |a: &Row, b: &Row| {
        a.id == b.id
            && a.kind == b.kind
            && a.action == b.action
            && a.summary == b.summary
            && a.waits_on == b.waits_on
    };
    let mut lines = Vec::new();
    for index in 0..saved.len().max(now.len()) {
        let (was, is) = (saved.get(index), now.get(index));
        if let (Some(a), Some(b)) = (was, is) {
            if same(a, b) {
                continue;
            }
        }
        let id = was.or(is).map_or("?", |row| row.id.as_str());
        lines.push(format!("  {id}: was `{}`, now `{}`", shown(was), shown(is)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::preview::Action;

    fn row(id: &str, action: Action, summary: Option<&str>) -> Row {
        Row {
            id: id.into(),
            kind: "core.noop".into(),
            action,
            summary: summary.map(str::to_string),
            waits_on: Vec::new(),
            reason: None,
        }
    }

    #[test]
    fn drift_names_each_step_that_changed_with_what_it_was_and_is() {
        let saved = vec![
            row("a", Action::Create, Some("make a")),
            row("b", Action::Unchanged, None),
            row("c", Action::Create, Some("make c")),
        ];
        let mut now = saved.clone();
        assert!(drifted(&saved, &now).is_empty());
        now[0] = row("a", Action::Unchanged, None);
        now[2] = row("c", Action::Create, Some("make c somewhere else"));
        assert_eq!(
            drifted(&saved, &now),
            [
                "  a: was `+ create: make a`, now `= unchanged`",
                "  c: was `+ create: make c`, now `+ create: make c somewhere else`"
            ]
        );
        // Why a step is known later may be worded differently; that it is known later may not.
        let mut later = row("d", Action::KnownLater, None);
        later.reason = Some("API not enabled (request 1)".into());
        let mut again = later.clone();
        again.reason = Some("API not enabled (request 2)".into());
        assert!(drifted(&[later], &[again]).is_empty());
    }

    #[test]
    fn the_target_never_keeps_credentials_in_the_url() {
        assert_eq!(
            without_userinfo("https://user:secret@host:8443/base"),
            "https://host:8443/base"
        );
        assert_eq!(without_userinfo("http://127.0.0.1:1/"), "http://127.0.0.1:1/");
        assert_eq!(without_userinfo("https://host/a@b"), "https://host/a@b");
    }

    #[test]
    fn only_a_json_object_with_the_version_key_is_a_saved_plan() {
        let file = Path::new("f.json");
        assert!(detect(r#"{"name": "p", "steps": []}"#, file).is_none());
        assert!(detect("not json", file).is_none());
        let newer = detect(r#"{"sluice_saved_plan": 2}"#, file).unwrap().unwrap_err();
        assert!(newer.message.contains("format 2"), "{}", newer.message);
        let broken = detect(r#"{"sluice_saved_plan": 1}"#, file).unwrap().unwrap_err();
        assert!(
            broken.message.contains("not a valid saved plan"),
            "{}",
            broken.message
        );
    }
}
