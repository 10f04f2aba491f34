//! Where the engine reads the time: run and record timestamps, approval deadlines, leases,
//! retention. Tests swap in a [`ManualClock`] to move time forward without waiting.
//!
//! Timers (a workflow's `sleep`, a step's timeout, retry backoff) still wait on tokio's clock:
//! a manual clock moves what the engine writes and compares, not how long a timer sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of the current time, in milliseconds since the Unix epoch.
///
/// ```
/// use miyabi_engine::clock::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_700_000_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time, ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::store::now_ms()
    }
}

/// A clock that moves only when told to: for tests of deadlines, leases and retention that
/// must not sleep. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use miyabi_engine::clock::{Clock, ManualClock};
/// let clock = ManualClock::new(1_700_000_000_000);
/// clock.advance(Duration::from_secs(7 * 86_400));
/// assert_eq!(clock.now_ms(), 1_700_604_800_000);
/// let engine = miyabi_engine::Engine::builder().clock(clock.clone()).build();
/// # let _ = engine;
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `now_ms` (ms since the epoch).
    pub fn new(now_ms: i64) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(now_ms)),
        }
    }

    /// A clock standing at the system's current time.
    pub fn starting_now() -> Self {
        Self::new(crate::store::now_ms())
    }

    /// Moves the clock forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let ms = crate::store::millis(d);
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the clock to `now_ms`.
    pub fn set(&self, now_ms: i64) {
        self.now.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// The engine's clock as the engine holds it: the system clock is called directly (no
/// allocation, no dynamic call on the hot path), any other through its trait object.
#[derive(Clone, Default)]
pub(crate) enum TimeSource {
    /// [`SystemClock`].
    #[default]
    System,
    /// A clock given to [`EngineBuilder::clock`](crate::EngineBuilder::clock).
    Custom(Arc<dyn Clock>),
}

impl TimeSource {
    /// The current time, ms since the epoch.
    #[inline]
    pub(crate) fn now_ms(&self) -> i64 {
        match self {
            TimeSource::System => crate::store::now_ms(),
            TimeSource::Custom(c) => c.now_ms(),
        }
    }
}
