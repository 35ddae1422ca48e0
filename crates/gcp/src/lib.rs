//! # sluice-gcp
//!
//! Sluice's Google Cloud REST client: the one place that talks HTTP to Google (or to the
//! emulator). It knows the hosts of the APIs Sluice drives (Service Usage, IAM, Resource
//! Manager, Network Services, regional Vertex AI, Agent Registry, Org Policy), authenticates
//! every call, turns Google's error envelope into a typed [`GcpError`], retries what can be
//! retried, reads long-running operations of five families, and does IAM read-modify-write.
//!
//! **What it must never do:** log, print or return a secret (tokens travel only in the
//! `Authorization` header, marked sensitive; [`Secret`] prints `<redacted>`; errors carry the
//! URL path only; key-file errors name the file, never its contents). It knows nothing of
//! Sluice's engine, plans or steps: `sluice-steps` bridges the two.
//!
//! ## Principal types
//! - [`ClientOptions`] → [`GcpClient::new`]: endpoints (one `--endpoint` override for all APIs,
//!   plain http only on loopback), [`Credentials`] (application default, a credentials file of
//!   any Google type, static token), service-account impersonation, quota project
//!   (`x-goog-user-project`), [`RetryConfig`], `time_scale` ([`TimeScale`]), client-side `rate_limits` per API
//!   service (Google's published defaults against Google, [`GOOGLE_DEFAULT_RATES`]) and
//!   `quota_patience`.
//! - [`GcpClient`]: `get` / `post` / `patch` / `delete` on an [`Api`] and a path, returning JSON.
//!   A POST says whether repeating it is harmless ([`PostRetry`]).
//! - [`Operation`], [`OperationFamily`], [`GoogleOperation`] (family and name, serialisable as
//!   a step's stored handle): `get_operation`, `wait_operation` (Vertex AI's `:wait` long poll;
//!   one GET for the others). How often to look is the caller's schedule.
//! - [`Code`]: Google's canonical codes (`google.rpc.Code`), by name in error bodies
//!   ([`GcpError::status`], a [`Status`]) and by number in operations ([`OperationError`]).
//! - [`TimeScale`]: real seconds per server second; every client-side wait is scaled by it.
//! - [`Grant`]: `add_project_grants` (coalesced read-modify-write), `project_policy`.
//! - [`rate`]: the rate limiter every request passes through, shared by clones of a client (a
//!   fleet run's targets share one), adaptive on 429s; [`GcpClient::rate_stats`] ([`RateStats`]).
//!
//! ## The one non-obvious decision
//! Retrying is decided per call by what a repeat could do, not by the HTTP method: GET, PATCH
//! and DELETE are retried on 429 / 5xx / transport errors; a POST only when the caller marks it
//! [`PostRetry::Safe`] (client-chosen id, `requestId`, or read-like). A POST that creates with a
//! server-chosen id (a reasoning engine) is never sent twice once it may have reached Google:
//! the caller must look for what it created first. A 429 RESOURCE_EXHAUSTED is the exception:
//! Google refuses a call over quota before running it, so it is sent again whatever the method,
//! and without using up attempts (bounded by `quota_patience`): quota pressure slows work down,
//! it never fails it. And every client-side wait is multiplied by the
//! [`TimeScale`], so tests against the emulator run the real schedules 1,000× faster.
//!
//! ## Example
//! ```no_run
//! use sluice_gcp::{Api, ClientOptions, GcpClient, Grant, OperationFamily, Operation, PostRetry, TimeScale};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), sluice_gcp::GcpError> {
//! let client = GcpClient::new(ClientOptions::emulator("http://127.0.0.1:8085", "test-token", TimeScale::REAL)).await?;
//! let started = client
//!     .post(&Api::ServiceUsage, "v1/projects/sluice-demo/services:batchEnable",
//!           &json!({ "serviceIds": ["iam.googleapis.com"] }), PostRetry::Safe)
//!     .await?;
//! let mut operation = Operation::from_json(&started)?;
//! while !operation.done {
//!     tokio::time::sleep(Duration::from_secs(1)).await; // the caller's poll schedule
//!     operation = client.get_operation(&OperationFamily::ServiceUsage, &operation.name).await?;
//! }
//! assert!(operation.error.is_none());
//! client
//!     .add_project_grants("sluice-demo", &[Grant::new("roles/viewer", "user:ops@example.com")])
//!     .await?;
//! # Ok(()) }
//! ```

// `GcpError` is the agreed plain struct with public fields (status, message, details, …), so
// results carry it unboxed; errors are the slow path of network calls.
#![allow(clippy::result_large_err)]

mod answers;
mod auth;
mod client;
mod code;
mod error;
mod iam;
mod operations;
mod options;
mod put;
pub mod rate;
mod retry;
mod time_scale;

pub use answers::{bounded, Answer, Binding, Page, Policy, Resource, Role};
pub use auth::SCOPE;
pub use client::{GcpClient, PostRetry, USER_AGENT};
pub use code::{Code, Unrecognized};
pub use error::{parse_duration, GcpError, Status};
pub use iam::{Grant, IamHook};
pub use operations::{GoogleOperation, Operation, OperationError, OperationFamily, DONE_OPERATION};
pub use options::{check_endpoint, Api, ClientOptions, Credentials, RetryConfig, Secret};
pub use rate::{RateStats, GOOGLE_DEFAULT_RATES};
pub use time_scale::{InvalidTimeScale, TimeScale};
