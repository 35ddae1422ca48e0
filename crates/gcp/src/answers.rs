//! [`Answer`]: what a caller relies on in a successful answer, checked when it arrives. A 2xx
//! whose body lacks those fields (a role without its name or etag, a policy without its etag,
//! an operation without its name) is a `BAD_RESPONSE` error, retried like a 5xx; it is never
//! taken for success.

use serde::Deserialize;
use serde_json::Value;

use crate::operations::Operation;

/// A successful answer, parsed into the fields its caller relies on.
pub trait Answer: Sized {
    /// The answer, or why it is not one (shown in the `BAD_RESPONSE` error).
    fn from_answer(value: Value) -> Result<Self, String>;
}

/// Any JSON: for callers that read optional fields only (lists, `Option` reads).
impl Answer for Value {
    fn from_answer(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}

impl Answer for Operation {
    fn from_answer(value: Value) -> Result<Self, String> {
        Operation::from_json(&value).map_err(|e| e.message)
    }
}

/// Parses `value` as `T` through serde, naming `what` on failure.
fn typed<T: for<'de> Deserialize<'de>>(value: &Value, what: &str) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("not {what}: {e}"))
}

/// An IAM custom role (IAM v1 `Role`): it must carry its `name` and `etag`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub name: String,
    pub etag: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub included_permissions: Vec<String>,
    #[serde(default)]
    pub stage: String,
    #[serde(default)]
    pub deleted: bool,
}

impl Answer for Role {
    fn from_answer(value: Value) -> Result<Self, String> {
        let role: Role = typed(&value, "a custom role")?;
        if role.name.is_empty() || role.etag.is_empty() {
            return Err("not a custom role: empty `name` or `etag`".into());
        }
        Ok(role)
    }
}

/// One binding of an IAM policy, as far as grants rely on it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Binding {
    pub role: String,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub condition: Option<Value>,
}

/// An IAM policy (`getIamPolicy` / `setIamPolicy`): it must carry its `etag`, and its
/// `bindings` (absent in an empty policy) must be well formed. `json` is the whole policy as
/// read, so a read-modify-write keeps what it does not know (auditConfigs, conditions).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub etag: String,
    pub bindings: Vec<Binding>,
    pub json: Value,
}

impl Policy {
    /// Whether `member` holds `role` through an unconditional binding.
    pub fn holds(&self, role: &str, member: &str) -> bool {
        self.bindings.iter().any(|b| {
            b.role == role
                && b.condition.as_ref().is_none_or(Value::is_null)
                && b.members.iter().any(|m| m == member)
        })
    }
}

impl Answer for Policy {
    fn from_answer(value: Value) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Shape {
            etag: String,
            #[serde(default)]
            bindings: Vec<Binding>,
        }
        let shape: Shape = typed(&value, "an IAM policy")?;
        if shape.etag.is_empty() {
            return Err("not an IAM policy: empty `etag`".into());
        }
        Ok(Policy {
            etag: shape.etag,
            bindings: shape.bindings,
            json: value,
        })
    }
}

/// A resource answered by a synchronous create or update (org-policy custom constraints and
/// policies): it must carry its `name`. `json` is the whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub json: Value,
}

impl Answer for Resource {
    fn from_answer(value: Value) -> Result<Self, String> {
        match value.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => Ok(Resource {
                name: name.to_string(),
                json: value,
            }),
            _ => Err(format!(
                "not a resource: no `name` in {}",
                bounded(&value.to_string(), 200)
            )),
        }
    }
}

/// A page of a list answer (`agentGateways`, `reasoningEngines`, `agents`, batchGet's
/// `services`): an object whose every field is a list, except `nextPageToken` (a string) and
/// `totalSize`. Google leaves an empty list out, so `{}` is an empty page; but a body with
/// anything else (`{"done":false,"metadata":{}}`) is not a page, and must not read as "none".
/// Indexing reads a field, as on the JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub json: Value,
}

impl Answer for Page {
    fn from_answer(value: Value) -> Result<Self, String> {
        let fields = value.as_object().ok_or("not a list page: not an object")?;
        let stray = fields.iter().find(|(key, field)| match key.as_str() {
            "nextPageToken" => !field.is_string(),
            "totalSize" => !(field.is_number() || field.is_string()),
            _ => !field.is_array(),
        });
        match stray {
            Some((key, _)) => Err(format!(
                "not a list page: field `{}` is not a list",
                bounded(key, 80)
            )),
            None => Ok(Page { json: value }),
        }
    }
}

impl std::ops::Index<&str> for Page {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        &self.json[key]
    }
}

/// At most `limit` characters of `text`, with `…` when cut: what an error may echo of a body.
pub fn bounded(text: &str, limit: usize) -> String {
    let mut out: String = text.chars().take(limit).collect();
    if text.chars().nth(limit).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_operation_shaped_body_is_neither_a_role_nor_a_policy() {
        let wrong = json!({ "done": false, "metadata": {} });
        assert!(Role::from_answer(wrong.clone()).is_err());
        assert!(Policy::from_answer(wrong.clone()).is_err());
        assert!(
            Operation::from_answer(wrong).is_err(),
            "an operation needs its name"
        );
        let role = Role::from_answer(json!({ "name": "projects/p/roles/r", "etag": "BwE=" })).unwrap();
        assert!(!role.deleted && role.included_permissions.is_empty());
        let policy = Policy::from_answer(json!({ "etag": "ACAB", "version": 3 })).unwrap();
        assert!(policy.bindings.is_empty());
        assert_eq!(policy.json["version"], 3);
    }

    #[test]
    fn a_page_holds_only_lists_and_paging_fields() {
        let page =
            Page::from_answer(json!({ "agentGateways": [{ "name": "g" }], "nextPageToken": "t" })).unwrap();
        assert_eq!(page["agentGateways"][0]["name"], "g");
        assert!(
            Page::from_answer(json!({})).is_ok(),
            "Google leaves empty lists out"
        );
        assert!(Page::from_answer(json!({ "done": false, "metadata": {} })).is_err());
        assert!(Page::from_answer(json!("text")).is_err());
    }

    #[test]
    fn bounded_cuts_long_text() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc…");
    }
}
