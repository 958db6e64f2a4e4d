//! The HTTP client over the network seam: a deadline per attempt, bounded retries with
//! jittered backoff, errors that say whether the request may have taken effect, and either a
//! fresh connection per request ([`HttpClient::new`]) or a bounded pool of keep-alive
//! connections per peer ([`HttpClient::keep_alive`], what services use between them).
//!
//! A pooled connection may have been closed by its peer (a restart, the server's idle
//! deadline) or be half-open. A request on one is sent again on a fresh connection only
//! when it is known not to have been received (hyper hands it back unsent) or when it is
//! idempotent; otherwise its outcome is unknown and the caller is told so.

use crate::{Env, Ids};
use bytes::Bytes;
use contracts::Problem;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest response body the client reads.
pub const RESPONSE_SIZE_MAX_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempt_timeout_ms: u64,
    pub attempt_count_max: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn once(attempt_timeout_ms: u64) -> RetryPolicy {
        RetryPolicy { attempt_timeout_ms, attempt_count_max: 1, backoff_initial_ms: 0, backoff_max_ms: 0 }
    }

    /// The delay before attempt `attempt + 1` (attempts count from 1): exponential, capped,
    /// with seeded jitter in its upper half.
    pub fn backoff(&self, attempt: u32, ids: &Ids) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let ceiling = self.backoff_initial_ms.saturating_mul(1u64 << exponent).min(self.backoff_max_ms);
        let half = ceiling / 2;
        let jitter = if half == 0 { 0 } else { ids.next_u64() % (half + 1) };
        Duration::from_millis(half + jitter)
    }
}

#[derive(Clone, Debug)]
pub struct OutboundRequest {
    pub method: Method,
    /// Path and query, e.g. `/api/v1/billing/withdraw`.
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Safe to send more than once: a retry after an unknown outcome is allowed.
    pub idempotent: bool,
    /// Why nothing ever sends this request twice, if so. Only such a request is spared the
    /// simulation's injected duplicates ([`crate::Chaos`]); every other one may be
    /// duplicated whether or not the caller marks it idempotent: the harness does not take
    /// the calling code's word that a request is safe to repeat.
    pub never_resent: Option<NeverResent>,
}

/// Why a request is never sent twice by anything (the client, a proxy, a relay, a
/// recovery), so that duplicating it would test nothing real. The complete list of
/// exemptions from injected duplicates; `docs/API.md` and `scenarios/README.md` repeat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeverResent {
    /// A write the gateway proxies without an `Idempotency-Key` (opening an account, an
    /// unkeyed deposit): the gateway sends it once and never retries it after an unknown
    /// outcome, and the client's own retry is a new request with its own effect.
    UnkeyedGatewayWrite,
}

impl OutboundRequest {
    pub fn new(method: Method, path: impl Into<String>) -> OutboundRequest {
        OutboundRequest {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            idempotent: false,
            never_resent: None,
        }
    }

    pub fn json(mut self, value: &impl serde::Serialize) -> OutboundRequest {
        self.body = Bytes::from(serde_json::to_vec(value).expect("wire types serialize"));
        self.header(http::header::CONTENT_TYPE, "application/json")
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> OutboundRequest {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn idempotent(mut self, idempotent: bool) -> OutboundRequest {
        debug_assert!(!idempotent || self.never_resent.is_none(), "a request never resent is not retried either");
        self.idempotent = idempotent;
        self
    }

    /// Marks a request that nothing ever sends twice (see [`NeverResent`]): it is not
    /// idempotent, so the client never retries it after an unknown outcome either.
    pub fn never_resent(mut self, reason: NeverResent) -> OutboundRequest {
        self.never_resent = Some(reason);
        self.idempotent = false;
        self
    }

    /// Whether the simulation may deliver this request twice: every request unless it is
    /// exempted with a reason.
    pub fn may_be_duplicated(&self) -> bool {
        self.never_resent.is_none()
    }
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CallError> {
        serde_json::from_slice(&self.body).map_err(|e| CallError::Undecodable { detail: e.to_string() })
    }

    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `Ok` for 2xx, else the status as a [`CallError::Status`].
    pub fn success(self) -> Result<Reply, CallError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(CallError::Status { status: self.status.as_u16(), problem: self.problem() })
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallError {
    /// No connection could be opened: the request was never sent.
    #[error("{addr} unreachable: {detail}")]
    Unreachable { addr: String, detail: String },
    /// No answer within the deadline: the request may or may not have taken effect.
    #[error("{addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    /// The connection broke after the request was sent: outcome unknown.
    #[error("{addr} connection broke: {detail}")]
    Broken { addr: String, detail: String },
    /// The peer answered with an error status.
    #[error("answered {status}")]
    Status { status: u16, problem: Option<Problem> },
    #[error("undecodable answer: {detail}")]
    Undecodable { detail: String },
}

impl CallError {
    /// Whether the request may have taken effect although no success was seen.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, CallError::Timeout { .. } | CallError::Broken { .. })
            || matches!(self, CallError::Status { status, .. } if *status >= 500)
    }

    /// The status of a [`CallError::Status`] from its text (`answered 503`), as a log line
    /// that kept only the text records it; `None` for any other error's text.
    pub fn status_in(text: &str) -> Option<u16> {
        text.strip_prefix("answered ")?.parse().ok()
    }

    /// Whether sending the same request again is safe.
    pub fn retry_safe(&self, idempotent: bool) -> bool {
        match self {
            CallError::Unreachable { .. } => true,
            CallError::Timeout { .. } | CallError::Broken { .. } => idempotent,
            CallError::Status { status, .. } => idempotent && matches!(status, 500 | 502 | 503 | 504),
            CallError::Undecodable { .. } => false,
        }
    }
}

/// Bounds of a keep-alive pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Idle connections kept per peer address; a connection freed beyond it is closed.
    pub idle_per_peer_max: usize,
    /// An idle connection older than this is closed rather than reused: well under the
    /// servers' own idle deadline (`ServerLimits::header_read_timeout_ms`, 10 s), so a
    /// request rarely meets a connection the server is closing.
    pub idle_timeout_ms: u64,
}

/// The pool every service uses for its calls to the others.
pub const SERVICE_POOL: PoolLimits = PoolLimits { idle_per_peer_max: 32, idle_timeout_ms: 5_000 };

/// One open HTTP/1.1 connection: the sender and the task driving the socket.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    /// When it last finished a request (pool clock).
    idle_since: tokio::time::Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// How a request on one connection failed.
enum SendFailure {
    /// The request was never written: nothing can have received it.
    NotSent(String),
    /// The request was (perhaps partly) written and no whole answer came back.
    Unknown(String),
}

/// Idle keep-alive connections by peer address, the most recently used last.
#[derive(Clone)]
struct Pool {
    limits: PoolLimits,
    idle: Arc<Mutex<BTreeMap<String, Vec<Connection>>>>,
}

impl Pool {
    fn new(limits: PoolLimits) -> Pool {
        Pool { limits, idle: Arc::new(Mutex::new(BTreeMap::new())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Connection>>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recently used idle connection to `addr` that has not expired (the expired
    /// ones are dropped). It may be closed already: sending on it says so
    /// ([`SendFailure::NotSent`]).
    fn take(&self, addr: &str, now: tokio::time::Instant) -> Option<Connection> {
        let mut idle = self.lock();
        let connections = idle.get_mut(addr)?;
        let timeout = Duration::from_millis(self.limits.idle_timeout_ms);
        connections.retain(|c| now.saturating_duration_since(c.idle_since) < timeout);
        connections.pop()
    }

    /// Keeps `connection` for reuse, unless it is closed or the peer's idle list is full.
    fn put(&self, addr: &str, mut connection: Connection, now: tokio::time::Instant) {
        if connection.sender.is_closed() {
            return;
        }
        connection.idle_since = now;
        let mut idle = self.lock();
        let connections = idle.entry(addr.to_string()).or_default();
        if connections.len() < self.limits.idle_per_peer_max {
            connections.push(connection);
        }
    }
}

#[derive(Clone)]
pub struct HttpClient {
    env: Env,
    /// `None`: a fresh connection per request.
    pool: Option<Pool>,
}

impl HttpClient {
    /// A client opening a fresh connection for every request.
    pub fn new(env: Env) -> HttpClient {
        HttpClient { env, pool: None }
    }

    /// A client keeping idle connections for reuse within `limits`. Clones share the pool.
    pub fn keep_alive(env: Env, limits: PoolLimits) -> HttpClient {
        HttpClient { env, pool: Some(Pool::new(limits)) }
    }

    /// Sends `request` to `addr`, retrying per `policy` while a retry is safe. Returns the
    /// last answer whatever its status, or the last transport error.
    pub async fn send(&self, addr: &str, request: &OutboundRequest, policy: RetryPolicy) -> Result<Reply, CallError> {
        let mut attempt = 1;
        loop {
            let result = self.attempt(addr, request, policy.attempt_timeout_ms).await;
            let error = match result {
                Ok(reply) if reply.status.is_server_error() => {
                    CallError::Status { status: reply.status.as_u16(), problem: reply.problem() }
                }
                Ok(reply) => return Ok(reply),
                Err(error) => error,
            };
            let retry = error.retry_safe(request.idempotent) && attempt < policy.attempt_count_max;
            tracing::debug!(%addr, path = %request.path, attempt, %error, retry, "call failed");
            if !retry {
                return Err(error);
            }
            self.env.clock.sleep(policy.backoff(attempt, &self.env.ids)).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, addr: &str, request: &OutboundRequest, timeout_ms: u64) -> Result<Reply, CallError> {
        let deadline = Duration::from_millis(timeout_ms);
        if request.may_be_duplicated() && self.env.chaos.duplicate(&self.env.ids) {
            // Injected duplicate: the same request once more, its answer dropped. Marked
            // idempotent or not: what may be resent must survive being received twice.
            crate::probe::hit(crate::probe::Probe::DuplicateSent);
            let delay = self.env.chaos.duplicate_delay(&self.env.ids);
            if delay.is_zero() {
                let _ = self.env.clock.timeout(deadline, self.exchange(addr, request)).await;
            } else {
                let (client, addr, request) = (self.clone(), addr.to_string(), request.clone());
                // Pending until the copy has finished, or its task is dropped by a crash.
                let pending = self.env.chaos.track_pending();
                self.env.spawn(async move {
                    let _pending = pending;
                    client.env.clock.sleep(delay).await;
                    crate::probe::hit(crate::probe::Probe::LateDuplicateSent);
                    let _ = client.env.clock.timeout(deadline, client.exchange(&addr, &request)).await;
                });
            }
        }
        match self.env.clock.timeout(deadline, self.exchange(addr, request)).await {
            Ok(result) => result,
            Err(_) => {
                crate::probe::hit(crate::probe::Probe::AttemptTimedOut);
                Err(CallError::Timeout { addr: addr.to_string(), timeout_ms })
            }
        }
    }

    /// One request: on pooled connections first (a pooled connection found closed, or
    /// that hands the request back unsent, is dropped and the next one tried), then on a
    /// fresh connection, which joins the pool after a clean answer.
    async fn exchange(&self, addr: &str, request: &OutboundRequest) -> Result<Reply, CallError> {
        let broken = |detail: String| CallError::Broken { addr: addr.to_string(), detail };
        if let Some(pool) = &self.pool {
            // Bounded: each turn takes a connection out of the peer's bounded idle list.
            while let Some(mut connection) = pool.take(addr, self.env.clock.now()) {
                crate::probe::hit(crate::probe::Probe::ConnectionReused);
                let sent = self.send_on(&mut connection, addr, request).await;
                // Injected (simulation only): the connection resets after the peer did the
                // work and before its answer arrives.
                let sent = match sent {
                    Ok(_) if self.env.chaos.lose_answer(&self.env.ids) => {
                        Err(SendFailure::Unknown("connection reset before the answer (injected)".to_string()))
                    }
                    sent => sent,
                };
                match sent {
                    Ok((reply, reusable)) => {
                        if reusable {
                            pool.put(addr, connection, self.env.clock.now());
                        }
                        return Ok(reply);
                    }
                    Err(SendFailure::NotSent(_)) => {
                        crate::probe::hit(crate::probe::Probe::StaleConnection);
                    }
                    Err(SendFailure::Unknown(detail)) => {
                        crate::probe::hit(crate::probe::Probe::PooledRequestLost);
                        if !request.idempotent {
                            return Err(broken(detail));
                        }
                        // Safe to send again: once more, on a fresh connection.
                        break;
                    }
                }
            }
        }
        let mut connection = self.connect(addr).await?;
        match self.send_on(&mut connection, addr, request).await {
            Ok((reply, reusable)) => {
                if let (Some(pool), true) = (&self.pool, reusable) {
                    pool.put(addr, connection, self.env.clock.now());
                }
                Ok(reply)
            }
            Err(SendFailure::NotSent(detail)) => Err(CallError::Unreachable { addr: addr.to_string(), detail }),
            Err(SendFailure::Unknown(detail)) => Err(broken(detail)),
        }
    }

    /// Opens a connection to `addr` and starts the task driving it.
    async fn connect(&self, addr: &str) -> Result<Connection, CallError> {
        let unreachable = |detail: String| CallError::Unreachable { addr: addr.to_string(), detail };
        let io = self.env.net.connect(addr).await.map_err(|e| unreachable(e.to_string()))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| unreachable(e.to_string()))?;
        let driver = self.env.spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender, driver, idle_since: self.env.clock.now() })
    }

    /// Sends `request` on `connection` and reads the whole answer; also says whether the
    /// connection may carry another request.
    async fn send_on(
        &self,
        connection: &mut Connection,
        addr: &str,
        request: &OutboundRequest,
    ) -> Result<(Reply, bool), SendFailure> {
        if let Err(error) = connection.sender.ready().await {
            return Err(SendFailure::NotSent(error.to_string()));
        }
        let mut builder = http::Request::builder().method(request.method.clone()).uri(&request.path);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let outbound = builder
            .header(http::header::HOST, addr)
            .body(Full::new(request.body.clone()))
            .map_err(|e| SendFailure::NotSent(e.to_string()))?;
        let response = connection.sender.try_send_request(outbound).await.map_err(|mut error| {
            let unsent = error.take_message().is_some();
            let detail = error.into_error().to_string();
            if unsent {
                SendFailure::NotSent(detail)
            } else {
                SendFailure::Unknown(detail)
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, RESPONSE_SIZE_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| SendFailure::Unknown(e.to_string()))?
            .to_bytes();
        let closing = parts
            .headers
            .get(http::header::CONNECTION)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
        Ok((Reply { status: parts.status, headers: parts.headers, body }, !closing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_read_back_from_its_text() {
        let status = CallError::Status { status: 401, problem: None };
        assert_eq!(CallError::status_in(&status.to_string()), Some(401));
        let timeout = CallError::Timeout { addr: "order:8081".into(), timeout_ms: 5 };
        assert_eq!(CallError::status_in(&timeout.to_string()), None);
        assert_eq!(CallError::status_in("answered soon"), None);
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let ids = Ids::from_seed(1);
        let policy =
            RetryPolicy { attempt_timeout_ms: 100, attempt_count_max: 10, backoff_initial_ms: 10, backoff_max_ms: 200 };
        for attempt in 1..30 {
            let delay = policy.backoff(attempt, &ids).as_millis() as u64;
            assert!(delay <= 200, "attempt {attempt}: {delay}");
        }
        let first = policy.backoff(1, &ids).as_millis();
        assert!((5..=10).contains(&(first as u64)));
        assert!(policy.backoff(10, &ids).as_millis() >= 100);
    }

    /// A network where every connection is refused, counting the attempts.
    #[derive(Default)]
    struct RefusingNet {
        connects: std::sync::atomic::AtomicU32,
    }

    impl crate::Net for RefusingNet {
        fn bind<'a>(&'a self, _: &'a str) -> crate::BoxFuture<'a, std::io::Result<Box<dyn crate::net::Listener>>> {
            Box::pin(async { Err(std::io::Error::other("no listening here")) })
        }

        fn connect<'a>(&'a self, _: &'a str) -> crate::BoxFuture<'a, std::io::Result<crate::net::BoxIo>> {
            self.connects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(async { Err(std::io::ErrorKind::ConnectionRefused.into()) })
        }
    }

    /// How many connections one `send` of `request` opens with every request duplicated.
    fn connections_under_duplicates(request: &OutboundRequest) -> u32 {
        let net = std::sync::Arc::new(RefusingNet::default());
        let clock = std::sync::Arc::new(crate::clock::ManualClock::new(chrono::DateTime::UNIX_EPOCH));
        let env = Env::new(clock, net.clone(), Ids::from_seed(7));
        env.chaos.duplicate_per_mille.store(1000, std::sync::atomic::Ordering::Relaxed);
        let client = HttpClient::new(env);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let result = runtime.block_on(client.send("billing:80", request, RetryPolicy::once(1_000)));
        assert!(matches!(result, Err(CallError::Unreachable { .. })), "{result:?}");
        net.connects.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn chaos_duplicates_every_request_but_the_exempted() {
        // Not marked idempotent, and duplicated all the same.
        let unmarked = OutboundRequest::new(Method::POST, "/api/v1/billing/deposit");
        assert!(!unmarked.idempotent);
        assert_eq!(connections_under_duplicates(&unmarked), 2);
        let idempotent = OutboundRequest::new(Method::POST, "/api/v1/billing/withdraw").idempotent(true);
        assert_eq!(connections_under_duplicates(&idempotent), 2);
        let exempted = OutboundRequest::new(Method::POST, "/api/v1/billing/deposit")
            .idempotent(true)
            .never_resent(NeverResent::UnkeyedGatewayWrite);
        assert!(!exempted.idempotent, "a request never resent is never retried");
        assert_eq!(connections_under_duplicates(&exempted), 1);
    }

    #[test]
    fn retry_safety_follows_the_outcome() {
        let timeout = CallError::Timeout { addr: "a".into(), timeout_ms: 1 };
        assert!(timeout.outcome_unknown());
        assert!(!timeout.retry_safe(false));
        assert!(timeout.retry_safe(true));
        let refused = CallError::Unreachable { addr: "a".into(), detail: "refused".into() };
        assert!(refused.retry_safe(false));
        let rejected = CallError::Status { status: 422, problem: None };
        assert!(!rejected.retry_safe(true));
        assert!(!rejected.outcome_unknown());
    }
}
