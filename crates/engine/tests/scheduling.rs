//! Scheduling order: among ready steps the one with the longest remaining path starts first;
//! ties go to the step written first in the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_engine::{parse_plan, validate, Engine, EngineConfig, Event, MemoryStore, Registry, RunState};

#[tokio::test]
async fn longest_remaining_path_goes_first() {
    // `short` is first in the file, but `head` leads a chain of four.
    let plan = parse_plan(
        r#"{"name": "order", "steps": [
            {"id": "short", "kind": "core.noop", "with": {"apply": true}},
            {"id": "head", "kind": "core.noop", "with": {"apply": true}},
            {"id": "mid1", "kind": "core.noop", "after": ["head"]},
            {"id": "mid2", "kind": "core.noop", "after": ["mid1"]},
            {"id": "tail", "kind": "core.noop", "after": ["mid2"]}
        ]}"#,
        "order.json",
    )
    .unwrap();
    let registry = Registry::with_builtins();
    let validated = validate(plan, "order.json", &registry, &BTreeMap::new()).unwrap();
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::new(registry, Arc::new(MemoryStore::new()))
        .with_config(EngineConfig {
            concurrency: 1,
            ..EngineConfig::default()
        })
        .with_events(events_tx);
    let run = engine.start(&validated, "order.json").unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let summary = engine.execute(&run.run_id, shutdown).await.unwrap();
    assert_eq!(summary.state, RunState::Succeeded);
    drop(engine);
    let mut started = Vec::new();
    while let Some(event) = events_rx.recv().await {
        if let Event::StepStarted { step, .. } = event {
            started.push(step);
        }
    }
    // After mid2, `short` and `tail` both have one step left: ties go by plan order.
    assert_eq!(started, ["head", "mid1", "mid2", "short", "tail"]);
}
