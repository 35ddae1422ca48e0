//! Retry and polling policies, kept separate as in Google's client libraries: polling an
//! operation follows a fixed, jitter-free schedule (a pure function of the poll count); retrying
//! a failed call backs off exponentially *with* jitter so that many runs do not retry in step.

use std::time::Duration;

use backoff::backoff::Backoff;

use crate::plan::{parse_duration, RetrySpec};

/// How failed attempts of a step are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included) for retryable errors.
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub multiplier: f64,
    /// ± fraction of each delay drawn at random (0.0 turns jitter off).
    pub jitter: f64,
    /// How long not-yet errors are retried, counted from the first one.
    pub not_yet_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.3,
            not_yet_window: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// This policy with a plan's per-step overrides applied.
    pub fn with_overrides(&self, spec: &RetrySpec) -> Result<Self, String> {
        let mut policy = self.clone();
        if let Some(n) = spec.max_attempts {
            if n == 0 {
                return Err("retry.max_attempts must be at least 1".into());
            }
            policy.max_attempts = n;
        }
        if let Some(d) = &spec.initial_delay {
            policy.initial_delay = parse_duration(d).map_err(|e| format!("retry.initial_delay: {e}"))?;
        }
        if let Some(d) = &spec.max_delay {
            policy.max_delay = parse_duration(d).map_err(|e| format!("retry.max_delay: {e}"))?;
        }
        if let Some(m) = spec.multiplier {
            if !(1.0..=10.0).contains(&m) {
                return Err(format!("retry.multiplier {m} must be between 1 and 10"));
            }
            policy.multiplier = m;
        }
        if let Some(d) = &spec.not_yet_window {
            policy.not_yet_window = parse_duration(d).map_err(|e| format!("retry.not_yet_window: {e}"))?;
        }
        Ok(policy)
    }

    /// A fresh jittered delay sequence for one step.
    pub fn backoff(&self) -> RetryBackoff {
        RetryBackoff {
            inner: backoff::ExponentialBackoffBuilder::new()
                .with_initial_interval(self.initial_delay)
                .with_max_interval(self.max_delay)
                .with_multiplier(self.multiplier)
                .with_randomization_factor(self.jitter)
                .with_max_elapsed_time(None)
                .build(),
        }
    }
}

/// The delays between retries of one step. Deadlines are enforced by the executor on its own
/// clock, so this never gives up by itself.
pub struct RetryBackoff {
    inner: backoff::ExponentialBackoff,
}

impl RetryBackoff {
    /// The next delay, never shorter than what the server asked for.
    pub fn next_delay(&mut self, server_delay: Option<Duration>) -> Duration {
        let ours = self.inner.next_backoff().unwrap_or(self.inner.max_interval);
        server_delay.map_or(ours, |server| server.max(ours))
    }
}

/// How an operation is polled: first delay, then × multiplier up to a cap, until a deadline.
///
/// The engine's one poll schedule: the executor's wait loop (`executor/step.rs`, `wait`) is the
/// only place that waits between polls, and a kind picks its pacing through
/// [`crate::StepKind::poll_policy`] rather than looping itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    pub first_delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
    /// How long to wait for one operation before failing the step (a resume re-attaches).
    pub deadline: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            first_delay: Duration::from_secs(1),
            multiplier: 2.0,
            max_delay: Duration::from_secs(20),
            deadline: Duration::from_secs(60 * 60),
        }
    }
}

impl PollPolicy {
    /// The delay before poll number `poll` (0 for the first). Pure: no jitter, no state.
    pub fn delay_before(&self, poll: u32) -> Duration {
        let factor = self.multiplier.powi(poll.min(64) as i32);
        let secs = self.first_delay.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.min(self.max_delay.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_schedule_grows_to_its_cap_without_jitter() {
        let policy = PollPolicy {
            first_delay: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_millis(500),
            deadline: Duration::from_secs(10),
        };
        let delays: Vec<u128> = (0..6).map(|n| policy.delay_before(n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500, 500]);
        assert_eq!(policy.delay_before(3), policy.delay_before(3));
    }

    #[test]
    fn retry_delay_honours_a_longer_server_delay() {
        let policy = RetryPolicy {
            jitter: 0.0,
            initial_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        };
        let mut backoff = policy.backoff();
        assert_eq!(backoff.next_delay(None), Duration::from_millis(10));
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn retry_jitter_stays_within_its_band() {
        let policy = RetryPolicy {
            jitter: 0.5,
            initial_delay: Duration::from_millis(100),
            multiplier: 1.0,
            ..RetryPolicy::default()
        };
        let mut backoff = policy.backoff();
        for _ in 0..50 {
            let d = backoff.next_delay(None).as_millis();
            assert!((50..=150).contains(&d), "{d}");
        }
    }

    #[test]
    fn overrides_are_checked() {
        let base = RetryPolicy::default();
        let spec = RetrySpec {
            max_attempts: Some(0),
            ..RetrySpec::default()
        };
        assert!(base.with_overrides(&spec).unwrap_err().contains("at least 1"));
        let spec = RetrySpec {
            initial_delay: Some("2s".into()),
            max_attempts: Some(3),
            ..RetrySpec::default()
        };
        let p = base.with_overrides(&spec).unwrap();
        assert_eq!((p.max_attempts, p.initial_delay), (3, Duration::from_secs(2)));
    }
}
