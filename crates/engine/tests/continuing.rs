//! Continuing a run (a later session of the same run): an operation a previous attempt left
//! behind is settled before anything else, and steps that had succeeded are observed again,
//! repaired if they drifted, and otherwise left as recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, parse_plan, validate, Applied, Change, Engine, JournalEvent, KindSchema, MemoryStore,
    Observation, OperationHandle, Outputs, PollOutcome, PollPolicy, Registry, RunState, RunSummary,
    StepContext, StepError, StepKind, StepState, Store,
};

/// A remote resource whose create is an operation, and which is visible (listed) while that
/// operation runs: the shape of a reasoning engine, seen by a kind that does not check.
#[derive(Default)]
struct Remote {
    exists: bool,
    /// Operations started so far; the last one is the one in flight.
    started: u32,
    /// How the operation in flight ends when next polled; `None` keeps it running.
    ending: Option<bool>,
    calls: Vec<&'static str>,
}

#[derive(Clone, Default)]
struct Blind(Arc<Mutex<Remote>>);

impl Blind {
    fn remote(&self) -> std::sync::MutexGuard<'_, Remote> {
        self.0.lock().unwrap()
    }
}

fn found() -> Outputs {
    Outputs::from([("name".to_string(), json!("resource"))])
}

#[async_trait]
impl StepKind for Blind {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a resource found by name, whatever its create operation does",
            params: vec![],
            outputs: vec!["name"],
        }
    }

    async fn observe(&self, _cx: &StepContext) -> Result<Observation, StepError> {
        let mut remote = self.remote();
        remote.calls.push("observe");
        Ok(match remote.exists {
            true => Observation::Converged(found()),
            false => Observation::Diverged(Change::create("create the resource")),
        })
    }

    async fn apply(&self, _cx: &StepContext) -> Result<Applied, StepError> {
        let mut remote = self.remote();
        remote.calls.push("apply");
        remote.exists = true;
        remote.started += 1;
        Ok(Applied::Started(OperationHandle(
            json!({ "operation": remote.started }),
        )))
    }

    async fn poll(&self, _cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let mut remote = self.remote();
        remote.calls.push("poll");
        assert_eq!(handle.0["operation"], remote.started, "the operation in flight");
        Ok(match remote.ending.take() {
            None => PollOutcome::Pending { progress: None },
            Some(true) => PollOutcome::Done(found()),
            Some(false) => {
                // A failed create leaves nothing behind; the next operation succeeds.
                remote.exists = false;
                remote.ending = Some(true);
                PollOutcome::Failed(StepError::retryable("the create failed"))
            }
        })
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(PollPolicy {
            first_delay: Duration::from_millis(1),
            multiplier: 1.0,
            max_delay: Duration::from_millis(1),
            deadline: Duration::from_secs(3600),
        })
    }
}

struct Fixture {
    engine: Engine,
    store: Arc<MemoryStore>,
    run_id: String,
}

impl Fixture {
    fn new(registry: Registry, plan: Value) -> Fixture {
        let plan = parse_plan(&plan.to_string(), "plan.json").unwrap();
        let validated = validate(plan, "plan.json", &registry, &BTreeMap::new()).unwrap();
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(registry, store.clone());
        let run_id = engine.start(&validated, "plan.json").unwrap().run_id;
        Fixture {
            engine,
            store,
            run_id,
        }
    }

    /// One session of the run, to its end.
    async fn session(&self) -> RunSummary {
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        self.engine.execute(&self.run_id, shutdown).await.unwrap()
    }

    fn step(summary: &RunSummary, id: &str) -> sluice_engine::StepRecord {
        summary.steps.iter().find(|s| s.step_id == id).unwrap().clone()
    }

    /// The journal entries of step `id` from sequence `from` on.
    fn journal_of(&self, id: &str, from: usize) -> Vec<JournalEvent> {
        self.store.journal(&self.run_id).unwrap()[from..]
            .iter()
            .filter(|e| e.step.as_deref() == Some(id))
            .map(|e| e.event.clone())
            .collect()
    }
}

#[tokio::test]
async fn a_step_timed_out_while_waiting_settles_its_operation_before_observing_again() {
    let kind = Blind::default();
    let mut registry = Registry::with_builtins();
    registry.register("test.blind", kind.clone());
    let plan = json!({ "name": "blind", "steps": [
        { "id": "remote", "kind": "test.blind", "timeout": "200ms",
          "retry": { "initial_delay": "1ms", "max_delay": "2ms" } }
    ]});
    let run = Fixture::new(registry, plan);

    // The operation never ends in this session: the step times out while waiting on it.
    let first = run.session().await;
    assert_eq!(first.state, RunState::Failed);
    let step = Fixture::step(&first, "remote");
    assert!(step.error.unwrap().message.contains("timeout"));
    assert_eq!(
        step.status.operation().map(|h| h.0.clone()),
        Some(json!({ "operation": 1 })),
        "the handle is kept"
    );

    // The resource is still listed, but its create is about to fail.
    kind.remote().ending = Some(false);
    kind.remote().calls.clear();
    let second = run.session().await;
    assert_eq!(second.state, RunState::Succeeded);
    let remote = kind.remote();
    assert_eq!(
        remote.calls.get(..3),
        Some(&["poll", "observe", "apply"][..]),
        "the stored operation is settled first, then the failed create is made again: {:?}",
        remote.calls
    );
    assert!(remote.exists, "the step succeeded with the resource there");
    assert_eq!(remote.started, 2);
    assert_eq!(Fixture::step(&second, "remote").status.operation(), None);
}

/// `base` (a file) and `later` (fails at its first apply, permanently), after `base`.
fn failing_later(dir: &std::path::Path) -> Value {
    let path = |name: &str| dir.join(name).display().to_string();
    json!({ "name": "later", "steps": [
        { "id": "base", "kind": "local.file",
          "with": { "path": path("base.txt"), "content": "base", "effects_log": path("effects.log") } },
        { "id": "later", "kind": "local.flaky", "after": ["base"],
          "with": { "path": path("later.done"), "failures": 1, "error": "permanent",
                    "effects_log": path("effects.log") } }
    ]})
}

/// A run of [`failing_later`] after its first session: `base` succeeded, `later` failed.
async fn failed_at_later() -> (tempfile::TempDir, Fixture, RunSummary) {
    let dir = tempfile::tempdir().unwrap();
    let run = Fixture::new(Registry::with_builtins(), failing_later(dir.path()));
    let first = run.session().await;
    assert_eq!(first.state, RunState::Failed);
    assert_eq!(Fixture::step(&first, "base").state(), StepState::Succeeded);
    (dir, run, first)
}

fn writes_of(dir: &std::path::Path, step: &str) -> usize {
    std::fs::read_to_string(dir.join("effects.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("{step} ")))
        .count()
}

#[tokio::test]
async fn continuing_a_run_repairs_a_succeeded_step_that_drifted_before_its_dependents_run() {
    let (dir, run, _) = failed_at_later().await;

    std::fs::remove_file(dir.path().join("base.txt")).unwrap();
    let seen = run.store.journal(&run.run_id).unwrap().len();
    let second = run.session().await;
    assert_eq!(second.state, RunState::Succeeded);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("base.txt"))
            .ok()
            .as_deref(),
        Some("base"),
        "the drifted step was repaired"
    );
    assert_eq!(writes_of(dir.path(), "base"), 2, "written again once");
    let transitions: Vec<(StepState, StepState)> = run
        .journal_of("base", seen)
        .into_iter()
        .filter_map(|e| match e {
            JournalEvent::Transition { from, to } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        transitions,
        [
            (StepState::Succeeded, StepState::Observing),
            (StepState::Observing, StepState::Applying),
            (StepState::Applying, StepState::Succeeded)
        ]
    );
}

#[tokio::test]
async fn continuing_a_run_leaves_a_succeeded_step_that_is_still_converged_as_recorded() {
    let (dir, run, first) = failed_at_later().await;
    let before = Fixture::step(&first, "base");

    let seen = run.store.journal(&run.run_id).unwrap().len();
    let second = run.session().await;
    assert_eq!(second.state, RunState::Succeeded);
    assert_eq!(writes_of(dir.path(), "base"), 1, "never written again");
    assert_eq!(run.journal_of("base", seen), [], "nothing journaled");
    assert_eq!(Fixture::step(&second, "base"), before, "the record is unchanged");
}
