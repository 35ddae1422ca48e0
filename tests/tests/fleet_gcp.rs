//! Fleets against the emulator through the binary: new and existing projects converge with
//! faults and a second fleet run mutates nothing; a fleet killed three times ends with one of
//! everything per target; client-side rate limits hold in every 60-second window; a refused
//! billing account fails its target alone; the clean-up deletes exactly the expired projects
//! carrying the fleet's label; the shipped nightly fleet converges on the embedded emulator.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};
use sluice_emulator::config::{BillingAccountConfig, FaultConfig, ProjectConfig, ProjectMetadataConfig};
use sluice_emulator::EmulatorConfig;
use sluice_tests::{run_and_kill_at, stderr, stdout, Sandbox, SplitMix64};
use support::{shipped_plan, Cloud, HARNESS, SCALE};

const ADMIN: &str = "fleet-admin";
const BILLING: &str = "billingAccounts/0A1B2C-3D4E5F-6A7B8C";
const ORG: &str = "organizations/123456789012";

/// The test world: the support organisation, `existing` projects `fleet-existing-N`, the
/// admin project that pays for client-based APIs, and an open billing account.
fn world(existing: usize) -> EmulatorConfig {
    let mut config = support::config();
    for i in 1..=existing {
        config.organizations[0].projects.push(ProjectConfig::new(
            &format!("fleet-existing-{i}"),
            200_000_000_000 + i as u64,
            &[],
        ));
    }
    config.organizations[0].projects.push(ProjectConfig::new(
        ADMIN,
        199_999_999_999,
        &[
            "cloudresourcemanager.googleapis.com",
            "cloudbilling.googleapis.com",
            "iam.googleapis.com",
            "serviceusage.googleapis.com",
        ],
    ));
    config.billing_accounts.push(BillingAccountConfig {
        name: BILLING.into(),
        open: true,
        max_projects: None,
        display_name: String::new(),
    });
    config
}

fn five_percent() -> FaultConfig {
    FaultConfig {
        error_503: 0.02,
        error_429: 0.01,
        answer_lost: 0.01,
        dropped_connection: 0.01,
        ..FaultConfig::default()
    }
}

/// A fleet file in the sandbox running the shipped egress plan.
fn fleet_file(sandbox: &Sandbox, name: &str, existing: usize, new: Option<Value>, extra: Value) -> PathBuf {
    let targets: Vec<Value> = (1..=existing)
        .map(|i| json!({ "project": format!("fleet-existing-{i}") }))
        .collect();
    let mut fleet = json!({
        "name": name,
        "plan": shipped_plan("agent-gateway-egress.json"),
        "vars": { "pickle_gcs_uri": "gs://agents/agent.pkl" },
        "targets": targets,
        "concurrency": 8
    });
    if let Some(new) = new {
        fleet["new_projects"] = new;
    }
    for (key, value) in extra.as_object().into_iter().flatten() {
        fleet[key] = value.clone();
    }
    sandbox.write_plan("fleet.json", &fleet)
}

fn new_projects(count: usize, pattern: &str) -> Value {
    json!({ "count": count, "id_pattern": pattern, "parent": ORG, "billing_account": BILLING })
}

/// `sluice fleet COMMAND ARG` against `cloud` (time scaled by `scale`), as the fleet's admin.
fn fleet(cloud: &Cloud, sandbox: &Sandbox, command: &str, arg: &Path, scale: f64) -> Command {
    let arg = arg.display().to_string();
    let scale = scale.to_string();
    let args = [
        "fleet",
        command,
        arg.as_str(),
        "--endpoint",
        cloud.emulator.base_url.as_str(),
        "--access-token",
        "test-token",
        "--time-scale",
        scale.as_str(),
        "--quota-project",
        ADMIN,
    ];
    sandbox.command(HARNESS, &args)
}

/// `sluice fleet run FILE --report REPORT` against `cloud`, time scaled as the support's.
fn run_reporting(cloud: &Cloud, sandbox: &Sandbox, file: &Path, report: &Path) -> Output {
    let mut command = fleet(cloud, sandbox, "run", file, SCALE);
    command.args(["--report", report.to_str().unwrap()]);
    run(command)
}

fn run(mut command: Command) -> Output {
    command.output().expect("harness runs")
}

fn read_report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("report is JSON")
}

fn log(cloud: &Cloud) -> Vec<Value> {
    cloud.emulator.requests().as_array().unwrap().clone()
}

/// Exactly one project, gateway, engine (bound to that gateway) and automatic registration per
/// target: nothing was created twice. The emulator's state is the truth here; a create that
/// failed (the deploy refused while a grant propagates) leaves nothing behind, so counting
/// create calls would not say it.
fn one_of_everything(cloud: &Cloud, projects: &[String], new: usize, fleet: &str) {
    let state = cloud.state();
    let all = state["projects"].as_array().unwrap();
    let ours: Vec<&Value> = all
        .iter()
        .filter(|p| projects.contains(&p["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(ours.len(), projects.len(), "every target's project exists once");
    let labelled = all
        .iter()
        .filter(|p| p["labels"]["sluice-fleet"] == fleet)
        .count();
    assert_eq!(labelled, new, "projects created by the fleet");
    assert_eq!(state["agentGateways"].as_array().unwrap().len(), projects.len());
    assert_eq!(
        state["reasoningEngines"].as_array().unwrap().len(),
        projects.len()
    );
    for project in projects {
        let gateway = format!("projects/{project}/locations/us-central1/agentGateways/agent-egress");
        assert!(
            support::names(&state, "agentGateways").contains(&gateway),
            "{project}: its gateway"
        );
        let bound = state["reasoningEngines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["spec"]["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]["agentGateway"]
                    == gateway.as_str()
            })
            .count();
        assert_eq!(bound, 1, "{project}: one engine bound to its gateway");
    }
}

fn target_projects(existing: usize, new: usize, pattern: &str) -> Vec<String> {
    let width = new.to_string().len();
    (1..=existing)
        .map(|i| format!("fleet-existing-{i}"))
        .chain((1..=new).map(|i| pattern.replace("{index}", &format!("{i:0width$}"))))
        .collect()
}

#[test]
fn twenty_new_and_five_existing_projects_converge_with_faults_and_a_rerun_changes_nothing() {
    let mut config = world(5);
    config.seed = 9;
    config.faults.insert("*".into(), five_percent());
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let file = fleet_file(
        &sandbox,
        "e2e",
        5,
        Some(new_projects(20, "fleet-new-{index}")),
        json!({}),
    );
    let report_path = sandbox.work("report.json");

    let output = run_reporting(&cloud, &sandbox, &file, &report_path);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let faults = log(&cloud)
        .iter()
        .filter(|e| matches!(e["status"].as_u64(), Some(0 | 429 | 503)))
        .count();
    assert!(faults > 0, "the fleet met faults");
    let report = read_report(&report_path);
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 25);
    assert!(targets
        .iter()
        .all(|t| t["state"] == "succeeded" && t["run_id"].is_string()));
    let new: Vec<&Value> = targets.iter().filter(|t| t["new_project"] == true).collect();
    assert_eq!(new.len(), 20);
    assert!(new.iter().all(|t| t["created"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["step"] == "fleet_new_project")));
    let projects = target_projects(5, 20, "fleet-new-{index}");
    one_of_everything(&cloud, &projects, 20, "e2e");
    let state = cloud.state();
    for project in state["projects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_str().unwrap().starts_with("fleet-new-"))
    {
        assert_eq!(project["labels"]["sluice-fleet"], "e2e");
        assert_eq!(project["billingAccount"], BILLING);
    }

    // The next night: every target re-checked, nothing changed.
    let before = cloud.mutations().len();
    let output = run(fleet(&cloud, &sandbox, "run", &file, SCALE));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("25 targets: 25 converged, 0 changed, 0 failed"),
        "{}",
        stdout(&output)
    );
    let after = cloud.mutations();
    assert_eq!(
        after.len(),
        before,
        "mutating calls on the re-run: {:?}",
        &after[before..]
    );
}

#[test]
fn a_fleet_killed_three_times_ends_with_one_of_everything_per_target() {
    let mut config = world(2);
    config.seed = 4;
    config.faults.insert("*".into(), five_percent());
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let file = fleet_file(
        &sandbox,
        "killed",
        2,
        Some(new_projects(6, "fleet-kill-{index}")),
        json!({}),
    );
    // Seeded choices: where each of the three kills happens, moving along the plan.
    let stages: [&[&str]; 3] = [
        &[
            "fleet_new_project:after-intent",
            "fleet_new_project:while-waiting",
            "fleet_billing:after-mutation",
        ],
        &[
            "gateway_role:after-mutation",
            "egress_gateway:after-intent",
            "egress_gateway:while-waiting",
        ],
        &[
            "agent:after-intent",
            "agent:after-mutation",
            "agent:while-waiting",
        ],
    ];
    let mut random = SplitMix64::new(2026);
    for choices in stages {
        let (step, point) = choices[random.below(choices.len() as u64) as usize]
            .split_once(':')
            .unwrap();
        let reached = run_and_kill_at(fleet(&cloud, &sandbox, "run", &file, SCALE), step, point);
        assert!(reached, "the fleet reached {step}:{point} before it was killed");
    }
    let output = run(fleet(&cloud, &sandbox, "run", &file, SCALE));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("continuing unfinished fleet run"),
        "{}",
        stderr(&output)
    );
    one_of_everything(&cloud, &target_projects(2, 6, "fleet-kill-{index}"), 6, "killed");
}

/// Every window of 60 s of emulated time, starting at each call of `service`, holds at most
/// `limit` of its calls.
fn fullest_minute(cloud: &Cloud, service: &str) -> usize {
    let mut arrivals: Vec<u64> = log(cloud)
        .iter()
        .filter(|e| e["service"] == service)
        .map(|e| e["arrivedMs"].as_u64().unwrap())
        .collect();
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|&&t| t < arrivals[i] + 60_000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_rate_limit_holds_in_every_minute_and_quotas_below_demand_fail_no_target() {
    // Time 20x faster, not 1,000x: the limiter's 5 % margin is then 150 ms of real time, more
    // than a loaded machine delays a call between the client and the emulator (at 50x, 60 ms,
    // a CI-like load once made a window of the log hold 31 calls).
    const SLOWER: f64 = 0.05;
    let mut config = world(6);
    config.time_scale = SLOWER;
    // Google's quotas lower than what six targets ask: per project and per caller.
    config.quotas.insert("networkservices.googleapis.com".into(), 4);
    config.caller_quotas.insert("iam.googleapis.com".into(), 12);
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    const LIMIT: usize = 30;
    let file = fleet_file(
        &sandbox,
        "paced",
        6,
        None,
        json!({ "rate_limits": { "serviceusage.googleapis.com": LIMIT } }),
    );
    let output = run(fleet(&cloud, &sandbox, "run", &file, SLOWER));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let calls = log(&cloud)
        .iter()
        .filter(|e| e["service"] == "serviceusage.googleapis.com")
        .count();
    assert!(
        calls > LIMIT,
        "the fleet needed more than one minute's worth: {calls}"
    );
    let fullest = fullest_minute(&cloud, "serviceusage.googleapis.com");
    assert!(
        fullest <= LIMIT,
        "a 60-second window held {fullest} calls, over the limit {LIMIT}"
    );
    let refused = log(&cloud).iter().filter(|e| e["status"] == 429).count();
    assert!(refused > 0, "the emulator's quotas were met");
    assert!(
        stdout(&output).contains("6 targets: 0 converged, 6 changed, 0 failed"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_refused_billing_account_fails_its_target_alone_and_the_fleet_is_partial() {
    let mut config = world(1);
    config.billing_accounts[0].max_projects = Some(2);
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let file = fleet_file(
        &sandbox,
        "billed",
        1,
        Some(new_projects(3, "fleet-bill-{index}")),
        json!({}),
    );
    let report_path = sandbox.work("report.json");
    let output = run_reporting(&cloud, &sandbox, &file, &report_path);
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(5), "partial:\n{out}\n{err}");
    assert!(
        out.contains("4 targets: 0 converged, 3 changed, 1 failed"),
        "{out}"
    );
    assert!(
        out.contains("1 target: step `fleet_billing` (permanent)"),
        "{out}"
    );
    let report = read_report(&report_path);
    assert_eq!(report["state"], "partial");
    let failed: Vec<&Value> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"]["step"], "fleet_billing");
    let message = failed[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains(BILLING), "names the account: {message}");
    assert_eq!(report["failures_by_cause"].as_array().unwrap().len(), 1);
}

/// RFC 3339 for `ago` before now.
fn rfc3339_ago(ago: std::time::Duration) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let stamp = sluice_engine::time::compact_stamp((now - ago).as_millis() as u64);
    // YYYYMMDDTHHMMSSZ → YYYY-MM-DDTHH:MM:SSZ
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    )
}

#[test]
fn the_clean_up_deletes_exactly_the_expired_projects_carrying_the_fleets_label() {
    let mut config = world(0);
    let day = std::time::Duration::from_secs(86_400);
    let seeded = [
        ("ttl-old-ours", Some("ttlfleet"), 10 * day),
        ("ttl-old-other", Some("another"), 10 * day),
        ("ttl-old-unlabelled", None, 10 * day),
        ("ttl-fresh-ours", Some("ttlfleet"), day / 24),
    ];
    for (i, (id, fleet_label, age)) in seeded.iter().enumerate() {
        config.organizations[0]
            .projects
            .push(ProjectConfig::new(id, 300_000_000_000 + i as u64, &[]));
        config.project_metadata.insert(
            id.to_string(),
            ProjectMetadataConfig {
                labels: fleet_label
                    .map(|f| [("sluice-fleet".to_string(), f.to_string())].into())
                    .unwrap_or_default(),
                create_time: Some(rfc3339_ago(*age)),
                display_name: None,
            },
        );
    }
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let mut new = new_projects(1, "ttl-{date}-{index}");
    new["ttl"] = json!("3d");
    let file = fleet_file(&sandbox, "ttlfleet", 0, Some(new), json!({}));
    let report_path = sandbox.work("report.json");
    let output = run_reporting(&cloud, &sandbox, &file, &report_path);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let report = read_report(&report_path);
    let deleted: Vec<&str> = report["cleanup"]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["project"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["ttl-old-ours"]);
    let state = cloud.state();
    let lifecycle = |id: &str| {
        state["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["state"].as_str().unwrap().to_string())
    };
    assert_eq!(lifecycle("ttl-old-ours").as_deref(), Some("DELETE_REQUESTED"));
    for kept in ["ttl-old-other", "ttl-old-unlabelled", "ttl-fresh-ours"] {
        assert_eq!(lifecycle(kept).as_deref(), Some("ACTIVE"), "{kept} was touched");
    }
    let deletes: Vec<String> = cloud
        .mutations()
        .into_iter()
        .filter(|m| m.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes, ["DELETE /v3/projects/ttl-old-ours"]);

    // The next run: the deleted project is gone from the clean-up.
    let output = run_reporting(&cloud, &sandbox, &file, &report_path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(read_report(&report_path)["cleanup"]["deleted"], json!([]));
}

#[test]
fn the_shipped_nightly_fleet_converges_on_the_embedded_emulator() {
    let sandbox = Sandbox::new();
    let file = shipped_plan("nightly-test-projects.fleet.json");
    let output = sandbox.run(HARNESS, &["fleet", "run", file.to_str().unwrap(), "--emulator"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let out = stdout(&output);
    assert!(
        out.contains("4 targets: 0 converged, 4 changed, 0 failed"),
        "{out}"
    );
    assert_eq!(out.matches("agent gateway    ").count(), 4, "{out}");
    assert_eq!(out.matches("billing billingAccounts/").count(), 3, "{out}");
}

#[test]
fn fleet_plan_says_a_plan_warning_once_naming_the_targets() {
    let sandbox = Sandbox::new();
    let vars = json!({ "vars": { "pickle_gcs_uri": "gs://agents/agent.pkl", "egress_default_deny": true,
        "agent_uses_vertex_ai": true } });
    let file = fleet_file(&sandbox, "warned", 5, None, vars);
    let output = sandbox.run(HARNESS, &["fleet", "plan", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let err = stderr(&output);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("us-central1-aiplatform.googleapis.com")
            && warnings[0]
                .contains("(targets fleet-existing-1, fleet-existing-2, fleet-existing-3 and 2 more)"),
        "{}",
        warnings[0]
    );
}
