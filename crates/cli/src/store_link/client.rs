//! The reader's side: a [`Store`] answered by the process that holds the store.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use sluice_engine::store::{RunCommit, StepAppend};
use sluice_engine::{FleetRecord, JournalEntry, Plan, RunRecord, SledStore, StepRecord, Store, StoreError};

use super::{published_sockets, Hello, Request, Response, PROTOCOL};

/// How long one exchange may take before the holder counts as gone.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a holder that has stopped serving may take to let go of the store.
const LOCK_RELEASE: Duration = Duration::from_millis(500);

/// A read-only [`Store`] served by the sluice process holding the store (see the module docs),
/// over one connection reused for every query. Writes fail: `commit_run`, `append_steps`, `flush`, `commit_fleet`
/// and `set_fleet_target_run` return
/// [`StoreError::Io`] (kind `ReadOnlyFilesystem`) naming the holder's pid.
///
/// If the holder ends while this store is in use (the connection breaks), the store's lock is
/// free again, so the remaining queries read the store directly.
pub struct RemoteStore {
    dir: PathBuf,
    pid: u32,
    backend: Mutex<Backend>,
}

enum Backend {
    Remote(Connection),
    Direct(SledStore),
    /// The connection failed mid-exchange: a late answer may still arrive on it, so it is not
    /// used again.
    Broken,
}

struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Connection {
    fn open(socket: &Path) -> io::Result<Connection> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        Ok(Connection {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    fn exchange<T: DeserializeOwned>(&mut self, request: &Request) -> io::Result<Response<T>> {
        let mut line = serde_json::to_string(request).map_err(io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        self.writer.flush()?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer)? == 0 || !answer.ends_with('\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before the answer",
            ));
        }
        serde_json::from_str(&answer).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }
}

impl RemoteStore {
    /// Connects to the process serving the store in `dir`. Fails when none does: no socket, a
    /// stale one (its holder was killed: nothing listens), or a server of another protocol.
    pub fn connect(dir: &Path) -> io::Result<RemoteStore> {
        let mut failure = io::Error::new(io::ErrorKind::NotFound, "no sluice process serves this store");
        for socket in published_sockets(dir) {
            match Self::connect_to(dir, &socket) {
                Ok(remote) => return Ok(remote),
                Err(error) => failure = error,
            }
        }
        Err(failure)
    }

    fn connect_to(dir: &Path, socket: &Path) -> io::Result<RemoteStore> {
        let mut connection = Connection::open(socket)?;
        let hello = match connection.exchange::<Hello>(&Request::Hello)? {
            Response::Ok(hello) => hello,
            Response::Error(error) => return Err(io::Error::other(format!("{error:?}"))),
        };
        if hello.protocol != PROTOCOL {
            return Err(io::Error::other(format!(
                "the sluice process {} (version {}) serves protocol {}, this one speaks {PROTOCOL}",
                hello.pid, hello.sluice, hello.protocol
            )));
        }
        Ok(RemoteStore {
            dir: dir.to_path_buf(),
            pid: hello.pid,
            backend: Mutex::new(Backend::Remote(connection)),
        })
    }

    /// The process that holds the store.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends one query; `direct` is the same query on the store itself, for when the holder has
    /// gone meanwhile.
    fn call<T: DeserializeOwned>(
        &self,
        request: Request,
        direct: impl FnOnce(&SledStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut backend = self.backend.lock().unwrap_or_else(|p| p.into_inner());
        let lost = match &mut *backend {
            Backend::Direct(store) => return direct(store),
            Backend::Remote(connection) => match connection.exchange::<T>(&request) {
                Ok(Response::Ok(value)) => return Ok(value),
                Ok(Response::Error(error)) => return Err(error.into_store_error(&self.dir, self.pid)),
                Err(lost) => lost,
            },
            Backend::Broken => io::Error::new(io::ErrorKind::BrokenPipe, "an earlier query failed"),
        };
        *backend = Backend::Broken;
        // The holder ended (or stopped answering). If it ended, its lock is free, or will be
        // in a moment: it removes its socket just before it lets go of the store.
        let deadline = Instant::now() + LOCK_RELEASE;
        let opened = loop {
            match SledStore::open(&self.dir) {
                Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other,
            }
        };
        match opened {
            Ok(store) => {
                let result = direct(&store);
                *backend = Backend::Direct(store);
                result
            }
            Err(_) => Err(StoreError::Io {
                path: self.dir.display().to_string(),
                source: io::Error::new(
                    lost.kind(),
                    format!(
                        "the sluice process {} that holds the store stopped answering: {lost}",
                        self.pid
                    ),
                ),
            }),
        }
    }

    fn read_only(&self) -> StoreError {
        StoreError::Io {
            path: self.dir.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::ReadOnlyFilesystem,
                format!(
                    "the store is read-only here: sluice process {} holds it, and this process reads it through that one",
                    self.pid
                ),
            ),
        }
    }
}

impl Store for RemoteStore {
    fn commit_run(&self, _commit: RunCommit) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    fn append_steps(&self, _run_id: &str, _append: StepAppend) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.call(Request::Run { id: run_id.into() }, |s| s.run(run_id))
    }

    fn plan(&self, digest: &str) -> Result<Option<Plan>, StoreError> {
        self.call(
            Request::Plan {
                digest: digest.into(),
            },
            |s| s.plan(digest),
        )
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.call(Request::Runs, |s| s.runs())
    }

    fn latest_run_for_key(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        self.call(
            Request::LatestRunForKey {
                run_key: run_key.into(),
            },
            |s| s.latest_run_for_key(run_key),
        )
    }

    fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.call(Request::Steps { run: run_id.into() }, |s| s.steps(run_id))
    }

    fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.call(Request::Journal { run: run_id.into() }, |s| s.journal(run_id))
    }

    fn next_journal_seq(&self, run_id: &str) -> Result<u64, StoreError> {
        self.call(Request::NextJournalSeq { run: run_id.into() }, |s| {
            s.next_journal_seq(run_id)
        })
    }

    fn runs_to_compact(&self, keep: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.call(Request::RunsToCompact { keep }, |s| s.runs_to_compact(keep))
    }

    fn commit_fleet(&self, _fleet: &FleetRecord, _plans: Vec<(String, Plan)>) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    fn fleet(&self, fleet_id: &str) -> Result<Option<FleetRecord>, StoreError> {
        self.call(Request::Fleet { id: fleet_id.into() }, |s| s.fleet(fleet_id))
    }

    fn fleets(&self) -> Result<Vec<FleetRecord>, StoreError> {
        self.call(Request::Fleets, |s| s.fleets())
    }

    fn set_fleet_target_run(&self, _fleet_id: &str, _index: usize, _run_id: &str) -> Result<(), StoreError> {
        Err(self.read_only())
    }

    fn fleet_target_runs(&self, fleet_id: &str) -> Result<BTreeMap<usize, String>, StoreError> {
        self.call(
            Request::FleetTargetRuns {
                fleet: fleet_id.into(),
            },
            |s| s.fleet_target_runs(fleet_id),
        )
    }
}
