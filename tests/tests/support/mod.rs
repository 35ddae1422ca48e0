//! An emulator on its own runtime for end-to-end tests of the `sluice` binary, and how to call
//! the binary against it.

#![allow(dead_code)]

pub mod crash;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sluice_emulator::config::{FaultConfig, ModelArmorTemplateConfig, ProjectConfig};
use sluice_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use sluice_tests::{stderr, stdout, Sandbox};

pub const HARNESS: &str = env!("CARGO_BIN_EXE_sluice-harness");
pub const SCALE: f64 = 0.001;

pub const EGRESS_VARS: [&str; 2] = ["project=sluice-demo", "pickle_gcs_uri=gs://agents/agent.pkl"];

/// The Model Armor templates `config()` holds in both `sluice-demo` and `sluice-armor`, in
/// us-central1.
pub const TEMPLATES: [&str; 2] = ["agent-prompts", "agent-responses"];

/// Model Armor's API, enabled in the Model Armor project `sluice-armor`.
pub const MODEL_ARMOR_API: &str = "modelarmor.googleapis.com";

/// The emulator the tests use: the demo organisation, `sluice-demo` (Org Policy enabled, for an
/// admin) and a Model Armor project `sluice-armor` ([`MODEL_ARMOR_API`] enabled), each holding
/// the [`TEMPLATES`], time scaled 1,000×.
pub fn config() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        time_scale: SCALE,
        ..EmulatorConfig::default()
    };
    config.organizations[0].projects[0].enabled_services = vec!["orgpolicy.googleapis.com".into()];
    config.organizations[0].projects.push(ProjectConfig {
        id: "sluice-armor".into(),
        number: 100_000_000_002,
        enabled_services: vec![MODEL_ARMOR_API.into()],
    });
    for project in ["sluice-demo", "sluice-armor"] {
        for template in TEMPLATES {
            config.model_armor_templates.push(ModelArmorTemplateConfig {
                project: project.into(),
                location: "us-central1".into(),
                template_id: template.into(),
                labels: Default::default(),
                filter_config: None,
            });
        }
    }
    config
}

/// `config()` with [`MODEL_ARMOR_API`] enabled in `sluice-demo` too, as where its own
/// [`TEMPLATES`] are used it must be (a plan reads them before enabling anything).
pub fn config_with_model_armor_in_the_agent_project() -> EmulatorConfig {
    let mut config = config();
    let demo = &mut config.organizations[0].projects[0];
    assert_eq!(demo.id, "sluice-demo");
    demo.enabled_services.push(MODEL_ARMOR_API.into());
    config
}

/// `config()` with `fault` on every API.
pub fn faulty(seed: u64, fault: FaultConfig) -> EmulatorConfig {
    let mut config = config();
    config.seed = seed;
    config.faults.insert("*".into(), fault);
    config
}

/// An emulator on its own runtime, outliving the CLI processes that call it.
pub struct Cloud {
    pub emulator: EmulatorHandle,
    runtime: tokio::runtime::Runtime,
}

impl Cloud {
    pub fn start() -> Cloud {
        Self::start_with(config())
    }

    pub fn start_with(config: EmulatorConfig) -> Cloud {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let emulator = runtime.block_on(Emulator::start(config)).unwrap();
        Cloud { emulator, runtime }
    }

    /// `sluice COMMAND plans/PLAN --var …` against this emulator, in `sandbox`'s store.
    pub fn command(&self, sandbox: &Sandbox, command: &str, plan: &str, vars: &[&str]) -> Command {
        self.command_at(sandbox, command, &shipped_plan(plan), vars)
    }

    /// `sluice COMMAND PLAN --var …` with a plan file at any path; a `run` is given
    /// `--auto-approve`, as a job that is not on a terminal must be.
    pub fn command_at(&self, sandbox: &Sandbox, command: &str, plan: &Path, vars: &[&str]) -> Command {
        let mut args = vec![command.to_string()];
        if command == "run" {
            args.push("--auto-approve".into());
        }
        args.push(plan.display().to_string());
        args.extend(self.target_args());
        for var in vars {
            args.extend(["--var".to_string(), var.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sandbox.command(HARNESS, &args)
    }

    /// The flags that point a command at this emulator.
    pub fn target_args(&self) -> [String; 6] {
        [
            "--endpoint".into(),
            self.emulator.base_url.clone(),
            "--access-token".into(),
            "test-token".into(),
            "--time-scale".into(),
            SCALE.to_string(),
        ]
    }

    /// `sluice resume RUN` against this emulator.
    pub fn resume(&self, sandbox: &Sandbox, run: &str) -> Output {
        let target = self.target_args();
        let mut args = vec!["resume", run];
        args.extend(target.iter().map(String::as_str));
        sandbox.run(HARNESS, &args)
    }

    pub fn sluice(&self, sandbox: &Sandbox, command: &str, plan: &str, vars: &[&str]) -> Output {
        self.command(sandbox, command, plan, vars)
            .output()
            .expect("harness runs")
    }

    /// Calls that change something: not GET, getIamPolicy or a long poll.
    pub fn mutations(&self) -> Vec<String> {
        self.emulator
            .requests()
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                let (method, path) = (e["method"].as_str().unwrap(), e["path"].as_str().unwrap());
                method != "GET" && !path.ends_with(":getIamPolicy") && !path.ends_with(":wait")
            })
            .map(|e| {
                format!(
                    "{} {}",
                    e["method"].as_str().unwrap(),
                    e["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    pub fn state(&self) -> Value {
        self.emulator.state()
    }

    /// A call to the emulator (an API or `_emulator/…`) as the test's own client: the status
    /// and the JSON answer.
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/{path}", self.emulator.base_url);
        self.runtime.block_on(async {
            let mut request = reqwest::Client::new()
                .request(method, url)
                .bearer_auth("test-token");
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("the emulator answers");
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        })
    }

    /// Whether `member` holds `role` in project `project`'s policy.
    pub fn holds(&self, project: &str, role: &str, member: &str) -> bool {
        let state = self.state();
        state["projects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["id"] == project)
            .flat_map(|p| p["iamGrants"].as_array().unwrap().iter())
            .any(|g| g["role"] == role && g["member"] == member)
    }
}

/// plan → nothing mutated and every step listed; run → converged; run again → no mutation.
pub fn converges_and_reruns_without_mutation(plan: &str, vars: &[&str], creates: &[&str]) -> Cloud {
    converges_and_reruns_without_mutation_in(config(), plan, vars, creates)
}

/// [`converges_and_reruns_without_mutation`] in an emulator of `config`.
pub fn converges_and_reruns_without_mutation_in(
    config: EmulatorConfig,
    plan: &str,
    vars: &[&str],
    creates: &[&str],
) -> Cloud {
    let cloud = Cloud::start_with(config);
    let sandbox = Sandbox::new();
    let preview = cloud.sluice(&sandbox, "plan", plan, vars);
    assert!(
        preview.status.success(),
        "{}\n{}",
        stdout(&preview),
        stderr(&preview)
    );
    assert_listed(&stdout(&preview), "+", creates);
    assert_eq!(cloud.mutations(), Vec::<String>::new(), "plan mutates nothing");

    let first = cloud.sluice(&sandbox, "run", plan, vars);
    assert!(first.status.success(), "{}\n{}", stdout(&first), stderr(&first));
    let made = cloud.mutations().len();
    assert!(made > 0);
    let again = cloud.sluice(&sandbox, "run", plan, vars);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        cloud.mutations()[made..],
        [] as [String; 0],
        "a second run only reads"
    );
    cloud
}

/// `sluice plan`'s listing `text` shows each of `steps` with `mark` (`+` create, `/` skipped,
/// `?` known later).
pub fn assert_listed(text: &str, mark: &str, steps: &[&str]) {
    for step in steps {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{mark} {step} "))),
            "`{step}` listed with `{mark}`:\n{text}"
        );
    }
}

/// The ids of the runs in `sandbox`'s store (`sluice runs --json`).
pub fn run_ids(sandbox: &Sandbox) -> Vec<String> {
    let output = sandbox.run(HARNESS, &["runs", "--json"]);
    let runs: Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    runs.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect()
}

/// The path of a shipped plan (`plans/NAME`).
pub fn shipped_plan(name: &str) -> PathBuf {
    PathBuf::from(format!("{}/../plans/{name}", env!("CARGO_MANIFEST_DIR")))
}

pub fn names(state: &Value, key: &str) -> Vec<String> {
    state[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}
