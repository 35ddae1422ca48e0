//! [`GcpError`]: Google's error envelope, typed. Built from an HTTP answer, a transport failure
//! or a configuration problem; never holds a token or a header.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::code::Code;

/// What went wrong: Google's canonical code, or what the client itself saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Google's canonical code: the envelope's `status`, else the HTTP status's.
    Google(Code),
    /// No answer (connection refused or reset, timeout, broken body).
    Transport,
    /// Bad options or credentials: the client was not built.
    Config,
    /// A 2xx answer that is not JSON, or lacks the fields its caller relies on: retried like a
    /// 5xx, since a proxy or a server fault answered, not the API's result.
    BadResponse,
    /// A server certificate the client does not trust: final, never retried.
    Tls,
    /// A caller asked for something the client refuses to do (e.g. poll a done operation).
    ClientUsage,
    /// The long-running operation a call started ended in error.
    OperationFailed,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client_side = match self {
            Status::Google(code) => return code.fmt(f),
            Status::Transport => "TRANSPORT",
            Status::Config => "CONFIG",
            Status::BadResponse => "BAD_RESPONSE",
            Status::Tls => "TLS",
            Status::ClientUsage => "CLIENT_USAGE",
            Status::OperationFailed => "OPERATION_FAILED",
        };
        f.write_str(client_side)
    }
}

/// A failed call, or a client that cannot be built. `status` is Google's canonical code
/// ([`Status::Google`]: `ABORTED`, `NOT_FOUND`, …), or what the client saw itself
/// (`TRANSPORT`, `CONFIG`, `BAD_RESPONSE`, `TLS`, `CLIENT_USAGE`, `OPERATION_FAILED`).
#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub struct GcpError {
    pub http_status: Option<u16>,
    pub status: Status,
    pub message: String,
    /// `google.rpc.ErrorInfo.reason`, e.g. `SERVICE_DISABLED`, `RATE_LIMIT_EXCEEDED`.
    pub reason: Option<String>,
    /// `google.rpc.RetryInfo.retryDelay`, or the `Retry-After` header, as the server sent it
    /// (unscaled).
    pub retry_delay: Option<Duration>,
    /// Every entry of the envelope's `details`, as sent.
    pub details: Vec<Value>,
    /// The URL path (and query) called, without host or credentials; empty when no call was made.
    pub url: String,
    /// For a `SERVICE_DISABLED` error: the API's state in the consumer project as Service Usage
    /// reported it just after (`ENABLED`: enabled, not usable yet; `DISABLED`: nobody enabled
    /// it). `None` when not asked or not known.
    pub service_state: Option<String>,
}

impl fmt::Display for GcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        if let Some(http) = self.http_status {
            write!(f, " (HTTP {http})")?;
        }
        if !self.url.is_empty() {
            write!(f, " from {}", self.url)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(reason) = &self.reason {
            write!(f, " [reason {reason}]")?;
        }
        Ok(())
    }
}

impl GcpError {
    fn new(status: Status, message: impl Into<String>) -> Self {
        GcpError {
            http_status: None,
            status,
            message: message.into(),
            reason: None,
            retry_delay: None,
            details: vec![],
            url: String::new(),
            service_state: None,
        }
    }

    /// Bad options or credentials: the client was not built.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Status::Config, message)
    }

    /// No answer (connection refused or reset, timeout, broken body).
    pub fn transport(url: &str, message: impl Into<String>) -> Self {
        GcpError {
            url: url.to_string(),
            ..Self::new(Status::Transport, message)
        }
    }

    /// A server certificate the client does not trust: final, never retried.
    pub(crate) fn tls(url: &str, message: impl Into<String>) -> Self {
        GcpError {
            url: url.to_string(),
            ..Self::new(Status::Tls, message)
        }
    }

    /// A caller asked for something the client refuses to do (e.g. poll a done operation).
    pub fn usage(url: &str, message: impl Into<String>) -> Self {
        GcpError {
            url: url.to_string(),
            ..Self::new(Status::ClientUsage, message)
        }
    }

    /// The long-running operation `name` ended in error (`message` says which and why).
    pub fn operation_failed(name: &str, message: impl Into<String>) -> Self {
        GcpError {
            url: name.to_string(),
            ..Self::new(Status::OperationFailed, message)
        }
    }

    /// An answer whose body is not what was expected (not JSON, not an operation, a role
    /// without its etag, …). Retryable: [`GcpError::is_bad_response`].
    pub fn bad_response(url: &str, http_status: Option<u16>, message: impl Into<String>) -> Self {
        GcpError {
            url: url.to_string(),
            http_status,
            ..Self::new(Status::BadResponse, message)
        }
    }

    /// The error of a non-2xx answer: Google's envelope when the body is one, otherwise an
    /// error naming the path and HTTP status. `retry_after` is the `Retry-After` header.
    pub fn from_response(url: &str, http_status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let envelope = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .filter(|e| e.is_object());
        let Some(error) = envelope else {
            let snippet = crate::answers::bounded(&String::from_utf8_lossy(body), 200);
            return GcpError {
                http_status: Some(http_status),
                status: Status::Google(code_of_http(http_status)),
                message: format!(
                    "HTTP {http_status} from {url} with a body that is not Google's error envelope: {snippet:?}"
                ),
                retry_delay: retry_after,
                url: url.to_string(),
                ..Self::new(Status::Google(Code::Unknown), "")
            };
        };
        let details = error["details"].as_array().cloned().unwrap_or_default();
        let reason = of_type(&details, ERROR_INFO)
            .next()
            .and_then(|d| d["reason"].as_str())
            .map(str::to_string);
        let retry_info = of_type(&details, "google.rpc.RetryInfo")
            .next()
            .and_then(|d| parse_duration(&d["retryDelay"]));
        let code = error["status"]
            .as_str()
            .map(Code::from_name)
            .unwrap_or_else(|| code_of_http(http_status));
        GcpError {
            http_status: Some(http_status),
            status: Status::Google(code),
            // A server may answer with a huge message; it is printed with every retry.
            message: crate::answers::bounded(
                error["message"].as_str().unwrap_or_default(),
                MAX_MESSAGE_CHARS,
            ),
            reason,
            retry_delay: retry_info.or(retry_after),
            details,
            url: url.to_string(),
            service_state: None,
        }
    }

    /// Google's code, when Google (or the HTTP status) gave one.
    pub fn code(&self) -> Option<&Code> {
        match &self.status {
            Status::Google(code) => Some(code),
            _ => None,
        }
    }
    fn is(&self, code: Code) -> bool {
        self.code() == Some(&code)
    }
    pub fn is_not_found(&self) -> bool {
        self.is(Code::NotFound)
    }
    pub fn is_already_exists(&self) -> bool {
        self.is(Code::AlreadyExists)
    }
    /// A concurrent change (stale etag): redo the whole read-modify-write.
    pub fn is_aborted(&self) -> bool {
        self.is(Code::Aborted)
    }
    pub fn is_failed_precondition(&self) -> bool {
        self.is(Code::FailedPrecondition)
    }
    pub fn is_permission_denied(&self) -> bool {
        self.is(Code::PermissionDenied)
    }
    pub fn is_unauthenticated(&self) -> bool {
        self.is(Code::Unauthenticated)
    }
    pub fn is_invalid_argument(&self) -> bool {
        self.is(Code::InvalidArgument)
    }
    /// The API is not enabled (or not usable yet) in the project.
    pub fn is_service_disabled(&self) -> bool {
        self.reason.as_deref() == Some("SERVICE_DISABLED")
    }
    /// SERVICE_DISABLED for an API that Service Usage reports DISABLED: nothing enabled it, so
    /// waiting cannot help (unlike an API enabled moments ago, which is not usable yet).
    pub fn is_service_never_enabled(&self) -> bool {
        self.is_service_disabled() && self.service_state.as_deref() == Some("DISABLED")
    }
    /// A field of the `ErrorInfo` metadata (`service`, `consumer`, …).
    pub fn error_info(&self, key: &str) -> Option<&str> {
        of_type(&self.details, ERROR_INFO).find_map(|d| d["metadata"][key].as_str())
    }
    /// A policy write named a member that does not exist (yet): 400 "… does not exist."
    /// on an IAM policy call.
    pub fn is_member_missing(&self) -> bool {
        self.http_status == Some(400)
            && self.url.contains("IamPolicy")
            && self.message.contains("does not exist")
            && !self.message.starts_with("Role ")
    }
    /// A 2xx answer that was not JSON or lacked the fields its caller relies on. It says
    /// nothing of whether the call took effect: the caller reads again before trusting it.
    pub fn is_bad_response(&self) -> bool {
        self.status == Status::BadResponse
    }
    /// A rate quota ran out (HTTP 429 RESOURCE_EXHAUSTED): Google refused the call before running
    /// it. The client retries it without using up attempts, within its `quota_patience`.
    pub fn is_quota_exhausted(&self) -> bool {
        self.http_status == Some(429) && self.is(Code::ResourceExhausted)
    }
    /// Worth another attempt: 429, 500, 502, 503, 504, no answer, or a bad answer.
    pub fn is_retryable(&self) -> bool {
        self.status == Status::Transport
            || self.is_bad_response()
            || matches!(self.http_status, Some(429 | 500 | 502 | 503 | 504))
    }
}

/// How much of a server's error message is kept (and so printed): Google's own messages are a
/// sentence or two; anything longer is cut, ending in `…`.
pub const MAX_MESSAGE_CHARS: usize = 1000;

const ERROR_INFO: &str = "google.rpc.ErrorInfo";

/// The entries of an envelope's `details` whose `@type` ends with `suffix`
/// (`type.googleapis.com/google.rpc.ErrorInfo`).
fn of_type<'a>(details: &'a [Value], suffix: &'a str) -> impl Iterator<Item = &'a Value> {
    details
        .iter()
        .filter(move |d| d["@type"].as_str().is_some_and(|t| t.ends_with(suffix)))
}

/// Google's canonical code for an HTTP status, for bodies without an envelope.
fn code_of_http(http: u16) -> Code {
    match http {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        500..=599 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// A protobuf JSON duration (`"2s"`, `"0.5s"`, `"1.000340012s"`).
pub fn parse_duration(value: &Value) -> Option<Duration> {
    let seconds: f64 = value.as_str()?.strip_suffix('s')?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_envelope_gives_status_reason_and_retry_delay() {
        let body = json!({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED", "domain": "googleapis.com"},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}
        ]}});
        let error = GcpError::from_response(
            "/v1/x",
            429,
            body.to_string().as_bytes(),
            Some(Duration::from_secs(9)),
        );
        assert_eq!(error.status, Status::Google(Code::ResourceExhausted));
        assert_eq!(error.reason.as_deref(), Some("RATE_LIMIT_EXCEEDED"));
        assert_eq!(
            error.retry_delay,
            Some(Duration::from_millis(500)),
            "RetryInfo wins over Retry-After"
        );
        assert_eq!(error.details.len(), 2);
        assert!(error.is_retryable());
    }

    #[test]
    fn a_body_that_is_not_an_envelope_names_the_path_and_status() {
        let error = GcpError::from_response(
            "/v1/projects/p",
            502,
            b"<html>Bad Gateway</html>",
            Some(Duration::from_secs(3)),
        );
        assert_eq!(error.http_status, Some(502));
        assert_eq!(error.status, Status::Google(Code::Internal));
        assert!(
            error.message.contains("/v1/projects/p") && error.message.contains("502"),
            "{error}"
        );
        assert_eq!(error.retry_delay, Some(Duration::from_secs(3)));
        assert!(error.is_retryable());
    }

    #[test]
    fn a_status_this_client_does_not_know_is_kept_as_sent() {
        let body = json!({"error": {"code": 400, "message": "new", "status": "SOMETHING_NEW"}});
        let error = GcpError::from_response("/v1/x", 400, body.to_string().as_bytes(), None);
        assert_eq!(
            error.status,
            Status::Google(Code::Unrecognized(crate::Unrecognized::Name(
                "SOMETHING_NEW".into()
            )))
        );
        assert!(
            error.to_string().starts_with("SOMETHING_NEW (HTTP 400)"),
            "{error}"
        );
        assert!(!error.is_retryable() && error.code().is_some());
        let without_status = json!({"error": {"code": 404, "message": "gone"}});
        let error = GcpError::from_response("/v1/x", 404, without_status.to_string().as_bytes(), None);
        assert!(error.is_not_found(), "the HTTP status's code: {error}");
        assert_eq!(GcpError::transport("/v1/x", "reset").code(), None);
        assert_eq!(
            GcpError::transport("/v1/x", "reset").to_string(),
            "TRANSPORT from /v1/x: reset"
        );
    }

    #[test]
    fn a_huge_server_message_is_cut() {
        let huge = "x".repeat(1_000_000);
        let body = json!({"error": {"code": 400, "message": huge, "status": "INVALID_ARGUMENT"}});
        let error = GcpError::from_response("/v1/x", 400, body.to_string().as_bytes(), None);
        assert_eq!(error.message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(error.message.ends_with('…'));
        assert!(error.to_string().len() < 1200);
    }

    #[test]
    fn durations_parse_like_protobuf_json() {
        assert_eq!(parse_duration(&json!("2s")), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration(&json!("0.5s")), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration(&json!("soon")), None);
        assert_eq!(parse_duration(&json!(2)), None);
    }
}
