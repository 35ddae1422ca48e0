//! A step's `when`: a CEL expression over the map `vars` that decides whether the step runs.
//!
//! Only `vars` is in scope (e.g. `vars.ingress && vars.region != ''`). The expression must give a
//! bool; referring to a variable that does not exist is an error, never a silent false.

use std::collections::{BTreeMap, HashMap};

use cel::{Context, ExecutionError, Program};
use serde_json::Value;

fn compile(expr: &str) -> Result<Program, String> {
    Program::compile(expr).map_err(|errors| {
        let details: Vec<String> = errors
            .errors
            .iter()
            .map(|e| format!("at {}:{}: {}", e.pos.0, e.pos.1, e.msg))
            .collect();
        format!(
            "`when` expression `{expr}` is not valid CEL ({}); write e.g. `vars.enabled && \
             vars.region != ''`",
            details.join("; ")
        )
    })
}

/// Checks that `expr` compiles, without evaluating it.
pub fn check(expr: &str) -> Result<(), String> {
    compile(expr).map(|_| ())
}

/// Evaluates `expr` with `vars` bound, requiring a bool result.
pub fn evaluate(expr: &str, vars: &BTreeMap<String, Value>) -> Result<bool, String> {
    let program = compile(expr)?;
    let mut context = Context::default();
    let map: HashMap<String, cel::Value> = vars
        .iter()
        .map(|(name, value)| (name.clone(), to_cel(value)))
        .collect();
    context.add_variable_from_value("vars", map);
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "`when` expression `{expr}` must give true or false, but gave a value of type {} ({other:?}); \
             compare it, e.g. `vars.x == 'yes'`",
            other.type_of()
        )),
        Err(ExecutionError::NoSuchKey(key)) if !vars.contains_key(key.as_str()) => Err(format!(
            "`when` expression `{expr}` uses `vars.{key}`, but there is no variable `{key}`; \
             declared variables: {}",
            names(vars)
        )),
        Err(ExecutionError::UndeclaredReference(name)) => Err(format!(
            "`when` expression `{expr}` uses `{name}`, but only `vars` is in scope; write \
             `vars.{name}` for a variable"
        )),
        Err(error) => Err(format!("`when` expression `{expr}` failed: {error}")),
    }
}

fn names(vars: &BTreeMap<String, Value>) -> String {
    if vars.is_empty() {
        "none".to_string()
    } else {
        vars.keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// JSON to CEL, keeping every integer that fits an `int` an `int` (so `vars.n > 3` works).
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::from(s.clone()),
        Value::Array(items) => cel::Value::from(items.iter().map(to_cel).collect::<Vec<_>>()),
        Value::Object(map) => cel::Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("ingress".to_string(), json!(true)),
            ("region".to_string(), json!("eu-west")),
            ("count".to_string(), json!(5)),
            ("zones".to_string(), json!(["a", "b"])),
        ])
    }

    #[test]
    fn check_reports_parser_errors() {
        assert!(check("vars.ingress && vars.region != ''").is_ok());
        let e = check("vars.ingress &&").unwrap_err();
        assert!(e.contains("not valid CEL") && e.contains("at 1:"), "{e}");
    }

    #[test]
    fn evaluates_over_typed_vars() {
        let v = vars();
        assert!(evaluate("vars.ingress && vars.region != ''", &v).unwrap());
        assert!(evaluate("vars.count > 3", &v).unwrap());
        assert!(!evaluate("vars.count < 3", &v).unwrap());
        assert!(evaluate("'b' in vars.zones && size(vars.zones) == 2", &v).unwrap());
        assert!(!evaluate("vars.region.startsWith('us')", &v).unwrap());
    }

    #[test]
    fn non_bool_and_unknown_names_are_errors() {
        let v = vars();
        let e = evaluate("vars.count + 1", &v).unwrap_err();
        assert!(
            e.contains("must give true or false") && e.contains("type int"),
            "{e}"
        );
        let e = evaluate("vars.nope == 'x'", &v).unwrap_err();
        assert!(e.contains("`vars.nope`") && e.contains("`region`"), "{e}");
        let e = evaluate("region == 'x'", &v).unwrap_err();
        assert!(e.contains("`region`") && e.contains("vars.region"), "{e}");
        assert!(evaluate("vars.count == 'x' ||", &v)
            .unwrap_err()
            .contains("not valid CEL"));
    }
}
