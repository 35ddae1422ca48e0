//! Durable state behind one small trait, with a sled backend for real runs and an in-memory
//! backend for tests and embedders that need no durability.
//!
//! Two kinds of write, each with its own guarantee (stated once, on [`Store`]):
//! - [`Store::commit_run`]: a run's record with what belongs with it, **atomic**;
//! - [`Store::append_steps`]: a step's journal entries and record, **ordered, not atomic**.
//!
//! The executor's ordering rule lives on top of this trait: a write that a later side effect
//! depends on is followed by [`Store::flush`] before that side effect. Flushes are batched: a
//! flush makes *every* earlier write durable, so concurrent steps share one fsync.

mod memory;
mod records;
mod sled_store;
mod step_status;

pub use memory::MemoryStore;
pub use records::*;
pub use sled_store::{CompactReport, SledStore};

use crate::error::StoreError;

/// Storage for runs, step records and journals. All writes of one run go through one writer.
///
/// What a crash may leave (before a [`Store::flush`] covered the write):
/// - of a [`RunCommit`], all of it or none of it;
/// - of a [`StepAppend`], a prefix: its journal entries in order, then its step records, so a
///   recovered step record never shows a transition its journal lacks. The record rules: a
///   journal entry whose record was lost is harmless, because the step observes first.
///
/// `SledStore` writes a run commit as one sled batch and step appends as plain inserts, which
/// sled's log recovers in order; `MemoryStore` applies each write whole under one lock (and
/// keeps nothing across a crash).
pub trait Store: Send + Sync + 'static {
    /// Writes the run record with its plan, step records and journal entries: atomic.
    fn commit_run(&self, commit: RunCommit) -> Result<(), StoreError>;
    /// Appends a run's journal entries, then writes its step records: in order, not atomic.
    fn append_steps(&self, run_id: &str, append: StepAppend) -> Result<(), StoreError>;
    /// Whether `flush` costs nothing (an in-memory store), so callers need not move it off the
    /// async threads.
    fn flush_is_free(&self) -> bool {
        false
    }
    /// Returns once every earlier commit is durable.
    fn flush(&self) -> Result<(), StoreError>;
    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError>;
    /// The plan stored under `digest` (see [`RunRecord::plan_digest`]).
    fn plan(&self, digest: &str) -> Result<Option<crate::plan::Plan>, StoreError>;
    /// Every run, oldest first.
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError>;
    /// The newest run created for this run key.
    fn latest_run_for_key(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Step records of a run, in no particular order. A step with no record is pending.
    fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError>;
    /// The run's journal, in order.
    fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError>;
    /// The sequence number the run's next journal entry takes (0 for an empty journal).
    fn next_journal_seq(&self, run_id: &str) -> Result<u64, StoreError>;
    /// The runs compaction removes when it keeps `keep` finished runs: every finished run
    /// ([`RunRecord::is_finished`]) but the newest `keep`, oldest first. A run that `run` or
    /// `resume` could continue is never among them.
    fn runs_to_compact(&self, keep: usize) -> Result<Vec<RunRecord>, StoreError> {
        Ok(to_compact(self.runs()?, keep))
    }
    /// Writes a fleet record, with the plans its targets name (atomic, durable on return).
    fn commit_fleet(
        &self,
        fleet: &FleetRecord,
        plans: Vec<(String, crate::plan::Plan)>,
    ) -> Result<(), StoreError>;
    fn fleet(&self, fleet_id: &str) -> Result<Option<FleetRecord>, StoreError>;
    /// Every fleet, oldest first.
    fn fleets(&self) -> Result<Vec<FleetRecord>, StoreError>;
    /// Records that target `index` of the fleet is served by run `run_id` (durable on return).
    fn set_fleet_target_run(&self, fleet_id: &str, index: usize, run_id: &str) -> Result<(), StoreError>;
    /// Which run serves each started target of the fleet, by target index.
    fn fleet_target_runs(
        &self,
        fleet_id: &str,
    ) -> Result<std::collections::BTreeMap<usize, String>, StoreError>;
}

/// Of `runs` (as [`Store::runs`] lists them), the ones compaction removes when it keeps `keep`
/// finished runs (see [`Store::runs_to_compact`]).
fn to_compact(runs: Vec<RunRecord>, keep: usize) -> Vec<RunRecord> {
    let mut finished: Vec<RunRecord> = runs.into_iter().filter(RunRecord::is_finished).collect();
    finished.truncate(finished.len().saturating_sub(keep));
    finished
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise")
}
