//! Turning user input (`--var k=v`, `--vars-file`) into typed plan variable values.
//!
//! Every declared variable gets a value: the given one, else its `default`, else its type's zero
//! value (`""`, `[]`, `false`, `0`). Values are JSON: strings, integers, bools, and lists of
//! strings. A `pattern` must match the whole value (each item, for lists; ints and bools are not
//! matched). Problems are collected, never returned early; a variable with a problem still gets
//! its zero value so later checks see every variable.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::Value;

use crate::plan::{Plan, VarSpec, VarType};
use crate::suggest::did_you_mean;
use crate::template::key_path;
use crate::validate::{Problem, VarFix, VarForm};

/// A variable value as the user gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum VarInput {
    /// From `--var k=v`: converted according to the declared type.
    Text(String),
    /// From `--vars-file`: must already have the declared type.
    Json(Value),
}

/// What [`resolve_vars`] found.
#[derive(Debug)]
pub struct Resolved {
    /// The value of every declared variable (a refused one has its type's zero value).
    pub values: BTreeMap<String, Value>,
    /// Every problem found on the way.
    pub problems: Vec<Problem>,
    /// The declared variables with a problem of their own: their value stands in for nothing.
    pub refused: BTreeSet<String>,
}

/// The value of every declared variable, and every problem found on the way.
pub fn resolve_vars(plan: &Plan, given: &BTreeMap<String, VarInput>, source: &str) -> Resolved {
    let mut values = BTreeMap::new();
    let mut problems = undeclared_problems(plan, given, source);
    let mut refused = BTreeSet::new();
    let at = |name: &str, suffix: &str| format!("{source}: $.vars{}{suffix}", key_path(name));
    for (name, spec) in &plan.vars {
        let known_problems = problems.len();
        let (pattern, default) = pattern_and_default(name, spec, &mut problems, &at);
        let value = match given.get(name) {
            Some(input) => {
                let (converted, given_as) = match input {
                    VarInput::Text(text) => (convert_text(name, spec.ty, text), VarForm::Text),
                    VarInput::Json(json) => (convert_json(name, spec.ty, json), VarForm::Json),
                };
                // A value of the declared type, for the fix: text can always show one.
                let typed_example = (given_as == VarForm::Text).then(|| example(spec.ty).to_string());
                let checked = converted
                    .map_err(|message| (message, typed_example))
                    .and_then(|v| check_pattern(name, spec, pattern.as_ref(), v));
                match checked {
                    Ok(value) => Some(value),
                    Err((message, example)) => {
                        // A text value refused by its pattern has no example to offer, and its
                        // message already says to match the pattern.
                        let fix = (example.is_some() || given_as == VarForm::Json).then(|| VarFix::Correct {
                            name: name.clone(),
                            given_as,
                            example,
                        });
                        problems.push(Problem {
                            location: at(name, ""),
                            message,
                            fix,
                        });
                        None
                    }
                }
            }
            None if spec.required => {
                problems.push(Problem {
                    location: at(name, ""),
                    message: format!("required variable `{name}` ({}) was not given", spec.ty.as_str()),
                    fix: Some(VarFix::Give { name: name.clone() }),
                });
                None
            }
            None => default,
        };
        values.insert(name.clone(), value.unwrap_or_else(|| zero(spec.ty)));
        if problems.len() > known_problems {
            refused.insert(name.clone());
        }
    }
    Resolved {
        values,
        problems,
        refused,
    }
}

/// A problem for each given variable the plan does not declare.
fn undeclared_problems(plan: &Plan, given: &BTreeMap<String, VarInput>, source: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for name in given.keys().filter(|name| !plan.vars.contains_key(*name)) {
        let declared = if plan.vars.is_empty() {
            "the plan declares no variables".to_string()
        } else {
            let names: Vec<String> = plan.vars.keys().map(|n| format!("`{n}`")).collect();
            format!("declared variables: {}", names.join(", "))
        };
        let guess = did_you_mean(name, plan.vars.keys().map(String::as_str));
        problems.push(Problem {
            location: format!("{source}: $.vars"),
            message: format!(
                "variable `{name}` was given but the plan does not declare it; {guess}{declared}"
            ),
            fix: None,
        });
    }
    problems
}

/// Variable `name`'s compiled pattern and checked default, each `None` when absent or refused
/// (the refusal added to `problems`; `at` locates it).
fn pattern_and_default(
    name: &str,
    spec: &VarSpec,
    problems: &mut Vec<Problem>,
    at: &dyn Fn(&str, &str) -> String,
) -> (Option<Regex>, Option<Value>) {
    let pattern = match spec.pattern.as_deref().map(|p| Regex::new(&format!("^(?:{p})$"))) {
        Some(Err(error)) => {
            problems.push(Problem {
                location: at(name, ".pattern"),
                message: format!("pattern of variable `{name}` is not a valid regular expression: {error}"),
                fix: None,
            });
            None
        }
        Some(Ok(regex)) => Some(regex),
        None => None,
    };
    let default = spec.default.as_ref().and_then(|value| {
        let checked = convert_json(name, spec.ty, value)
            .and_then(|v| check_pattern(name, spec, pattern.as_ref(), v).map_err(|(m, _)| m));
        checked
            .map_err(|message| {
                problems.push(Problem {
                    location: at(name, ".default"),
                    message: format!("invalid `default`: {message}"),
                    fix: None,
                })
            })
            .ok()
    });
    (pattern, default)
}

/// The zero value of a type.
pub fn zero(ty: VarType) -> Value {
    match ty {
        VarType::String => Value::String(String::new()),
        VarType::List => Value::Array(Vec::new()),
        VarType::Bool => Value::Bool(false),
        VarType::Int => Value::from(0),
    }
}

fn example(ty: VarType) -> &'static str {
    match ty {
        VarType::String => "text",
        VarType::List => "a,b,c",
        VarType::Bool => "true",
        VarType::Int => "3",
    }
}

fn convert_text(name: &str, ty: VarType, text: &str) -> Result<Value, String> {
    match ty {
        VarType::String => Ok(Value::String(text.to_string())),
        VarType::Int => text
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("variable `{name}` must be an int, but `{text}` is not a whole number")),
        VarType::Bool => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "variable `{name}` must be a bool, but `{text}` is not `true` or `false`"
            )),
        },
        VarType::List if text.trim_start().starts_with('[') => match serde_json::from_str::<Value>(text) {
            Ok(json) => convert_json(name, ty, &json),
            Err(error) => Err(format!(
                "variable `{name}` must be a list, but `{text}` is not a JSON array ({error})"
            )),
        },
        VarType::List if text.trim().is_empty() => Ok(Value::Array(Vec::new())),
        VarType::List => {
            let items: Vec<&str> = text.split(',').map(str::trim).collect();
            if items.iter().any(|item| item.is_empty()) {
                return Err(format!(
                    "list variable `{name}` has an empty item in `{text}`; remove the extra comma"
                ));
            }
            Ok(Value::Array(
                items.into_iter().map(|s| Value::String(s.to_string())).collect(),
            ))
        }
    }
}

fn convert_json(name: &str, ty: VarType, value: &Value) -> Result<Value, String> {
    let ok =
        match (ty, value) {
            (VarType::String, Value::String(_)) | (VarType::Bool, Value::Bool(_)) => true,
            (VarType::Int, Value::Number(n)) => n.is_i64(),
            (VarType::Int, Value::String(s)) => {
                return s.trim().parse::<i64>().map(Value::from).map_err(|_| {
                    format!("variable `{name}` must be an int, but `{s}` is not a whole number")
                })
            }
            (VarType::List, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        };
    if ok {
        return Ok(value.clone());
    }
    let expected = match ty {
        VarType::List => "a list of strings",
        VarType::Int => "an int",
        VarType::Bool => "a bool",
        VarType::String => "a string",
    };
    Err(format!("variable `{name}` must be {expected}, but got `{value}`"))
}

/// The strings of a value: itself, or a list's items.
fn texts(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// Checks the declared `format` (each non-empty string), then the `pattern`.
/// A refusal names the problem, with a value of the declared format as an example where the
/// format has one.
fn check_pattern(
    name: &str,
    spec: &VarSpec,
    pattern: Option<&Regex>,
    value: Value,
) -> Result<Value, (String, Option<String>)> {
    if let Some(format) = spec.format {
        let bad = texts(&value)
            .into_iter()
            .filter(|text| !text.is_empty())
            .find_map(|text| format.problem(text));
        if let Some(problem) = bad {
            return Err((
                format!("variable `{name}` must be a {} ({problem})", format.as_str()),
                Some(format.example().to_string()),
            ));
        }
    }
    let (Some(regex), Some(written)) = (pattern, spec.pattern.as_deref()) else {
        return Ok(value);
    };
    let texts = texts(&value);
    match texts.into_iter().find(|text| !regex.is_match(text)) {
        Some(text) => Err((
            format!(
                "variable `{name}` value `{text}` does not match its pattern `{written}` (the whole \
                 value{} must match); use a value that matches it",
                if spec.ty == VarType::List {
                    " of each item"
                } else {
                    ""
                }
            ),
            None,
        )),
        None => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(vars: Value) -> Plan {
        serde_json::from_value(json!({"name": "p", "vars": vars, "steps": []})).unwrap()
    }

    fn run(vars: Value, given: &[(&str, VarInput)]) -> (BTreeMap<String, Value>, Vec<Problem>) {
        let given = given.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let resolved = resolve_vars(&plan(vars), &given, "p.json");
        (resolved.values, resolved.problems)
    }

    fn text(s: &str) -> VarInput {
        VarInput::Text(s.into())
    }

    #[test]
    fn text_inputs_convert_by_type() {
        let vars = json!({"s": {"type": "string"}, "n": {"type": "int"}, "b": {"type": "bool"},
                          "l": {"type": "list"}, "j": {"type": "list"}, "e": {"type": "list"}});
        let (values, problems) = run(
            vars,
            &[
                ("s", text(" x ")),
                ("n", text("-42")),
                ("b", text("true")),
                ("l", text(" a, b ,c")),
                ("j", text(r#"["x", "y"]"#)),
                ("e", text("")),
            ],
        );
        assert_eq!(problems, vec![]);
        assert_eq!(
            Value::from(serde_json::Map::from_iter(values)),
            json!({"s": " x ", "n": -42, "b": true, "l": ["a", "b", "c"], "j": ["x", "y"], "e": []})
        );
    }

    #[test]
    fn a_mistyped_variable_is_answered_with_the_declared_name_it_most_likely_meant() {
        let vars =
            json!({"project": {"type": "string"}, "region": {"type": "string"}, "iap": {"type": "bool"}});
        let given = [("projct", text("p")), ("zone", text("z")), ("ipa", text("true"))];
        let (_, problems) = run(vars.clone(), &given);
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            messages[0].contains("`ipa` was given") && messages[0].contains("did you mean `iap`?"),
            "a swap of two letters is one edit, even in a short name: {messages:?}"
        );
        assert!(
            messages[1].contains("`projct` was given") && messages[1].contains("did you mean `project`?"),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("`zone` was given") && !messages[2].contains("did you mean"),
            "nothing close to `zone`: {messages:?}"
        );
    }

    #[test]
    fn bad_text_names_var_value_and_fix() {
        let vars = json!({"n": {"type": "int"}, "b": {"type": "bool"}, "l": {"type": "list"}});
        let (values, problems) = run(
            vars,
            &[("n", text("ten")), ("b", text("yes")), ("l", text("a,,b"))],
        );
        assert_eq!(values["n"], json!(0));
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(messages[0].starts_with("p.json: $.vars.b: ") && messages[0].contains("`yes`"));
        assert!(messages[1].contains("empty item") && messages[1].contains("`a,b,c`"));
        assert!(messages[2].contains("`ten` is not a whole number") && messages[2].contains("`3`"));
        assert_eq!(
            problems[2].fix,
            Some(VarFix::Correct {
                name: "n".into(),
                given_as: VarForm::Text,
                example: Some("3".into())
            })
        );
        assert!(
            !messages.iter().any(|m| m.contains("--var")),
            "no CLI flag: {messages:?}"
        );
    }

    #[test]
    fn json_inputs_must_have_the_type() {
        let vars = json!({"n": {"type": "int"}, "m": {"type": "int"}, "l": {"type": "list"}, "s": {"type": "string"}});
        let given = [
            ("n", VarInput::Json(json!("12"))),
            ("m", VarInput::Json(json!(7))),
            ("l", VarInput::Json(json!(["a", 1]))),
            ("s", VarInput::Json(json!(5))),
        ];
        let (values, problems) = run(vars, &given);
        assert_eq!((&values["n"], &values["m"]), (&json!(12), &json!(7)));
        assert_eq!(problems.len(), 2);
        assert!(problems[0].message.contains("a list of strings"));
        assert_eq!(
            problems[0].fix,
            Some(VarFix::Correct {
                name: "l".into(),
                given_as: VarForm::Json,
                example: None
            })
        );
        assert!(problems[1].message.contains("must be a string, but got `5`"));
    }

    #[test]
    fn missing_undeclared_defaults_and_zero_values() {
        let vars = json!({"r": {"type": "string", "required": true}, "d": {"type": "int", "default": 5},
                          "z": {"type": "list"}, "bd": {"type": "bool", "default": "no"}});
        let (values, problems) = run(vars, &[("extra", text("1"))]);
        assert_eq!(
            (&values["d"], &values["z"], &values["bd"], &values["r"]),
            (&json!(5), &json!([]), &json!(false), &json!(""))
        );
        let found: Vec<(&str, &str)> = problems
            .iter()
            .map(|p| (p.location.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(found[0].0, "p.json: $.vars");
        assert!(found[0].1.contains("`extra`") && found[0].1.contains("`bd`, `d`, `r`, `z`"));
        assert_eq!(found[1].0, "p.json: $.vars.bd.default");
        assert_eq!(found[2].0, "p.json: $.vars.r");
        assert!(found[2].1.contains("`r` (string) was not given"));
        assert_eq!(problems[2].fix, Some(VarFix::Give { name: "r".into() }));
    }

    #[test]
    fn patterns_match_whole_values_and_items() {
        let vars = json!({"region": {"type": "string", "pattern": "[a-z]+-[a-z]+"},
                          "zones": {"type": "list", "pattern": "[a-c]", "default": ["a", "bb"]},
                          "bad": {"type": "string", "pattern": "("}});
        let (values, problems) = run(vars.clone(), &[("region", text("eu-west"))]);
        assert_eq!(values["region"], json!("eu-west"));
        assert_eq!(problems[0].location, "p.json: $.vars.bad.pattern");
        assert_eq!(problems[1].location, "p.json: $.vars.zones.default");
        assert!(problems[1]
            .message
            .contains("`bb` does not match its pattern `[a-c]`"));
        let (_, problems) = run(vars, &[("region", text("eu-west-1")), ("zones", text("a,d"))]);
        assert!(problems[1].message.contains("`eu-west-1` does not match"));
        assert!(problems[3].message.contains("`d` does not match") && problems.len() == 4);
    }
}
