//! `--emulator` with a store: the embedded emulator's world kept beside a `--store`, so that
//! `status` shows the run, a second run and `plan` see the world as left, a run killed midway
//! resumes with `resume --emulator`, and an emulator run is never continued against another
//! cloud (nor the other way round). Without a store, the scratch store is named.
//!
//! Whether the world was restored is read from the store's journal: a step that finds its
//! resource already there goes from observing straight to succeeded, while one that finds a
//! fresh world journals `applying` to make it again.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use sluice_engine::{JournalEvent, SledStore, StepState, Store};
use sluice_tests::{run_and_kill_at, status_json, stderr, stdout, Sandbox};
use support::{run_ids, shipped_plan, Cloud, HARNESS};

const PLAN: &str = "agent-gateway-egress.json";

/// `sluice ARGS --emulator` in `sandbox`'s store.
fn emulated(sandbox: &Sandbox, args: &[&str]) -> std::process::Output {
    let mut args = args.to_vec();
    args.push("--emulator");
    sandbox.run(HARNESS, &args)
}

fn plan_path() -> String {
    shipped_plan(PLAN).display().to_string()
}

/// The steps of `run_id` that journaled an `applying` transition after journal entry `after`
/// (all of them with `None`), in journal order.
fn applied_after(store: &Path, run_id: &str, after: Option<u64>) -> Vec<String> {
    let store = SledStore::open(store).expect("the store opens once the harness has ended");
    store
        .journal(run_id)
        .unwrap()
        .into_iter()
        .filter(|entry| after.is_none_or(|seq| entry.seq > seq))
        .filter(|entry| {
            matches!(
                entry.event,
                JournalEvent::Transition {
                    to: StepState::Applying,
                    ..
                }
            )
        })
        .filter_map(|entry| entry.step)
        .collect()
}

fn last_journal_seq(store: &Path, run_id: &str) -> u64 {
    let store = SledStore::open(store).unwrap();
    store.journal(run_id).unwrap().last().map_or(0, |entry| entry.seq)
}

/// The world the store keeps, as the emulator's state lists it: names of `key`.
fn kept(sandbox: &Sandbox, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(sandbox.store().join("emulator-world.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let world = &file["world"]["world"];
    match key {
        "agentGateways" => world["agent_gateways"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
        "reasoningEngines" => world["vertex_ai"]["engines"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
        _ => panic!("unknown key {key}"),
    }
}

#[test]
fn an_emulator_run_kept_in_a_store_shows_in_status_and_runs_again_without_a_mutation() {
    let sandbox = Sandbox::new();
    let first = emulated(&sandbox, &["run", &plan_path()]);
    assert!(first.status.success(), "{}\n{}", stdout(&first), stderr(&first));
    let said = stderr(&first);
    let where_kept = format!(
        "store {}: the emulated world is kept in {}",
        sandbox.store().display(),
        sandbox.store().join("emulator-world.json").display()
    );
    assert!(said.contains(&where_kept), "{said}");
    let runs = run_ids(&sandbox);
    assert_eq!(runs.len(), 1);
    let status = status_json(&sandbox, HARNESS, None);
    assert_eq!(status["run_id"], runs[0].as_str());
    assert_eq!(status["state"], "succeeded");
    let made = applied_after(&sandbox.store(), &runs[0], None);
    assert!(made.contains(&"egress_gateway".to_string()), "{made:?}");

    let again = emulated(&sandbox, &["run", &plan_path()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("the emulated world continues from"),
        "{}",
        stderr(&again)
    );
    let runs = run_ids(&sandbox);
    assert_eq!(runs.len(), 2, "a succeeded run is re-checked by a new one");
    let second = runs.iter().find(|id| **id != status["run_id"]).unwrap();
    assert_eq!(
        applied_after(&sandbox.store(), second, None),
        Vec::<String>::new(),
        "the second run found everything the first made"
    );
    assert_eq!(kept(&sandbox, "agentGateways").len(), 1);
    assert_eq!(kept(&sandbox, "reasoningEngines").len(), 1);

    let preview = emulated(&sandbox, &["plan", &plan_path()]);
    assert!(preview.status.success(), "{}", stderr(&preview));
    assert!(
        stdout(&preview).contains("0 to create, 0 to update, 8 unchanged"),
        "{}",
        stdout(&preview)
    );
}

#[test]
fn an_emulator_run_killed_midway_resumes_with_emulator_and_is_refused_without() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command(HARNESS, &["run", &plan_path(), "--emulator"]);
    command.env_remove("SLUICE_ACCESS_TOKEN");
    assert!(run_and_kill_at(command, "egress_gateway", "after-step"));
    let runs = run_ids(&sandbox);
    assert_eq!(runs.len(), 1);
    let run = runs[0].as_str();
    let before = status_json(&sandbox, HARNESS, Some(run));
    assert_eq!(before["state"], "running", "killed, not finished");
    // The gateway's success may be lost with the process (a success is not flushed on its
    // own); then its stored operation is settled first on resume, in the restored world.
    let not_started: Vec<String> = before["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "pending")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!not_started.contains(&"egress_gateway".to_string()), "{before}");
    assert!(not_started.contains(&"agent".to_string()), "{before}");
    let world_file = sandbox.store().join("emulator-world.json");
    let world_before = std::fs::read(&world_file).unwrap();

    // Without --emulator, against another cloud: refused before any call, nothing changed.
    let cloud = Cloud::start();
    let refused = sandbox.run(
        HARNESS,
        &[
            "resume",
            run,
            "--endpoint",
            cloud.emulator.base_url.as_str(),
            "--access-token",
            "test-token",
        ],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(said.contains("was against the embedded emulator"), "{said}");
    assert!(
        said.contains(&format!("sluice resume --emulator {run}")),
        "{said}"
    );
    assert_eq!(cloud.emulator.requests(), json!([]), "no call was made");
    assert_eq!(status_json(&sandbox, HARNESS, Some(run)), before);
    assert_eq!(std::fs::read(&world_file).unwrap(), world_before);

    let seen = last_journal_seq(&sandbox.store(), run);
    let resumed = emulated(&sandbox, &["resume", run]);
    assert!(
        resumed.status.success(),
        "{}\n{}",
        stdout(&resumed),
        stderr(&resumed)
    );
    let after = status_json(&sandbox, HARNESS, Some(run));
    assert_eq!(after["state"], "succeeded");
    let applied_again = applied_after(&sandbox.store(), run, Some(seen));
    assert!(applied_again.contains(&"agent".to_string()), "{applied_again:?}");
    for step in &applied_again {
        assert!(
            not_started.contains(step),
            "`{step}` had started before the kill, and the restored world holds what it made; applied again: {applied_again:?}"
        );
    }
    assert_eq!(kept(&sandbox, "agentGateways").len(), 1, "one gateway");
    assert_eq!(kept(&sandbox, "reasoningEngines").len(), 1, "one engine");
}

#[test]
fn a_run_against_another_cloud_is_not_resumed_with_emulator() {
    let sandbox = Sandbox::new();
    let plan = sandbox.write_plan(
        "fails.json",
        &json!({ "name": "fails", "steps": [
            { "id": "flaky", "kind": "local.flaky", "with": {
                "path": sandbox.work("flaky.marker").display().to_string(), "failures": 1, "error": "permanent" } } ] }),
    );
    let failed = sandbox.run(HARNESS, &["run", "--auto-approve", plan.to_str().unwrap()]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let run = run_ids(&sandbox).pop().unwrap();
    let before = status_json(&sandbox, HARNESS, Some(&run));

    let refused = emulated(&sandbox, &["resume", &run]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not the embedded emulator"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(status_json(&sandbox, HARNESS, Some(&run)), before);
    assert!(!sandbox.store().join("emulator-world.json").exists());
}

#[test]
fn without_a_store_an_emulator_run_names_its_scratch_store_and_discards_it() {
    let sandbox = Sandbox::new();
    let state_home = sandbox.root.join("state");
    let output = std::process::Command::new(HARNESS)
        .args(["run", &plan_path(), "--emulator"])
        .env_remove("SLUICE_STORE")
        .env("XDG_STATE_HOME", &state_home)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let said = stderr(&output);
    let line = said
        .lines()
        .find(|l| l.starts_with("scratch store "))
        .unwrap_or_else(|| panic!("the scratch store is named: {said}"));
    assert!(
        line.contains("discarded at the end") && line.contains("--store DIR"),
        "{line}"
    );
    let scratch = line["scratch store ".len()..].split(':').next().unwrap();
    assert!(!Path::new(scratch).exists(), "{scratch} is gone");
    assert!(!state_home.exists(), "the default store is left alone");
}

#[test]
fn a_kept_world_that_cannot_be_read_is_refused_naming_it_and_changes_nothing() {
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.store()).unwrap();
    let world_file = sandbox.store().join("emulator-world.json");
    for damaged in [
        "{\"format\": \"sluice-kept-emulator-world\", \"version\": 1, \"emulatorRuns\": [], \"world\": {",
        "{\"format\": \"sluice-kept-emulator-world\", \"version\": 1, \"emulatorRuns\": [], \"world\": {}}",
    ] {
        std::fs::write(&world_file, damaged).unwrap();
        for args in [
            vec!["run", plan_path().as_str()],
            vec!["plan", plan_path().as_str()],
        ] {
            let refused = emulated(&sandbox, &args);
            assert_eq!(refused.status.code(), Some(3), "{args:?}: {}", stderr(&refused));
            let said = stderr(&refused);
            assert!(
                said.contains(&format!("{} cannot be read", world_file.display()))
                    && said.contains("move it aside"),
                "{said}"
            );
            assert_eq!(std::fs::read_to_string(&world_file).unwrap(), damaged);
            assert!(!sandbox.store().join("db").exists(), "no store was created");
        }
    }
}
