//! State shared by the scheduling loop and every step driver of one run session.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::EngineConfig;
use crate::error::StoreError;
use crate::events::{CrashPoint, Event, Hooks};
use crate::kind::{Outputs, Registry};
use crate::plan::Plan;
use crate::policy::RetryPolicy;
use crate::store::{
    JournalEntry, JournalEvent, RunCommit, RunRecord, StepAppend, StepRecord, StepState, Store,
};
use crate::time::now_ms;

/// What other steps may read of a step while the run goes on.
#[derive(Debug, Clone)]
pub(crate) struct StepView {
    pub state: StepState,
    pub outputs: Outputs,
}

pub(crate) struct RunShared {
    pub run_id: String,
    pub run_key: String,
    pub plan: Plan,
    pub index_by_id: HashMap<String, usize>,
    pub vars: BTreeMap<String, Value>,
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub config: EngineConfig,
    pub retry: Vec<RetryPolicy>,
    pub timeouts: Vec<Option<Duration>>,
    pub views: Mutex<Vec<StepView>>,
    pub next_seq: AtomicU64,
    pub shutdown: watch::Receiver<bool>,
    pub hooks: Option<Arc<dyn Hooks>>,
    pub events: Option<mpsc::UnboundedSender<Event>>,
}

/// The step was told to stop because the process is shutting down.
#[derive(Debug)]
pub(crate) struct Interrupted;

impl RunShared {
    pub fn journal_entry(&self, step: Option<&str>, event: JournalEvent) -> JournalEntry {
        JournalEntry {
            seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
            at_ms: now_ms(),
            step: step.map(str::to_string),
            event,
        }
    }

    /// Appends a step's journal entries, then its record (ordered, not atomic: see
    /// [`Store::append_steps`]), and mirrors the new state for the scheduler and for reference
    /// resolution.
    pub fn commit_step(&self, record: &StepRecord, events: Vec<JournalEvent>) -> Result<(), StoreError> {
        let journal = events
            .into_iter()
            .map(|e| self.journal_entry(Some(&record.step_id), e))
            .collect();
        self.store.append_steps(
            &self.run_id,
            StepAppend {
                journal,
                steps: vec![record.clone()],
            },
        )?;
        let index = self.index_of(&record.step_id);
        let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
        views[index] = StepView {
            state: record.state(),
            outputs: record.outputs.clone(),
        };
        Ok(())
    }

    /// Records the run with journal entries (atomic: see [`Store::commit_run`]), durably:
    /// run-level changes are rare and matter.
    pub async fn commit_run(&self, run: &RunRecord, journal: Vec<JournalEntry>) -> Result<(), StoreError> {
        self.store.commit_run(RunCommit::run(run.clone(), journal))?;
        self.flush().await
    }

    pub fn commit_journal(&self, step: Option<&str>, event: JournalEvent) -> Result<(), StoreError> {
        let entry = self.journal_entry(step, event);
        self.store.append_steps(
            &self.run_id,
            StepAppend {
                journal: vec![entry],
                steps: vec![],
            },
        )
    }

    /// Makes every earlier commit durable. Concurrent callers share one fsync (group commit).
    pub async fn flush(&self) -> Result<(), StoreError> {
        if self.store.flush_is_free() {
            return self.store.flush();
        }
        // On a multi-thread runtime, flush on this worker (tokio hands its other tasks to
        // another worker) and save a hop to the blocking pool; elsewhere that would panic.
        if tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| self.store.flush());
        }
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(result) => result,
            Err(join) => Err(StoreError::Sled(format!("flush task failed: {join}"))),
        }
    }

    pub fn index_of(&self, step_id: &str) -> usize {
        self.index_by_id[step_id]
    }

    pub fn view(&self, index: usize) -> StepView {
        self.views.lock().unwrap_or_else(|p| p.into_inner())[index].clone()
    }

    pub fn emit(&self, event: Event) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    pub fn hook(&self, point: CrashPoint, step_id: &str) {
        if let Some(hooks) = &self.hooks {
            hooks.reached(point, step_id);
        }
    }

    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps, unless shutdown begins first.
    pub async fn sleep(&self, delay: Duration) -> Result<(), Interrupted> {
        let mut shutdown = self.shutdown.clone();
        if *shutdown.borrow() {
            return Err(Interrupted);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = shutdown.wait_for(|stop| *stop) => Err(Interrupted),
        }
    }
}
