//! The scheduling loop of one run session: which steps start, in what order, and what a
//! shutdown leaves behind.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::shared::RunShared;
use super::step::{StepDriver, StepEnd};
use crate::dag::StepGraph;
use crate::error::ErrorClass;
use crate::store::{ErrorRecord, JournalEvent, StepRecord, StepState, StepStatus};

pub(super) struct ScheduleOutcome {
    pub interrupted: bool,
    /// Steps cut off while applying when the grace period ran out.
    pub in_doubt: Vec<String>,
}

/// Which steps may start: each step's unfinished dependencies, and the ready ones by priority
/// (longest remaining path first).
struct ReadySteps<'g> {
    graph: &'g StepGraph,
    /// Only skipped steps are settled for good: a succeeded one is observed again when its
    /// run continues, and its dependents wait for that.
    is_final: Vec<bool>,
    waiting_on: Vec<usize>,
    /// Descendants of a failed step: they never start.
    blocked: Vec<bool>,
    ready: BinaryHeap<(usize, Reverse<usize>)>,
}

impl<'g> ReadySteps<'g> {
    fn new(graph: &'g StepGraph, records: &[StepRecord]) -> Self {
        let count = records.len();
        let is_final: Vec<bool> = records.iter().map(|r| r.state() == StepState::Skipped).collect();
        let waiting_on: Vec<usize> = (0..count)
            .map(|i| graph.dependencies(i).iter().filter(|&&d| !is_final[d]).count())
            .collect();
        let ready = (0..count)
            .filter(|&i| !is_final[i] && waiting_on[i] == 0)
            .map(|i| (graph.priority(i), Reverse(i)))
            .collect();
        ReadySteps {
            graph,
            is_final,
            waiting_on,
            blocked: vec![false; count],
            ready,
        }
    }

    fn pop(&mut self) -> Option<usize> {
        self.ready.pop().map(|(_, Reverse(i))| i)
    }

    /// Step `i`'s session ended: release its dependents, or block them if it failed.
    fn ended(&mut self, i: usize, end: StepEnd) {
        match end {
            StepEnd::Succeeded | StepEnd::Skipped => {
                // A dependent already final (skipped by `when` at creation) is neither counted
                // nor launched.
                for &d in self.graph.dependents(i).iter().filter(|&&d| !self.is_final[d]) {
                    self.waiting_on[d] -= 1;
                    if self.waiting_on[d] == 0 && !self.blocked[d] {
                        self.ready.push((self.graph.priority(d), Reverse(d)));
                    }
                }
            }
            StepEnd::Failed => {
                for d in self.graph.descendants(i) {
                    self.blocked[d] = true;
                }
            }
            StepEnd::Interrupted => {}
        }
    }
}

/// The step tasks of a session, each known by its step index.
#[derive(Default)]
struct RunningSteps {
    tasks: JoinSet<(usize, StepEnd)>,
    index_of: BTreeMap<tokio::task::Id, usize>,
}

impl RunningSteps {
    fn launch(&mut self, shared: &Arc<RunShared>, i: usize, record: StepRecord) {
        let driver = StepDriver::new(Arc::clone(shared), i, record);
        let spec = &shared.plan.steps[i];
        let span = tracing::info_span!("step", step = %spec.id, kind = %spec.kind);
        let handle = self
            .tasks
            .spawn(async move { (i, driver.run().await) }.instrument(span));
        self.index_of.insert(handle.id(), i);
    }

    /// The next step to end; a panicked step is recorded as failed. `None` when none run.
    async fn next_end(&mut self, shared: &RunShared) -> Option<(usize, StepEnd)> {
        Some(match self.tasks.join_next_with_id().await? {
            Ok((id, result)) => {
                self.index_of.remove(&id);
                result
            }
            Err(error) => {
                let i = self.index_of.remove(&error.id()).expect("every task is tracked");
                record_panic(shared, i, &error.to_string());
                (i, StepEnd::Failed)
            }
        })
    }

    /// The grace period is over: steps still applying are in doubt; every task is stopped.
    async fn cut_off(&mut self, shared: &RunShared) -> Vec<String> {
        let in_doubt = (self.index_of.values())
            .filter(|&&i| shared.view(i).state == StepState::Applying)
            .map(|&i| shared.plan.steps[i].id.clone())
            .collect();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        in_doubt
    }
}

pub(super) async fn schedule(
    shared: &Arc<RunShared>,
    graph: &StepGraph,
    records: Vec<StepRecord>,
    concurrency: usize,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> ScheduleOutcome {
    let mut ready = ReadySteps::new(graph, &records);
    let mut records: Vec<Option<StepRecord>> = records.into_iter().map(Some).collect();
    let mut running = RunningSteps::default();
    let mut stopping = *shutdown.borrow();
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    let mut outcome = ScheduleOutcome {
        interrupted: stopping,
        in_doubt: Vec::new(),
    };

    loop {
        while !stopping && running.tasks.len() < concurrency {
            let Some(i) = ready.pop() else { break };
            let record = records[i].take().expect("a step is launched once per session");
            running.launch(shared, i, record);
        }
        if running.tasks.is_empty() {
            break;
        }
        tokio::select! {
            ended = running.next_end(shared) => {
                let Some((i, end)) = ended else { continue };
                outcome.interrupted |= end == StepEnd::Interrupted;
                ready.ended(i, end);
            }
            // The guard `wait_for` returns is dropped inside, so the loop stays `Send`.
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; }, if !stopping => {
                stopping = true;
                outcome.interrupted = true;
                grace_deadline = Some(tokio::time::Instant::now() + grace);
            }
            _ = sleep_until_opt(grace_deadline), if grace_deadline.is_some() => {
                outcome.in_doubt = running.cut_off(shared).await;
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
    record.error = Some(ErrorRecord {
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
