//! The embedded emulator's world kept beside a store, so that `--emulator` runs can be looked
//! at and continued like any other: `run --emulator --store DIR` keeps the world in
//! `DIR/emulator-world.json`, and the next `--emulator` command on that store (`run`, `resume`,
//! `plan`) starts the emulator from it.
//!
//! The file holds the emulator's world snapshot ([`sluice_emulator::WorldSnapshot`]) and the
//! ids of the runs started under `--emulator`. Those marks decide, per run, which cloud it may
//! be continued against: a store can hold runs of both kinds, and an emulator run is never
//! continued against Google Cloud, nor a Google Cloud run against the emulator.
//!
//! When it is written: as soon as a run starts under `--emulator` (its mark), after every
//! mutation a step's `apply` returned and every step that succeeded (from the engine's hooks,
//! synchronously, before the step's next transition is recorded), and when the command ends
//! (also on failure or Ctrl-C). Every write replaces the file atomically (a temporary file,
//! then a rename), so a reader or a killed process never sees half a file. A process killed
//! between two writes leaves a world that misses its last changes, which the next run's
//! observe-first steps find missing and make again, as they would after a lost answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sluice_emulator::{EmulatorHandle, Snapshotter, WorldSnapshot};
use sluice_engine::{CrashPoint, Hooks};

use crate::args::CloudArgs;
use crate::error::CliError;

/// The file beside the store's database.
pub const WORLD_FILE: &str = "emulator-world.json";
/// What the file says it is, and its layout's version.
const FILE_FORMAT: &str = "sluice-kept-emulator-world";
const FILE_VERSION: u64 = 1;

/// The kept world of one store: the snapshot to start from, and which runs are emulator runs.
pub struct KeptWorld {
    path: PathBuf,
    /// Run ids started under `--emulator`.
    runs: BTreeSet<String>,
    /// None until an `--emulator` run has written the file.
    world: Option<WorldSnapshot>,
    /// The file's text as read, to notice another process writing it meanwhile.
    read_text: Option<String>,
}

impl KeptWorld {
    /// Reads `store_dir`'s kept world; a store without one has none yet. A file that cannot
    /// be read is refused (exit 3), naming it and what to do; nothing is changed.
    pub fn read(store_dir: &Path) -> Result<KeptWorld, CliError> {
        let path = store_dir.join(WORLD_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(unreadable(&path, &error.to_string())),
        };
        let (runs, world) = match &text {
            None => (BTreeSet::new(), None),
            Some(text) => parse(text).map_err(|problem| unreadable(&path, &problem))?,
        };
        Ok(KeptWorld {
            path,
            runs,
            world,
            read_text: text,
        })
    }

    /// Whether run `run_id` was started under `--emulator`.
    pub fn is_emulator_run(&self, run_id: &str) -> bool {
        self.runs.contains(run_id)
    }

    /// The world to start the embedded emulator from (none: a fresh demo world).
    pub fn start_world(&self) -> Option<WorldSnapshot> {
        self.world.clone()
    }

    /// What a command on the store does with the world, for its stderr line.
    pub fn describe(&self) -> String {
        match &self.world {
            Some(world) => format!(
                "the emulated world continues from {} (emulated time {:.0}s)",
                self.path.display(),
                world.now().as_secs_f64()
            ),
            None => format!("the emulated world is kept in {}", self.path.display()),
        }
    }

    /// Refuses (exit 3) when the file changed since it was read: another process ran on the
    /// store between the read and the taking of its lock, so the world read is not the last one.
    pub fn check_unchanged(&self) -> Result<(), CliError> {
        let now = match std::fs::read_to_string(&self.path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(unreadable(&self.path, &error.to_string())),
        };
        if now != self.read_text {
            return Err(CliError::store_unusable(format!(
                "the emulated world {} changed while this command started: another sluice process ran on the store",
                self.path.display()
            ))
            .with_hint("run the command again"));
        }
        Ok(())
    }
}

/// The world `sluice plan --emulator --store DIR` observes: the one kept in DIR, if any (said
/// on stderr), else the demo world. Read only: `plan` writes nothing.
pub fn world_for_plan(cloud: &CloudArgs, store: Option<&Path>) -> Result<Option<WorldSnapshot>, CliError> {
    let Some(store_dir) = store.filter(|_| cloud.emulator) else {
        return Ok(None);
    };
    let kept = KeptWorld::read(store_dir)?;
    if let Some(world) = &kept.world {
        errln!(
            "store {}: observing the emulated world kept in {} (emulated time {:.0}s); nothing is written",
            store_dir.display(),
            kept.path.display(),
            world.now().as_secs_f64()
        );
    }
    Ok(kept.start_world())
}

/// The marks and the snapshot in a kept world's text.
fn parse(text: &str) -> Result<(BTreeSet<String>, Option<WorldSnapshot>), String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("it is not JSON ({error})"))?;
    if value["format"] != FILE_FORMAT {
        return Err(format!(
            "it is not a kept emulator world (no \"format\": \"{FILE_FORMAT}\")"
        ));
    }
    if value["version"] != FILE_VERSION {
        return Err(format!(
            "it has layout version {}, this sluice reads version {FILE_VERSION}",
            value["version"]
        ));
    }
    let runs = serde_json::from_value(value["emulatorRuns"].clone())
        .map_err(|error| format!("its run list does not decode ({error})"))?;
    let world = WorldSnapshot::from_json(&value["world"]).map_err(|error| error.to_string())?;
    Ok((runs, Some(world)))
}

fn unreadable(path: &Path, problem: &str) -> CliError {
    CliError::store_unusable(format!(
        "the emulated world kept in {} cannot be read: {problem}",
        path.display()
    ))
    .with_hint(
        "restore the file from a backup; or move it aside, and the next --emulator run on this store starts from a fresh demo world (its runs cannot be resumed then)",
    )
}

/// Writes a store's kept world as the emulator has it now; shared by the command and the
/// engine's hooks (one write at a time).
#[derive(Clone)]
pub struct WorldKeeper {
    kept: Arc<Mutex<KeptWorld>>,
    emulator: Snapshotter,
}

impl WorldKeeper {
    pub fn new(kept: KeptWorld, emulator: &EmulatorHandle) -> Self {
        WorldKeeper {
            kept: Arc::new(Mutex::new(kept)),
            emulator: emulator.snapshotter(),
        }
    }

    /// Whether run `run_id` was started under `--emulator`.
    pub fn is_emulator_run(&self, run_id: &str) -> bool {
        self.lock().is_emulator_run(run_id)
    }

    /// Marks `run_id` as an emulator run and writes the file: before the run makes any call.
    pub fn mark(&self, run_id: &str) -> Result<(), CliError> {
        self.lock().runs.insert(run_id.to_string());
        self.keep()
    }

    /// Writes the world as it is now (atomically), or says why it could not (exit 3).
    pub fn keep(&self) -> Result<(), CliError> {
        let kept = self.lock();
        let text = json!({
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "emulatorRuns": kept.runs,
            "world": self.emulator.snapshot().to_json(),
        })
        .to_string();
        write_atomically(&kept.path, &text).map_err(|error| {
            CliError::store_unusable(format!(
                "cannot keep the emulated world in {}: {error}",
                kept.path.display()
            ))
            .with_hint("make the store directory writable; the next --emulator run on it repairs what the world lacks")
        })
    }

    /// The engine's hooks: the world kept after every mutation and every step that succeeded,
    /// then `inner` (a test harness's) called.
    pub fn hooks(&self, inner: Option<Arc<dyn Hooks>>) -> Arc<dyn Hooks> {
        Arc::new(KeepOnProgress {
            keeper: self.clone(),
            inner,
            warned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptWorld> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct KeepOnProgress {
    keeper: WorldKeeper,
    inner: Option<Arc<dyn Hooks>>,
    warned: std::sync::atomic::AtomicBool,
}

impl Hooks for KeepOnProgress {
    fn reached(&self, point: CrashPoint, step_id: &str) {
        if matches!(point, CrashPoint::AfterMutation | CrashPoint::AfterStep) {
            if let Err(error) = self.keeper.keep() {
                // Said once; a step is not failed for it, and the command's last write is
                // reported as its ending.
                if !self.warned.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    errln!("warning: {}", error.lines().join("; "));
                }
            }
        }
        if let Some(inner) = &self.inner {
            inner.reached(point, step_id);
        }
    }
}

/// Replaces `path` with `text`: written to a temporary file beside it, then renamed over it.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}
