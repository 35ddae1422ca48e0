//! Plan validation: parse a plan file and report every problem in it at once, before anything
//! runs, each at a `FILE: $.json.path` location with a message saying how to fix it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::condition;
use crate::dag::{self, StepGraph};
use crate::kind::{ParamType, Registry};
use crate::plan::{parse_duration, Plan, VarType};
use crate::policy::RetryPolicy;
use crate::template::{self, key_path, Ref, Segment};
use crate::vars::{resolve_vars, VarInput};

/// One thing wrong with a plan or its variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `FILE: $.json.path` (or `FILE:LINE:COL` for a file that does not parse).
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// A plan with nothing wrong in it, ready to run.
#[derive(Debug, Clone)]
pub struct ValidatedPlan {
    pub plan: Plan,
    /// Every declared variable's value.
    pub vars: BTreeMap<String, Value>,
    pub graph: StepGraph,
    /// `skipped_by_condition[i]`: step `i`'s `when` evaluated to false.
    pub skipped_by_condition: Vec<bool>,
}

/// Parses a plan file's text; `source` names the file in problem locations.
pub fn parse_plan(text: &str, source: &str) -> Result<Plan, Vec<Problem>> {
    let plan: Plan = serde_json::from_str(text).map_err(|error| {
        use serde_json::error::Category;
        let full = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let reason = full.strip_suffix(&suffix).unwrap_or(&full);
        let what = match error.classify() {
            Category::Syntax => "the plan file is not valid JSON",
            Category::Eof => "the plan file ends too early",
            Category::Data if !text.trim_start().starts_with('{') => {
                "the plan file must be a JSON object with `name` and `steps`"
            }
            Category::Data => "the plan file does not have the shape of a plan",
            Category::Io => "the plan file could not be read",
        };
        vec![Problem {
            location: format!("{source}:{}:{}", error.line(), error.column()),
            message: format!("{what}: {reason}"),
        }]
    })?;
    if plan.steps.is_empty() {
        return Err(vec![Problem {
            location: format!("{source}: $.steps"),
            message: "the plan has no steps; add at least one to `steps`".into(),
        }]);
    }
    Ok(plan)
}

fn listing<'a>(names: impl IntoIterator<Item = &'a str>, none: &str) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        none.to_string()
    } else {
        names.join(", ")
    }
}

fn var_fits(param: ParamType, var: VarType) -> bool {
    matches!(
        (param, var),
        (ParamType::Any, _)
            | (ParamType::String, VarType::String)
            | (ParamType::Int, VarType::Int)
            | (ParamType::Bool, VarType::Bool)
            | (ParamType::List, VarType::List)
    )
}

/// Checks everything about `plan` with the given variables, reporting every problem at once.
pub fn validate(
    plan: Plan,
    source: &str,
    registry: &Registry,
    given: &BTreeMap<String, VarInput>,
) -> Result<ValidatedPlan, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut report = |location: String, message: String| {
        problems.push(Problem {
            location: format!("{source}: {location}"),
            message,
        })
    };
    let var_name = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex");
    for name in plan.vars.keys().filter(|name| !var_name.is_match(name)) {
        report(
            format!("$.vars{}", key_path(name)),
            format!("variable name `{name}` is not allowed: use letters, digits and `_`, not starting with a digit"),
        );
    }
    let (vars, var_problems) = resolve_vars(&plan, given, source);
    problems.extend(var_problems);
    let mut report = |location: String, message: String| {
        problems.push(Problem {
            location: format!("{source}: {location}"),
            message,
        })
    };

    let step_id = Regex::new(r"^[A-Za-z][A-Za-z0-9_-]*$").expect("valid regex");
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    let mut id_problems: Vec<Option<String>> = vec![None; plan.steps.len()];
    for (i, step) in plan.steps.iter().enumerate() {
        id_problems[i] = if step.id.is_empty() {
            Some("step id is empty; give every step a unique id such as `build`".into())
        } else if !step_id.is_match(&step.id) {
            Some(format!("step id `{}` is not allowed: start with a letter, then use letters, digits, `_` or `-`", step.id))
        } else if let Some(first) = first_use.get(step.id.as_str()) {
            Some(format!(
                "duplicate step id `{}`: step {first} already uses it; ids must be unique",
                step.id
            ))
        } else {
            first_use.insert(&step.id, i);
            None
        };
    }
    let ids_ok = id_problems.iter().all(Option::is_none);
    let step_ids = listing(plan.steps.iter().map(|s| s.id.as_str()), "none");
    let declared_vars = listing(plan.vars.keys().map(String::as_str), "none are declared");
    let kinds = listing(registry.names(), "none are registered");
    let schemas: Vec<_> = plan
        .steps
        .iter()
        .map(|s| registry.get(&s.kind).map(|k| k.schema()))
        .collect();

    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
    let mut skipped = vec![false; plan.steps.len()];
    for (i, step) in plan.steps.iter().enumerate() {
        let at = format!("$.steps[{i}]");
        let schema = schemas[i].as_ref();
        if let Some(message) = id_problems[i].take() {
            report(format!("{at}.id"), message);
        }
        if schema.is_none() {
            report(
                format!("{at}.kind"),
                format!("unknown kind `{}`; registered kinds: {kinds}", step.kind),
            );
        }
        for (name, value) in &step.with {
            let param_at = format!("{at}.with{}", key_path(name));
            if let Some(schema) = schema {
                match schema.param(name) {
                    None => report(
                        param_at.clone(),
                        format!(
                            "kind `{}` has no parameter `{name}`; it accepts: {}",
                            step.kind,
                            listing(schema.params.iter().map(|p| p.name), "no parameters")
                        ),
                    ),
                    Some(param) => {
                        let segments = value.as_str().map(template::parse);
                        match segments {
                            Some(Ok(segments))
                                if segments.iter().any(|s| matches!(s, Segment::Ref(_))) =>
                            {
                                if let [Segment::Ref(Ref::Var(var))] = segments.as_slice() {
                                    if let Some(spec) = plan.vars.get(var) {
                                        if !var_fits(param.ty, spec.ty) {
                                            report(param_at.clone(), format!(
                                                "parameter `{name}` of kind `{}` takes {}, but variable `{var}` is of type {}; use a {} variable or a literal",
                                                step.kind, param.ty.as_str(), spec.ty.as_str(), param.ty.as_str()));
                                        }
                                    }
                                }
                            }
                            Some(Err(_)) => {}
                            _ if !param.ty.accepts(value) => {
                                report(
                                    param_at.clone(),
                                    format!(
                                "parameter `{name}` of kind `{}` takes {}, but got `{value}`",
                                step.kind, param.ty.as_str()),
                                )
                            }
                            _ => {}
                        }
                    }
                }
            }
            for (suffix, reference) in template::references(value) {
                let ref_at = format!("{param_at}{suffix}");
                match reference {
                    Err(message) => report(ref_at, message),
                    Ok(Ref::Var(var)) if !plan.vars.contains_key(&var) => report(ref_at, format!(
                        "`${{vars.{var}}}` refers to an undeclared variable; declare it under `vars` or use one of: {declared_vars}")),
                    Ok(Ref::Var(_)) => {}
                    Ok(Ref::StepOutput { step: target, key }) => {
                        if target == step.id {
                            report(ref_at, format!("step `{target}` refers to its own output `{key}`: a step cannot use its own outputs (that is a dependency cycle)"));
                            continue;
                        }
                        let Some(&t) = first_use.get(target.as_str()) else {
                            report(ref_at, format!("`${{steps.{target}.outputs.{key}}}` refers to an unknown step `{target}`; steps: {step_ids}"));
                            continue;
                        };
                        deps[i].push(t);
                        if let Some(target_schema) = schemas[t].as_ref() {
                            if !target_schema.outputs.contains(&key.as_str()) {
                                report(ref_at, format!(
                                    "step `{target}` (kind `{}`) has no output `{key}`; its outputs: {}",
                                    plan.steps[t].kind, listing(target_schema.outputs.iter().copied(), "none")));
                            }
                        }
                    }
                }
            }
        }
        if let Some(schema) = schema {
            for param in schema
                .params
                .iter()
                .filter(|p| p.required && !step.with.contains_key(p.name))
            {
                report(
                    format!("{at}.with"),
                    format!(
                        "missing required parameter `{}` ({}) of kind `{}`: {}",
                        param.name,
                        param.ty.as_str(),
                        step.kind,
                        param.description
                    ),
                );
            }
        }
        for (j, after) in step.after.iter().enumerate() {
            match first_use.get(after.as_str()) {
                Some(&t) => deps[i].push(t),
                None => report(
                    format!("{at}.after[{j}]"),
                    format!("`after` names an unknown step `{after}`; steps: {step_ids}"),
                ),
            }
        }
        if let Some(expr) = &step.when {
            match condition::check(expr).and_then(|()| condition::evaluate(expr, &vars)) {
                Ok(run) => skipped[i] = !run,
                Err(message) => report(format!("{at}.when"), message),
            }
        }
        if let Some(timeout) = &step.timeout {
            if let Err(message) = parse_duration(timeout) {
                report(
                    format!("{at}.timeout"),
                    format!("invalid timeout: {message}"),
                );
            }
        }
        if let Some(retry) = &step.retry {
            if let Err(message) = RetryPolicy::default().with_overrides(retry) {
                report(format!("{at}.retry"), format!("invalid retry: {message}"));
            }
        }
    }

    let mut graph = None;
    if ids_ok {
        let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
        match dag::build(&ids, &deps) {
            Ok(built) => graph = Some(built),
            Err(cycles) => {
                for cycle in cycles {
                    let path = format!("{} -> {}", cycle.join(" -> "), cycle[0]);
                    report("$.steps".into(), format!(
                        "dependency cycle: {path} (each step waits for the one before it); remove an `after` entry or an output reference on it"));
                }
            }
        }
    }
    match graph {
        Some(graph) if problems.is_empty() => Ok(ValidatedPlan {
            plan,
            vars,
            graph,
            skipped_by_condition: skipped,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StepError;
    use crate::kind::{Applied, KindSchema, Observation, ParamSpec, StepContext, StepKind};
    use async_trait::async_trait;
    use serde_json::json;

    struct Fake;

    #[async_trait]
    impl StepKind for Fake {
        fn schema(&self) -> KindSchema {
            KindSchema {
                description: "writes a file",
                params: vec![
                    ParamSpec::required("path", ParamType::String, "where to write"),
                    ParamSpec::optional("count", ParamType::Int, "how many"),
                    ParamSpec::optional("items", ParamType::List, "what"),
                ],
                outputs: vec!["path", "bytes"],
            }
        }
        async fn observe(&self, _: &StepContext) -> Result<Observation, StepError> {
            Err(StepError::permanent("fake"))
        }
        async fn apply(&self, _: &StepContext) -> Result<Applied, StepError> {
            Err(StepError::permanent("fake"))
        }
    }

    fn check(plan: Value, given: &[(&str, &str)]) -> Result<ValidatedPlan, Vec<Problem>> {
        let mut registry = Registry::new();
        registry.register("fake.file", Fake);
        let given = given
            .iter()
            .map(|(k, v)| (k.to_string(), VarInput::Text(v.to_string())))
            .collect();
        let plan = parse_plan(&plan.to_string(), "x.json")?;
        validate(plan, "x.json", &registry, &given)
    }

    /// The problems for `steps` (each step gets `kind: fake.file` and `with.path` unless set).
    fn problems(vars: Value, steps: Value) -> Vec<Problem> {
        let mut steps = steps;
        for step in steps.as_array_mut().unwrap() {
            let step = step.as_object_mut().unwrap();
            step.entry("kind").or_insert(json!("fake.file"));
            step.entry("with")
                .or_insert(json!({}))
                .as_object_mut()
                .unwrap()
                .entry("path")
                .or_insert(json!("p"));
        }
        check(json!({"name": "t", "vars": vars, "steps": steps}), &[])
            .err()
            .unwrap_or_default()
    }

    fn assert_problem(found: &[Problem], location: &str, phrase: &str) {
        let location = format!("x.json: {location}");
        assert!(
            found
                .iter()
                .any(|p| p.location == location && p.message.contains(phrase)),
            "no problem at `{location}` containing `{phrase}` in {found:#?}"
        );
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let e = parse_plan(
            "{\n  \"name\": \"a\",\n  \"steps\": [], \"foo\": 1\n}",
            "x.json",
        )
        .unwrap_err();
        assert_eq!(e[0].location, "x.json:3:20");
        assert!(e[0].message.starts_with(
            "the plan file does not have the shape of a plan: unknown field `foo`, expected one of"
        ));
        let e = parse_plan("[1, 2]", "x.json").unwrap_err();
        assert!(
            e[0].message
                .starts_with("the plan file must be a JSON object"),
            "{e:?}"
        );
        let e = parse_plan("{\"name\": ", "x.json").unwrap_err();
        assert!(
            e[0].message.starts_with("the plan file ends too early")
                && e[0].location.starts_with("x.json:1:")
        );
        let e = parse_plan("{\"name\": \"a\", \"steps\": []}", "x.json").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "x.json: $.steps: the plan has no steps; add at least one to `steps`"
        );
    }

    #[test]
    fn step_ids() {
        let found = problems(
            json!({}),
            json!([{"id": "a"}, {"id": ""}, {"id": "9x"}, {"id": "a"}]),
        );
        assert_problem(&found, "$.steps[1].id", "step id is empty");
        assert_problem(&found, "$.steps[2].id", "`9x` is not allowed");
        assert_problem(
            &found,
            "$.steps[3].id",
            "duplicate step id `a`: step 0 already uses it",
        );
    }

    #[test]
    fn kinds_and_parameters() {
        let found = problems(
            json!({"n": {"type": "int"}, "s": {"type": "string"}, "l": {"type": "list"}}),
            json!([
                {"id": "a", "kind": "nope"},
                {"id": "b", "with": {"colour": 1, "count": "3", "items": "${vars.l}"}},
                {"id": "c", "with": {"path": "${vars.n}", "count": "${vars.n}", "items": "${vars.s}"}},
                {"id": "d", "with": {"count": 2}, "kind": "fake.file"},
            ]),
        );
        assert_problem(
            &found,
            "$.steps[0].kind",
            "unknown kind `nope`; registered kinds: `fake.file`",
        );
        assert_problem(
            &found,
            "$.steps[1].with.colour",
            "no parameter `colour`; it accepts: `path`, `count`, `items`",
        );
        assert_problem(
            &found,
            "$.steps[1].with.count",
            "takes int, but got `\"3\"`",
        );
        assert_problem(
            &found,
            "$.steps[2].with.path",
            "takes string, but variable `n` is of type int",
        );
        assert_problem(
            &found,
            "$.steps[2].with.items",
            "takes list, but variable `s` is of type string",
        );
        assert_eq!(found.len(), 5, "{found:#?}");
        let found = problems(
            json!({}),
            json!([{"id": "a", "with": {"path": null}}, {"id": "b", "with": {"count": 1}}]),
        );
        assert_problem(
            &found,
            "$.steps[0].with.path",
            "takes string, but got `null`",
        );
        let mut plan = json!({"name": "t", "steps": [{"id": "a", "kind": "fake.file"}]});
        let found = check(plan.take(), &[]).unwrap_err();
        assert_problem(
            &found,
            "$.steps[0].with",
            "missing required parameter `path` (string) of kind `fake.file`",
        );
    }

    #[test]
    fn references() {
        let found = problems(
            json!({"v": {"type": "string"}}),
            json!([
                {"id": "a", "with": {"path": "${vars.v}/${foo.x}"}},
                {"id": "b", "with": {"path": "${vars.w}", "items": ["x", "${steps.zz.outputs.path}"]}},
                {"id": "c", "with": {"path": "${steps.a.outputs.size}"}, "after": ["a", "ghost"]},
                {"id": "d", "with": {"path": "${steps.d.outputs.path}"}},
            ]),
        );
        assert_problem(
            &found,
            "$.steps[0].with.path",
            "unknown reference root `foo`",
        );
        assert_problem(
            &found,
            "$.steps[1].with.path",
            "undeclared variable; declare it under `vars` or use one of: `v`",
        );
        assert_problem(
            &found,
            "$.steps[1].with.items[1]",
            "unknown step `zz`; steps: `a`, `b`, `c`, `d`",
        );
        assert_problem(
            &found,
            "$.steps[2].with.path",
            "step `a` (kind `fake.file`) has no output `size`; its outputs: `path`, `bytes`",
        );
        assert_problem(&found, "$.steps[2].after[1]", "unknown step `ghost`");
        assert_problem(
            &found,
            "$.steps[3].with.path",
            "refers to its own output `path`",
        );
        assert_eq!(found.len(), 6, "{found:#?}");
    }

    #[test]
    fn cycles_from_after_and_outputs() {
        let found = problems(
            json!({}),
            json!([
                {"id": "a", "after": ["c"]},
                {"id": "b", "with": {"path": "${steps.a.outputs.path}"}},
                {"id": "c", "after": ["b"]},
                {"id": "d", "after": ["d"]},
            ]),
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_problem(&found, "$.steps", "dependency cycle: a -> b -> c -> a");
        assert_problem(&found, "$.steps", "dependency cycle: d -> d");
    }

    #[test]
    fn conditions_timeouts_and_retries() {
        let found = problems(
            json!({"on": {"type": "bool"}}),
            json!([
                {"id": "a", "when": "vars.on &&"},
                {"id": "b", "when": "vars.nope"},
                {"id": "c", "when": "'text'"},
                {"id": "d", "timeout": "10d", "retry": {"max_attempts": 0}},
                {"id": "e", "retry": {"initial_delay": "soon"}},
            ]),
        );
        assert_problem(&found, "$.steps[0].when", "is not valid CEL");
        assert_problem(&found, "$.steps[1].when", "`vars.nope`");
        assert_problem(
            &found,
            "$.steps[2].when",
            "must give true or false, but gave a value of type string",
        );
        assert_problem(
            &found,
            "$.steps[3].timeout",
            "invalid timeout: duration `10d` has unknown unit",
        );
        assert_problem(
            &found,
            "$.steps[3].retry",
            "max_attempts must be at least 1",
        );
        assert_problem(&found, "$.steps[4].retry", "does not start with a number");
        assert_eq!(found.len(), 6, "{found:#?}");
    }

    #[test]
    fn variables() {
        let vars = json!({"bad-name": {"type": "string"}, "region": {"type": "string", "required": true},
                          "n": {"type": "int", "default": "x"}});
        let found = problems(vars, json!([{"id": "a"}]));
        assert_problem(
            &found,
            "$.vars[\"bad-name\"]",
            "variable name `bad-name` is not allowed",
        );
        assert_problem(&found, "$.vars.region", "pass `--var region=…`");
        assert_problem(
            &found,
            "$.vars.n.default",
            "invalid `default`: variable `n` must be an int",
        );
        let plan = json!({"name": "t", "vars": {"n": {"type": "int"}}, "steps": [{"id": "a", "kind": "fake.file", "with": {"path": "p"}}]});
        let found = check(plan, &[("n", "lots"), ("m", "1")]).unwrap_err();
        assert_problem(
            &found,
            "$.vars",
            "variable `m` was given but the plan does not declare it",
        );
        assert_problem(&found, "$.vars.n", "`lots` is not a whole number");
    }

    #[test]
    fn many_problems_are_reported_together_in_order() {
        let found = problems(
            json!({"r": {"type": "string", "required": true}}),
            json!([
                {"id": "a", "kind": "nope", "timeout": "x"},
                {"id": "a", "when": "vars.r =="},
            ]),
        );
        let locations: Vec<&str> = found.iter().map(|p| p.location.as_str()).collect();
        assert_eq!(
            locations,
            vec![
                "x.json: $.vars.r",
                "x.json: $.steps[0].kind",
                "x.json: $.steps[0].timeout",
                "x.json: $.steps[1].id",
                "x.json: $.steps[1].when"
            ]
        );
    }

    #[test]
    fn a_valid_plan_has_its_graph_and_skip_flags() {
        let plan = json!({"name": "t",
        "vars": {"on": {"type": "bool"}, "zones": {"type": "list", "default": ["a"]}, "n": {"type": "int"}},
        "steps": [
            {"id": "src", "kind": "fake.file", "with": {"path": "/tmp/$${x}", "items": "${vars.zones}", "count": "${vars.n}"}},
            {"id": "copy", "kind": "fake.file", "with": {"path": "${steps.src.outputs.path}.bak"}, "when": "vars.on"},
            {"id": "last", "kind": "fake.file", "with": {"path": "z"}, "after": ["copy", "src"],
             "when": "size(vars.zones) == 1 && vars.n == 4", "timeout": "5m", "retry": {"max_attempts": 2}},
        ]});
        let ok = check(plan, &[("n", "4")]).unwrap();
        assert_eq!(ok.graph.dependencies(1), &[0]);
        assert_eq!(ok.graph.dependencies(2), &[0, 1]);
        assert_eq!(ok.graph.dependents(0), &[1, 2]);
        assert_eq!(ok.graph.topological_order(), vec![0, 1, 2]);
        assert_eq!(ok.skipped_by_condition, vec![false, true, false]);
        assert_eq!(ok.vars["zones"], json!(["a"]));
        assert_eq!(ok.vars["n"], json!(4));
    }
}
