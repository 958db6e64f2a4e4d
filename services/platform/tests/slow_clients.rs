//! Slow clients over loopback: a body that does not arrive within the body deadline gets
//! 408 and its connection closes, so trickling clients cannot hold the connection permits;
//! a normal client is served meanwhile. The deadline is on the clock seam: a gate clock
//! whose body-deadline sleeps end only when the test opens it, so no assertion depends on
//! timing. (hyper's header deadline sleeps on the same clock: it is left long and real.)

#![allow(clippy::disallowed_methods, reason = "a real runtime and real sockets in a test")]

use axum::routing::post;
use axum::Router;
use contracts::Timestamp;
use platform::clock::Clock;
use platform::net::{BoxIo, Net};
use platform::real::{SystemClock, TokioNet};
use platform::server::{serve, with_common_layers, ServerLimits, BODY_READ_TIMEOUT_MS, SERVER_LIMITS};
use platform::storage::Db;
use platform::{BoxFuture, Env, Ids, Spawner};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A clock whose sleeps of the body deadline last until [`GateClock::open`]; any other
/// sleep (hyper's header deadline) is tokio's.
struct GateClock {
    open: watch::Sender<bool>,
}

impl GateClock {
    fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Clock for GateClock {
    fn now(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    fn now_utc(&self) -> Timestamp {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        if duration != Duration::from_millis(BODY_READ_TIMEOUT_MS) {
            return Box::pin(tokio::time::sleep(duration));
        }
        let mut open = self.open.subscribe();
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
        })
    }
}

const CONNECTIONS: usize = 3;

/// A client that sends its headers, announcing 60,000 bytes of body, then trickles a few.
async fn slow_client(addr: &str) -> BoxIo {
    let mut io = TokioNet.connect(addr).await.unwrap();
    let head = "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n";
    io.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..5 {
        io.write_all(b" ").await.unwrap();
        io.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    io
}

/// Everything the server sends until it closes the connection.
async fn answer(mut io: BoxIo) -> String {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match io.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&bytes).to_string()
}

/// A whole request at once; the answer.
async fn normal_client(addr: &str) -> String {
    let mut io = TokioNet.connect(addr).await.unwrap();
    let request = "POST /echo HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    io.write_all(request.as_bytes()).await.unwrap();
    answer(io).await
}

/// Bounds a step that must finish, so that a server that never answers fails the test
/// instead of hanging it (not a performance bound).
async fn within_a_minute<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    clock.timeout(Duration::from_secs(60), future).await.unwrap_or_else(|_| panic!("{what}: no answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_and_free_their_connections() {
    let clock = Arc::new(GateClock { open: watch::channel(false).0 });
    let listener = TokioNet.bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let routes = Router::new().route("/echo", post(|body: axum::body::Bytes| async move { format!("{}", body.len()) }));
    let limits = ServerLimits { connection_count_max: CONNECTIONS, header_read_timeout_ms: 3_600_000, ..SERVER_LIMITS };
    let env = Env::new(clock.clone(), Arc::new(TokioNet), Ids::from_seed(1));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = Spawner::Runtime.spawn(serve(
        listener,
        with_common_layers(routes, &env, &Db::open_memory(&[]).unwrap()),
        limits,
        Spawner::Runtime,
        clock.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    // Two slow clients hold two of the three connections; a normal client is served.
    let mut slow = vec![slow_client(&addr).await, slow_client(&addr).await];
    let served = within_a_minute("a normal client next to slow ones", normal_client(&addr)).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(served.ends_with("\r\n\r\n2"), "{served}");

    // A third takes the last connection: a client now waits for a permit (a lockout, for
    // as long as the slow ones may hold theirs).
    slow.push(slow_client(&addr).await);
    let waiting = Spawner::Runtime.spawn({
        let addr = addr.clone();
        async move { normal_client(&addr).await }
    });

    // The body deadline passes: every slow client gets 408 problem+json and is closed.
    clock.open();
    for io in slow {
        let answer = within_a_minute("a slow client", answer(io)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("content-type: application/problem+json"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(answer.contains("x-request-id: "), "a 408 carries its request id: {answer}");
        assert!(answer.contains(&format!("\"type\":\"{}\"", contracts::ProblemType::RequestTimeout)), "{answer}");
    }
    // Their permits are free again: the waiting client is served.
    let served = within_a_minute("the waiting client", waiting).await.unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");

    let _ = stop.send(());
    within_a_minute("shutdown", server).await.unwrap();
}
