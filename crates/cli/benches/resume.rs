//! Time from process start to resuming a 10,000-step run (figures recorded in `BENCHMARKS.md`).
//!
//! Builds a 10,000-step `core.noop` plan (`"apply": true`; 100 independent chains of 100 steps)
//! and, through the library, two unfinished runs of it in `SledStore`s: one only `start`ed (all
//! 10,000 steps pending) and one interrupted after about half its steps finished. Then, for each,
//! it spawns the release `sluice --store COPY resume RUN` on a fresh copy of the store (so every
//! repetition resumes the same state, from a warm page cache) and times, from just before the
//! spawn, the stderr lines `resuming run …` (store opened, run record read) and
//! `run RUN: session N, M steps` (run loaded and re-validated, DAG built, session recorded and
//! flushed: scheduling starts), then kills the child. `sluice --version` is timed as the floor.
//!
//! Run: `cargo bench -p sluice-cli --bench resume` (prints Markdown tables to stdout);
//! `SLUICE_BENCH_REPS=N` sets the measured repetitions (default 15, after one warm-up).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_engine::{
    parse_plan, validate, Engine, Event, Registry, RunState, SledStore, Store, ValidatedPlan,
};
use tokio::sync::{mpsc, watch};

const CHAINS: usize = 100;
const CHAIN_LEN: usize = 100;
const STEPS: usize = CHAINS * CHAIN_LEN;
const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn plan_text() -> String {
    let steps: Vec<Value> = (0..STEPS)
        .map(|i| {
            let (chain, link) = (i / CHAIN_LEN, i % CHAIN_LEN);
            let mut step = json!({"id": format!("c{chain:03}-{link:03}"), "kind": "core.noop",
                "with": {"apply": true, "value": format!("step {i}")}});
            if link > 0 {
                step["after"] = json!([format!("c{chain:03}-{:03}", link - 1)]);
            }
            step
        })
        .collect();
    json!({"name": "resume-bench", "steps": steps}).to_string()
}

fn validated(text: &str, source: &str) -> ValidatedPlan {
    let plan = parse_plan(text, source).expect("plan parses");
    let registry = Registry::with_builtins();
    validate(plan, source, &registry, &BTreeMap::new()).expect("plan is valid")
}

/// Creates a run in a new store at `dir`; with `stop_after`, executes it and asks it to stop
/// once that many steps finished. Returns the run id and how many steps are final.
fn prepare(dir: &Path, plan: &ValidatedPlan, source: &str, stop_after: Option<usize>) -> (String, usize) {
    let store: Arc<dyn Store> = Arc::new(SledStore::open(dir).expect("store opens"));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let engine = Engine::new(Registry::with_builtins(), store.clone()).with_events(events_tx);
    let run = engine.start(plan, source).expect("run starts");
    if let Some(limit) = stop_after {
        let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
        let (stop, shutdown) = watch::channel(false);
        let counter = rt.spawn(async move {
            let mut finished = 0;
            while let Some(event) = events.recv().await {
                if matches!(event, Event::StepFinished { .. }) {
                    finished += 1;
                    if finished == limit {
                        let _ = stop.send(true);
                    }
                }
            }
        });
        let summary = rt
            .block_on(engine.execute(&run.run_id, shutdown))
            .expect("run executes");
        assert_eq!(summary.state, RunState::Interrupted);
        drop(engine);
        rt.block_on(counter).expect("event counter");
    }
    let done = store.steps(&run.run_id).expect("steps read");
    let done = done.iter().filter(|s| s.state().is_final()).count();
    (run.run_id, done)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy");
    for entry in std::fs::read_dir(from).expect("read store dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// Spawns `sluice resume` on a copy of `store`; returns the times to the `resuming run` and
/// `run …: session` lines.
fn resume_once(store: &Path, scratch: &Path, run_id: &str) -> (Duration, Duration) {
    let _ = std::fs::remove_dir_all(scratch);
    copy_dir(store, scratch);
    let started = Instant::now();
    let mut child = Command::new(SLUICE)
        .arg("--store")
        .arg(scratch)
        .args(["resume", run_id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice spawns");
    let mut resuming = None;
    let mut seen = Vec::new();
    for line in BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("stderr line");
        if line.starts_with("resuming run ") {
            resuming = Some(started.elapsed());
        } else if line.starts_with("run ") && line.contains("session") {
            let session = started.elapsed();
            child.kill().expect("kill sluice");
            child.wait().expect("reap sluice");
            return (resuming.unwrap_or(session), session);
        }
        seen.push(line);
    }
    let status = child.wait().expect("reap sluice");
    panic!(
        "sluice exited ({status}) without a session line; stderr:\n{}",
        seen.join("\n")
    );
}

fn version_once() -> Duration {
    let started = Instant::now();
    let status = Command::new(SLUICE)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .expect("sluice spawns");
    assert!(status.success());
    started.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `min / median / max` in ms.
fn spread(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let n = samples.len();
    format!(
        "{:.1} / {:.1} / {:.1}",
        ms(samples[0]),
        ms(samples[n / 2]),
        ms(samples[n - 1])
    )
}

fn main() {
    let reps = std::env::var("SLUICE_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok());
    let reps: usize = reps.unwrap_or(15).max(1);
    let base = tempfile::tempdir().expect("temp dir");
    let source = base.path().join("plan.json");
    let text = plan_text();
    std::fs::write(&source, &text).expect("write plan");
    let source = source.display().to_string();
    let plan = validated(&text, &source);

    println!(
        "# sluice resume benchmark ({STEPS}-step plan, {} bytes of JSON)\n",
        text.len()
    );
    println!("| case | steps final | store size | to `resuming run` ms (min / median / max) | to `session` line ms (min / median / max) |");
    println!("|---|---:|---:|---|---|");
    let cases = [("all pending", None), ("half done", Some(STEPS / 2))];
    for (name, stop_after) in cases {
        let store = base.path().join(name.replace(' ', "-"));
        let (run_id, done) = prepare(&store, &plan, &source, stop_after);
        let size = SledStore::open(&store).expect("store reopens").size_on_disk();
        let scratch = base.path().join("scratch");
        resume_once(&store, &scratch, &run_id); // warm-up: page cache, binary
        let (resuming, session): (Vec<_>, Vec<_>) =
            (0..reps).map(|_| resume_once(&store, &scratch, &run_id)).unzip();
        let size = format!("{:.1} MiB", size as f64 / (1024.0 * 1024.0));
        println!(
            "| {name} | {done} | {size} | {} | {} |",
            spread(resuming),
            spread(session)
        );
    }
    version_once();
    let version: Vec<Duration> = (0..reps).map(|_| version_once()).collect();
    println!(
        "| `sluice --version` (process start floor) | – | – | – | {} |",
        spread(version)
    );
    println!("\n{reps} repetitions each after one warm-up; warm page cache; child killed at the line.");
}
