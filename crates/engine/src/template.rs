//! `${...}` references inside the JSON strings of a step's `with`.
//!
//! Two references exist: `${vars.NAME}` (a plan variable) and `${steps.ID.outputs.KEY}` (an
//! output of an earlier step). `$${` writes a literal `${`. A string that is exactly one
//! reference resolves to the referenced value with its own JSON type; a reference inside a longer
//! string is spliced in as text.

use serde_json::Value;

/// What a `${...}` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `${vars.NAME}`
    Var(String),
    /// `${steps.ID.outputs.KEY}`
    StepOutput { step: String, key: String },
}

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Ref(Ref),
}

const FORMS: &str = "write `${vars.NAME}` for a variable or `${steps.ID.outputs.KEY}` for a step \
                     output (or `$${` for a literal `${`)";

/// Splits `text` into literal text and references.
pub fn parse(text: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            literal.push_str("${");
            rest = after;
        } else if let Some(body_and_rest) = tail.strip_prefix("${") {
            let end = body_and_rest.find('}').ok_or_else(|| {
                format!(
                    "unterminated `${{` in `{text}`: close the reference with `}}`, or write `$${{` \
                     for a literal `${{`"
                )
            })?;
            let reference = parse_ref(&body_and_rest[..end])?;
            if !literal.is_empty() {
                segments.push(Segment::Literal(std::mem::take(&mut literal)));
            }
            segments.push(Segment::Ref(reference));
            rest = &body_and_rest[end + 1..];
        } else {
            literal.push('$');
            rest = &tail[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

fn parse_ref(body: &str) -> Result<Ref, String> {
    let whole = format!("${{{body}}}");
    if body.trim().is_empty() {
        return Err(format!("empty reference `{whole}`: {FORMS}"));
    }
    let parts: Vec<&str> = body.split('.').collect();
    match parts[0] {
        "vars" => match parts.as_slice() {
            [_, name] if !name.is_empty() => Ok(Ref::Var((*name).to_string())),
            [_, _] | [_] => Err(format!(
                "reference `{whole}` has an empty variable name: write `${{vars.NAME}}`"
            )),
            _ => Err(format!(
                "malformed variable reference `{whole}`: write `${{vars.NAME}}` with one name \
                 (variables have no fields)"
            )),
        },
        "steps" => match parts.as_slice() {
            [_, step, "outputs", key] if !step.is_empty() && !key.is_empty() => Ok(Ref::StepOutput {
                step: (*step).to_string(),
                key: (*key).to_string(),
            }),
            [_, "", "outputs", _] => Err(format!(
                "reference `{whole}` has an empty step id: write `${{steps.ID.outputs.KEY}}`"
            )),
            [_, _, "outputs", _] => Err(format!(
                "reference `{whole}` has an empty output key: write `${{steps.ID.outputs.KEY}}`"
            )),
            _ => Err(format!(
                "malformed step reference `{whole}`: write `${{steps.ID.outputs.KEY}}`"
            )),
        },
        root => Err(format!("unknown reference root `{root}` in `{whole}`: {FORMS}")),
    }
}

/// The JSON path step for an object key: `.key` for identifiers, `["key"]` otherwise.
pub fn key_path(key: &str) -> String {
    let mut chars = key.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        format!(".{key}")
    } else {
        format!("[{}]", Value::String(key.to_string()))
    }
}

/// Every reference (or parse error) in `value`, with the JSON path suffix of its string.
pub fn references(value: &Value) -> Vec<(String, Result<Ref, String>)> {
    let mut found = Vec::new();
    walk(value, &mut String::new(), &mut found);
    found
}

fn walk(value: &Value, path: &mut String, found: &mut Vec<(String, Result<Ref, String>)>) {
    let len = path.len();
    match value {
        Value::String(text) => match parse(text) {
            Ok(segments) => found.extend(segments.into_iter().filter_map(|s| match s {
                Segment::Ref(r) => Some((path.clone(), Ok(r))),
                Segment::Literal(_) => None,
            })),
            Err(message) => found.push((path.clone(), Err(message))),
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push_str(&format!("[{i}]"));
                walk(item, path, found);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.push_str(&key_path(key));
                walk(item, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// A copy of `value` with every reference replaced by what `lookup` returns for it.
pub fn resolve(
    value: &Value,
    lookup: &mut dyn FnMut(&Ref) -> Result<Value, String>,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => {
            let segments = parse(text)?;
            if let [Segment::Ref(reference)] = segments.as_slice() {
                return lookup(reference);
            }
            let mut out = String::new();
            for segment in &segments {
                match segment {
                    Segment::Literal(s) => out.push_str(s),
                    Segment::Ref(reference) => match lookup(reference)? {
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, lookup))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, lookup)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(name: &str) -> Segment {
        Segment::Ref(Ref::Var(name.into()))
    }

    #[test]
    fn parses_literals_references_and_escapes() {
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(
            parse("plain $ text").unwrap(),
            vec![Segment::Literal("plain $ text".into())]
        );
        assert_eq!(
            parse("a-${vars.x}-${steps.build.outputs.path}").unwrap(),
            vec![
                Segment::Literal("a-".into()),
                var("x"),
                Segment::Literal("-".into()),
                Segment::Ref(Ref::StepOutput {
                    step: "build".into(),
                    key: "path".into()
                }),
            ]
        );
        assert_eq!(
            parse("$${vars.x} ${vars.y}").unwrap(),
            vec![Segment::Literal("${vars.x} ".into()), var("y")]
        );
        assert_eq!(parse("${vars.a}${vars.b}").unwrap(), vec![var("a"), var("b")]);
    }

    #[test]
    fn parse_errors_say_what_to_write() {
        let e = parse("x ${vars.a").unwrap_err();
        assert!(e.contains("unterminated") && e.contains("`$${`"), "{e}");
        let e = parse("${foo.x}").unwrap_err();
        assert!(
            e.contains("unknown reference root `foo`") && e.contains("${vars.NAME}"),
            "{e}"
        );
        let e = parse("${steps.a.path}").unwrap_err();
        assert!(e.contains("malformed step reference") && e.contains("${steps.ID.outputs.KEY}"));
        assert!(parse("${steps..outputs.k}")
            .unwrap_err()
            .contains("empty step id"));
        assert!(parse("${steps.a.outputs.}")
            .unwrap_err()
            .contains("empty output key"));
        assert!(parse("${vars.}").unwrap_err().contains("empty variable name"));
        assert!(parse("${vars.a.b}")
            .unwrap_err()
            .contains("malformed variable reference"));
        assert!(parse("${}").unwrap_err().contains("empty reference"));
    }

    #[test]
    fn references_carry_json_paths() {
        let value = json!({
            "labels": {"team": "${vars.team}", "my key": "${steps.a.outputs.k}"},
            "list": ["x", "y", "${vars.z} and ${vars.w}"],
            "bad": "${nope.x}",
            "n": 3
        });
        let found = references(&value);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                ".bad",
                ".labels[\"my key\"]",
                ".labels.team",
                ".list[2]",
                ".list[2]"
            ]
        );
        assert!(found[0].1.is_err());
        assert_eq!(found[2].1, Ok(Ref::Var("team".into())));
        assert_eq!(found[4].1, Ok(Ref::Var("w".into())));
        assert_eq!(
            references(&json!("${vars.q}")),
            vec![(String::new(), Ok(Ref::Var("q".into())))]
        );
    }

    #[test]
    fn resolve_keeps_types_for_whole_references_and_splices_text() {
        let value = json!({
            "zones": "${vars.zones}",
            "msg": "zones=${vars.zones} n=${vars.n} r=${vars.r}",
            "nested": ["${steps.a.outputs.path}", "$${literal}"],
            "n": 1
        });
        let mut lookup = |r: &Ref| match r {
            Ref::Var(name) if name == "zones" => Ok(json!(["a", "b"])),
            Ref::Var(name) if name == "n" => Ok(json!(4)),
            Ref::Var(name) if name == "r" => Ok(json!("eu")),
            Ref::StepOutput { step, key } => Ok(json!(format!("/{step}/{key}"))),
            Ref::Var(name) => Err(format!("no var {name}")),
        };
        let resolved = resolve(&value, &mut lookup).unwrap();
        assert_eq!(
            resolved,
            json!({
                "zones": ["a", "b"],
                "msg": "zones=[\"a\",\"b\"] n=4 r=eu",
                "nested": ["/a/path", "${literal}"],
                "n": 1
            })
        );
        assert_eq!(
            resolve(&json!(["${vars.x}"]), &mut lookup).unwrap_err(),
            "no var x"
        );
        assert!(resolve(&json!("${bad"), &mut lookup)
            .unwrap_err()
            .contains("unterminated"));
    }
}
