//! [`GcpClient`]: one HTTP client for every API, with auth, the quota-project header, typed
//! errors and retries. One call = one method + API + path; retried per [`PostRetry`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::Method;
use serde_json::{json, Value};

use crate::answers::{bounded, Answer};
use crate::auth::{Setup, TokenSource};
use crate::error::GcpError;
use crate::iam::{Coalescer, IamHook};
use crate::options::{check_endpoint, Api, ClientOptions, RetryConfig, Secret};
use crate::rate::{RateLimiter, RateStats};
use crate::retry::Retry;
use crate::time_scale::TimeScale;

/// Whether a POST may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostRetry {
    /// Sending it twice cannot duplicate anything: a client-chosen id (`?agentGatewayId=`,
    /// `roleId`), a `requestId`, or a read-like POST (`getIamPolicy`, `:wait`).
    Safe,
    /// Never retried once the request may have reached the server (a server-chosen id, e.g.
    /// reasoningEngines.create): the caller looks for what it created before creating again.
    /// A connection refused before anything was sent is still retried.
    Unsafe,
}

/// The user agent of every call.
pub const USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));

/// The Google Cloud REST client. Cheap to clone: clones share connections, the token cache,
/// the call counter and the IAM coalescing state.
#[derive(Clone)]
pub struct GcpClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    http: reqwest::Client,
    endpoint: Option<String>,
    tokens: TokenSource,
    quota_project: Option<HeaderValue>,
    pub(crate) retry: RetryConfig,
    pub(crate) time_scale: TimeScale,
    calls: AtomicU64,
    /// Client-side rate limits per API service, shared by every clone.
    rate: RateLimiter,
    /// How long (scaled) a call keeps retrying 429 RESOURCE_EXHAUSTED answers.
    quota_patience: Duration,
    pub(crate) iam: Coalescer,
    pub(crate) iam_hook: OnceLock<IamHook>,
}

impl std::fmt::Debug for GcpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpClient")
            .field("endpoint", &self.inner.endpoint)
            .field("tokens", &self.inner.tokens)
            .field("time_scale", &self.inner.time_scale)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl GcpClient {
    /// Builds the client: checks the endpoint (plain http only on loopback) and sets up the
    /// credentials (application default credentials are looked up now, the metadata server for
    /// at most `metadata_timeout`; tokens are fetched when first needed, then cached). The quota
    /// project is `quota_project`, else `GOOGLE_CLOUD_QUOTA_PROJECT`, else the credentials
    /// file's `quota_project_id`.
    pub async fn new(options: ClientOptions) -> Result<Self, GcpError> {
        let endpoint = options.endpoint.as_deref().map(check_endpoint).transpose()?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(crate::retry::scaled_timeout(
                crate::retry::CONNECT_TIMEOUT,
                options.time_scale,
            ))
            .build()
            .map_err(|e| GcpError::config(format!("cannot build the HTTP client: {e}")))?;
        let setup = Setup {
            http: &http,
            retry: &options.retry,
            scale: options.time_scale,
            metadata_timeout: options.metadata_timeout,
            iam_credentials_base: Api::IamCredentials.base_url(endpoint.as_deref()),
            impersonate: options
                .impersonate_service_account
                .as_deref()
                .filter(|sa| !sa.is_empty()),
        };
        let (tokens, file_quota_project) = TokenSource::new(&options.credentials, setup).await?;
        let quota_project = options
            .quota_project
            .clone()
            .or_else(|| std::env::var("GOOGLE_CLOUD_QUOTA_PROJECT").ok())
            .filter(|p| !p.is_empty())
            .or(file_quota_project)
            .map(|p| {
                HeaderValue::from_str(&p)
                    .map_err(|_| GcpError::config(format!("quota project {p:?} is not a valid header value")))
            })
            .transpose()?;
        Ok(GcpClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                tokens,
                quota_project,
                retry: options.retry,
                time_scale: options.time_scale,
                calls: AtomicU64::new(0),
                rate: RateLimiter::new(
                    &crate::rate::effective_limits(&options.rate_limits, options.default_rate_limits),
                    options.time_scale,
                    tokio::time::Instant::now(),
                ),
                quota_patience: options.time_scale.apply(options.quota_patience),
                iam: Coalescer::default(),
                iam_hook: OnceLock::new(),
            }),
        })
    }

    /// The base URL calls of `api` go to: the override when set, else Google's host
    /// (`https://{region}-aiplatform.googleapis.com` for Vertex AI).
    pub fn base_url(&self, api: &Api) -> String {
        api.base_url(self.inner.endpoint.as_deref())
    }

    /// Gets an access token now (the cached one if fresh), retrying 429 / 5xx / transport
    /// failures like any call. Callers use it to find refused credentials before starting work.
    pub async fn authenticate(&self) -> Result<(), GcpError> {
        self.inner.tokens.token().await.map(|_| ())
    }

    /// The quota project sent as `x-goog-user-project`, if any.
    pub fn quota_project(&self) -> Option<&str> {
        self.inner.quota_project.as_ref().and_then(|v| v.to_str().ok())
    }

    /// HTTP requests sent so far, retries included.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// What each rate-limited API service's limiter has done (sorted by service): configured
    /// and current rate, requests sent and delayed, 429s seen, time waited.
    pub fn rate_stats(&self) -> Vec<RateStats> {
        self.inner.rate.stats()
    }

    /// The client's time scale (multiplies every client-side wait).
    pub fn time_scale(&self) -> TimeScale {
        self.inner.time_scale
    }

    /// `GET {base}/{path}`; `path` has no leading slash and may carry a query string (already
    /// percent-encoded). Retried.
    pub async fn get(&self, api: &Api, path: &str) -> Result<Value, GcpError> {
        self.get_as(api, path).await
    }

    /// [`GcpClient::get`], the answer parsed as `T`: one without the fields `T` needs is a
    /// `BAD_RESPONSE`, retried like a 5xx.
    pub async fn get_as<T: Answer>(&self, api: &Api, path: &str) -> Result<T, GcpError> {
        self.call(Method::GET, api, path, None, true, None).await
    }

    /// `POST {base}/{path}` with a JSON body; retried only when `retry` is [`PostRetry::Safe`].
    pub async fn post(
        &self,
        api: &Api,
        path: &str,
        body: &Value,
        retry: PostRetry,
    ) -> Result<Value, GcpError> {
        self.post_as(api, path, body, retry).await
    }

    /// [`GcpClient::post`], the answer parsed as `T` (a `BAD_RESPONSE` when it is not one).
    pub async fn post_as<T: Answer>(
        &self,
        api: &Api,
        path: &str,
        body: &Value,
        retry: PostRetry,
    ) -> Result<T, GcpError> {
        self.call(
            Method::POST,
            api,
            path,
            Some(body),
            retry == PostRetry::Safe,
            None,
        )
        .await
    }

    /// `PATCH` (with `updateMask`, and `etag` in the body where the API has one): retried,
    /// since sending the same patch twice leaves the same resource.
    pub async fn patch(&self, api: &Api, path: &str, body: &Value) -> Result<Value, GcpError> {
        self.patch_as(api, path, body).await
    }

    /// [`GcpClient::patch`], the answer parsed as `T` (a `BAD_RESPONSE` when it is not one).
    pub async fn patch_as<T: Answer>(&self, api: &Api, path: &str, body: &Value) -> Result<T, GcpError> {
        self.call(Method::PATCH, api, path, Some(body), true, None).await
    }

    /// `DELETE`: retried; a retry after a delete that did happen answers NOT_FOUND, which the
    /// caller treats as deleted.
    pub async fn delete(&self, api: &Api, path: &str) -> Result<Value, GcpError> {
        self.call(Method::DELETE, api, path, None, true, None).await
    }

    /// One call with retries. `safe`: may be sent again after reaching the server. A 2xx
    /// answer that is not JSON, or not a `T`, is a `BAD_RESPONSE` and retried like a 5xx. A
    /// final `SERVICE_DISABLED` is completed with the API's state (`service_state`).
    pub(crate) async fn call<T: Answer>(
        &self,
        method: Method,
        api: &Api,
        path: &str,
        body: Option<&Value>,
        safe: bool,
        timeout: Option<Duration>,
    ) -> Result<T, GcpError> {
        let path = path.trim_start_matches('/');
        let shown = format!("/{path}");
        let url = format!("{}{shown}", self.base_url(api));
        let mut retry = Retry::new(&self.inner.retry, self.inner.time_scale);
        let service = api.service_name();
        // When this call first met quota exhaustion (429 RESOURCE_EXHAUSTED).
        let mut exhausted_since: Option<tokio::time::Instant> = None;
        loop {
            // The slot first, then the token: a long wait for the slot (a busy shared limiter,
            // a quota pause) must not send a token that expired meanwhile.
            let sent_at = self.inner.rate.acquire(service, &shown).await;
            // Token failures are retried inside `token()` with the same policy.
            let token = self.inner.tokens.token().await?;
            let (error, reached) = match self
                .attempt(
                    &method,
                    service,
                    &url,
                    &shown,
                    body,
                    timeout,
                    retry.attempts() + 1,
                    &token,
                    sent_at,
                )
                .await
            {
                Ok(value) => match T::from_answer(value) {
                    Ok(answer) => return Ok(answer),
                    Err(why) => (
                        GcpError::bad_response(
                            &shown,
                            Some(200),
                            format!(
                                "the answer from {shown} lacks what the call needs: {}",
                                bounded(&why, 300)
                            ),
                        ),
                        true,
                    ),
                },
                Err(failure) => failure,
            };
            if error.is_quota_exhausted() {
                // Quota pressure slows a call down; it never uses up its attempts. The limiter
                // has paused the service for everyone; this call waits out the server's delay
                // too (a service without a limiter has no pause) and tries again. A 429 is
                // answered before the call runs, so even an Unsafe POST is sent again.
                let since = *exhausted_since.get_or_insert_with(tokio::time::Instant::now);
                let pause =
                    (self.inner.time_scale).apply(error.retry_delay.unwrap_or(crate::rate::DEFAULT_PAUSE));
                if since.elapsed() + pause > self.inner.quota_patience {
                    return Err(error);
                }
                tracing::debug!(method = %method, path = %shown, delay_ms = pause.as_millis() as u64, "quota exhausted; waiting");
                tokio::time::sleep(pause).await;
                continue;
            }
            if !(error.is_retryable() && (safe || !reached)) {
                return Err(self.with_service_state(api, error, &token).await);
            }
            match retry.next_delay(error.retry_delay) {
                Some(delay) => {
                    tracing::debug!(method = %method, path = %shown, status = %error.status, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }

    /// A `SERVICE_DISABLED` error completed with the state (`ENABLED` / `DISABLED`) Service
    /// Usage reports for the API it names, in its consumer project (one read, not retried;
    /// left `None` when it cannot be read), with the token of the call that failed. Other
    /// errors are returned as they are.
    async fn with_service_state(&self, api: &Api, mut error: GcpError, token: &Secret) -> GcpError {
        if !error.is_service_disabled() || *api == Api::ServiceUsage {
            return error;
        }
        let (Some(service), Some(consumer)) = (error.error_info("service"), error.error_info("consumer"))
        else {
            return error;
        };
        let shown = format!("/v1/{consumer}/services/{service}");
        let url = format!("{}{shown}", self.base_url(&Api::ServiceUsage));
        let sent_at = self
            .inner
            .rate
            .acquire(Api::ServiceUsage.service_name(), &shown)
            .await;
        if let Ok(answer) = self
            .attempt(
                &Method::GET,
                Api::ServiceUsage.service_name(),
                &url,
                &shown,
                None,
                None,
                1,
                token,
                sent_at,
            )
            .await
        {
            error.service_state = answer["state"].as_str().map(str::to_string);
        }
        error
    }

    /// One HTTP exchange, in the rate-limiter slot taken at `sent_at`. On failure, also says
    /// whether the request may have reached the server. A 429 RESOURCE_EXHAUSTED is reported to
    /// the limiter.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        method: &Method,
        service: &str,
        url: &str,
        shown: &str,
        body: Option<&Value>,
        timeout: Option<Duration>,
        attempt: u32,
        token: &Secret,
        sent_at: tokio::time::Instant,
    ) -> Result<Value, (GcpError, bool)> {
        let bearer = token.bearer().map_err(|error| (error, false))?;
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, bearer)
            .timeout(timeout.unwrap_or_else(|| {
                crate::retry::scaled_timeout(crate::retry::CALL_TIMEOUT, self.inner.time_scale)
            }));
        if let Some(project) = &self.inner.quota_project {
            request = request.header("x-goog-user-project", project.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(method = %method, path = %shown, attempt, status = "TRANSPORT", "call failed");
                let reached = !error.is_connect();
                return Err((transport_error(shown, url, error), reached));
            }
        };
        let status = response.status().as_u16();
        tracing::debug!(method = %method, path = %shown, status, attempt, "call");
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| (GcpError::transport(shown, describe(e)), true))?;
        if !(200..300).contains(&status) {
            let error = GcpError::from_response(shown, status, &bytes, retry_after);
            if error.is_quota_exhausted() {
                self.inner
                    .rate
                    .exhausted(service, shown, sent_at, error.retry_delay);
            }
            return Err((error, true));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            let body = bounded(&String::from_utf8_lossy(&bytes), 200);
            (
                GcpError::bad_response(
                    shown,
                    Some(status),
                    format!("HTTP {status} from {shown} is not JSON ({e}): {body:?}"),
                ),
                true,
            )
        })
    }
}

/// The error of a request that got no answer. A certificate the client does not trust is not
/// a transport hiccup: it is final (status `TLS`), and the message names the host and the fix.
/// Anything else is `TRANSPORT` (retryable). `shown` is what the error names (the path), `url`
/// the URL called.
pub(crate) fn transport_error(shown: &str, url: &str, error: reqwest::Error) -> GcpError {
    let text = describe(error);
    if !text.contains("invalid peer certificate") {
        return GcpError::transport(shown, text);
    }
    let host = host_of(url);
    let why = if text.contains("UnknownIssuer") {
        format!(
            "the TLS certificate of {host} is not trusted: its issuer is not a certificate authority \
             this machine trusts (a TLS-inspecting proxy or a private CA?). To trust that CA, set \
             SSL_CERT_FILE to a PEM file holding it; that file replaces the system's CA list, so \
             include the public roots too"
        )
    } else {
        format!("the TLS certificate of {host} is not acceptable")
    };
    GcpError::tls(shown, format!("{why} ({text})"))
}

/// `host[:port]` of a URL (empty when it has none).
pub(crate) fn host_of(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| String::new(),
        |u| match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => String::new(),
        },
    )
}

/// A transport error and its causes, without the URL (the caller has the path).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
