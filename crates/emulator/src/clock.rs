//! Emulated time: real time divided by the time scale, plus whatever the admin API advanced.
//! Every deadline in the emulator (operations, propagation delays) is in emulated time, so a
//! test can make "minutes" pass by advancing the clock instead of waiting. Every wait a call
//! makes (latency, a stall, a long poll) goes through [`Clock::sleep_until`], so it follows the
//! time scale and ends as soon as an advance carries emulated time past its end: the emulator
//! holds no real-time constant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub struct Clock {
    origin: Instant,
    /// Wall-clock time (since the Unix epoch) when the emulator started.
    wall_origin: Duration,
    /// Real seconds per emulated second.
    scale: f64,
    advanced: Mutex<Duration>,
    /// Woken on every advance, so waits re-check their deadline.
    advances: Notify,
    /// Calls now inside [`Clock::sleep_until`].
    waiting: AtomicUsize,
}

impl Clock {
    pub fn new(scale: f64) -> Self {
        let wall_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self::resumed(scale, Duration::ZERO, wall_now)
    }

    /// A clock that starts at emulated instant `now` and goes on from there, with `wall_origin`
    /// the wall-clock time of emulated instant zero: the clock of a restored world, whose
    /// operations and propagation delays keep their deadlines, and whose timestamps stay in order.
    pub fn resumed(scale: f64, now: Duration, wall_origin: Duration) -> Self {
        Clock {
            origin: Instant::now(),
            wall_origin,
            scale: scale.max(1e-9),
            advanced: Mutex::new(now),
            advances: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Wall-clock time (since the Unix epoch) of emulated instant zero.
    pub fn wall_origin(&self) -> Duration {
        self.wall_origin
    }

    /// Emulated time since the emulator started.
    pub fn now(&self) -> Duration {
        let advanced = *self.advanced.lock().unwrap_or_else(|p| p.into_inner());
        self.origin.elapsed().div_f64(self.scale) + advanced
    }

    /// Emulated instant `at` as wall-clock time since the Unix epoch: the emulator's start (real
    /// wall time) plus the emulated time elapsed, so a client comparing a timestamp with its own
    /// clock sees the right age under time scaling too.
    pub fn wall(&self, at: Duration) -> Duration {
        self.wall_origin + at
    }

    /// The emulated instant `seconds` from now.
    pub fn after(&self, seconds: f64) -> Duration {
        self.now() + Duration::from_secs_f64(seconds.max(0.0))
    }

    /// The real duration of `emulated` time (saturating: a huge scale never overflows).
    pub fn real(&self, emulated: Duration) -> Duration {
        Duration::try_from_secs_f64(emulated.as_secs_f64() * self.scale).unwrap_or(Duration::MAX)
    }

    /// Makes `by` of emulated time pass at once, and wakes every wait to re-check its deadline.
    pub fn advance(&self, by: Duration) {
        *self.advanced.lock().unwrap_or_else(|p| p.into_inner()) += by;
        self.advances.notify_waiters();
    }

    /// Waits until emulated time reaches `deadline`: real time passing at the scale, or an
    /// advance through the admin API, whichever carries it there first.
    pub async fn sleep_until(&self, deadline: Duration) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _done = Waiting(&self.waiting);
        loop {
            // Registered before `now` is read, so an advance between the two is not missed.
            let advanced = self.advances.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            let now = self.now();
            if now >= deadline {
                return;
            }
            // tokio takes a deadline beyond its range as "never"; the advance still wakes us.
            let real = self.real(deadline - now);
            tokio::select! {
                () = tokio::time::sleep(real) => {}
                () = advanced => {}
            }
        }
    }

    /// How many calls are waiting on the emulated clock now (admin `state`: `waitingCalls`).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Counts a wait out when it ends, however it ends (a client hanging up drops the future).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
