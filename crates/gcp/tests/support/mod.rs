//! Shared set-up: an emulator in-process on 127.0.0.1:0, a client for it with the static token
//! "test-token", and the emulator's admin API (clock, request log, faults).

#![allow(dead_code)]

use serde_json::{json, Value};
use sluice_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use sluice_gcp::{ClientOptions, GcpClient, TimeScale};

pub const PROJECT: &str = "sluice-demo";
pub const NUMBER: &str = "100000000001";

pub struct Env {
    pub emulator: EmulatorHandle,
    pub client: GcpClient,
    pub admin: Admin,
}

#[derive(Clone)]
pub struct Admin {
    http: reqwest::Client,
    base: String,
}

/// An emulator with `services` enabled in the demo project, and a client at `client_scale`.
pub async fn start(mut config: EmulatorConfig, services: &[&str], client_scale: f64) -> Env {
    config.organizations[0].projects[0].enabled_services =
        services.iter().map(|s| format!("{s}.googleapis.com")).collect();
    let emulator = Emulator::start(config).await.unwrap();
    let client = GcpClient::new(ClientOptions::emulator(
        &emulator.base_url,
        "test-token",
        TimeScale::new(client_scale).unwrap(),
    ))
    .await
    .unwrap();
    let admin = Admin {
        http: reqwest::Client::new(),
        base: emulator.base_url.clone(),
    };
    Env {
        emulator,
        client,
        admin,
    }
}

/// Starts enabling IAM in the demo project (`services/iam.googleapis.com:enable`); returns
/// the operation as answered.
pub async fn enable_iam(client: &GcpClient) -> Value {
    client
        .post(
            &sluice_gcp::Api::ServiceUsage,
            &format!("v1/projects/{PROJECT}/services/iam.googleapis.com:enable"),
            &json!({}),
            sluice_gcp::PostRetry::Safe,
        )
        .await
        .unwrap()
}

impl Admin {
    /// Makes `seconds` of emulated time pass at once; the emulated time after it, in seconds.
    pub async fn advance(&self, seconds: f64) -> f64 {
        let response = self
            .http
            .post(format!("{}/_emulator/clock", self.base))
            .json(&json!({ "advance_seconds": seconds }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let now: Value = response.json().await.unwrap();
        now["nowSeconds"].as_f64().unwrap()
    }

    /// Moves the emulated clock to the start of the next emulated minute, so that calls made
    /// right after it share one quota minute however slowly the machine runs them.
    pub async fn start_a_minute(&self) {
        let now = self.advance(0.0).await;
        self.advance(60.0 - now % 60.0).await;
    }

    /// Every API call the emulator received: `{method, path, status, atSeconds}`.
    pub async fn requests(&self) -> Vec<Value> {
        let response = self
            .http
            .get(format!("{}/_emulator/requests", self.base))
            .send()
            .await
            .unwrap();
        response.json::<Vec<Value>>().await.unwrap()
    }

    /// The calls whose path ends with `suffix`, as (method, status).
    pub async fn calls_to(&self, suffix: &str) -> Vec<(String, u64)> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| r["path"].as_str().unwrap().ends_with(suffix))
            .map(|r| {
                (
                    r["method"].as_str().unwrap().to_string(),
                    r["status"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub async fn set_faults(&self, faults: Value) {
        let response = self
            .http
            .post(format!("{}/_emulator/faults", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// A raw authenticated API call (for set-up behind the client's back).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth("test-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

pub mod loopback;

/// A client with a static token whose every API is at `https://{addr}`, and its answer to one
/// GET.
pub async fn get_over_tls(
    addr: std::net::SocketAddr,
) -> (
    sluice_gcp::GcpClient,
    Result<serde_json::Value, sluice_gcp::GcpError>,
) {
    use sluice_gcp::{Api, ClientOptions, Credentials, GcpClient, Secret};
    let client = GcpClient::new(ClientOptions {
        endpoint: Some(format!("https://{addr}")),
        credentials: Credentials::StaticToken(Secret::new("test-token")),
        ..ClientOptions::default()
    })
    .await
    .unwrap();
    let answer = client
        .get(&Api::ServiceUsage, "v1/projects/p/services/iam.googleapis.com")
        .await;
    (client, answer)
}
