use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use sluice_engine::store::{RunCommit, StepAppend};
use sluice_engine::{
    FleetRecord, FleetState, FleetTarget, JournalEntry, JournalEvent, MemoryStore, RunRecord, RunState,
    StepRecord, StepStatus, Store, StoreError,
};

use super::*;

fn plan() -> sluice_engine::Plan {
    serde_json::from_value(json!({
        "name": "p",
        "steps": [{"id": "a", "kind": "core.noop"}, {"id": "b", "kind": "core.noop", "after": ["a"]}]
    }))
    .unwrap()
}

fn filled() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    for (n, state) in [(1, RunState::Succeeded), (2, RunState::Running)] {
        let run = RunRecord {
            id: format!("run-{n}"),
            run_key: "key".into(),
            plan_digest: "digest".into(),
            plan_name: "p".into(),
            plan_source: "p.json".into(),
            // Floats whose shortest form serde_json's default parsing misreads.
            vars: [
                ("x".to_string(), json!(1.947700395895162e-169)),
                ("y".to_string(), json!(-1.490143767845386e129)),
            ]
            .into(),
            state,
            created_at_ms: n,
            updated_at_ms: n,
            finished_at_ms: None,
            sessions: 1,
        };
        let mut step = StepRecord::pending("a");
        step.status = StepStatus::Applying;
        store
            .commit_run(RunCommit {
                plan: Some(("digest".into(), plan())),
                run: run.clone(),
                steps: vec![step],
                journal: vec![JournalEntry {
                    seq: 0,
                    at_ms: n,
                    step: None,
                    event: JournalEvent::RunCreated {
                        run_key: "key".into(),
                    },
                }],
            })
            .unwrap();
    }
    let fleet = FleetRecord {
        id: "fleet-1".into(),
        fleet_key: "fkey".into(),
        name: "f".into(),
        source: "f.json".into(),
        state: FleetState::Running,
        created_at_ms: 3,
        updated_at_ms: 3,
        finished_at_ms: None,
        sessions: 1,
        targets: vec![FleetTarget {
            name: "t".into(),
            plan_digest: "digest".into(),
            vars: [("x".to_string(), json!(0.1))].into(),
        }],
        extra: json!({"concurrency": 2}),
    };
    store
        .commit_fleet(&fleet, vec![("digest".into(), plan())])
        .unwrap();
    store.set_fleet_target_run("fleet-1", 0, "run-2").unwrap();
    store
}

fn same_answers(direct: &dyn Store, remote: &dyn Store) {
    assert_eq!(direct.runs().unwrap(), remote.runs().unwrap());
    assert_eq!(direct.run("run-2").unwrap(), remote.run("run-2").unwrap());
    assert_eq!(remote.run("nope").unwrap(), None);
    assert_eq!(direct.plan("digest").unwrap(), remote.plan("digest").unwrap());
    assert_eq!(remote.plan("other").unwrap(), None);
    assert_eq!(
        direct.latest_run_for_key("key").unwrap(),
        remote.latest_run_for_key("key").unwrap()
    );
    assert_eq!(direct.steps("run-2").unwrap(), remote.steps("run-2").unwrap());
    assert_eq!(direct.journal("run-1").unwrap(), remote.journal("run-1").unwrap());
    assert_eq!(
        direct.next_journal_seq("run-1").unwrap(),
        remote.next_journal_seq("run-1").unwrap()
    );
    assert_eq!(
        direct.runs_to_compact(0).unwrap(),
        remote.runs_to_compact(0).unwrap()
    );
    assert_eq!(remote.runs_to_compact(0).unwrap().len(), 1);
    assert_eq!(direct.fleets().unwrap(), remote.fleets().unwrap());
    assert_eq!(remote.fleets().unwrap().len(), 1);
    assert_eq!(direct.fleet("fleet-1").unwrap(), remote.fleet("fleet-1").unwrap());
    assert_eq!(remote.fleet("nope").unwrap(), None);
    assert_eq!(
        direct.fleet_target_runs("fleet-1").unwrap(),
        remote.fleet_target_runs("fleet-1").unwrap()
    );
    assert_eq!(remote.fleet_target_runs("fleet-1").unwrap().len(), 1);
}

#[test]
fn a_remote_store_answers_as_the_store_itself_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled();
    let server = Server::start(dir.path(), store.clone()).unwrap();
    assert_eq!(server.socket(), dir.path().join(SOCKET));
    let mode = std::fs::metadata(server.socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let remote = RemoteStore::connect(dir.path()).unwrap();
    assert_eq!(remote.pid(), std::process::id());
    assert_eq!(holder_pid(dir.path()), Some(std::process::id()));
    same_answers(store.as_ref(), &remote);

    let fleet = store.fleet("fleet-1").unwrap().unwrap();
    for error in [
        remote.append_steps("run-2", StepAppend::default()).unwrap_err(),
        remote
            .commit_run(RunCommit::run(store.run("run-1").unwrap().unwrap(), vec![]))
            .unwrap_err(),
        remote.flush().unwrap_err(),
        remote.commit_fleet(&fleet, Vec::new()).unwrap_err(),
        remote.set_fleet_target_run("fleet-1", 1, "run-1").unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(
            text.contains("read-only") && text.contains(&std::process::id().to_string()),
            "{text}"
        );
        assert!(
            matches!(error, StoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem)
        );
    }

    drop(server);
    assert!(
        !dir.path().join(SOCKET).exists(),
        "the socket goes with the server"
    );
    assert!(RemoteStore::connect(dir.path()).is_err());
}

#[test]
fn a_store_path_too_long_for_a_socket_address_publishes_a_short_one() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("d".repeat(60)).join("e".repeat(60));
    std::fs::create_dir_all(&dir).unwrap();
    let store = filled();
    let server = Server::start(&dir, store.clone()).unwrap();
    assert!(server.socket().as_os_str().len() <= MAX_SOCKET_PATH);
    assert!(!server.socket().starts_with(&dir));
    let pointer = std::fs::read_to_string(dir.join(SOCKET_POINTER)).unwrap();
    assert_eq!(pointer.trim_end(), server.socket().display().to_string());

    let remote = RemoteStore::connect(&dir).unwrap();
    same_answers(store.as_ref(), &remote);
    let socket = server.socket().to_path_buf();
    drop(server);
    assert!(!socket.exists() && !dir.join(SOCKET_POINTER).exists());
}

#[test]
fn a_stale_socket_is_no_server_and_the_next_holder_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    // A socket nothing listens on, as a killed holder leaves it.
    drop(std::os::unix::net::UnixListener::bind(dir.path().join(SOCKET)).unwrap());
    assert!(dir.path().join(SOCKET).exists());
    assert!(RemoteStore::connect(dir.path()).is_err());
    assert_eq!(holder_pid(dir.path()), None);

    let store = filled();
    let _server = Server::start(dir.path(), store.clone()).unwrap();
    let remote = RemoteStore::connect(dir.path()).unwrap();
    assert_eq!(remote.runs().unwrap().len(), 2);
}

fn raw_exchange(socket: &Path, line: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(line).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer
}

#[test]
fn the_protocol_is_one_json_line_each_way() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), filled()).unwrap();
    let socket = server.socket().to_path_buf();

    let answer: serde_json::Value =
        serde_json::from_str(&raw_exchange(&socket, b"{\"op\":\"run\",\"id\":\"run-1\"}\n")).unwrap();
    assert_eq!(answer["ok"]["state"], "succeeded");
    let answer: serde_json::Value =
        serde_json::from_str(&raw_exchange(&socket, b"{\"op\":\"hello\"}\n")).unwrap();
    assert_eq!(answer["ok"]["protocol"], PROTOCOL);
    assert_eq!(answer["ok"]["pid"], std::process::id());

    // An op this server does not know (a newer client), and something that is not JSON.
    for request in [&b"{\"op\":\"self_destruct\"}\n"[..], b"hello\n"] {
        let answer: serde_json::Value = serde_json::from_str(&raw_exchange(&socket, request)).unwrap();
        assert_eq!(answer["error"]["kind"], "bad_request", "{answer}");
    }

    // A line longer than 64 KiB is refused, and the connection closed.
    let mut long = vec![b' '; MAX_REQUEST + 10];
    long.push(b'\n');
    let answer: serde_json::Value = serde_json::from_str(&raw_exchange(&socket, &long)).unwrap();
    assert_eq!(answer["error"]["kind"], "bad_request");
    assert!(answer["error"]["message"].as_str().unwrap().contains("65536"));

    // Several requests on one connection are answered in order.
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream
        .write_all(
            b"{\"op\":\"next_journal_seq\",\"run\":\"run-1\"}\n{\"op\":\"runs_to_compact\",\"keep\":5}\n",
        )
        .unwrap();
    let mut lines = BufReader::new(stream).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "{\"ok\":1}");
    assert_eq!(lines.next().unwrap().unwrap(), "{\"ok\":[]}");
}

#[test]
fn store_errors_travel_as_themselves() {
    let errors = [
        StoreError::Locked { path: "/s".into() },
        StoreError::UnknownFormat {
            path: "/s".into(),
            found: "9".into(),
            supported: 1,
        },
        StoreError::Foreign { path: "/s".into() },
        StoreError::Damaged {
            path: "/s".into(),
            what: "a record".into(),
        },
        StoreError::Io {
            path: "/s".into(),
            source: std::io::Error::other("disk on fire"),
        },
        StoreError::Sled("odd".into()),
    ];
    for error in errors {
        let wire: WireError =
            serde_json::from_str(&serde_json::to_string(&WireError::from(&error)).unwrap()).unwrap();
        assert_eq!(
            wire.into_store_error(Path::new("/s"), 1).to_string(),
            error.to_string()
        );
    }
}

#[test]
fn a_reader_whose_holder_ends_reads_the_store_itself() {
    let dir = tempfile::tempdir().unwrap();
    let held = Arc::new(sluice_engine::SledStore::open(dir.path()).unwrap());
    let commit = RunCommit {
        plan: Some(("digest".into(), plan())),
        ..RunCommit::run(filled().run("run-2").unwrap().unwrap(), vec![])
    };
    held.commit_run(commit).unwrap();
    let server = Server::start(dir.path(), held.clone()).unwrap();
    let remote = RemoteStore::connect(dir.path()).unwrap();
    assert_eq!(remote.runs().unwrap().len(), 1);

    // The run ends: its server first, then its store.
    drop(server);
    drop(held);
    assert_eq!(remote.runs().unwrap().len(), 1);
    assert_eq!(remote.plan("digest").unwrap(), Some(plan()));
    assert!(
        remote.append_steps("run-2", StepAppend::default()).is_err(),
        "still read-only"
    );
}

#[test]
fn a_reader_passes_a_stale_socket_in_the_store_for_the_one_the_pointer_names() {
    // A holder that could not listen in the store (a file system without sockets) published
    // elsewhere, and a killed holder's socket is still in the store.
    let root = tempfile::tempdir().unwrap();
    let store_dir = root.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    drop(std::os::unix::net::UnixListener::bind(store_dir.join(SOCKET)).unwrap());
    let elsewhere = root.path().join("x".repeat(120));
    std::fs::create_dir_all(&elsewhere).unwrap();
    let server = Server::start(&elsewhere, filled()).unwrap();
    std::fs::write(
        store_dir.join(SOCKET_POINTER),
        format!("{}\n", server.socket().display()),
    )
    .unwrap();
    let remote = RemoteStore::connect(&store_dir).unwrap();
    assert_eq!(remote.runs().unwrap().len(), 2);
}

#[test]
fn a_holder_that_stops_answering_is_an_error_and_its_connection_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    // The store stays held (by this test), so the reader cannot fall back on it.
    let _held = sluice_engine::SledStore::open(dir.path()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(dir.path().join(SOCKET)).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream).lines();
        let _hello = lines.next();
        writeln!(
            writer,
            r#"{{"ok":{{"protocol":{PROTOCOL},"pid":4242,"sluice":"test"}}}}"#
        )
        .unwrap();
        // The first query is never answered; any later one would be, wrongly.
        let _first = lines.next();
        while let Some(Ok(_)) = lines.next() {
            writeln!(writer, r#"{{"ok":[]}}"#).unwrap();
        }
    });
    let remote = RemoteStore::connect(dir.path()).unwrap();
    assert_eq!(remote.pid(), 4242);
    let error = remote.runs().unwrap_err().to_string();
    assert!(
        error.contains("4242") && error.contains("stopped answering"),
        "{error}"
    );
    assert!(
        remote.runs().is_err(),
        "a late answer is never taken for the next query's"
    );
}
