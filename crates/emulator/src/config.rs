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
    /// Faults by API service name (`iam.googleapis.com`), or `*` for every API. The token
    /// endpoints meet faults only when named: `oauth2.googleapis.com` (`POST /token`) and
    /// `sts.googleapis.com` (`POST /v1/token`).
    pub faults: BTreeMap<String, FaultConfig>,
    /// Requests per emulated minute per API per project (the caller's quota project for a
    /// client-based API, see `api_kinds`); an API not listed is unlimited.
    pub quotas: BTreeMap<String, u32>,
    /// Requests per emulated minute per API per caller: the principal the call's token was
    /// issued to (`NAME@PROJECT.iam.gserviceaccount.com`, `user:CLIENT_ID`,
    /// `serviceAccount:EMAIL`, `principal:AUDIENCE`), or for a token the emulator did not issue
    /// (any bearer token is accepted) `token:` and the first 12 hex digits of its SHA-256. Counted
    /// as well as `quotas`: a call needs room in both. An API not listed is unlimited per caller.
    pub caller_quotas: BTreeMap<String, u32>,
    /// Service-account keys the OAuth2 token endpoint (`POST /token`) accepts: a JWT-bearer
    /// assertion must be signed by the private half of one of these public keys.
    pub service_account_keys: Vec<ServiceAccountKeyConfig>,
    /// gcloud user credentials (`authorized_user` files) the token endpoint accepts for the
    /// refresh-token grant.
    pub authorized_users: Vec<AuthorizedUserConfig>,
    /// Subject tokens the STS endpoint (`POST /v1/token`) accepts in a token exchange (what a
    /// Workload Identity pool would trust: a platform's OIDC token, for instance).
    pub sts_subject_tokens: Vec<String>,
    /// How many API calls the request log keeps (the oldest are dropped first).
    pub request_log_limit: usize,
    /// Which project each API's enablement is checked in, by service name: the project the call
    /// targets (`resource_based`), or the caller's quota project (`client_based`). An API not
    /// listed is resource-based. A config that sets this map replaces the defaults whole.
    ///
    /// Defaults follow Google. "About the quota project"
    /// (<https://cloud.google.com/docs/quotas/quota-project>): for a *resource-based* API the
    /// quota project is the project holding the resource and cannot be changed; an API that is
    /// not resource-based is *client-based*, and its quota project is, in order, the one named
    /// in the request (`x-goog-user-project`), the API key's project, or the project of the
    /// service account making the call ("Set the quota project",
    /// <https://cloud.google.com/docs/quotas/set-quota-project>). Google publishes no list of
    /// which APIs are which, so the client-based defaults rest on reports of calls refused with
    /// SERVICE_DISABLED or a missing quota project for the caller's project rather than the
    /// target: Cloud Resource Manager (jpassing.com, "Which project's quota are my API calls
    /// charged against?", 2022, names it non-resource-oriented;
    /// hashicorp/terraform-provider-google#11435), Org Policy (pulumi/pulumi-gcp#2032, which
    /// needs a quota project for an org policy on a project), and IAM's role management
    /// (`iam.googleapis.com`, as issue 8 lists it; the same jpassing.com article calls the IAM
    /// API resource-oriented, so this default is the least certain and is configurable). Service
    /// Usage is client-based too, but every project is modelled with it enabled (Google enables
    /// it in new projects), so its calls are never refused for enablement; its quota is charged
    /// to the quota project. Vertex AI, Network Services, Network Security, Model Armor and Agent
    /// Registry are resource-based
    /// (their resources live in the project the path names).
    pub api_kinds: BTreeMap<String, ApiKind>,
    /// The quota project of a call to a client-based API that names none (`x-goog-user-project`)
    /// and whose token was not issued by `POST /token` to a service account of a project in the
    /// world. `None`: the project the call targets. A modelling choice: Google would refuse the
    /// call, or use the gcloud CLI's shared project.
    pub default_quota_project: Option<String>,
    /// Project ids that exist elsewhere in Google Cloud, outside this world: creating one is
    /// refused (409 ALREADY_EXISTS) and reading one is refused as for any project the caller
    /// cannot see (403 PERMISSION_DENIED). Project ids are global and never reused.
    pub taken_project_ids: Vec<String>,
    /// Labels, creation time and display name of configured projects, by project id.
    pub project_metadata: BTreeMap<String, ProjectMetadataConfig>,
    /// Cloud Billing accounts (`projects.updateBillingInfo` links projects to them).
    pub billing_accounts: Vec<BillingAccountConfig>,
    /// Model Armor templates that exist (`GET v1/projects/{p}/locations/{l}/templates/{t}`
    /// finds them; any other is NOT_FOUND). Model Armor has no create here: tests seed them.
    pub model_armor_templates: Vec<ModelArmorTemplateConfig>,
}

/// A Model Armor template (Google's REST reference, `projects.locations.templates`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArmorTemplateConfig {
    /// The project id (or number) holding the template.
    pub project: String,
    /// The region, as in `modelarmor.{location}.rep.googleapis.com`.
    pub location: String,
    pub template_id: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The template's `filterConfig` as Google shows it; `{}` when absent.
    #[serde(default)]
    pub filter_config: Option<serde_json::Value>,
}

/// A Cloud Billing account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingAccountConfig {
    /// `billingAccounts/XXXXXX-XXXXXX-XXXXXX`.
    pub name: String,
    /// A closed account takes no new projects (linking is 400 FAILED_PRECONDITION).
    #[serde(default = "default_true")]
    pub open: bool,
    /// How many projects the account may hold (Google gives new accounts a small limit); over
    /// it, linking is 400 FAILED_PRECONDITION. `None`: no limit.
    #[serde(default)]
    pub max_projects: Option<u32>,
    #[serde(default)]
    pub display_name: String,
}

fn default_true() -> bool {
    true
}

/// Where Google checks that an API is enabled for a call (see [`EmulatorConfig::api_kinds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    /// In the project holding the resource the call is about.
    ResourceBased,
    /// In the caller's quota project.
    ClientBased,
}

impl EmulatorConfig {
    /// How `service` is checked for enablement: client-based only when configured so.
    pub fn api_kind(&self, service: &str) -> ApiKind {
        self.api_kinds
            .get(service)
            .copied()
            .unwrap_or(ApiKind::ResourceBased)
    }
}

/// Google's classification of the APIs the emulator serves (sources on
/// [`EmulatorConfig::api_kinds`]).
pub fn default_api_kinds() -> BTreeMap<String, ApiKind> {
    [
        ("cloudresourcemanager.googleapis.com", ApiKind::ClientBased),
        ("cloudbilling.googleapis.com", ApiKind::ClientBased),
        ("iam.googleapis.com", ApiKind::ClientBased),
        ("orgpolicy.googleapis.com", ApiKind::ClientBased),
        ("serviceusage.googleapis.com", ApiKind::ClientBased),
        ("aiplatform.googleapis.com", ApiKind::ResourceBased),
        ("networkservices.googleapis.com", ApiKind::ResourceBased),
        ("agentregistry.googleapis.com", ApiKind::ResourceBased),
        ("networksecurity.googleapis.com", ApiKind::ResourceBased),
        ("modelarmor.googleapis.com", ApiKind::ResourceBased),
    ]
    .into_iter()
    .map(|(service, kind)| (service.to_string(), kind))
    .collect()
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

/// An OAuth client and a refresh token issued to a user through it (gcloud's
/// `application_default_credentials.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizedUserConfig {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
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
    /// How long an authorization extension or policy create / patch / delete operation runs.
    pub authz_operation: f64,
    /// How long a reasoning engine create / patch / delete operation runs ("a 5-minute deploy").
    pub engine_operation: f64,
    /// How long an Agent Registry service create / patch / delete operation runs.
    pub registry_operation: f64,
    /// From a reasoning engine's deployment until it appears in Agent Registry's agents list.
    pub registry_agent: f64,
    /// From an org policy change until it is enforced (Google: "up to 15 minutes").
    pub policy_propagation: f64,
    /// How long a Resource Manager project create / delete / undelete operation runs.
    pub project_create: f64,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            enable_operation: 5.0,
            service_usable: 60.0,
            service_agent: 10.0,
            iam_propagation: 120.0,
            gateway_operation: 120.0,
            authz_operation: 60.0,
            engine_operation: 300.0,
            registry_operation: 30.0,
            registry_agent: 60.0,
            policy_propagation: 900.0,
            project_create: 10.0,
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
    /// Projects that may be created under the organisation (and its folders) per emulated
    /// minute; over it, `projects.create` is 429 RESOURCE_EXHAUSTED. `None`: unlimited.
    #[serde(default)]
    pub project_creation_per_minute: Option<u32>,
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

/// What a configured project shows besides its id and number (Resource Manager v3's Project).
/// Kept apart from [`ProjectConfig`] so that configs written before it stay valid Rust and JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectMetadataConfig {
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 (`2025-06-01T00:00:00Z`), to seed an old project. Default:
    /// 2026-01-01T00:00:00Z.
    pub create_time: Option<String>,
    /// Default: the id.
    pub display_name: Option<String>,
}

impl ProjectConfig {
    /// A project with just an id, a number and its enabled services.
    pub fn new(id: &str, number: u64, enabled_services: &[&str]) -> Self {
        ProjectConfig {
            id: id.into(),
            number,
            enabled_services: enabled_services.iter().map(|s| s.to_string()).collect(),
        }
    }
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
            caller_quotas: BTreeMap::new(),
            service_account_keys: vec![ServiceAccountKeyConfig {
                client_email: crate::test_key::TEST_SERVICE_ACCOUNT_EMAIL.into(),
                public_key_pem: crate::test_key::TEST_SERVICE_ACCOUNT_PUBLIC_KEY_PEM.into(),
            }],
            authorized_users: vec![AuthorizedUserConfig {
                client_id: crate::test_key::TEST_CLIENT_ID.into(),
                client_secret: crate::test_key::TEST_CLIENT_SECRET.into(),
                refresh_token: crate::test_key::TEST_REFRESH_TOKEN.into(),
            }],
            sts_subject_tokens: vec![crate::test_key::TEST_SUBJECT_TOKEN.into()],
            request_log_limit: 200_000,
            api_kinds: default_api_kinds(),
            default_quota_project: None,
            taken_project_ids: vec![],
            project_metadata: BTreeMap::new(),
            billing_accounts: vec![],
            model_armor_templates: vec![],
            organizations: vec![OrganizationConfig {
                id: "123456789012".into(),
                folders: vec![],
                projects: vec![ProjectConfig::new("sluice-demo", 100_000_000_001, &[])],
                project_creation_per_minute: None,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ApiKind, EmulatorConfig};

    #[test]
    fn api_kinds_default_to_googles_and_a_config_file_overrides_them() {
        let config = EmulatorConfig::default();
        assert_eq!(config.api_kind("iam.googleapis.com"), ApiKind::ClientBased);
        assert_eq!(
            config.api_kind("aiplatform.googleapis.com"),
            ApiKind::ResourceBased
        );
        assert_eq!(config.api_kind("unlisted.googleapis.com"), ApiKind::ResourceBased);
        let config: EmulatorConfig = serde_json::from_str(
            r#"{"api_kinds": {"iam.googleapis.com": "resource_based"}, "default_quota_project": "p"}"#,
        )
        .unwrap();
        assert_eq!(config.api_kind("iam.googleapis.com"), ApiKind::ResourceBased);
        assert_eq!(
            config.api_kind("orgpolicy.googleapis.com"),
            ApiKind::ResourceBased,
            "the map is replaced whole"
        );
        assert_eq!(config.default_quota_project.as_deref(), Some("p"));
    }
}
