//! `sluice emulator` as a process: it prints its URL, answers Google's 401 to an
//! unauthenticated call, stops on SIGTERM, and refuses a bad config with exit 2.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");

#[test]
fn the_emulator_command_serves_on_loopback_and_stops_on_sigterm() {
    let mut child = Command::new(HARNESS)
        .args(["emulator", "--port", "0", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("emulator listening on http://")
        .expect(&first)
        .to_string();
    assert!(url.starts_with("127.0.0.1:"), "{url}");

    let mut stream = TcpStream::connect(&url).unwrap();
    write!(stream, "GET /v1/projects/sluice-demo/services/iam.googleapis.com HTTP/1.1\r\nHost: {url}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("\"UNAUTHENTICATED\""), "{response}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_bad_emulator_config_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("emulator.json");
    std::fs::write(&config, r#"{"seed": 1, "colour": "red"}"#).unwrap();
    let output = Command::new(HARNESS)
        .args(["emulator", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("emulator config") && stderr.contains("colour"),
        "{stderr}"
    );
}
