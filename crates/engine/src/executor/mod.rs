//! The executor: creates or continues runs and drives their steps on tokio.
//!
//! Ready steps run in parallel up to `concurrency`; among ready steps the one with the longest
//! remaining path goes first. A failed step blocks only its descendants. On shutdown no new step
//! starts, running steps get `grace_period` to finish, and whatever is still applying is left in
//! doubt on disk, to be observed first on resume.

mod shared;
mod step;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::digest::digest_hex;
use crate::error::StoreError;
use crate::events::{Event, Hooks};
use crate::kind::Registry;
use crate::plan::{parse_duration, Plan};
use crate::policy::{PollPolicy, RetryPolicy};
use crate::store::{Batch, JournalEvent, RunRecord, RunState, StepRecord, StepState, Store};
use crate::time::{compact_stamp, now_ms};
use crate::validate::{validate, Problem, ValidatedPlan};
use crate::vars::VarInput;
use shared::{RunShared, StepView};
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
                record.state = StepState::Skipped;
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
        self.store.commit(
            &run_id,
            Batch {
                plan: Some((plan_digest, validated.plan.clone())),
                run: Some(run),
                steps,
                journal: vec![created],
            },
        )?;
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
        let mut run = self
            .store
            .run(run_id)?
            .ok_or_else(|| EngineError::UnknownRun(run_id.to_string()))?;
        let given: BTreeMap<String, VarInput> = run
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), VarInput::Json(v.clone())))
            .collect();
        let loading = std::time::Instant::now();
        // Step records are read while the plan is validated: both dominate a large resume.
        let step_reader = {
            let (store, run_id) = (Arc::clone(&self.store), run_id.to_string());
            tokio::task::spawn_blocking(move || store.steps(&run_id))
        };
        let plan = self.store.plan(&run.plan_digest)?.ok_or_else(|| {
            EngineError::Store(StoreError::Corrupt {
                key: format!("plan/{}", run.plan_digest),
                reason: format!("the plan of run `{run_id}` is missing"),
            })
        })?;
        let ValidatedPlan { plan, graph, .. } = validate(plan, &run.plan_source, &self.registry, &given)
            .map_err(|problems| EngineError::StoredPlanInvalid {
                run: run_id.to_string(),
                problems,
            })?;
        tracing::debug!(
            elapsed_us = loading.elapsed().as_micros() as u64,
            "plan loaded and validated"
        );
        let count = plan.steps.len();
        let index_by_id: HashMap<String, usize> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let stored = step_reader
            .await
            .map_err(|e| StoreError::Sled(format!("reading step records failed: {e}")))??;
        let records = in_plan_order(stored, &plan, &index_by_id);
        let next_seq = self.store.next_journal_seq(run_id)?;
        tracing::debug!(
            elapsed_us = loading.elapsed().as_micros() as u64,
            "step records loaded"
        );

        let mut retry = Vec::with_capacity(count);
        let mut timeouts = Vec::with_capacity(count);
        for spec in &plan.steps {
            // Both were checked by validation; defaults stand in should that ever change.
            retry.push(
                spec.retry
                    .as_ref()
                    .and_then(|r| self.config.retry.with_overrides(r).ok())
                    .unwrap_or_else(|| self.config.retry.clone()),
            );
            timeouts.push(spec.timeout.as_deref().and_then(|t| parse_duration(t).ok()));
        }

        run.state = RunState::Running;
        run.sessions += 1;
        run.updated_at_ms = now_ms();
        run.finished_at_ms = None;
        let shared = Arc::new(RunShared {
            run_id: run_id.to_string(),
            run_key: run.run_key.clone(),
            plan,
            index_by_id,
            vars: run.vars.clone(),
            store: Arc::clone(&self.store),
            registry: Arc::clone(&self.registry),
            config: self.config.clone(),
            retry,
            timeouts,
            views: Mutex::new(
                records
                    .iter()
                    .map(|r| StepView {
                        state: r.state,
                        outputs: r.outputs.clone(),
                    })
                    .collect(),
            ),
            next_seq: AtomicU64::new(next_seq),
            shutdown: shutdown.clone(),
            hooks: self.hooks.clone(),
            events: self.events.clone(),
        });
        let mut journal = vec![shared.journal_entry(
            None,
            JournalEvent::SessionStarted {
                session: run.sessions,
            },
        )];
        for record in records.iter().filter(|r| r.state == StepState::Applying) {
            journal.push(shared.journal_entry(
                Some(&record.step_id),
                JournalEvent::InDoubt { state: record.state },
            ));
            shared.emit(Event::StepInDoubt {
                step: record.step_id.clone(),
            });
        }
        shared.commit_run(&run, journal).await?;
        shared.emit(Event::RunStarted {
            run_id: run_id.to_string(),
            session: run.sessions,
            steps: count,
        });

        let span = tracing::info_span!("run", run_id = %run_id, session = run.sessions);
        tracing::info!(parent: &span, steps = count, "run session started");
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

        let steps = in_plan_order(self.store.steps(run_id)?, &shared.plan, &shared.index_by_id);
        run.state = if outcome.interrupted {
            RunState::Interrupted
        } else if steps.iter().all(|s| s.state.is_final()) {
            RunState::Succeeded
        } else {
            RunState::Failed
        };
        run.updated_at_ms = now_ms();
        if run.is_finished() {
            run.finished_at_ms = Some(run.updated_at_ms);
        }
        let mut journal = Vec::new();
        for step in &outcome.in_doubt {
            journal.push(shared.journal_entry(
                Some(step),
                JournalEvent::InDoubt {
                    state: StepState::Applying,
                },
            ));
        }
        if outcome.interrupted {
            journal.push(shared.journal_entry(None, JournalEvent::Interrupted));
        }
        journal.push(shared.journal_entry(None, JournalEvent::RunFinished { state: run.state }));
        shared.commit_run(&run, journal).await?;
        tracing::info!(parent: &span, state = run.state.as_str(), "run session ended");
        shared.emit(Event::RunFinished {
            run_id: run_id.to_string(),
            state: run.state,
        });
        Ok(RunSummary {
            run_id: run_id.to_string(),
            state: run.state,
            steps,
        })
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
    let is_final: Vec<bool> = records.iter().map(|r| r.state == StepState::Skipped).collect();
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
    let from = record.state;
    record.state = StepState::Failed;
    record.error = Some(crate::store::ErrorRecord {
        class: "permanent".into(),
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

/// Step records in plan order; a step without a record is pending.
fn in_plan_order(
    stored: Vec<StepRecord>,
    plan: &Plan,
    index_by_id: &HashMap<String, usize>,
) -> Vec<StepRecord> {
    let mut records: Vec<Option<StepRecord>> = vec![None; plan.steps.len()];
    for record in stored {
        // A record always belongs to the run's own stored plan, so every id is known.
        if let Some(&i) = index_by_id.get(&record.step_id) {
            records[i] = Some(record);
        }
    }
    records
        .into_iter()
        .zip(&plan.steps)
        .map(|(record, spec)| record.unwrap_or_else(|| StepRecord::pending(&spec.id)))
        .collect()
}
