//! A fleet file's targets expanded into plans ready to run: one per existing project and one
//! per new project, each validated with its own variables. Each project may be targeted once,
//! and a problem of the plan itself, which shows in every target, is said once with the targets.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_engine::{validate, Plan, Registry, VarInput};

use super::file::{check_project_id, project_ids, with_project_creation, FleetFile, NewProjects, TargetPlan};
use crate::error::{problem_line, VarsFrom};

/// `FILE: $.PATH: MESSAGE`, the form of every problem of a fleet file.
pub type Locate<'a> = &'a dyn Fn(&str, String) -> String;

/// Targets validated so far, and the problems met on the way.
pub struct Expansion<'a> {
    plan_source: &'a str,
    registry: &'a Registry,
    at: Locate<'a>,
    /// Project → where it was first targeted.
    seen: BTreeMap<String, String>,
    /// A problem of the plan (the target's project id taken out) → the targets that met it.
    plan_problems: Vec<(String, Vec<String>)>,
    /// The same for the plan rules' warnings.
    plan_warnings: Vec<(String, Vec<String>)>,
    targets: Vec<TargetPlan>,
}

impl<'a> Expansion<'a> {
    pub fn new(plan_source: &'a str, registry: &'a Registry, at: Locate<'a>) -> Self {
        Expansion {
            plan_source,
            registry,
            at,
            seen: BTreeMap::new(),
            plan_problems: Vec::new(),
            plan_warnings: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// The file's `targets`: existing projects, each with the common variables and its own.
    pub fn existing(
        &mut self,
        file: &FleetFile,
        plan: &Plan,
        common: &BTreeMap<String, VarInput>,
        problems: &mut Vec<String>,
    ) {
        for (i, target) in file.targets.iter().enumerate() {
            let where_ = format!("$.targets[{i}]");
            let Some(project) = target.get("project").and_then(Value::as_str) else {
                problems.push((self.at)(
                    &where_,
                    "a target needs `project` (the project id)".into(),
                ));
                continue;
            };
            let mut vars = common.clone();
            vars.extend(target.iter().map(|(k, v)| (k.clone(), VarInput::Json(v.clone()))));
            self.add(project.to_string(), where_, vars, plan.clone(), false, problems);
        }
    }

    /// `new_projects`: each id the pattern gives on `date`, running the plan after the steps
    /// that create the project and link its billing.
    pub fn new_projects(
        &mut self,
        new: &NewProjects,
        fleet_name: &str,
        date: &str,
        plan: &Plan,
        common: &BTreeMap<String, VarInput>,
        problems: &mut Vec<String>,
    ) {
        let composed = with_project_creation(plan, new, fleet_name);
        for (i, id) in project_ids(new, date).into_iter().enumerate() {
            let where_ = format!("$.new_projects (project {})", i + 1);
            if let Err(message) = check_project_id(&id) {
                problems.push((self.at)(
                    "$.new_projects.id_pattern",
                    format!("`{}` gives `{id}`: {message}", new.id_pattern),
                ));
                continue;
            }
            let mut vars = common.clone();
            vars.insert("project".into(), VarInput::Json(Value::String(id.clone())));
            self.add(id, where_, vars, composed.clone(), true, problems);
        }
    }

    fn add(
        &mut self,
        name: String,
        where_: String,
        vars: BTreeMap<String, VarInput>,
        plan: Plan,
        new_project: bool,
        problems: &mut Vec<String>,
    ) {
        // INVARIANT: each project is targeted once in a fleet.
        if let Some(first) = self.seen.insert(name.clone(), where_.clone()) {
            problems.push((self.at)(
                &where_,
                format!("project `{name}` is already a target ({first}); each project may be targeted once"),
            ));
            return;
        }
        match validate(plan, self.plan_source, self.registry, &vars) {
            Ok(validated) => {
                for warning in &validated.warnings {
                    said_by(
                        &mut self.plan_warnings,
                        &name,
                        problem_line(warning, VarsFrom::FleetFile),
                    );
                }
                self.targets.push(TargetPlan {
                    name,
                    new_project,
                    validated,
                })
            }
            Err(found) => {
                for problem in found {
                    said_by(
                        &mut self.plan_problems,
                        &name,
                        problem_line(&problem, VarsFrom::FleetFile),
                    );
                }
            }
        }
    }

    /// The targets, after adding the plan's problems to `problems` and printing its warnings
    /// on standard error (each once, naming up to three of its targets).
    pub fn finish(self, problems: &mut Vec<String>) -> Vec<TargetPlan> {
        problems.extend(self.plan_problems.iter().map(with_targets));
        for warning in self.plan_warnings.iter().map(with_targets) {
            errln!("warning: {warning}");
        }
        self.targets
    }
}

/// Adds `text`, met by target `name`, to `said`: once per text, with every target that met it.
/// The target's project id is taken out of the text, so that every target says the same.
fn said_by(said: &mut Vec<(String, Vec<String>)>, name: &str, text: String) {
    let text = if name.is_empty() {
        text
    } else {
        text.replace(name, "<project>")
    };
    match said.iter_mut().find(|(t, _)| *t == text) {
        Some((_, names)) => names.push(name.to_string()),
        None => said.push((text, vec![name.to_string()])),
    }
}

/// `TEXT (targets A, B, C and N more)`.
fn with_targets((text, names): &(String, Vec<String>)) -> String {
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let more = names.len() - shown.len();
    format!(
        "{text} (target{} {}{})",
        if names.len() == 1 { "" } else { "s" },
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

/// The fleet's common variables: the file's, then the command line's, then `defaults` for any
/// variable the plan declares that is still missing (never `project`: each target has its own).
pub fn common_vars(
    file: &FleetFile,
    cli_vars: &BTreeMap<String, VarInput>,
    defaults: &BTreeMap<String, String>,
    plan: &Plan,
) -> BTreeMap<String, VarInput> {
    let mut vars: BTreeMap<String, VarInput> = file
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), VarInput::Json(v.clone())))
        .collect();
    vars.extend(cli_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (name, value) in defaults {
        if name != "project" && plan.vars.contains_key(name) && !vars.contains_key(name) {
            vars.insert(name.clone(), VarInput::Text(value.clone()));
        }
    }
    vars
}
