//! Fleets through the library: each target is its own run; a failing target fails alone; a
//! stopped fleet continues without redoing finished targets; a second fleet of the same targets
//! only observes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sluice_engine::{
    parse_plan, validate, Engine, FleetState, FleetTargetSpec, MemoryStore, Registry, RunState, Store,
    TargetState, VarInput,
};
use tokio::sync::watch;

const PLAN: &str = r#"{
  "name": "per-target",
  "vars": {
    "project": { "type": "string", "required": true },
    "dir": { "type": "string", "required": true },
    "failures": { "type": "int", "default": 0 },
    "error": { "type": "string", "default": "retryable" }
  },
  "steps": [
    { "id": "file", "kind": "local.file", "with": { "path": "${vars.dir}/${vars.project}.txt", "content": "x" } },
    { "id": "flaky", "kind": "local.flaky", "after": ["file"],
      "with": { "path": "${vars.dir}/${vars.project}.flaky", "failures": "${vars.failures}", "error": "${vars.error}" },
      "retry": { "max_attempts": 2, "initial_delay": "1ms", "max_delay": "1ms" } }
  ]
}"#;

fn targets(dir: &str, names: &[&str], failing: &[&str]) -> Vec<FleetTargetSpec> {
    let registry = Registry::with_builtins();
    names
        .iter()
        .map(|name| {
            let plan = parse_plan(PLAN, "plan.json").unwrap();
            let mut given = BTreeMap::from([
                ("project".to_string(), VarInput::Json(Value::from(*name))),
                ("dir".to_string(), VarInput::Json(Value::from(dir))),
            ]);
            if failing.contains(name) {
                given.insert("failures".into(), VarInput::Json(Value::from(5)));
                given.insert("error".into(), VarInput::Json(Value::from("permanent")));
            }
            FleetTargetSpec {
                name: name.to_string(),
                validated: validate(plan, "plan.json", &registry, &given).unwrap(),
            }
        })
        .collect()
}

fn engine(store: Arc<MemoryStore>) -> Engine {
    Engine::new(Registry::with_builtins(), store)
}

fn running() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

#[tokio::test]
async fn a_failing_target_fails_alone_and_the_fleet_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = engine(Arc::clone(&store));
    let specs = targets(path, &["a1", "b2", "c3", "d4"], &["b2"]);
    let started = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    let summary = engine
        .execute_fleet(&started.fleet_id, 2, running(), None)
        .await
        .unwrap();

    assert_eq!(summary.state, FleetState::Partial);
    let states: Vec<TargetState> = summary.targets.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            TargetState::Succeeded,
            TargetState::Failed,
            TargetState::Succeeded,
            TargetState::Succeeded
        ]
    );
    let failure = summary.targets[1]
        .failure
        .as_ref()
        .expect("the failed target says why");
    assert_eq!(failure.step.as_deref(), Some("flaky"));
    assert_eq!(failure.class.as_str(), "permanent");
    // Reports (`--report`) write the class as the one word plans and journals use.
    assert_eq!(serde_json::to_value(failure).unwrap()["class"], "permanent");
    // The others did their work; each target is its own run.
    for name in ["a1", "c3", "d4"] {
        assert!(dir.path().join(format!("{name}.flaky")).exists());
    }
    let run_ids: std::collections::BTreeSet<_> =
        summary.targets.iter().filter_map(|t| t.run_id.clone()).collect();
    assert_eq!(run_ids.len(), 4);
}

#[tokio::test]
async fn a_continued_fleet_does_not_redo_finished_targets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = engine(Arc::clone(&store));
    let specs = targets(path, &["a1", "b2", "c3"], &["b2"]);
    let started = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    let first = engine
        .execute_fleet(&started.fleet_id, 3, running(), None)
        .await
        .unwrap();
    assert_eq!(first.state, FleetState::Partial);

    // The same key continues the unfinished fleet rather than making a new one.
    let again = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    assert!(again.continued);
    assert_eq!(again.fleet_id, started.fleet_id);
    let second = engine
        .execute_fleet(&started.fleet_id, 3, running(), None)
        .await
        .unwrap();
    for (before, after) in first.targets.iter().zip(&second.targets) {
        if before.state == TargetState::Succeeded {
            // Reported from the store, not run again: same run, one session.
            assert_eq!(before.run_id, after.run_id);
            let run = store.run(after.run_id.as_deref().unwrap()).unwrap().unwrap();
            assert_eq!(run.sessions, 1, "{} was run again", after.name);
        } else {
            // The failed target's run is continued (same run key), in a second session.
            assert_eq!(before.run_id, after.run_id);
            let run = store.run(after.run_id.as_deref().unwrap()).unwrap().unwrap();
            assert_eq!(run.sessions, 2);
            assert_eq!(run.state, RunState::Failed);
        }
    }
    assert_eq!(store.fleet(&started.fleet_id).unwrap().unwrap().sessions, 2);
}

#[tokio::test]
async fn a_stopped_fleet_starts_no_target_and_continues_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = engine(Arc::clone(&store));
    let specs = targets(path, &["a1", "b2", "c3"], &[]);
    let started = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    let (stop, stopped) = watch::channel(true);
    let summary = engine
        .execute_fleet(&started.fleet_id, 1, stopped, None)
        .await
        .unwrap();
    drop(stop);
    assert_eq!(summary.state, FleetState::Interrupted);
    assert!(summary.targets.iter().all(|t| t.state == TargetState::NotStarted));
    assert!(store.fleet_target_runs(&started.fleet_id).unwrap().is_empty());

    let summary = engine
        .execute_fleet(&started.fleet_id, 1, running(), None)
        .await
        .unwrap();
    assert_eq!(summary.state, FleetState::Succeeded);
    assert!(store.fleet(&started.fleet_id).unwrap().unwrap().is_finished());
}

#[tokio::test]
async fn a_second_fleet_of_converged_targets_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = engine(Arc::clone(&store));
    let specs = targets(path, &["a1", "b2"], &[]);
    let first = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    let summary = engine
        .execute_fleet(&first.fleet_id, 2, running(), None)
        .await
        .unwrap();
    assert!(summary.targets.iter().all(|t| !t.changes.is_empty()));

    let second = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    assert!(
        !second.continued,
        "a finished fleet is re-checked by a new fleet run"
    );
    let summary = engine
        .execute_fleet(&second.fleet_id, 2, running(), None)
        .await
        .unwrap();
    assert_eq!(summary.state, FleetState::Succeeded);
    for target in &summary.targets {
        assert_eq!(target.state, TargetState::Succeeded);
        assert!(
            target.changes.is_empty(),
            "{} changed: {:?}",
            target.name,
            target.changes
        );
    }
}

#[tokio::test]
async fn an_unfinished_fleet_the_embedder_declines_is_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Arc::new(MemoryStore::new());
    let engine = engine(Arc::clone(&store));
    let specs = targets(path, &["a1", "b2"], &["b2"]);
    let first = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|_| true)
        .unwrap();
    let summary = engine
        .execute_fleet(&first.fleet_id, 2, running(), None)
        .await
        .unwrap();
    assert_eq!(summary.state, FleetState::Partial);
    // Yesterday's partial fleet: the CLI declines it, so a new fleet starts.
    let next = engine
        .start_fleet("f", "key", "fleet.json", &specs, Value::Null, &|fleet| {
            fleet.state != FleetState::Partial
        })
        .unwrap();
    assert!(!next.continued);
    assert_ne!(next.fleet_id, first.fleet_id);
}
