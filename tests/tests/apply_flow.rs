//! Approving a run, through the binary against the emulator: on a terminal `run` shows the plan
//! and asks (`no` changes nothing, `yes` applies); without a terminal it needs --auto-approve; a
//! saved plan (`plan --out`) is applied only while the world still matches it; and
//! `plan --detailed-exitcode` says whether anything would change.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::{Eof, Expect, Session};
use reqwest::Method;
use serde_json::{json, Value};
use sluice_tests::{stderr, stdout, Sandbox};
use support::{shipped_plan, Cloud, EGRESS_VARS, HARNESS};

const PLAN: &str = "agent-gateway-egress.json";
const QUESTION: &str = "Apply these changes? Only 'yes' is accepted:";
/// A safety net for a hung child, not a measure of anything.
const PATIENCE: Duration = Duration::from_secs(300);

/// `sluice ARGS… PLAN` against `cloud`, without --auto-approve, with the egress variables.
fn command(cloud: &Cloud, sandbox: &Sandbox, args: &[&str], plan: &Path) -> Command {
    let target = cloud.target_args();
    let mut all: Vec<&str> = args.to_vec();
    all.push(plan.to_str().unwrap());
    all.extend(target.iter().map(String::as_str));
    for var in EGRESS_VARS {
        all.extend(["--var", var]);
    }
    sandbox.command(HARNESS, &all)
}

/// Runs `command` on a pseudo-terminal, answers the question with `answer` (when it is asked),
/// and returns everything it printed and its exit code.
fn on_a_terminal(command: Command, answer: Option<&str>) -> (String, i32) {
    let mut session = Session::spawn(command).expect("spawns on a pty");
    session.set_expect_timeout(Some(PATIENCE));
    let mut printed = String::new();
    if let Some(answer) = answer {
        let asked = session.expect(QUESTION).expect("the question is asked");
        printed.push_str(&String::from_utf8_lossy(asked.before()));
        printed.push_str(QUESTION);
        session.send_line(answer).unwrap();
    }
    let rest = session.expect(Eof).expect("the process ends");
    printed.push_str(&String::from_utf8_lossy(rest.as_bytes()));
    let code = match session.get_process().wait().unwrap() {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("ended by {other:?}:\n{printed}"),
    };
    (printed, code)
}

/// Whether the listing `text` shows `step` with `mark`.
fn listed(text: &str, mark: &str, step: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with(&format!("{mark} {step} ")))
}

#[test]
fn on_a_terminal_run_shows_the_plan_and_a_no_changes_nothing() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let (printed, code) = on_a_terminal(
        command(&cloud, &sandbox, &["run"], &shipped_plan(PLAN)),
        Some("no"),
    );
    assert_eq!(code, 7, "{printed}");
    // The listing `sluice plan` prints, counts last, then the question.
    assert!(listed(&printed, "+", "egress_gateway"), "{printed}");
    assert!(listed(&printed, "/", "iap_policy"), "{printed}");
    let question = printed.find(QUESTION).unwrap();
    let counts = printed
        .find("plan agent-gateway-egress: ")
        .expect("the counts line");
    assert!(counts < question, "{printed}");
    assert!(printed[question..].contains("nothing was changed"), "{printed}");
    assert_eq!(cloud.mutations(), Vec::<String>::new(), "only observed");
    assert!(!sandbox.store().exists(), "no store opened before the answer");
}

#[test]
fn on_a_terminal_yes_applies_and_a_converged_plan_is_not_asked_about() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let plan = shipped_plan(PLAN);
    let (printed, code) = on_a_terminal(command(&cloud, &sandbox, &["run"], &plan), Some("yes"));
    assert_eq!(code, 0, "{printed}");
    assert!(!cloud.mutations().is_empty(), "applied");
    assert!(
        cloud.state()["agentGateways"].as_array().unwrap().len() == 1,
        "the gateway exists"
    );

    // Converged: nothing to approve, so nothing is asked, and the run only observes.
    let made = cloud.mutations().len();
    let (printed, code) = on_a_terminal(command(&cloud, &sandbox, &["run"], &plan), None);
    assert_eq!(code, 0, "{printed}");
    assert!(!printed.contains(QUESTION), "{printed}");
    assert!(printed.contains("nothing to approve"), "{printed}");
    assert!(listed(&printed, "=", "egress_gateway"), "{printed}");
    assert_eq!(cloud.mutations()[made..], [] as [String; 0]);
    assert_eq!(support::run_ids(&sandbox).len(), 2, "the re-check is recorded");
}

#[test]
fn without_a_terminal_run_needs_auto_approve_and_calls_nothing() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let output = command(&cloud, &sandbox, &["run"], &shipped_plan(PLAN))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("add --auto-approve"),
        "{}",
        stderr(&output)
    );
    assert_eq!(cloud.emulator.requests(), json!([]), "not one request");
    assert!(!sandbox.store().exists());
}

#[test]
fn detailed_exitcode_is_2_while_something_would_change_and_0_once_converged() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let plan = shipped_plan(PLAN);
    let detailed = |sandbox: &Sandbox| {
        command(&cloud, sandbox, &["plan", "--detailed-exitcode"], &plan)
            .output()
            .unwrap()
    };
    let fresh = detailed(&sandbox);
    assert_eq!(fresh.status.code(), Some(2), "{}", stderr(&fresh));
    assert!(listed(&stdout(&fresh), "+", "egress_gateway"));
    // Without the flag, the same plan is a success.
    let plain = command(&cloud, &sandbox, &["plan"], &plan).output().unwrap();
    assert_eq!(plain.status.code(), Some(0));

    let run = cloud.sluice(&sandbox, "run", PLAN, &EGRESS_VARS);
    assert!(run.status.success(), "{}", stderr(&run));
    let converged = detailed(&sandbox);
    assert_eq!(converged.status.code(), Some(0), "{}", stdout(&converged));
    assert!(
        stdout(&converged).contains("no changes"),
        "{}",
        stdout(&converged)
    );

    // An error is 1 with the flag, never 2 ("changes").
    let bad = command(
        &cloud,
        &sandbox,
        &["plan", "--detailed-exitcode", "--var", "region=nowhere!"],
        &plan,
    )
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    let usage = command(
        &cloud,
        &sandbox,
        &["plan", "--detailed-exitcode", "--no-such-flag"],
        &plan,
    )
    .output()
    .unwrap();
    assert_eq!(usage.status.code(), Some(1), "{}", stderr(&usage));
}

#[test]
fn plan_json_is_one_document_with_counts_that_add_up() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let output = command(&cloud, &sandbox, &["plan", "--json"], &shipped_plan(PLAN))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["format_version"], 1);
    assert_eq!(document["plan"]["name"], "agent-gateway-egress");
    assert_eq!(document["changes"], true);
    let steps = document["steps"].as_array().unwrap();
    let counts = document["counts"].as_object().unwrap();
    let total: u64 = counts
        .iter()
        .filter(|(key, _)| *key != "steps")
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, steps.len() as u64, "{document}");
    assert_eq!(counts["steps"], steps.len());
    let gateway = steps.iter().find(|s| s["id"] == "egress_gateway").unwrap();
    assert_eq!(gateway["action"], "create");
    assert_eq!(gateway["kind"], "gcp.agent_gateway");
    assert!(
        gateway["summary"].as_str().unwrap().contains("agent-egress"),
        "{gateway}"
    );
}

/// `sluice plan --out FILE` on `cloud`; returns FILE.
fn save_plan(cloud: &Cloud, sandbox: &Sandbox) -> std::path::PathBuf {
    let file = sandbox.root.join("reviewed.plan.json");
    let output = command(
        cloud,
        sandbox,
        &["plan", "--out", file.to_str().unwrap()],
        &shipped_plan(PLAN),
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("sluice run"), "{}", stderr(&output));
    file
}

/// `sluice run FILE` against `cloud`: no --auto-approve, no variables.
fn run_saved(cloud: &Cloud, sandbox: &Sandbox, file: &Path, extra: &[&str]) -> std::process::Output {
    let target = cloud.target_args();
    let mut args = vec!["run", file.to_str().unwrap()];
    args.extend(target.iter().map(String::as_str));
    args.extend(extra);
    sandbox.run(HARNESS, &args)
}

#[test]
fn a_saved_plan_is_applied_as_reviewed_without_asking() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let file = save_plan(&cloud, &sandbox);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["sluice_saved_plan"], 1);
    assert_eq!(saved["vars"]["project"], "sluice-demo");
    assert_eq!(saved["target"]["kind"], "endpoint");
    assert!(!saved.to_string().contains("test-token"), "no credential saved");
    assert_eq!(
        cloud.mutations(),
        Vec::<String>::new(),
        "plan --out mutates nothing"
    );

    let output = run_saved(&cloud, &sandbox, &file, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(cloud.state()["agentGateways"].as_array().unwrap().len(), 1);
    let again = command(
        &cloud,
        &sandbox,
        &["plan", "--detailed-exitcode"],
        &shipped_plan(PLAN),
    )
    .output()
    .unwrap();
    assert_eq!(again.status.code(), Some(0), "converged: {}", stdout(&again));
}

/// The custom role the egress plan grants, and the Reasoning Engine service agent it grants it to.
const ROLE: &str = "projects/sluice-demo/roles/agentGatewayUser";
const AGENT_RE: &str = "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com";

/// Grants or revokes [`ROLE`] for [`AGENT_RE`] in `sluice-demo`, as someone else's tool would.
fn set_grant(cloud: &Cloud, granted: bool) {
    let (status, mut policy) = cloud.call(
        Method::POST,
        "v1/projects/sluice-demo:getIamPolicy",
        Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
    );
    assert_eq!(status, 200, "{policy}");
    let bindings = policy["bindings"].as_array_mut().unwrap();
    bindings.retain(|b| b["role"] != ROLE);
    if granted {
        bindings.push(json!({"role": ROLE, "members": [AGENT_RE]}));
    }
    let (status, body) = cloud.call(
        Method::POST,
        "v1/projects/sluice-demo:setIamPolicy",
        Some(json!({ "policy": policy })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(cloud.holds("sluice-demo", ROLE, AGENT_RE), granted);
}

#[test]
fn a_saved_plan_the_world_drifted_from_is_refused_naming_the_step() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let run = cloud.sluice(&sandbox, "run", PLAN, &EGRESS_VARS);
    assert!(run.status.success(), "{}", stderr(&run));
    // The grant goes; the reviewed plan is to grant it again.
    set_grant(&cloud, false);
    let file = save_plan(&cloud, &sandbox);
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("\"action\": \"create\""), "{saved}");
    // Before it is applied, someone else grants it (by hand), so the world no longer matches.
    set_grant(&cloud, true);
    let before = cloud.mutations().len();

    let output = run_saved(&cloud, &sandbox, &file, &[]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{err}");
    assert!(
        err.contains("no longer matches") && err.contains("nothing was changed"),
        "{err}"
    );
    // The grant, and the service agent it made visible, are no longer to create.
    let drifted: Vec<&str> = err
        .lines()
        .filter(|l| l.contains(": was `"))
        .map(str::trim_start)
        .collect();
    assert_eq!(drifted.len(), 2, "{err}");
    assert!(drifted[0].starts_with("service_agents: was `+ create"), "{err}");
    assert!(
        drifted[1].starts_with("gateway_role_binding: was `+ create: grant")
            && drifted[1].ends_with("now `= unchanged`"),
        "{err}"
    );
    assert!(err.contains("sluice plan") && err.contains("--out"), "{err}");
    assert_eq!(cloud.mutations()[before..], [] as [String; 0], "nothing changed");
    assert_eq!(support::run_ids(&sandbox).len(), 1, "no run started");
}

#[test]
fn a_saved_plan_refuses_variables_and_another_target_before_any_call() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let file = save_plan(&cloud, &sandbox);
    let requests = cloud.emulator.requests().as_array().unwrap().len();

    let with_var = run_saved(&cloud, &sandbox, &file, &["--var", "region=europe-west4"]);
    assert_eq!(with_var.status.code(), Some(2), "{}", stderr(&with_var));
    assert!(stderr(&with_var).contains("--var"), "{}", stderr(&with_var));

    let elsewhere = sandbox.run(HARNESS, &["run", file.to_str().unwrap(), "--emulator"]);
    let err = stderr(&elsewhere);
    assert_eq!(elsewhere.status.code(), Some(2), "{err}");
    assert!(
        err.contains("was saved against --endpoint") && err.contains("--emulator"),
        "{err}"
    );

    // `--out` naming the plan file itself would overwrite it.
    let copy = sandbox.root.join("egress.json");
    std::fs::copy(shipped_plan(PLAN), &copy).unwrap();
    let onto_itself = command(
        &cloud,
        &sandbox,
        &["plan", "--out", copy.to_str().unwrap()],
        &copy,
    )
    .output()
    .unwrap();
    assert_eq!(onto_itself.status.code(), Some(2), "{}", stderr(&onto_itself));
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(shipped_plan(PLAN)).unwrap()
    );

    assert_eq!(
        cloud.emulator.requests().as_array().unwrap().len(),
        requests,
        "no call"
    );
    assert!(!sandbox.store().exists());
}
