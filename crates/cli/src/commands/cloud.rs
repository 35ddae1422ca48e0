//! Where `gcp.*` steps call: Google (application default credentials or a key file), an
//! `--endpoint`, or an emulator embedded in this process (`--emulator`).

use std::collections::BTreeMap;

use sluice_emulator::config::{BillingAccountConfig, FaultConfig, ModelArmorTemplateConfig, ProjectConfig};
use sluice_emulator::{Emulator, EmulatorConfig, EmulatorHandle, WorldSnapshot};
use sluice_engine::RetryPolicy;
use sluice_gcp::{ClientOptions, Credentials, Secret, TimeScale};
use sluice_steps::Cloud;

use crate::args::CloudArgs;
use crate::error::CliError;

/// Real seconds per emulated second in `--emulator` runs: a 5-minute deploy takes 3 s.
pub const DEMO_TIME_SCALE: f64 = 0.01;
/// The embedded emulator's demo world.
pub const DEMO_ORGANIZATION: &str = "123456789012";
pub const DEMO_PROJECT: &str = "sluice-demo";
pub const DEMO_MODEL_ARMOR_PROJECT: &str = "sluice-armor";
/// The Model Armor templates in both demo projects, in us-central1.
pub const DEMO_MODEL_ARMOR_TEMPLATES: [&str; 2] = ["agent-prompts", "agent-responses"];
/// The demo organisation admin's project: the quota project of `fleet run --emulator`, with the
/// client-based APIs a fleet needs (Resource Manager, Cloud Billing, IAM, Service Usage) enabled.
pub const DEMO_ADMIN_PROJECT: &str = "sluice-admin";
/// The demo billing account new projects are linked to (`plans/nightly-test-projects.fleet.json`).
pub const DEMO_BILLING_ACCOUNT: &str = "billingAccounts/01D3A0-5E1B7C-9F2A44";

/// A cloud to run against, and what keeps it alive.
pub struct Target {
    pub cloud: Cloud,
    /// The embedded emulator (`--emulator`); stopped when dropped with the runtime.
    pub emulator: Option<EmulatorHandle>,
    /// Values `--emulator` fills in for variables the plan declares and the command line leaves
    /// out: the demo project and organisation, a package URI, the Model Armor project.
    pub default_vars: BTreeMap<String, String>,
    pub time_scale: TimeScale,
}

/// The embedded emulator's world: the demo organisation with a fresh project and a Model Armor
/// project, time 100× faster than real, and 1 % of calls failing with 503 or 429.
pub fn demo_emulator_config() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        seed: 2026,
        time_scale: DEMO_TIME_SCALE,
        ..EmulatorConfig::default()
    };
    // An organisation admin's project: Org Policy calls are made with it enabled.
    config.organizations[0].projects[0].enabled_services = vec!["orgpolicy.googleapis.com".into()];
    config.organizations[0].projects.push(ProjectConfig {
        id: DEMO_MODEL_ARMOR_PROJECT.into(),
        number: 100_000_000_002,
        enabled_services: vec![],
    });
    config.organizations[0].projects.push(ProjectConfig::new(
        DEMO_ADMIN_PROJECT,
        100_000_000_009,
        &[
            "cloudresourcemanager.googleapis.com",
            "cloudbilling.googleapis.com",
            "iam.googleapis.com",
            "serviceusage.googleapis.com",
            "orgpolicy.googleapis.com",
        ],
    ));
    // Model Armor templates to try the governed gateway with (`--var model_armor_template=…`).
    for project in [DEMO_PROJECT, DEMO_MODEL_ARMOR_PROJECT] {
        for template in DEMO_MODEL_ARMOR_TEMPLATES {
            config.model_armor_templates.push(ModelArmorTemplateConfig {
                project: project.into(),
                location: "us-central1".into(),
                template_id: template.into(),
                labels: BTreeMap::new(),
                filter_config: None,
            });
        }
    }
    config.billing_accounts.push(BillingAccountConfig {
        name: DEMO_BILLING_ACCOUNT.into(),
        open: true,
        max_projects: None,
        display_name: "Sluice demo billing".into(),
    });
    config.faults.insert(
        "*".into(),
        FaultConfig {
            error_503: 0.005,
            error_429: 0.005,
            ..FaultConfig::default()
        },
    );
    config
}

/// Where `args` say to call. An embedded emulator starts from `world` when given (the world an
/// earlier `--emulator` run kept beside the store), else from the demo world.
pub async fn target(args: &CloudArgs, world: Option<WorldSnapshot>) -> Result<Target, CliError> {
    target_from(args, &BTreeMap::new(), world).await
}

/// [`target`], with client-side rate limits (requests per minute by API service) shared by
/// every call of the process.
pub async fn target_with_limits(
    args: &CloudArgs,
    rate_limits: &BTreeMap<String, u32>,
) -> Result<Target, CliError> {
    target_from(args, rate_limits, None).await
}

async fn target_from(
    args: &CloudArgs,
    rate_limits: &BTreeMap<String, u32>,
    world: Option<WorldSnapshot>,
) -> Result<Target, CliError> {
    if args.emulator {
        let started = match world {
            Some(world) => Emulator::start_from(demo_emulator_config(), world).await,
            None => Emulator::start(demo_emulator_config()).await,
        };
        let emulator = started.map_err(|error| {
            CliError::failed(format!(
                "cannot start the embedded emulator on 127.0.0.1: {error}"
            ))
        })?;
        errln!(
            "embedded Google Cloud emulator at {} (organization {DEMO_ORGANIZATION}, project {DEMO_PROJECT}; \
             time runs {}x faster)",
            emulator.base_url,
            (1.0 / DEMO_TIME_SCALE).round()
        );
        let time_scale = demo_time_scale();
        let options = ClientOptions {
            rate_limits: rate_limits.clone(),
            quota_project: args.quota_project.clone(),
            ..ClientOptions::emulator(emulator.base_url.clone(), "sluice-emulator", time_scale)
        };
        let default_vars = BTreeMap::from([
            ("project".to_string(), DEMO_PROJECT.to_string()),
            ("organization".to_string(), DEMO_ORGANIZATION.to_string()),
            ("policy_parent".to_string(), format!("projects/{DEMO_PROJECT}")),
            (
                "pickle_gcs_uri".to_string(),
                "gs://sluice-demo-agents/agent.pkl".to_string(),
            ),
            (
                "model_armor_project".to_string(),
                DEMO_MODEL_ARMOR_PROJECT.to_string(),
            ),
        ]);
        return Ok(Target {
            cloud: Cloud::new(options),
            emulator: Some(emulator),
            default_vars,
            time_scale,
        });
    }
    let credentials = match (&args.access_token, &args.credentials) {
        (Some(token), _) => Credentials::StaticToken(Secret::new(token.clone())),
        (None, Some(path)) => {
            if !path.is_file() {
                return Err(
                    CliError::bad_input(format!("--credentials {}: no such file", path.display()))
                        .with_hint("give a Google credentials file (JSON)"),
                );
            }
            Credentials::KeyFile(path.clone())
        }
        (None, None) => Credentials::ApplicationDefault,
    };
    if let Some(endpoint) = &args.endpoint {
        sluice_gcp::check_endpoint(endpoint)
            .map_err(|error| CliError::bad_input(format!("--endpoint: {error}")))?;
    }
    let Ok(time_scale) = TimeScale::new(args.time_scale) else {
        return Err(CliError::bad_input(format!(
            "--time-scale must be a positive number, got {}",
            args.time_scale
        )));
    };
    let options = ClientOptions {
        endpoint: args.endpoint.clone(),
        credentials,
        quota_project: args.quota_project.clone(),
        impersonate_service_account: args.impersonate_service_account.clone(),
        time_scale,
        rate_limits: rate_limits.clone(),
        ..ClientOptions::default()
    };
    Ok(Target {
        cloud: Cloud::new(options),
        emulator: None,
        default_vars: BTreeMap::new(),
        time_scale,
    })
}

/// When the plan has `gcp.*` steps, builds the client now (credentials found and parsed) and
/// gets a first token, before any store is opened or run started. Credentials that are missing,
/// unusable or refused by the token endpoint (the server's reason in the message), and a server
/// certificate that is not trusted, are bad input (exit 2). A token endpoint still failing
/// after retries (5xx, 429, no answer) is a failed run (exit 1): trying later may work.
pub async fn check_credentials(target: &Target, plan: &sluice_engine::Plan) -> Result<(), CliError> {
    if !plan.steps.iter().any(|s| s.kind.starts_with("gcp.")) {
        return Ok(());
    }
    let client = target
        .cloud
        .client()
        .await
        .map_err(|error| CliError::bad_input(error.message()))?;
    client.authenticate().await.map_err(|error| {
        if error.is_retryable() {
            CliError::failed(format!("cannot get an access token: {error}"))
        } else {
            CliError::bad_input(format!("the credentials cannot be used: {error}"))
        }
    })
}

/// [`DEMO_TIME_SCALE`] as a time scale.
fn demo_time_scale() -> TimeScale {
    TimeScale::new(DEMO_TIME_SCALE).unwrap_or_default()
}

/// Retries as the engine's default, with every delay on the target's clock.
pub fn retry_policy(time_scale: TimeScale) -> RetryPolicy {
    let base = RetryPolicy::default();
    RetryPolicy {
        initial_delay: time_scale.apply(base.initial_delay),
        max_delay: time_scale.apply(base.max_delay),
        not_yet_window: time_scale.apply(base.not_yet_window),
        ..base
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_retry_policy_runs_on_the_targets_clock() {
        assert_eq!(
            demo_time_scale().factor(),
            DEMO_TIME_SCALE,
            "the demo scale is valid"
        );
        let base = RetryPolicy::default();
        let fast = retry_policy(TimeScale::new(0.001).unwrap());
        assert_eq!(fast.max_delay, base.max_delay / 1000);
        assert_eq!(fast.not_yet_window, Duration::from_millis(900));
        assert_eq!(fast.max_attempts, base.max_attempts, "only delays are scaled");
        assert_eq!(retry_policy(TimeScale::REAL), base);
    }
}
