//! The durable [`Store`] on sled.
//!
//! Layout: one directory holding `sluice.lock` (an OS file lock held while the store is open, so
//! a second process fails at once instead of corrupting anything), `db/` (sled) and
//! `sluice.store` (a marker: the format key is durable, so an empty recovery is damage). Keys in the
//! default tree: `meta/format`, `plan/{digest}`, `run/{run}`, `key/{run_key}` → run id,
//! `step/{run}/{step}`, `zjrnl/{run}/{seq as 16 hex digits}`; values are JSON.
//!
//! Two layout decisions matter for speed: plans are stored once, apart from the small run
//! records that are rewritten often, and journal keys sort after everything else, so that
//! appending to a journal never rewrites a sled leaf holding other records.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use std::collections::BTreeMap;

use super::{
    decode, encode, FleetRecord, JournalEntry, RunCommit, RunRecord, StepAppend, StepRecord, Store,
    FORMAT_VERSION,
};
use crate::error::StoreError;

const LOCK_FILE: &str = "sluice.lock";
/// Written once the format key is durable: from then on, a database sled recovers as empty is
/// damaged, not new.
const MARKER: &str = "sluice.store";
const DB_DIR: &str = "db";
const FORMAT_KEY: &[u8] = b"meta/format";
/// Journal keys sort last (see the module docs).
const JOURNAL: &str = "zjrnl/";

pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
    /// Holding the file keeps the OS lock; it is released when the store is dropped.
    _lock: File,
    /// Commits applied so far, and how many of them are known durable (group commit).
    committed: AtomicU64,
    durable: AtomicU64,
    flush_gate: Mutex<()>,
}

/// What [`SledStore::compact`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactReport {
    pub runs_removed: usize,
    pub runs_kept: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`. Fails without changing anything when the
    /// directory belongs to something else, another process holds it, or its format is unknown.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_here(dir).map_err(|error| located(error, dir))
    }

    fn open_here(dir: &Path) -> Result<Self, StoreError> {
        let path_text = dir.display().to_string();
        let io = |source| StoreError::Io {
            path: path_text.clone(),
            source,
        };
        refuse_foreign(dir)?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = take_lock(dir)?;
        // sled reads a log it cannot check as a write torn by a crash, and recovers what came
        // before it: from a damaged file, often nothing. Once `MARKER` exists the format key
        // is durable, so an empty recovery is damage, and must not be taken for a new store
        // (that would write over the evidence).
        let marked = dir.join(MARKER).exists();
        let db = open_sled(&dir.join(DB_DIR))?;
        check_format(&db, dir, marked)?;
        if !marked {
            // After the format key is durable; stores made before the marker get it now.
            std::fs::write(
                dir.join(MARKER),
                format!("sluice store, format {FORMAT_VERSION}\n"),
            )
            .map_err(io)?;
        }
        Ok(SledStore {
            db,
            path: dir.to_path_buf(),
            _lock: lock,
            committed: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            flush_gate: Mutex::new(()),
        })
    }

    /// Whether `dir` holds a sluice store (without opening or creating anything).
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_DIR).is_dir()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the store's files take on disk.
    pub fn size_on_disk(&self) -> u64 {
        dir_size(&self.path.join(DB_DIR))
    }

    /// Removes every finished run ([`RunRecord::is_finished`]) but the newest `keep`, then
    /// rewrites the database so the space is returned to the file system. A run that `run` or
    /// `resume` could continue (running, failed, interrupted) is always kept.
    pub fn compact(dir: &Path, keep: usize) -> Result<CompactReport, StoreError> {
        Self::compact_here(dir, keep).map_err(|error| located(error, dir))
    }

    fn compact_here(dir: &Path, keep: usize) -> Result<CompactReport, StoreError> {
        let store = SledStore::open(dir)?;
        let bytes_before = store.size_on_disk();
        let runs = store.runs()?;
        let runs_before = runs.len();
        let mut removed_ids = Vec::new();
        // One read of the runs serves the count and the choice.
        for run in super::to_compact(runs, keep) {
            for prefix in [format!("step/{}/", run.id), format!("{JOURNAL}{}/", run.id)] {
                let mut batch = sled::Batch::default();
                for key in store.db.scan_prefix(prefix.as_bytes()).keys() {
                    batch.remove(key?);
                }
                store.db.apply_batch(batch)?;
            }
            store.db.remove(format!("run/{}", run.id).as_bytes())?;
            let key = format!("key/{}", run.run_key);
            if store.db.get(key.as_bytes())?.as_deref() == Some(run.id.as_bytes()) {
                store.db.remove(key.as_bytes())?;
            }
            removed_ids.push(run.id.clone());
        }
        // A fleet's targets that have not started yet have only their fleet to keep their plan.
        let kept_plans: std::collections::HashSet<String> = store
            .runs()?
            .into_iter()
            .map(|r| format!("plan/{}", r.plan_digest))
            .chain(
                store
                    .fleets()?
                    .into_iter()
                    .flat_map(|f| f.targets.into_iter().map(|t| format!("plan/{}", t.plan_digest))),
            )
            .collect();
        for key in store.db.scan_prefix(b"plan/").keys() {
            let key = key?;
            if !kept_plans.contains(String::from_utf8_lossy(&key).as_ref()) {
                store.db.remove(key)?;
            }
        }
        store.db.flush()?;
        // Rewrite into a fresh database: sled only gives space back when files are rebuilt.
        let fresh_path = dir.join("db.compacting");
        let _ = std::fs::remove_dir_all(&fresh_path);
        {
            let fresh = sled::Config::new().path(&fresh_path).open()?;
            fresh.import(store.db.export());
            fresh.flush()?;
        }
        let old_path = dir.join("db.old");
        let io = |source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        };
        let SledStore { db, _lock: lock, .. } = store;
        drop(db);
        let _ = std::fs::remove_dir_all(&old_path);
        std::fs::rename(dir.join(DB_DIR), &old_path).map_err(io)?;
        std::fs::rename(&fresh_path, dir.join(DB_DIR)).map_err(io)?;
        std::fs::remove_dir_all(&old_path).map_err(io)?;
        drop(lock);
        Ok(CompactReport {
            runs_removed: removed_ids.len(),
            runs_kept: runs_before - removed_ids.len(),
            bytes_before,
            bytes_after: dir_size(&dir.join(DB_DIR)),
        })
    }

    /// The hot path: a step's journal entries, then its record, as plain inserts. sled's
    /// `apply_batch` takes a global write lock that waits for any flush in flight (flushes hold
    /// the read side while they write), which would serialise every running step behind the
    /// disk.
    fn insert_step_writes(&self, run_id: &str, append: &StepAppend) -> Result<(), StoreError> {
        // INVARIANT: step appends are ordered: sled's log recovers inserts in order, so after a
        // crash the journal may hold an entry whose record was lost (harmless: the record rules,
        // and the step observes first), never the reverse.
        for entry in &append.journal {
            self.db.insert(journal_key(run_id, entry), encode(entry))?;
        }
        for step in &append.steps {
            self.db.insert(step_key(run_id, step), encode(step))?;
        }
        Ok(())
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.db.get(key.as_bytes()) {
            Ok(Some(bytes)) => decode(key.as_bytes(), &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(error) => Err(error.into()),
        }
        .map_err(|error| self.located(error))
    }

    /// See [`located`].
    fn located(&self, error: StoreError) -> StoreError {
        located(error, &self.path)
    }

    fn scan<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect::<Result<_, _>>()
            .map_err(|error| self.located(error))
    }
}

impl Store for SledStore {
    fn commit_run(&self, commit: RunCommit) -> Result<(), StoreError> {
        // INVARIANT: a run commit is atomic: one sled batch, recovered whole or not at all.
        let mut writes = sled::Batch::default();
        if let Some((digest, plan)) = &commit.plan {
            writes.insert(format!("plan/{digest}").as_bytes(), encode(plan));
        }
        let run = &commit.run;
        writes.insert(format!("run/{}", run.id).as_bytes(), encode(run));
        writes.insert(format!("key/{}", run.run_key).as_bytes(), run.id.as_bytes());
        for step in &commit.steps {
            writes.insert(step_key(&run.id, step), encode(step));
        }
        for entry in &commit.journal {
            writes.insert(journal_key(&run.id, entry), encode(entry));
        }
        self.db
            .apply_batch(writes)
            .map_err(|error| self.located(error.into()))?;
        self.committed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn append_steps(&self, run_id: &str, append: StepAppend) -> Result<(), StoreError> {
        self.insert_step_writes(run_id, &append)
            .map_err(|error| self.located(error))?;
        self.committed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let target = self.committed.load(Ordering::SeqCst);
        if self.durable.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        // Group commit: whoever holds the gate flushes for everyone who committed before it;
        // those waiting behind it usually find their commits already durable.
        let _gate = self.flush_gate.lock().unwrap_or_else(|p| p.into_inner());
        if self.durable.load(Ordering::SeqCst) >= target {
            return Ok(());
        }
        let upto = self.committed.load(Ordering::SeqCst);
        self.db.flush().map_err(|error| self.located(error.into()))?;
        self.durable.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.get_json(&format!("run/{run_id}"))
    }

    fn plan(&self, digest: &str) -> Result<Option<crate::plan::Plan>, StoreError> {
        self.get_json(&format!("plan/{digest}"))
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut runs: Vec<RunRecord> = self.scan("run/")?;
        runs.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(runs)
    }

    fn latest_run_for_key(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        let found = self
            .db
            .get(format!("key/{run_key}").as_bytes())
            .map_err(|error| self.located(error.into()))?;
        match found {
            Some(id) => self.run(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.scan(&format!("step/{run_id}/"))
    }

    fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.scan(&format!("{JOURNAL}{run_id}/"))
    }

    fn commit_fleet(
        &self,
        fleet: &FleetRecord,
        plans: Vec<(String, crate::plan::Plan)>,
    ) -> Result<(), StoreError> {
        let mut writes = sled::Batch::default();
        for (digest, plan) in &plans {
            writes.insert(format!("plan/{digest}").as_bytes(), encode(plan));
        }
        writes.insert(format!("fleet/{}", fleet.id).as_bytes(), encode(fleet));
        self.db
            .apply_batch(writes)
            .map_err(|error| self.located(error.into()))?;
        self.committed.fetch_add(1, Ordering::SeqCst);
        self.flush()
    }

    fn fleet(&self, fleet_id: &str) -> Result<Option<FleetRecord>, StoreError> {
        self.get_json(&format!("fleet/{fleet_id}"))
    }

    fn fleets(&self) -> Result<Vec<FleetRecord>, StoreError> {
        let mut fleets: Vec<FleetRecord> = self.scan("fleet/")?;
        fleets.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(fleets)
    }

    fn set_fleet_target_run(&self, fleet_id: &str, index: usize, run_id: &str) -> Result<(), StoreError> {
        self.db
            .insert(
                format!("fleetrun/{fleet_id}/{index:08}").as_bytes(),
                run_id.as_bytes(),
            )
            .map_err(|error| self.located(error.into()))?;
        self.committed.fetch_add(1, Ordering::SeqCst);
        self.flush()
    }

    fn fleet_target_runs(&self, fleet_id: &str) -> Result<BTreeMap<usize, String>, StoreError> {
        let prefix = format!("fleetrun/{fleet_id}/");
        let mut runs = BTreeMap::new();
        for item in self.db.scan_prefix(prefix.as_bytes()) {
            let (key, value) = item.map_err(|error| self.located(error.into()))?;
            let index = String::from_utf8_lossy(&key[prefix.len()..])
                .parse::<usize>()
                .map_err(|e| {
                    self.located(StoreError::Corrupt {
                        key: String::from_utf8_lossy(&key).into_owned(),
                        reason: e.to_string(),
                    })
                })?;
            runs.insert(index, String::from_utf8_lossy(&value).into_owned());
        }
        Ok(runs)
    }

    fn next_journal_seq(&self, run_id: &str) -> Result<u64, StoreError> {
        // Keys end in the sequence number as fixed-width hex, so the last key is the newest.
        match self
            .db
            .scan_prefix(format!("{JOURNAL}{run_id}/").as_bytes())
            .next_back()
        {
            Some(item) => {
                let (key, value) = item.map_err(|error| self.located(error.into()))?;
                let entry: JournalEntry = decode(&key, &value).map_err(|error| self.located(error))?;
                Ok(entry.seq + 1)
            }
            None => Ok(0),
        }
    }
}

/// Refuses a path that is not a directory, or a directory holding something other than a store.
fn refuse_foreign(dir: &Path) -> Result<(), StoreError> {
    if !dir.exists() {
        return Ok(());
    }
    let path = dir.display().to_string();
    if !dir.is_dir() {
        return Err(StoreError::Foreign { path });
    }
    let mut entries = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
        path: path.clone(),
        source,
    })?;
    let ours = dir.join(LOCK_FILE).exists() || dir.join(DB_DIR).exists();
    if !ours && entries.next().is_some() {
        return Err(StoreError::Foreign { path });
    }
    Ok(())
}

/// Takes the OS lock on `sluice.lock`, held as long as the returned file is open.
fn take_lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.display().to_string();
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// Checks the database's format key, writing it (durably) into a new store; `marked` says the
/// store existed before, so an empty database is damage.
fn check_format(db: &sled::Db, dir: &Path, marked: bool) -> Result<(), StoreError> {
    let path = dir.display().to_string();
    match db.get(FORMAT_KEY)? {
        Some(found) if found.as_ref() == FORMAT_VERSION.to_string().as_bytes() => Ok(()),
        Some(found) => Err(StoreError::UnknownFormat {
            path,
            found: String::from_utf8_lossy(&found).into_owned(),
            supported: FORMAT_VERSION,
        }),
        None if db.is_empty() && marked => Err(StoreError::Damaged {
            path,
            what: format!(
                "sled recovered no records from its files in {}: its log is unreadable",
                dir.join(DB_DIR).display()
            ),
        }),
        None if db.is_empty() => {
            db.insert(FORMAT_KEY, FORMAT_VERSION.to_string().as_bytes())?;
            db.flush()?;
            Ok(())
        }
        None => Err(StoreError::Foreign { path }),
    }
}

fn step_key(run_id: &str, step: &StepRecord) -> Vec<u8> {
    format!("step/{run_id}/{}", step.step_id).into_bytes()
}

fn journal_key(run_id: &str, entry: &JournalEntry) -> Vec<u8> {
    format!("{JOURNAL}{run_id}/{:016x}", entry.seq).into_bytes()
}

/// Says which store an error is about: sled's corruption, and records that do not decode,
/// become [`StoreError::Damaged`] naming `dir`.
fn located(error: StoreError, dir: &Path) -> StoreError {
    let path = dir.display().to_string();
    match error {
        StoreError::Damaged { path: known, what } if known.is_empty() => StoreError::Damaged { path, what },
        StoreError::Corrupt { key, reason } => StoreError::Damaged {
            path,
            what: format!("the record `{key}` cannot be read ({reason})"),
        },
        other => other,
    }
}

/// sled's page cache: its default (1 GiB) lets a store's whole database live in memory as it
/// grows; a night-long fleet of 1,000 targets writes ~80 MB. 64 MiB keeps the hot pages (the
/// runs in flight) and bounds the process's memory.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Opens sled, waiting out this process's own lingering handle. We hold `sluice.lock`, so no
/// other process can own the database; but sled's background I/O threads keep its file lock for
/// a moment after a `Db` is dropped, so reopening at once in the same process can find it taken.
fn open_sled(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other.map_err(StoreError::from),
        }
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
