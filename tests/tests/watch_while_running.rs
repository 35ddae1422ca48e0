//! Watching a run from another terminal (issue 9): while a run holds its store, `status` and
//! `runs` read it through the running process, whose Unix socket serves read-only queries;
//! `compact` is refused with exit 3. After the holder is killed, its stale socket is ignored and
//! the store is read directly again, with the same output.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};
use sluice_tests::{stderr, stdout, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

fn file_step(sandbox: &Sandbox, id: &str, after: &[&str]) -> Value {
    json!({"id": id, "kind": "local.file", "after": after, "with": {
        "path": sandbox.work(&format!("{id}.txt")).to_str().unwrap(), "content": id,
        "effects_log": sandbox.effects_log().to_str().unwrap()}})
}

/// `first → held → last`, with `held` to be frozen once its intent is durable.
fn plan(sandbox: &Sandbox) -> PathBuf {
    sandbox.write_plan(
        "plan.json",
        &json!({"name": "watched", "steps": [
            file_step(sandbox, "first", &[]),
            file_step(sandbox, "held", &["first"]),
            file_step(sandbox, "last", &["held"]),
        ]}),
    )
}

fn sluice(store: &Path, args: &[&str]) -> Output {
    Command::new(HARNESS)
        .args(args)
        .arg("--store")
        .arg(store)
        .env_remove("SLUICE_STORE")
        .env_remove("SLUICE_HARNESS_CRASH_AT")
        .output()
        .expect("harness runs")
}

/// Starts `run PLAN` frozen at `held:after-intent` and returns once it is there, still holding
/// the store.
fn start_frozen_run(store: &Path, plan: &Path) -> Child {
    let mut child = Command::new(HARNESS)
        .args([
            "run",
            "--auto-approve",
            plan.to_str().unwrap(),
            "--concurrency",
            "1",
            "--store",
        ])
        .arg(store)
        .env_remove("SLUICE_STORE")
        .env("SLUICE_HARNESS_CRASH_AT", "held:after-intent")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("harness starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let frozen = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "SLUICE-HARNESS-FROZEN held after-intent");
    assert!(frozen, "the run never reached held:after-intent");
    child
}

const READ_COMMANDS: [&[&str]; 4] = [&["status"], &["status", "--json"], &["runs"], &["runs", "--json"]];

/// The whole story against `store`: read while held, compact refused, kill, read directly.
fn watch(sandbox: &Sandbox, store: &Path) {
    let plan = plan(sandbox);
    let mut holder = start_frozen_run(store, &plan);
    let pid = holder.id();
    let through = format!("reading through the running process {pid} (store held)");

    let mut while_held = Vec::new();
    for args in READ_COMMANDS {
        let output = sluice(store, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        let err = stderr(&output);
        assert_eq!(err.matches(&through).count(), 1, "{args:?}: {err}");
        while_held.push(stdout(&output));
    }
    let status = &while_held[0];
    assert!(status.contains("plan watched"), "{status}");
    assert!(status.contains("state running"), "{status}");
    for (step, state) in [("first", "succeeded"), ("held", "applying"), ("last", "pending")] {
        assert!(
            status
                .lines()
                .any(|line| line.split_whitespace().take(2).eq([step, state])),
            "{step} should be {state}:\n{status}"
        );
    }
    let json: Value = serde_json::from_str(&while_held[1]).unwrap();
    let run_id = json["run_id"].as_str().unwrap().to_string();
    assert_eq!(json["state"], "running");
    assert!(status.contains(&run_id));
    assert!(while_held[2].contains(&run_id) && while_held[2].contains("running"));
    let runs: Value = serde_json::from_str(&while_held[3]).unwrap();
    assert_eq!(runs[0]["id"], run_id.as_str());

    // A named run, and one the store does not have, read the same way.
    let named = sluice(store, &["status", &run_id]);
    assert_eq!(named.status.code(), Some(0), "{}", stderr(&named));
    assert_eq!(stdout(&named), *status);
    let unknown = sluice(store, &["status", "no-such-run"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));

    // Compaction rewrites the database: refused while the run holds the store (exit 3).
    let compact = sluice(store, &["compact"]);
    assert_eq!(compact.status.code(), Some(3), "{}", stderr(&compact));
    let err = stderr(&compact);
    assert!(
        err.contains("cannot compact") && err.contains(&pid.to_string()),
        "{err}"
    );
    // A second run on the store is refused too, naming the holder.
    let second = sluice(store, &["run", "--auto-approve", plan.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(
        err.contains("in use by another sluice process")
            && err.contains(&format!("held by sluice process {pid}")),
        "{err}"
    );
    assert!(!sandbox.work("last.txt").exists());

    // SIGKILL: no destructor runs, so the socket stays behind, stale.
    holder.kill().unwrap();
    holder.wait().unwrap();
    for (args, before) in READ_COMMANDS.iter().zip(&while_held) {
        let output = sluice(store, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert!(
            !stderr(&output).contains("reading through"),
            "{}",
            stderr(&output)
        );
        assert_eq!(
            stdout(&output),
            *before,
            "{args:?}: the same output, read directly"
        );
    }

    // The next holder replaces the stale socket, and removes it when it ends.
    let resumed = sluice(store, &["resume", &run_id]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(!store.join("sluice.sock").exists());
    assert!(!store.join("sluice.sock.path").exists());
    let status = stdout(&sluice(store, &["status"]));
    assert!(status.contains("state succeeded"), "{status}");
}

#[test]
fn status_and_runs_read_through_the_process_holding_the_store() {
    let sandbox = Sandbox::new();
    watch(&sandbox, &sandbox.store());
}

#[test]
fn a_store_path_too_long_for_a_socket_is_watched_through_a_short_one() {
    let sandbox = Sandbox::new();
    let store = sandbox
        .root
        .join("x".repeat(70))
        .join("y".repeat(70))
        .join("store");
    watch(&sandbox, &store);
}

/// A reader that does hold the lock (no run held the store, so `status` opened it) holds it for
/// a moment only: a run starting then waits for it instead of failing.
#[test]
fn a_run_waits_a_moment_for_a_reader_holding_the_store() {
    let sandbox = Sandbox::new();
    let plan = plan(&sandbox);
    let created = sluice(&sandbox.store(), &["runs"]);
    assert_eq!(created.status.code(), Some(2), "no store yet");
    let first = sluice(
        &sandbox.store(),
        &["run", "--auto-approve", plan.to_str().unwrap()],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let reader = sluice_engine::SledStore::open(&sandbox.store()).unwrap();
    let run = Command::new(HARNESS)
        .args(["run", "--auto-approve", plan.to_str().unwrap(), "--store"])
        .arg(sandbox.store())
        .env_remove("SLUICE_STORE")
        .env_remove("SLUICE_HARNESS_CRASH_AT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    drop(reader);
    let output = run.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// The night-long case: `fleet status` (and `runs`, `status`) while a fleet runs.
#[test]
fn fleet_status_reads_through_the_running_fleet() {
    let sandbox = Sandbox::new();
    let step = |id: &str, after: &[&str]| {
        let path = sandbox.work(&format!("${{vars.project}}-{id}.txt"));
        json!({"id": id, "kind": "local.file", "after": after,
               "with": {"path": path.to_str().unwrap(), "content": id}})
    };
    sandbox.write_plan(
        "plan.json",
        &json!({"name": "p", "vars": {"project": {"type": "string", "required": true}},
                "steps": [step("first", &[]), step("held", &["first"])]}),
    );
    let fleet = sandbox.write_plan(
        "fleet.json",
        &json!({"name": "watched", "plan": "plan.json", "concurrency": 1,
                "targets": [{"project": "alpha-project"}, {"project": "beta-project"}]}),
    );
    let store = sandbox.store();
    let mut holder = Command::new(HARNESS)
        .args(["fleet", "run", fleet.to_str().unwrap(), "--store"])
        .arg(&store)
        .env_remove("SLUICE_STORE")
        .env("SLUICE_HARNESS_CRASH_AT", "held:after-intent")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("harness starts");
    let frozen = BufReader::new(holder.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "SLUICE-HARNESS-FROZEN held after-intent");
    assert!(frozen, "the fleet never reached held:after-intent");
    let through = format!("reading through the running process {} (store held)", holder.id());

    let commands: [&[&str]; 4] = [
        &["fleet", "status"],
        &["fleet", "status", "--json"],
        &["runs"],
        &["status"],
    ];
    let mut while_held = Vec::new();
    for args in commands {
        let output = sluice(&store, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert_eq!(
            stderr(&output).matches(&through).count(),
            1,
            "{args:?}: {}",
            stderr(&output)
        );
        while_held.push(stdout(&output));
    }
    let fleet_status = &while_held[0];
    assert!(
        fleet_status.contains("watched") && fleet_status.contains("running"),
        "{fleet_status}"
    );
    assert!(
        fleet_status.contains("alpha-project") && fleet_status.contains("beta-project"),
        "{fleet_status}"
    );
    assert!(
        while_held[3].contains("held") && while_held[3].contains("applying"),
        "{}",
        while_held[3]
    );

    let compact = sluice(&store, &["compact"]);
    assert_eq!(compact.status.code(), Some(3), "{}", stderr(&compact));

    holder.kill().unwrap();
    holder.wait().unwrap();
    for (args, before) in commands.iter().zip(&while_held) {
        let output = sluice(&store, args);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        assert!(!stderr(&output).contains("reading through"));
        assert_eq!(
            stdout(&output),
            *before,
            "{args:?}: the same output, read directly"
        );
    }
}
