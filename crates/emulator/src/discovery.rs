//! Google's discovery documents (vendored in `discovery/`, trimmed to the methods Sluice uses):
//! finding the method a request is for, and checking JSON against the method's schemas. The
//! emulator refuses request fields Google would refuse; the tests check every response body.

use std::sync::OnceLock;

use serde_json::{Map, Value};

const DOCUMENTS: [(&str, &str); 13] = [
    (
        "agentregistry.v1",
        include_str!("../discovery/agentregistry.v1.json"),
    ),
    ("aiplatform.v1", include_str!("../discovery/aiplatform.v1.json")),
    (
        "cloudbilling.v1",
        include_str!("../discovery/cloudbilling.v1.json"),
    ),
    (
        "aiplatform.v1beta1",
        include_str!("../discovery/aiplatform.v1beta1.json"),
    ),
    (
        "cloudresourcemanager.v1",
        include_str!("../discovery/cloudresourcemanager.v1.json"),
    ),
    (
        "cloudresourcemanager.v3",
        include_str!("../discovery/cloudresourcemanager.v3.json"),
    ),
    ("iam.v1", include_str!("../discovery/iam.v1.json")),
    (
        "iamcredentials.v1",
        include_str!("../discovery/iamcredentials.v1.json"),
    ),
    (
        "networksecurity.v1",
        include_str!("../discovery/networksecurity.v1.json"),
    ),
    (
        "networkservices.v1",
        include_str!("../discovery/networkservices.v1.json"),
    ),
    ("orgpolicy.v2", include_str!("../discovery/orgpolicy.v2.json")),
    (
        "serviceusage.v1",
        include_str!("../discovery/serviceusage.v1.json"),
    ),
    (
        "serviceusage.v1beta1",
        include_str!("../discovery/serviceusage.v1beta1.json"),
    ),
];

/// One REST method of one API, as its discovery document describes it.
pub struct Method {
    pub document: &'static str,
    pub id: String,
    pub http_method: String,
    /// `flatPath` split into segments; `{…}` matches one segment. The last may carry `:verb`.
    template: Vec<String>,
    pub request: Option<String>,
    pub response: Option<String>,
}

struct Documents {
    docs: Vec<(&'static str, Value)>,
    methods: Vec<Method>,
}

fn documents() -> &'static Documents {
    static DOCS: OnceLock<Documents> = OnceLock::new();
    DOCS.get_or_init(|| {
        let docs: Vec<(&str, Value)> = DOCUMENTS
            .iter()
            .map(|(name, text)| {
                (
                    *name,
                    serde_json::from_str(text).expect("vendored discovery documents are JSON"),
                )
            })
            .collect();
        let mut methods = Vec::new();
        for (name, doc) in &docs {
            collect_methods(name, &doc["resources"], &mut methods);
        }
        Documents { docs, methods }
    })
}

fn collect_methods(document: &'static str, resources: &Value, out: &mut Vec<Method>) {
    for resource in resources.as_object().into_iter().flat_map(Map::values) {
        for method in resource["methods"].as_object().into_iter().flat_map(Map::values) {
            let path = method["flatPath"]
                .as_str()
                .or(method["path"].as_str())
                .unwrap_or_default();
            out.push(Method {
                document,
                id: method["id"].as_str().unwrap_or_default().to_string(),
                http_method: method["httpMethod"].as_str().unwrap_or_default().to_string(),
                template: path.split('/').map(str::to_string).collect(),
                request: method["request"]["$ref"].as_str().map(str::to_string),
                response: method["response"]["$ref"].as_str().map(str::to_string),
            });
        }
        collect_methods(document, &resource["resources"], out);
    }
}

/// The method for `http_method` and a path (no leading slash), if any document has one.
/// Literal templates win over ones with more placeholders.
pub fn find_method(http_method: &str, path: &str) -> Option<&'static Method> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    documents()
        .methods
        .iter()
        .filter(|m| m.http_method == http_method && matches(&m.template, &segments))
        .min_by_key(|m| m.template.iter().filter(|t| t.starts_with('{')).count())
}

fn matches(template: &[String], segments: &[&str]) -> bool {
    template.len() == segments.len()
        && template.iter().zip(segments).all(|(t, s)| {
            let (t_name, t_verb) = t
                .split_once(':')
                .map_or((t.as_str(), None), |(a, b)| (a, Some(b)));
            let (s_name, s_verb) = s.split_once(':').map_or((*s, None), |(a, b)| (a, Some(b)));
            t_verb == s_verb && (t_name.starts_with('{') || t_name == s_name)
        })
}

/// Problems with `value` against schema `schema` of `document`, each with its JSON path.
pub fn check(document: &str, schema: &str, value: &Value) -> Vec<String> {
    let Some((_, doc)) = documents().docs.iter().find(|(name, _)| *name == document) else {
        return vec![format!("no discovery document {document}")];
    };
    let mut problems = Vec::new();
    check_schema(
        doc,
        &serde_json::json!({ "$ref": schema }),
        value,
        "$",
        &mut problems,
    );
    problems
}

fn check_schema(doc: &Value, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if let Some(name) = schema["$ref"].as_str() {
        let resolved = &doc["schemas"][name];
        if resolved.is_null() {
            problems.push(format!("{path}: schema {name} is not in the document"));
            return;
        }
        return check_schema(doc, resolved, value, path, problems);
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return problems.push(format!("{path}: expected an object, got {value}"));
            };
            for (key, field) in object {
                let field_path = format!("{path}.{key}");
                if let Some(property) = schema["properties"].get(key) {
                    check_schema(doc, property, field, &field_path, problems);
                } else if schema["additionalProperties"].is_object() {
                    check_schema(doc, &schema["additionalProperties"], field, &field_path, problems);
                } else if key != "@type" {
                    problems.push(format!("{field_path}: unknown field `{key}`"));
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_schema(doc, &schema["items"], item, &format!("{path}[{i}]"), problems);
                }
            }
            None => problems.push(format!("{path}: expected an array, got {value}")),
        },
        Some("string") => {
            let Some(text) = value.as_str() else {
                return problems.push(format!("{path}: expected a string, got {value}"));
            };
            if let Some(allowed) = schema["enum"].as_array() {
                if !allowed.iter().any(|a| a == text) {
                    problems.push(format!(
                        "{path}: `{text}` is not one of {}",
                        Value::Array(allowed.clone())
                    ));
                }
            }
            match schema["format"].as_str() {
                Some("int64" | "uint64") if text.parse::<i128>().is_err() => {
                    problems.push(format!("{path}: `{text}` is not an int64 string"))
                }
                Some("byte")
                    if !text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b)) =>
                {
                    problems.push(format!("{path}: `{text}` is not base64"))
                }
                _ => {}
            }
        }
        Some("integer") if !(value.is_i64() || value.is_u64()) => {
            problems.push(format!("{path}: expected an integer, got {value}"))
        }
        Some("number") if !value.is_number() => {
            problems.push(format!("{path}: expected a number, got {value}"))
        }
        Some("boolean") if !value.is_boolean() => {
            problems.push(format!("{path}: expected a boolean, got {value}"))
        }
        _ => {}
    }
}

/// Like [`check`], in whichever document defines `schema`; `None` when none does. For payloads
/// named by `@type`, whose schema lives in the API that produced them, not in the document whose
/// method carried them (operations paths are shared by several APIs).
pub fn check_anywhere(schema: &str, value: &Value) -> Option<Vec<String>> {
    let (name, _) = documents()
        .docs
        .iter()
        .find(|(_, doc)| doc["schemas"].get(schema).is_some())?;
    Some(check(name, schema, value))
}

/// Checks a payload named by a type URL such as
/// `type.googleapis.com/google.cloud.aiplatform.v1.ReasoningEngine`. Discovery documents name
/// that schema either `ReasoningEngine` or, prefixed with its package in PascalCase,
/// `GoogleCloudAiplatformV1ReasoningEngine`; both are tried. `None` when no document has either.
pub fn check_type_url(type_url: &str, value: &Value) -> Option<Vec<String>> {
    let full = type_url.rsplit('/').next().unwrap_or(type_url);
    let (package, short) = full.rsplit_once('.').unwrap_or(("", full));
    let prefixed: String = package
        .split('.')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<String>()
        + short;
    // A versioned package (`google.cloud.resourcemanager.v3`) names its document
    // (`cloudresourcemanager.v3`), which wins over another version's schema of the same name.
    let mut parts = package.rsplit('.');
    if let (Some(version), Some(api)) = (parts.next(), parts.next()) {
        let suffix = format!("{api}.{version}");
        let own = documents()
            .docs
            .iter()
            .find(|(name, doc)| name.ends_with(&suffix) && doc["schemas"].get(short).is_some());
        if let Some((name, _)) = own {
            return Some(check(name, short, value));
        }
    }
    check_anywhere(short, value).or_else(|| check_anywhere(&prefixed, value))
}

/// Google's front end accepts a field by its proto name (`display_name`) as well as its JSON name
/// (`displayName`). This rewrites the field names of a request body for `http_method` and `path`
/// to the JSON names its discovery schema declares, and nothing else: a key is renamed only when
/// its lowerCamelCase form is a declared property and the key itself is not. Map keys
/// (`additionalProperties`, such as `labels`) and free-form content (`type: any`, Struct, and
/// objects whose schema declares no properties, such as a reasoning engine's `classMethods`) are
/// left exactly as sent. A body for a method that takes none is left as sent, as is (for the
/// caller to see to) one for a method no document describes.
pub fn camel_case_request(found: &Method, body: Value) -> Value {
    let Some(schema) = found.request.as_deref() else {
        return body;
    };
    let Some((_, doc)) = documents().docs.iter().find(|(name, _)| *name == found.document) else {
        return body;
    };
    camel_case_fields(doc, &serde_json::json!({ "$ref": schema }), body)
}

fn camel_case_fields(doc: &Value, schema: &Value, value: Value) -> Value {
    if let Some(name) = schema["$ref"].as_str() {
        return camel_case_fields(doc, &doc["schemas"][name], value);
    }
    match (schema["type"].as_str(), value) {
        (Some("object"), Value::Object(map)) => {
            let properties = schema["properties"].as_object();
            let values = &schema["additionalProperties"];
            Value::Object(
                map.into_iter()
                    .map(|(key, v)| {
                        if let Some(property) = properties.and_then(|p| p.get(&key)) {
                            return (key, camel_case_fields(doc, property, v));
                        }
                        let camel = snake_to_camel(&key);
                        match properties.and_then(|p| p.get(&camel)) {
                            Some(property) if !key.starts_with('@') => {
                                (camel, camel_case_fields(doc, property, v))
                            }
                            // A map key, free-form content, or a field the schema lacks (which
                            // the request check then refuses under the name it was sent as).
                            _ if values.is_object() => (key, camel_case_fields(doc, values, v)),
                            _ => (key, v),
                        }
                    })
                    .collect(),
            )
        }
        (Some("array"), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|item| camel_case_fields(doc, &schema["items"], item))
                .collect(),
        ),
        (_, other) => other,
    }
}

/// `page_size` → `pageSize`; a name already in lowerCamelCase is unchanged.
pub(crate) fn snake_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn finds_methods_by_path_and_verb() {
        let enable = super::find_method("POST", "v1/projects/p/services/iam.googleapis.com:enable").unwrap();
        assert_eq!(enable.id, "serviceusage.services.enable");
        assert_eq!(enable.response.as_deref(), Some("Operation"));
        let get = super::find_method("GET", "v1/projects/p/services/iam.googleapis.com").unwrap();
        assert_eq!(get.id, "serviceusage.services.get");
        assert!(super::find_method("DELETE", "v1/projects/p/services/iam.googleapis.com").is_none());
        let wait = super::find_method("POST", "v1/projects/p/locations/l/operations/o:wait").unwrap();
        assert_eq!(wait.id, "aiplatform.projects.locations.operations.wait");
    }

    #[test]
    fn checks_fields_types_and_enums() {
        let ok = json!({"name": "projects/1/services/x", "state": "ENABLED", "config": {"name": "x"}});
        assert!(super::check("serviceusage.v1", "GoogleApiServiceusageV1Service", &ok).is_empty());
        let bad = json!({"name": 1, "state": "ON", "colour": "red"});
        let problems = super::check("serviceusage.v1", "GoogleApiServiceusageV1Service", &bad);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("unknown field `colour`")));
    }

    #[test]
    fn type_urls_find_prefixed_schemas() {
        let engine = json!({"displayName": "x"});
        let found = super::check_type_url(
            "type.googleapis.com/google.cloud.aiplatform.v1.ReasoningEngine",
            &engine,
        );
        assert_eq!(found, Some(vec![]));
        let bad = json!({"displayName": "x", "colour": 1});
        let found = super::check_type_url(
            "type.googleapis.com/google.cloud.aiplatform.v1.ReasoningEngine",
            &bad,
        );
        assert_eq!(found.map(|p| p.len()), Some(1));
    }

    /// The router's conversion: by the method the path is for, if any.
    fn camel_case_request(http_method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        match super::find_method(http_method, path) {
            Some(found) => super::camel_case_request(found, body),
            None => body,
        }
    }

    #[test]
    fn declared_snake_case_fields_become_camel_case_and_map_keys_stay() {
        let value = camel_case_request(
            "POST",
            "v1/projects/p/services:batchEnable",
            json!({"service_ids": ["a_b"]}),
        );
        assert_eq!(value, json!({"serviceIds": ["a_b"]}));
        let value = camel_case_request(
            "POST",
            "v1/projects/p/locations/l/reasoningEngines",
            json!({
                "display_name": "x",
                "labels": {"team_name": "a_b"},
                "spec": {"agent_framework": "custom", "class_methods": [{"api_mode": "", "snake_key": {"x_y": 1}}],
                         "deployment_spec": {"resource_limits": {"cpu_count": "4"}}},
                "not_a_field": {"x_y": 1},
            }),
        );
        assert_eq!(
            value,
            json!({
                "displayName": "x",
                "labels": {"team_name": "a_b"},
                "spec": {"agentFramework": "custom", "classMethods": [{"api_mode": "", "snake_key": {"x_y": 1}}],
                         "deploymentSpec": {"resourceLimits": {"cpu_count": "4"}}},
                "not_a_field": {"x_y": 1},
            })
        );
        let unknown = json!({"some_field": {"x_y": 1}});
        assert_eq!(camel_case_request("POST", "v9/nowhere", unknown.clone()), unknown);
    }
}
