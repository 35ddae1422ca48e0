//! The egress plan SIGKILLed at every step boundary and inside every operation, then resumed:
//! exactly one reasoning engine, one gateway, the desired bindings, and the project's other
//! bindings untouched.

mod support;

use support::crash::{at_boundaries, check_egress, crash_matrix, while_waiting, BOUNDARIES};
use support::{Cloud, EGRESS_VARS};

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

/// Runs the cases (an emulator and a store each, continued alternately by `sluice resume RUN`
/// and `sluice run`) and checks the egress plan's world after each. Returns how many cases
/// reached their point.
fn matrix(cases: Vec<(&'static str, &'static str)>) -> usize {
    let check = |cloud: &Cloud, case: &str| check_egress(cloud, &cloud.state(), case);
    crash_matrix(PLAN, &EGRESS_VARS, cases, &check)
}

#[test]
fn killed_at_every_step_boundary_the_run_continues_to_one_of_everything() {
    let reached = matrix(at_boundaries(&STEPS));
    // `project` only reads: it reaches after-step but never after-intent / after-mutation.
    assert_eq!(
        reached,
        STEPS.len() * BOUNDARIES.len() - 2,
        "every other crash point was reached"
    );
}

#[test]
fn killed_while_waiting_on_each_operation_the_run_reattaches() {
    assert_eq!(matrix(while_waiting(&OPERATIONS)), OPERATIONS.len());
}
