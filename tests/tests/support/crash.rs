//! Crash matrices over a shipped plan: each case kills a run at `STEP:POINT` (SIGKILL, through
//! the harness), continues it on the same emulator and store, and checks the world.

use serde_json::Value;
use sluice_tests::{run_and_kill_at, stderr, Sandbox};

use super::{names, run_ids, Cloud};

/// The Reasoning Engine service agent of `sluice-demo`.
pub const AGENT_RE: &str = "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com";
/// The egress gateway the egress plan creates in `sluice-demo`.
pub const EGRESS_GATEWAY: &str = "projects/sluice-demo/locations/us-central1/agentGateways/agent-egress";

/// The crash points at a step's boundaries: its intent durable, its mutation answered, its
/// success recorded.
pub const BOUNDARIES: [&str; 3] = ["after-intent", "after-mutation", "after-step"];

/// Every step at every [`BOUNDARIES`] point, step by step.
pub fn at_boundaries(steps: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    steps
        .iter()
        .flat_map(|step| BOUNDARIES.map(|point| (*step, point)))
        .collect()
}

/// Every step at `while-waiting` (its operation handle durable, polling about to start).
pub fn while_waiting(steps: &[&'static str]) -> Vec<(&'static str, &'static str)> {
    steps.iter().map(|step| (*step, "while-waiting")).collect()
}

/// Kills a run of `plan` at `step:point`, continues it (`sluice resume RUN`, or `sluice run` with
/// the same plan and variables), checks that the continued run succeeded, and calls `check`
/// with the emulator and `step:point`. Returns whether the run reached the point (a step that
/// only observes never reaches after-intent).
fn crash_and_continue(
    plan: &str,
    vars: &[&str],
    (step, point, by_resume): (&str, &str, bool),
    check: &(dyn Fn(&Cloud, &str) + Sync),
) -> bool {
    let mut config = super::config();
    // Agent Runtime's automatic registration comes 250 emulated seconds (250 ms here) after the
    // deploy, not 60: `registration` must first observe it missing to reach its crash points,
    // and 60 ms is within what a loaded machine takes between the two steps.
    config.delays.registry_agent = 250.0;
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let reached = run_and_kill_at(cloud.command(&sandbox, "run", plan, vars), step, point);
    let resumed = if by_resume {
        let runs = run_ids(&sandbox);
        assert_eq!(runs.len(), 1, "{step}:{point}: the killed run is in the store");
        cloud.resume(&sandbox, &runs[0])
    } else {
        cloud.sluice(&sandbox, "run", plan, vars)
    };
    assert!(
        resumed.status.success(),
        "{step}:{point}: the continued run failed:\n{}",
        stderr(&resumed)
    );
    check(&cloud, &format!("{step}:{point}"));
    reached
}

/// Runs every `(step, point)` case of `plan` (an emulator and a store each), continuing
/// alternately by `sluice resume RUN` (odd cases) and by `sluice run` (even ones), on 3 threads.
/// Returns how many cases reached their point.
pub fn crash_matrix(
    plan: &str,
    vars: &[&str],
    cases: Vec<(&'static str, &'static str)>,
    check: &(dyn Fn(&Cloud, &str) + Sync),
) -> usize {
    let cases: Vec<(&str, &str, bool)> = cases
        .into_iter()
        .enumerate()
        .map(|(i, (step, point))| (step, point, i % 2 == 1))
        .collect();
    let chunks: Vec<Vec<(&str, &str, bool)>> = (0..3)
        .map(|k| cases.iter().copied().skip(k).step_by(3).collect())
        .collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .filter(|case| crash_and_continue(plan, vars, *case, check))
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

/// What every continued run of the egress plan leaves: exactly one reasoning engine, one
/// gateway, the gateway role granted, the owner binding untouched, the agent registered.
pub fn check_egress(cloud: &Cloud, state: &Value, case: &str) {
    assert_eq!(
        state["reasoningEngines"].as_array().unwrap().len(),
        1,
        "{case}: exactly one engine"
    );
    assert_eq!(
        names(state, "agentGateways"),
        [EGRESS_GATEWAY],
        "{case}: one gateway"
    );
    assert!(
        cloud.holds(
            "sluice-demo",
            "projects/sluice-demo/roles/agentGatewayUser",
            AGENT_RE
        ),
        "{case}: the gateway role is granted"
    );
    assert!(
        cloud.holds("sluice-demo", "roles/owner", "user:owner@example.com"),
        "{case}: the owner binding is untouched"
    );
    let registry = &state["agentRegistry"];
    let registered =
        registry["runtimeAgents"].as_array().unwrap().len() + registry["services"].as_array().unwrap().len();
    assert!(registered >= 1, "{case}: the agent is registered");
}
