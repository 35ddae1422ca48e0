//! Rules across steps: the checks no kind can make alone, because they concern several steps
//! of a plan together (how many steps target one resource, what one step needs from another).
//!
//! A [`PlanRule`] is registered beside the kinds ([`crate::Registry::add_rule`]) and runs at
//! validation, after every step's own checks, over the steps that will run (a step whose `when`
//! is false is left out). It sees each step's kind, the parameters known before the run and
//! which steps each parameter reads outputs from — never a store, a clock or the network, so a
//! refusal comes before the first call. The engine gives no meaning to kinds or parameters: a
//! rule knows its own kinds.
//!
//! A [`Finding`] either refuses the plan (a [`crate::Problem`], like any validation problem) or
//! warns (kept in [`crate::ValidatedPlan::warnings`]; the run goes ahead and the caller shows
//! it).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::template::{self, Ref};

/// A step that will run, as a rule sees it.
#[derive(Debug)]
pub struct PlannedStep<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    /// The parameters whose value is known before the run, variables substituted.
    pub known: Map<String, Value>,
    /// For each parameter, the steps whose outputs it reads, in the order written.
    pub reads: BTreeMap<String, Vec<String>>,
}

impl<'a> PlannedStep<'a> {
    /// Builds the view of a step from its kind, its known parameters and its `with`.
    pub fn new(id: &'a str, kind: &'a str, known: Map<String, Value>, with: &Map<String, Value>) -> Self {
        let reads = with
            .iter()
            .map(|(name, value)| {
                let steps = template::references(value)
                    .into_iter()
                    .filter_map(|(_, reference)| match reference {
                        Ok(Ref::StepOutput { step, .. }) => Some(step),
                        _ => None,
                    })
                    .collect();
                (name.clone(), steps)
            })
            .collect();
        PlannedStep {
            id,
            kind,
            known,
            reads,
        }
    }

    /// The known text value of `param`.
    pub fn text(&self, param: &str) -> Option<&str> {
        self.known.get(param).and_then(Value::as_str)
    }

    /// The steps `param` reads outputs from (none when it reads none or is absent).
    pub fn reads_from(&self, param: &str) -> &[String] {
        self.reads.get(param).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Whether a finding stops the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The plan is refused before any call.
    Refuse,
    /// The plan runs; the caller is told.
    Warn,
}

/// What a rule found, at a step (and one of its parameters, when one is to blame).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Finding {
    pub severity: Severity,
    pub step: String,
    pub param: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn refuse(step: &str, param: Option<&str>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Refuse,
            step: step.to_string(),
            param: param.map(str::to_string),
            message: message.into(),
        }
    }

    pub fn warn(step: &str, param: Option<&str>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warn,
            step: step.to_string(),
            param: param.map(str::to_string),
            message: message.into(),
        }
    }
}

/// A check across the steps of a plan. Must be pure: the same steps give the same findings.
pub trait PlanRule: Send + Sync + 'static {
    fn check(&self, steps: &[PlannedStep<'_>]) -> Vec<Finding>;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_step_lists_the_steps_each_parameter_reads_from() {
        let with = json!({
            "gateway": "${steps.gw.outputs.name}",
            "extensions": ["${steps.a.outputs.name}", "x", "${steps.b.outputs.name}"],
            "region": "${vars.region}",
        });
        let with = with.as_object().expect("an object");
        let known = Map::from_iter([("region".to_string(), json!("r1"))]);
        let step = PlannedStep::new("p", "k", known, with);
        assert_eq!(step.reads_from("gateway"), ["gw"]);
        assert_eq!(step.reads_from("extensions"), ["a", "b"]);
        assert!(step.reads_from("region").is_empty());
        assert!(step.reads_from("absent").is_empty());
        assert_eq!(step.text("region"), Some("r1"));
        assert_eq!(step.text("gateway"), None);
    }
}
