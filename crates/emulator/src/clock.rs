//! Emulated time: real time divided by the time scale, plus whatever the admin API advanced.
//! Every deadline in the emulator (operations, propagation delays) is in emulated time, so a
//! test can make "minutes" pass by advancing the clock instead of waiting.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Clock {
    origin: Instant,
    /// Real seconds per emulated second.
    scale: f64,
    advanced: Mutex<Duration>,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        Clock {
            origin: Instant::now(),
            scale: scale.max(1e-9),
            advanced: Mutex::new(Duration::ZERO),
        }
    }

    /// Emulated time since the emulator started.
    pub fn now(&self) -> Duration {
        let advanced = *self.advanced.lock().unwrap_or_else(|p| p.into_inner());
        self.origin.elapsed().div_f64(self.scale) + advanced
    }

    /// The emulated instant `seconds` from now.
    pub fn after(&self, seconds: f64) -> Duration {
        self.now() + Duration::from_secs_f64(seconds.max(0.0))
    }

    /// The real duration of `emulated` time.
    pub fn real(&self, emulated: Duration) -> Duration {
        emulated.mul_f64(self.scale)
    }

    /// Makes `by` of emulated time pass at once.
    pub fn advance(&self, by: Duration) {
        *self.advanced.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}
