//! The step-kind contract: a reconciler in three phases, and the registry of kinds by name.
//!
//! A kind is never told *why* it runs (first run, retry, resume after a crash, nightly re-run),
//! so every phase must be idempotent:
//! - `observe` reads only, and says whether the target is converged (with outputs), already being
//!   changed by an operation we can re-attach to, or would change;
//! - `apply` makes the mutation; the engine has durably recorded the intent before calling it;
//! - `poll` asks about an operation handle that the engine durably recorded before the first poll.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::StepError;
use crate::plan_rule::PlanRule;
use crate::policy::PollPolicy;

/// Named outputs of a step, readable by later steps as `${steps.ID.outputs.KEY}`.
pub type Outputs = BTreeMap<String, Value>;

/// An opaque, serialisable reference to a long-running operation, persisted before polling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationHandle(pub Value);

/// What would change, as reported by `observe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub action: ChangeAction,
    /// One line for a person: what apply would do.
    pub summary: String,
    /// Outputs the step will have once applied, where they can be known before (an email derived
    /// from a project number, a name the step chooses). `sluice plan` lets later steps read them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub predicted: Outputs,
}

impl Change {
    pub fn create(summary: impl Into<String>) -> Self {
        Change {
            action: ChangeAction::Create,
            summary: summary.into(),
            predicted: Outputs::new(),
        }
    }

    pub fn update(summary: impl Into<String>) -> Self {
        Change {
            action: ChangeAction::Update,
            summary: summary.into(),
            predicted: Outputs::new(),
        }
    }

    /// This change, with the outputs the step will have once applied.
    pub fn predicting(mut self, outputs: Outputs) -> Self {
        self.predicted = outputs;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Create,
    Update,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "create",
            ChangeAction::Update => "update",
        }
    }
}

/// The result of `observe`.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The target already matches; no mutation will be made.
    Converged(Outputs),
    /// An operation changing the target is under way (perhaps started by a call whose answer
    /// was lost): wait on it instead of applying again.
    InProgress(OperationHandle),
    /// The target differs; `apply` would make this change.
    Diverged(Change),
}

/// The result of `apply`.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Done(Outputs),
    Started(OperationHandle),
}

/// The result of one successful `poll` call.
#[must_use]
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    Done(Outputs),
    /// Still running; `progress` is shown to the user when given.
    Pending {
        progress: Option<String>,
    },
    /// The operation finished with an error. A retryable or not-yet error sends the step back to
    /// `observe`; a permanent one fails it. (A failed *poll call* is an `Err` instead, and only
    /// the poll is retried.)
    Failed(StepError),
}

/// What a kind receives for each phase.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub run_id: String,
    pub step_id: String,
    /// `with`, every reference resolved.
    pub params: Map<String, Value>,
    /// Stable for the same plan, variables and step across runs and resumes: a kind can tag what
    /// it creates with it and find it again after a lost answer.
    pub idempotency_key: String,
    /// 1 for the step's first attempt in this process.
    pub attempt: u32,
}

impl StepContext {
    /// A required string parameter (the validator has checked presence for literal plans).
    pub fn str_param(&self, name: &str) -> Result<&str, StepError> {
        self.params.get(name).and_then(Value::as_str).ok_or_else(|| {
            StepError::permanent(format!(
                "step `{}`: parameter `{name}` must be a string",
                self.step_id
            ))
        })
    }
    pub fn u64_param(&self, name: &str, default: u64) -> Result<u64, StepError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(default)),
            Some(Value::String(s)) => s.parse().map_err(|_| {
                StepError::permanent(format!(
                    "step `{}`: parameter `{name}` must be a whole number, got `{s}`",
                    self.step_id
                ))
            }),
            Some(other) => Err(StepError::permanent(format!(
                "step `{}`: parameter `{name}` must be a whole number, got {other}",
                self.step_id
            ))),
        }
    }
}

/// The type a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Int,
    Bool,
    List,
    Object,
    Any,
}

impl ParamType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::List => "list",
            ParamType::Object => "object",
            ParamType::Any => "any",
        }
    }
    /// Whether a literal JSON value fits (ints may also be written as digit strings).
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::String => value.is_string(),
            ParamType::Int => {
                value.is_i64()
                    || value.is_u64()
                    || value
                        .as_str()
                        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            }
            ParamType::Bool => value.is_boolean(),
            ParamType::List => value.is_array(),
            ParamType::Object => value.is_object(),
            ParamType::Any => true,
        }
    }
}

/// One accepted parameter.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub description: &'static str,
}

impl ParamSpec {
    pub const fn required(name: &'static str, ty: ParamType, description: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            required: true,
            description,
        }
    }
    pub const fn optional(name: &'static str, ty: ParamType, description: &'static str) -> Self {
        ParamSpec {
            name,
            ty,
            required: false,
            description,
        }
    }
}

/// What a kind accepts and produces, used by validation before anything runs.
#[derive(Debug, Clone, Default)]
pub struct KindSchema {
    pub description: &'static str,
    pub params: Vec<ParamSpec>,
    /// Output keys a later step may reference.
    pub outputs: Vec<&'static str>,
}

impl KindSchema {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// A problem a kind finds in one of its parameters at validation (see [`StepKind::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// Where under the step's `with`: a parameter name, or a path into it such as
    /// `package.python_version` or `members[1]`.
    pub param: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ParamProblem {
    pub fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        ParamProblem {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// A step kind. See the module docs for the idempotency contract.
#[async_trait]
pub trait StepKind: Send + Sync + 'static {
    fn schema(&self) -> KindSchema;

    /// Checks the step's parameters at validation, before any store is opened or call made:
    /// formats, ids, enums and the limits of the system the kind drives. `params` holds every
    /// parameter whose value is known before the run, with variables substituted; a
    /// parameter that depends on another step's outputs is absent. Types and required
    /// parameters are already checked against [`StepKind::schema`]. Default: nothing more.
    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        let _ = params;
        Vec::new()
    }

    /// Read only. Must make no mutation whatever it finds.
    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError>;

    /// The mutation. Called only after `observe` returned `Diverged` and the intent is durable.
    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError>;

    /// Ask once about an operation. Kinds without operations keep the default.
    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let _ = handle;
        Err(StepError::permanent(format!(
            "step `{}`: this kind has no operations to poll",
            cx.step_id
        )))
    }

    /// How this kind's operations are polled; `None` keeps the executor's default.
    fn poll_policy(&self) -> Option<PollPolicy> {
        None
    }
}

/// Kinds by name. Library users register their own beside the built-ins.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, Arc<dyn StepKind>>,
    rules: Vec<Arc<dyn PlanRule>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in kinds that touch only local files (`core.noop`, `local.*`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        crate::builtin::register(&mut registry);
        registry
    }

    /// Adds or replaces a kind.
    pub fn register(&mut self, name: impl Into<String>, kind: impl StepKind) -> &mut Self {
        self.kinds.insert(name.into(), Arc::new(kind));
        self
    }

    /// Adds a rule across steps, run at validation after every step's own checks.
    pub fn add_rule(&mut self, rule: impl PlanRule) -> &mut Self {
        self.rules.push(Arc::new(rule));
        self
    }

    pub fn rules(&self) -> &[Arc<dyn PlanRule>] {
        &self.rules
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn StepKind>> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}
