//! Every shipped Google Cloud plan converges when 10 % of calls fail (429, 503 and dropped
//! connections, seeded), and the world holds one of everything. Runs go one step at a time so
//! each seed meets the same faults every time; the seeds are ones whose fault stream hits early
//! (each test asserts that faults were met).

mod support;

use sluice_emulator::config::FaultConfig;
use sluice_tests::{status_json, stderr, stdout, Sandbox};
use support::{faulty, Cloud, EGRESS_VARS};

fn ten_percent() -> FaultConfig {
    FaultConfig {
        error_429: 0.04,
        error_503: 0.04,
        dropped_connection: 0.02,
        ..FaultConfig::default()
    }
}

/// Runs `plan` one step at a time, so the calls (and the seeded faults they meet) come in the
/// same order every time.
fn converges(seed: u64, plan: &str, vars: &[&str]) -> Cloud {
    let cloud = Cloud::start_with(faulty(seed, ten_percent()));
    let sandbox = Sandbox::new();
    let output = cloud
        .command(&sandbox, "run", plan, vars)
        .args(["--concurrency", "1"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "seed {seed}, {plan}:\n{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let log = cloud.emulator.requests();
    let failed = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| matches!(e["status"].as_u64(), Some(0 | 429 | 503)))
        .count();
    let statuses: std::collections::BTreeMap<u64, usize> =
        log.as_array()
            .unwrap()
            .iter()
            .fold(Default::default(), |mut m, e| {
                *m.entry(e["status"].as_u64().unwrap()).or_default() += 1;
                m
            });
    assert!(failed > 0, "seed {seed}: some calls met a fault: {statuses:?}");
    cloud
}

#[test]
fn the_agent_plans_converge_with_ten_percent_faults() {
    for seed in [1, 2, 8] {
        let cloud = converges(seed, "agent-gateway-egress.json", &EGRESS_VARS);
        let state = cloud.state();
        assert_eq!(
            state["reasoningEngines"].as_array().unwrap().len(),
            1,
            "seed {seed}"
        );
        assert_eq!(state["agentGateways"].as_array().unwrap().len(), 1, "seed {seed}");
    }
    let cloud = converges(10, "agent-gateway-ingress.json", &EGRESS_VARS);
    assert_eq!(cloud.state()["reasoningEngines"].as_array().unwrap().len(), 1);
    let both = [
        "project=sluice-demo",
        "pickle_gcs_uri=gs://agents/agent.pkl",
        "model_armor_project=sluice-armor",
    ];
    let cloud = converges(6, "agent-gateway-both.json", &both);
    let state = cloud.state();
    assert_eq!(state["reasoningEngines"].as_array().unwrap().len(), 1);
    assert_eq!(state["agentGateways"].as_array().unwrap().len(), 2);
}

#[test]
fn the_policy_plan_converges_with_ten_percent_faults() {
    // Seeds whose call sequence meets faults (checked by the assertion below).
    const SEEDS: [u64; 3] = [6, 10, 14];
    let vars = [
        "project=sluice-demo",
        "organization=123456789012",
        "policy_parent=projects/sluice-demo",
        "egress_gateways=projects/sluice-demo/locations/us-central1/agentGateways/agent-egress",
        "ingress=true",
    ];
    for seed in SEEDS {
        let cloud = converges(seed, "approved-gateways-policy.json", &vars);
        assert_eq!(
            cloud.state()["orgPolicy"]["policies"].as_array().unwrap().len(),
            2
        );
    }
}

/// IAM and Resource Manager answer some calls with a 200 whose body is `{"done":false,
/// "metadata":{}}`, without executing them. A run either converges with the role
/// and the binding truly in the emulator, or fails; it never says succeeded without them.
#[test]
fn a_200_with_the_wrong_body_from_iam_never_counts_as_success() {
    let wrong = FaultConfig {
        wrong_body: 0.3,
        ..FaultConfig::default()
    };
    let role = "projects/sluice-demo/roles/agentGatewayUser";
    let agent = "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com";
    let (mut bad_answers, mut converged) = (0, 0);
    for seed in [1, 2, 3] {
        let mut config = support::config();
        config.seed = seed;
        for api in ["iam.googleapis.com", "cloudresourcemanager.googleapis.com"] {
            config.faults.insert(api.into(), wrong.clone());
        }
        let cloud = Cloud::start_with(config);
        let sandbox = Sandbox::new();
        let output = cloud
            .command(&sandbox, "run", "agent-gateway-egress.json", &EGRESS_VARS)
            .args(["--concurrency", "1"])
            .env("SLUICE_LOG", "error,sluice_gcp=debug")
            .output()
            .unwrap();
        bad_answers += stderr(&output).matches("BAD_RESPONSE").count();
        let state = cloud.state();
        let role_present = state["iamRoles"][role].is_object() && state["iamRoles"][role]["deleted"] == false;
        let report = status_json(&sandbox, support::HARNESS, None);
        let said_succeeded = |step: &str| {
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"] == step && s["state"] == "succeeded")
        };
        if said_succeeded("gateway_role") {
            assert!(
                role_present,
                "seed {seed}: `gateway_role` succeeded without the role\n{report}"
            );
        }
        if said_succeeded("gateway_role_binding") {
            assert!(
                cloud.holds("sluice-demo", role, agent),
                "seed {seed}: `gateway_role_binding` succeeded without the binding\n{report}"
            );
        }
        if output.status.success() {
            converged += 1;
        } else {
            assert_eq!(output.status.code(), Some(1), "seed {seed}: {}", stderr(&output));
        }
    }
    assert!(bad_answers > 0, "the runs met wrong bodies");
    assert!(
        converged > 0,
        "a wrong body is retried: some runs converge despite it"
    );
}

/// Every API answers 10 % of calls with `{"done":false,"metadata":{}}` (unexecuted): a run that
/// says succeeded has its gateway, engine and binding in the emulator.
#[test]
fn a_200_with_the_wrong_body_from_any_api_never_counts_as_success() {
    let wrong = FaultConfig {
        wrong_body: 0.1,
        ..FaultConfig::default()
    };
    let mut converged = 0;
    for seed in [1, 2] {
        let cloud = Cloud::start_with(faulty(seed, wrong.clone()));
        let sandbox = Sandbox::new();
        let output = cloud
            .command(&sandbox, "run", "agent-gateway-egress.json", &EGRESS_VARS)
            .args(["--concurrency", "1"])
            .output()
            .unwrap();
        if !output.status.success() {
            assert_eq!(output.status.code(), Some(1), "seed {seed}: {}", stderr(&output));
            continue;
        }
        converged += 1;
        let state = cloud.state();
        assert_eq!(state["agentGateways"].as_array().unwrap().len(), 1, "seed {seed}");
        assert_eq!(
            state["reasoningEngines"].as_array().unwrap().len(),
            1,
            "seed {seed}"
        );
        assert!(cloud.holds(
            "sluice-demo",
            "projects/sluice-demo/roles/agentGatewayUser",
            "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com"
        ));
    }
    assert!(
        converged > 0,
        "wrong bodies are retried: runs converge despite them"
    );
}
