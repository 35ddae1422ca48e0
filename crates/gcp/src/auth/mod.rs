//! Access tokens, over the client's own reqwest client: a static token, or Google's
//! credential types (application default credentials, or a file given with `--credentials`),
//! optionally impersonating a service account. A token only ever leaves this module as a
//! [`Secret`].
//!
//! Why not `gcp_auth` (which this crate used before): gcp_auth 0.12 reads only service-account
//! files from `GOOGLE_APPLICATION_CREDENTIALS`, has no `external_account` or
//! `impersonated_service_account`, asks `metadata.google.internal` with no bound and no
//! `GCE_METADATA_HOST`, makes one attempt per token, and reports a refusal as "token request
//! failed", logging the server's reason instead of returning it. Each of those is a defect
//! users met; the flows themselves are small (`flows`), so they are written here once, with
//! the client's retry policy, TLS diagnosis and error model.
//!
//! - `adc`: finding credentials and parsing the files (never echoing their contents).
//! - `flows`: one token request per credential type, and how a failed one is classified.

mod adc;
mod flows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::GcpError;
use crate::options::{Credentials, RetryConfig, Secret};
use crate::retry::Retry;
use crate::time_scale::TimeScale;

pub(crate) use adc::Found;
pub(crate) use flows::Flow;

/// The only OAuth scope Sluice asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A cached token is renewed this long before it expires (Google's libraries: 3 min 45 s), or
/// at half its life when it lives shorter than twice that.
const RENEW_BEFORE: Duration = Duration::from_secs(225);

#[derive(Clone)]
pub(crate) enum TokenSource {
    Static(Secret),
    Fetched(Arc<Fetcher>),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("TokenSource::Static(<redacted>)"),
            TokenSource::Fetched(fetcher) => write!(f, "TokenSource::Fetched({})", fetcher.described),
        }
    }
}

/// Fetches tokens for one flow, caches the current one, and retries failed fetches with the
/// client's policy (429, 5xx and transport errors; a refusal is final).
pub(crate) struct Fetcher {
    flow: Flow,
    /// What the credentials are, for messages: "service_account credentials from FILE".
    pub(crate) described: String,
    http: reqwest::Client,
    retry: RetryConfig,
    scale: TimeScale,
    /// The current token and when to renew it.
    cache: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

/// What [`TokenSource::new`] needs besides the credentials.
pub(crate) struct Setup<'a> {
    pub http: &'a reqwest::Client,
    pub retry: &'a RetryConfig,
    pub scale: TimeScale,
    pub metadata_timeout: Duration,
    /// `generateAccessToken`'s base URL (the `--endpoint` override, or Google's host).
    pub iam_credentials_base: String,
    pub impersonate: Option<&'a str>,
}

impl TokenSource {
    /// The token source, and the credentials file's `quota_project_id` if it has one.
    /// Application default credentials are looked for now, the metadata server for at most
    /// `metadata_timeout`.
    pub(crate) async fn new(
        credentials: &Credentials,
        setup: Setup<'_>,
    ) -> Result<(Self, Option<String>), GcpError> {
        let found = match credentials {
            Credentials::StaticToken(token) if token.expose().trim().is_empty() => {
                return Err(GcpError::config("the static token is empty"))
            }
            Credentials::StaticToken(token) if setup.impersonate.is_none() => {
                return Ok((TokenSource::Static(token.clone()), None))
            }
            Credentials::StaticToken(token) => Found {
                flow: Flow::Static(token.clone()),
                described: "the access token given".into(),
                quota_project: None,
                first_token: None,
            },
            Credentials::KeyFile(path) => adc::from_file(path, "--credentials")?,
            Credentials::ApplicationDefault => {
                adc::discover(
                    &adc::Environment::of_process(),
                    setup.http,
                    setup.metadata_timeout,
                )
                .await?
            }
        };
        let Found {
            mut flow,
            mut described,
            quota_project,
            mut first_token,
        } = found;
        if let Some(account) = setup.impersonate {
            let email = account.split_once('@');
            if !email.is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
                || account.contains(['/', '?', '#', '%', ' ', ':'])
            {
                return Err(GcpError::config(format!(
                    "impersonate a service account by its email (NAME@PROJECT.iam.gserviceaccount.com), \
                     not {account:?}"
                )));
            }
            let url = format!(
                "{}/v1/projects/-/serviceAccounts/{account}:generateAccessToken",
                setup.iam_credentials_base
            );
            flow = Flow::Impersonated {
                source: Box::new(flow),
                target: flows::Impersonation {
                    url,
                    delegates: vec![],
                },
            };
            described = format!("{described}, impersonating {account}");
            first_token = None;
        }
        let fetcher = Fetcher {
            flow,
            described,
            http: setup.http.clone(),
            retry: setup.retry.clone(),
            scale: setup.scale,
            cache: tokio::sync::Mutex::new(first_token),
        };
        Ok((TokenSource::Fetched(Arc::new(fetcher)), quota_project))
    }

    /// A token for [`SCOPE`]: the cached one while it has more than a few minutes left,
    /// otherwise a new one (one fetch at a time; concurrent callers share it).
    pub(crate) async fn token(&self) -> Result<Secret, GcpError> {
        match self {
            TokenSource::Static(token) => Ok(token.clone()),
            TokenSource::Fetched(fetcher) => fetcher.token().await,
        }
    }
}

impl Fetcher {
    /// The error, saying which credentials it is about.
    fn named(&self, mut error: GcpError) -> GcpError {
        error.message = format!("{}: {}", self.described, error.message);
        error
    }

    async fn token(&self) -> Result<Secret, GcpError> {
        let mut cache = self.cache.lock().await;
        if let Some((token, renew_at)) = cache.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let mut retry = Retry::new(&self.retry, self.scale);
        loop {
            match flows::fetch(&self.http, &self.flow).await {
                Ok((token, lifetime)) => {
                    let usable = lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2));
                    *cache = Some((token.clone(), Instant::now() + usable));
                    return Ok(token);
                }
                Err(error) if error.is_retryable() => match retry.next_delay(error.retry_delay) {
                    Some(delay) => {
                        tracing::debug!(status = %error.status, delay_ms = delay.as_millis() as u64, "retrying the token request");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(self.named(error)),
                },
                Err(error) => return Err(self.named(error)),
            }
        }
    }
}
