//! Seeded faults and quotas. Every fault decision is drawn from one SplitMix64 stream seeded
//! from the config, so the same calls in the same order meet the same faults. Quotas count
//! calls per API per emulated minute, per consumer project (`quotas`) and per caller
//! (`caller_quotas`); a call is counted only when it has room in both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use crate::config::FaultConfig;
use crate::error::ApiError;

/// A fault a call meets.
#[derive(Debug)]
pub enum Fault {
    /// Google's error answer, instead of the call's.
    Error(ApiError),
    /// The connection closes before the call has any effect: no answer, nothing done.
    Dropped,
    /// The call runs, then the connection closes before its answer is written.
    AnswerLost,
    /// A 200 whose body is `{"done":false,"metadata":{}}` (what a confused front end might
    /// send) instead of the API's answer. The call is not executed: nothing changes.
    WrongBody,
    /// A 200 whose body is not JSON (an HTML page) instead of the API's answer. The call is
    /// not executed: nothing changes.
    NonJsonBody,
}

/// The body of a [`Fault::WrongBody`] answer.
pub const WRONG_BODY: &str = r#"{"done":false,"metadata":{}}"#;
/// The body of a [`Fault::NonJsonBody`] answer.
pub const NON_JSON_BODY: &str = "<html><body>OK</body></html>";

impl Fault {
    /// The 200 answered in place of the call, for the faults that answer without executing it.
    pub fn stand_in(&self) -> Option<axum::response::Response> {
        use axum::response::IntoResponse;
        let (content_type, body) = match self {
            Fault::WrongBody => ("application/json; charset=UTF-8", WRONG_BODY),
            Fault::NonJsonBody => ("text/html; charset=UTF-8", NON_JSON_BODY),
            _ => return None,
        };
        Some(([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response())
    }
}

pub struct Faults {
    state: Mutex<State>,
    quotas: BTreeMap<String, u32>,
    caller_quotas: BTreeMap<String, u32>,
}

/// Whose quota a count is: a consumer project's or a caller's.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Project,
    Caller,
}

struct State {
    rng: u64,
    config: BTreeMap<String, FaultConfig>,
    /// (scope, service, project or caller) → (emulated minute, calls counted in it).
    used: HashMap<(Scope, String, String), (u64, u32)>,
}

impl State {
    /// Calls counted for `key` in `minute` (0 when its count is from an earlier minute).
    fn used(&self, key: &(Scope, String, String), minute: u64) -> u32 {
        self.used
            .get(key)
            .filter(|(at, _)| *at == minute)
            .map_or(0, |(_, used)| *used)
    }

    fn count(&mut self, key: (Scope, String, String), minute: u64) {
        let used = self.used(&key, minute);
        self.used.insert(key, (minute, used + 1));
    }
}

impl State {
    /// The faults configured for `service`, else (when `wildcard`) for every API (`*`).
    fn configured(&self, service: &str, wildcard: bool) -> Option<&FaultConfig> {
        self.config
            .get(service)
            .or_else(|| wildcard.then(|| self.config.get("*")).flatten())
    }
}

impl Faults {
    pub fn new(
        seed: u64,
        config: BTreeMap<String, FaultConfig>,
        quotas: BTreeMap<String, u32>,
        caller_quotas: BTreeMap<String, u32>,
    ) -> Self {
        Faults {
            state: Mutex::new(State {
                rng: seed,
                config,
                used: HashMap::new(),
            }),
            quotas,
            caller_quotas,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> BTreeMap<String, FaultConfig> {
        self.lock().config.clone()
    }

    pub fn set_config(&self, config: BTreeMap<String, FaultConfig>) {
        self.lock().config = config;
    }

    /// Back to the configured faults, with the generator reseeded and quota counts cleared.
    pub fn reset(&self, seed: u64, config: BTreeMap<String, FaultConfig>) {
        *self.lock() = State {
            rng: seed,
            config,
            used: HashMap::new(),
        };
    }

    /// The fault this call meets, if any, and its extra latency (emulated). One roll decides
    /// between the errors, a dropped connection, a lost answer, a wrong body and a non-JSON
    /// body, each range after the ones before it, so configs without the later probabilities
    /// meet the same faults for the same seed as before those existed.
    pub fn draw(&self, service: &str) -> (Option<Fault>, Duration) {
        self.draw_for(service, true)
    }

    /// Like [`Faults::draw`], but only when faults are configured under `service` itself (not
    /// `*`): the token endpoints, whose faults would otherwise change every seeded sequence.
    pub fn draw_named(&self, service: &str) -> (Option<Fault>, Duration) {
        self.draw_for(service, false)
    }

    /// [`Faults::draw`], from the config under `service`, else (when `wildcard`) under `*`.
    fn draw_for(&self, service: &str, wildcard: bool) -> (Option<Fault>, Duration) {
        let mut state = self.lock();
        let Some(fault) = state.configured(service, wildcard).cloned() else {
            return (None, Duration::ZERO);
        };
        let roll = next_unit(&mut state.rng);
        let latency =
            Duration::from_secs_f64(next_unit(&mut state.rng) * fault.extra_latency_ms.max(0.0) / 1000.0);
        // Consecutive ranges of the one roll, in this order (summed left to right, as always).
        let chances = [
            fault.error_500,
            fault.error_503,
            fault.error_429,
            fault.dropped_connection,
            fault.answer_lost,
            fault.wrong_body,
            fault.non_json_body,
        ];
        let mut edge = 0.0;
        let hit = chances.iter().position(|chance| {
            edge += chance;
            roll < edge
        });
        let error = hit.map(|range| match range {
            0 => Fault::Error(internal()),
            1 => Fault::Error(ApiError {
                http: 503,
                status: "UNAVAILABLE",
                message: "The service is currently unavailable.".into(),
                details: vec![],
            }),
            2 => Fault::Error(exhausted(
                service,
                "project_number:",
                "projects/",
                "Requests per minute",
                Duration::from_secs(1),
            )),
            3 => Fault::Dropped,
            4 => Fault::AnswerLost,
            5 => Fault::WrongBody,
            _ => Fault::NonJsonBody,
        });
        (error, latency)
    }

    /// The error a long-running operation a call of `service` starts now ends in, if it is to
    /// fail (`operation_error`): INTERNAL, as Google's own failures show. Drawn from the same
    /// stream, only when `operation_error` is set for the API, so other configs keep their
    /// sequence. Call it once the call is accepted, before the operation's effect is applied.
    pub fn operation_failure(&self, service: &str) -> Option<ApiError> {
        let mut state = self.lock();
        let chance = state
            .configured(service, true)
            .map_or(0.0, |fault| fault.operation_error);
        (chance > 0.0 && next_unit(&mut state.rng) < chance).then(internal)
    }

    /// Counts one call of `service` at emulated `now`, charged to the consumer `project` (when
    /// the call names one) and to `caller`; 429 when either quota has no room left this minute
    /// (the project's is checked first), and then nothing is counted.
    pub fn charge(
        &self,
        service: &str,
        project: Option<&str>,
        caller: &str,
        now: Duration,
    ) -> Result<(), ApiError> {
        let project_limit = project.and_then(|p| Some((p, *self.quotas.get(service)?)));
        let caller_limit = self.caller_quotas.get(service).copied();
        if project_limit.is_none() && caller_limit.is_none() {
            return Ok(());
        }
        let minute = now.as_secs() / 60;
        let wait = Duration::from_secs(60 - now.as_secs() % 60);
        let mut state = self.lock();
        let project_key =
            project_limit.map(|(p, limit)| ((Scope::Project, service.to_string(), p.to_string()), limit));
        let caller_key =
            caller_limit.map(|limit| ((Scope::Caller, service.to_string(), caller.to_string()), limit));
        if let Some((key, limit)) = &project_key {
            if state.used(key, minute) >= *limit {
                return Err(exhausted(
                    service,
                    &format!("project_number:{}", key.2),
                    &format!("projects/{}", key.2),
                    "Requests per minute",
                    wait,
                ));
            }
        }
        if let Some((key, limit)) = &caller_key {
            if state.used(key, minute) >= *limit {
                return Err(exhausted(
                    service,
                    caller,
                    caller,
                    "Requests per minute per user",
                    wait,
                ));
            }
        }
        for (key, _) in project_key.into_iter().chain(caller_key) {
            state.count(key, minute);
        }
        Ok(())
    }
}

fn internal() -> ApiError {
    ApiError {
        http: 500,
        status: "INTERNAL",
        message: "Internal error encountered.".into(),
        details: vec![],
    }
}

/// Google's 429 for a rate quota: `named` is the consumer as the message names it,
/// `consumer` as ErrorInfo and QuotaFailure name it, `limit` the quota's description.
fn exhausted(service: &str, named: &str, consumer: &str, limit: &str, retry: Duration) -> ApiError {
    let mut error = ApiError {
        http: 429,
        status: "RESOURCE_EXHAUSTED",
        message: format!("Quota exceeded for quota metric 'Requests' and limit '{limit}' of service '{service}' for consumer '{named}'."),
        details: vec![],
    }
    .with_error_info("RATE_LIMIT_EXCEEDED", "googleapis.com", json!({ "service": service, "consumer": consumer }));
    error.details.push(json!({ "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{}s", retry.as_secs()) }));
    error.details.push(json!({
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{ "subject": consumer, "description": limit }]
    }));
    error
}

/// A uniform draw in [0, 1) from SplitMix64.
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}
