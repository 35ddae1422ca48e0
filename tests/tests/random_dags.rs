//! Seeded random DAGs through the engine library with a recording step kind registered by the
//! test (as an embedder would): execution order respects every edge, concurrency never exceeds
//! the limit, and every step applies exactly once.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use recording::*;
use serde_json::{json, Value};
use sluice_engine::{parse_plan, validate, Engine, EngineConfig, MemoryStore, Registry, RunState};
use sluice_tests::SplitMix64;

mod recording {
    //! The recording kind, written against the public trait only.
    use super::*;
    use sluice_engine::{
        Applied, Change, KindSchema, Observation, Outputs, ParamSpec, ParamType, StepContext, StepError,
        StepKind,
    };

    #[derive(Default)]
    pub struct Recorder {
        pub active: AtomicUsize,
        pub max_active: AtomicUsize,
        pub finished: Mutex<HashSet<String>>,
        pub applies: Mutex<BTreeMap<String, usize>>,
        pub violations: Mutex<Vec<String>>,
    }

    pub struct Recording(pub Arc<Recorder>);

    #[sluice_engine::async_trait]
    impl StepKind for Recording {
        fn schema(&self) -> KindSchema {
            KindSchema {
                description: "records when it runs",
                params: vec![
                    ParamSpec::optional("deps", ParamType::List, "steps that must have finished"),
                    ParamSpec::optional("input", ParamType::Any, "a value read from another step"),
                    ParamSpec::optional("yields", ParamType::Int, "scheduler yields while running"),
                ],
                outputs: vec!["token"],
            }
        }

        async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
            {
                let done = self.0.finished.lock().unwrap().contains(&cx.step_id);
                Ok(if done {
                    Observation::Converged(Outputs::from([("token".into(), Value::from(cx.step_id.clone()))]))
                } else {
                    Observation::Diverged(Change::create("record"))
                })
            }
        }

        async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
            {
                let recorder = &self.0;
                let now = recorder.active.fetch_add(1, Ordering::SeqCst) + 1;
                recorder.max_active.fetch_max(now, Ordering::SeqCst);
                *recorder
                    .applies
                    .lock()
                    .unwrap()
                    .entry(cx.step_id.clone())
                    .or_insert(0) += 1;
                {
                    let finished = recorder.finished.lock().unwrap();
                    for dep in cx
                        .params
                        .get("deps")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let dep = dep.as_str().unwrap();
                        if !finished.contains(dep) {
                            recorder
                                .violations
                                .lock()
                                .unwrap()
                                .push(format!("{} ran before {dep} finished", cx.step_id));
                        }
                    }
                }
                if let Some(input) = cx.params.get("input") {
                    let expected = input.as_str().unwrap_or_default();
                    if !expected.starts_with('s') {
                        recorder
                            .violations
                            .lock()
                            .unwrap()
                            .push(format!("{} got unresolved input {input}", cx.step_id));
                    }
                }
                for _ in 0..cx.params.get("yields").and_then(Value::as_u64).unwrap_or(0) {
                    tokio::task::yield_now().await;
                }
                recorder.finished.lock().unwrap().insert(cx.step_id.clone());
                recorder.active.fetch_sub(1, Ordering::SeqCst);
                Ok(Applied::Done(Outputs::from([(
                    "token".into(),
                    Value::from(cx.step_id.clone()),
                )])))
            }
        }
    }
}

/// A random DAG: edges only from lower to higher index, as `after` or as an output reference.
fn random_plan(rng: &mut SplitMix64, size: usize) -> (Value, Vec<Vec<usize>>) {
    let mut steps = Vec::new();
    let mut deps_of = Vec::new();
    let density = 5 + rng.below(40);
    for i in 0..size {
        let deps: Vec<usize> = (0..i).filter(|_| rng.chance(density) && rng.chance(50)).collect();
        let mut after = Vec::new();
        let mut with = json!({
            "deps": deps.iter().map(|d| format!("s{d}")).collect::<Vec<_>>(),
            "yields": rng.below(4)
        });
        let mut input_refs = Vec::new();
        for &d in &deps {
            if rng.chance(50) {
                after.push(format!("s{d}"));
            } else {
                input_refs.push(format!("${{steps.s{d}.outputs.token}}"));
            }
        }
        if !input_refs.is_empty() {
            with["input"] = Value::from(input_refs.join("+"));
        }
        steps.push(json!({"id": format!("s{i}"), "kind": "test.record", "with": with, "after": after}));
        deps_of.push(deps);
    }
    (json!({"name": "random", "steps": steps}), deps_of)
}

#[test]
fn random_dags_respect_edges_concurrency_and_run_each_step_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = SplitMix64::new(0x5EED_2026);
    let mut saw_parallelism = false;
    for case in 0..300 {
        let size = 1 + rng.below(40) as usize;
        let concurrency = 1 + rng.below(6) as usize;
        let (plan_json, _) = random_plan(&mut rng, size);
        let recorder = Arc::new(Recorder::default());
        let mut registry = Registry::with_builtins();
        registry.register("test.record", Recording(Arc::clone(&recorder)));
        let plan = parse_plan(&plan_json.to_string(), "random.json").unwrap();
        let validated = validate(plan, "random.json", &registry, &BTreeMap::new()).unwrap();
        let config = EngineConfig {
            concurrency,
            ..EngineConfig::default()
        };
        let engine = Engine::new(registry, Arc::new(MemoryStore::new())).with_config(config);
        let run = engine.start(&validated, "random.json").unwrap();
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        let summary = runtime.block_on(engine.execute(&run.run_id, shutdown)).unwrap();

        let context = format!("case {case} (size {size}, concurrency {concurrency})");
        assert_eq!(summary.state, RunState::Succeeded, "{context}");
        assert!(
            recorder.violations.lock().unwrap().is_empty(),
            "{context}: {:?}",
            recorder.violations.lock().unwrap()
        );
        let max = recorder.max_active.load(Ordering::SeqCst);
        assert!(max <= concurrency, "{context}: {max} steps ran at once");
        saw_parallelism |= max > 1;
        let applies = recorder.applies.lock().unwrap();
        assert_eq!(applies.len(), size, "{context}: every step applies");
        assert!(
            applies.values().all(|&n| n == 1),
            "{context}: a step applied twice: {applies:?}"
        );
    }
    assert!(saw_parallelism, "no case ever ran two steps at once");
}
