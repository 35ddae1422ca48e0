//! Engine throughput and store-size benchmarks (figures recorded in `BENCHMARKS.md`).
//!
//! Measures, on 10,000-step `core.noop` plans with `"apply": true` (so every step takes the
//! durable intent → apply path: pending → observing → applying (flushed) → succeeded):
//! - wall time of `Engine::execute`, steps/s, durable transitions/s (journal `Transition`
//!   entries / wall time) and per-step overhead, for a wide plan (10,000 independent steps at
//!   concurrency 1, 8 and 64) and a deep plan (a 10,000-step chain at concurrency 8), on a
//!   `SledStore` in a temporary directory (durable) and on a `MemoryStore` (no durability);
//! - where the time goes: calls to and time spent in `Store::commit_run` and `Store::append_steps` (together) / `Store::flush`, and bytes
//!   the process wrote during `execute` (`/proc/self/io`, Linux);
//! - `parse_plan` and `validate` alone for both plans;
//! - store size after 1,000 runs of a 10-step plan, and after `SledStore::compact(dir, 10)`.
//!
//! Run: `cargo bench -p sluice-engine --bench engine` (prints Markdown tables to stdout).
//! Optional: a filter argument runs only matching scenarios, e.g. `... --bench engine -- deep`;
//! `SLUICE_BENCH_REPS=N` sets the repetitions per scenario (default 3, the median is reported).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_engine::store::{RunCommit, StepAppend};
use sluice_engine::{
    parse_plan, validate, Engine, EngineConfig, FleetRecord, JournalEntry, JournalEvent, MemoryStore, Plan,
    Registry, RunRecord, RunState, SledStore, StepRecord, Store, StoreError, ValidatedPlan,
};
use tokio::runtime::Runtime;
use tokio::sync::watch;

const STEPS: usize = 10_000;

/// A store wrapper counting commits and flushes and the time spent in them (summed over threads):
/// `counters` = [commit calls, commit ns, flush calls, flush ns].
struct Counted {
    inner: Arc<dyn Store>,
    counters: [AtomicU64; 4],
}

impl Counted {
    fn timed<T>(&self, at: usize, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.counters[at].fetch_add(1, Ordering::Relaxed);
        self.counters[at + 1].fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
    fn snapshot(&self) -> [u64; 4] {
        self.counters.each_ref().map(|c| c.load(Ordering::Relaxed))
    }
}

impl Store for Counted {
    fn commit_run(&self, commit: RunCommit) -> Result<(), StoreError> {
        self.timed(0, || self.inner.commit_run(commit))
    }
    fn append_steps(&self, run_id: &str, append: StepAppend) -> Result<(), StoreError> {
        self.timed(0, || self.inner.append_steps(run_id, append))
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.timed(2, || self.inner.flush())
    }
    fn flush_is_free(&self) -> bool {
        self.inner.flush_is_free()
    }
    fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.inner.run(run_id)
    }
    fn plan(&self, digest: &str) -> Result<Option<Plan>, StoreError> {
        self.inner.plan(digest)
    }
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.runs()
    }
    fn latest_run_for_key(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        self.inner.latest_run_for_key(run_key)
    }
    fn commit_fleet(&self, fleet: &FleetRecord, plans: Vec<(String, Plan)>) -> Result<(), StoreError> {
        self.inner.commit_fleet(fleet, plans)
    }
    fn fleet(&self, fleet_id: &str) -> Result<Option<FleetRecord>, StoreError> {
        self.inner.fleet(fleet_id)
    }
    fn fleets(&self) -> Result<Vec<FleetRecord>, StoreError> {
        self.inner.fleets()
    }
    fn set_fleet_target_run(&self, fleet_id: &str, index: usize, run_id: &str) -> Result<(), StoreError> {
        self.inner.set_fleet_target_run(fleet_id, index, run_id)
    }
    fn fleet_target_runs(
        &self,
        fleet_id: &str,
    ) -> Result<std::collections::BTreeMap<usize, String>, StoreError> {
        self.inner.fleet_target_runs(fleet_id)
    }
    fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.inner.steps(run_id)
    }
    fn journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.journal(run_id)
    }
    fn next_journal_seq(&self, run_id: &str) -> Result<u64, StoreError> {
        self.inner.next_journal_seq(run_id)
    }
}

/// Bytes this process has passed to write(2)-like calls so far (Linux `/proc/self/io`).
fn bytes_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// `n` no-op steps; `deep` chains each after the previous one, `value` gives each an output.
fn plan_json(name: &str, n: usize, deep: bool, value: bool) -> String {
    let steps: Vec<Value> = (0..n)
        .map(|i| {
            let mut step = json!({"id": format!("s{i:05}"), "kind": "core.noop", "with": {"apply": true}});
            if deep && i > 0 {
                step["after"] = json!([format!("s{:05}", i - 1)]);
            }
            if value {
                step["with"]["value"] = json!(format!("step {i}"));
            }
            step
        })
        .collect();
    json!({"name": name, "steps": steps}).to_string()
}

fn validated(text: &str) -> ValidatedPlan {
    let plan = parse_plan(text, "bench.json").expect("plan parses");
    validate(plan, "bench.json", &Registry::with_builtins(), &BTreeMap::new()).expect("plan is valid")
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

struct Sample {
    wall: Duration,
    start: Duration,
    transitions: usize,
    /// Deltas of [`Counted::counters`] and of [`bytes_written`] over `execute`.
    counters: [u64; 4],
    written: u64,
}

fn run_once(rt: &Runtime, plan: &ValidatedPlan, concurrency: usize, durable: bool) -> Sample {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner: Arc<dyn Store> = match durable {
        true => Arc::new(SledStore::open(dir.path()).expect("store opens")),
        false => Arc::new(MemoryStore::new()),
    };
    let store = Arc::new(Counted {
        inner,
        counters: Default::default(),
    });
    let config = EngineConfig {
        concurrency,
        ..EngineConfig::default()
    };
    let engine = Engine::new(Registry::with_builtins(), store.clone()).with_config(config);
    let started = Instant::now();
    let run = engine.start(plan, "bench.json").expect("run starts");
    let start = started.elapsed();
    let (_stop, shutdown) = watch::channel(false);
    let (before, written) = (store.snapshot(), bytes_written());
    let started = Instant::now();
    let summary = rt.block_on(engine.execute(&run.run_id, shutdown));
    let wall = started.elapsed();
    let (after, written) = (store.snapshot(), bytes_written() - written);
    assert_eq!(summary.expect("run executes").state, RunState::Succeeded);
    let journal = store.journal(&run.run_id).expect("journal reads");
    let is_transition = |e: &&JournalEntry| matches!(e.event, JournalEvent::Transition { .. });
    let transitions = journal.iter().filter(is_transition).count();
    let counters = [0, 1, 2, 3].map(|i| after[i] - before[i]);
    Sample {
        wall,
        start,
        transitions,
        counters,
        written,
    }
}

fn throughput(rt: &Runtime, reps: usize, filter: &str) {
    let wide = validated(&plan_json("wide", STEPS, false, false));
    let deep = validated(&plan_json("deep", STEPS, true, false));
    let scenarios = [
        ("wide", &wide, 1, true),
        ("wide", &wide, 8, true),
        ("wide", &wide, 64, true),
        ("deep", &deep, 8, true),
        ("wide", &wide, 1, false),
        ("wide", &wide, 8, false),
        ("wide", &wide, 64, false),
        ("deep", &deep, 8, false),
    ];
    let name = |shape, concurrency, durable| {
        let store = if durable { "sled" } else { "memory" };
        (store, format!("{shape}-{store}-c{concurrency}"))
    };
    let scenarios: Vec<_> = scenarios
        .into_iter()
        .filter(|&(s, _, c, d)| name(s, c, d).1.contains(filter))
        .collect();
    if scenarios.is_empty() {
        return;
    }
    println!("## Throughput: {STEPS}-step `core.noop` plans (`apply: true`), median of {reps}\n");
    println!("| scenario | store | conc | wall s (median; min–max) | steps/s | transitions/s | µs/step | `start` ms | commits | commit s* | flushes | flush s* | MB written (each run, fastest first) |");
    println!("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (shape, plan, concurrency, durable) in scenarios {
        let store = name(shape, concurrency, durable).0;
        let mut samples: Vec<Sample> = (0..reps)
            .map(|_| run_once(rt, plan, concurrency, durable))
            .collect();
        samples.sort_by_key(|s| s.wall);
        let mid = &samples[samples.len() / 2];
        let [wall, min, max] = [mid, &samples[0], &samples[reps - 1]].map(|s| s.wall.as_secs_f64());
        let written: Vec<u64> = samples.iter().map(|s| s.written / 1_000_000).collect();
        println!(
            "| {shape} | {store} | {concurrency} | {wall:.3} ({min:.3}–{max:.3}) | {:.0} | {:.0} | {:.1} | {:.1} | {} | {:.2} | {} | {:.2} | {:?} |",
            STEPS as f64 / wall,
            mid.transitions as f64 / wall,
            wall * 1e6 / STEPS as f64,
            mid.start.as_secs_f64() * 1e3,
            mid.counters[0],
            mid.counters[1] as f64 / 1e9,
            mid.counters[2],
            mid.counters[3] as f64 / 1e9,
            written,
        );
    }
    println!("\n\\* summed over threads (may exceed wall time); counted around `execute` only.\n");
}

fn validation(reps: usize) {
    println!("## `parse_plan` and `validate` alone ({STEPS} steps), median of {reps}\n");
    println!("| plan | JSON bytes | parse_plan ms | validate ms |");
    println!("|---|---:|---:|---:|");
    let registry = Registry::with_builtins();
    for (shape, deep) in [("wide", false), ("deep", true)] {
        let text = plan_json(shape, STEPS, deep, false);
        let (mut parse, mut check) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let started = Instant::now();
            let plan = parse_plan(&text, "bench.json").expect("plan parses");
            parse.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            let ok = validate(plan, "bench.json", &registry, &BTreeMap::new());
            check.push(started.elapsed().as_secs_f64() * 1e3);
            assert!(ok.is_ok());
        }
        println!(
            "| {shape} | {} | {:.1} | {:.1} |",
            text.len(),
            median(parse),
            median(check)
        );
    }
    println!();
}

fn store_size(rt: &Runtime) {
    const RUNS: usize = 1_000;
    let plan = validated(&plan_json("ten", 10, false, true));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SledStore::open(dir.path()).expect("store opens"));
    let engine = Engine::new(Registry::with_builtins(), store.clone());
    let started = Instant::now();
    for _ in 0..RUNS {
        let run = engine.start(&plan, "ten.json").expect("run starts");
        assert!(!run.continued, "a finished plan starts a new run");
        let (_stop, shutdown) = watch::channel(false);
        let summary = rt.block_on(engine.execute(&run.run_id, shutdown));
        assert_eq!(summary.expect("run executes").state, RunState::Succeeded);
    }
    let ms_per_run = started.elapsed().as_secs_f64() * 1e3 / RUNS as f64;
    let kept = store.runs().expect("runs read").len();
    let bytes = store.size_on_disk();
    drop((engine, store));
    let started = Instant::now();
    let report = SledStore::compact(dir.path(), 10).expect("compaction");
    let compact_s = started.elapsed().as_secs_f64();
    let mib = |b: u64| format!("{b} B ({:.2} MiB)", b as f64 / (1024.0 * 1024.0));
    let (before, after) = (mib(report.bytes_before), mib(report.bytes_after));
    let (removed, left) = (report.runs_removed, report.runs_kept);
    println!("## Store size: {RUNS} runs of a 10-step plan in one `SledStore`\n");
    println!("| figure | value |\n|---|---:|");
    println!("| runs executed / run records in the store | {RUNS} / {kept} |");
    println!("| time per run (`start` + `execute`) | {ms_per_run:.1} ms |");
    println!("| `size_on_disk()` after {RUNS} runs | {} |", mib(bytes));
    println!("| per run | {:.1} KiB |", bytes as f64 / 1024.0 / RUNS as f64);
    println!("| `compact(dir, 10)`: bytes_before → bytes_after | {before} → {after} |");
    println!("| `compact(dir, 10)`: runs removed / kept | {removed} / {left} |");
    println!("| `compact(dir, 10)`: time | {compact_s:.2} s |\n");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args
        .into_iter()
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    let reps = std::env::var("SLUICE_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok());
    let reps: usize = reps.unwrap_or(3).max(1);
    let rt = Runtime::new().expect("tokio runtime");
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# sluice-engine benchmarks ({threads} tokio worker threads)\n");
    if "validate".contains(filter.as_str()) {
        validation(reps.max(5));
    }
    throughput(&rt, reps, &filter);
    if "store-size".contains(filter.as_str()) {
        store_size(&rt);
    }
}
