//! One handler for every path: the admin API under `/_emulator/`, and Google's APIs routed by
//! path (Google's `:verb` suffixes do not fit path templates, so paths are matched as segment
//! slices in each API module). Every API call is logged for the admin API.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use crate::error::ApiError;
use crate::faults::Fault;
use crate::{admin, api, discovery, Emulator};

/// One API call, parsed.
pub struct Call {
    pub method: Method,
    /// Path segments, the `:verb` cut off the last one.
    pub segments: Vec<String>,
    pub verb: Option<String>,
    pub query: Vec<(String, String)>,
    /// The JSON body; `Null` when there is none.
    pub body: Value,
    /// The caller's quota project, when the call says it: `x-goog-user-project`, else the
    /// project of the service account its token was issued to. Client-based APIs check their
    /// enablement there ([`crate::config::ApiKind`]).
    pub quota_project: Option<String>,
    /// The caller as an IAM member (`serviceAccount:EMAIL`) when `POST /token` issued its token
    /// to a service account; `None` for any other token.
    pub caller: Option<String>,
}

impl Call {
    pub fn segments(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
    /// The first value of a query parameter (keys are lowerCamelCase: Google accepts
    /// `page_size` for `pageSize`, and the router rewrites it).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub fn router(emulator: Arc<Emulator>) -> Router {
    Router::new().fallback(handle).with_state(emulator)
}

async fn handle(
    State(emulator): State<Arc<Emulator>>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // Emulated time at arrival, for the request log (every window of it can be checked).
    let arrived = emulator.clock.now();
    if let Some(rest) = path.strip_prefix("/_emulator/") {
        // Admin calls are not logged: the log is for counting API calls.
        return admin::handle(&emulator, &method, rest, &body);
    }
    if path == "/token" || path == "/v1/token" {
        // OAuth2 (oauth2.googleapis.com/token) and STS (sts.googleapis.com/v1/token): no bearer
        // token needed to get one. Faults only when configured under the endpoint's own name.
        let service = if path == "/token" {
            "oauth2.googleapis.com"
        } else {
            "sts.googleapis.com"
        };
        // The token endpoints meet an answer lost as a dropped connection: not executed.
        let fault = match emulator.faults.draw_named(service).0 {
            Some(Fault::AnswerLost) => Some(Fault::Dropped),
            fault => fault,
        };
        let logged = Logged {
            arrived,
            service: Some(service),
        };
        if let Some(response) = preempted(&emulator, &logged, &method, &path, fault.as_ref()) {
            return response;
        }
        let response = match fault {
            Some(Fault::Error(error)) => error.into_response(),
            _ if path == "/token" => api::oauth2::token(&emulator, &headers, &body),
            _ => api::oauth2::sts_token(&emulator, &body),
        };
        logged.log(&emulator, &method, &path, response.status().as_u16());
        return response;
    }
    let service = api::service_of_path(&path);
    let logged = Logged {
        arrived,
        service: service.as_ref().map(|(name, _)| *name),
    };
    if method == Method::POST && path.contains("/operations/") && path.ends_with(":wait") {
        let response = long_poll(&emulator, &path, &query, &headers).await;
        logged.log(&emulator, &method, &path, response.status().as_u16());
        return response;
    }
    // Latency and faults, drawn once per call from the seeded stream.
    let (fault, extra) = match &service {
        Some((name, _)) => emulator.faults.draw(name),
        None => (None, std::time::Duration::ZERO),
    };
    // Latency, and a stall (extra latency), are emulated time: they follow the time scale and
    // end as soon as an advance of the clock carries emulated time past them.
    let latency = std::time::Duration::from_secs_f64(emulator.config.latency_ms.max(0.0) / 1000.0) + extra;
    if !latency.is_zero() {
        emulator.clock.sleep_until(emulator.clock.now() + latency).await;
    }
    if let Some(response) = preempted(&emulator, &logged, &method, &path, fault.as_ref()) {
        return response;
    }
    let (error, lost) = match fault {
        Some(Fault::Error(error)) => (Some(error), false),
        Some(Fault::AnswerLost) => (None, true),
        _ => (None, false),
    };
    let response = api_call(
        &emulator,
        method.clone(),
        &path,
        query,
        &headers,
        &body,
        service,
        error,
    );
    if lost {
        logged.log(&emulator, &method, &path, 0);
        return dropped_connection();
    }
    logged.log(&emulator, &method, &path, response.status().as_u16());
    response
}

/// What the request log records of a call besides its method, path and status.
struct Logged {
    /// Emulated time at arrival.
    arrived: std::time::Duration,
    service: Option<&'static str>,
}

impl Logged {
    fn log(&self, emulator: &Emulator, method: &Method, path: &str, status: u16) {
        emulator.log_request(self.arrived, self.service, method.as_str(), path, status);
    }
}

/// A response whose body fails before its first byte: hyper has only buffered the head when
/// the body errors, and it then closes the connection without flushing, so the client sees the
/// connection close with no answer at all (reqwest: an error from `send()`, no status). Proven
/// by `tests/faults.rs`.
fn dropped_connection() -> Response {
    Response::new(axum::body::Body::new(Dropped))
}

struct Dropped;

impl http_body::Body for Dropped {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection dropped by a seeded fault",
        ))))
    }
}

/// The answer, logged, of a fault that stands in for the whole call, which is not executed: a
/// connection dropped before authentication or any effect, or a 200 with a wrong body.
fn preempted(
    emulator: &Emulator,
    logged: &Logged,
    method: &Method,
    path: &str,
    fault: Option<&Fault>,
) -> Option<Response> {
    let response = match fault? {
        Fault::Dropped => {
            logged.log(emulator, method, path, 0);
            return Some(dropped_connection());
        }
        other => other.stand_in()?,
    };
    logged.log(emulator, method, path, response.status().as_u16());
    Some(response)
}

#[allow(clippy::too_many_arguments)]
fn api_call(
    emulator: &Emulator,
    method: Method,
    path: &str,
    query: Vec<(String, String)>,
    headers: &HeaderMap,
    body: &Bytes,
    service: Option<(&'static str, Option<String>)>,
    fault: Option<ApiError>,
) -> Response {
    if let Err(error) = authenticate(headers) {
        return error.into_response();
    }
    // After authentication, as on Google: an injected fault, then the per-minute quota.
    if let Some(fault) = fault {
        return fault.into_response();
    }
    // Quota is charged to the consumer (the caller's quota project for a client-based API) and
    // to the caller.
    let quota_project = quota_project(emulator, headers);
    if let Some((name, project)) = &service {
        let consumer = project
            .as_ref()
            .map(|project| api::consumer_project(emulator, name, project.clone(), quota_project.as_deref()));
        let caller = emulator.caller(bearer(headers).unwrap_or_default());
        if let Err(exhausted) =
            emulator
                .faults
                .charge(name, consumer.as_deref(), &caller, emulator.clock.now())
        {
            return exhausted.into_response();
        }
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => {
                return ApiError::invalid_argument(format!("Invalid JSON payload received. {error}"))
                    .into_response()
            }
        }
    };
    // Google accepts proto (snake_case) field names on input, and refuses fields its schema does
    // not have; map keys and free-form content are kept exactly as sent.
    // One look-up of the method serves both; a call without a body needs neither.
    let body = match discovery::find_method(method.as_str(), path) {
        Some(found) if !body.is_null() => {
            let body = discovery::camel_case_request(found, body);
            if let Some(problem) = request_problem(found, &body) {
                return ApiError::invalid_argument(format!("Invalid JSON payload received. {problem}"))
                    .into_response();
            }
            body
        }
        _ => body,
    };
    let mut segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let verb = segments.last_mut().and_then(|last| {
        let (name, verb) = last.split_once(':')?;
        let verb = verb.to_string();
        *last = name.to_string();
        Some(verb)
    });
    let query = query
        .into_iter()
        .map(|(k, v)| (discovery::snake_to_camel(&k), v))
        .collect();
    let call = Call {
        method,
        segments,
        verb,
        query,
        body,
        quota_project,
        caller: bearer(headers)
            .and_then(|token| emulator.token_account(token))
            .map(|email| format!("serviceAccount:{email}")),
    };
    match api::dispatch(emulator, &call) {
        Some(Ok(value)) => axum::Json(value).into_response(),
        Some(Err(error)) => error.into_response(),
        None => ApiError::not_found(format!("The requested URL {path} was not found on this server."))
            .into_response(),
    }
}

/// The first way `body` breaks the request schema of the method `found`, if any.
fn request_problem(found: &discovery::Method, body: &Value) -> Option<String> {
    let schema = found.request.as_deref()?;
    let first = discovery::check(found.document, schema, body)
        .into_iter()
        .next()?;
    Some(match first.split_once(": unknown field ") {
        Some((at, name)) => {
            format!(
                "Unknown name {} at '{}': Cannot find field.",
                name.replace('`', "\""),
                at.trim_start_matches("$.")
            )
        }
        None => first,
    })
}

/// The call's bearer token, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// The quota project a client-based API charges, as Google finds it ("Set the quota project":
/// the project named in the request, else the service account's project): `x-goog-user-project`,
/// else the project of the service account `POST /token` issued the call's token to.
fn quota_project(emulator: &Emulator, headers: &HeaderMap) -> Option<String> {
    let named = headers
        .get("x-goog-user-project")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty());
    match named {
        Some(project) => Some(project.to_string()),
        None => emulator.token_project(bearer(headers)?),
    }
}

fn authenticate(headers: &HeaderMap) -> Result<(), ApiError> {
    if bearer(headers).is_some() {
        Ok(())
    } else {
        Err(ApiError::unauthenticated(
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        ))
    }
}

/// `POST {operation}:wait?timeout=…` (Vertex AI): holds the call until the operation is done or
/// the timeout (emulated time, default 60 s, at most 10 minutes) has passed, then answers the
/// operation as it stands. Emulated time advanced through the admin API counts too.
async fn long_poll(
    emulator: &Emulator,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    if let Err(error) = authenticate(headers) {
        return error.into_response();
    }
    let name = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, rest)| rest)
        .trim_end_matches(":wait");
    let timeout = match query
        .iter()
        .find(|(k, _)| k == "timeout")
        .map(|(_, v)| v.as_str())
    {
        None => 60.0,
        Some(text) => match text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()) {
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => seconds.min(600.0),
            _ => {
                return ApiError::invalid_argument(format!(
                    "Invalid timeout `{text}`: write a duration like `10s`"
                ))
                .into_response()
            }
        },
    };
    let deadline = emulator.clock.after(timeout);
    loop {
        let now = emulator.clock.now();
        let Some((operation, done_at)) = emulator
            .world()
            .operations
            .get(name)
            .map(|op| (op.to_json(now), op.done_at))
        else {
            return ApiError::not_found(format!("Operation {name} not found.")).into_response();
        };
        if operation["done"] == true || now >= deadline {
            return axum::Json(operation).into_response();
        }
        // An operation is done once emulated time reaches `done_at`: wait for that or the
        // timeout, in emulated time, then look again.
        emulator.clock.sleep_until(deadline.min(done_at)).await;
    }
}
