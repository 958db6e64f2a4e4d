//! The simulation's implementations of the seams: turmoil's network and simulated time
//! with a pinned epoch and per-host clock skew.

use crate::timers::Registered;
use contracts::Timestamp;
use platform::net::{BoxIo, Listener, Net};
use platform::{BoxFuture, Clock};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Simulated time. Wall time is turmoil's (the pinned epoch plus simulated elapsed time)
/// plus this host's skew, which the fault injector moves.
pub struct SimClock {
    pub skew_ms: Arc<AtomicI64>,
}

impl Clock for SimClock {
    #[expect(clippy::disallowed_methods, reason = "tokio time is simulated inside turmoil hosts")]
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    fn now_utc(&self) -> Timestamp {
        let since_epoch = turmoil::since_epoch().expect("the clock is read inside a simulated host");
        let base = Timestamp::UNIX_EPOCH + chrono::TimeDelta::from_std(since_epoch).unwrap_or(chrono::TimeDelta::MAX);
        base + chrono::TimeDelta::milliseconds(self.skew_ms.load(Ordering::Relaxed))
    }

    #[expect(clippy::disallowed_methods, reason = "tokio time is simulated inside turmoil hosts")]
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let sleep = tokio::time::sleep(duration);
        let now = turmoil::sim_elapsed().expect("the clock sleeps inside a simulated host");
        // In the timer registry while pending, under this host: the event-driven driver's
        // next deadline, and when this host must next be ticked.
        Box::pin(Registered::new(sleep, turmoil::current_host(), now, duration))
    }
}

pub struct TurmoilNet;

struct TurmoilListener(turmoil::net::TcpListener);

impl Listener for TurmoilListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxIo, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Net for TurmoilNet {
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TurmoilListener(listener)) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}
