//! The egress plan SIGKILLed at every step boundary and inside every operation, then resumed:
//! exactly one reasoning engine, one gateway, the desired bindings, and the project's other
//! bindings untouched.

mod support;

use sluice_tests::{run_and_kill_at, stderr, Sandbox};
use support::{names, run_ids, Cloud, EGRESS_VARS};

const PLAN: &str = "agent-gateway-egress.json";
const STEPS: [&str; 8] = [
    "apis",
    "project",
    "service_agents",
    "gateway_role",
    "gateway_role_binding",
    "egress_gateway",
    "agent",
    "registration",
];
/// Steps that wait on an operation.
const OPERATIONS: [&str; 4] = ["apis", "egress_gateway", "agent", "registration"];
const AGENT_RE: &str = "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com";

/// Kills a run at `step:point`, continues it (`sluice resume RUN`, or `sluice run` with the same
/// plan and variables, alternately), and checks the world. Returns whether the run reached the
/// point (a step that only observes never reaches after-intent).
fn crash_and_continue(step: &str, point: &str, by_resume: bool) -> bool {
    let mut config = support::config();
    // Agent Runtime's automatic registration comes 250 emulated seconds (250 ms here) after the
    // deploy, not 60: `registration` must first observe it missing to reach its crash points,
    // and 60 ms is within what a loaded machine takes between the two steps.
    config.delays.registry_agent = 250.0;
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let reached = run_and_kill_at(cloud.command(&sandbox, "run", PLAN, &EGRESS_VARS), step, point);
    let resumed = if by_resume {
        let runs = run_ids(&sandbox);
        assert_eq!(runs.len(), 1, "{step}:{point}: the killed run is in the store");
        cloud.resume(&sandbox, &runs[0])
    } else {
        cloud.sluice(&sandbox, "run", PLAN, &EGRESS_VARS)
    };
    assert!(
        resumed.status.success(),
        "{step}:{point}: the continued run failed:\n{}",
        stderr(&resumed)
    );
    let state = cloud.state();
    assert_eq!(
        state["reasoningEngines"].as_array().unwrap().len(),
        1,
        "{step}:{point}: exactly one engine"
    );
    assert_eq!(
        names(&state, "agentGateways"),
        ["projects/sluice-demo/locations/us-central1/agentGateways/agent-egress"],
        "{step}:{point}: one gateway"
    );
    assert!(
        cloud.holds(
            "sluice-demo",
            "projects/sluice-demo/roles/agentGatewayUser",
            AGENT_RE
        ),
        "{step}:{point}: the gateway role is granted"
    );
    assert!(
        cloud.holds("sluice-demo", "roles/owner", "user:owner@example.com"),
        "{step}:{point}: the owner binding is untouched"
    );
    let registry = &state["agentRegistry"];
    let registered =
        registry["runtimeAgents"].as_array().unwrap().len() + registry["services"].as_array().unwrap().len();
    assert!(registered >= 1, "{step}:{point}: the agent is registered");
    reached
}

fn matrix(cases: Vec<(&'static str, &'static str)>) -> usize {
    // Cases are independent (an emulator and a store each): run them on 3 threads.
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
                        .filter(|(step, point, by_resume)| crash_and_continue(step, point, *by_resume))
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    })
}

#[test]
fn killed_at_every_step_boundary_the_run_continues_to_one_of_everything() {
    let mut cases = Vec::new();
    for step in STEPS {
        for point in ["after-intent", "after-mutation", "after-step"] {
            cases.push((step, point));
        }
    }
    let reached = matrix(cases);
    // `project` only reads: it reaches after-step but never after-intent / after-mutation.
    assert_eq!(
        reached,
        STEPS.len() * 3 - 2,
        "every other crash point was reached"
    );
}

#[test]
fn killed_while_waiting_on_each_operation_the_run_reattaches() {
    let cases = OPERATIONS.iter().map(|s| (*s, "while-waiting")).collect();
    assert_eq!(matrix(cases), OPERATIONS.len());
}
