//! Reading a plan file with its variables; `validate` and `graph`.

use std::collections::BTreeMap;
use std::path::Path;

use sluice_engine::suggest::did_you_mean;
use sluice_engine::{
    parse_plan, validate as validate_plan, Plan, Problem, Registry, ValidatedPlan, VarInput,
};

use crate::args::{GraphFormat, VarArgs};
use crate::error::{problem_line, CliError, CommandResult, Outcome, VarsFrom};
use crate::Sluice;

/// Reads, parses and validates a plan with its variables; every problem at once on failure,
/// and the rules' warnings on standard error on success.
pub fn load(plan_path: &Path, vars: &VarArgs, registry: &Registry) -> Result<ValidatedPlan, CliError> {
    load_with_defaults(plan_path, vars, registry, &BTreeMap::new())
}

/// [`load`], with `defaults` for variables the plan declares and the command line leaves out
/// (`--emulator` fills in its demo project this way).
pub fn load_with_defaults(
    plan_path: &Path,
    vars: &VarArgs,
    registry: &Registry,
    defaults: &BTreeMap<String, String>,
) -> Result<ValidatedPlan, CliError> {
    let text = read_text(plan_path)?;
    load_text(&text, &plan_path.display().to_string(), vars, registry, defaults)
}

/// [`load_with_defaults`] of a plan file's `text`, read from `source`.
pub fn load_text(
    text: &str,
    source: &str,
    vars: &VarArgs,
    registry: &Registry,
    defaults: &BTreeMap<String, String>,
) -> Result<ValidatedPlan, CliError> {
    let plan = parse_plan(text, source).map_err(|problems| invalid_plan(&problems))?;
    let mut given = read_vars(vars)?;
    for (name, value) in defaults {
        if plan.vars.contains_key(name) && !given.contains_key(name) {
            given.insert(name.clone(), VarInput::Text(value.clone()));
        }
    }
    validate_given(plan, source, registry, &given)
}

/// Validates `plan` with the variables `given`; the rules' warnings on standard error.
pub fn validate_given(
    plan: Plan,
    source: &str,
    registry: &Registry,
    given: &BTreeMap<String, VarInput>,
) -> Result<ValidatedPlan, CliError> {
    let validated =
        validate_plan(plan, source, registry, given).map_err(|problems| invalid_plan(&problems))?;
    // Warnings do not stop the plan (nor change the exit code); every command that loads it says them.
    for warning in &validated.warnings {
        errln!("warning: {warning}");
    }
    Ok(validated)
}

/// A plan file's text (or a saved plan's: `run` tells them apart by their content).
pub fn read_text(plan_path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(plan_path).map_err(|error| {
        CliError::bad_input(format!("cannot read plan file {}: {error}", plan_path.display()))
    })
}

fn read_plan(plan_path: &Path) -> Result<Plan, CliError> {
    let text = read_text(plan_path)?;
    parse_plan(&text, &plan_path.display().to_string()).map_err(|problems| invalid_plan(&problems))
}

pub(crate) fn read_vars(args: &VarArgs) -> Result<BTreeMap<String, VarInput>, CliError> {
    let mut given = BTreeMap::new();
    if let Some(file) = &args.vars_file {
        let text = std::fs::read_to_string(file).map_err(|error| {
            CliError::bad_input(format!("cannot read --vars-file {}: {error}", file.display()))
        })?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
            CliError::bad_input(format!("--vars-file {} is not JSON: {error}", file.display()))
        })?;
        let serde_json::Value::Object(map) = value else {
            return Err(CliError::bad_input(format!(
                "--vars-file {} must hold a JSON object of NAME: VALUE",
                file.display()
            )));
        };
        given.extend(map.into_iter().map(|(k, v)| (k, VarInput::Json(v))));
    }
    for pair in &args.vars {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::bad_input(format!(
                "--var `{pair}` has no `=`: write --var NAME=VALUE"
            )));
        };
        given.insert(name.trim().to_string(), VarInput::Text(value.to_string()));
    }
    Ok(given)
}

/// A plan's problems, every one at once (exit 2).
pub fn invalid_plan(problems: &[Problem]) -> CliError {
    let lines: Vec<String> = problems
        .iter()
        .map(|problem| problem_line(problem, VarsFrom::Flags))
        .collect();
    CliError::invalid("plan", &lines)
}

/// `validate`: every problem at once (exit 2), or the plan's shape. With `json`, one document on
/// stdout either way (`valid`, and the problems or the counts; fields in the README).
pub fn validate(plan_path: &Path, vars: &VarArgs, json: bool, app: &Sluice) -> CommandResult {
    let registry = app.kinds.offline_registry();
    let loaded = load(plan_path, vars, &registry);
    let source = plan_path.display().to_string();
    if json {
        let document = match &loaded {
            Ok(validated) => serde_json::json!({
                "format_version": 1,
                "valid": true,
                "plan": { "name": validated.plan.name, "source": source },
                "steps": validated.plan.steps.len(),
                "skipped_by_when": validated.skipped_by_condition.iter().filter(|s| **s).count(),
                "vars": validated.vars,
                "warnings": validated.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            Err(error) => serde_json::json!({
                "format_version": 1,
                "valid": false,
                "plan": { "source": source },
                "error": error.message,
                "problems": error.details.iter().map(|line| line.trim()).collect::<Vec<_>>(),
            }),
        };
        crate::output::print_json(&document, false);
    }
    let validated = loaded?;
    if !json {
        let skipped = validated.skipped_by_condition.iter().filter(|s| **s).count();
        outln!(
            "{}: valid ({} steps, {} skipped by `when`, {} variables)",
            plan_path.display(),
            validated.plan.steps.len(),
            skipped,
            validated.vars.len()
        );
    }
    Ok(Outcome::success())
}

/// Prints the step graph. Variables are not needed: edges come from `after` and step references.
pub fn graph(plan_path: &Path, format: GraphFormat) -> CommandResult {
    let plan = read_plan(plan_path)?;
    let source = plan_path.display().to_string();
    let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
    let mut problems = Vec::new();
    let mut deps = vec![Vec::new(); ids.len()];
    for (i, step) in plan.steps.iter().enumerate() {
        for (j, target) in step.named_dependencies().into_iter().enumerate() {
            match ids.iter().position(|id| *id == target) {
                Some(d) => deps[i].push(d),
                None => problems.push(Problem {
                    location: format!("{source}: $.steps[{i}]"),
                    message: format!(
                        "reference {j} names unknown step `{target}`; {}steps: {}",
                        did_you_mean(&target, ids.iter().map(String::as_str)),
                        ids.iter()
                            .map(|id| format!("`{id}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    fix: None,
                }),
            }
        }
    }
    if !problems.is_empty() {
        return Err(invalid_plan(&problems));
    }
    let graph = sluice_engine::dag::build(&ids, &deps).map_err(|cycles| {
        let problems: Vec<Problem> = cycles
            .iter()
            .map(|cycle| Problem {
                location: format!("{source}: $.steps"),
                message: format!("dependency cycle: {} -> {}", cycle.join(" -> "), cycle[0]),
                fix: None,
            })
            .collect();
        invalid_plan(&problems)
    })?;
    let labels: Vec<String> = plan.steps.iter().map(|s| s.kind.clone()).collect();
    let text = match format {
        GraphFormat::Dot => graph.to_dot(&labels),
        GraphFormat::Mermaid => graph.to_mermaid(&labels),
    };
    for line in text.trim_end().lines() {
        outln!("{line}");
    }
    Ok(Outcome::success())
}
