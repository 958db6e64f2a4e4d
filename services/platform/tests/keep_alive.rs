//! The keep-alive pool over loopback, against a scripted raw HTTP/1.1 server that counts the
//! connections it accepts and the requests it reads: a connection is reused; one the peer
//! closed is not; and a request written on a pooled connection that then dies unanswered is
//! sent again on a fresh connection only if it is idempotent.

#![allow(clippy::disallowed_methods, reason = "a real runtime and real sockets in a test")]

use http::Method;
use platform::client::{CallError, HttpClient, OutboundRequest, PoolLimits, RetryPolicy};
use platform::real::real_env;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server does with one request on a connection.
#[derive(Clone, Copy, Debug)]
enum Turn {
    /// Reads it and answers 200, keeping the connection open.
    Answer,
    /// Reads it and closes the connection without a word (a peer that crashed mid-request).
    Swallow,
}

struct Counts {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Set to close every connection that has played its script (until then they stay
    /// open, idle, as a server's keep-alive connections do).
    close_idle: tokio::sync::watch::Sender<bool>,
}

/// Serves connection `i` by `script[i]`, closing it after its last turn once told to
/// ([`Counts::close_idle`]); a connection beyond the script is closed at once. Returns the
/// address and the counts.
async fn scripted_server(script: Vec<Vec<Turn>>) -> (String, Arc<Counts>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let counts = Arc::new(Counts {
        connections: AtomicUsize::new(0),
        requests: AtomicUsize::new(0),
        close_idle: tokio::sync::watch::channel(false).0,
    });
    let served = counts.clone();
    tokio::spawn(async move {
        let mut index = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            served.connections.fetch_add(1, Ordering::SeqCst);
            let turns = script.get(index).cloned().unwrap_or_default();
            index += 1;
            let served = served.clone();
            tokio::spawn(async move {
                for turn in turns {
                    if !read_request(&mut stream).await {
                        return;
                    }
                    served.requests.fetch_add(1, Ordering::SeqCst);
                    match turn {
                        Turn::Answer => {
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                        Turn::Swallow => return,
                    }
                }
                let mut close = served.close_idle.subscribe();
                let _ = close.wait_for(|close| *close).await;
            });
        }
    });
    (addr, counts)
}

/// Reads one request (head and `content-length` body); false at end of stream.
async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.is_ok()
}

const POOL: PoolLimits = PoolLimits { idle_per_peer_max: 4, idle_timeout_ms: 60_000 };

fn get() -> OutboundRequest {
    OutboundRequest::new(Method::POST, "/thing").json(&serde_json::json!({"n": 1}))
}

async fn send(client: &HttpClient, addr: &str, request: &OutboundRequest) -> Result<u16, CallError> {
    client.send(addr, request, RetryPolicy::once(5_000)).await.map(|reply| reply.status.as_u16())
}

#[tokio::test]
async fn a_pooled_connection_carries_request_after_request() {
    let (addr, counts) = scripted_server(vec![vec![Turn::Answer; 3]]).await;
    let client = HttpClient::keep_alive(real_env(), POOL);
    for _ in 0..3 {
        assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    }
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1, "one connection for three requests");
    assert_eq!(counts.requests.load(Ordering::SeqCst), 3);

    // An idle connection past the pool's idle timeout is not reused, though still open.
    let (addr, counts) = scripted_server(vec![vec![Turn::Answer]; 2]).await;
    let client = HttpClient::keep_alive(real_env(), PoolLimits { idle_timeout_ms: 1, ..POOL });
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2, "the expired connection was not reused");

    // The fresh-connection client opens one per request.
    let (addr, counts) = scripted_server(vec![vec![Turn::Answer]; 2]).await;
    let client = HttpClient::new(real_env());
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_its_peer_closed_is_not_used_again() {
    // The first connection is closed by the server after one answer (a restart, an idle
    // deadline): the next request, not idempotent, must go on a fresh connection, once.
    let (addr, counts) = scripted_server(vec![vec![Turn::Answer], vec![Turn::Answer]]).await;
    let client = HttpClient::keep_alive(real_env(), POOL);
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    counts.close_idle.send_replace(true);
    // Time for the peer's FIN to reach the idle connection's driver; not a measurement.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
    assert_eq!(counts.requests.load(Ordering::SeqCst), 2, "each request received once");
}

#[tokio::test]
async fn a_request_lost_on_a_pooled_connection_is_resent_only_if_idempotent() {
    // Not idempotent: the server read the second request and died without answering. The
    // outcome is unknown, and the request is not sent again.
    let (addr, counts) = scripted_server(vec![vec![Turn::Answer, Turn::Swallow], vec![Turn::Answer]]).await;
    let client = HttpClient::keep_alive(real_env(), POOL);
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    let error = send(&client, &addr, &get()).await.expect_err("no answer came back");
    assert!(matches!(error, CallError::Broken { .. }), "{error:?}");
    assert!(error.outcome_unknown());
    assert_eq!(counts.requests.load(Ordering::SeqCst), 2, "the lost request was not sent again");
    assert_eq!(counts.connections.load(Ordering::SeqCst), 1);

    // Idempotent: sent once more, on a fresh connection, and answered there.
    let (addr, counts) = scripted_server(vec![vec![Turn::Answer, Turn::Swallow], vec![Turn::Answer]]).await;
    let client = HttpClient::keep_alive(real_env(), POOL);
    assert_eq!(send(&client, &addr, &get()).await, Ok(200));
    assert_eq!(send(&client, &addr, &get().idempotent(true)).await, Ok(200));
    assert_eq!(counts.requests.load(Ordering::SeqCst), 3);
    assert_eq!(counts.connections.load(Ordering::SeqCst), 2);
}
