//! Graceful shutdown: a step still applying when the grace period ends is journaled in doubt,
//! left `applying` on disk, and observed first (then adopted) by the next session.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_engine::{
    parse_plan, validate, Applied, Change, Engine, EngineConfig, Event, JournalEvent, KindSchema,
    MemoryStore, Observation, Outputs, Registry, RunState, StepContext, StepError, StepKind, StepState,
    Store,
};

/// Its apply "sends" the mutation and then never hears back, like a call whose answer is lost.
#[derive(Default)]
struct LostAnswer {
    mutated: AtomicBool,
    applies: AtomicUsize,
}

struct Kind(Arc<LostAnswer>);

#[sluice_engine::async_trait]
impl StepKind for Kind {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "hangs after mutating",
            params: vec![],
            outputs: vec![],
        }
    }
    async fn observe(&self, _cx: &StepContext) -> Result<Observation, StepError> {
        Ok(if self.0.mutated.load(Ordering::SeqCst) {
            Observation::Converged(Outputs::new())
        } else {
            Observation::Diverged(Change::create("mutate"))
        })
    }
    async fn apply(&self, _cx: &StepContext) -> Result<Applied, StepError> {
        self.0.applies.fetch_add(1, Ordering::SeqCst);
        self.0.mutated.store(true, Ordering::SeqCst);
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_step_cut_off_while_applying_is_in_doubt_and_adopted_on_resume() {
    let state = Arc::new(LostAnswer::default());
    let mut registry = Registry::with_builtins();
    registry.register("test.lost", Kind(Arc::clone(&state)));
    let plan = parse_plan(
        r#"{"name": "s", "steps": [{"id": "lost", "kind": "test.lost"}, {"id": "next", "kind": "core.noop", "after": ["lost"]}]}"#,
        "s.json",
    )
    .unwrap();
    let validated = validate(plan, "s.json", &registry, &BTreeMap::new()).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let config = EngineConfig {
        grace_period: Duration::from_millis(20),
        ..EngineConfig::default()
    };
    let engine = Engine::new(registry, Arc::clone(&store))
        .with_config(config)
        .with_events(events_tx);
    let run = engine.start(&validated, "s.json").unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let stopper = tokio::spawn(async move {
        // Stop once the step is applying (its intent is recorded), not after a fixed delay.
        while let Some(event) = events.recv().await {
            if matches!(event, Event::StepApplying { .. }) {
                stop.send(true).unwrap();
                break;
            }
        }
        stop
    });
    let summary = engine.execute(&run.run_id, shutdown).await.unwrap();
    let _stop = stopper.await.unwrap();
    assert_eq!(summary.state, RunState::Interrupted);
    assert_eq!(summary.steps[0].state(), StepState::Applying);
    assert_eq!(
        summary.steps[1].state(),
        StepState::Pending,
        "nothing new starts after shutdown"
    );
    let in_doubt = |run: &str| {
        store
            .journal(run)
            .unwrap()
            .iter()
            .filter(|e| matches!(e.event, JournalEvent::InDoubt { .. }))
            .count()
    };
    assert_eq!(
        in_doubt(&run.run_id),
        1,
        "cut off while applying: journaled in doubt"
    );

    // The next session observes first, finds the mutation made, and does not apply again.
    let (_keep, shutdown) = tokio::sync::watch::channel(false);
    let summary = engine.execute(&run.run_id, shutdown).await.unwrap();
    assert_eq!(summary.state, RunState::Succeeded);
    assert_eq!(state.applies.load(Ordering::SeqCst), 1);
    assert_eq!(
        in_doubt(&run.run_id),
        2,
        "found applying at start-up: journaled in doubt again"
    );
}
