//! One session of a run: what it loads from the store, and how it begins and ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::shared::{RunShared, StepView};
use super::{Engine, EngineError, RunSummary, ScheduleOutcome};
use crate::error::StoreError;
use crate::events::Event;
use crate::plan::{parse_duration, Plan};
use crate::policy::RetryPolicy;
use crate::store::{JournalEvent, RunRecord, RunState, StepRecord, StepState};
use crate::time::now_ms;
use crate::validate::{validate, ValidatedPlan};
use crate::vars::VarInput;

impl Engine {
    /// The run, its stored plan validated again, and its step records in plan order.
    pub(super) async fn load_run(&self, run_id: &str) -> Result<LoadedRun, EngineError> {
        let run = self
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
        Ok(LoadedRun {
            run,
            plan,
            graph,
            index_by_id,
            records,
            next_seq,
        })
    }

    /// The state this session's scheduler and step drivers share.
    pub(super) fn run_shared(
        &self,
        run: &RunRecord,
        session: SessionStart,
        records: &[StepRecord],
    ) -> RunShared {
        let (retry, timeouts) = self.step_policies(&session.plan);
        let views = records
            .iter()
            .map(|r| StepView {
                state: r.state(),
                outputs: r.outputs.clone(),
            })
            .collect();
        RunShared {
            run_id: run.id.clone(),
            run_key: run.run_key.clone(),
            plan: session.plan,
            index_by_id: session.index_by_id,
            vars: run.vars.clone(),
            store: Arc::clone(&self.store),
            registry: Arc::clone(&self.registry),
            config: self.config.clone(),
            retry,
            timeouts,
            views: Mutex::new(views),
            next_seq: AtomicU64::new(session.next_seq),
            shutdown: session.shutdown,
            hooks: self.hooks.clone(),
            events: self.events.clone(),
        }
    }

    /// Each step's retry policy and timeout.
    fn step_policies(&self, plan: &Plan) -> (Vec<RetryPolicy>, Vec<Option<Duration>>) {
        // Both were checked by validation; defaults stand in should that ever change.
        let retry = plan
            .steps
            .iter()
            .map(|spec| {
                spec.retry
                    .as_ref()
                    .and_then(|r| self.config.retry.with_overrides(r).ok())
                    .unwrap_or_else(|| self.config.retry.clone())
            })
            .collect();
        let timeouts = plan
            .steps
            .iter()
            .map(|spec| spec.timeout.as_deref().and_then(|t| parse_duration(t).ok()))
            .collect();
        (retry, timeouts)
    }
}

/// What a session reads from the store before it starts.
pub(super) struct LoadedRun {
    pub(super) run: RunRecord,
    pub(super) plan: Plan,
    pub(super) graph: crate::dag::StepGraph,
    pub(super) index_by_id: HashMap<String, usize>,
    /// In plan order; a step without a stored record is pending.
    pub(super) records: Vec<StepRecord>,
    pub(super) next_seq: u64,
}

/// What [`Engine::run_shared`] takes over from the loaded run.
pub(super) struct SessionStart {
    pub(super) plan: Plan,
    pub(super) index_by_id: HashMap<String, usize>,
    pub(super) next_seq: u64,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Records the session's start (and the steps found applying, in doubt), durably.
pub(super) async fn begin_session(
    shared: &RunShared,
    run: &RunRecord,
    records: &[StepRecord],
) -> Result<(), EngineError> {
    let mut journal = vec![shared.journal_entry(
        None,
        JournalEvent::SessionStarted {
            session: run.sessions,
        },
    )];
    for record in records.iter().filter(|r| r.state() == StepState::Applying) {
        journal.push(shared.journal_entry(
            Some(&record.step_id),
            JournalEvent::InDoubt {
                state: record.state(),
            },
        ));
        shared.emit(Event::StepInDoubt {
            step: record.step_id.clone(),
        });
    }
    shared.commit_run(run, journal).await?;
    shared.emit(Event::RunStarted {
        run_id: run.id.clone(),
        session: run.sessions,
        steps: records.len(),
        settled: (records.iter())
            .filter(|record| record.state() == StepState::Skipped)
            .map(|record| record.step_id.clone())
            .collect(),
    });
    Ok(())
}

/// Records how the session ended (the run's state, steps cut off in doubt), durably.
pub(super) async fn end_session(
    shared: &RunShared,
    mut run: RunRecord,
    outcome: &ScheduleOutcome,
) -> Result<RunSummary, EngineError> {
    let steps = in_plan_order(shared.store.steps(&run.id)?, &shared.plan, &shared.index_by_id);
    run.state = if outcome.interrupted {
        RunState::Interrupted
    } else if steps.iter().all(|s| s.state().is_final()) {
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
    shared.emit(Event::RunFinished {
        run_id: run.id.clone(),
        state: run.state,
    });
    Ok(RunSummary {
        run_id: run.id,
        state: run.state,
        steps,
    })
}

/// Step records in plan order; a step without a record is pending.
pub(super) fn in_plan_order(
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
