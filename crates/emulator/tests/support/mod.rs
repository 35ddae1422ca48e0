//! A test client for the emulator: real HTTP on loopback, with every successful response body
//! checked against the vendored discovery document's schema for its method (and an operation's
//! `response` against the schema its `@type` names), and every error body against Google's
//! envelope. Operations paths are shared by several APIs, so an operation's `response` is checked
//! in whichever document defines the schema its `@type` names.

#![allow(dead_code)]

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::{discovery, Emulator, EmulatorConfig, EmulatorHandle};

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub async fn start() -> (EmulatorHandle, Client) {
        Self::start_with(EmulatorConfig::default()).await
    }

    pub async fn start_with(config: EmulatorConfig) -> (EmulatorHandle, Client) {
        let handle = Emulator::start(config).await.unwrap();
        let client = Client {
            http: reqwest::Client::new(),
            base: handle.base_url.clone(),
        };
        (handle, client)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method.clone(), format!("{}/{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        if !path.starts_with("_emulator/") {
            conforms(method.as_str(), path, status, &body);
        }
        (status, body)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(method, path, body, Some("test-token")).await
    }

    pub async fn advance(&self, seconds: f64) {
        let (status, _) = self
            .send(
                Method::POST,
                "_emulator/clock",
                Some(json!({ "advance_seconds": seconds })),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
}

/// Panics unless the body has the shape Google's definitions give it.
pub fn conforms(method: &str, path: &str, status: u16, body: &Value) {
    if status >= 400 {
        let error = &body["error"];
        assert_eq!(
            error["code"].as_u64(),
            Some(u64::from(status)),
            "error envelope: {body}"
        );
        assert!(
            error["message"].is_string() && error["status"].is_string(),
            "{body}"
        );
        // proto3 JSON: an empty list is left out, never written as `[]`.
        assert!(
            error.get("details").is_none() || error["details"].as_array().is_some_and(|d| !d.is_empty()),
            "details absent or not empty: {body}"
        );
        return;
    }
    let path = path.split('?').next().unwrap_or(path);
    let Some(found) = discovery::find_method(method, path) else {
        return;
    };
    let Some(schema) = found.response.as_deref() else {
        return;
    };
    let mut problems = discovery::check(found.document, schema, body);
    if let Some(type_url) = body["response"]["@type"].as_str() {
        match discovery::check_type_url(type_url, &body["response"]) {
            Some(inner_problems) => problems.extend(inner_problems),
            // google.protobuf.Empty is in no document: it must carry nothing but its type.
            None if type_url == "type.googleapis.com/google.protobuf.Empty" => {
                if body["response"].as_object().is_some_and(|o| o.len() != 1) {
                    problems.push(format!("$.response: Empty with fields: {}", body["response"]));
                }
            }
            None => problems.push(format!("$.response: no discovery document defines {type_url}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{method} {path} ({}): {problems:?}\n{body}",
        found.id
    );
}
