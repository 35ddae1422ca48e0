//! Client-side rate limits per API service, shared by every clone of a [`crate::GcpClient`]:
//! a fleet run sends all its targets' calls through one client, so one limiter paces them all.
//!
//! **What.** Every HTTP request the client sends to an API (first tries, retries, operation
//! polls, `:wait` long polls, the Service Usage read after a `SERVICE_DISABLED`; not token
//! requests) first takes a slot from its service's limiter. A service is keyed by its name
//! ([`crate::Api::service_name`]), never by host: with an endpoint override every API shares
//! one host, and Vertex AI's regional hosts are all `aiplatform.googleapis.com` (one limiter
//! for every region of a project, which is conservative: Google counts Vertex AI quotas per
//! region).
//!
//! **Guarantee.** For a service limited to N requests per minute, no window of
//! `60 s × time_scale × 1.05` real time holds more than N sends: a request is sent only once
//! the N-th most recent send of its service is at least that long ago (a sliding-window log of
//! the last N send instants, a `VecDeque` that never grows past N). The 5 % margin (3 s per
//! minute) absorbs the jitter between the client's send and the server's arrival, so no
//! 60-second window at the server holds more than N either, whatever the alignment of
//! Google's (or the emulator's) minute, provided client and server clocks run at the same
//! scale. Waits are
//! async (`tokio::time::sleep_until`) and FIFO: callers queue on a tokio mutex per service,
//! which is fair. A service without a limit costs one hash look-up per request.
//!
//! **Adaptive.** A 429 RESOURCE_EXHAUSTED from service S pauses S for everyone until the
//! server's RetryInfo / Retry-After (else 1 s), scaled, and halves S's current rate (at most
//! once per 429-burst: only an answer to a request sent after the last halving halves again;
//! floor: 5 % of the configured rate, at least 1 a minute). The rate then recovers additively,
//! by 10 % of the configured rate per (scaled) minute without a 429, back to the configured
//! rate. The client's retry loop retries such answers without using up attempts, for up to
//! `quota_patience` (see [`crate::ClientOptions`]), so quota pressure slows targets down and
//! never fails them.
//!
//! **The non-obvious decision: keyed as Google charges.** Google charges a rate quota to the
//! consumer project: the caller's quota project for a client-based API (Resource Manager, IAM
//! role management, Org Policy, Service Usage, Cloud Billing), the project holding the resource
//! for a resource-based one (Vertex AI, Network Services, Agent Registry: [`PER_PROJECT`]). So
//! a client-based service has one bucket for the whole process (a fleet shares that budget),
//! and a resource-based one a bucket per project named in the request path (each target its
//! own budget, as at Google). A limit in the fleet file is "requests per minute" per bucket.
//! Caveat: Vertex AI names a project by number in operation paths and by id elsewhere, so one
//! project may have two Vertex AI buckets; a 429 then halves the one that met it.
//!
//! ## Defaults: Google's published per-project request quotas, per minute
//!
//! One figure per service, for the calls Sluice makes there (pages read December 2026):
//!
//! | service | rpm | Google's published default | source |
//! |---|---|---|---|
//! | `serviceusage.googleapis.com` | 240 | read-only calls 240/min; writes (enable, disable, batchEnable) 60/min, a batchEnable counting as 5 | <https://cloud.google.com/service-usage/docs/quotas> |
//! | `cloudresourcemanager.googleapis.com` | 600 | per consumer project: v1/v3 reads, v3 list, and write operations 600/min each (v3 search 240/min; CreateProject costs 10 writes) | <https://cloud.google.com/resource-manager/docs/limits> |
//! | `iam.googleapis.com` | 600 | IAM v1 write requests 600/project/min (reads 6,000) | <https://cloud.google.com/iam/quotas> |
//! | `aiplatform.googleapis.com` | 600 | not published for reasoning-engine reads; Agent Engine writes are 10/min per project per region, reads, polls and `:wait` dominate a fleet: a conservative pick | <https://cloud.google.com/vertex-ai/generative-ai/docs/quotas> (Agent Engine quotas) |
//! | `networkservices.googleapis.com` | 300 | none found: a conservative pick | — |
//! | `agentregistry.googleapis.com` | 1,200 | 1,200/min globally and per region | <https://cloud.google.com/agent-registry/troubleshooting> ("API rate quota exceeded") |
//! | `orgpolicy.googleapis.com` | 300 | none found (the quotas page lists only system limits): a conservative pick | <https://cloud.google.com/organization-policy/quotas> |
//! | `cloudbilling.googleapis.com` | 300 | 300/project/min (975/min per organisation) | <https://cloud.google.com/billing/quotas> |
//!
//! Where Google publishes a read and a write figure, the default is the one for the calls that
//! dominate Sluice's traffic on that service (Service Usage: operation polls and reads; the
//! others: the write figure, which is also the lower). Writes beyond a lower write quota meet
//! 429s, which the adaptive part absorbs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::time_scale::TimeScale;

/// Google's published default request quotas per minute, by service (sources in the module
/// documentation).
pub const GOOGLE_DEFAULT_RATES: &[(&str, u32)] = &[
    ("serviceusage.googleapis.com", 240),
    ("cloudresourcemanager.googleapis.com", 600),
    ("iam.googleapis.com", 600),
    ("aiplatform.googleapis.com", 600),
    ("networkservices.googleapis.com", 300),
    ("agentregistry.googleapis.com", 1200),
    ("orgpolicy.googleapis.com", 300),
    ("cloudbilling.googleapis.com", 300),
];

/// The window a rate per minute is counted over, before scaling: a minute plus 5 %, so that
/// arrival jitter cannot put more than N requests in a server-side minute.
pub const WINDOW: Duration = Duration::from_millis(63_000);
/// How long a 429 without RetryInfo or Retry-After pauses its service (unscaled).
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The rate never drops below this share of the configured rate (and never below 1/min).
const FLOOR_SHARE: f64 = 0.05;
/// Recovery per minute without a 429, as a share of the configured rate.
const RECOVERY_SHARE: f64 = 0.10;

/// The effective limits: `overrides` on top of Google's defaults when `defaults` is set.
/// A limit of 0 means unlimited (the service is left out).
pub fn effective_limits(overrides: &BTreeMap<String, u32>, defaults: bool) -> BTreeMap<String, u32> {
    let mut limits: BTreeMap<String, u32> = if defaults {
        GOOGLE_DEFAULT_RATES
            .iter()
            .map(|(service, rpm)| (service.to_string(), *rpm))
            .collect()
    } else {
        BTreeMap::new()
    };
    limits.extend(overrides.iter().map(|(s, r)| (s.clone(), *r)));
    limits.retain(|_, rpm| *rpm > 0);
    limits
}

/// What one service's limiter has done, for a fleet summary.
#[derive(Debug, Clone, PartialEq)]
pub struct RateStats {
    pub service: String,
    /// The configured rate, requests per minute.
    pub configured_per_minute: u32,
    /// The rate now (lower than configured after 429s, recovering).
    pub current_per_minute: f64,
    /// Requests sent through the limiter.
    pub sent: u64,
    /// Requests that had to wait for a slot (or a pause).
    pub delayed: u64,
    /// 429 RESOURCE_EXHAUSTED answers seen.
    pub exhausted: u64,
    /// Total real time requests spent waiting for slots.
    pub waited: Duration,
}

/// Services whose quota Google charges to the project holding the resource (resource-based
/// APIs): their limit applies per target project, as Google's does.
pub const PER_PROJECT: &[&str] = &[
    "aiplatform.googleapis.com",
    "networkservices.googleapis.com",
    "agentregistry.googleapis.com",
];

/// Every service's limiter. Services without a limit pass straight through (one hash look-up).
/// A client-based service has one bucket for the process; a resource-based one
/// ([`PER_PROJECT`]) a bucket per project named in the request path, made on first use.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limits: HashMap<String, u32>,
    shared: HashMap<String, Arc<Bucket>>,
    per_project: Mutex<HashMap<(String, String), Arc<Bucket>>>,
    scale: TimeScale,
}

#[derive(Debug)]
struct Bucket {
    /// Callers queue here, in order, while they wait for a slot.
    queue: tokio::sync::Mutex<()>,
    window: Mutex<Window>,
    sent: AtomicU64,
    delayed: AtomicU64,
    exhausted: AtomicU64,
    waited_nanos: AtomicU64,
}

impl Bucket {
    fn new(rpm: u32, scale: TimeScale, now: Instant) -> Self {
        Bucket {
            queue: tokio::sync::Mutex::new(()),
            window: Mutex::new(Window::new(rpm, scale, now)),
            sent: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
            waited_nanos: AtomicU64::new(0),
        }
    }
}

/// The project a request path names (`v1/projects/{p}/…`), by id or number as written.
fn project_of(path: &str) -> Option<&str> {
    let mut segments = path.trim_start_matches('/').split('/');
    let _version = segments.next()?;
    (segments.next()? == "projects")
        .then(|| segments.next())
        .flatten()
        .filter(|p| !p.is_empty())
}

impl RateLimiter {
    /// Limiters for `limits` (service → requests per minute, none 0) at the client's time scale.
    pub(crate) fn new(limits: &BTreeMap<String, u32>, scale: TimeScale, now: Instant) -> Self {
        let limits: HashMap<String, u32> = limits
            .iter()
            .filter(|(_, rpm)| **rpm > 0)
            .map(|(s, r)| (s.clone(), *r))
            .collect();
        let shared = limits
            .iter()
            .filter(|(service, _)| !PER_PROJECT.contains(&service.as_str()))
            .map(|(service, rpm)| (service.clone(), Arc::new(Bucket::new(*rpm, scale, now))))
            .collect();
        RateLimiter {
            limits,
            shared,
            per_project: Mutex::new(HashMap::new()),
            scale,
        }
    }

    /// The bucket a request of `service` to `path` counts against; `None` when unlimited.
    fn bucket(&self, service: &str, path: &str) -> Option<Arc<Bucket>> {
        if let Some(bucket) = self.shared.get(service) {
            return Some(Arc::clone(bucket));
        }
        let rpm = *self.limits.get(service)?;
        // A resource-based call that names no project (rare) shares the service's `-` bucket.
        let key = (service.to_string(), project_of(path).unwrap_or("-").to_string());
        let mut buckets = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        Some(Arc::clone(buckets.entry(key).or_insert_with(|| {
            Arc::new(Bucket::new(rpm, self.scale, Instant::now()))
        })))
    }

    /// Waits for a slot of `service` (for the project `path` names, when the service's quota is
    /// per project) and takes it; returns the instant the slot was taken (the send time a later
    /// 429 is judged by). Immediate for a service without a limit.
    pub(crate) async fn acquire(&self, service: &str, path: &str) -> Instant {
        let Some(limiter) = self.bucket(service, path) else {
            return Instant::now();
        };
        let started = Instant::now();
        let mut delayed = false;
        let _turn = match limiter.queue.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                delayed = true;
                limiter.queue.lock().await
            }
        };
        loop {
            let now = Instant::now();
            let ready = lock(&limiter.window).ready_at(now);
            if ready <= now {
                lock(&limiter.window).record(now);
                limiter.sent.fetch_add(1, Ordering::Relaxed);
                if delayed {
                    limiter.delayed.fetch_add(1, Ordering::Relaxed);
                    let waited = u64::try_from((now - started).as_nanos()).unwrap_or(u64::MAX);
                    limiter.waited_nanos.fetch_add(waited, Ordering::Relaxed);
                }
                return now;
            }
            delayed = true;
            // A 429 seen meanwhile may push the slot later: the loop looks again.
            tokio::time::sleep_until(ready).await;
        }
    }

    /// A 429 RESOURCE_EXHAUSTED answered a request of `service` to `path` sent at `sent_at`:
    /// pause its bucket for `delay` (unscaled; [`DEFAULT_PAUSE`] when the server gave none) and
    /// slow it.
    pub(crate) fn exhausted(&self, service: &str, path: &str, sent_at: Instant, delay: Option<Duration>) {
        let Some(limiter) = self.bucket(service, path) else {
            return;
        };
        limiter.exhausted.fetch_add(1, Ordering::Relaxed);
        lock(&limiter.window).exhausted(Instant::now(), sent_at, delay);
    }

    /// Every limited service's statistics, by service name; a per-project service's are summed
    /// over its projects, with the lowest current rate among them.
    pub(crate) fn stats(&self) -> Vec<RateStats> {
        let now = Instant::now();
        let per_project = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats: Vec<RateStats> = self
            .limits
            .iter()
            .map(|(service, rpm)| {
                let buckets: Vec<&Arc<Bucket>> = match self.shared.get(service) {
                    Some(bucket) => vec![bucket],
                    None => per_project
                        .iter()
                        .filter(|((s, _), _)| s == service)
                        .map(|(_, b)| b)
                        .collect(),
                };
                let sum = |field: fn(&Bucket) -> &AtomicU64| -> u64 {
                    buckets.iter().map(|b| field(b).load(Ordering::Relaxed)).sum()
                };
                RateStats {
                    service: service.clone(),
                    configured_per_minute: *rpm,
                    current_per_minute: buckets
                        .iter()
                        .map(|b| lock(&b.window).rate(now))
                        .fold(f64::from(*rpm), f64::min),
                    sent: sum(|b| &b.sent),
                    delayed: sum(|b| &b.delayed),
                    exhausted: sum(|b| &b.exhausted),
                    waited: Duration::from_nanos(sum(|b| &b.waited_nanos)),
                }
            })
            .collect();
        stats.sort_by(|a, b| a.service.cmp(&b.service));
        stats
    }
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pure accounting of one service: the send log, the pause and the adaptive rate. Every
/// method takes `now`, so tests drive it with a made-up clock.
#[derive(Debug)]
pub(crate) struct Window {
    /// Requests per minute configured.
    configured: u32,
    /// The real-time length of a minute's window (scaled [`WINDOW`]).
    length: Duration,
    /// The real-time length of one (scaled) minute, for recovery.
    minute: Duration,
    scale: TimeScale,
    /// Send instants, oldest first; never more than `configured`.
    sent: VecDeque<Instant>,
    /// No request is sent before this.
    paused_until: Instant,
    /// The rate right after the last halving, and when it happened (`None`: never halved).
    reduced: Option<(f64, Instant)>,
}

impl Window {
    pub(crate) fn new(configured: u32, scale: TimeScale, now: Instant) -> Self {
        Window {
            configured,
            length: scale.apply(WINDOW),
            minute: scale.apply(Duration::from_secs(60)),
            scale,
            // Grows as sends come: a per-project bucket usually holds a handful.
            sent: VecDeque::new(),
            paused_until: now,
            reduced: None,
        }
    }

    /// The rate at `now`, requests per minute: configured, or after a halving, recovering by
    /// [`RECOVERY_SHARE`] of it per minute since.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let configured = f64::from(self.configured);
        match self.reduced {
            None => configured,
            Some((rate, at)) => {
                let minutes = if self.minute.is_zero() {
                    f64::INFINITY
                } else {
                    now.saturating_duration_since(at).as_secs_f64() / self.minute.as_secs_f64()
                };
                (rate + RECOVERY_SHARE * configured * minutes).min(configured)
            }
        }
    }

    /// How many sends the window may hold at `now`: the rate, whole, at least 1.
    fn allowed(&self, now: Instant) -> usize {
        (self.rate(now).floor() as usize).clamp(1, self.configured.max(1) as usize)
    }

    /// The earliest instant a request may be sent, as seen at `now`: after any pause, and once
    /// the `allowed`-th most recent send has left the window.
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        let allowed = self.allowed(now);
        let by_window = if self.sent.len() >= allowed {
            self.sent[self.sent.len() - allowed] + self.length
        } else {
            now
        };
        by_window.max(self.paused_until)
    }

    /// Records a send at `now` (the caller checked `ready_at`).
    pub(crate) fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        while self.sent.len() > self.configured as usize {
            self.sent.pop_front();
        }
    }

    /// A 429 at `now` for a request sent at `sent_at`: pause until `delay` (scaled) from now, and
    /// halve the rate unless it was already halved after that request was sent.
    pub(crate) fn exhausted(&mut self, now: Instant, sent_at: Instant, delay: Option<Duration>) {
        let pause = self.scale.apply(delay.unwrap_or(DEFAULT_PAUSE));
        self.paused_until = self.paused_until.max(now + pause);
        if matches!(self.reduced, Some((_, at)) if at >= sent_at) {
            return;
        }
        let configured = f64::from(self.configured);
        let floor = (FLOOR_SHARE * configured).max(1.0).min(configured);
        self.reduced = Some(((self.rate(now) / 2.0).max(floor), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, seconds: f64) -> Instant {
        base + Duration::from_secs_f64(seconds)
    }

    #[test]
    fn no_window_of_63_seconds_holds_more_than_n_sends() {
        let base = Instant::now();
        let mut window = Window::new(3, TimeScale::REAL, base);
        let mut sends = vec![];
        let mut now = base;
        for _ in 0..10 {
            now = window.ready_at(now).max(now);
            window.record(now);
            sends.push(now);
        }
        assert_eq!(&sends[..3], &[base, base, base], "a burst of N goes at once");
        assert_eq!(
            sends[3],
            at(base, 63.0),
            "the 4th waits for the 1st to leave the window"
        );
        for (i, first) in sends.iter().enumerate() {
            let inside = sends[i..].iter().filter(|t| **t < *first + WINDOW).count();
            assert!(inside <= 3, "{inside} sends in the window from send {i}");
        }
        assert!(window.sent.len() <= 3, "the log holds at most N instants");
    }

    #[test]
    fn resource_based_services_count_per_project_and_client_based_ones_per_process() {
        let limits = BTreeMap::from([
            ("networkservices.googleapis.com".to_string(), 300),
            ("serviceusage.googleapis.com".to_string(), 240),
        ]);
        let limiter = RateLimiter::new(&limits, TimeScale::REAL, Instant::now());
        let gateways = |project: &str| {
            limiter
                .bucket(
                    "networkservices.googleapis.com",
                    &format!("/v1/projects/{project}/locations/l/agentGateways"),
                )
                .unwrap()
        };
        assert!(Arc::ptr_eq(&gateways("a"), &gateways("a")));
        assert!(
            !Arc::ptr_eq(&gateways("a"), &gateways("b")),
            "each project its own budget"
        );
        let usage = |project: &str| {
            limiter
                .bucket(
                    "serviceusage.googleapis.com",
                    &format!("/v1/projects/{project}/services:batchGet"),
                )
                .unwrap()
        };
        assert!(
            Arc::ptr_eq(&usage("a"), &usage("b")),
            "the caller's quota project pays for all"
        );
        assert!(limiter
            .bucket("iam.googleapis.com", "/v1/projects/a/roles")
            .is_none());
        assert_eq!(project_of("/v1/projects/p-1/locations/x"), Some("p-1"));
        assert_eq!(project_of("/v1/operations/x"), None);
    }

    #[test]
    fn the_window_follows_the_time_scale() {
        let base = Instant::now();
        let mut window = Window::new(1, TimeScale::new(0.01).unwrap(), base);
        window.record(base);
        assert_eq!(window.ready_at(base), at(base, 0.63));
    }

    #[test]
    fn a_429_pauses_and_halves_then_the_rate_recovers_by_a_tenth_per_minute() {
        let base = Instant::now();
        let mut window = Window::new(100, TimeScale::REAL, base);
        window.record(base);
        window.exhausted(at(base, 1.0), base, Some(Duration::from_secs(5)));
        assert_eq!(
            window.ready_at(at(base, 1.0)),
            at(base, 6.0),
            "RetryInfo honoured"
        );
        assert_eq!(window.rate(at(base, 1.0)), 50.0);
        // Answers to requests sent before the halving do not halve again.
        window.exhausted(at(base, 2.0), base, None);
        assert!((window.rate(at(base, 2.0)) - (50.0 + 10.0 / 60.0)).abs() < 1e-9);
        assert_eq!(
            window.ready_at(at(base, 2.0)),
            at(base, 6.0),
            "the longer pause stands"
        );
        // Recovery: +10 per minute, capped at the configured rate.
        assert!((window.rate(at(base, 61.0)) - 60.0).abs() < 1e-9);
        assert_eq!(window.rate(at(base, 1000.0)), 100.0);
        // A 429 for a request sent after the halving halves again, from the current rate.
        window.exhausted(at(base, 61.0), at(base, 30.0), None);
        assert!((window.rate(at(base, 61.0)) - 30.0).abs() < 1e-9);
        assert_eq!(
            window.ready_at(at(base, 61.0)),
            at(base, 62.0),
            "the 1 s default pause"
        );
    }

    #[test]
    fn the_rate_never_drops_below_its_floor() {
        let base = Instant::now();
        let mut window = Window::new(100, TimeScale::REAL, base);
        for i in 0..20 {
            let now = at(base, f64::from(i));
            window.exhausted(now, now, None);
        }
        assert!(window.rate(at(base, 19.0)) >= 5.0 && window.rate(at(base, 19.0)) < 5.1);
        let mut one = Window::new(1, TimeScale::REAL, base);
        one.exhausted(base, base, None);
        assert_eq!(one.rate(base), 1.0, "at least 1 a minute");
    }

    #[test]
    fn a_halved_rate_admits_fewer_sends_per_window() {
        let base = Instant::now();
        let mut window = Window::new(10, TimeScale::REAL, base);
        for _ in 0..4 {
            window.record(base);
        }
        window.exhausted(base, base, Some(Duration::ZERO));
        assert_eq!(window.allowed(base), 5);
        window.record(base);
        assert_eq!(
            window.ready_at(base),
            at(base, 63.0),
            "5 sent: the window is full"
        );
    }

    #[test]
    fn the_effective_limits_put_overrides_over_the_defaults_and_drop_zeros() {
        let overrides = BTreeMap::from([
            ("iam.googleapis.com".to_string(), 60),
            ("orgpolicy.googleapis.com".to_string(), 0),
            ("example.googleapis.com".to_string(), 5),
        ]);
        let limits = effective_limits(&overrides, true);
        assert_eq!(limits["iam.googleapis.com"], 60);
        assert_eq!(limits["serviceusage.googleapis.com"], 240);
        assert!(!limits.contains_key("orgpolicy.googleapis.com"), "0 = unlimited");
        assert_eq!(limits["example.googleapis.com"], 5);
        let only = effective_limits(&overrides, false);
        assert_eq!(only.len(), 2);
    }
}
