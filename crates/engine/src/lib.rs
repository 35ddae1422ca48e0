//! # sluice-engine
//!
//! A durable plan engine: a plan is a DAG of idempotent steps; every step transition is
//! persisted, so a run killed at any instant resumes where it stopped, re-attaches to operations
//! it was waiting on, and never makes a side effect twice.
//!
//! **What it must never know:** anything about Google Cloud, HTTP or any remote API. Step kinds
//! that talk to the world live in other crates and plug in through [`Registry`].
//!
//! ## Principal types
//! - [`Plan`] (parsed JSON) → [`validate()`] → [`ValidatedPlan`] (variables resolved, DAG built,
//!   every problem reported at once).
//! - [`StepKind`]: a reconciler with `observe` (read only) / `apply` (mutation) / `poll` (operation).
//! - [`Store`]: runs, step records and a journal, written two ways: `commit_run` (atomic) and
//!   `append_steps` (ordered, not atomic); [`SledStore`] on disk, [`MemoryStore`] in memory.
//! - [`StepRecord`]: a step's latest state as a [`StepStatus`] (a waiting step carries its
//!   operation handle); failures carry an [`ErrorClass`], spelled one way everywhere.
//! - [`Engine`]: `start` picks or creates a run, `execute` drives it, emitting [`Event`]s;
//!   `start_fleet` / `execute_fleet` run one plan against many targets, each its own run
//!   ([`fleet`]).
//!
//! ## The one non-obvious decision
//! The engine never trusts its own memory of a mutation: a step found `applying` (the process died
//! after recording the intent) always *observes first* and adopts what the lost call did. So an
//! intent is flushed before every mutation, but a success is not flushed on its own: losing it
//! costs one more read, never a second side effect.
//!
//! ## Example
//! ```
//! use std::{collections::BTreeMap, sync::Arc};
//! use sluice_engine::{parse_plan, validate, Engine, MemoryStore, Registry, RunState};
//!
//! let plan = parse_plan(r#"{"name": "demo", "steps": [
//!     {"id": "a", "kind": "core.noop", "with": {"value": "hello"}},
//!     {"id": "b", "kind": "core.noop", "with": {"value": "${steps.a.outputs.value}, world"}}
//! ]}"#, "demo.json").unwrap();
//! let registry = Registry::with_builtins();
//! let validated = validate(plan, "demo.json", &registry, &BTreeMap::new()).unwrap();
//! let engine = Engine::new(registry, Arc::new(MemoryStore::new()));
//! let run = engine.start(&validated, "demo.json").unwrap();
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let summary = tokio::runtime::Runtime::new().unwrap()
//!     .block_on(engine.execute(&run.run_id, shutdown)).unwrap();
//! assert_eq!(summary.state, RunState::Succeeded);
//! assert_eq!(summary.steps[1].outputs["value"], "hello, world");
//! ```

pub mod builtin;
pub mod condition;
pub mod dag;
mod digest;
pub mod error;
pub mod events;
mod executor;
pub mod fleet;
pub mod kind;
pub mod plan;
pub mod plan_rule;
pub mod policy;
mod preview;
pub mod store;
pub mod suggest;
pub mod template;
pub mod time;
pub mod validate;
pub mod vars;

/// Implement [`StepKind`] with `#[sluice_engine::async_trait]`, no extra dependency needed.
pub use async_trait::async_trait;
pub use digest::digest_hex;
pub use error::{ErrorClass, StepError, StoreError};
pub use events::{CrashPoint, Event, Hooks};
pub use executor::{Engine, EngineConfig, EngineError, RunSummary, StartedRun};
pub use fleet::{
    FailureClass, FleetEvent, FleetSummary, FleetTargetSpec, StartedFleet, TargetOutcome, TargetState,
};
pub use kind::{
    Applied, Change, ChangeAction, KindSchema, Observation, OperationHandle, Outputs, ParamProblem,
    ParamSpec, ParamType, PollOutcome, Registry, StepContext, StepKind,
};
pub use plan::{Plan, StepSpec, VarFormat, VarSpec, VarType};
pub use plan_rule::{Finding, PlanRule, PlannedStep, Severity};
pub use policy::{PollPolicy, RetryPolicy};
pub use preview::{Preview, StepPreview};
pub use store::{
    FleetRecord, FleetState, FleetTarget, JournalEntry, JournalEvent, MemoryStore, RunRecord, RunState,
    SledStore, StepRecord, StepState, StepStatus, Store,
};
pub use validate::{parse_plan, validate, Problem, ValidatedPlan, VarFix, VarForm};
pub use vars::VarInput;
