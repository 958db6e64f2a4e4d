//! The clock seam: monotonic time for deadlines, wall time for records, and sleeping.

use crate::BoxFuture;
use contracts::Timestamp;
use std::future::Future;
use std::time::Duration;

/// Monotonic instants are tokio's, which the simulation drives; wall time may be skewed.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic time, for deadlines and elapsed durations.
    fn now(&self) -> tokio::time::Instant;
    /// Wall-clock time, for records shown to people and the similar-order window.
    fn now_utc(&self) -> Timestamp;
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("deadline of {duration_ms} ms passed")]
pub struct Elapsed {
    pub duration_ms: u64,
}

impl dyn Clock {
    /// Runs `future` until it completes or `duration` passes on this clock.
    pub async fn timeout<F: Future>(&self, duration: Duration, future: F) -> Result<F::Output, Elapsed> {
        let sleep = self.sleep(duration);
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = sleep => Err(Elapsed { duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX) }),
        }
    }
}

/// A clock whose wall time moves only when told (tests); monotonic time is tokio's.
pub struct ManualClock {
    utc: std::sync::Mutex<Timestamp>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock { utc: std::sync::Mutex::new(start) }
    }

    pub fn advance(&self, by: Duration) {
        let mut utc = self.utc.lock().unwrap_or_else(|p| p.into_inner());
        *utc += chrono::TimeDelta::from_std(by).unwrap_or(chrono::TimeDelta::MAX);
    }
}

impl Clock for ManualClock {
    #[expect(clippy::disallowed_methods, reason = "tokio time: simulated wherever the runtime is paused")]
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    fn now_utc(&self) -> Timestamp {
        *self.utc.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[expect(clippy::disallowed_methods, reason = "tokio time: simulated wherever the runtime is paused")]
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}
