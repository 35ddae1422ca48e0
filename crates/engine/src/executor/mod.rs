//! The executor: creates or continues runs and drives their steps on tokio.
//!
//! Ready steps run in parallel up to `concurrency`; among ready steps the one with the longest
//! remaining path goes first. A failed step blocks only its descendants. On shutdown no new step
//! starts, running steps get `grace_period` to finish, and whatever is still applying is left in
//! doubt on disk, to be observed first on resume.

mod schedule;
mod session;
mod shared;
mod step;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::digest::digest_hex;
use crate::error::StoreError;
use crate::events::{Event, Hooks};
use crate::kind::Registry;
use crate::policy::{PollPolicy, RetryPolicy};
use crate::store::{JournalEvent, RunCommit, RunRecord, RunState, StepRecord, StepStatus, Store};
use crate::time::{compact_stamp, now_ms};
use crate::validate::{Problem, ValidatedPlan};
use schedule::{schedule, ScheduleOutcome};
use session::{begin_session, end_session, LoadedRun, SessionStart};

/// Executor settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Steps running at once.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub poll: PollPolicy,
    /// After a shutdown request, how long running steps may take to finish.
    pub grace_period: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 8,
            retry: RetryPolicy::default(),
            poll: PollPolicy::default(),
            grace_period: Duration::from_secs(10),
        }
    }
}

/// Errors that stop a run from being created or executed at all.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no run `{0}` in this store")]
    UnknownRun(String),
    #[error("no fleet run `{0}` in this store")]
    UnknownFleet(String),
    #[error("the plan stored with run `{run}` is no longer valid here:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    StoredPlanInvalid { run: String, problems: Vec<Problem> },
}

/// Which run `start` picked.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedRun {
    pub run_id: String,
    /// True when an unfinished run with the same plan and variables was continued.
    pub continued: bool,
}

/// The end of one execution session of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub state: RunState,
    /// Final step records, in plan order.
    pub steps: Vec<StepRecord>,
}

/// The engine: a registry of kinds, a store, and settings. Cloning is cheap and shares all
/// three (a fleet drives each target's run on a clone with its own event channel).
#[derive(Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    config: EngineConfig,
    hooks: Option<Arc<dyn Hooks>>,
    events: Option<mpsc::UnboundedSender<Event>>,
}

impl Engine {
    pub fn new(registry: Registry, store: Arc<dyn Store>) -> Self {
        Engine {
            registry: Arc::new(registry),
            store,
            config: EngineConfig::default(),
            hooks: None,
            events: None,
        }
    }

    pub fn with_config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    pub fn with_hooks(mut self, hooks: Arc<dyn Hooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    pub fn with_events(mut self, events: mpsc::UnboundedSender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The key under which runs of this plan with these variables are recognised.
    pub fn run_key(validated: &ValidatedPlan) -> String {
        let canonical = serde_json::json!({ "plan": validated.plan, "vars": validated.vars });
        digest_hex(canonical.to_string().as_bytes())
    }

    /// Continues the newest unfinished run with the same plan and variables, or creates a new
    /// run (a finished plan re-run starts a new run whose converged steps only observe).
    pub fn start(&self, validated: &ValidatedPlan, source: &str) -> Result<StartedRun, EngineError> {
        let run_key = Self::run_key(validated);
        if let Some(run) = self.store.latest_run_for_key(&run_key)? {
            if !run.is_finished() {
                return Ok(StartedRun {
                    run_id: run.id,
                    continued: true,
                });
            }
        }
        let now = now_ms();
        let run_id = format!(
            "{}-{}",
            compact_stamp(now),
            &digest_hex(format!("{run_key}{now}{}", std::process::id()).as_bytes())[..6]
        );
        let plan_digest = digest_hex(
            serde_json::to_string(&validated.plan)
                .unwrap_or_default()
                .as_bytes(),
        );
        let run = RunRecord {
            id: run_id.clone(),
            run_key: run_key.clone(),
            plan_digest: plan_digest.clone(),
            plan_name: validated.plan.name.clone(),
            plan_source: source.to_string(),
            vars: validated.vars.clone(),
            state: RunState::Running,
            created_at_ms: now,
            updated_at_ms: now,
            finished_at_ms: None,
            sessions: 0,
        };
        // Only skipped steps get a record now: a step without one is pending.
        let steps = validated
            .plan
            .steps
            .iter()
            .zip(&validated.skipped_by_condition)
            .filter(|(_, skipped)| **skipped)
            .map(|(spec, _)| {
                let mut record = StepRecord::pending(&spec.id);
                record.status = StepStatus::Skipped;
                record.note = Some(format!(
                    "skipped: `when` is false ({})",
                    spec.when.as_deref().unwrap_or("")
                ));
                record
            })
            .collect();
        let created = crate::store::JournalEntry {
            seq: 0,
            at_ms: now,
            step: None,
            event: JournalEvent::RunCreated { run_key },
        };
        self.store.commit_run(RunCommit {
            plan: Some((plan_digest, validated.plan.clone())),
            run,
            steps,
            journal: vec![created],
        })?;
        self.store.flush()?;
        Ok(StartedRun {
            run_id,
            continued: false,
        })
    }

    /// Executes a run until every step is final, something fails, or `shutdown` turns true.
    pub async fn execute(
        &self,
        run_id: &str,
        shutdown: watch::Receiver<bool>,
    ) -> Result<RunSummary, EngineError> {
        let LoadedRun {
            mut run,
            plan,
            graph,
            index_by_id,
            records,
            next_seq,
        } = self.load_run(run_id).await?;
        run.state = RunState::Running;
        run.sessions += 1;
        run.updated_at_ms = now_ms();
        run.finished_at_ms = None;
        let session = SessionStart {
            plan,
            index_by_id,
            next_seq,
            shutdown: shutdown.clone(),
        };
        let shared = Arc::new(self.run_shared(&run, session, &records));
        begin_session(&shared, &run, &records).await?;

        let span = tracing::info_span!("run", run_id = %run_id, session = run.sessions);
        tracing::info!(parent: &span, steps = records.len(), "run session started");
        let outcome = schedule(
            &shared,
            &graph,
            records,
            self.config.concurrency.max(1),
            self.config.grace_period,
            shutdown,
        )
        .instrument(span.clone())
        .await;
        let summary = end_session(&shared, run, &outcome).await?;
        tracing::info!(parent: &span, state = summary.state.as_str(), "run session ended");
        Ok(summary)
    }
}
