//! Fleets: one plan run against many targets in one process and one store.
//!
//! Each target is an ordinary run (own run key, own journal), so everything a single run
//! guarantees holds per target: a fleet killed at any instant continues each unfinished target
//! exactly as `resume` would, and a target whose run succeeded in this fleet is not run again.
//! One target's failure never stops the others. The fleet record is written when the fleet is
//! created and when a session of it starts and ends (the embedder may add to its `extra`);
//! which run serves which target is written as each target starts
//! ([`Store::set_fleet_target_run`]), before its first step.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::digest::digest_hex;
use crate::error::ErrorClass;
use crate::events::Event;
use crate::executor::{Engine, EngineError};
use crate::kind::Outputs;
use crate::plan::Plan;
use crate::store::{FleetRecord, FleetState, FleetTarget, RunState, StepRecord, StepState, Store};
use crate::time::{compact_stamp, now_ms};
use crate::validate::{validate, ValidatedPlan};
use crate::vars::VarInput;

/// One target to put in a new fleet: a name for people and the validated plan of its run.
pub struct FleetTargetSpec {
    pub name: String,
    pub validated: ValidatedPlan,
}

/// Which fleet [`Engine::start_fleet`] picked.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedFleet {
    pub fleet_id: String,
    /// True when an unfinished fleet with the same key was continued.
    pub continued: bool,
}

/// Progress of a fleet, for the CLI and embedders.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FleetEvent {
    TargetStarted {
        index: usize,
        name: String,
        run_id: String,
        continued: bool,
    },
    /// An event of target `index`'s run.
    Step {
        index: usize,
        event: Event,
    },
    TargetFinished {
        outcome: TargetOutcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Not started in any session of this fleet yet.
    NotStarted,
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl TargetState {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::NotStarted => "not_started",
            TargetState::Running => "running",
            TargetState::Succeeded => "succeeded",
            TargetState::Failed => "failed",
            TargetState::Interrupted => "interrupted",
        }
    }
}

/// A mutation a target's run made (a step whose record carries an applied change).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedChange {
    pub step: String,
    pub kind: String,
    pub action: String,
    pub summary: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: Outputs,
}

/// Why a target failed: the first failed step of its run, or what stopped it from starting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetFailure {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub class: FailureClass,
    pub message: String,
}

/// The class of a target's failure, written as one word in reports: a step's
/// [`ErrorClass`], or one of the two ways a target fails without a step error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// A step failed with an error of this class.
    Step(ErrorClass),
    /// The target's stored plan is no longer valid here: it never started (`invalid`).
    Invalid,
    /// A step is recorded failed without an error (`failed`).
    Unrecorded,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Step(class) => class.as_str(),
            FailureClass::Invalid => "invalid",
            FailureClass::Unrecorded => "failed",
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureClass {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Where one target stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetOutcome {
    pub index: usize,
    pub name: String,
    pub vars: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub state: TargetState,
    /// What the target's run changed; empty for a target that was already converged.
    pub changes: Vec<AppliedChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<TargetFailure>,
}

/// The end of one session of a fleet.
#[derive(Debug, Clone)]
pub struct FleetSummary {
    pub fleet_id: String,
    pub state: FleetState,
    pub targets: Vec<TargetOutcome>,
}

impl Engine {
    /// Continues the newest fleet with `fleet_key` if it is unfinished and `may_continue`
    /// accepts it, or creates a new fleet holding `targets` (their plans stored once per
    /// digest). Writes nothing when continuing. (The CLI continues a fleet that was killed or
    /// stopped whatever its day, but one that ended with failed targets only the same day, so
    /// that a target failing for good never keeps the next nights from making new projects.)
    pub fn start_fleet(
        &self,
        name: &str,
        fleet_key: &str,
        source: &str,
        targets: &[FleetTargetSpec],
        extra: Value,
        may_continue: &dyn Fn(&FleetRecord) -> bool,
    ) -> Result<StartedFleet, EngineError> {
        let store = self.store();
        if let Some(fleet) = store
            .fleets()?
            .into_iter()
            .rev()
            .find(|f| f.fleet_key == fleet_key)
        {
            if !fleet.is_finished() && may_continue(&fleet) {
                return Ok(StartedFleet {
                    fleet_id: fleet.id,
                    continued: true,
                });
            }
        }
        let now = now_ms();
        let fleet_id = format!(
            "fleet-{}-{}",
            compact_stamp(now),
            &digest_hex(format!("{fleet_key}{now}{}", std::process::id()).as_bytes())[..6]
        );
        let mut plans: HashMap<String, Plan> = HashMap::new();
        let records = targets
            .iter()
            .map(|target| {
                let plan_digest = digest_hex(
                    serde_json::to_string(&target.validated.plan)
                        .unwrap_or_default()
                        .as_bytes(),
                );
                plans
                    .entry(plan_digest.clone())
                    .or_insert_with(|| target.validated.plan.clone());
                FleetTarget {
                    name: target.name.clone(),
                    plan_digest,
                    vars: target.validated.vars.clone(),
                }
            })
            .collect();
        let record = FleetRecord {
            id: fleet_id.clone(),
            fleet_key: fleet_key.to_string(),
            name: name.to_string(),
            source: source.to_string(),
            state: FleetState::Running,
            created_at_ms: now,
            updated_at_ms: now,
            finished_at_ms: None,
            sessions: 0,
            targets: records,
            extra,
        };
        store.commit_fleet(&record, plans.into_iter().collect())?;
        Ok(StartedFleet {
            fleet_id,
            continued: false,
        })
    }

    /// Runs a fleet's targets, at most `concurrency` at once, until each has ended or
    /// `shutdown` turns true (then no new target starts and running ones stop as a run does).
    /// Targets whose run already succeeded in this fleet are reported, not run again.
    pub async fn execute_fleet(
        &self,
        fleet_id: &str,
        concurrency: usize,
        shutdown: watch::Receiver<bool>,
        events: Option<mpsc::UnboundedSender<FleetEvent>>,
    ) -> Result<FleetSummary, EngineError> {
        let store = Arc::clone(self.store());
        let fleet = begin_fleet_session(store.as_ref(), fleet_id)?;
        let plans = fleet_plans(store.as_ref(), &fleet)?;
        let (mut outcomes, to_run) = finished_first(store.as_ref(), &fleet)?;
        let session = FleetSession {
            fleet: Arc::new(fleet),
            plans,
            shutdown,
            events,
        };
        let stopped = self
            .run_targets(&session, to_run, concurrency, &mut outcomes)
            .await?;
        let FleetSession { fleet, shutdown, .. } = session;
        let targets: Vec<TargetOutcome> = outcomes
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| outcome.unwrap_or_else(|| not_started(index, &fleet.targets[index])))
            .collect();
        let fleet = Arc::try_unwrap(fleet).unwrap_or_else(|shared| (*shared).clone());
        let stopped = stopped || *shutdown.borrow();
        end_fleet_session(store.as_ref(), fleet, targets, stopped)
    }

    /// Runs the targets `to_run`, at most `concurrency` at once, recording each one's outcome;
    /// returns whether shutdown stopped it before every target started.
    async fn run_targets(
        &self,
        session: &FleetSession,
        to_run: Vec<usize>,
        concurrency: usize,
        outcomes: &mut [Option<TargetOutcome>],
    ) -> Result<bool, EngineError> {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut running: JoinSet<Result<TargetOutcome, EngineError>> = JoinSet::new();
        let mut stopped = false;
        for index in to_run {
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = wait_for_stop(session.shutdown.clone()) => { stopped = true; break; }
            };
            if *session.shutdown.borrow() {
                stopped = true;
                break;
            }
            let (engine, fleet, shutdown, events) = (
                self.clone(),
                Arc::clone(&session.fleet),
                session.shutdown.clone(),
                session.events.clone(),
            );
            let plan = Arc::clone(&session.plans[&fleet.targets[index].plan_digest]);
            running.spawn(async move {
                let outcome = engine
                    .run_target(&fleet, index, &plan, shutdown, events.clone())
                    .await;
                drop(permit);
                if let (Ok(outcome), Some(events)) = (&outcome, &events) {
                    let _ = events.send(FleetEvent::TargetFinished {
                        outcome: outcome.clone(),
                    });
                }
                outcome
            });
            // Reap finished targets as we go so errors surface early.
            while let Some(done) = running.try_join_next() {
                let outcome = joined(done)?;
                let at = outcome.index;
                outcomes[at] = Some(outcome);
            }
        }
        while let Some(done) = running.join_next().await {
            let outcome = joined(done)?;
            let at = outcome.index;
            outcomes[at] = Some(outcome);
        }
        Ok(stopped)
    }

    /// Starts (or continues) target `index`'s run and drives it to its end.
    async fn run_target(
        &self,
        fleet: &FleetRecord,
        index: usize,
        plan: &Plan,
        shutdown: watch::Receiver<bool>,
        events: Option<mpsc::UnboundedSender<FleetEvent>>,
    ) -> Result<TargetOutcome, EngineError> {
        let target = &fleet.targets[index];
        let given: BTreeMap<String, VarInput> = target
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), VarInput::Json(v.clone())))
            .collect();
        let validated = match validate(plan.clone(), &fleet.source, self.registry(), &given) {
            Ok(validated) => validated,
            Err(problems) => {
                let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                return Ok(invalid_target(index, target, None, problems.join("; ")));
            }
        };
        let started = self.start(&validated, &fleet.source)?;
        // `execute` reads the plan back from the store: a thousand targets in flight need not
        // keep a second copy each.
        drop(validated);
        // Durable before the target's first step: `fleet status` and `fleet resume` find it.
        self.store()
            .set_fleet_target_run(&fleet.id, index, &started.run_id)?;
        let engine = match &events {
            Some(events) => {
                let _ = events.send(FleetEvent::TargetStarted {
                    index,
                    name: target.name.clone(),
                    run_id: started.run_id.clone(),
                    continued: started.continued,
                });
                self.forwarding_events(index, events.clone())
            }
            None => self.clone(),
        };
        let summary = match engine.execute(&started.run_id, shutdown).await {
            Ok(summary) => summary,
            Err(EngineError::Store(error)) => return Err(EngineError::Store(error)),
            // Anything else concerns this target alone.
            Err(error) => {
                let run_id = Some(started.run_id.clone());
                return Ok(invalid_target(index, target, run_id, error.to_string()));
            }
        };
        drop(engine);
        Ok(outcome_of(
            index,
            target,
            &started.run_id,
            summary.state,
            &summary.steps,
            plan,
        ))
    }

    /// This engine, its run's events forwarded to `events` as target `index`'s.
    fn forwarding_events(&self, index: usize, events: mpsc::UnboundedSender<FleetEvent>) -> Engine {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let _ = events.send(FleetEvent::Step { index, event });
            }
        });
        self.clone().with_events(tx)
    }
}

/// A target that failed before any of its steps could run: its plan or stored run is invalid.
fn invalid_target(
    index: usize,
    target: &FleetTarget,
    run_id: Option<String>,
    message: String,
) -> TargetOutcome {
    let mut outcome = not_started(index, target);
    outcome.run_id = run_id;
    outcome.state = TargetState::Failed;
    outcome.failure = Some(TargetFailure {
        step: None,
        class: FailureClass::Invalid,
        message,
    });
    outcome
}

/// What every target of one fleet session shares.
struct FleetSession {
    fleet: Arc<FleetRecord>,
    /// The targets' plans, by digest, each read once.
    plans: HashMap<String, Arc<Plan>>,
    shutdown: watch::Receiver<bool>,
    events: Option<mpsc::UnboundedSender<FleetEvent>>,
}

/// Reads the fleet and records that a session of it starts.
fn begin_fleet_session(store: &dyn Store, fleet_id: &str) -> Result<FleetRecord, EngineError> {
    let mut fleet = store
        .fleet(fleet_id)?
        .ok_or_else(|| EngineError::UnknownFleet(fleet_id.to_string()))?;
    fleet.state = FleetState::Running;
    fleet.sessions += 1;
    fleet.updated_at_ms = now_ms();
    fleet.finished_at_ms = None;
    store.commit_fleet(&fleet, Vec::new())?;
    Ok(fleet)
}

/// Every plan the fleet's targets name, by digest.
fn fleet_plans(store: &dyn Store, fleet: &FleetRecord) -> Result<HashMap<String, Arc<Plan>>, EngineError> {
    let mut plans: HashMap<String, Arc<Plan>> = HashMap::new();
    for target in &fleet.targets {
        if !plans.contains_key(&target.plan_digest) {
            let plan = store.plan(&target.plan_digest)?.ok_or_else(|| {
                EngineError::Store(crate::error::StoreError::Corrupt {
                    key: format!("plan/{}", target.plan_digest),
                    reason: format!("the plan of fleet `{}` is missing", fleet.id),
                })
            })?;
            plans.insert(target.plan_digest.clone(), Arc::new(plan));
        }
    }
    Ok(plans)
}

/// The outcomes of targets already finished (they are not redone), and the targets to run.
fn finished_first(
    store: &dyn Store,
    fleet: &FleetRecord,
) -> Result<(Vec<Option<TargetOutcome>>, Vec<usize>), EngineError> {
    let mapped = store.fleet_target_runs(&fleet.id)?;
    let mut outcomes: Vec<Option<TargetOutcome>> = vec![None; fleet.targets.len()];
    let mut to_run = Vec::new();
    let mut run_plans = PlanCache::default();
    for (index, target) in fleet.targets.iter().enumerate() {
        match mapped.get(&index) {
            Some(run_id) if run_finished(store, run_id)? => {
                let outcome = target_outcome(store, &mut run_plans, index, target, Some(run_id))?;
                outcomes[index] = Some(outcome);
            }
            _ => to_run.push(index),
        }
    }
    Ok((outcomes, to_run))
}

/// Records how the session ended: succeeded, interrupted (stopped, or a target cut off or not
/// started), or partial.
fn end_fleet_session(
    store: &dyn Store,
    mut fleet: FleetRecord,
    targets: Vec<TargetOutcome>,
    stopped: bool,
) -> Result<FleetSummary, EngineError> {
    let interrupted = stopped
        || targets
            .iter()
            .any(|t| matches!(t.state, TargetState::Interrupted | TargetState::NotStarted));
    fleet.state = if targets.iter().all(|t| t.state == TargetState::Succeeded) {
        FleetState::Succeeded
    } else if interrupted {
        FleetState::Interrupted
    } else {
        FleetState::Partial
    };
    fleet.updated_at_ms = now_ms();
    if fleet.is_finished() {
        fleet.finished_at_ms = Some(fleet.updated_at_ms);
    }
    store.commit_fleet(&fleet, Vec::new())?;
    Ok(FleetSummary {
        fleet_id: fleet.id,
        state: fleet.state,
        targets,
    })
}

/// Whether the run serving a target is finished for good: it succeeded, or it was compacted
/// away (only a succeeded run is).
fn run_finished(store: &dyn Store, run_id: &str) -> Result<bool, crate::error::StoreError> {
    Ok(store.run(run_id)?.is_none_or(|run| run.is_finished()))
}

/// How many of `fleet`'s targets are finished for good: one run record read per started
/// target, no step records (for progress before a session starts).
pub fn finished_targets(store: &dyn Store, fleet: &FleetRecord) -> Result<usize, crate::error::StoreError> {
    let mut finished = 0;
    for run_id in store.fleet_target_runs(&fleet.id)?.values() {
        finished += usize::from(run_finished(store, run_id)?);
    }
    Ok(finished)
}

/// Where target `index` of `fleet` stands according to the store (for `fleet status`).
pub fn fleet_outcomes(
    store: &dyn Store,
    fleet: &FleetRecord,
) -> Result<Vec<TargetOutcome>, crate::error::StoreError> {
    let mapped = store.fleet_target_runs(&fleet.id)?;
    let mut plans = PlanCache::default();
    fleet
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            target_outcome(
                store,
                &mut plans,
                index,
                target,
                mapped.get(&index).map(String::as_str),
            )
        })
        .collect()
}

/// Plans read once per digest: a thousand targets share one or two plans.
#[derive(Default)]
struct PlanCache(HashMap<String, Arc<Plan>>);

impl PlanCache {
    fn get(
        &mut self,
        store: &dyn Store,
        digest: &str,
        run_id: &str,
    ) -> Result<Arc<Plan>, crate::error::StoreError> {
        if let Some(plan) = self.0.get(digest) {
            return Ok(Arc::clone(plan));
        }
        let plan = Arc::new(
            store
                .plan(digest)?
                .ok_or_else(|| crate::error::StoreError::Corrupt {
                    key: format!("plan/{digest}"),
                    reason: format!("the plan of run `{run_id}` is missing"),
                })?,
        );
        self.0.insert(digest.to_string(), Arc::clone(&plan));
        Ok(plan)
    }
}

fn target_outcome(
    store: &dyn Store,
    plans: &mut PlanCache,
    index: usize,
    target: &FleetTarget,
    run_id: Option<&str>,
) -> Result<TargetOutcome, crate::error::StoreError> {
    let Some(run_id) = run_id else {
        return Ok(not_started(index, target));
    };
    let Some(run) = store.run(run_id)? else {
        // Compacted away: only succeeded runs are ever removed.
        let mut outcome = not_started(index, target);
        outcome.run_id = Some(run_id.to_string());
        outcome.state = TargetState::Succeeded;
        return Ok(outcome);
    };
    let steps = store.steps(run_id)?;
    let plan = plans.get(store, &run.plan_digest, run_id)?;
    Ok(outcome_of(index, target, run_id, run.state, &steps, &plan))
}

fn outcome_of(
    index: usize,
    target: &FleetTarget,
    run_id: &str,
    state: RunState,
    steps: &[StepRecord],
    plan: &Plan,
) -> TargetOutcome {
    let kinds: HashMap<&str, &str> = plan
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.kind.as_str()))
        .collect();
    let order: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    // In the order they started (plan order among equals): what a run did, as it happened.
    let mut steps: Vec<&StepRecord> = steps.iter().collect();
    steps.sort_by_key(|s| {
        (
            s.started_at_ms.unwrap_or(u64::MAX),
            order.get(s.step_id.as_str()).copied().unwrap_or(usize::MAX),
        )
    });
    let changes = steps
        .iter()
        .filter(|s| s.state() == StepState::Succeeded)
        .filter_map(|s| {
            s.change.as_ref().map(|change| AppliedChange {
                step: s.step_id.clone(),
                kind: kinds
                    .get(s.step_id.as_str())
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                action: change.action.as_str().to_string(),
                summary: change.summary.clone(),
                outputs: s.outputs.clone(),
            })
        })
        .collect();
    let failure = steps
        .iter()
        .find(|s| s.state() == StepState::Failed)
        .map(|s| TargetFailure {
            step: Some(s.step_id.clone()),
            class: s
                .error
                .as_ref()
                .map_or(FailureClass::Unrecorded, |e| FailureClass::Step(e.class)),
            message: s.error.as_ref().map_or_else(String::new, |e| e.message.clone()),
        });
    TargetOutcome {
        index,
        name: target.name.clone(),
        vars: target.vars.clone(),
        run_id: Some(run_id.to_string()),
        state: match state {
            RunState::Succeeded => TargetState::Succeeded,
            RunState::Failed => TargetState::Failed,
            RunState::Interrupted => TargetState::Interrupted,
            RunState::Running => TargetState::Running,
        },
        changes,
        failure,
    }
}

fn not_started(index: usize, target: &FleetTarget) -> TargetOutcome {
    TargetOutcome {
        index,
        name: target.name.clone(),
        vars: target.vars.clone(),
        run_id: None,
        state: TargetState::NotStarted,
        changes: Vec::new(),
        failure: None,
    }
}

fn joined(
    done: Result<Result<TargetOutcome, EngineError>, tokio::task::JoinError>,
) -> Result<TargetOutcome, EngineError> {
    match done {
        Ok(outcome) => outcome,
        Err(error) => Err(EngineError::Store(crate::error::StoreError::Sled(format!(
            "a fleet target's task ended abnormally: {error}"
        )))),
    }
}

async fn wait_for_stop(mut shutdown: watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}
