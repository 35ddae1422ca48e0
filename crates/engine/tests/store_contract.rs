//! The `Store` contract, run against both backends, plus what only the sled store promises:
//! durability across reopen, one process at a time, format checks and compaction.

use std::collections::BTreeMap;

use serde_json::json;
use sluice_engine::store::{
    JournalEntry, JournalEvent, RunCommit, RunRecord, RunState, StepAppend, StepRecord, StepState, StepStatus,
};
use sluice_engine::{
    parse_plan, FleetRecord, FleetState, FleetTarget, MemoryStore, Plan, SledStore, Store, StoreError,
};

fn run(id: &str, key: &str, created: u64, state: RunState) -> RunRecord {
    RunRecord {
        id: id.into(),
        run_key: key.into(),
        plan_digest: "d".into(),
        plan_source: "p.json".into(),
        plan_name: "p".into(),
        vars: BTreeMap::from([("x".to_string(), json!(1))]),
        state,
        created_at_ms: created,
        updated_at_ms: created,
        finished_at_ms: None,
        sessions: 0,
    }
}

fn plan() -> Plan {
    parse_plan(
        r#"{"name":"p","steps":[{"id":"a","kind":"core.noop"}]}"#,
        "p.json",
    )
    .unwrap()
}

fn entry(seq: u64, to: StepState) -> JournalEntry {
    JournalEntry {
        seq,
        at_ms: seq,
        step: Some("a".into()),
        event: JournalEvent::Transition {
            from: StepState::Pending,
            to,
        },
    }
}

fn contract(store: &dyn Store) {
    assert!(store.runs().unwrap().is_empty());
    assert_eq!(store.next_journal_seq("r1").unwrap(), 0);
    let steps = vec![StepRecord::pending("a"), StepRecord::pending("b")];
    store
        .commit_run(RunCommit {
            plan: Some(("d".into(), plan())),
            run: run("r1", "k", 10, RunState::Running),
            steps,
            journal: vec![entry(0, StepState::Pending)],
        })
        .unwrap();
    let mut a = StepRecord::pending("a");
    a.status = StepStatus::Succeeded;
    a.outputs.insert("value".into(), json!("v"));
    // 17 entries: the journal must come back in numeric, not lexical, order.
    let journal = (1..=17).map(|seq| entry(seq, StepState::Observing)).collect();
    store
        .append_steps(
            "r1",
            StepAppend {
                steps: vec![a.clone()],
                journal,
            },
        )
        .unwrap();
    store
        .commit_run(RunCommit::run(run("r2", "k", 20, RunState::Succeeded), vec![]))
        .unwrap();
    store.flush().unwrap();

    assert_eq!(store.run("r1").unwrap().unwrap().vars["x"], json!(1));
    assert_eq!(
        store.plan("d").unwrap(),
        Some(plan()),
        "the plan is stored once, by digest"
    );
    assert!(store.plan("other").unwrap().is_none());
    assert!(store.run("nope").unwrap().is_none());
    let ids: Vec<String> = store.runs().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["r1", "r2"], "oldest first");
    assert_eq!(store.latest_run_for_key("k").unwrap().unwrap().id, "r2");
    assert!(store.latest_run_for_key("other").unwrap().is_none());
    let mut steps = store.steps("r1").unwrap();
    steps.sort_by(|x, y| x.step_id.cmp(&y.step_id));
    assert_eq!(steps[0], a, "the newest record of a step wins");
    assert_eq!(steps[1].state(), StepState::Pending);
    let seqs: Vec<u64> = store.journal("r1").unwrap().into_iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (0..=17).collect::<Vec<_>>());
    assert_eq!(store.next_journal_seq("r1").unwrap(), 18);
    assert!(store.steps("r2").unwrap().is_empty());
}

/// Only a succeeded run is finished: compaction may take it, never a run that `run` or `resume`
/// could continue (running, perhaps killed; failed; interrupted).
fn compaction_takes_only_finished_runs(store: &dyn Store) {
    let states = [
        RunState::Succeeded,
        RunState::Interrupted,
        RunState::Failed,
        RunState::Succeeded,
        RunState::Running,
        RunState::Succeeded,
    ];
    for (i, state) in states.into_iter().enumerate() {
        let id = format!("c{i}");
        let commit = RunCommit::run(run(&id, &format!("ck{i}"), 100 + i as u64, state), vec![]);
        store.commit_run(commit).unwrap();
    }
    let ids = |keep| -> Vec<String> {
        store
            .runs_to_compact(keep)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(
        ids(0),
        ["c0", "c3", "c5"],
        "every succeeded run, and nothing else"
    );
    assert_eq!(ids(1), ["c0", "c3"], "the newest succeeded run is kept");
    assert!(ids(3).is_empty());
    let finished: Vec<bool> = states.iter().map(|s| s.is_finished()).collect();
    assert_eq!(finished, [true, false, false, true, false, true]);
}

#[test]
fn compaction_never_takes_a_failed_interrupted_or_running_run_in_either_store() {
    compaction_takes_only_finished_runs(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    compaction_takes_only_finished_runs(&SledStore::open(&dir.path().join("store")).unwrap());
}

/// Fleet records: stored whole with their plans, listed oldest first, and the target → run map
/// kept beside them (a fleet id that is a prefix of another's never mixes their targets).
fn fleet_contract(store: &dyn Store) {
    let fleet = |id: &str, created: u64| FleetRecord {
        id: id.into(),
        fleet_key: "fk".into(),
        name: "nightly".into(),
        source: "fleet.json".into(),
        state: FleetState::Running,
        created_at_ms: created,
        updated_at_ms: created,
        finished_at_ms: None,
        sessions: 0,
        targets: vec![FleetTarget {
            name: "p1".into(),
            plan_digest: "pd".into(),
            vars: Default::default(),
        }],
        extra: json!({ "date": "20261204" }),
    };
    store
        .commit_fleet(&fleet("fleet-b", 20), vec![("pd".into(), plan())])
        .unwrap();
    store.commit_fleet(&fleet("fleet-a", 10), vec![]).unwrap();
    store.commit_fleet(&fleet("fleet-a1", 30), vec![]).unwrap();
    assert_eq!(store.plan("pd").unwrap(), Some(plan()));
    let ids: Vec<String> = store.fleets().unwrap().into_iter().map(|f| f.id).collect();
    assert_eq!(ids, ["fleet-a", "fleet-b", "fleet-a1"]);
    let mut updated = fleet("fleet-a", 10);
    updated.state = FleetState::Partial;
    store.commit_fleet(&updated, vec![]).unwrap();
    assert_eq!(store.fleet("fleet-a").unwrap(), Some(updated));
    assert!(store.fleet("fleet-c").unwrap().is_none());

    store.set_fleet_target_run("fleet-a", 2, "r2").unwrap();
    store.set_fleet_target_run("fleet-a", 10, "r10").unwrap();
    store.set_fleet_target_run("fleet-a1", 0, "other").unwrap();
    store.set_fleet_target_run("fleet-a", 2, "r2b").unwrap();
    let runs = store.fleet_target_runs("fleet-a").unwrap();
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        [(2, "r2b".to_string()), (10, "r10".to_string())]
    );
    assert!(store.fleet_target_runs("fleet-b").unwrap().is_empty());
}

#[test]
fn both_stores_keep_fleets() {
    fleet_contract(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    fleet_contract(&SledStore::open(&path).unwrap());
    let reopened = SledStore::open(&path).unwrap();
    assert_eq!(reopened.fleets().unwrap().len(), 3);
    assert_eq!(reopened.fleet_target_runs("fleet-a").unwrap().len(), 2);
}

/// The two kinds of write: a run commit writes the run with everything it carries, and step
/// appends add to the run's journal in order and replace step records, never touching the run.
fn run_commits_and_step_appends(store: &dyn Store) {
    let mut a = StepRecord::pending("a");
    store
        .commit_run(RunCommit {
            plan: Some(("d".into(), plan())),
            run: run("w1", "wk", 5, RunState::Running),
            steps: vec![a.clone()],
            journal: vec![entry(0, StepState::Pending)],
        })
        .unwrap();
    assert_eq!(store.latest_run_for_key("wk").unwrap().unwrap().id, "w1");
    assert_eq!(store.plan("d").unwrap(), Some(plan()));
    assert_eq!(store.steps("w1").unwrap(), vec![a.clone()]);
    assert_eq!(store.next_journal_seq("w1").unwrap(), 1);

    a.status = StepStatus::Observing;
    for seqs in [[1, 2], [3, 4]] {
        let journal = seqs.iter().map(|&seq| entry(seq, StepState::Observing)).collect();
        store
            .append_steps(
                "w1",
                StepAppend {
                    journal,
                    steps: vec![a.clone()],
                },
            )
            .unwrap();
    }
    assert_eq!(store.steps("w1").unwrap(), vec![a.clone()], "one record per step");
    assert_eq!(
        store.run("w1").unwrap().unwrap(),
        run("w1", "wk", 5, RunState::Running),
        "step appends leave the run record as it was"
    );

    store
        .commit_run(RunCommit::run(
            run("w1", "wk", 5, RunState::Succeeded),
            vec![entry(5, StepState::Succeeded)],
        ))
        .unwrap();
    store.flush().unwrap();
    assert_eq!(store.run("w1").unwrap().unwrap().state, RunState::Succeeded);
    assert_eq!(
        store.steps("w1").unwrap(),
        vec![a],
        "a run commit without steps keeps them"
    );
    let seqs: Vec<u64> = store.journal("w1").unwrap().into_iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        [0, 1, 2, 3, 4, 5],
        "appended in order, after the run's own entries"
    );
}

#[test]
fn both_stores_keep_the_two_kinds_of_write_apart() {
    run_commits_and_step_appends(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    run_commits_and_step_appends(&SledStore::open(&path).unwrap());
    let reopened = SledStore::open(&path).unwrap();
    assert_eq!(reopened.journal("w1").unwrap().len(), 6, "durable once flushed");
    assert_eq!(reopened.steps("w1").unwrap()[0].state(), StepState::Observing);
}

#[test]
fn memory_store_meets_the_contract() {
    contract(&MemoryStore::new());
}

#[test]
fn sled_store_meets_the_contract_and_keeps_it_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    contract(&SledStore::open(&path).unwrap());
    let reopened = SledStore::open(&path).unwrap();
    assert_eq!(reopened.runs().unwrap().len(), 2);
    assert_eq!(reopened.journal("r1").unwrap().len(), 18);
}

#[test]
fn sled_store_is_held_by_one_opener_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let first = SledStore::open(&path).unwrap();
    match SledStore::open(&path) {
        Err(StoreError::Locked { path: named }) => assert_eq!(named, path.display().to_string()),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(first);
    // Reopening at once must work even while sled's background threads still hold its file.
    for round in 0..20u64 {
        let store = SledStore::open(&path).expect("free again once the previous opener is dropped");
        let mut record = StepRecord::pending("a");
        record.attempts = round as u32;
        store
            .append_steps(
                "r",
                StepAppend {
                    steps: vec![record],
                    journal: vec![entry(round, StepState::Observing)],
                },
            )
            .unwrap();
        store.flush().unwrap();
    }
    assert_eq!(SledStore::open(&path).unwrap().journal("r").unwrap().len(), 20);
}

#[test]
fn sled_store_refuses_unknown_formats_and_foreign_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        // A store written by a future version: its database says format 2.
        let db = sled::open(path.join("db")).unwrap();
        db.insert(b"meta/format", b"2".as_slice()).unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(&path) {
        Err(error @ StoreError::UnknownFormat { .. }) => {
            assert!(error.to_string().contains("format version 2"))
        }
        other => panic!("expected UnknownFormat, got {:?}", other.map(|_| ())),
    }
    let foreign = dir.path().join("photos");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), b"meow").unwrap();
    assert!(matches!(
        SledStore::open(&foreign),
        Err(StoreError::Foreign { .. })
    ));
    assert_eq!(
        std::fs::read_dir(&foreign).unwrap().count(),
        1,
        "nothing written into a foreign directory"
    );
}

#[test]
fn compaction_keeps_unfinished_and_newest_runs_and_shrinks_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = SledStore::open(&path).unwrap();
        for i in 0..200u64 {
            let state = match i {
                3 => RunState::Failed,
                4 => RunState::Interrupted,
                5 => RunState::Running,
                _ => RunState::Succeeded,
            };
            let id = format!("r{i:03}");
            let steps = (0..20).map(|s| StepRecord::pending(&format!("s{s}"))).collect();
            let journal = (0..50).map(|seq| entry(seq, StepState::Observing)).collect();
            store
                .commit_run(RunCommit {
                    // Every run uses plan "d"; "orphan" is used by none and must go.
                    plan: (i < 2).then(|| (if i == 0 { "d" } else { "orphan" }.to_string(), plan())),
                    run: run(&id, &format!("k{i}"), i, state),
                    steps,
                    journal,
                })
                .unwrap();
        }
        store.flush().unwrap();
    }
    let report = SledStore::compact(&path, 10).unwrap();
    assert_eq!(report.runs_removed, 187, "197 finished runs, 10 kept");
    assert_eq!(report.runs_kept, 13);
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    let store = SledStore::open(&path).unwrap();
    let ids: Vec<String> = store.runs().unwrap().into_iter().map(|r| r.id).collect();
    for (id, state) in [("r003", "failed"), ("r004", "interrupted"), ("r005", "running")] {
        assert!(
            ids.contains(&id.to_string()),
            "the old {state} run is resumable and kept"
        );
        assert!(!store.steps(id).unwrap().is_empty() && !store.journal(id).unwrap().is_empty());
        assert!(store
            .latest_run_for_key(&format!("k{}", &id[1..].trim_start_matches('0')))
            .unwrap()
            .is_some());
    }
    assert!(ids.contains(&"r199".to_string()));
    assert!(store.steps("r000").unwrap().is_empty() && store.journal("r000").unwrap().is_empty());
    assert!(store.latest_run_for_key("k0").unwrap().is_none());
    assert_eq!(store.journal("r199").unwrap().len(), 50);
    assert!(store.plan("d").unwrap().is_some(), "a plan kept runs use stays");
    assert!(
        store.plan("orphan").unwrap().is_none(),
        "a plan no kept run uses goes"
    );
}

/// Garbles every 7th byte of a file.
fn garble(file: &std::path::Path) {
    let mut bytes = std::fs::read(file).unwrap();
    assert!(!bytes.is_empty(), "{} is empty", file.display());
    for i in (0..bytes.len()).step_by(7) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(file, bytes).unwrap();
}

fn expect_damaged(result: Result<impl Sized, StoreError>, path: &std::path::Path, what: &str) {
    match result {
        Err(error @ StoreError::Damaged { .. }) => {
            let text = error.to_string();
            for wanted in [
                path.display().to_string().as_str(),
                what,
                "backup",
                "move it aside",
            ] {
                assert!(text.contains(wanted), "`{wanted}` missing from: {text}");
            }
            assert!(!text.contains("backtrace"), "{text}");
        }
        Err(other) => panic!("expected Damaged, got {other:?}"),
        Ok(_) => panic!("expected Damaged, got a store"),
    }
}

/// sled's database under a `SledStore` this process just dropped: sled's background threads
/// keep the file lock a moment after a `Db` is dropped (as `SledStore::open` knows), so the
/// lock is waited for, up to 5 s, rather than taken for an error.
fn reopen_raw(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::yield_now();
            }
            other => return other.unwrap(),
        }
    }
}

#[test]
fn a_damaged_sled_store_is_refused_naming_its_path_and_never_taken_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    // A store whose creation stopped right after sled made its files is still a new store.
    drop(sled::open(fresh.join("db")).unwrap());
    SledStore::open(&fresh).unwrap();

    let write_one_run = |path: &std::path::Path| {
        let store = SledStore::open(path).unwrap();
        let commit = RunCommit {
            plan: Some(("d".into(), plan())),
            ..RunCommit::run(run("r1", "k", 1, RunState::Failed), vec![])
        };
        store.commit_run(commit).unwrap();
        store.flush().unwrap();
    };
    // Its log garbled: sled recovers nothing, which must not pass for an empty new store.
    let log = dir.path().join("log");
    write_one_run(&log);
    garble(&log.join("db/db"));
    expect_damaged(SledStore::open(&log), &log, "recovered no records");
    // Still refused: no format key was written, so it never turns into a new, empty store.
    expect_damaged(SledStore::open(&log), &log, "recovered no records");
    // Its configuration garbled: sled reports corruption.
    let conf = dir.path().join("conf");
    write_one_run(&conf);
    garble(&conf.join("db/conf"));
    expect_damaged(SledStore::open(&conf), &conf, "fail sled's checksums");
    // A record that does not decode.
    let record = dir.path().join("record");
    write_one_run(&record);
    {
        let db = reopen_raw(&record.join("db"));
        db.insert(b"run/r2", b"{not json".as_slice()).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(&record).unwrap();
    expect_damaged(store.runs(), &record, "the record `run/r2` cannot be read");
    expect_damaged(store.run("r2"), &record, "the record `run/r2` cannot be read");
}
