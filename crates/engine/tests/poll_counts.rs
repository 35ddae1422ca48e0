//! The poll count a run's summary shows (the CLI's POLLS column) is the journal's: each poll is
//! committed with its journal entry, so a step cut off while it waits keeps the polls it made.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use sluice_engine::{
    parse_plan, validate, Engine, Event, JournalEvent, MemoryStore, Registry, RunState, RunSummary,
    StepState, Store,
};

/// The `poll` entries the journal holds for `step`.
fn journaled_polls(store: &dyn Store, run_id: &str, step: &str) -> u32 {
    store
        .journal(run_id)
        .unwrap()
        .iter()
        .filter(|e| e.step.as_deref() == Some(step) && matches!(e.event, JournalEvent::Poll { .. }))
        .count() as u32
}

fn polls_in(summary: &RunSummary, step: &str) -> u32 {
    summary.steps.iter().find(|s| s.step_id == step).unwrap().polls
}

#[tokio::test]
async fn the_summary_counts_every_journaled_poll_even_when_a_session_ends_mid_wait() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("slow.txt");
    let plan = json!({"name": "polls", "steps": [{"id": "slow", "kind": "local.operation",
        "with": {"path": target.to_str().unwrap(), "content": "s", "polls": 1_000_000}}]});
    let registry = Registry::with_builtins();
    let plan = parse_plan(&plan.to_string(), "p.json").unwrap();
    let validated = validate(plan, "p.json", &registry, &BTreeMap::new()).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let engine = Engine::new(registry, Arc::clone(&store)).with_events(events_tx);
    let run = engine.start(&validated, "p.json").unwrap();

    // Stop the session after the fourth poll (counted by events, not by time).
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let stopper = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if matches!(event, Event::StepWaiting { poll: 4, .. }) {
                stop.send(true).unwrap();
                break;
            }
        }
        stop
    });
    let first = engine.execute(&run.run_id, shutdown).await.unwrap();
    let _stop = stopper.await.unwrap();
    assert_eq!(first.state, RunState::Interrupted);
    assert_eq!(first.steps[0].state(), StepState::Waiting);
    let polled = journaled_polls(store.as_ref(), &run.run_id, "slow");
    assert!(polled >= 4, "the session polled at least four times: {polled}");
    assert_eq!(
        polls_in(&first, "slow"),
        polled,
        "the summary's polls are the journal's, for a step cut off while waiting"
    );

    // The operation finishes at its next poll; the resumed session's count adds to the first's.
    std::fs::write(dir.path().join("slow.txt.op"), r#"{"polls": 0, "needed": 1}"#).unwrap();
    let (_keep, shutdown) = tokio::sync::watch::channel(false);
    let second = engine.execute(&run.run_id, shutdown).await.unwrap();
    assert_eq!(second.state, RunState::Succeeded);
    assert_eq!(journaled_polls(store.as_ref(), &run.run_id, "slow"), polled + 1);
    assert_eq!(polls_in(&second, "slow"), polled + 1);
}
