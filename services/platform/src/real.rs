//! Real-mode adapters: tokio sockets, the system clock, OS entropy for the id seed and
//! for secrets.
//! The only place in the services allowed to touch them.

use crate::clock::Clock;
use crate::ids::Ids;
use crate::net::{BoxIo, Listener, Net};
use crate::{BoxFuture, Env};
use contracts::Timestamp;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the real clock adapter")]
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    #[expect(clippy::disallowed_methods, clippy::disallowed_types, reason = "the real clock adapter")]
    fn now_utc(&self) -> Timestamp {
        Timestamp::from(std::time::SystemTime::now())
    }

    #[expect(clippy::disallowed_methods, reason = "the real clock adapter")]
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

pub struct TokioNet;

struct TokioListener(tokio::net::TcpListener);

impl Listener for TokioListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as BoxIo, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Net for TokioNet {
    #[expect(clippy::disallowed_methods, reason = "the real network adapter")]
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TokioListener(listener)) as Box<dyn Listener>)
        })
    }

    #[expect(clippy::disallowed_methods, reason = "the real network adapter")]
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxIo)
        })
    }
}

/// A seed from OS entropy, for the id source of a real-mode service.
pub fn entropy_seed() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// Fills `bytes` straight from the operating system's generator (secrets in real mode).
pub fn os_random(bytes: &mut [u8]) {
    use rand_core::RngCore;
    rand_core::OsRng.fill_bytes(bytes);
}

/// A secret of `length_bytes` random bytes from the operating system, as lowercase hex.
pub fn os_secret_hex(length_bytes: usize) -> String {
    Ids::with_os_secrets(0).secret_hex(length_bytes)
}

/// The real ids: the public stream (ids, request ids, salts) seeded from OS entropy, secrets
/// (session ids) straight from the OS, never from that stream.
pub fn real_ids() -> Ids {
    Ids::with_os_secrets(entropy_seed())
}

/// The real environment: system clock, tokio sockets, [`real_ids`].
pub fn real_env() -> Env {
    Env::new(Arc::new(SystemClock), Arc::new(TokioNet), real_ids())
}
