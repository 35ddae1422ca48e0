//! Helpers shared by the end-to-end tests: a sandbox directory with its own store, a way to run
//! the CLI harness in it, a seeded random generator, and side-effect counting.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// SplitMix64: a tiny seeded generator, so random tests are reproducible from their seed.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A temporary directory holding a store (`store/`), work files (`work/`) and plans.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("work")).expect("work directory");
        Sandbox { _dir: dir, root }
    }

    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }

    pub fn work(&self, name: &str) -> PathBuf {
        self.root.join("work").join(name)
    }

    pub fn effects_log(&self) -> PathBuf {
        self.work("effects.log")
    }

    /// Writes a plan file and returns its path.
    pub fn write_plan(&self, name: &str, plan: &Value) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, serde_json::to_string_pretty(plan).unwrap()).expect("plan file");
        path
    }

    /// The harness command with `--store` pointing into the sandbox.
    pub fn command(&self, harness: &str, args: &[&str]) -> Command {
        let mut command = Command::new(harness);
        command.args(args).arg("--store").arg(self.store());
        command
            .env_remove("SLUICE_STORE")
            .env_remove("SLUICE_HARNESS_CRASH_AT");
        command
    }

    pub fn run(&self, harness: &str, args: &[&str]) -> Output {
        self.command(harness, args).output().expect("harness runs")
    }

    /// Side effects recorded by built-in kinds, as (step, action) → count.
    pub fn effects(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(self.effects_log()) {
            for line in text.lines() {
                let mut parts = line.split(' ');
                let step = parts.next().unwrap_or_default().to_string();
                let action = parts.next().unwrap_or_default().to_string();
                *counts.entry((step, action)).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Every file below the sandbox's store, with its size: a fingerprint to show it untouched.
    pub fn store_fingerprint(&self) -> Vec<(PathBuf, u64)> {
        let mut files = Vec::new();
        collect_files(&self.store(), &mut files);
        files.sort();
        files
    }
}

fn collect_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => collect_files(&path, out),
            Ok(meta) => out.push((path, meta.len())),
            Err(_) => {}
        }
    }
}

/// Starts `command`, waits until it prints a line on stderr containing `waiting_for`, then sends
/// it SIGTERM and waits for it to stop. Returns its exit code and what it printed on stderr
/// after the signal. Panics if it ends without printing that line.
pub fn run_and_sigterm_after(mut command: Command, waiting_for: &str) -> (Option<i32>, Vec<String>) {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("harness starts");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr"))
        .lines()
        .map_while(Result::ok);
    assert!(
        lines.any(|l| l.contains(waiting_for)),
        "the process never printed `{waiting_for}`"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let rest: Vec<String> = lines.collect();
    (child.wait().expect("harness ends").code(), rest)
}

/// Starts the harness frozen at `STEP:POINT`, waits for it to say so, and SIGKILLs it.
/// Returns false if the process ended without reaching the point.
pub fn run_and_kill_at(mut command: Command, step: &str, point: &str) -> bool {
    command.env("SLUICE_HARNESS_CRASH_AT", format!("{step}:{point}"));
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = command.spawn().expect("harness starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let marker = format!("SLUICE-HARNESS-FROZEN {step} {point}");
    let reached = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == marker);
    // Child::kill sends SIGKILL: no destructor, flush or signal handler runs.
    let _ = child.kill();
    let _ = child.wait();
    reached
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `sluice status --json` parsed.
pub fn status_json(sandbox: &Sandbox, harness: &str, run: Option<&str>) -> Value {
    let mut args = vec!["status", "--json"];
    if let Some(run) = run {
        args.push(run);
    }
    let output = sandbox.run(harness, &args);
    assert!(output.status.success(), "status failed: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("status --json prints JSON")
}
