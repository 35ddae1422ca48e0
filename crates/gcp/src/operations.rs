//! Long-running operations of the five families Sluice meets, read with one shape:
//! [`Operation`]. Vertex AI is long-polled with `:wait`; the others are read with GET on a
//! [`PollSchedule`] (capped exponential, no jitter). A done operation is never read again.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::client::GcpClient;
use crate::error::GcpError;
use crate::options::Api;

/// Which API an operation belongs to (its host, and whether it can be long-polled).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OperationFamily {
    /// `operations/…` on serviceusage (polled at `v1/operations/{id}`).
    ServiceUsage,
    /// `projects/P/locations/L/operations/…` on networkservices.
    NetworkServices,
    /// `projects/N/locations/L/…/operations/…` on `{region}-aiplatform`; has `:wait`.
    VertexAi { region: String },
    /// `projects/P/locations/L/operations/…` on agentregistry.
    AgentRegistry,
    /// `operations/cp.…` on cloudresourcemanager (polled at `v3/operations/{id}`): project
    /// create, delete and undelete.
    ResourceManager,
}

impl OperationFamily {
    pub fn api(&self) -> Api {
        match self {
            OperationFamily::ServiceUsage => Api::ServiceUsage,
            OperationFamily::NetworkServices => Api::NetworkServices,
            OperationFamily::VertexAi { region } => Api::VertexAi {
                region: region.clone(),
            },
            OperationFamily::AgentRegistry => Api::AgentRegistry,
            OperationFamily::ResourceManager => Api::ResourceManager,
        }
    }
}

/// The error of a finished operation: a bare `google.rpc.Status` with a numeric code.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationError {
    /// Canonical code: 7 PERMISSION_DENIED, 9 FAILED_PRECONDITION, 13 INTERNAL, …
    pub code: i32,
    pub message: String,
    pub details: Vec<Value>,
}

/// A long-running operation as any of the four APIs returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub name: String,
    /// `done` is absent while running, which reads as false.
    pub done: bool,
    pub response: Option<Value>,
    pub error: Option<OperationError>,
    pub metadata: Option<Value>,
}

/// The name Service Usage gives operations that were done when returned
/// (generateServiceIdentity); reading it answers 400.
pub const DONE_OPERATION: &str = "finished.DONE_OPERATION";

impl Operation {
    pub fn from_json(v: &Value) -> Result<Self, GcpError> {
        let bad = |why: &str| {
            let shown = crate::answers::bounded(&v.to_string(), 200);
            GcpError::bad_response("", None, format!("not a long-running operation ({why}): {shown}"))
        };
        let name = v["name"].as_str().ok_or_else(|| bad("no name"))?.to_string();
        let done = match &v["done"] {
            Value::Null => false,
            Value::Bool(done) => *done,
            _ => return Err(bad("done is not a boolean")),
        };
        let error = match v.get("error") {
            None | Some(Value::Null) => None,
            Some(error) => Some(OperationError {
                code: error["code"].as_i64().unwrap_or(2) as i32,
                message: error["message"].as_str().unwrap_or_default().to_string(),
                details: error["details"].as_array().cloned().unwrap_or_default(),
            }),
        };
        Ok(Operation {
            name,
            done,
            response: v.get("response").filter(|r| !r.is_null()).cloned(),
            error,
            metadata: v.get("metadata").filter(|m| !m.is_null()).cloned(),
        })
    }

    /// True for names that must not be read again (`finished.DONE_OPERATION`).
    pub fn is_finished_name(name: &str) -> bool {
        name == DONE_OPERATION || name.starts_with("finished.")
    }
}

/// Delays between polls: `initial × multiplier^i`, capped; no jitter (pure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSchedule {
    pub initial: Duration,
    pub multiplier: f64,
    pub cap: Duration,
}

impl PollSchedule {
    /// The (unscaled) wait before poll `poll_index` (0 = the first poll after the start).
    pub fn delay(&self, poll_index: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(poll_index.min(64) as i32);
        let seconds = (self.initial.as_secs_f64() * factor).min(self.cap.as_secs_f64());
        Duration::from_secs_f64(seconds.max(0.0))
    }

    /// Defaults per family. Service Usage enables take seconds: 1 s ×2 up to 20 s. Gateways
    /// take minutes: 5 s ×2 up to 60 s. Agent Registry: 2 s ×2 up to 30 s. Vertex AI is
    /// long-polled; between `:wait` calls 10 s ×2 up to 60 s (Google's SDK polls every 10 s).
    pub fn for_family(family: &OperationFamily) -> Self {
        let (initial, cap) = match family {
            OperationFamily::ServiceUsage => (1, 20),
            OperationFamily::NetworkServices => (5, 60),
            OperationFamily::AgentRegistry => (2, 30),
            OperationFamily::VertexAi { .. } => (10, 60),
            OperationFamily::ResourceManager => (2, 20),
        };
        PollSchedule {
            initial: Duration::from_secs(initial),
            multiplier: 2.0,
            cap: Duration::from_secs(cap),
        }
    }
}

impl GcpClient {
    /// Reads an operation once (`GET v1/{name}` on the family's host; `v3/{name}` for Resource
    /// Manager). Refuses `finished.DONE_OPERATION`: it was done when returned and cannot be read.
    pub async fn get_operation(&self, family: &OperationFamily, name: &str) -> Result<Operation, GcpError> {
        refuse_finished(name)?;
        let version = match family {
            OperationFamily::ResourceManager => "v3",
            _ => "v1",
        };
        self.get_as(&family.api(), &format!("{version}/{name}")).await
    }

    /// Waits for an operation as the API allows: Vertex AI holds `POST v1/{name}:wait?timeout=Ns`
    /// until done or `timeout` (server time); the other families answer one GET. Either way
    /// the result may still be running.
    pub async fn wait_operation(
        &self,
        family: &OperationFamily,
        name: &str,
        timeout: Duration,
    ) -> Result<Operation, GcpError> {
        refuse_finished(name)?;
        let OperationFamily::VertexAi { .. } = family else {
            return self.get_operation(family, name).await;
        };
        let seconds = timeout.as_secs().max(1);
        let path = format!("v1/{name}:wait?timeout={seconds}s");
        // The server holds the call for `timeout`; the exchange may take a minute more (emulated).
        let http_timeout = crate::retry::scaled_timeout(timeout + Duration::from_secs(60), self.time_scale());
        self.call(
            Method::POST,
            &family.api(),
            &path,
            Some(&serde_json::json!({})),
            true,
            Some(http_timeout),
        )
        .await
    }

    /// Polls until the operation is done: `:wait` calls for Vertex AI, otherwise GETs spaced
    /// by `schedule` (scaled by the client's time scale). Gives up after `max_polls` reads
    /// with the last (still running) state as a DEADLINE_EXCEEDED error.
    pub async fn poll_operation(
        &self,
        family: &OperationFamily,
        operation: Operation,
        schedule: PollSchedule,
        max_polls: u32,
    ) -> Result<Operation, GcpError> {
        let mut current = operation;
        for index in 0..max_polls {
            if current.done {
                return Ok(current);
            }
            if matches!(family, OperationFamily::VertexAi { .. }) {
                current = self.wait_operation(family, &current.name, schedule.cap).await?;
            } else {
                tokio::time::sleep(crate::retry::scaled(schedule.delay(index), self.time_scale())).await;
                current = self.get_operation(family, &current.name).await?;
            }
        }
        if current.done {
            return Ok(current);
        }
        Err(GcpError {
            status: "DEADLINE_EXCEEDED".into(),
            ..GcpError::usage(
                &current.name,
                format!("operation {} still running after {max_polls} polls", current.name),
            )
        })
    }
}

fn refuse_finished(name: &str) -> Result<(), GcpError> {
    if Operation::is_finished_name(name) {
        return Err(GcpError::usage(
            name,
            format!("{name} was already done when it was returned: use that answer; it cannot be polled"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schedule_doubles_to_its_cap_without_jitter() {
        let schedule = PollSchedule::for_family(&OperationFamily::ServiceUsage);
        let secs: Vec<u64> = (0..7).map(|i| schedule.delay(i).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 20, 20]);
        assert_eq!(schedule.delay(1000), Duration::from_secs(20));
        assert_eq!(schedule.delay(3), schedule.delay(3), "pure");
    }

    #[test]
    fn operations_parse_running_done_and_failed() {
        let running =
            Operation::from_json(&json!({"name": "operations/a", "metadata": {"@type": "x"}})).unwrap();
        assert!(!running.done && running.metadata.is_some() && running.response.is_none());
        let failed = Operation::from_json(&json!({"name": "operations/a", "done": true,
            "error": {"code": 9, "message": "no", "details": [{"@type": "t"}]}}))
        .unwrap();
        assert_eq!(failed.error.unwrap().code, 9);
        assert!(Operation::from_json(&json!({"done": true})).is_err());
    }
}
