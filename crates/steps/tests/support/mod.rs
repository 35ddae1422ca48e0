//! Runs plans of `gcp.*` steps in-process against the emulator (time scaled 1,000×), and reads
//! the emulator's request log.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sluice_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use sluice_engine::{
    parse_plan, validate, Engine, EngineConfig, MemoryStore, Registry, RetryPolicy, RunState, RunSummary,
    Store, VarInput,
};
use sluice_gcp::{ClientOptions, TimeScale};
use sluice_steps::{register, Cloud};

/// Real seconds per emulated second in these tests.
pub const SCALE: f64 = 0.001;

pub struct World {
    pub emulator: EmulatorHandle,
    pub http: reqwest::Client,
    pub registry: Registry,
    pub store: Arc<MemoryStore>,
}

/// The demo organisation (123456789012) with project `sluice-demo` (100000000001) and a
/// Model Armor project `sluice-armor` (100000000002), nothing enabled, time scaled.
pub fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        time_scale: SCALE,
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    };
    config.organizations[0]
        .projects
        .push(sluice_emulator::config::ProjectConfig {
            id: "sluice-armor".into(),
            number: 100_000_000_002,
            enabled_services: vec![],
        });
    config
}

impl World {
    pub async fn start(config: EmulatorConfig) -> World {
        let scale = config.time_scale;
        let emulator = Emulator::start(config).await.unwrap();
        let mut options = ClientOptions::emulator(
            emulator.base_url.clone(),
            "test-token",
            TimeScale::new(scale).unwrap(),
        );
        options.retry.max_attempts = 10;
        let mut registry = Registry::with_builtins();
        register(&mut registry, Cloud::new(options));
        World {
            emulator,
            http: reqwest::Client::new(),
            registry,
            store: Arc::new(MemoryStore::new()),
        }
    }

    pub fn engine(&self) -> Engine {
        let config = EngineConfig {
            retry: RetryPolicy {
                max_attempts: 20,
                initial_delay: scaled(Duration::from_millis(500)),
                max_delay: scaled(Duration::from_secs(30)),
                jitter: 0.0,
                not_yet_window: scaled(Duration::from_secs(3600)),
                ..RetryPolicy::default()
            },
            ..EngineConfig::default()
        };
        Engine::new(self.registry.clone(), self.store.clone() as Arc<dyn Store>).with_config(config)
    }

    /// Validates and runs `plan` with `vars` to its end.
    pub async fn run(&self, plan: &Value, vars: &[(&str, Value)]) -> RunSummary {
        let plan = parse_plan(&plan.to_string(), "plan.json").unwrap();
        let given: BTreeMap<String, VarInput> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), VarInput::Json(v.clone())))
            .collect();
        let validated =
            validate(plan, "plan.json", &self.registry, &given).unwrap_or_else(|p| panic!("{p:?}"));
        let engine = self.engine();
        let run = engine.start(&validated, "plan.json").unwrap();
        let (_stop, shutdown) = tokio::sync::watch::channel(false);
        engine.execute(&run.run_id, shutdown).await.unwrap()
    }

    pub async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_emulator/{path}", self.emulator.base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every logged API call as (method, path, status).
    pub async fn requests(&self) -> Vec<(String, String, u64)> {
        self.admin("requests")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["method"].as_str().unwrap().to_string(),
                    e["path"].as_str().unwrap().to_string(),
                    e["status"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// The calls that change something (reads, getIamPolicy and long polls left out).
    pub async fn mutations(&self) -> Vec<(String, String, u64)> {
        self.requests()
            .await
            .into_iter()
            .filter(|(m, p, _)| is_mutation(m, p))
            .collect()
    }

    /// A call to an API of the emulator, as the test's own client (not the steps').
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.emulator.base_url))
            .bearer_auth("test-token");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

pub fn is_mutation(method: &str, path: &str) -> bool {
    method != "GET" && !path.ends_with(":getIamPolicy") && !path.ends_with(":wait") && path != "/token"
}

/// Panics with every step's error unless the run succeeded.
pub fn assert_succeeded(summary: &RunSummary) {
    if summary.state != RunState::Succeeded {
        let problems: Vec<String> = summary
            .steps
            .iter()
            .map(|s| format!("{}: {} {:?} {:?}", s.step_id, s.state().as_str(), s.error, s.note))
            .collect();
        panic!("run {:?}:\n{}", summary.state, problems.join("\n"));
    }
}

pub fn outputs<'a>(summary: &'a RunSummary, step: &str) -> &'a BTreeMap<String, Value> {
    &summary.steps.iter().find(|s| s.step_id == step).unwrap().outputs
}

/// A wait on the emulator's clock, in real time (the one scaling, `TimeScale::apply`).
fn scaled(wait: Duration) -> Duration {
    TimeScale::new(SCALE).unwrap().apply(wait)
}
