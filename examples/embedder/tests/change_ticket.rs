//! `acme-sluice` runs its plan, custom kind and built-in ones together, against an emulator of
//! Google Cloud started here (on loopback): `plan` shows the ticket it would open, `run` opens it
//! with the project number read from the cloud, and a second run changes nothing, neither in
//! the cloud nor in the ledger.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sluice_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

const BINARY: &str = env!("CARGO_BIN_EXE_acme-sluice");
const PLAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/change-ticket.json");

/// `acme-sluice COMMAND PLAN` against `emulator`, in `dir`'s store, the ledger in `dir`.
fn acme_sluice(emulator: &EmulatorHandle, dir: &Path, command: &[&str]) -> Output {
    let ledger = format!("ledger={}", dir.join("changes.json").display());
    Command::new(BINARY)
        .args(command)
        .arg(PLAN)
        .args(["--var", "project=sluice-demo", "--var", &ledger])
        .args(["--endpoint", &emulator.base_url, "--access-token", "test-token"])
        .args(["--time-scale", "0.001", "--store"])
        .arg(dir.join("store"))
        .env_remove("SLUICE_STORE")
        .output()
        .expect("acme-sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The emulator's calls that change something (not reads or long polls).
fn mutations(emulator: &EmulatorHandle) -> Vec<String> {
    let requests = emulator.requests();
    let calls = requests.as_array().expect("a request log");
    calls
        .iter()
        .filter(|call| call["method"] != "GET" && !call["path"].as_str().unwrap_or("").ends_with(":wait"))
        .map(|call| format!("{} {}", call["method"], call["path"]))
        .collect()
}

#[test]
fn validate_knows_the_custom_kind() {
    let output = Command::new(BINARY)
        .args(["validate", PLAN, "--var", "project=my-project"])
        .env_remove("SLUICE_STORE")
        .output()
        .expect("acme-sluice runs");
    // The shipped `sluice` refuses the plan: unknown kind `acme.change_ticket` (exit 2).
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("valid (4 steps"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn the_custom_kind_runs_with_the_built_in_ones_and_a_second_run_changes_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = EmulatorConfig {
        time_scale: 0.001,
        ..EmulatorConfig::default()
    };
    let emulator = runtime.block_on(Emulator::start(config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("changes.json");

    let preview = acme_sluice(&emulator, dir.path(), &["plan"]);
    let listing = text(&preview.stdout);
    assert_eq!(
        preview.status.code(),
        Some(0),
        "{listing}\n{}",
        text(&preview.stderr)
    );
    let ticket_line = listing
        .lines()
        .find(|l| l.contains("ticket"))
        .expect("the ticket step listed");
    assert!(
        ticket_line.contains("acme.change_ticket") && ticket_line.contains("open ticket CHG-sluice-demo-iam"),
        "{listing}"
    );
    assert!(!ledger.exists(), "plan changes nothing");

    let first = acme_sluice(&emulator, dir.path(), &["run", "--auto-approve"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&ledger).unwrap()).unwrap();
    let ticket = &recorded["tickets"]["CHG-sluice-demo-iam"];
    assert_eq!(ticket["summary"], "IAM enabled in sluice-demo");
    assert_eq!(
        ticket["details"]["project_number"], "100000000001",
        "the number gcp.project read from the cloud: {recorded}"
    );
    let first_run = ticket["opened_by_run"].as_str().unwrap_or_default();
    assert!(!first_run.is_empty(), "{recorded}");
    assert_eq!(ticket["updated_by_run"], first_run);
    let receipt = std::fs::read_to_string(dir.path().join("changes.json.last-ticket")).unwrap();
    assert_eq!(
        receipt, "CHG-sluice-demo-iam\n",
        "a built-in step read the custom kind's output"
    );
    let made = mutations(&emulator);
    assert!(
        made.iter().any(|call| call.contains("services:batchEnable")),
        "the gcp.services step enabled the APIs: {made:?}"
    );

    let ledger_before = std::fs::read_to_string(&ledger).unwrap();
    let again = acme_sluice(&emulator, dir.path(), &["run", "--auto-approve"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(mutations(&emulator), made, "the second run only reads the cloud");
    // A write would have named the second run in `updated_by_run`.
    let ledger_after = std::fs::read_to_string(&ledger).unwrap();
    assert_eq!(ledger_after, ledger_before, "nor writes the ledger");
}
