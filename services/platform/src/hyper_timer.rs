//! hyper's timer on the clock seam: the server's header-read deadline sleeps through
//! [`Clock::sleep`] like every other wait, so the simulation sees it (its event-driven
//! driver must know every deadline a host waits for). In real mode the clock's sleep is
//! tokio's, as hyper-util's `TokioTimer` would have used.

use crate::{BoxFuture, Clock};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

/// A [`hyper::rt::Timer`] whose sleeps are the clock's.
#[derive(Clone)]
pub struct ClockTimer {
    clock: Arc<dyn Clock>,
}

impl ClockTimer {
    pub fn new(clock: Arc<dyn Clock>) -> ClockTimer {
        ClockTimer { clock }
    }
}

/// The clock's sleep; hyper wants a `Sync` one, hence the (never contended) mutex.
struct ClockSleep(Mutex<BoxFuture<'static, ()>>);

impl Future for ClockSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for ClockSleep {}

#[expect(clippy::disallowed_types, reason = "hyper's Timer speaks std Instants; they come from the clock seam")]
impl hyper::rt::Timer for ClockTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(ClockSleep(Mutex::new(self.clock.sleep(duration))))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(self.now()))
    }

    fn now(&self) -> std::time::Instant {
        self.clock.now().into_std()
    }
}
