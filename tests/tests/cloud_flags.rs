//! Bad cloud flags are bad input: exit 2, a message naming the problem and the fix, and no
//! store created (nothing ran).

use sluice_tests::{stderr, Sandbox};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

fn plan() -> String {
    format!(
        "{}/../plans/agent-gateway-egress.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn refused(sandbox: &Sandbox, extra: &[&str], expected: &str) {
    let plan = plan();
    let mut args = vec![
        "run",
        "--auto-approve",
        plan.as_str(),
        "--var",
        "project=sluice-demo",
        "--var",
        "pickle_gcs_uri=gs://agents/agent.pkl",
    ];
    args.extend(extra);
    let output = sandbox.run(HARNESS, &args);
    assert_eq!(output.status.code(), Some(2), "{extra:?}: {}", stderr(&output));
    assert!(
        stderr(&output).contains(expected),
        "{extra:?}: {}",
        stderr(&output)
    );
    assert!(!sandbox.store().exists(), "{extra:?}: no store created");
    assert!(!stderr(&output).contains("PRIVATE KEY"), "a key never shows");
}

#[test]
fn bad_credentials_and_endpoints_are_refused_before_anything_runs() {
    let sandbox = Sandbox::new();
    let bad_key = sandbox.work("key.json");
    std::fs::write(
        &bad_key,
        r#"{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "token_uri": "http://127.0.0.1:9/token"}"#,
    )
    .unwrap();
    let bad_key = bad_key.to_str().unwrap();
    refused(
        &sandbox,
        &["--credentials", bad_key],
        "private_key is not a usable RSA key",
    );
    let missing = sandbox.work("missing.json");
    refused(
        &sandbox,
        &["--credentials", missing.to_str().unwrap()],
        "no such file",
    );
    refused(
        &sandbox,
        &["--endpoint", "http://example.com", "--access-token", "t"],
        "plain http would send the access token unencrypted",
    );
    refused(
        &sandbox,
        &[
            "--endpoint",
            "http://127.0.0.1:9",
            "--access-token",
            "t",
            "--time-scale",
            "0",
        ],
        "--time-scale must be a positive number",
    );
    // `resume --emulator` continues an emulator run kept in a store (emulator_store.rs); with
    // no store there, it is refused like any resume and creates none.
    let output = sandbox.run(HARNESS, &["resume", "some-run", "--emulator"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no sluice store at"),
        "{}",
        stderr(&output)
    );
    assert!(!sandbox.store().exists());
}
