//! Google's error model: the JSON envelope of a failed call, and the bare `Status` inside a
//! failed long-running operation.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Google's canonical status names (`google.rpc.Code`), each at the index of its number.
const CANONICAL_STATUSES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A failed call, as Google reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApiError {
    pub http: u16,
    /// The canonical status name, e.g. `FAILED_PRECONDITION`.
    pub status: &'static str,
    pub message: String,
    /// `google.rpc` detail messages (ErrorInfo, RetryInfo, …), each with its `@type`.
    pub details: Vec<Value>,
}

impl ApiError {
    fn new(http: u16, status: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            http,
            status,
            message: message.into(),
            details: vec![],
        }
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(400, "FAILED_PRECONDITION", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "UNAUTHENTICATED", message)
    }
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(403, "PERMISSION_DENIED", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(409, "ALREADY_EXISTS", message)
    }
    /// 409 ABORTED: a concurrent change (a stale etag).
    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(409, "ABORTED", message)
    }
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(501, "UNIMPLEMENTED", message)
    }

    /// An ErrorInfo detail, as Google attaches to most errors.
    pub fn with_error_info(mut self, reason: &str, domain: &str, metadata: Value) -> Self {
        self.details.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason, "domain": domain, "metadata": metadata
        }));
        self
    }

    /// 403 for a call to an API that is not enabled (or not usable yet) in the project.
    pub fn service_disabled(service: &str, project_number: u64) -> Self {
        let title = service.trim_end_matches(".googleapis.com");
        Self::permission_denied(format!(
            "{title} API has not been used in project {project_number} before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/{service}/overview?project={project_number} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry."
        ))
        .with_error_info(
            "SERVICE_DISABLED",
            "googleapis.com",
            json!({
                "service": service,
                "consumer": format!("projects/{project_number}"),
                "activationUrl": format!("https://console.developers.google.com/apis/api/{service}/overview?project={project_number}"),
            }),
        )
    }

    /// The numeric `google.rpc.Code` of the status (UNKNOWN for a name that is not one).
    pub fn rpc_code(&self) -> i64 {
        CANONICAL_STATUSES
            .iter()
            .position(|name| *name == self.status)
            .and_then(|index| i64::try_from(index).ok())
            .unwrap_or(2)
    }

    /// The bare `Status` used inside a failed operation. `details` is left out when empty, as
    /// Google's proto3 JSON leaves out every empty list.
    pub fn to_status(&self) -> Value {
        let mut status = json!({ "code": self.rpc_code(), "message": self.message });
        if !self.details.is_empty() {
            status["details"] = json!(self.details);
        }
        status
    }

    /// The JSON envelope of a failed call; `details` is left out when empty, as on Google.
    pub fn to_envelope(&self) -> Value {
        let mut error = json!({ "code": self.http, "message": self.message, "status": self.status });
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_envelope())).into_response()
    }
}

/// An [`ApiError`] as a world snapshot holds it (a failed operation's outcome): read back only
/// with one of Google's canonical status names.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredError {
    http: u16,
    status: String,
    message: String,
    details: Vec<Value>,
}

impl<'de> serde::Deserialize<'de> for ApiError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredError::deserialize(deserializer)?;
        let status = CANONICAL_STATUSES
            .iter()
            .find(|known| **known == stored.status)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("`{}` is not a canonical status name", stored.status))
            })?;
        Ok(ApiError {
            http: stored.http,
            status,
            message: stored.message,
            details: stored.details,
        })
    }
}
