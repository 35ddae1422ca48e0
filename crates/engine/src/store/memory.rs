//! An in-memory [`Store`]: same semantics, no durability. For tests and embedders.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{FleetRecord, JournalEntry, RunCommit, RunRecord, StepAppend, StepRecord, Store};
use crate::error::StoreError;
use crate::plan::Plan;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    runs: BTreeMap<String, RunRecord>,
    plans: HashMap<String, Plan>,
    latest_by_key: HashMap<String, String>,
    steps: HashMap<String, BTreeMap<String, StepRecord>>,
    journals: HashMap<String, Vec<JournalEntry>>,
    fleets: BTreeMap<String, FleetRecord>,
    fleet_runs: HashMap<String, BTreeMap<usize, String>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    fn write_steps(&mut self, run_id: &str, append: StepAppend) {
        self.journals
            .entry(run_id.to_string())
            .or_default()
            .extend(append.journal);
        let steps = self.steps.entry(run_id.to_string()).or_default();
        for step in append.steps {
            steps.insert(step.step_id.clone(), step);
        }
    }
}

impl Store for MemoryStore {
    fn commit_run(&self, commit: RunCommit) -> Result<(), StoreError> {
        // INVARIANT: a run commit is atomic: every part is written under one lock.
        let mut inner = self.lock();
        if let Some((digest, plan)) = commit.plan {
            inner.plans.insert(digest, plan);
        }
        let run_id = commit.run.id.clone();
        inner
            .latest_by_key
            .insert(commit.run.run_key.clone(), run_id.clone());
        inner.runs.insert(run_id.clone(), commit.run);
        inner.write_steps(
            &run_id,
            StepAppend {
                journal: commit.journal,
                steps: commit.steps,
            },
        );
        Ok(())
    }

    fn append_steps(&self, run_id: &str, append: StepAppend) -> Result<(), StoreError> {
        self.lock().write_steps(run_id, append);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn flush_is_free(&self) -> bool {
        true
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.lock().runs.get(run_id).cloned())
    }

    fn plan(&self, digest: &str) -> Result<Option<Plan>, StoreError> {
        Ok(self.lock().plans.get(digest).cloned())
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs: Vec<RunRecord> = self.lock().runs.values().cloned().collect();
        runs.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(runs)
    }

    fn latest_run_for_key(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .latest_by_key
            .get(run_key)
            .and_then(|id| inner.runs.get(id))
            .cloned())
    }

    fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        Ok(self
            .lock()
            .steps
            .get(run_id)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default())
    }

    fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(self.lock().journals.get(run_id).cloned().unwrap_or_default())
    }

    fn commit_fleet(&self, fleet: &FleetRecord, plans: Vec<(String, Plan)>) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.plans.extend(plans);
        inner.fleets.insert(fleet.id.clone(), fleet.clone());
        Ok(())
    }

    fn fleet(&self, fleet_id: &str) -> Result<Option<FleetRecord>, StoreError> {
        Ok(self.lock().fleets.get(fleet_id).cloned())
    }

    fn fleets(&self) -> Result<Vec<FleetRecord>, StoreError> {
        let mut fleets: Vec<FleetRecord> = self.lock().fleets.values().cloned().collect();
        fleets.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(fleets)
    }

    fn set_fleet_target_run(&self, fleet_id: &str, index: usize, run_id: &str) -> Result<(), StoreError> {
        self.lock()
            .fleet_runs
            .entry(fleet_id.to_string())
            .or_default()
            .insert(index, run_id.to_string());
        Ok(())
    }

    fn fleet_target_runs(&self, fleet_id: &str) -> Result<BTreeMap<usize, String>, StoreError> {
        Ok(self.lock().fleet_runs.get(fleet_id).cloned().unwrap_or_default())
    }

    fn next_journal_seq(&self, run_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .journals
            .get(run_id)
            .and_then(|j| j.last())
            .map_or(0, |e| e.seq + 1))
    }
}
