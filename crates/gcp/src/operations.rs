//! Long-running operations of the five families Sluice meets, read with one shape:
//! [`Operation`]. Vertex AI is long-polled with `:wait`; the others are read with one GET each
//! ([`GcpClient::wait_operation`]); how often is the caller's poll schedule (the engine's
//! `PollPolicy`). A done operation is never read again. [`GoogleOperation`] names one
//! operation (family and name), serialisable as the handle a step persists.

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::client::GcpClient;
use crate::code::{self, Code};
use crate::error::GcpError;
use crate::options::Api;

/// Which API an operation belongs to (its host, and whether it can be long-polled).
///
/// Serialised as `{"family": "service_usage" | "network_services" | "vertex_ai" |
/// "agent_registry" | "resource_manager" | "network_security", "region": REGION | null}` (the
/// region only for Vertex AI): the shape of the operation handles already in users' stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "FamilyRecord", try_from = "FamilyRecord")]
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
    /// `projects/P/locations/L/operations/…` on networksecurity.
    NetworkSecurity,
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
            OperationFamily::NetworkSecurity => Api::NetworkSecurity,
        }
    }
}

/// How [`OperationFamily`] is stored.
#[derive(Serialize, Deserialize)]
struct FamilyRecord {
    family: FamilyTag,
    region: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FamilyTag {
    ServiceUsage,
    NetworkServices,
    VertexAi,
    AgentRegistry,
    ResourceManager,
    NetworkSecurity,
}

impl From<OperationFamily> for FamilyRecord {
    fn from(family: OperationFamily) -> Self {
        let (family, region) = match family {
            OperationFamily::ServiceUsage => (FamilyTag::ServiceUsage, None),
            OperationFamily::NetworkServices => (FamilyTag::NetworkServices, None),
            OperationFamily::VertexAi { region } => (FamilyTag::VertexAi, Some(region)),
            OperationFamily::AgentRegistry => (FamilyTag::AgentRegistry, None),
            OperationFamily::ResourceManager => (FamilyTag::ResourceManager, None),
            OperationFamily::NetworkSecurity => (FamilyTag::NetworkSecurity, None),
        };
        FamilyRecord { family, region }
    }
}

impl TryFrom<FamilyRecord> for OperationFamily {
    type Error = String;
    fn try_from(record: FamilyRecord) -> Result<Self, String> {
        Ok(match record.family {
            FamilyTag::ServiceUsage => OperationFamily::ServiceUsage,
            FamilyTag::NetworkServices => OperationFamily::NetworkServices,
            FamilyTag::VertexAi => OperationFamily::VertexAi {
                region: record.region.ok_or("a vertex_ai operation needs its region")?,
            },
            FamilyTag::AgentRegistry => OperationFamily::AgentRegistry,
            FamilyTag::ResourceManager => OperationFamily::ResourceManager,
            FamilyTag::NetworkSecurity => OperationFamily::NetworkSecurity,
        })
    }
}

/// One long-running operation: its family and its name. Serialised as
/// `{"family": …, "region": …, "name": …}` (see [`OperationFamily`]), the handle steps persist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GoogleOperation {
    #[serde(flatten)]
    pub family: OperationFamily,
    pub name: String,
}

/// The error of a finished operation: a bare `google.rpc.Status`, its code a number on the
/// wire. A field that is missing or malformed reads as its default (code UNKNOWN, no message,
/// no details): a failed operation stays a failed operation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OperationError {
    /// Canonical code: 7 PERMISSION_DENIED, 9 FAILED_PRECONDITION, 13 INTERNAL, …
    #[serde(serialize_with = "code::as_number", deserialize_with = "or_default", default)]
    pub code: Code,
    #[serde(deserialize_with = "or_default", default)]
    pub message: String,
    #[serde(deserialize_with = "or_default", default)]
    pub details: Vec<Value>,
}

impl std::fmt::Display for OperationError {
    /// `code 9 MESSAGE` (the number, or an unrecognised name as sent).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code.number() {
            Some(number) => write!(f, "code {number} {}", self.message),
            None => write!(f, "code {} {}", self.code, self.message),
        }
    }
}

/// The field as `T`, or `T`'s default when it is of another type.
fn or_default<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
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
            Some(error) => Some(OperationError::deserialize(error).unwrap_or_default()),
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
    fn operations_parse_running_done_and_failed() {
        let running =
            Operation::from_json(&json!({"name": "operations/a", "metadata": {"@type": "x"}})).unwrap();
        assert!(!running.done && running.metadata.is_some() && running.response.is_none());
        let failed = Operation::from_json(&json!({"name": "operations/a", "done": true,
            "error": {"code": 9, "message": "no", "details": [{"@type": "t"}]}}))
        .unwrap();
        assert_eq!(failed.error.unwrap().code, Code::from_number(9));
        assert!(Operation::from_json(&json!({"done": true})).is_err());
    }

    #[test]
    fn a_malformed_operation_error_still_fails_the_operation() {
        for error in [
            json!({}),
            json!("broken"),
            json!({"code": "9", "message": 3, "details": {}}),
        ] {
            let done =
                Operation::from_json(&json!({"name": "operations/a", "done": true, "error": error})).unwrap();
            let error = done.error.expect("still an error");
            assert_eq!((error.message.as_str(), error.details.len()), ("", 0));
        }
        let unknown =
            Operation::from_json(&json!({"name": "o", "done": true, "error": {"code": 77}})).unwrap();
        assert_eq!(unknown.error.unwrap().code.number(), Some(77), "kept as sent");
    }

    #[test]
    fn operation_errors_round_trip_as_google_rpc_status() {
        let wire = json!({"code": 9, "message": "no", "details": [{"@type": "t"}]});
        let error: OperationError = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(error.code, Code::FailedPrecondition);
        assert_eq!(error.to_string(), "code 9 no");
        assert_eq!(serde_json::to_value(&error).unwrap(), wire);
    }

    /// The handles earlier versions stored, exactly as they wrote them.
    fn stored_handles() -> Vec<(Value, GoogleOperation)> {
        let operation = |family, name: &str| GoogleOperation {
            family,
            name: name.to_string(),
        };
        vec![
            (
                json!({"family": "service_usage", "region": null, "name": "operations/acf.1"}),
                operation(OperationFamily::ServiceUsage, "operations/acf.1"),
            ),
            (
                json!({"family": "network_services", "region": null, "name": "projects/p/locations/global/operations/o"}),
                operation(
                    OperationFamily::NetworkServices,
                    "projects/p/locations/global/operations/o",
                ),
            ),
            (
                json!({"family": "vertex_ai", "region": "us-central1", "name": "projects/1/locations/us-central1/operations/2"}),
                operation(
                    OperationFamily::VertexAi {
                        region: "us-central1".into(),
                    },
                    "projects/1/locations/us-central1/operations/2",
                ),
            ),
            (
                json!({"family": "agent_registry", "region": null, "name": "projects/p/locations/l/operations/o"}),
                operation(
                    OperationFamily::AgentRegistry,
                    "projects/p/locations/l/operations/o",
                ),
            ),
            (
                json!({"family": "resource_manager", "region": null, "name": "operations/cp.7"}),
                operation(OperationFamily::ResourceManager, "operations/cp.7"),
            ),
        ]
    }

    #[test]
    fn operation_handles_keep_the_stored_shape() {
        for (stored, operation) in stored_handles() {
            assert_eq!(
                serde_json::from_value::<GoogleOperation>(stored.clone()).unwrap(),
                operation
            );
            assert_eq!(serde_json::to_value(&operation).unwrap(), stored);
        }
    }

    #[test]
    fn damaged_operation_handles_are_refused() {
        for damaged in [
            json!({"family": "vertex_ai", "region": null, "name": "o"}),
            json!({"family": "cloud_run", "region": null, "name": "o"}),
            json!({"family": "service_usage", "region": null}),
            json!({"region": null, "name": "o"}),
            json!("operations/o"),
        ] {
            assert!(
                serde_json::from_value::<GoogleOperation>(damaged.clone()).is_err(),
                "{damaged}"
            );
        }
    }
}
