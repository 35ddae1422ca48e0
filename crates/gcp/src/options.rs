//! What a client is built from: endpoints, credentials, the quota project, retry settings and
//! the time scale. Nothing here talks to the network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::GcpError;
use crate::time_scale::TimeScale;

/// Everything [`crate::GcpClient::new`] needs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// One base URL for every API (the emulator, a proxy); `None` uses Google's hosts.
    /// Plain `http://` is accepted only for loopback hosts.
    pub endpoint: Option<String>,
    pub credentials: Credentials,
    /// Sent as `x-goog-user-project`: the project billed and charged quota for the calls.
    /// When `None`, `GOOGLE_CLOUD_QUOTA_PROJECT`, then the credentials file's `quota_project_id`,
    /// as Google's libraries do.
    pub quota_project: Option<String>,
    /// Act as this service account: every token is exchanged through IAM Credentials
    /// `generateAccessToken` (the caller needs `roles/iam.serviceAccountTokenCreator` on it).
    pub impersonate_service_account: Option<String>,
    /// How long application default credentials wait for the metadata server (the last source
    /// they try) before saying none was found. Google's libraries wait about 3 seconds.
    /// `GCE_METADATA_TIMEOUT` (seconds) overrides it, as in Google's Python library.
    pub metadata_timeout: Duration,
    pub retry: RetryConfig,
    /// Multiplies every client-side wait (retry backoff, RetryInfo / Retry-After, poll delays,
    /// the IAM member window, timeouts, rate windows). [`TimeScale::REAL`] against Google; the
    /// emulator's `time_scale` in tests.
    pub time_scale: TimeScale,
    /// Client-side request rates, in requests per minute, by API service name
    /// (`iam.googleapis.com`); they override the defaults. `0` means no client-side limit for
    /// that service. Shared by every clone of the client: see [`crate::rate`].
    pub rate_limits: BTreeMap<String, u32>,
    /// Whether services absent from `rate_limits` get Google's published default quotas
    /// ([`crate::rate::GOOGLE_DEFAULT_RATES`]): true against Google, false for
    /// [`ClientOptions::emulator`] (which enforces no quota unless configured).
    pub default_rate_limits: bool,
    /// How long (unscaled) one call keeps retrying 429 RESOURCE_EXHAUSTED answers, which never
    /// use up `retry.max_attempts`: quota pressure slows a call down, it does not fail it,
    /// until this much time has passed since its first 429. Default one hour.
    pub quota_patience: Duration,
}

impl Default for ClientOptions {
    /// Google's hosts, application default credentials, default retries, real time, Google's
    /// default rate limits.
    fn default() -> Self {
        ClientOptions {
            endpoint: None,
            credentials: Credentials::ApplicationDefault,
            quota_project: None,
            impersonate_service_account: None,
            metadata_timeout: Duration::from_secs(3),
            retry: RetryConfig::default(),
            time_scale: TimeScale::REAL,
            rate_limits: BTreeMap::new(),
            default_rate_limits: true,
            quota_patience: Duration::from_secs(3600),
        }
    }
}

impl ClientOptions {
    /// Options for the emulator (or any loopback server) at `base_url` with a fixed token. No
    /// client-side rate limit applies unless `rate_limits` names one.
    pub fn emulator(base_url: impl Into<String>, token: impl Into<String>, time_scale: TimeScale) -> Self {
        ClientOptions {
            endpoint: Some(base_url.into()),
            credentials: Credentials::StaticToken(Secret::new(token)),
            time_scale,
            default_rate_limits: false,
            ..ClientOptions::default()
        }
    }
}

/// Where access tokens come from. Every token is requested with the `cloud-platform` scope.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Google's application default credentials, tried in Google's order: the file named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file
    /// (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`/`application_default_credentials.json`), then
    /// the metadata server (`GCE_METADATA_HOST`, default `metadata.google.internal`).
    ApplicationDefault,
    /// A credentials file of any ADC type (`--credentials FILE.json`): `service_account`,
    /// `authorized_user`, `external_account` or `impersonated_service_account`.
    KeyFile(PathBuf),
    /// A token sent as is (the emulator accepts any non-empty bearer token).
    StaticToken(Secret),
}

/// A secret string (an access token). `Debug` and `Display` print `<redacted>`; only
/// [`Secret::expose`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself: only for the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Authorization: Bearer …` with this token, marked sensitive so it is never logged.
    pub(crate) fn bearer(&self) -> Result<reqwest::header::HeaderValue, GcpError> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.0))
            .map_err(|_| GcpError::config("the access token is not a valid header value"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How failed calls are retried (429, 500, 502, 503, 504 and transport errors), and how long
/// IAM waits for a member that does not exist yet. Durations are unscaled: the client
/// multiplies them by [`ClientOptions::time_scale`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts per call, the first included (1 = no retry).
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Randomise each delay by ±50 % (the `backoff` crate's randomization factor 0.5).
    pub jitter: bool,
    /// No retry starts after this much time since the first attempt; `None` = no limit.
    pub max_elapsed: Option<Duration>,
    /// How long an IAM policy write keeps retrying a member that "does not exist" yet (a
    /// service agent just created); Google does not say how long that lasts.
    pub member_wait: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 6,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: true,
            max_elapsed: Some(Duration::from_secs(120)),
            member_wait: Duration::from_secs(120),
        }
    }
}

/// The Google APIs Sluice calls; each has its own host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Api {
    ServiceUsage,
    Iam,
    ResourceManager,
    NetworkServices,
    /// Vertex AI is regional: `https://{region}-aiplatform.googleapis.com`.
    VertexAi {
        region: String,
    },
    AgentRegistry,
    OrgPolicy,
    /// IAM Credentials (`generateAccessToken`, for impersonation).
    IamCredentials,
    /// Cloud Billing (a project's billing account).
    CloudBilling,
    /// Network Security (authorization policies).
    NetworkSecurity,
    /// Model Armor is regional: `https://modelarmor.{region}.rep.googleapis.com`.
    ModelArmor {
        region: String,
    },
}

impl Api {
    /// Google's base URL for this API (no trailing slash).
    pub fn google_base_url(&self) -> String {
        let host = match self {
            Api::ServiceUsage => "serviceusage",
            Api::Iam => "iam",
            Api::ResourceManager => "cloudresourcemanager",
            Api::NetworkServices => "networkservices",
            Api::VertexAi { region } if region == "global" || region.is_empty() => "aiplatform",
            Api::VertexAi { region } => return format!("https://{region}-aiplatform.googleapis.com"),
            Api::AgentRegistry => "agentregistry",
            Api::OrgPolicy => "orgpolicy",
            Api::IamCredentials => "iamcredentials",
            Api::CloudBilling => "cloudbilling",
            Api::NetworkSecurity => "networksecurity",
            Api::ModelArmor { region } => return format!("https://modelarmor.{region}.rep.googleapis.com"),
        };
        format!("https://{host}.googleapis.com")
    }

    /// The API's service name (`aiplatform.googleapis.com`): what quotas, rate limits and
    /// enablement are keyed by. Vertex AI has one name whatever its region.
    pub fn service_name(&self) -> &'static str {
        match self {
            Api::ServiceUsage => "serviceusage.googleapis.com",
            Api::Iam => "iam.googleapis.com",
            Api::ResourceManager => "cloudresourcemanager.googleapis.com",
            Api::NetworkServices => "networkservices.googleapis.com",
            Api::VertexAi { .. } => "aiplatform.googleapis.com",
            Api::AgentRegistry => "agentregistry.googleapis.com",
            Api::OrgPolicy => "orgpolicy.googleapis.com",
            Api::IamCredentials => "iamcredentials.googleapis.com",
            Api::CloudBilling => "cloudbilling.googleapis.com",
            Api::NetworkSecurity => "networksecurity.googleapis.com",
            Api::ModelArmor { .. } => "modelarmor.googleapis.com",
        }
    }

    /// The base URL calls of this API go to: `endpoint` (the override) when set, else Google's.
    pub(crate) fn base_url(&self, endpoint: Option<&str>) -> String {
        endpoint.map_or_else(|| self.google_base_url(), str::to_string)
    }
}

/// Checks an `--endpoint` override: https anywhere, plain http only on loopback. Returns it
/// without a trailing slash.
pub fn check_endpoint(endpoint: &str) -> Result<String, GcpError> {
    let refuse = |why: String| Err(GcpError::config(format!("endpoint {endpoint:?}: {why}")));
    let url = match reqwest::Url::parse(endpoint) {
        Ok(url) => url,
        Err(error) => return refuse(format!("not a URL ({error}); write it like https://host:port")),
    };
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return refuse(
                    "plain http would send the access token unencrypted, so it is refused except on \
                     loopback (127.0.0.1, ::1, localhost); use https:// or a loopback address"
                        .into(),
                );
            }
        }
        other => return refuse(format!("scheme {other}:// is not supported; use https://")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return refuse("a base URL takes no query or fragment".into());
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}
