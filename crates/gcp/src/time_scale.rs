//! [`TimeScale`]: how many real seconds one second of the server's clock takes. 1.0 against
//! Google; the emulator's `time_scale` in tests and `--emulator` runs. Every client-side wait
//! of Sluice (retry backoff, the server's retry delays, poll delays, timeouts, rate windows, the
//! steps' not-yet delays, the engine's retry policy built by the CLI) goes through
//! [`TimeScale::apply`], so there is one rule for scaling time.
//!
//! It lives in this crate because it is the lowest one that the client, the steps and the CLI
//! all depend on; the engine knows no time scale (its policies are plain durations, already
//! scaled by whoever builds them), and the emulator keeps its own clock (it depends on no
//! Sluice crate).

use std::fmt;
use std::time::Duration;

/// Real seconds per second of the server's clock: positive and finite, by construction.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct TimeScale(f64);

impl TimeScale {
    /// Real time (Google).
    pub const REAL: TimeScale = TimeScale(1.0);

    /// `factor` real seconds per server second; refused unless it is positive and finite.
    pub fn new(factor: f64) -> Result<Self, InvalidTimeScale> {
        // INVARIANT: a TimeScale is positive and finite, so `apply` never divides time by zero,
        // never waits forever and never turns a wait into none.
        if factor.is_finite() && factor > 0.0 {
            Ok(TimeScale(factor))
        } else {
            Err(InvalidTimeScale(factor))
        }
    }

    /// The factor itself.
    pub fn factor(self) -> f64 {
        self.0
    }

    /// `duration` of server time as real time (saturating at [`Duration::MAX`]).
    pub fn apply(self, duration: Duration) -> Duration {
        Duration::try_from_secs_f64(duration.as_secs_f64() * self.0).unwrap_or(Duration::MAX)
    }
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::REAL
    }
}

impl TryFrom<f64> for TimeScale {
    type Error = InvalidTimeScale;
    fn try_from(factor: f64) -> Result<Self, Self::Error> {
        TimeScale::new(factor)
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A time scale that is zero, negative, infinite or not a number.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the time scale must be a positive number, got {0}")]
pub struct InvalidTimeScale(pub f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_finite_factors_make_a_time_scale() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let refused = TimeScale::new(bad).unwrap_err();
            assert!(refused.to_string().contains("positive number"), "{refused}");
        }
        assert_eq!(TimeScale::new(0.001).unwrap().factor(), 0.001);
        assert_eq!(TimeScale::default(), TimeScale::REAL);
    }

    #[test]
    fn applying_multiplies_and_saturates() {
        let thousand_times_faster = TimeScale::new(0.001).unwrap();
        assert_eq!(
            thousand_times_faster.apply(Duration::from_secs(300)),
            Duration::from_millis(300)
        );
        assert_eq!(
            TimeScale::REAL.apply(Duration::from_secs(7)),
            Duration::from_secs(7)
        );
        let slower = TimeScale::new(1e300).unwrap();
        assert_eq!(slower.apply(Duration::from_secs(1)), Duration::MAX);
    }
}
