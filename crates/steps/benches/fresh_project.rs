//! The egress plan on a fresh project against the emulator (faults off, Google-like delays,
//! time scaled): API calls made vs the minimum the steps need, polls per operation, and the
//! makespan vs the critical-path lower bound computed from the emulator's configured delays.
//!
//! `cargo bench -p sluice-steps --bench fresh_project` (prints a report; figures go in
//! BENCHMARKS.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice_emulator::config::Delays;
use sluice_emulator::{Emulator, EmulatorConfig};
use sluice_engine::{
    parse_plan, validate, Engine, EngineConfig, MemoryStore, Registry, RetryPolicy, RunState, Store, VarInput,
};
use sluice_gcp::{ClientOptions, TimeScale};
use sluice_steps::{register, Cloud};

/// Real seconds per emulated second: a 9-minute bootstrap takes about 11 s.
const SCALE: f64 = 0.02;

/// The least calls each step can make on a fresh project: its observe reads, its mutation, and
/// one poll per operation.
const MINIMUM: [(&str, u32, &str); 8] = [
    ("apis", 3, "batchGet, batchEnable, 1 operation poll"),
    ("project", 1, "projects.get"),
    ("service_agents", 2, "getIamPolicy, generateServiceIdentity"),
    ("gateway_role", 2, "roles.get, roles.create"),
    (
        "gateway_role_binding",
        3,
        "getIamPolicy (observe), getIamPolicy + setIamPolicy",
    ),
    (
        "egress_gateway",
        3,
        "agentGateways.list, create, 1 operation poll",
    ),
    ("agent", 3, "reasoningEngines.list, create, 1 :wait"),
    (
        "registration",
        3,
        "agents.list, services.get, 1 look for the automatic registration",
    ),
];

/// The earliest the plan can finish, in emulated seconds, from the configured delays: APIs
/// usable `service_usable` after the enable call; the service agent usable `service_agent`
/// after generateServiceIdentity (which waits for the enable operation); the grant effective
/// `iam_propagation` after it is written (once IAM is usable and the agent exists); the
/// gateway created once Network Services is usable; the deploy started once the gateway exists
/// and the grant is effective; the automatic registration `registry_agent` after the deploy.
fn critical_path(d: &Delays) -> f64 {
    let usable = d.service_usable.max(d.enable_operation);
    let agent_usable = d.enable_operation + d.service_agent;
    let grant_effective = usable.max(agent_usable) + d.iam_propagation;
    let gateway_done = usable + d.gateway_operation;
    let deployed = grant_effective.max(gateway_done) + d.engine_operation;
    deployed + d.registry_agent
}

#[tokio::main]
async fn main() {
    let config = EmulatorConfig {
        time_scale: SCALE,
        ..EmulatorConfig::default()
    };
    let bound = critical_path(&config.delays);
    let time_scale = TimeScale::new(SCALE).unwrap();
    let emulator = Emulator::start(config.clone()).await.unwrap();
    let mut registry = Registry::with_builtins();
    register(
        &mut registry,
        Cloud::new(ClientOptions::emulator(
            emulator.base_url.clone(),
            "bench",
            time_scale,
        )),
    );
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../plans/agent-gateway-egress.json"
    ))
    .unwrap();
    let plan = parse_plan(&text, "agent-gateway-egress.json").unwrap();
    let vars: BTreeMap<String, VarInput> = [
        ("project", "sluice-demo"),
        ("pickle_gcs_uri", "gs://agents/agent.pkl"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), VarInput::Text(v.to_string())))
    .collect();
    let validated = validate(plan, "agent-gateway-egress.json", &registry, &vars).unwrap();
    let base = RetryPolicy::default();
    let scaled = |d: Duration| time_scale.apply(d);
    let engine =
        Engine::new(registry, Arc::new(MemoryStore::new()) as Arc<dyn Store>).with_config(EngineConfig {
            retry: RetryPolicy {
                initial_delay: scaled(base.initial_delay),
                max_delay: scaled(base.max_delay),
                not_yet_window: scaled(base.not_yet_window),
                ..base
            },
            ..EngineConfig::default()
        });
    let start = emulator.state()["nowSeconds"].as_f64().unwrap();
    let run = engine.start(&validated, "agent-gateway-egress.json").unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let summary = engine.execute(&run.run_id, shutdown).await.unwrap();
    let end = emulator.state()["nowSeconds"].as_f64().unwrap();
    assert_eq!(summary.state, RunState::Succeeded, "{:?}", summary.steps);
    let makespan = end - start;

    let log = emulator.requests();
    let calls = log.as_array().unwrap();
    let mut by_status: BTreeMap<u64, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for call in calls {
        *by_status.entry(call["status"].as_u64().unwrap()).or_default() += 1;
        *by_kind
            .entry(kind_of(&call["method"], &call["path"]))
            .or_default() += 1;
    }
    let minimum: u32 = MINIMUM.iter().map(|(_, n, _)| n).sum();
    println!("egress plan, fresh project, faults off, time scale {SCALE}");
    println!("API calls: {} made, {minimum} minimum", calls.len());
    println!("  by answer: {by_status:?}");
    println!("  by call:");
    for (kind, count) in &by_kind {
        println!("    {count:>3}  {kind}");
    }
    println!("  minimum by step:");
    for (step, n, what) in MINIMUM {
        println!("    {n:>3}  {step}: {what}");
    }
    println!("operation polls:");
    for step in &summary.steps {
        if step.polls > 0 {
            println!(
                "    {:>3}  {} (attempts {})",
                step.polls, step.step_id, step.attempts
            );
        }
    }
    println!(
        "makespan: {makespan:.1} emulated s; critical-path lower bound {bound:.1} s; ratio {:.3}",
        makespan / bound
    );
    emulator.shutdown().await.unwrap();
}

/// `METHOD path` with ids folded, e.g. `GET v1/projects/*/roles/*`.
fn kind_of(method: &Value, path: &Value) -> String {
    let path = path.as_str().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    let folded: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .enumerate()
        .map(|(i, seg)| {
            let (name, verb) = seg.split_once(':').map_or((seg, None), |(n, v)| (n, Some(v)));
            let keep = i == 0
                || matches!(
                    name,
                    "projects"
                        | "locations"
                        | "services"
                        | "roles"
                        | "agentGateways"
                        | "reasoningEngines"
                        | "operations"
                        | "agents"
                );
            let name = if keep { name.to_string() } else { "*".to_string() };
            match verb {
                Some(v) => format!("{name}:{v}"),
                None => name,
            }
        })
        .collect();
    format!("{} {}", method.as_str().unwrap_or_default(), folded.join("/"))
}
