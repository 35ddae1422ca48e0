//! `sluice emulator`: the local Google Cloud emulator as a process, on loopback only.

use std::net::SocketAddr;
use std::path::Path;

use sluice_emulator::{Emulator, EmulatorConfig};
use sluice_gcp::TimeScale;

use crate::error::{CliError, CommandResult, Outcome};

pub async fn run(port: u16, config_path: Option<&Path>, seed: Option<u64>) -> CommandResult {
    let mut config = match config_path {
        None => EmulatorConfig::default(),
        Some(path) => read_config(path)?,
    };
    if let Some(seed) = seed {
        config.seed = seed;
    }
    if TimeScale::new(config.time_scale).is_err() {
        return Err(CliError::bad_input(format!(
            "emulator config: time_scale must be a positive number, got {}",
            config.time_scale
        )));
    }
    let handle = Emulator::serve(config, SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|error| {
            CliError::bad_input(format!("cannot listen on 127.0.0.1:{port}: {error}"))
                .with_hint("pick another --port (0 = any free one)")
        })?;
    outln!("emulator listening on {}", handle.base_url);
    outln!(
        "admin API: {}/_emulator/state, /requests, /clock, /reset",
        handle.base_url
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    errln!("emulator stopping");
    handle
        .shutdown()
        .await
        .map_err(|error| CliError::failed(format!("emulator stopped with: {error}")))?;
    Ok(Outcome::success())
}

fn read_config(path: &Path) -> Result<EmulatorConfig, CliError> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::bad_input(format!("cannot read emulator config {}: {error}", path.display()))
    })?;
    serde_json::from_str(&text)
        .map_err(|error| CliError::bad_input(format!("emulator config {}: {error}", path.display())))
}
