//! The admin API under `/_emulator/` (no authentication; loopback only):
//! - `GET state`: every resource: projects (services, service agents, IAM grants), custom roles,
//!   agent gateways, authorization extensions and policies, reasoning engines, Agent Registry services and agents, custom constraints
//!   and policies, and the operation count;
//! - `GET requests`: the log of calls (`method`, `path`, `status`, `service` (the API's service
//!   name, or null), `arrivedMs` (emulated milliseconds at arrival, so every 60-second window can
//!   be counted), `atSeconds` (emulated seconds when answered)), the
//!   most recent `request_log_limit` of them (`GET state` says how many older ones were dropped);
//!   a call whose connection was dropped by a fault (`dropped_connection` or `answer_lost`) is
//!   logged with status 0;
//! - `POST clock` `{"advance_seconds": N}`: make N emulated seconds pass at once;
//! - `GET faults` / `POST faults`: the fault settings by API (replaced whole by POST);
//! - `POST reset`: rebuild the world from the config and clear the log.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::Emulator;

pub fn handle(emulator: &Emulator, method: &Method, path: &str, body: &[u8]) -> Response {
    let now = emulator.clock.now();
    match (method.as_str(), path) {
        ("GET", "state") => {
            let mut state = emulator.world().to_json(now);
            state["nowSeconds"] = json!(now.as_secs_f64());
            state["requestsDropped"] = json!(emulator.request_log().dropped);
            state["waitingCalls"] = json!(emulator.clock.waiting());
            axum::Json(state).into_response()
        }
        ("GET", "requests") => axum::Json(emulator.requests()).into_response(),
        ("POST", "clock") => {
            let seconds = serde_json::from_slice::<Value>(body).ok().and_then(|b| b["advance_seconds"].as_f64());
            match seconds {
                Some(s) if s >= 0.0 && s.is_finite() => {
                    emulator.clock.advance(Duration::from_secs_f64(s));
                    axum::Json(json!({ "nowSeconds": emulator.clock.now().as_secs_f64() })).into_response()
                }
                _ => ApiError::invalid_argument("POST /_emulator/clock takes {\"advance_seconds\": N} with N ≥ 0")
                    .into_response(),
            }
        }
        ("GET", "faults") => axum::Json(json!(emulator.faults.config())).into_response(),
        ("POST", "faults") => match serde_json::from_slice(body) {
            Ok(config) => {
                emulator.faults.set_config(config);
                axum::Json(json!(emulator.faults.config())).into_response()
            }
            Err(error) => ApiError::invalid_argument(format!(
                "POST /_emulator/faults takes {{\"API or *\": {{\"error_500\": p, \"error_503\": p, \"error_429\": p, \"dropped_connection\": p, \"answer_lost\": p, \"operation_error\": p, \"extra_latency_ms\": ms}}}}: {error}"
            ))
            .into_response(),
        },
        ("POST", "reset") => {
            emulator.reset();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => ApiError::not_found(format!(
            "no admin endpoint {method} /_emulator/{path}; there are GET state, GET requests, POST clock, GET/POST faults, POST reset"
        ))
        .into_response(),
    }
}
