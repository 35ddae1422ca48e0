//! Snapshots of the emulated world: everything [`World`] holds (projects, operations, IAM,
//! every API's resources, request ids, the creation log, billing links, the id counter) and the
//! emulated clock's current time, as versioned JSON. An emulator started from a snapshot
//! ([`crate::Emulator::start_from`]) continues where the world was: its clock starts at the
//! snapshot's instant, so operations in flight finish at their deadlines and propagation delays
//! run out as they would have.
//!
//! Not in a snapshot: what is not the world. The request log starts empty, faults are drawn
//! again from the config's seed, quota windows start afresh, and tokens issued by `POST /token`
//! are forgotten (any bearer token is accepted anyway).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};

use crate::world::World;
use crate::Emulator;

/// The snapshot format's version: raised whenever an older emulator could not read a snapshot
/// (or this one an older snapshot).
pub const SNAPSHOT_VERSION: u64 = 1;
/// The `format` every snapshot names, so that other JSON is refused as such.
const SNAPSHOT_FORMAT: &str = "sluice-emulator-world";

/// The emulated world at one emulated instant.
#[derive(Debug, Clone)]
pub struct WorldSnapshot {
    /// Emulated time when it was taken.
    now: Duration,
    /// Wall-clock time of emulated instant zero, so restored timestamps stay in order.
    wall_origin: Duration,
    world: World,
}

/// Why a snapshot cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not an emulator world snapshot (it has no \"format\": \"{SNAPSHOT_FORMAT}\")")]
    NotASnapshot,
    #[error("written by another emulator: snapshot format version {found}, this emulator reads version {SNAPSHOT_VERSION}")]
    UnsupportedVersion { found: String },
    #[error("the snapshot does not decode: {0}")]
    Damaged(String),
}

/// The snapshot as written.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stored<W> {
    format: String,
    version: u64,
    now: Duration,
    wall_origin: Duration,
    world: W,
}

impl WorldSnapshot {
    /// Emulated time when the snapshot was taken.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The snapshot as JSON (see [`WorldSnapshot::from_json`]).
    pub fn to_json(&self) -> Value {
        let stored = Stored {
            format: SNAPSHOT_FORMAT.to_string(),
            version: SNAPSHOT_VERSION,
            now: self.now,
            wall_origin: self.wall_origin,
            world: &self.world,
        };
        serde_json::to_value(stored).unwrap_or_else(|error| json!({ "unserializable": error.to_string() }))
    }

    /// Reads a snapshot [`WorldSnapshot::to_json`] wrote. Anything else (other JSON, another
    /// version, a damaged world) is refused, saying which.
    pub fn from_json(value: &Value) -> Result<Self, SnapshotError> {
        if value.get("format").and_then(Value::as_str) != Some(SNAPSHOT_FORMAT) {
            return Err(SnapshotError::NotASnapshot);
        }
        match value.get("version") {
            Some(version) if version.as_u64() == Some(SNAPSHOT_VERSION) => {}
            found => {
                return Err(SnapshotError::UnsupportedVersion {
                    found: found.map_or_else(|| "missing".to_string(), Value::to_string),
                })
            }
        }
        let stored =
            Stored::<World>::deserialize(value).map_err(|error| SnapshotError::Damaged(error.to_string()))?;
        Ok(WorldSnapshot {
            now: stored.now,
            wall_origin: stored.wall_origin,
            world: stored.world,
        })
    }

    /// The world and clock to start from: (world, now, wall origin).
    pub(crate) fn into_parts(self) -> (World, Duration, Duration) {
        (self.world, self.now, self.wall_origin)
    }
}

/// Takes snapshots of a running emulator's world; cheap to clone, and usable from anywhere (a
/// synchronous hook, another thread) while the emulator runs.
#[derive(Clone)]
pub struct Snapshotter(pub(crate) Arc<Emulator>);

impl Snapshotter {
    /// The world now. The world and the clock are read together, under the world's lock, so no
    /// call changes the world between them.
    pub fn snapshot(&self) -> WorldSnapshot {
        let world = self.0.world();
        WorldSnapshot {
            now: self.0.clock.now(),
            wall_origin: self.0.clock.wall_origin(),
            world: world.clone(),
        }
    }
}

/// A map whose keys are tuples, as a list of `[key, value]` pairs (JSON objects take only
/// string keys): `#[serde(with = "crate::snapshot::pairs")]`.
pub mod pairs {
    use super::*;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?.into_iter().collect())
    }
}
