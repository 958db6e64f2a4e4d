//! The seams every service is written against, the HTTP plumbing over them, and the
//! real-mode adapters. Service code reaches time, randomness, sockets and storage only
//! through [`Env`] and [`storage::Db`]; the simulation plugs in its own [`Clock`] and [`Net`].

pub mod auth;
pub mod bugs;
pub mod client;
pub mod clock;
pub mod crash_point;
pub mod error;
pub mod hyper_timer;
pub mod ids;
pub mod internal;
pub mod json;
pub mod metrics;
pub mod net;
pub mod openapi;
pub mod operations;
pub mod outbox;
#[cfg(feature = "planted-bugs")]
mod planted;
pub mod probe;
pub mod real;
pub mod server;
pub mod sql;
pub mod storage;
pub mod storage_fault;
pub mod trace;

pub use clock::Clock;
pub use error::ApiError;
pub use ids::Ids;
pub use net::Net;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tracing::instrument::WithSubscriber;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The capabilities one service instance runs with. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub net: Arc<dyn Net>,
    pub ids: Ids,
    pub chaos: Chaos,
    pub spawner: Spawner,
    /// This service instance's own metrics registry (never shared with another service).
    pub metrics: metrics::Metrics,
}

impl Env {
    /// An environment without injected faults, spawning on the tokio runtime, with a fresh
    /// metrics registry.
    pub fn new(clock: Arc<dyn Clock>, net: Arc<dyn Net>, ids: Ids) -> Env {
        Env { clock, net, ids, chaos: Chaos::none(), spawner: Spawner::Runtime, metrics: metrics::Metrics::new() }
    }

    /// Starts a background task the way this environment wants it.
    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawner.spawn(future)
    }
}

/// Where background tasks go. The simulation needs `Local`: tasks on a turmoil host's
/// `LocalSet` are dropped in insertion order when the host crashes, while the tokio
/// runtime's own task list is sharded by process-global task ids, so its drop order (and
/// with it the order of the connection resets a crash sends) changes from run to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spawner {
    /// `tokio::spawn`: any runtime, including the real multi-threaded one.
    Runtime,
    /// `tokio::task::spawn_local`: inside a `LocalSet` (every turmoil host runs in one).
    Local,
}

impl Spawner {
    /// `Local` tasks keep the spawning task's tracing dispatcher: the simulation gives each
    /// host its own (all hosts share one thread), and a task spawned inside a host must log
    /// to that host's. `Runtime` tasks log to the global subscriber, as before.
    #[expect(clippy::disallowed_methods, reason = "the one place tasks are spawned")]
    pub fn spawn<F>(self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Spawner::Runtime => tokio::spawn(future),
            Spawner::Local => tokio::task::spawn_local(future.with_current_subscriber()),
        }
    }

    /// Runs blocking, CPU-heavy `work` (a password hash) where it cannot hold up the async
    /// workers: on tokio's blocking pool for `Runtime`, inline for `Local` (the simulation
    /// is single-threaded and deterministic, and its hashes are cheap). A panic in `work`
    /// resumes in the caller.
    #[expect(clippy::disallowed_methods, reason = "the one place blocking work leaves the runtime")]
    pub async fn run_blocking<T: Send + 'static>(self, work: impl FnOnce() -> T + Send + 'static) -> T {
        match self {
            Spawner::Runtime => match tokio::task::spawn_blocking(work).await {
                Ok(value) => value,
                Err(error) => std::panic::resume_unwind(error.into_panic()),
            },
            Spawner::Local => work(),
        }
    }

    /// Spawns `future` into `set` the same way.
    #[expect(clippy::disallowed_methods, reason = "the one place tasks are spawned")]
    pub fn spawn_into<T: Send + 'static>(
        self,
        set: &mut tokio::task::JoinSet<T>,
        future: impl Future<Output = T> + Send + 'static,
    ) {
        match self {
            Spawner::Runtime => set.spawn(future),
            Spawner::Local => set.spawn_local(future.with_current_subscriber()),
        };
    }
}

/// Faults the simulation injects from inside a service (off in real mode).
#[derive(Clone, Debug, Default)]
pub struct Chaos {
    /// Per mille of outbound requests the HTTP client sends twice: every request but those
    /// marked [`client::NeverResent`], whether or not the caller calls it idempotent.
    pub duplicate_per_mille: Arc<std::sync::atomic::AtomicU32>,
    /// 0: the copy goes first, at once. Otherwise the copy is sent late, after a delay drawn
    /// from `0..=duplicate_delay_max_ms` (a retrying proxy, a redelivering broker).
    pub duplicate_delay_max_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Late duplicates scheduled and not yet finished (or dropped by a crash): the
    /// simulation waits for this to reach 0 before its final checks.
    pub pending: Arc<std::sync::atomic::AtomicU64>,
    /// Per mille of requests answered on a reused keep-alive connection whose answer is
    /// lost: the connection resets after the peer did the work (a half-open connection, a
    /// middlebox reset), so the caller cannot know whether it took effect.
    pub lost_answer_per_mille: Arc<std::sync::atomic::AtomicU32>,
}

impl Chaos {
    pub fn none() -> Chaos {
        Chaos::default()
    }

    /// Whether to send this request twice; draws from `ids` only when enabled, so that a
    /// run without duplicates draws exactly what it would draw without this seam.
    pub fn duplicate(&self, ids: &Ids) -> bool {
        let per_mille = self.duplicate_per_mille.load(std::sync::atomic::Ordering::Relaxed);
        per_mille > 0 && ids.next_u64() % 1000 < u64::from(per_mille)
    }

    /// Whether to lose this answer on a reused connection; draws from `ids` only when
    /// enabled, like [`Chaos::duplicate`].
    pub fn lose_answer(&self, ids: &Ids) -> bool {
        let per_mille = self.lost_answer_per_mille.load(std::sync::atomic::Ordering::Relaxed);
        per_mille > 0 && ids.next_u64() % 1000 < u64::from(per_mille)
    }

    /// How late a duplicate goes (0: at once, before the original).
    pub fn duplicate_delay(&self, ids: &Ids) -> std::time::Duration {
        let max_ms = self.duplicate_delay_max_ms.load(std::sync::atomic::Ordering::Relaxed);
        let delay_ms = if max_ms == 0 { 0 } else { ids.next_u64() % (max_ms + 1) };
        std::time::Duration::from_millis(delay_ms)
    }

    /// Counts one scheduled late duplicate as pending until the guard is dropped: when the
    /// copy has gone out and finished, or when its task is dropped (a crashed host).
    pub fn track_pending(&self) -> PendingGuard {
        self.pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PendingGuard { pending: self.pending.clone() }
    }

    /// Late duplicates scheduled and not yet finished.
    pub fn pending(&self) -> u64 {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One pending late duplicate; see [`Chaos::track_pending`].
#[derive(Debug)]
pub struct PendingGuard {
    pending: Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Everything a service instance is handed at start: capabilities, its own database,
/// the token secrets and where its peers listen.
#[derive(Clone)]
pub struct Deps {
    pub env: Env,
    pub db: storage::Db,
    pub secrets: auth::Secrets,
    pub peers: internal::Peers,
}
