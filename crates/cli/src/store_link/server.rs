//! The holder's side: a Unix socket answering read-only store queries, on a thread of its own.
//!
//! The server runs on its own thread with its own (current-thread) tokio runtime, not on the
//! run's: a run's worker threads may be busy (a flush on the worker thread, a kind's blocking
//! call, a test hook that freezes a step), and watching must work precisely then. Each
//! connection is a task; each query runs on that runtime's blocking pool, so a long answer (the
//! steps of a 100,000-step run) holds up neither other readers nor the run, whose store reads
//! and writes sled serves concurrently.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sluice_engine::{Store, StoreError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::oneshot;

use super::{
    fnv1a, Hello, Request, Response, WireError, MAX_REQUEST, MAX_SOCKET_PATH, PROTOCOL, SOCKET,
    SOCKET_POINTER,
};

/// Serves a held store to readers until dropped; dropping it stops the server and removes the
/// socket (and the pointer file naming it, if any).
pub struct Server {
    socket: PathBuf,
    pointer: Option<PathBuf>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Publishes `store`, which this process holds (it has the store's lock), for readers of
    /// `store_dir`. Whatever socket is there already is stale: its holder is gone, since the
    /// lock is ours. So it is replaced.
    pub fn start(store_dir: &Path, store: Arc<dyn Store>) -> io::Result<Server> {
        let local = store_dir.join(SOCKET);
        let in_store = if local.as_os_str().len() <= MAX_SOCKET_PATH {
            match bind_fresh(&local) {
                Ok(listener) => Some(listener),
                Err(error) => {
                    tracing::debug!("cannot listen on {}: {error}", local.display());
                    None
                }
            }
        } else {
            None
        };
        let mut server = Server {
            socket: local,
            pointer: None,
            stop: None,
            thread: None,
        };
        let listener = match in_store {
            Some(listener) => {
                // One left by a killed holder that used a fallback socket.
                let _ = std::fs::remove_file(store_dir.join(SOCKET_POINTER));
                listener
            }
            None => {
                let socket = fallback_socket(store_dir)?;
                let listener = bind_fresh(&socket)?;
                server.socket = socket;
                let pointer = store_dir.join(SOCKET_POINTER);
                std::fs::write(&pointer, format!("{}\n", server.socket.display()))?;
                server.pointer = Some(pointer);
                listener
            }
        };
        listener.set_nonblocking(true)?;
        let hello = Arc::new(Hello {
            protocol: PROTOCOL,
            pid: std::process::id(),
            sluice: env!("CARGO_PKG_VERSION").to_string(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .thread_name("sluice-store-link")
            .build()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("sluice-store-link".into())
            .spawn(move || {
                runtime.block_on(accept(listener, store, hello, stop_rx));
                // Connections still open end with the runtime; a query still running on the
                // blocking pool finishes on its own.
                runtime.shutdown_background();
            })?;
        server.stop = Some(stop_tx);
        server.thread = Some(thread);
        Ok(server)
    }

    /// Where readers connect.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        if let Some(pointer) = &self.pointer {
            let _ = std::fs::remove_file(pointer);
        }
    }
}

async fn accept(
    listener: std::os::unix::net::UnixListener,
    store: Arc<dyn Store>,
    hello: Arc<Hello>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match UnixListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!("the store link cannot listen: {error}");
            return;
        }
    };
    // Whoever owns the socket file (this process's user) is the only peer served: mode 0600 is
    // set just after `bind`, so a peer that connected in between is refused here.
    let owner = listener
        .local_addr()
        .ok()
        .and_then(|address| address.as_pathname().map(Path::to_path_buf))
        .and_then(|path| std::fs::metadata(path).ok())
        .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let allowed = match (owner, stream.peer_cred()) {
                        (Some(uid), Ok(peer)) => peer.uid() == uid,
                        _ => false,
                    };
                    if allowed {
                        tokio::spawn(serve(stream, store.clone(), hello.clone()));
                    } else {
                        tracing::warn!("the store link refused a connection from another user");
                    }
                }
                Err(error) => {
                    tracing::debug!("the store link could not accept a connection: {error}");
                }
            }
        }
    }
}

/// Answers one connection's requests, in order, until it closes.
async fn serve(stream: UnixStream, store: Arc<dyn Store>, hello: Arc<Hello>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        if line.len() > MAX_REQUEST {
            let refusal = error_line(WireError::BadRequest {
                message: format!("a request line is at most {MAX_REQUEST} bytes"),
            });
            let _ = write.write_all(refusal.as_bytes()).await;
            return;
        }
        let request = std::mem::take(&mut line);
        let (store, hello) = (store.clone(), hello.clone());
        let answer = tokio::task::spawn_blocking(move || answer(store.as_ref(), &hello, &request))
            .await
            .unwrap_or_else(|error| {
                error_line(WireError::Store {
                    message: format!("the query failed: {error}"),
                })
            });
        if write.write_all(answer.as_bytes()).await.is_err() || !complete {
            return;
        }
    }
}

/// The answer line (newline included) to one request line.
pub(super) fn answer(store: &dyn Store, hello: &Hello, line: &[u8]) -> String {
    let request: Request = match serde_json::from_slice(line) {
        Ok(request) => request,
        Err(error) => {
            return error_line(WireError::BadRequest {
                message: format!("not a request: {error}"),
            })
        }
    };
    match request {
        Request::Hello => ok_line(hello),
        Request::Runs => reply(store.runs()),
        Request::Run { id } => reply(store.run(&id)),
        Request::Plan { digest } => reply(store.plan(&digest)),
        Request::LatestRunForKey { run_key } => reply(store.latest_run_for_key(&run_key)),
        Request::Steps { run } => reply(store.steps(&run)),
        Request::Journal { run } => reply(store.journal(&run)),
        Request::NextJournalSeq { run } => reply(store.next_journal_seq(&run)),
        Request::RunsToCompact { keep } => reply(store.runs_to_compact(keep)),
        Request::Fleet { id } => reply(store.fleet(&id)),
        Request::Fleets => reply(store.fleets()),
        Request::FleetTargetRuns { fleet } => reply(store.fleet_target_runs(&fleet)),
    }
}

fn reply<T: Serialize>(result: Result<T, StoreError>) -> String {
    match result {
        Ok(value) => ok_line(&value),
        Err(error) => error_line(WireError::from(&error)),
    }
}

fn ok_line<T: Serialize>(value: &T) -> String {
    to_line(&Response::Ok(value))
}

fn error_line(error: WireError) -> String {
    to_line(&Response::<()>::Error(error))
}

fn to_line<T: Serialize>(response: &Response<T>) -> String {
    let mut line = serde_json::to_string(response).expect("store records always serialise");
    line.push('\n');
    line
}

/// Listens on `socket`, replacing whatever is there: the caller holds the store's lock, so no
/// live holder can be listening on it. Only the owner may connect (mode 0600).
fn bind_fresh(socket: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)?;
    if let Err(error) = std::fs::set_permissions(socket, Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(socket);
        return Err(error);
    }
    Ok(listener)
}

/// The socket for a store whose own directory cannot hold it: in a private directory, named
/// after a digest of the store's canonical path.
fn fallback_socket(store: &Path) -> io::Result<PathBuf> {
    let canonical = store.canonicalize()?;
    let dir = private_dir(store)?;
    let socket = dir.join(format!("{:016x}.sock", fnv1a(canonical.as_os_str().as_bytes())));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(io::Error::other(format!(
            "{} is too long for a socket address",
            socket.display()
        )));
    }
    Ok(socket)
}

/// The first usable of `$XDG_RUNTIME_DIR/sluice` and `$TMPDIR/sluice-UID` (UID the store's
/// owner): a directory only the store's owner can enter, made if needed.
fn private_dir(store: &Path) -> io::Result<PathBuf> {
    let owner = std::fs::metadata(store)?.uid();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map(|runtime| PathBuf::from(runtime).join("sluice"));
    let temporary = std::env::temp_dir().join(format!("sluice-{owner}"));
    let mut failure = None;
    for dir in runtime.into_iter().chain([temporary]) {
        match private(&dir, owner) {
            Ok(()) => return Ok(dir),
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.expect("one candidate at least"))
}

/// Makes `dir` (mode 0700) unless it exists, and checks that only `owner` can enter it.
fn private(dir: &Path, owner: u32) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != owner || meta.mode() & 0o077 != 0 {
        return Err(io::Error::other(format!(
            "{} is not a directory private to the store's owner",
            dir.display()
        )));
    }
    Ok(())
}
