//! `sluice plan`: what a run would do, found by calling only `observe` (which must never mutate)
//! on every step in dependency order. Nothing is written to any store.
//!
//! A step's outputs feed later steps' parameters. A converged step gives its real outputs; a step
//! that would change gives the outputs its kind can predict ([`crate::Change::predicted`]). A step
//! that reads an output nobody can know yet is not observed: it is reported as waiting on the
//! step that will produce it, like Terraform's "known after apply".

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::kind::{ChangeAction, Observation, Outputs, Registry, StepContext};
use crate::template::{self, Ref};
use crate::validate::ValidatedPlan;
use crate::Engine;

/// What a run would do with one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Preview {
    /// Already as the plan wants it: the run will only observe.
    NoChange,
    Create {
        summary: String,
    },
    Update {
        summary: String,
    },
    /// An operation changing it is under way; the run will wait on it.
    InProgress,
    /// Its parameters read outputs that exist only once these steps have run.
    AfterSteps {
        steps: Vec<String>,
    },
    /// Observing it failed; `not_yet` errors usually mean an earlier step must run first (an API
    /// not enabled yet, a service agent not created yet).
    Unknown {
        error: String,
        not_yet: bool,
    },
    /// Its `when` is false, or a step it reads from is skipped.
    Skipped,
}

impl Preview {
    /// Whether a run would (or may) mutate something for this step.
    pub fn changes(&self) -> bool {
        !matches!(self, Preview::NoChange | Preview::Skipped)
    }
}

/// One step's preview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepPreview {
    pub step_id: String,
    pub kind: String,
    #[serde(flatten)]
    pub preview: Preview,
}

enum Known {
    Outputs(Outputs),
    Unknown,
    Skipped,
}

impl Engine {
    /// Observes every step of `validated` in dependency order and says what a run would do.
    /// Only `observe` is called, with the same idempotency keys a run would use.
    pub async fn preview(registry: &Registry, validated: &ValidatedPlan) -> Vec<StepPreview> {
        let run_key = Engine::run_key(validated);
        let steps = &validated.plan.steps;
        let mut known: BTreeMap<String, Known> = BTreeMap::new();
        let mut out = vec![None; steps.len()];
        for index in validated.graph.topological_order() {
            let spec = &steps[index];
            let (preview, outputs) = if validated.skipped_by_condition[index] {
                (Preview::Skipped, Known::Skipped)
            } else {
                preview_step(registry, validated, &run_key, index, &known).await
            };
            known.insert(spec.id.clone(), outputs);
            out[index] = Some(StepPreview {
                step_id: spec.id.clone(),
                kind: spec.kind.clone(),
                preview,
            });
        }
        out.into_iter().flatten().collect()
    }
}

async fn preview_step(
    registry: &Registry,
    validated: &ValidatedPlan,
    run_key: &str,
    index: usize,
    known: &BTreeMap<String, Known>,
) -> (Preview, Known) {
    let spec = &validated.plan.steps[index];
    let with = Value::Object(spec.with.clone());
    if let Some(unknowable) = before_its_inputs(&with, known) {
        return unknowable;
    }
    let params = match resolve_params(&with, validated, known) {
        Ok(params) => params,
        Err(error) => return unknown(format!("parameters: {error}")),
    };
    let Some(kind) = registry.get(&spec.kind) else {
        return unknown(format!("unknown kind `{}`", spec.kind));
    };
    let cx = StepContext {
        run_id: "preview".into(),
        step_id: spec.id.clone(),
        params,
        idempotency_key: format!("{run_key}/{}", spec.id),
        attempt: 1,
    };
    match kind.observe(&cx).await {
        Ok(Observation::Converged(outputs)) => (Preview::NoChange, Known::Outputs(outputs)),
        Ok(Observation::InProgress(_)) => (Preview::InProgress, Known::Unknown),
        Ok(Observation::Diverged(change)) => {
            let summary = change.summary;
            let preview = match change.action {
                ChangeAction::Create => Preview::Create { summary },
                ChangeAction::Update => Preview::Update { summary },
            };
            (preview, Known::Outputs(change.predicted))
        }
        Err(error) => (
            Preview::Unknown {
                not_yet: error.class() == crate::error::ErrorClass::NotYet,
                error: error.message().to_string(),
            },
            Known::Unknown,
        ),
    }
}

/// The preview of a step that cannot be observed yet: it reads a skipped step (so it is
/// skipped too), or outputs not known before other steps run.
fn before_its_inputs(with: &Value, known: &BTreeMap<String, Known>) -> Option<(Preview, Known)> {
    let mut waiting_on = Vec::new();
    for (_, reference) in template::references(with) {
        if let Ok(Ref::StepOutput { step, key }) = reference {
            match known.get(&step) {
                Some(Known::Skipped) => return Some((Preview::Skipped, Known::Skipped)),
                Some(Known::Outputs(outputs)) if outputs.contains_key(&key) => {}
                _ if !waiting_on.contains(&step) => waiting_on.push(step),
                _ => {}
            }
        }
    }
    (!waiting_on.is_empty()).then_some((Preview::AfterSteps { steps: waiting_on }, Known::Unknown))
}

/// `with`, every reference resolved from the variables and the outputs known so far.
fn resolve_params(
    with: &Value,
    validated: &ValidatedPlan,
    known: &BTreeMap<String, Known>,
) -> Result<serde_json::Map<String, Value>, String> {
    let mut lookup = |reference: &Ref| -> Result<Value, String> {
        match reference {
            Ref::Var(name) => validated
                .vars
                .get(name)
                .cloned()
                .ok_or_else(|| format!("variable `{name}` has no value")),
            Ref::StepOutput { step, key } => match known.get(step) {
                Some(Known::Outputs(outputs)) => outputs
                    .get(key)
                    .cloned()
                    .ok_or_else(|| format!("no output `{key}` from `{step}`")),
                _ => Err(format!("no outputs from `{step}`")),
            },
        }
    };
    match template::resolve(with, &mut lookup)? {
        Value::Object(params) => Ok(params),
        _ => unreachable!("resolving an object yields an object"),
    }
}

/// A step whose preview is unknown for `error` (not a not-yet error).
fn unknown(error: String) -> (Preview, Known) {
    (
        Preview::Unknown {
            error,
            not_yet: false,
        },
        Known::Unknown,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_plan, validate};

    fn validated(dir: &std::path::Path) -> ValidatedPlan {
        let plan = serde_json::json!({ "name": "p", "vars": { "deep": { "type": "bool", "default": false } }, "steps": [
            { "id": "kept", "kind": "local.file", "with": { "path": dir.join("kept").to_str().unwrap(), "content": "x" } },
            { "id": "new", "kind": "local.file", "with": { "path": dir.join("new").to_str().unwrap(), "content": "y" } },
            { "id": "reader", "kind": "local.file",
              "with": { "path": "${steps.new.outputs.path}.copy", "content": "z" } },
            { "id": "op", "kind": "local.operation", "with": { "path": dir.join("op").to_str().unwrap(), "content": "o" } },
            { "id": "after_op", "kind": "core.noop", "with": { "value": "${steps.op.outputs.path}" } },
            { "id": "off", "kind": "core.noop", "when": "vars.deep", "with": { "value": "v" } },
            { "id": "reads_off", "kind": "core.noop", "with": { "value": "${steps.off.outputs.value}" } }
        ]});
        let registry = Registry::with_builtins();
        let plan = parse_plan(&plan.to_string(), "p.json").unwrap();
        validate(plan, "p.json", &registry, &BTreeMap::new()).unwrap()
    }

    #[tokio::test]
    async fn preview_observes_predicts_waits_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kept"), "x").unwrap();
        let previews = Engine::preview(&Registry::with_builtins(), &validated(dir.path())).await;
        let by_id: BTreeMap<&str, &Preview> = previews
            .iter()
            .map(|p| (p.step_id.as_str(), &p.preview))
            .collect();
        assert_eq!(by_id["kept"], &Preview::NoChange);
        assert!(matches!(by_id["new"], Preview::Create { .. }), "{previews:?}");
        // `new` predicts its path, so `reader` is observed with it.
        assert!(
            matches!(by_id["reader"], Preview::Create { summary } if summary.contains("new.copy")),
            "{previews:?}"
        );
        assert!(matches!(by_id["op"], Preview::Create { .. }), "{previews:?}");
        assert_eq!(
            by_id["after_op"],
            &Preview::AfterSteps {
                steps: vec!["op".into()]
            },
            "local.operation predicts nothing"
        );
        assert_eq!(by_id["off"], &Preview::Skipped);
        assert_eq!(by_id["reads_off"], &Preview::Skipped);
        assert_eq!(
            previews.iter().map(|p| p.step_id.as_str()).collect::<Vec<_>>(),
            ["kept", "new", "reader", "op", "after_op", "off", "reads_off"],
            "in plan order"
        );
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["kept"], "nothing written");
    }
}
