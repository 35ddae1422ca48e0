//! The emulator's configuration: the seeded world (organisations, folders, projects) and the
//! modelling choices Google does not document (delays, in emulated seconds).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything the emulator starts from. Unknown fields in a config file are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Seed for every choice the emulator makes (generated ids, later faults).
    pub seed: u64,
    /// Real seconds per emulated second: 1.0 runs in real time, 0.001 makes a 5-minute deploy
    /// take 300 ms. Tests usually advance the clock through the admin API instead.
    pub time_scale: f64,
    pub delays: Delays,
    pub organizations: Vec<OrganizationConfig>,
    /// Latency added to every API call, in emulated milliseconds (scaled like all time).
    pub latency_ms: f64,
    /// Faults by API service name (`iam.googleapis.com`), or `*` for every API.
    pub faults: BTreeMap<String, FaultConfig>,
    /// Requests per emulated minute per API per project; an API not listed is unlimited.
    pub quotas: BTreeMap<String, u32>,
    /// Service-account keys the OAuth2 token endpoint (`POST /token`) accepts: a JWT-bearer
    /// assertion must be signed by the private half of one of these public keys.
    pub service_account_keys: Vec<ServiceAccountKeyConfig>,
    /// How many API calls the request log keeps (the oldest are dropped first).
    pub request_log_limit: usize,
}

/// The public half of a service-account key, as the token endpoint checks signatures with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountKeyConfig {
    /// The key file's `client_email`, which the assertion names as `iss`.
    pub client_email: String,
    /// The RSA public key as PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
    pub public_key_pem: String,
}

/// The chance (0 to 1) of each fault on one call, drawn from the seeded generator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    pub error_500: f64,
    pub error_503: f64,
    pub error_429: f64,
    /// The connection is closed without an HTTP answer before the call has any effect (the
    /// request is not executed); the client sees a connection error, not a status.
    pub dropped_connection: f64,
    /// The call is executed, then the connection is closed without an HTTP answer: the effect
    /// happened (a create created) but the client sees a connection error.
    pub answer_lost: f64,
    /// A 200 whose body is `{"done":false,"metadata":{}}` instead of the API's answer; the call
    /// is not executed (nothing changes), so a client that takes it for success is wrong.
    pub wrong_body: f64,
    /// A 200 whose body is not JSON (an HTML page); the call is not executed.
    pub non_json_body: f64,
    /// A long-running operation started by the call ends in error (INTERNAL) instead of its
    /// result, and its effect is not left in the world; drawn when the operation is created.
    pub operation_error: f64,
    /// Extra latency, uniform between 0 and this many emulated milliseconds.
    pub extra_latency_ms: f64,
}

/// Durations in emulated seconds. Google documents none of these; they are modelling choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delays {
    /// How long a Service Usage enable operation runs.
    pub enable_operation: f64,
    /// From the enable call until the API answers calls in the project ("takes minutes").
    pub service_usable: f64,
    /// From generateServiceIdentity until the service agents are usable as IAM members.
    pub service_agent: f64,
    /// From setIamPolicy until a new grant takes effect (Google: ~2 minutes, sometimes 7+).
    pub iam_propagation: f64,
    /// How long an agent gateway create / patch / delete operation runs.
    pub gateway_operation: f64,
    /// How long a reasoning engine create / patch / delete operation runs ("a 5-minute deploy").
    pub engine_operation: f64,
    /// How long an Agent Registry service create / patch / delete operation runs.
    pub registry_operation: f64,
    /// From a reasoning engine's deployment until it appears in Agent Registry's agents list.
    pub registry_agent: f64,
    /// From an org policy change until it is enforced (Google: "up to 15 minutes").
    pub policy_propagation: f64,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            enable_operation: 5.0,
            service_usable: 60.0,
            service_agent: 10.0,
            iam_propagation: 120.0,
            gateway_operation: 120.0,
            engine_operation: 300.0,
            registry_operation: 30.0,
            registry_agent: 60.0,
            policy_propagation: 900.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationConfig {
    /// Numeric id, as in `organizations/123456789012`.
    pub id: String,
    #[serde(default)]
    pub folders: Vec<FolderConfig>,
    #[serde(default)]
    pub projects: Vec<ProjectConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderConfig {
    pub id: String,
    #[serde(default)]
    pub projects: Vec<ProjectConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub id: String,
    pub number: u64,
    /// APIs enabled (and usable) from the start.
    #[serde(default)]
    pub enabled_services: Vec<String>,
}

impl Default for EmulatorConfig {
    /// One organisation with one fresh project, `sluice-demo` (number 100000000001), and the
    /// committed test-only service-account key registered for the token endpoint.
    fn default() -> Self {
        EmulatorConfig {
            seed: 1,
            time_scale: 1.0,
            delays: Delays::default(),
            latency_ms: 2.0,
            faults: BTreeMap::new(),
            quotas: BTreeMap::new(),
            service_account_keys: vec![ServiceAccountKeyConfig {
                client_email: crate::test_key::TEST_SERVICE_ACCOUNT_EMAIL.into(),
                public_key_pem: crate::test_key::TEST_SERVICE_ACCOUNT_PUBLIC_KEY_PEM.into(),
            }],
            request_log_limit: 200_000,
            organizations: vec![OrganizationConfig {
                id: "123456789012".into(),
                folders: vec![],
                projects: vec![ProjectConfig {
                    id: "sluice-demo".into(),
                    number: 100_000_000_001,
                    enabled_services: vec![],
                }],
            }],
        }
    }
}
