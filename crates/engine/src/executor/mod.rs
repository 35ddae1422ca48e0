//! The executor: creates or continues runs and drives their steps on tokio.
//!
//! Ready steps run in parallel up to `concurrency`; among ready steps the one with the longest
//! remaining path goes first. A failed step blocks only its descendants. On shutdown no new step
//! starts, running steps get `grace_period` to finish, and whatever is still applying is left in
//! doubt on disk, to be observed first on resume.

mod session;
mod shared;
mod step;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::digest::digest_hex;
use crate::error::{ErrorClass, StoreError};
use crate::events::{Event, Hooks};
use crate::kind::Registry;
use crate::policy::{PollPolicy, RetryPolicy};
use crate::store::{JournalEvent, RunCommit, RunRecord, RunState, StepRecord, StepState, StepStatus, Store};
use crate::time::{compact_stamp, now_ms};
use crate::validate::{Problem, ValidatedPlan};
use session::{begin_session, end_session, LoadedRun, SessionStart};
use shared::RunShared;
use step::{StepDriver, StepEnd};

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
    #[error("no run `{0}` in this store; `sluice runs` lists the runs it has")]
    UnknownRun(String),
    #[error("no fleet run `{0}` in this store; `sluice fleet status` lists the fleet runs it has")]
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

struct ScheduleOutcome {
    interrupted: bool,
    /// Steps cut off while applying when the grace period ran out.
    in_doubt: Vec<String>,
}

async fn schedule(
    shared: &Arc<RunShared>,
    graph: &crate::dag::StepGraph,
    records: Vec<StepRecord>,
    concurrency: usize,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> ScheduleOutcome {
    let count = records.len();
    // Only skipped steps are settled for good: a succeeded one is observed again when its run
    // continues, and its dependents wait for that.
    let is_final: Vec<bool> = records.iter().map(|r| r.state() == StepState::Skipped).collect();
    let mut waiting_on: Vec<usize> = (0..count)
        .map(|i| graph.dependencies(i).iter().filter(|&&d| !is_final[d]).count())
        .collect();
    let mut blocked = vec![false; count];
    let mut ready: BinaryHeap<(usize, Reverse<usize>)> = (0..count)
        .filter(|&i| !is_final[i] && waiting_on[i] == 0)
        .map(|i| (graph.priority(i), Reverse(i)))
        .collect();
    let mut records: Vec<Option<StepRecord>> = records.into_iter().map(Some).collect();
    let release = |i: usize,
                   waiting_on: &mut Vec<usize>,
                   ready: &mut BinaryHeap<(usize, Reverse<usize>)>,
                   blocked: &Vec<bool>| {
        // A dependent already final (skipped by `when` at creation) is neither counted nor
        // launched.
        for &d in graph.dependents(i).iter().filter(|&&d| !is_final[d]) {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 && !blocked[d] {
                ready.push((graph.priority(d), Reverse(d)));
            }
        }
    };

    let mut running: JoinSet<(usize, StepEnd)> = JoinSet::new();
    let mut running_ids: BTreeMap<tokio::task::Id, usize> = BTreeMap::new();
    let mut stopping = *shutdown.borrow();
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    let mut outcome = ScheduleOutcome {
        interrupted: stopping,
        in_doubt: Vec::new(),
    };

    loop {
        while !stopping && running.len() < concurrency {
            let Some((_, Reverse(i))) = ready.pop() else { break };
            let record = records[i].take().expect("a step is launched once per session");
            let driver = StepDriver::new(Arc::clone(shared), i, record);
            let span = tracing::info_span!("step", step = %shared.plan.steps[i].id, kind = %shared.plan.steps[i].kind);
            let handle = running.spawn(async move { (i, driver.run().await) }.instrument(span));
            running_ids.insert(handle.id(), i);
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next_with_id() => {
                let Some(joined) = joined else { continue };
                let (i, end) = match joined {
                    Ok((id, result)) => { running_ids.remove(&id); result }
                    Err(error) => {
                        let i = running_ids.remove(&error.id()).expect("every task is tracked");
                        record_panic(shared, i, &error.to_string());
                        (i, StepEnd::Failed)
                    }
                };
                match end {
                    StepEnd::Succeeded | StepEnd::Skipped => release(i, &mut waiting_on, &mut ready, &blocked),
                    StepEnd::Failed => {
                        for d in graph.descendants(i) {
                            blocked[d] = true;
                        }
                    }
                    StepEnd::Interrupted => outcome.interrupted = true,
                }
            }
            // The guard `wait_for` returns is dropped inside, so the loop stays `Send`.
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; }, if !stopping => {
                stopping = true;
                outcome.interrupted = true;
                grace_deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = sleep_until_opt(grace_deadline), if grace_deadline.is_some() => {
                for (_, &i) in running_ids.iter() {
                    if shared.view(i).state == StepState::Applying {
                        outcome.in_doubt.push(shared.plan.steps[i].id.clone());
                    }
                }
                running.abort_all();
                while running.join_next().await.is_some() {}
                break;
            }
        }
    }
    outcome
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A step kind panicked: record the step as failed so the run says why.
fn record_panic(shared: &RunShared, index: usize, message: &str) {
    let step_id = shared.plan.steps[index].id.clone();
    let mut record = shared
        .store
        .steps(&shared.run_id)
        .ok()
        .and_then(|steps| steps.into_iter().find(|s| s.step_id == step_id))
        .unwrap_or_else(|| StepRecord::pending(&step_id));
    let from = record.state();
    record.status = StepStatus::Failed {
        unsettled: record.status.operation().cloned(),
    };
    record.error = Some(crate::store::ErrorRecord {
        class: ErrorClass::Permanent,
        message: format!("the step kind panicked: {message}"),
    });
    let _ = shared.commit_step(
        &record,
        vec![JournalEvent::Transition {
            from,
            to: StepState::Failed,
        }],
    );
}
