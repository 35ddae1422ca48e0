//! Reading a store that another process holds.
//!
//! sled lets one process open a store, and a run holds its store for as long as it runs (a
//! night, for a fleet). So the holder publishes a read-only view: every process that holds a
//! store to run on it (`run`, `resume`, `fleet run`, `fleet resume`) serves read-only
//! [`Store`](sluice_engine::Store) queries on a Unix domain socket ([`Server`]), and a reading
//! command (`status`, `runs`, `fleet status`) that finds the store locked reads through it
//! ([`RemoteStore`]). The engine knows nothing of this: both ends speak its `Store` trait.
//!
//! Why this rather than a store that allows readers: sled cannot be opened by two processes,
//! even read-only, and a second storage backend (or snapshots copied out for readers) would be a
//! new storage design with its own durability questions. The holder already has the store open
//! and sled reads are safe alongside its writes, so serving them costs the run nothing.
//!
//! ## Where the socket is
//! `<store>/sluice.sock` (mode 0600), unless that path is too long for a Unix socket address
//! (about 100 bytes) or cannot be bound there (a file system without sockets). Then the socket
//! is `$XDG_RUNTIME_DIR/sluice/<hash>.sock`, else `$TMPDIR/sluice-<uid>/<hash>.sock` (a 0700
//! directory owned by the store's owner), `<hash>` being a digest of the store's canonical
//! path, and the store directory holds `sluice.sock.path`, one line naming it. Readers try the
//! store's socket first, then the named one. The holder removes both when it ends. A holder
//! that was killed leaves them behind: a reader only uses the socket while the store is locked,
//! and connecting to a dead socket fails, so a stale one is never mistaken for a live holder;
//! the next holder (who has the lock, so no live holder can exist) replaces it.
//!
//! ## Protocol (version [`PROTOCOL`])
//! One JSON request per line, one JSON answer line per request, on one connection for as long
//! as the client likes. A request is `{"op": NAME, ...arguments}` ([`Request`]); the answer is
//! `{"ok": VALUE}`, VALUE being what the `Store` method returns, or `{"error": {"kind": ...}}`
//! ([`WireError`]). A request line longer than [`MAX_REQUEST`] bytes is answered with a
//! `bad_request` error and the connection is closed. `{"op":"hello"}` answers the protocol
//! version and the holder's pid ([`Hello`]); the client sends it first.
//!
//! Adding a query is one [`Request`] variant, one arm in the server's `answer`, and the
//! `RemoteStore` method that sends it.

mod client;
mod server;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_engine::StoreError;

pub use client::RemoteStore;
pub use server::Server;

/// The protocol version; [`Hello::protocol`] must match it.
pub const PROTOCOL: u32 = 1;
/// The longest request line the server reads (64 KiB).
pub const MAX_REQUEST: usize = 64 * 1024;
/// The socket's name in the store directory.
const SOCKET: &str = "sluice.sock";
/// Names the socket when it lives elsewhere (a store path too long for a socket address, or a
/// store directory that cannot hold one).
const SOCKET_POINTER: &str = "sluice.sock.path";
/// Socket addresses hold about 104 (macOS) to 108 (Linux) bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 100;

/// One read-only query: the [`sluice_engine::Store`] method of the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Answered with [`Hello`].
    Hello,
    Runs,
    Run {
        id: String,
    },
    Plan {
        digest: String,
    },
    LatestRunForKey {
        run_key: String,
    },
    Steps {
        run: String,
    },
    Journal {
        run: String,
    },
    NextJournalSeq {
        run: String,
    },
    RunsToCompact {
        keep: usize,
    },
    Fleet {
        id: String,
    },
    Fleets,
    FleetTargetRuns {
        fleet: String,
    },
}

/// The answer to [`Request::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    /// The process holding the store.
    pub pid: u32,
    /// The holder's sluice version.
    pub sluice: String,
}

/// One answer line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response<T> {
    Ok(T),
    Error(WireError),
}

/// A [`StoreError`] as it travels, or a request the server could not take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireError {
    Locked {
        path: String,
    },
    UnknownFormat {
        path: String,
        found: String,
        supported: u32,
    },
    Foreign {
        path: String,
    },
    Damaged {
        path: String,
        what: String,
    },
    Io {
        path: String,
        message: String,
    },
    /// Any other store failure, by its message.
    Store {
        message: String,
    },
    /// The request was not understood (too long, not JSON, an unknown op: perhaps a newer client).
    BadRequest {
        message: String,
    },
}

impl From<&StoreError> for WireError {
    fn from(error: &StoreError) -> Self {
        match error {
            StoreError::Locked { path } => WireError::Locked { path: path.clone() },
            StoreError::UnknownFormat {
                path,
                found,
                supported,
            } => WireError::UnknownFormat {
                path: path.clone(),
                found: found.clone(),
                supported: *supported,
            },
            StoreError::Foreign { path } => WireError::Foreign { path: path.clone() },
            StoreError::Damaged { path, what } => WireError::Damaged {
                path: path.clone(),
                what: what.clone(),
            },
            StoreError::Io { path, source } => WireError::Io {
                path: path.clone(),
                message: source.to_string(),
            },
            StoreError::Sled(message) => WireError::Store {
                message: message.clone(),
            },
            other => WireError::Store {
                message: other.to_string(),
            },
        }
    }
}

impl WireError {
    /// The error as the holder's store reported it; `pid` names the holder for what is not a
    /// store error.
    fn into_store_error(self, store: &Path, pid: u32) -> StoreError {
        match self {
            WireError::Locked { path } => StoreError::Locked { path },
            WireError::UnknownFormat {
                path,
                found,
                supported,
            } => StoreError::UnknownFormat {
                path,
                found,
                supported,
            },
            WireError::Foreign { path } => StoreError::Foreign { path },
            WireError::Damaged { path, what } => StoreError::Damaged { path, what },
            WireError::Io { path, message } => StoreError::Io {
                path,
                source: std::io::Error::other(message),
            },
            WireError::Store { message } => StoreError::Sled(message),
            WireError::BadRequest { message } => StoreError::Io {
                path: store.display().to_string(),
                source: std::io::Error::other(format!(
                    "the sluice process {pid} holding the store refused a query ({message}); is it an older sluice?"
                )),
            },
        }
    }
}

/// Where the holder of `store` may listen, in the order to try: the socket in the store, then
/// the one its pointer file names (either may be stale).
fn published_sockets(store: &Path) -> Vec<PathBuf> {
    let mut sockets = Vec::new();
    let local = store.join(SOCKET);
    if local.exists() {
        sockets.push(local);
    }
    if let Ok(named) = std::fs::read_to_string(store.join(SOCKET_POINTER)) {
        let named = PathBuf::from(named.trim_end_matches('\n'));
        if named.exists() {
            sockets.push(named);
        }
    }
    sockets
}

/// A stable 64-bit FNV-1a digest, for naming a socket after its store's path.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The pid of the sluice process serving `store`, if one answers.
pub fn holder_pid(store: &Path) -> Option<u32> {
    RemoteStore::connect(store).ok().map(|remote| remote.pid())
}

#[cfg(test)]
mod tests;
