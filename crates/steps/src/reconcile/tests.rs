//! The reconciler's rules, against a fake resource kind over a scripted in-memory cloud: each
//! test shows that whatever the kind's reads answer, the reconciler's order of calls keeps the
//! rule.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, ParamProblem, PollOutcome, StepContext,
    StepError, StepKind,
};
use sluice_gcp::{ClientOptions, GcpError};

use super::{Absent, Claim, CreateError, Current, Lookup, Mutated, Reconciled, Resource, Step, Verdict};
use crate::cloud::Cloud;
use crate::common::Reading;

/// Who a resource in the fake cloud belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Owner {
    Us,
    Adoptable,
    Someone,
}

#[derive(Debug, Clone, Copy)]
struct Live {
    owner: Owner,
    drifted: bool,
}

/// The scripted cloud: what exists, what the calls answer, and every call made.
#[derive(Default)]
struct Script {
    resource: Option<Live>,
    /// What the label lookup lists (a server-chosen id).
    labelled: Vec<Value>,
    /// The API is not usable: a lenient read finds nothing, a strict one is "not yet".
    disabled: bool,
    /// The create answers 409 ALREADY_EXISTS, and then this exists.
    conflict: Option<Live>,
    calls: Vec<String>,
}

struct Fake {
    cloud: Cloud,
    grace: Option<Duration>,
    script: Mutex<Script>,
}

impl Fake {
    fn new(script: Script) -> Reconciled<Fake> {
        Reconciled(Fake {
            cloud: Cloud::new(ClientOptions::default()),
            grace: None,
            script: Mutex::new(script),
        })
    }
    fn log(&self, call: String) {
        self.script.lock().unwrap().calls.push(call);
    }
}

fn outputs() -> Outputs {
    Outputs::from([("name".to_string(), json!("things/ours"))])
}

#[async_trait]
impl Resource for Fake {
    type Wanted = ();
    type Live = Live;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }
    fn schema(&self) -> KindSchema {
        KindSchema::default()
    }
    fn check(&self, _params: &Map<String, Value>) -> Vec<ParamProblem> {
        Vec::new()
    }
    fn wanted(&self, _cx: &StepContext) -> Result<(), StepError> {
        Ok(())
    }
    fn describe(&self, _wanted: &()) -> String {
        "thing things/ours".into()
    }
    async fn by_label(&self, _step: Step<'_, ()>, reading: Reading) -> Result<Vec<Value>, StepError> {
        self.log(format!("by_label {reading:?}"));
        Ok(self.script.lock().unwrap().labelled.clone())
    }
    async fn find(&self, lookup: Lookup<'_, ()>) -> Result<Option<Live>, StepError> {
        let Lookup { reading, .. } = lookup;
        self.log(format!("find {reading:?}"));
        let script = self.script.lock().unwrap();
        match (script.disabled, reading) {
            (true, Reading::Observe) => Ok(None),
            (true, Reading::Apply) => Err(StepError::NotYet {
                message: "the API is not usable yet".into(),
                delay: None,
            }),
            (false, _) => Ok(script.resource),
        }
    }
    fn claim(&self, _step: Step<'_, ()>, live: &Live) -> Claim {
        match live.owner {
            Owner::Us => Claim::Ours,
            Owner::Adoptable => Claim::Adoptable,
            Owner::Someone => Claim::Foreign(StepError::permanent("things/ours is someone else's")),
        }
    }
    async fn examine(&self, _step: Step<'_, ()>, live: &Live) -> Result<Verdict, StepError> {
        Ok(match live.drifted {
            true => Verdict::Drift(Change::update("correct it")),
            false => Verdict::Converged(outputs()),
        })
    }
    fn create_change(&self, _wanted: &()) -> Change {
        Change::create("create it")
    }
    fn grace(&self, _wanted: &()) -> Option<Duration> {
        self.grace
    }
    async fn create(&self, _step: Step<'_, ()>, _absent: Absent) -> Result<Mutated, CreateError> {
        self.log("create".into());
        let mut script = self.script.lock().unwrap();
        if let Some(existing) = script.conflict.take() {
            script.resource = Some(existing);
            let body = br#"{"error":{"code":409,"status":"ALREADY_EXISTS","message":"it exists"}}"#;
            return Err(GcpError::from_response("v1/things", 409, body, None).into());
        }
        script.resource = Some(Live {
            owner: Owner::Us,
            drifted: false,
        });
        Ok(Mutated::ReadBack)
    }
    async fn patch(&self, _step: Step<'_, ()>, _live: Current<'_, Live>) -> Result<Mutated, StepError> {
        self.log("patch".into());
        Ok(Mutated::Applied(Applied::Done(outputs())))
    }
}

fn cx() -> StepContext {
    StepContext {
        run_id: "run".into(),
        step_id: "thing".into(),
        params: Map::new(),
        idempotency_key: "run/thing".into(),
        attempt: 1,
    }
}

fn calls(kind: &Reconciled<Fake>) -> Vec<String> {
    kind.0.script.lock().unwrap().calls.clone()
}

/// How many times `call` was made.
fn count(kind: &Reconciled<Fake>, call: &str) -> usize {
    calls(kind).iter().filter(|c| *c == call).count()
}

/// Every mutation in `calls` comes right after a strict read.
fn assert_strict_read_before_each_mutation(calls: &[String]) {
    for (at, call) in calls.iter().enumerate() {
        if call == "create" || call == "patch" {
            assert!(
                at > 0 && calls[at - 1] == "find Apply",
                "{call} without a strict read right before it: {calls:?}"
            );
        }
    }
}

fn ours(drifted: bool) -> Live {
    Live {
        owner: Owner::Us,
        drifted,
    }
}

#[tokio::test]
async fn a_create_follows_a_strict_read_even_after_observe_read_nothing() {
    let kind = Fake::new(Script::default());
    let cx = cx();
    assert!(matches!(
        kind.observe(&cx).await.unwrap(),
        Observation::Diverged(_)
    ));
    assert_eq!(kind.apply(&cx).await.unwrap(), Applied::Done(outputs()));
    let calls = calls(&kind);
    assert_eq!(
        calls,
        [
            "by_label Observe",
            "find Observe",
            "by_label Apply",
            "find Apply",
            "create",
            "by_label Apply",
            "find Apply"
        ]
    );
    assert_strict_read_before_each_mutation(&calls);
}

#[tokio::test]
async fn an_api_observe_read_as_empty_is_never_created_in_unless_the_strict_read_agrees() {
    let kind = Fake::new(Script {
        disabled: true,
        ..Script::default()
    });
    let cx = cx();
    assert!(matches!(
        kind.observe(&cx).await.unwrap(),
        Observation::Diverged(_)
    ));
    let error = kind.apply(&cx).await.unwrap_err();
    assert!(matches!(error, StepError::NotYet { .. }), "{error:?}");
    assert_eq!(count(&kind, "create"), 0, "{:?}", calls(&kind));
}

#[tokio::test]
async fn a_drifted_resource_is_patched_only_after_a_strict_read() {
    let kind = Fake::new(Script {
        resource: Some(ours(true)),
        ..Script::default()
    });
    let cx = cx();
    assert!(matches!(
        kind.observe(&cx).await.unwrap(),
        Observation::Diverged(_)
    ));
    assert_eq!(kind.apply(&cx).await.unwrap(), Applied::Done(outputs()));
    let calls = calls(&kind);
    assert!(calls.contains(&"patch".to_string()), "{calls:?}");
    assert_strict_read_before_each_mutation(&calls);
}

#[tokio::test]
async fn a_409_on_a_resource_that_is_not_ours_is_not_adopted() {
    let kind = Fake::new(Script {
        conflict: Some(Live {
            owner: Owner::Someone,
            drifted: true,
        }),
        ..Script::default()
    });
    let error = kind.apply(&cx()).await.unwrap_err();
    assert!(matches!(error, StepError::Permanent { .. }), "{error:?}");
    assert!(error.message().contains("someone else's"), "{error:?}");
    let calls = calls(&kind);
    assert!(
        !calls.contains(&"patch".to_string()),
        "nothing is changed: {calls:?}"
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("find Apply"),
        "read again after the 409"
    );
}

#[tokio::test]
async fn a_409_on_a_resource_that_is_ours_or_adoptable_is_adopted_and_corrected() {
    for owner in [Owner::Us, Owner::Adoptable] {
        let kind = Fake::new(Script {
            conflict: Some(Live { owner, drifted: true }),
            ..Script::default()
        });
        assert_eq!(
            kind.apply(&cx()).await.unwrap(),
            Applied::Done(outputs()),
            "{owner:?}"
        );
        let calls = calls(&kind);
        assert_eq!(calls.iter().filter(|c| *c == "create").count(), 1, "{calls:?}");
        assert!(
            calls.contains(&"patch".to_string()),
            "{owner:?}: corrected: {calls:?}"
        );
        assert_strict_read_before_each_mutation(&calls);
    }
}

#[tokio::test]
async fn a_found_resource_that_is_not_ours_fails_observe_and_apply_alike() {
    let kind = Fake::new(Script {
        resource: Some(Live {
            owner: Owner::Someone,
            drifted: false,
        }),
        ..Script::default()
    });
    let cx = cx();
    assert!(kind
        .observe(&cx)
        .await
        .unwrap_err()
        .message()
        .contains("someone else's"));
    assert!(kind
        .apply(&cx)
        .await
        .unwrap_err()
        .message()
        .contains("someone else's"));
    assert!(!calls(&kind).iter().any(|c| c == "create" || c == "patch"));
}

#[tokio::test]
async fn a_server_chosen_id_is_never_created_while_the_label_lookup_lists_something() {
    // The kind's own lookup misses what carries the step's label (a kind bug, or a resource
    // listed by label before it is listed otherwise): still no second resource.
    let kind = Fake::new(Script {
        labelled: vec![json!({ "name": "things/123", "labels": { "sluice-key": "k" } })],
        ..Script::default()
    });
    let cx = cx();
    let error = kind.apply(&cx).await.unwrap_err();
    assert!(matches!(error, StepError::Permanent { .. }), "{error:?}");
    assert!(error.message().contains("carry this step's label"), "{error:?}");
    assert!(
        kind.observe(&cx).await.is_err(),
        "observe does not report a create either"
    );
    assert_eq!(count(&kind, "create"), 0, "{:?}", calls(&kind));
}

#[tokio::test]
async fn a_server_chosen_id_is_created_after_an_empty_strict_label_lookup() {
    let kind = Fake::new(Script::default());
    assert_eq!(kind.apply(&cx()).await.unwrap(), Applied::Done(outputs()));
    let calls = calls(&kind);
    let create = calls.iter().position(|c| c == "create").unwrap();
    assert_eq!(calls[create - 2], "by_label Apply", "{calls:?}");
}

#[tokio::test]
async fn a_grace_period_creates_only_from_the_poll_after_its_deadline_and_a_strict_read() {
    let mut kind = Fake::new(Script::default());
    kind.0.grace = Some(Duration::from_secs(3600));
    let cx = cx();
    let Applied::Started(handle) = kind.apply(&cx).await.unwrap() else {
        panic!("a wait is started");
    };
    assert!(matches!(
        kind.poll(&cx, &handle).await.unwrap(),
        PollOutcome::Pending { .. }
    ));
    assert!(calls(&kind).iter().all(|c| c != "create"), "{:?}", calls(&kind));

    kind.0.grace = Some(Duration::ZERO);
    let Applied::Started(handle) = kind.apply(&cx).await.unwrap() else {
        panic!("a wait is started");
    };
    assert_eq!(
        kind.poll(&cx, &handle).await.unwrap(),
        PollOutcome::Done(outputs())
    );
    let calls = calls(&kind);
    assert_eq!(calls.iter().filter(|c| *c == "create").count(), 1, "{calls:?}");
    assert_strict_read_before_each_mutation(&calls);
}

#[tokio::test]
async fn a_handle_the_reconciler_did_not_write_is_refused() {
    let mut kind = Fake::new(Script::default());
    kind.0.grace = Some(Duration::ZERO);
    let handle = sluice_engine::OperationHandle(json!({ "phase": "other" }));
    let error = kind.poll(&cx(), &handle).await.unwrap_err();
    assert!(
        error.message().contains("is not one this kind wrote"),
        "{error:?}"
    );
    assert!(calls(&kind).is_empty());
}

#[test]
fn a_grace_wait_handle_reads_back_in_the_shape_every_version_stored() {
    use super::flow::GraceWait;
    let stored = json!({ "phase": "await_automatic", "deadline_unix_ms": 1_700_000_000_000u64 });
    let handle = sluice_engine::OperationHandle(stored.clone());
    let wait: GraceWait = crate::common::read_stored(&cx(), &handle).unwrap();
    assert_eq!(wait.deadline_unix_ms, 1_700_000_000_000);
    assert_eq!(crate::common::stored_handle(&wait).0, stored);
    // A Google operation's handle is not a grace wait.
    let other = crate::common::handle(&sluice_gcp::OperationFamily::NetworkServices, "operations/1");
    let refused = crate::common::read_stored::<GraceWait>(&cx(), &other).unwrap_err();
    assert!(
        refused.to_string().contains("is not one this kind wrote"),
        "{refused}"
    );
}
