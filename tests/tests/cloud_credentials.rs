//! Credentials the `sluice` binary cannot use end the command before anything runs, with exit
//! 2, the reason, and no secret: a key the token endpoint refuses (the server's reason in the
//! message), no application default credentials behind a metadata server that never answers
//! (what was tried), and a token endpoint whose TLS certificate is not trusted. And the access
//! token's environment variable never shows in `--help`.

mod support;

use std::net::TcpListener;

use sluice_emulator::{test_service_account_key_json, EmulatorConfig};
use sluice_tests::{stderr, stdout, Sandbox};
use support::{Cloud, HARNESS};

fn plan() -> String {
    format!(
        "{}/../plans/agent-gateway-egress.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `sluice run` of the egress plan with `extra` flags; asserts exit 2 and no store, returns stderr.
fn refused(sandbox: &Sandbox, command: &mut std::process::Command) -> String {
    let output = command.output().expect("harness runs");
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(!sandbox.store().exists(), "no store created: {text}");
    assert!(!text.contains("PRIVATE KEY"), "a key never shows: {text}");
    text
}

fn run_args<'a>(plan: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--auto-approve",
        plan,
        "--var",
        "project=sluice-demo",
        "--var",
        "pickle_gcs_uri=gs://agents/agent.pkl",
    ];
    args.extend(extra);
    args
}

/// An emulator that knows no service-account key, a sandbox, and the test key file pointed at
/// the emulator's token endpoint (which will refuse it).
fn refusing_emulator() -> (Cloud, Sandbox, std::path::PathBuf) {
    let cloud = Cloud::start_with(EmulatorConfig {
        service_account_keys: vec![],
        ..support::config()
    });
    let sandbox = Sandbox::new();
    let key = sandbox.work("key.json");
    std::fs::write(
        &key,
        test_service_account_key_json(&format!("{}/token", cloud.emulator.base_url)),
    )
    .unwrap();
    (cloud, sandbox, key)
}

#[test]
fn refused_credentials_exit_2_with_the_servers_reason() {
    let (cloud, sandbox, key) = refusing_emulator();
    let plan = plan();
    let args = run_args(
        &plan,
        &[
            "--endpoint",
            &cloud.emulator.base_url,
            "--credentials",
            key.to_str().unwrap(),
        ],
    );
    let text = refused(&sandbox, &mut sandbox.command(HARNESS, &args));
    assert!(
        text.contains("refused the credentials: invalid_grant: Invalid JWT Signature."),
        "{text}"
    );
}

#[test]
fn resume_with_refused_credentials_exits_2_before_running() {
    let (cloud, sandbox, key) = refusing_emulator();
    // A run that fails (the project does not exist), so there is something to resume.
    let failed = cloud.sluice(
        &sandbox,
        "run",
        "agent-gateway-egress.json",
        &["project=no-such-project", "pickle_gcs_uri=gs://agents/agent.pkl"],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let runs: serde_json::Value =
        serde_json::from_str(&stdout(&sandbox.run(HARNESS, &["runs", "--json"]))).unwrap();
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let before = cloud.emulator.requests().as_array().unwrap().len();
    let args = [
        "resume",
        run.as_str(),
        "--endpoint",
        cloud.emulator.base_url.as_str(),
        "--credentials",
        key.to_str().unwrap(),
    ];
    let output = sandbox.run(HARNESS, &args);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("invalid_grant: Invalid JWT Signature."), "{text}");
    let calls = cloud.emulator.requests().as_array().unwrap().len();
    assert_eq!(calls, before + 1, "only the refused token request: {text}");
}

#[test]
fn a_metadata_server_that_never_answers_ends_with_what_was_tried() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let sandbox = Sandbox::new();
    let gcloud = sandbox.work("gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    let plan = plan();
    let mut command = sandbox.command(HARNESS, &run_args(&plan, &[]));
    command
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("CLOUDSDK_CONFIG", &gcloud)
        .env("GCE_METADATA_HOST", &address)
        .env("GCE_METADATA_TIMEOUT", "0.2");
    let text = refused(&sandbox, &mut command);
    for tried in [
        "GOOGLE_APPLICATION_CREDENTIALS (not set)".to_string(),
        "application_default_credentials.json (absent)".to_string(),
        format!("the metadata server at http://{address} (GCE_METADATA_HOST; no answer within 200 ms)"),
    ] {
        assert!(text.contains(&tried), "{tried:?} in: {text}");
    }
    drop(silent);
}

#[test]
fn the_access_token_variable_never_shows_in_help() {
    let sandbox = Sandbox::new();
    let output = sandbox
        .command(HARNESS, &["run", "--help"])
        .env("SLUICE_ACCESS_TOKEN", "ya29.SECRET-FROM-ENV")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = stdout(&output);
    assert!(help.contains("SLUICE_ACCESS_TOKEN"), "{help}");
    assert!(help.contains("--impersonate-service-account"), "{help}");
    assert!(!help.contains("SECRET-FROM-ENV"), "{help}");
}

/// The loopback servers of the client's tests: here, the TLS server whose certificate comes
/// from a CA no system trusts.
#[path = "../../crates/gcp/tests/support/loopback.rs"]
mod loopback;

/// [`loopback::untrusted_tls`] on its own runtime, which outlives the CLI process.
fn untrusted_tls() -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (address, _) = runtime.block_on(loopback::untrusted_tls());
    (address.to_string(), runtime)
}

#[test]
fn an_untrusted_token_endpoint_certificate_exits_2_naming_the_host() {
    let (address, _server) = untrusted_tls();
    let sandbox = Sandbox::new();
    let key = sandbox.work("key.json");
    std::fs::write(
        &key,
        test_service_account_key_json(&format!("https://{address}/token")),
    )
    .unwrap();
    let plan = plan();
    let args = run_args(&plan, &["--credentials", key.to_str().unwrap()]);
    let text = refused(&sandbox, &mut sandbox.command(HARNESS, &args));
    assert!(
        text.contains(&format!("the TLS certificate of {address} is not trusted")),
        "{text}"
    );
    assert!(text.contains("SSL_CERT_FILE"), "{text}");
}

#[test]
fn an_exported_access_token_does_not_stop_emulator_runs() {
    let sandbox = Sandbox::new();
    let demo = format!("{}/../plans/demo.json", env!("CARGO_MANIFEST_DIR"));
    let output = sandbox
        .command(HARNESS, &["plan", &demo, "--emulator"])
        .env("SLUICE_ACCESS_TOKEN", "ya29.SECRET-FROM-ENV")
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("SECRET-FROM-ENV"), "{text}");
}
