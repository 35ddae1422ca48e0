//! # sluice-emulator
//!
//! A local emulator of the Google Cloud APIs Sluice drives, built from Google's published
//! discovery documents (vendored as test data) and documented behaviour, not from Sluice's
//! client. It is what every test, benchmark and demo runs against, since nothing here can reach
//! Google Cloud.
//!
//! **What it must never do:** listen anywhere but loopback when started in-process, or reach the
//! network. It knows nothing of Sluice's engine or client.
//!
//! ## Principal types
//! - [`EmulatorConfig`]: the seeded world and the delays Google leaves unspecified.
//! - [`Emulator::start`] binds `127.0.0.1:0` (so tests run in parallel) and returns an
//!   [`EmulatorHandle`] with the base URL; one base URL serves every API, routed by path.
//! - [`WorldSnapshot`]: the whole world and the emulated time, as versioned JSON
//!   ([`EmulatorHandle::snapshot`]); [`Emulator::start_from`] continues a world from one.
//!
//! ## The one non-obvious decision
//! Time is emulated: every delay is a deadline in emulated time, which runs at real time divided
//! by `time_scale` and can be advanced through `POST /_emulator/clock`. Tests make "minutes" pass
//! without waiting for them.
//!
//! ## Status
//! Emulated, with tests:
//! - authentication by bearer token, and request bodies checked against the discovery schemas
//!   (declared fields accepted by their snake_case proto names; map keys and free-form content
//!   kept as sent);
//! - Service Usage, IAM custom roles, Resource Manager (projects and IAM policies; v3 project
//!   create / delete / undelete / search with labels, states and wall-clock times, ids never
//!   reused, a per-organisation creation quota), Cloud Billing (project billing links);
//! - Network Services agent gateways, Vertex AI reasoningEngines, Agent Registry;
//! - authorization on agent gateways: Network Services authzExtensions, Network Security
//!   authzPolicies (with Google's Agent Gateway limits), and the Model Armor template read;
//! - Org Policy v2 with CEL enforcement on reasoning engines;
//! - seeded faults (500 / 503 / 429, extra latency, dropped connections before the call has any
//!   effect or after it ran with the answer lost, 200s with a wrong or non-JSON body in place
//!   of a call that is not executed, and long-running operations ending in
//!   INTERNAL with no effect left), a fixed latency per call, and quotas per API per minute,
//!   per consumer project and per caller (the principal the token was issued to), answered
//!   with RetryInfo;
//! - the admin API, whose request log gives each call's API and emulated arrival time;
//! - Vertex AI's `operations:wait` long poll (served by the router, which is async);
//! - deployed reasoning engines registering themselves in Agent Registry after a delay;
//! - Google's OAuth2 token endpoint (`POST /token`, JWT-bearer grant): the assertion's RS256
//!   signature is verified against the public key configured for its `iss`, so a service-account
//!   key file whose `token_uri` points at the emulator works through gcp_auth unchanged. The
//!   committed test-only key ([`test_service_account_key_json`]) is registered by default. API
//!   calls still accept any non-empty bearer token;
//! - API enablement checked where Google checks it: in the target project for resource-based
//!   APIs, in the caller's quota project (`x-goog-user-project`, else the token's service
//!   account's project) for client-based ones ([`config::EmulatorConfig::api_kinds`]);
//! - every wait (latency, stalls, long polls) in emulated time, ended early by clock advances.

mod admin;
mod api;
mod clock;
pub mod config;
pub mod discovery;
mod encoding;
mod error;
mod faults;
mod ops;
mod router;
mod rsa_key;
mod snapshot;
mod test_key;
mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

pub use config::EmulatorConfig;
pub use error::ApiError;
pub use snapshot::{SnapshotError, Snapshotter, WorldSnapshot, SNAPSHOT_VERSION};
pub use test_key::{
    test_authorized_user_json, test_service_account_key_json, TEST_CLIENT_ID, TEST_CLIENT_SECRET,
    TEST_REFRESH_TOKEN, TEST_SERVICE_ACCOUNT_EMAIL, TEST_SERVICE_ACCOUNT_PUBLIC_KEY_PEM, TEST_SUBJECT_TOKEN,
};

/// The emulator's state; shared by every request.
pub struct Emulator {
    config: EmulatorConfig,
    clock: clock::Clock,
    world: Mutex<world::World>,
    requests: Mutex<RequestLog>,
    faults: faults::Faults,
    /// Access tokens issued by `POST /token`, numbering each one.
    tokens_issued: std::sync::atomic::AtomicU64,
    /// The service account (`client_email`) each access token was issued to, so a call's
    /// quota project can default to that account's project.
    token_accounts: Mutex<std::collections::HashMap<String, String>>,
}

/// The most recent API calls (at most `request_log_limit`), and how many older ones were dropped.
#[derive(Default)]
struct RequestLog {
    entries: std::collections::VecDeque<Value>,
    dropped: u64,
}

/// A running emulator. Dropping it without `shutdown` leaves the server running until the
/// runtime ends.
pub struct EmulatorHandle {
    pub base_url: String,
    pub addr: SocketAddr,
    emulator: Arc<Emulator>,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl EmulatorHandle {
    /// Every resource, as `GET /_emulator/state` answers it.
    pub fn state(&self) -> Value {
        let now = self.emulator.clock.now();
        let mut state = self.emulator.world().to_json(now);
        state["nowSeconds"] = json!(now.as_secs_f64());
        state
    }

    /// The whole world and the emulated time now (see [`WorldSnapshot`]).
    pub fn snapshot(&self) -> WorldSnapshot {
        self.snapshotter().snapshot()
    }

    /// Takes snapshots of this emulator's world from anywhere, for as long as it runs.
    pub fn snapshotter(&self) -> Snapshotter {
        Snapshotter(Arc::clone(&self.emulator))
    }

    /// Makes `by` of emulated time pass at once, as `POST /_emulator/clock` does.
    pub fn advance(&self, by: std::time::Duration) {
        self.emulator.clock.advance(by);
    }

    /// The API-call log, as `GET /_emulator/requests` answers it.
    pub fn requests(&self) -> Value {
        self.emulator.requests()
    }

    /// Stops accepting calls and waits for the server to end.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.server.await.unwrap_or(Ok(()))
    }
}

impl Emulator {
    fn new(config: EmulatorConfig) -> Self {
        Emulator {
            clock: clock::Clock::new(config.time_scale),
            world: Mutex::new(world::World::from_config(&config)),
            requests: Mutex::new(RequestLog::default()),
            faults: faults::Faults::new(
                config.seed,
                config.faults.clone(),
                config.quotas.clone(),
                config.caller_quotas.clone(),
            ),
            tokens_issued: std::sync::atomic::AtomicU64::new(0),
            token_accounts: Mutex::new(std::collections::HashMap::new()),
            config,
        }
    }

    /// An emulator of `config` whose world and clock continue from `snapshot`. The config
    /// still gives the delays, faults, quotas and what `POST /_emulator/reset` rebuilds.
    fn restored(config: EmulatorConfig, snapshot: WorldSnapshot) -> Self {
        let (world, now, wall_origin) = snapshot.into_parts();
        Emulator {
            clock: clock::Clock::resumed(config.time_scale, now, wall_origin),
            world: Mutex::new(world),
            ..Emulator::new(config)
        }
    }

    /// Starts an emulator on `127.0.0.1` with a free port.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<EmulatorHandle> {
        Self::serve(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts an emulator on `127.0.0.1` with a free port, its world continuing from `snapshot`
    /// (taken by [`EmulatorHandle::snapshot`], perhaps in another process).
    pub async fn start_from(
        config: EmulatorConfig,
        snapshot: WorldSnapshot,
    ) -> std::io::Result<EmulatorHandle> {
        Self::listen(
            Emulator::restored(config, snapshot),
            SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
    }

    /// Starts an emulator on `addr`.
    pub async fn serve(config: EmulatorConfig, addr: SocketAddr) -> std::io::Result<EmulatorHandle> {
        Self::listen(Emulator::new(config), addr).await
    }

    async fn listen(emulator: Emulator, addr: SocketAddr) -> std::io::Result<EmulatorHandle> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let emulator = Arc::new(emulator);
        let app = router::router(Arc::clone(&emulator));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(EmulatorHandle {
            base_url: format!("http://{addr}"),
            addr,
            emulator,
            stop,
            server,
        })
    }

    fn world(&self) -> MutexGuard<'_, world::World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request_log(&self) -> MutexGuard<'_, RequestLog> {
        self.requests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Logs an API call: `arrived` is the emulated time it arrived at, `service` the API it
    /// belongs to (when known), `atSeconds` the emulated time it was answered.
    fn log_request(
        &self,
        arrived: std::time::Duration,
        service: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
    ) {
        let entry = json!({
            "method": method,
            "path": path,
            "status": status,
            "atSeconds": self.clock.now().as_secs_f64(),
            "arrivedMs": u64::try_from(arrived.as_millis()).unwrap_or(u64::MAX),
            "service": service,
        });
        let limit = self.config.request_log_limit;
        let mut log = self.request_log();
        log.entries.push_back(entry);
        while log.entries.len() > limit {
            log.entries.pop_front();
            log.dropped += 1;
        }
    }

    fn requests(&self) -> Value {
        Value::Array(self.request_log().entries.iter().cloned().collect())
    }

    fn reset(&self) {
        *self.world() = world::World::from_config(&self.config);
        self.faults.reset(self.config.seed, self.config.faults.clone());
        *self.request_log() = RequestLog::default();
    }

    /// Remembers that `token` was issued to the service account `email`.
    fn issued(&self, token: &str, email: &str) {
        self.token_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), email.to_string());
    }

    /// Who makes a call with `token`: the principal `POST /token` (or generateAccessToken, or
    /// STS) issued it to, else `token:` and the first 12 hex digits of its SHA-256 (any bearer
    /// token is accepted, and the log must not hold one).
    fn caller(&self, token: &str) -> String {
        let issued = self
            .token_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        issued.unwrap_or_else(|| {
            let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            format!("token:{}", &encoding::hex(digest.as_ref())[..12])
        })
    }

    /// The service account (`client_email`) `POST /token` issued `token` to, if it did.
    fn token_account(&self, token: &str) -> Option<String> {
        self.token_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    /// The project of the service account `token` was issued to, when `POST /token` issued it
    /// and the account's project (`NAME@PROJECT.iam.gserviceaccount.com`) is in the world.
    fn token_project(&self, token: &str) -> Option<String> {
        let email = self
            .token_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()?;
        let project = email
            .split_once('@')?
            .1
            .strip_suffix(".iam.gserviceaccount.com")?
            .to_string();
        self.world().project_mut(&project).ok()?;
        Some(project)
    }

    /// Ok when `service` is enabled and usable in `project`; otherwise Google's 403.
    fn require_usable(&self, project: String, service: &str) -> Result<(), ApiError> {
        let now = self.clock.now();
        let mut world = self.world();
        let project = world.project_mut(&project)?;
        match project.services.get(service) {
            Some(enabled) if now >= enabled.usable_at => Ok(()),
            _ => Err(ApiError::service_disabled(service, project.number)),
        }
    }
}
