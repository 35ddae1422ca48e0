//! Long-running operations, shared by every API: an operation is done once emulated time
//! reaches its `done_at`, and then carries either a `response` or an `error`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub name: String,
    pub done_at: Duration,
    pub metadata: Value,
    pub outcome: Result<Value, ApiError>,
}

impl Operation {
    /// The operation as Google shows it: `done` is absent while it runs.
    pub fn to_json(&self, now: Duration) -> Value {
        let mut body = json!({ "name": self.name, "metadata": self.metadata });
        if now >= self.done_at {
            body["done"] = json!(true);
            match &self.outcome {
                Ok(response) => body["response"] = response.clone(),
                Err(error) => body["error"] = error.to_status(),
            }
        }
        body
    }
}

/// `resource` with `@type` first, as a finished operation's `response` carries it.
pub fn typed(type_url: &str, resource: &Value) -> Value {
    let mut response = json!({ "@type": type_url });
    if let (Some(out), Some(fields)) = (response.as_object_mut(), resource.as_object()) {
        out.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    response
}

/// Every operation by name. Names are unique across APIs, so one table serves them all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Operations {
    by_name: BTreeMap<String, Operation>,
}

impl Operations {
    pub fn insert(&mut self, operation: Operation) {
        self.by_name.insert(operation.name.clone(), operation);
    }

    pub fn get(&self, name: &str) -> Option<&Operation> {
        self.by_name.get(name)
    }

    /// The operations whose names start with `prefix`, sorted by name.
    pub fn under(&self, prefix: &str) -> Vec<&Operation> {
        let mut found: Vec<&Operation> = self
            .by_name
            .values()
            .filter(|op| op.name.starts_with(prefix))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    pub fn count(&self) -> usize {
        self.by_name.len()
    }
}
