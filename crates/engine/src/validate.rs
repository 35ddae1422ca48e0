//! Plan validation: parse a plan file and report every problem in it at once, before anything
//! runs, each at a `FILE: $.json.path` location with a message saying how to fix it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use regex::Regex;
use serde_json::Value;

use crate::condition;
use crate::dag::{self, StepGraph};
use crate::kind::{KindSchema, ParamType, Registry};
use crate::plan::{parse_duration, Plan, VarType};
use crate::plan_rule::{PlannedStep, Severity};
use crate::policy::RetryPolicy;
use crate::suggest::did_you_mean;
use crate::template::{self, key_path, Ref, Segment};
use crate::vars::{resolve_vars, Resolved, VarInput};

/// One thing wrong with a plan or its variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `FILE: $.json.path` (or `FILE:LINE:COL` for a file that does not parse).
    pub location: String,
    /// What is wrong, and how to fix it where the fix lies in the plan.
    pub message: String,
    /// For a variable's value: what to change. The engine does not know whether variables came
    /// from flags, a file or a fleet, so the embedding program words it ([`Problem`]'s
    /// `Display` gives a neutral wording).
    pub fix: Option<VarFix>,
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            location: location.into(),
            message: message.into(),
            fix: None,
        }
    }
}

/// How to correct a variable's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarFix {
    /// A required variable was not given: give it.
    Give { name: String },
    /// The value given is wrong; `example` is a value of the right kind, where one is known.
    Correct {
        name: String,
        given_as: VarForm,
        example: Option<String>,
    },
}

/// How a variable's value was given: as text (converted by its declared type) or as JSON
/// (which must already have the type). See [`VarInput`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarForm {
    Text,
    Json,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        match &self.fix {
            None => Ok(()),
            Some(VarFix::Give { name }) => write!(f, "; give `{name}` a value"),
            Some(VarFix::Correct { name, example, .. }) => match example {
                Some(example) => write!(f, "; give `{name}` a value like `{example}`"),
                None => write!(f, "; correct the value of `{name}`"),
            },
        }
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
    /// What the registry's [`crate::PlanRule`]s warn of: the plan runs, the caller shows them.
    pub warnings: Vec<Problem>,
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
            fix: None,
        }]
    })?;
    if plan.steps.is_empty() {
        return Err(vec![Problem {
            location: format!("{source}: $.steps"),
            message: "the plan has no steps; add at least one to `steps`".into(),
            fix: None,
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
    use {ParamType as P, VarType as V};
    matches!(
        (param, var),
        (P::Any, _) | (P::String, V::String) | (P::Int, V::Int) | (P::Bool, V::Bool) | (P::List, V::List)
    )
}

/// What the step checks share, and the problems found so far.
struct Checker<'a> {
    plan: &'a Plan,
    source: &'a str,
    schemas: Vec<Option<KindSchema>>,
    /// The index of the first step with each well-formed id.
    first_use: HashMap<&'a str, usize>,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, location: &str, message: String) {
        let location = format!("{}: {location}", self.source);
        self.problems.push(Problem {
            location,
            message,
            fix: None,
        });
    }

    fn step_ids(&self) -> String {
        listing(self.plan.steps.iter().map(|s| s.id.as_str()), "none")
    }

    /// "did you mean" the step id nearest to the unknown `name`, if one is close.
    fn step_guess(&self, name: &str) -> String {
        did_you_mean(name, self.plan.steps.iter().map(|s| s.id.as_str()))
    }

    /// Whether step `i`'s kind takes parameter `name`, and a value of `value`'s type.
    fn param_problem(&self, i: usize, name: &str, value: &Value) -> Option<String> {
        let (schema, kind) = (self.schemas[i].as_ref()?, &self.plan.steps[i].kind);
        let Some(param) = schema.param(name) else {
            let accepted = listing(schema.params.iter().map(|p| p.name), "no parameters");
            let guess = did_you_mean(name, schema.params.iter().map(|p| p.name));
            return Some(format!(
                "kind `{kind}` has no parameter `{name}`; {guess}it accepts: {accepted}"
            ));
        };
        let ty = param.ty.as_str();
        match value.as_str().map(template::parse) {
            Some(Ok(segments)) if segments.iter().any(|s| matches!(s, Segment::Ref(_))) => {
                let [Segment::Ref(Ref::Var(var))] = segments.as_slice() else {
                    return None;
                };
                let spec = self.plan.vars.get(var).filter(|s| !var_fits(param.ty, s.ty))?;
                Some(format!(
                    "parameter `{name}` of kind `{kind}` takes {ty}, but variable `{var}` is of \
                     type {}; use a {ty} variable or a literal",
                    spec.ty.as_str()
                ))
            }
            Some(Err(_)) => None,
            _ if !param.ty.accepts(value) => Some(format!(
                "parameter `{name}` of kind `{kind}` takes {ty}, but got `{value}`"
            )),
            _ => None,
        }
    }

    /// What is wrong with one reference in step `i`; adds the step it depends on to `deps`.
    fn ref_problem(&self, i: usize, reference: Result<Ref, String>, deps: &mut Vec<usize>) -> Option<String> {
        let plan = self.plan;
        match reference {
            Err(message) => Some(message),
            Ok(Ref::Var(var)) if plan.vars.contains_key(&var) => None,
            Ok(Ref::Var(var)) => Some(format!(
                "`${{vars.{var}}}` refers to an undeclared variable; {}declare it under `vars` or \
                 use one of: {}",
                did_you_mean(&var, plan.vars.keys().map(String::as_str)),
                listing(plan.vars.keys().map(String::as_str), "none are declared")
            )),
            Ok(Ref::StepOutput { step, key }) if step == plan.steps[i].id => Some(format!(
                "step `{step}` refers to its own output `{key}`: a step cannot use its own outputs \
                 (that is a dependency cycle)"
            )),
            Ok(Ref::StepOutput { step, key }) => {
                let Some(&t) = self.first_use.get(step.as_str()) else {
                    let (guess, steps) = (self.step_guess(&step), self.step_ids());
                    return Some(format!(
                        "`${{steps.{step}.outputs.{key}}}` refers to an unknown step `{step}`; \
                         {guess}steps: {steps}"
                    ));
                };
                deps.push(t);
                let schema = self.schemas[t]
                    .as_ref()
                    .filter(|s| !s.outputs.contains(&key.as_str()))?;
                let outputs = listing(schema.outputs.iter().copied(), "none");
                let guess = did_you_mean(&key, schema.outputs.iter().copied());
                let kind = &plan.steps[t].kind;
                Some(format!(
                    "step `{step}` (kind `{kind}`) has no output `{key}`; {guess}its outputs: {outputs}"
                ))
            }
        }
    }
}

/// The parameters of `step` known before the run, with variables substituted: those that
/// reference no step output, no refused variable and nothing malformed. Also, for each
/// parameter that is exactly one variable, that variable's name.
fn known_params(
    step: &crate::plan::StepSpec,
    vars: &BTreeMap<String, Value>,
    refused: &BTreeSet<String>,
) -> (serde_json::Map<String, Value>, BTreeMap<String, String>) {
    let mut known = serde_json::Map::new();
    let mut from = BTreeMap::new();
    for (name, value) in &step.with {
        let references = template::references(value);
        let usable = references.iter().all(|(_, r)| match r {
            Ok(Ref::Var(var)) => vars.contains_key(var) && !refused.contains(var),
            _ => false,
        });
        if !usable {
            continue;
        }
        let mut lookup = |r: &Ref| match r {
            Ref::Var(var) => vars.get(var).cloned().ok_or_else(|| format!("no variable {var}")),
            Ref::StepOutput { .. } => Err("a step output".to_string()),
        };
        if let Ok(resolved) = template::resolve(value, &mut lookup) {
            known.insert(name.clone(), resolved);
        }
        if let Some(Ok(segments)) = value.as_str().map(template::parse) {
            if let [Segment::Ref(Ref::Var(var))] = segments.as_slice() {
                from.insert(name.clone(), var.clone());
            }
        }
    }
    (known, from)
}

/// Checks everything about `plan` with the given variables, reporting every problem at once.
pub fn validate(
    plan: Plan,
    source: &str,
    registry: &Registry,
    given: &BTreeMap<String, VarInput>,
) -> Result<ValidatedPlan, Vec<Problem>> {
    let mut problems = var_name_problems(&plan, source);
    // Variables whose value was refused: kinds do not check the zero value standing in for it.
    let Resolved {
        values: vars,
        problems: var_problems,
        refused,
    } = resolve_vars(&plan, given, source);
    problems.extend(var_problems);

    let (first_use, mut id_problems) = step_id_problems(&plan);
    let ids_ok = id_problems.iter().all(Option::is_none);
    let schemas = plan
        .steps
        .iter()
        .map(|s| registry.get(&s.kind).map(|k| k.schema()))
        .collect();
    let mut cx = Checker {
        plan: &plan,
        source,
        schemas,
        first_use,
        problems,
    };
    let known = KnownValues {
        registry,
        vars: &vars,
        refused: &refused,
    };
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
    let mut skipped = vec![false; plan.steps.len()];
    for i in 0..plan.steps.len() {
        if let Some(message) = id_problems[i].take() {
            cx.report(&format!("$.steps[{i}].id"), message);
        }
        skipped[i] = cx.check_step(i, &known, &mut deps[i]);
    }

    let warnings = cx.apply_rules(&known, &skipped);
    let graph = if ids_ok { cx.graph(&deps) } else { None };
    match graph {
        Some(graph) if cx.problems.is_empty() => Ok(ValidatedPlan {
            plan,
            vars,
            graph,
            skipped_by_condition: skipped,
            warnings,
        }),
        _ => Err(cx.problems),
    }
}

/// Variable names a `${vars.NAME}` reference could not name.
fn var_name_problems(plan: &Plan, source: &str) -> Vec<Problem> {
    let var_name = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("valid regex");
    (plan.vars.keys().filter(|name| !var_name.is_match(name)))
        .map(|name| Problem {
            location: format!("{source}: $.vars{}", key_path(name)),
            message: format!(
                "variable name `{name}` is not allowed: use letters, digits and `_`, not \
                 starting with a digit"
            ),
            fix: None,
        })
        .collect()
}

/// The index of the first step with each well-formed id, and what is wrong with each step's id.
fn step_id_problems(plan: &Plan) -> (HashMap<&str, usize>, Vec<Option<String>>) {
    let step_id = Regex::new(r"^[A-Za-z][A-Za-z0-9_-]*$").expect("valid regex");
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    let mut id_problems: Vec<Option<String>> = vec![None; plan.steps.len()];
    for (i, id) in plan.steps.iter().map(|s| &s.id).enumerate() {
        id_problems[i] = if id.is_empty() {
            Some("step id is empty; give every step a unique id such as `build`".into())
        } else if !step_id.is_match(id) {
            Some(format!(
                "step id `{id}` is not allowed: start with a letter, then use letters, digits, \
                 `_` or `-`"
            ))
        } else if let Some(first) = first_use.insert(id, i) {
            first_use.insert(id, first);
            Some(format!(
                "duplicate step id `{id}`: step {first} already uses it; ids must be unique"
            ))
        } else {
            None
        };
    }
    (first_use, id_problems)
}

/// What a step's checks read beyond the plan: the kinds, and the variables' values.
struct KnownValues<'a> {
    registry: &'a Registry,
    vars: &'a BTreeMap<String, Value>,
    /// Variables whose given value was refused.
    refused: &'a BTreeSet<String>,
}

impl Checker<'_> {
    /// Checks step `i` whole, adding the steps it depends on to `deps`; returns whether its
    /// `when` is false (the step is skipped).
    fn check_step(&mut self, i: usize, known: &KnownValues, deps: &mut Vec<usize>) -> bool {
        let (step, at) = (&self.plan.steps[i], format!("$.steps[{i}]"));
        if self.schemas[i].is_none() {
            let kinds = listing(known.registry.names(), "none are registered");
            let guess = did_you_mean(&step.kind, known.registry.names());
            let message = format!("unknown kind `{}`; {guess}registered kinds: {kinds}", step.kind);
            self.report(&format!("{at}.kind"), message);
        }
        self.check_params(i, &at, deps);
        self.check_after(i, &at, deps);
        let mut skipped = false;
        if let Some(expr) = &step.when {
            match condition::check(expr).and_then(|()| condition::evaluate(expr, known.vars)) {
                Ok(run) => skipped = !run,
                Err(message) => self.report(&format!("{at}.when"), message),
            }
        }
        if !skipped {
            self.check_known_params(i, &at, known);
        }
        self.check_policies(i, &at);
        skipped
    }

    /// Each parameter against the kind's schema, each reference in it, and the required ones.
    fn check_params(&mut self, i: usize, at: &str, deps: &mut Vec<usize>) {
        let step = &self.plan.steps[i];
        for (name, value) in &step.with {
            let param_at = format!("{at}.with{}", key_path(name));
            if let Some(message) = self.param_problem(i, name, value) {
                self.report(&param_at, message);
            }
            for (suffix, reference) in template::references(value) {
                if let Some(message) = self.ref_problem(i, reference, deps) {
                    self.report(&format!("{param_at}{suffix}"), message);
                }
            }
        }
        let required = self.schemas[i]
            .iter()
            .flat_map(|s| &s.params)
            .filter(|p| p.required);
        let missing: Vec<String> = (required.filter(|p| !step.with.contains_key(p.name)))
            .map(|p| (p.name, p.ty.as_str(), p.description, &step.kind))
            .map(|(p, ty, what, kind)| {
                format!("missing required parameter `{p}` ({ty}) of kind `{kind}`: {what}")
            })
            .collect();
        for message in missing {
            self.report(&format!("{at}.with"), message);
        }
    }

    /// Each `after` entry names a step; adds it to `deps`.
    fn check_after(&mut self, i: usize, at: &str, deps: &mut Vec<usize>) {
        for (j, after) in self.plan.steps[i].after.iter().enumerate() {
            match self.first_use.get(after.as_str()) {
                Some(&t) => deps.push(t),
                None => {
                    let message = format!(
                        "`after` names an unknown step `{after}`; {}steps: {}",
                        self.step_guess(after),
                        self.step_ids()
                    );
                    self.report(&format!("{at}.after[{j}]"), message);
                }
            }
        }
    }

    /// The kind's own `check` of the parameters known before the run.
    fn check_known_params(&mut self, i: usize, at: &str, known: &KnownValues) {
        let step = &self.plan.steps[i];
        let Some(kind) = known.registry.get(&step.kind) else {
            return;
        };
        let (params, from) = known_params(step, known.vars, known.refused);
        for problem in kind.check(&params) {
            let top = problem.param.split(['.', '[']).next().unwrap_or_default();
            let origin = from
                .get(top)
                .map(|var| format!(" (the value of variable `{var}`)"))
                .unwrap_or_default();
            let message = format!("{}{origin}", problem.message);
            self.report(&format!("{at}.with.{}", problem.param), message);
        }
    }

    /// The registry's rules across the steps that will run: refusals become problems, the
    /// warnings are returned.
    fn apply_rules(&mut self, known: &KnownValues, skipped: &[bool]) -> Vec<Problem> {
        if known.registry.rules().is_empty() {
            return Vec::new();
        }
        let index: HashMap<&str, usize> = (self.plan.steps.iter().enumerate())
            .map(|(i, step)| (step.id.as_str(), i))
            .collect();
        let steps: Vec<PlannedStep> = (self.plan.steps.iter().zip(skipped))
            .filter(|(_, skipped)| !**skipped)
            .map(|(step, _)| {
                let (params, _) = known_params(step, known.vars, known.refused);
                PlannedStep::new(&step.id, &step.kind, params, &step.with)
            })
            .collect();
        let mut warnings = Vec::new();
        for finding in known.registry.rules().iter().flat_map(|rule| rule.check(&steps)) {
            let at = match index.get(finding.step.as_str()) {
                Some(i) => format!("$.steps[{i}]"),
                None => format!("$.steps (step `{}`)", finding.step),
            };
            let at = match &finding.param {
                Some(param) => format!("{at}.with{}", key_path(param)),
                None => at,
            };
            match finding.severity {
                Severity::Refuse => self.report(&at, finding.message),
                Severity::Warn => {
                    warnings.push(Problem::new(format!("{}: {at}", self.source), finding.message))
                }
            }
        }
        warnings
    }

    /// The step's `timeout` and `retry`.
    fn check_policies(&mut self, i: usize, at: &str) {
        let step = &self.plan.steps[i];
        if let Some(Err(message)) = step.timeout.as_deref().map(parse_duration) {
            self.report(&format!("{at}.timeout"), format!("invalid timeout: {message}"));
        }
        let retry = step
            .retry
            .as_ref()
            .map(|r| RetryPolicy::default().with_overrides(r));
        if let Some(Err(message)) = retry {
            self.report(&format!("{at}.retry"), format!("invalid retry: {message}"));
        }
    }

    /// The step graph, or `None` with every cycle in it reported.
    fn graph(&mut self, deps: &[Vec<usize>]) -> Option<StepGraph> {
        let ids: Vec<String> = self.plan.steps.iter().map(|s| s.id.clone()).collect();
        match dag::build(&ids, deps) {
            Ok(graph) => Some(graph),
            Err(cycles) => {
                for cycle in cycles {
                    let path = format!("{} -> {}", cycle.join(" -> "), cycle[0]);
                    let message = format!(
                        "dependency cycle: {path} (each step waits for the one before it); remove \
                         an `after` entry or an output reference on it"
                    );
                    self.report("$.steps", message);
                }
                None
            }
        }
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
        fn check(&self, params: &serde_json::Map<String, Value>) -> Vec<crate::kind::ParamProblem> {
            let forbidden = params.get("path").is_some_and(|p| p == "forbidden");
            forbidden
                .then(|| crate::kind::ParamProblem::new("path", "`forbidden` is not a path; name a file"))
                .into_iter()
                .collect()
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

    /// Asserts that `found` is exactly one problem per `"LOCATION: PHRASE"`, in that order.
    fn expect(found: &[Problem], wanted: &[&str]) {
        let ok = found.len() == wanted.len()
            && found.iter().zip(wanted).all(|(p, want)| {
                let (location, phrase) = want.split_once(": ").unwrap();
                p.location == format!("x.json: {location}") && p.message.contains(phrase)
            });
        assert!(ok, "wanted {wanted:#?}\nfound {found:#?}");
    }

    #[test]
    fn parse_errors_carry_line_and_column() {
        let text = "{\n  \"name\": \"a\",\n  \"steps\": [], \"foo\": 1\n}";
        for (text, want) in [
            (
                text,
                "x.json:3:20: the plan file does not have the shape of a plan: unknown field `foo`, expected",
            ),
            (
                "[1, 2]",
                "x.json:1:2: the plan file must be a JSON object with `name` and `steps`",
            ),
            ("{\"name\": ", "x.json:1:9: the plan file ends too early"),
            (
                "{\"name\": \"a\", \"steps\": []}",
                "x.json: $.steps: the plan has no steps; add at least one",
            ),
        ] {
            let error = parse_plan(text, "x.json").unwrap_err()[0].to_string();
            assert!(error.starts_with(want), "{error}");
        }
    }

    #[test]
    fn step_ids() {
        let steps = json!([{"id": "a"}, {"id": ""}, {"id": "9x"}, {"id": "a"}]);
        expect(
            &problems(json!({}), steps),
            &[
                "$.steps[1].id: step id is empty",
                "$.steps[2].id: `9x` is not allowed",
                "$.steps[3].id: duplicate step id `a`: step 0 already uses it",
            ],
        );
    }

    #[test]
    fn kinds_and_parameters() {
        let vars = json!({"n": {"type": "int"}, "s": {"type": "string"}, "l": {"type": "list"}});
        let steps = json!([
            {"id": "a", "kind": "nope"},
            {"id": "b", "with": {"colour": 1, "count": "three", "items": "${vars.l}"}},
            {"id": "c", "with": {"path": "${vars.n}", "count": "${vars.n}", "items": "${vars.s}"}},
            {"id": "d", "with": {"count": 2, "path": null}},
        ]);
        expect(
            &problems(vars, steps),
            &[
                "$.steps[0].kind: unknown kind `nope`; registered kinds: `fake.file`",
                "$.steps[1].with.colour: no parameter `colour`; it accepts: `path`, `count`, `items`",
                "$.steps[1].with.count: takes int, but got `\"three\"`",
                "$.steps[2].with.items: takes list, but variable `s` is of type string",
                "$.steps[2].with.path: takes string, but variable `n` is of type int",
                "$.steps[3].with.path: takes string, but got `null`",
            ],
        );
        let plan = json!({"name": "t", "steps": [{"id": "a", "kind": "fake.file"}]});
        expect(&check(plan, &[]).unwrap_err(), &[
            "$.steps[0].with: missing required parameter `path` (string) of kind `fake.file`: where to write",
        ]);
    }

    #[test]
    fn references() {
        let steps = json!([
            {"id": "a", "with": {"path": "${vars.v}/${foo.x}"}},
            {"id": "b", "with": {"path": "${vars.w}", "items": ["x", "${steps.zz.outputs.path}"]}},
            {"id": "c", "with": {"path": "${steps.a.outputs.size}"}, "after": ["a", "ghost"]},
            {"id": "d", "with": {"path": "${steps.d.outputs.path}"}},
        ]);
        expect(&problems(json!({"v": {"type": "string"}}), steps), &[
            "$.steps[0].with.path: unknown reference root `foo`",
            "$.steps[1].with.items[1]: unknown step `zz`; steps: `a`, `b`, `c`, `d`",
            "$.steps[1].with.path: undeclared variable; declare it under `vars` or use one of: `v`",
            "$.steps[2].with.path: step `a` (kind `fake.file`) has no output `size`; its outputs: `path`, `bytes`",
            "$.steps[2].after[1]: `after` names an unknown step `ghost`",
            "$.steps[3].with.path: step `d` refers to its own output `path`",
        ]);
    }

    #[test]
    fn a_mistyped_name_is_answered_with_the_one_it_most_likely_meant() {
        let steps = json!([
            {"id": "gateway_role", "kind": "fake.fiel"},
            {"id": "grant", "after": ["gatway_role", "ghost"],
             "with": {"path": "${steps.gateway_rloe.outputs.path}", "itmes": ["${vars.regoin}"]}},
            {"id": "deploy", "with": {"path": "${steps.grant.outputs.paht}"}},
        ]);
        expect(
            &problems(json!({"region": {"type": "string"}}), steps),
            &[
                "$.steps[0].kind: unknown kind `fake.fiel`; did you mean `fake.file`? registered kinds",
                "$.steps[1].with.itmes: no parameter `itmes`; did you mean `items`? it accepts",
                "$.steps[1].with.itmes[0]: undeclared variable; did you mean `region`? declare it",
                "$.steps[1].with.path: unknown step `gateway_rloe`; did you mean `gateway_role`? steps:",
                "$.steps[1].after[0]: unknown step `gatway_role`; did you mean `gateway_role`? steps:",
                "$.steps[1].after[1]: unknown step `ghost`; steps:",
                "$.steps[2].with.path: has no output `paht`; did you mean `path`? its outputs:",
            ],
        );
    }

    #[test]
    fn cycles_from_after_and_outputs() {
        let steps = json!([
            {"id": "a", "after": ["c"]},
            {"id": "b", "with": {"path": "${steps.a.outputs.path}"}},
            {"id": "c", "after": ["b"]},
            {"id": "d", "after": ["d"]},
        ]);
        expect(
            &problems(json!({}), steps),
            &[
                "$.steps: dependency cycle: a -> b -> c -> a (each step waits",
                "$.steps: dependency cycle: d -> d",
            ],
        );
    }

    #[test]
    fn conditions_timeouts_and_retries() {
        let steps = json!([
            {"id": "a", "when": "vars.on &&"},
            {"id": "b", "when": "vars.nope"},
            {"id": "c", "when": "'text'"},
            {"id": "d", "timeout": "10d", "retry": {"max_attempts": 0}},
            {"id": "e", "retry": {"initial_delay": "soon"}},
        ]);
        expect(
            &problems(json!({"on": {"type": "bool"}}), steps),
            &[
                "$.steps[0].when: is not valid CEL",
                "$.steps[1].when: uses `vars.nope`, but there is no variable `nope`",
                "$.steps[2].when: must give true or false, but gave a value of type string",
                "$.steps[3].timeout: invalid timeout: duration `10d` has unknown unit",
                "$.steps[3].retry: invalid retry: retry.max_attempts must be at least 1",
                "$.steps[4].retry: invalid retry: retry.initial_delay: duration `soon` does not start",
            ],
        );
    }

    #[test]
    fn variables() {
        let vars = json!({"bad-name": {"type": "string"}, "n": {"type": "int", "default": "x"},
                          "region": {"type": "string", "required": true}});
        expect(
            &problems(vars.clone(), json!([{"id": "a"}])),
            &[
                "$.vars[\"bad-name\"]: variable name `bad-name` is not allowed",
                "$.vars.n.default: invalid `default`: variable `n` must be an int",
                "$.vars.region: required variable `region` (string) was not given",
            ],
        );
        let missing = problems(vars, json!([{"id": "a"}]));
        // The engine says what to change; the embedding program words where (flags, a file).
        assert_eq!(
            missing[2].fix,
            Some(VarFix::Give {
                name: "region".into()
            })
        );
        assert!(
            !missing.iter().any(|p| p.to_string().contains("--var")),
            "{missing:?}"
        );
        let step = json!({"id": "a", "kind": "fake.file", "with": {"path": "p"}});
        let plan = json!({"name": "t", "vars": {"n": {"type": "int"}}, "steps": [step]});
        expect(
            &check(plan, &[("n", "lots"), ("m", "1")]).unwrap_err(),
            &[
                "$.vars: variable `m` was given but the plan does not declare it; declared",
                "$.vars.n: `lots` is not a whole number",
            ],
        );
    }

    #[test]
    fn kinds_check_the_values_known_before_the_run() {
        let vars = json!({"p": {"type": "string", "default": "forbidden"},
                          "on": {"type": "bool", "default": false}});
        let steps = json!([
            {"id": "a", "with": {"path": "${vars.p}"}},
            {"id": "b", "with": {"path": "${steps.a.outputs.path}"}},
            {"id": "c", "with": {"path": "forbidden"}, "when": "vars.on"},
            {"id": "d", "with": {"path": "forbidden"}},
        ]);
        expect(
            &problems(vars, steps),
            &[
                "$.steps[0].with.path: `forbidden` is not a path; name a file (the value of variable `p`)",
                "$.steps[3].with.path: `forbidden` is not a path",
            ],
        );
    }

    #[test]
    fn a_variable_declared_as_a_duration_refuses_other_text() {
        let step = json!({"id": "a", "kind": "fake.file", "with": {"path": "p"}});
        let vars = json!({"wait": {"type": "string", "format": "duration", "default": "5m"},
                          "uri": {"type": "string", "format": "uri", "default": ""}});
        let plan = json!({"name": "t", "vars": vars, "steps": [step]});
        expect(
            &check(plan.clone(), &[("wait", "forever"), ("uri", "bucket/object")]).unwrap_err(),
            &[
                "$.vars.uri: variable `uri` must be a uri (`bucket/object` is not an absolute URI",
                "$.vars.wait: variable `wait` must be a duration (duration `forever` does not start with a number",
            ],
        );
        let ok = check(plan, &[("wait", "90s")]).unwrap();
        assert_eq!([&ok.vars["wait"], &ok.vars["uri"]], [&json!("90s"), &json!("")]);
    }

    #[test]
    fn many_problems_are_reported_together_in_plan_order() {
        let steps = json!([
            {"id": "a", "kind": "nope", "timeout": "x", "after": ["b"]},
            {"id": "a", "when": "vars.r =="},
        ]);
        expect(
            &problems(json!({"r": {"type": "string", "required": true}}), steps),
            &[
                "$.vars.r: required variable `r`",
                "$.steps[0].kind: unknown kind",
                "$.steps[0].after[0]: unknown step `b`",
                "$.steps[0].timeout: invalid timeout",
                "$.steps[1].id: duplicate step id",
                "$.steps[1].when: not valid CEL",
            ],
        );
    }

    #[test]
    fn a_valid_plan_has_its_graph_and_skip_flags() {
        let vars = json!({"on": {"type": "bool"}, "zones": {"type": "list", "default": ["a"]},
                          "n": {"type": "int"}});
        let steps = json!([
            {"id": "src", "kind": "fake.file",
             "with": {"path": "/tmp/$${x}", "items": "${vars.zones}", "count": "${vars.n}"}},
            {"id": "copy", "kind": "fake.file",
             "with": {"path": "${steps.src.outputs.path}.bak"}, "when": "vars.on"},
            {"id": "last", "kind": "fake.file", "with": {"path": "z"}, "after": ["copy", "src"],
             "when": "size(vars.zones) == 1 && vars.n == 4", "timeout": "5m",
             "retry": {"max_attempts": 2}},
        ]);
        let plan = json!({"name": "t", "vars": vars, "steps": steps});
        let ok = check(plan, &[("n", "4")]).unwrap();
        let graph = &ok.graph;
        assert_eq!(
            [graph.dependencies(1), graph.dependencies(2)],
            [&[0][..], &[0, 1]]
        );
        assert_eq!(graph.dependents(0), &[1, 2]);
        assert_eq!(graph.topological_order(), vec![0, 1, 2]);
        assert_eq!(ok.skipped_by_condition, vec![false, true, false]);
        assert_eq!([&ok.vars["zones"], &ok.vars["n"]], [&json!(["a"]), &json!(4)]);
    }
}

#[cfg(test)]
mod rule_tests {
    use serde_json::json;

    use super::*;
    use crate::builtin;
    use crate::plan_rule::{Finding, PlanRule};

    /// Refuses a second `core.noop` step whose `with.value` reads the same step's outputs, and
    /// warns of any step whose `with.value` is known as `risky`.
    struct OneUserPerTarget;

    impl PlanRule for OneUserPerTarget {
        fn check(&self, steps: &[PlannedStep<'_>]) -> Vec<Finding> {
            let mut seen = BTreeSet::new();
            let mut findings = Vec::new();
            for step in steps {
                for target in step.reads_from("value") {
                    if !seen.insert(target.clone()) {
                        findings.push(Finding::refuse(
                            step.id,
                            Some("value"),
                            format!("`{target}` has a user already"),
                        ));
                    }
                }
                if step.text("value") == Some("risky") {
                    findings.push(Finding::warn(step.id, None, "risky"));
                }
            }
            findings
        }
    }

    fn check(steps: Value, given: &[(&str, &str)]) -> Result<ValidatedPlan, Vec<Problem>> {
        let mut registry = Registry::new();
        builtin::register(&mut registry);
        registry.add_rule(OneUserPerTarget);
        let vars = json!({ "second": { "type": "bool", "default": true }, "note": { "type": "string", "default": "" } });
        let plan = json!({ "name": "t", "vars": vars, "steps": steps }).to_string();
        let given = (given.iter())
            .map(|(k, v)| (k.to_string(), VarInput::Text(v.to_string())))
            .collect();
        validate(parse_plan(&plan, "x.json")?, "x.json", &registry, &given)
    }

    fn steps() -> Value {
        json!([
            { "id": "a", "kind": "core.noop" },
            { "id": "b", "kind": "core.noop", "with": { "value": "${steps.a.outputs.value}" } },
            { "id": "c", "kind": "core.noop", "when": "vars.second", "with": { "value": "${steps.a.outputs.value}" } },
            { "id": "d", "kind": "core.noop", "with": { "value": "${vars.note}" } },
        ])
    }

    #[test]
    fn a_rule_refuses_across_steps_naming_the_step_and_parameter() {
        let Err(problems) = check(steps(), &[]) else {
            panic!("the plan was not refused");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].location, "x.json: $.steps[2].with.value");
        assert_eq!(problems[0].message, "`a` has a user already");
    }

    #[test]
    fn a_step_skipped_by_its_condition_is_not_shown_to_rules() {
        let plan = check(steps(), &[("second", "false")]).expect("valid");
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn a_warning_lets_the_plan_run_and_is_kept() {
        let plan = check(steps(), &[("second", "false"), ("note", "risky")]).expect("valid");
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(plan.warnings[0].location, "x.json: $.steps[3]");
        assert_eq!(plan.warnings[0].message, "risky");
    }
}
