//! `sluice emulator`: the local Google Cloud emulator as a process, on loopback only.

use std::net::SocketAddr;
use std::path::Path;

use sluice_emulator::{Emulator, EmulatorConfig};

use crate::exit;

pub async fn run(port: u16, config_path: Option<&Path>, seed: Option<u64>) -> u8 {
    let mut config = match config_path {
        None => EmulatorConfig::default(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(error) => {
                    errln!("error: cannot read emulator config {}: {error}", path.display());
                    return exit::BAD_INPUT;
                }
            };
            match serde_json::from_str(&text) {
                Ok(config) => config,
                Err(error) => {
                    errln!("error: emulator config {}: {error}", path.display());
                    return exit::BAD_INPUT;
                }
            }
        }
    };
    if let Some(seed) = seed {
        config.seed = seed;
    }
    if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
        errln!(
            "error: emulator config: time_scale must be a positive number, got {}",
            config.time_scale
        );
        return exit::BAD_INPUT;
    }
    let handle = match Emulator::serve(config, SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(handle) => handle,
        Err(error) => {
            errln!(
                "error: cannot listen on 127.0.0.1:{port}: {error}; pick another --port (0 = any free one)"
            );
            return exit::BAD_INPUT;
        }
    };
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
    match handle.shutdown().await {
        Ok(()) => exit::SUCCESS,
        Err(error) => {
            errln!("error: emulator stopped with: {error}");
            exit::RUN_FAILED
        }
    }
}
