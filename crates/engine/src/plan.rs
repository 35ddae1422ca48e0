//! The plan file model: what a plan says, as parsed from JSON, before any validation.
//!
//! A plan is a named set of typed variables and a list of steps. Each step names a kind
//! (registered in a [`crate::Registry`]), parameters (`with`) that may contain `${vars.NAME}` and
//! `${steps.ID.outputs.KEY}` references, optional `after` ordering, an optional `when` condition
//! (a CEL expression over `vars`), and optional `timeout` / `retry` overrides.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A plan as written in its JSON file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Declared variables, by name.
    #[serde(default)]
    pub vars: BTreeMap<String, VarSpec>,
    pub steps: Vec<StepSpec>,
}

/// The type of a plan variable.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    String,
    List,
    Bool,
    Int,
}

impl VarType {
    pub fn as_str(self) -> &'static str {
        match self {
            VarType::String => "string",
            VarType::List => "list",
            VarType::Bool => "bool",
            VarType::Int => "int",
        }
    }
}

/// A declared variable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VarSpec {
    #[serde(rename = "type")]
    pub ty: VarType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A regular expression every string value (or every list item) must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A format every string value (or every list item) must have, checked with the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<VarFormat>,
    #[serde(default)]
    pub description: String,
}

/// What a string variable holds, checked when variables are parsed (an empty optional value
/// stands for "none" and is not checked).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VarFormat {
    /// A duration as [`parse_duration`] reads it: `250ms`, `10s`, `5m`, `1h`.
    Duration,
    /// An absolute URI: `scheme://…` (`gs://bucket/object`, `https://…`).
    Uri,
}

impl VarFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            VarFormat::Duration => "duration",
            VarFormat::Uri => "uri",
        }
    }

    /// A value of this format, for a message's "pass e.g." hint.
    pub fn example(self) -> &'static str {
        match self {
            VarFormat::Duration => "5m",
            VarFormat::Uri => "gs://bucket/object",
        }
    }

    /// Why `text` does not have this format, if it does not.
    pub fn problem(self, text: &str) -> Option<String> {
        match self {
            VarFormat::Duration => parse_duration(text).err(),
            VarFormat::Uri => {
                let ok = text.split_once("://").is_some_and(|(scheme, rest)| {
                    !rest.is_empty()
                        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                });
                (!ok).then(|| format!("`{text}` is not an absolute URI like `gs://bucket/object`"))
            }
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub with: Map<String, Value>,
    #[serde(default)]
    pub after: Vec<String>,
    /// A CEL expression over `vars` (e.g. `vars.ingress && vars.region != ''`); the step is
    /// skipped when it evaluates to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Deadline for the whole step in this process (observe, applies, retries and polling),
    /// written like `90s`, `10m`, `1h`, `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
}

impl StepSpec {
    /// The steps this one names, as written: its `after` entries, then the steps whose outputs
    /// its parameters read (`${steps.X.outputs.Y}`). Names that match no step are kept, for the
    /// caller to refuse or pass over.
    pub fn named_dependencies(&self) -> Vec<String> {
        let reads = crate::template::references(&Value::Object(self.with.clone()))
            .into_iter()
            .filter_map(|(_, reference)| match reference {
                Ok(crate::template::Ref::StepOutput { step, .. }) => Some(step),
                _ => None,
            });
        self.after.iter().cloned().chain(reads).collect()
    }
}

/// Per-step retry overrides; anything left out keeps the executor's default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// How long a not-yet error (a precondition that becomes true with time) is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_yet_window: Option<String>,
}

/// Parses `250ms`, `10s`, `5m`, `2h` (one number, one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("duration `{text}` has no unit: write e.g. `250ms`, `10s`, `5m` or `1h`"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("duration `{text}` does not start with a number: write e.g. `10s`"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "duration `{text}` has unknown unit `{unit}`: use ms, s, m or h"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("duration `{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("s").is_err());
    }
}
