//! One token request per credential type, as Google's libraries make them:
//!
//! - `service_account`: an RS256-signed JWT traded at `token_uri` (RFC 7523 JWT-bearer grant);
//! - `authorized_user`: the refresh token traded at `token_uri` (RFC 6749 refresh grant);
//! - `external_account`: a subject token read from a file or URL, exchanged at Google's STS
//!   `token_url` (RFC 8693 token exchange), then optionally `service_account_impersonation_url`;
//! - `impersonated_service_account` and `--impersonate-service-account`: the source
//!   credentials' token sent to IAM Credentials `generateAccessToken`;
//! - the metadata server's `instance/service-accounts/default/token`.
//!
//! A failure is classified once, here: HTTP 429, 5xx and transport errors are retryable (the
//! caller retries with the client's policy); any other answer is a refusal, final, and its
//! message carries the server's reason (`invalid_grant: Invalid JWT Signature.`) and status,
//! never a token, a key or an assertion.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::header::AUTHORIZATION;
use serde_json::{json, Value};

use super::SCOPE;
use crate::client::{host_of, transport_error};
use crate::code::Code;
use crate::error::{GcpError, Status};
use crate::options::Secret;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Lifetime asked of `generateAccessToken` (its default and maximum without an org policy).
const IMPERSONATED_LIFETIME: Duration = Duration::from_secs(3600);
/// Bounds every token request once credentials are found (a server that never answers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How a token is obtained.
pub(crate) enum Flow {
    /// A given token (only as the source of an impersonation).
    Static(Secret),
    ServiceAccount {
        email: String,
        key_id: Option<String>,
        key: Arc<ring::signature::RsaKeyPair>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
    },
    External {
        audience: String,
        subject_token_type: String,
        token_url: String,
        subject: SubjectSource,
        impersonation: Option<Impersonation>,
    },
    Impersonated {
        source: Box<Flow>,
        target: Impersonation,
    },
    Metadata {
        /// `http://{GCE_METADATA_HOST}`.
        base: String,
    },
}

pub(crate) struct Impersonation {
    /// `…/v1/projects/-/serviceAccounts/SA:generateAccessToken`.
    pub url: String,
    pub delegates: Vec<String>,
}

/// Where an `external_account`'s subject token comes from (`credential_source`).
pub(crate) enum SubjectSource {
    File {
        path: PathBuf,
        /// `format.subject_token_field_name` when `format.type` is `json`.
        field: Option<String>,
    },
    Url {
        url: String,
        headers: Vec<(String, String)>,
        field: Option<String>,
    },
}

type Fetched = Result<(Secret, Duration), GcpError>;

/// One attempt at a token and its lifetime.
pub(crate) fn fetch<'a>(
    http: &'a reqwest::Client,
    flow: &'a Flow,
) -> Pin<Box<dyn Future<Output = Fetched> + Send + 'a>> {
    Box::pin(async move {
        match flow {
            Flow::Static(token) => Ok((token.clone(), Duration::from_secs(3600))),
            Flow::ServiceAccount {
                email,
                key_id,
                key,
                token_uri,
            } => {
                let assertion = sign_assertion(email, key_id.as_deref(), key, token_uri)?;
                let form = [("grant_type", JWT_BEARER), ("assertion", assertion.expose())];
                let answer = send(token_uri, http.post(token_uri).form(&form)).await?;
                oauth_token(token_uri, &answer)
            }
            Flow::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.expose()),
                    ("refresh_token", refresh_token.expose()),
                ];
                let answer = send(token_uri, http.post(token_uri).form(&form)).await?;
                oauth_token(token_uri, &answer)
            }
            Flow::External {
                audience,
                subject_token_type,
                token_url,
                subject,
                impersonation,
            } => {
                let subject_token = subject_token(http, subject).await?;
                let form = [
                    ("grant_type", TOKEN_EXCHANGE),
                    ("audience", audience.as_str()),
                    ("scope", SCOPE),
                    ("requested_token_type", ACCESS_TOKEN_TYPE),
                    ("subject_token", subject_token.expose()),
                    ("subject_token_type", subject_token_type.as_str()),
                ];
                let answer = send(token_url, http.post(token_url).form(&form)).await?;
                let federated = oauth_token(token_url, &answer)?;
                match impersonation {
                    None => Ok(federated),
                    Some(target) => impersonate(http, &federated.0, target).await,
                }
            }
            Flow::Impersonated { source, target } => {
                let (source_token, _) = fetch(http, source).await?;
                impersonate(http, &source_token, target).await
            }
            Flow::Metadata { base } => {
                let url = format!(
                    "{base}/computeMetadata/v1/instance/service-accounts/default/token?scopes={SCOPE}"
                );
                let request = http.get(&url).header("Metadata-Flavor", "Google");
                let answer = send(&url, request).await?;
                oauth_token(&url, &answer)
            }
        }
    })
}

/// `generateAccessToken` with `source` as the bearer: `{accessToken, expireTime}`.
async fn impersonate(http: &reqwest::Client, source: &Secret, target: &Impersonation) -> Fetched {
    let bearer = source.bearer()?;
    let body = json!({
        "scope": [SCOPE],
        "lifetime": format!("{}s", IMPERSONATED_LIFETIME.as_secs()),
        "delegates": target.delegates,
    });
    let request = http.post(&target.url).header(AUTHORIZATION, bearer).json(&body);
    let answer = send(&target.url, request).await?;
    let token = token_field(&target.url, &answer, "accessToken")?;
    Ok((token, IMPERSONATED_LIFETIME))
}

/// The subject token of an `external_account`, from its file or URL.
async fn subject_token(http: &reqwest::Client, source: &SubjectSource) -> Result<Secret, GcpError> {
    let (text, field, from) = match source {
        SubjectSource::File { path, field } => {
            let text = tokio::fs::read_to_string(path).await.map_err(|error| {
                GcpError::config(format!(
                    "external_account: cannot read the subject token file {}: {error}",
                    path.display()
                ))
            })?;
            (text, field, format!("file {}", path.display()))
        }
        SubjectSource::Url { url, headers, field } => {
            let mut request = http.get(url);
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let body = answer_of(url, request, "the subject token URL").await?;
            (
                String::from_utf8_lossy(&body).into_owned(),
                field,
                format!("URL {}", shown(url)),
            )
        }
    };
    let token = match field {
        None => text.trim().to_string(),
        Some(field) => serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v[field.as_str()].as_str().map(str::to_string))
            .ok_or_else(|| {
                GcpError::config(format!(
                    "external_account: the subject token from {from} is not JSON with a string field {field:?}"
                ))
            })?,
    };
    if token.is_empty() {
        return Err(GcpError::config(format!(
            "external_account: the subject token from {from} is empty"
        )));
    }
    Ok(Secret::new(token))
}

/// Sends a token request and reads its JSON answer, classifying failures.
async fn send(url: &str, request: reqwest::RequestBuilder) -> Result<Value, GcpError> {
    let body = answer_of(url, request, "the token endpoint").await?;
    serde_json::from_slice(&body).map_err(|_| {
        GcpError::bad_response(
            &path_of(url),
            None,
            format!("the answer of {} is not JSON", shown(url)),
        )
    })
}

/// The body of a 2xx answer; any other answer, or none, as a classified error.
async fn answer_of(url: &str, request: reqwest::RequestBuilder, what: &str) -> Result<Vec<u8>, GcpError> {
    let failed = |error| transport_error(&path_of(url), url, error);
    let response = request.timeout(REQUEST_TIMEOUT).send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(failed)?;
    if !(200..300).contains(&status) {
        return Err(refusal_or_retry(url, status, &body, what));
    }
    Ok(body.to_vec())
}

/// The error of a non-2xx answer from a token endpoint: OAuth2's `{error, error_description}`
/// or Google's envelope. 429 and 5xx are retryable; anything else refuses the credentials.
pub(crate) fn refusal_or_retry(url: &str, status: u16, body: &[u8], what: &str) -> GcpError {
    // OAuth2's `{error, error_description}` is not Google's envelope, so `from_response` sees an
    // unknown body; its code (`invalid_grant`) then leads the message (it is not an ErrorInfo
    // reason).
    let mut error = GcpError::from_response(&path_of(url), status, body, None);
    let oauth = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let code = v["error"].as_str()?;
        Some(match v["error_description"].as_str() {
            Some(description) if !description.is_empty() => format!("{code}: {description}"),
            _ => code.to_string(),
        })
    });
    if let Some(message) = oauth {
        error.message = message;
    }
    let retryable = error.is_retryable();
    if !retryable && matches!(status, 400 | 401) {
        error.status = Status::Google(Code::Unauthenticated);
    }
    error.message = if retryable {
        format!("{what} {} answered HTTP {status}: {}", shown(url), error.message)
    } else {
        format!("{what} {} refused the credentials: {}", shown(url), error.message)
    };
    error
}

/// `{access_token, expires_in}` from an OAuth2 answer.
fn oauth_token(url: &str, answer: &Value) -> Fetched {
    let token = token_field(url, answer, "access_token")?;
    let lifetime = answer["expires_in"]
        .as_u64()
        .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(3600);
    Ok((token, Duration::from_secs(lifetime)))
}

/// The token in `answer`'s string field `name`; an answer without one is a `BAD_RESPONSE`.
fn token_field(url: &str, answer: &Value, name: &str) -> Result<Secret, GcpError> {
    match answer[name].as_str() {
        Some(token) if !token.is_empty() => Ok(Secret::new(token)),
        _ => Err(GcpError::bad_response(
            &path_of(url),
            Some(200),
            format!("{} answered without an {name}", shown(url)),
        )),
    }
}

/// The JWT a service account trades for a token: RS256 over `header.claims`.
fn sign_assertion(
    email: &str,
    key_id: Option<&str>,
    key: &ring::signature::RsaKeyPair,
    audience: &str,
) -> Result<Secret, GcpError> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut header = json!({ "alg": "RS256", "typ": "JWT" });
    if let Some(kid) = key_id {
        header["kid"] = json!(kid);
    }
    let claims = json!({
        "iss": email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600,
    });
    let signed = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| GcpError::config(format!("cannot sign the token request of {email}")))?;
    Ok(Secret::new(format!("{signed}.{}", b64(&signature))))
}

/// `scheme://host[:port]/path`, without query (which may carry parameters, never secrets here).
pub(crate) fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!("{}://{}{}", parsed.scheme(), host_of(url), parsed.path()),
        Err(_) => "(an invalid URL)".into(),
    }
}

fn path_of(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| String::new(), |u| u.path().to_string())
}

#[cfg(test)]
mod tests {
    use super::{refusal_or_retry, Code, Status};

    const URL: &str = "https://oauth2.googleapis.com/token";

    #[test]
    fn only_429_and_5xx_from_a_token_endpoint_are_retried_and_the_status_stays() {
        for status in [429, 500, 502, 503, 504] {
            let error = refusal_or_retry(URL, status, b"<html>busy</html>", "the token endpoint");
            assert!(error.is_retryable(), "{status}: {error}");
            assert_eq!(error.http_status, Some(status));
            assert!(error.message.contains(&format!("HTTP {status}")), "{error}");
        }
        let body = br#"{"error": "invalid_client", "error_description": "Unauthorized"}"#;
        let error = refusal_or_retry(URL, 401, body, "the token endpoint");
        assert!(!error.is_retryable());
        assert_eq!(error.status, Status::Google(Code::Unauthenticated));
        assert!(
            error.message.ends_with(
                "oauth2.googleapis.com/token refused the credentials: invalid_client: Unauthorized"
            ),
            "{error}"
        );
        // generateAccessToken refuses with Google's envelope.
        let body = br#"{"error": {"code": 403, "status": "PERMISSION_DENIED",
            "message": "Permission 'iam.serviceAccounts.getAccessToken' denied", "details": []}}"#;
        let error = refusal_or_retry(URL, 403, body, "the token endpoint");
        assert!(!error.is_retryable());
        assert_eq!(error.status, Status::Google(Code::PermissionDenied));
        assert!(error.message.contains("getAccessToken' denied"), "{error}");
    }
}
