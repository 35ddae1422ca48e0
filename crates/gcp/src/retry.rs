//! The retry schedule of one call (or one IAM cycle): exponential backoff with jitter from the
//! `backoff` crate, at least the server's RetryInfo / Retry-After, every wait scaled by the
//! client's time scale, bounded by attempts and elapsed time.

use std::time::{Duration, Instant};

use backoff::backoff::Backoff as _;

use crate::options::RetryConfig;
use crate::time_scale::TimeScale;

pub(crate) struct Retry {
    backoff: backoff::ExponentialBackoff,
    max_attempts: u32,
    /// Scaled.
    max_elapsed: Option<Duration>,
    scale: TimeScale,
    started: Instant,
    attempts: u32,
}

impl Retry {
    pub(crate) fn new(config: &RetryConfig, scale: TimeScale) -> Self {
        let backoff = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(config.initial)
            .with_multiplier(config.multiplier.max(1.0))
            .with_max_interval(config.max)
            .with_randomization_factor(if config.jitter { 0.5 } else { 0.0 })
            .with_max_elapsed_time(None)
            .build();
        Retry {
            backoff,
            max_attempts: config.max_attempts.max(1),
            max_elapsed: config.max_elapsed.map(|d| scale.apply(d)),
            scale,
            started: Instant::now(),
            attempts: 0,
        }
    }

    /// Counts an attempt that failed in a retryable way; returns how long to wait before the
    /// next one, or `None` when attempts or time are used up. `hint` is the server's
    /// RetryInfo / Retry-After (unscaled), a minimum.
    pub(crate) fn next_delay(&mut self, hint: Option<Duration>) -> Option<Duration> {
        self.attempts += 1;
        if self.attempts >= self.max_attempts {
            return None;
        }
        let base = self.backoff.next_backoff()?;
        let delay = combine(base, hint, self.scale);
        match self.max_elapsed {
            Some(limit) if self.started.elapsed() + delay > limit => None,
            _ => Some(delay),
        }
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// The wait before a retry: the backoff delay or the server's hint, whichever is longer,
/// multiplied by `scale`.
pub(crate) fn combine(backoff: Duration, hint: Option<Duration>, scale: TimeScale) -> Duration {
    scale.apply(backoff.max(hint.unwrap_or_default()))
}

/// How long one HTTP exchange may take when the caller names no other limit, in emulated (server)
/// time: Google's front ends end a call after about this long.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a connection may take to open, in emulated time.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The least real time a timeout is given however fast time runs: below it a loaded machine
/// would time out calls that are merely slow.
pub(crate) const MIN_REAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A timeout of `duration` emulated time in real time: scaled like every other wait, so a
/// stalled call against a 1,000× faster emulator ends after 2 s, not 300 s; never below
/// [`MIN_REAL_TIMEOUT`].
pub(crate) fn scaled_timeout(duration: Duration, scale: TimeScale) -> Duration {
    scale.apply(duration).max(MIN_REAL_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(factor: f64) -> TimeScale {
        TimeScale::new(factor).unwrap()
    }

    #[test]
    fn timeouts_follow_the_time_scale_with_a_real_floor() {
        assert_eq!(scaled_timeout(CALL_TIMEOUT, scale(1.0)), CALL_TIMEOUT);
        assert_eq!(scaled_timeout(CALL_TIMEOUT, scale(0.1)), Duration::from_secs(30));
        assert_eq!(scaled_timeout(CALL_TIMEOUT, scale(0.001)), MIN_REAL_TIMEOUT);
        assert_eq!(
            scaled_timeout(Duration::from_secs(1), scale(1.0)),
            MIN_REAL_TIMEOUT
        );
    }

    fn config(jitter: bool) -> RetryConfig {
        RetryConfig {
            jitter,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn without_jitter_the_delays_double_up_to_the_cap_and_stop_at_max_attempts() {
        let mut retry = Retry::new(
            &RetryConfig {
                max: Duration::from_secs(3),
                max_elapsed: None,
                ..config(false)
            },
            TimeScale::REAL,
        );
        let delays: Vec<_> = std::iter::from_fn(|| retry.next_delay(None)).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 3000, 3000], "6 attempts = 5 waits");
    }

    #[test]
    fn the_server_hint_is_a_minimum_and_everything_is_scaled() {
        assert_eq!(
            combine(
                Duration::from_millis(500),
                Some(Duration::from_secs(2)),
                TimeScale::REAL
            ),
            Duration::from_secs(2)
        );
        assert_eq!(
            combine(
                Duration::from_secs(4),
                Some(Duration::from_secs(2)),
                TimeScale::REAL
            ),
            Duration::from_secs(4)
        );
        assert_eq!(
            combine(Duration::from_secs(2), None, scale(0.001)),
            Duration::from_millis(2)
        );
        let mut retry = Retry::new(&config(true), scale(0.001));
        let first = retry.next_delay(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(first, Duration::from_millis(30), "RetryInfo 30s at scale 0.001");
    }

    #[test]
    fn jitter_stays_within_half_of_the_delay() {
        let mut retry = Retry::new(&config(true), TimeScale::REAL);
        let first = retry.next_delay(None).unwrap();
        assert!(
            first >= Duration::from_millis(250) && first <= Duration::from_millis(750),
            "{first:?}"
        );
    }

    #[test]
    fn max_elapsed_stops_retries() {
        let mut retry = Retry::new(
            &RetryConfig {
                max_elapsed: Some(Duration::from_secs(1)),
                ..config(false)
            },
            TimeScale::REAL,
        );
        assert!(retry.next_delay(None).is_some(), "500 ms fits in 1 s");
        assert!(
            retry.next_delay(Some(Duration::from_secs(5))).is_none(),
            "a 5 s wait does not"
        );
    }
}
