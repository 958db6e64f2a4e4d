//! Contract details at the gateway, in process: a known route with another method, the
//! session cookie refreshed with the session, and what reaches a service (`X-Request-Id`,
//! `traceparent`), seen by a stand-in service on loopback that records request heads.

#![allow(clippy::disallowed_methods, clippy::disallowed_types, reason = "a stand-in service on a real loopback socket")]

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use contracts::{ProblemKind, ProblemType};
use http_body_util::BodyExt;
use platform::clock::ManualClock;
use platform::Ids;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

mod common;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()))
}

fn gateway(clock: Arc<ManualClock>, upstream: &str) -> Router {
    common::gateway_app(clock, Ids::from_seed(1), upstream)
}

/// A service that answers `[]` to everything and keeps every request head it got.
async fn stand_in() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let kept = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buffer = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            kept.lock().unwrap().push(String::from_utf8_lossy(&head).to_ascii_lowercase());
            let answer =
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]";
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (address, heads)
}

async fn send(app: &Router, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response<Body> {
    let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap()
}

async fn problem_type(response: Response<Body>) -> ProblemKind {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    ProblemKind::parse(body["type"].as_str().unwrap_or_default())
}

fn set_cookie(response: &Response<Body>) -> Option<String> {
    response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string())
}

async fn logged_in(app: &Router) -> String {
    let credentials = r#"{"email":"kim@example.com","password":"long enough"}"#;
    assert_eq!(send(app, "POST", "/auth/register", &[], credentials).await.status(), StatusCode::CREATED);
    let login = send(app, "POST", "/auth/login", &[], credentials).await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = set_cookie(&login).unwrap();
    assert!(cookie.contains("Max-Age=86400"), "{cookie}");
    cookie.split(';').next().unwrap().to_string()
}

/// Every `/api` call without a session is a 401, also a known route called with another
/// method; with a session, that is a 405 naming the method the route takes.
#[tokio::test]
async fn a_known_route_with_another_method_is_401_without_a_session() {
    let app = gateway(clock(), "127.0.0.1:9");
    for (method, path) in [("DELETE", "/api/v1/orders"), ("GET", "/api/v1/order"), ("PUT", "/api/v1/billing/deposit")] {
        let anonymous = send(&app, method, path, &[], "").await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "anonymous {method} {path}");
        assert_eq!(problem_type(anonymous).await, ProblemType::Unauthorized);
    }
    let cookie = logged_in(&app).await;
    let wrong = send(&app, "DELETE", "/api/v1/orders", &[("cookie", &cookie)], "").await;
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.headers().get("allow").unwrap(), "GET,HEAD");
    assert_eq!(problem_type(wrong).await, ProblemType::MethodNotAllowed);
    // Outside `/api` the route table answers as before.
    assert_eq!(send(&app, "GET", "/auth/login", &[], "").await.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// When a use moves the server-side session's expiry forward, the cookie's `Max-Age` moves
/// with it: a shopper active for more than 24 hours keeps both.
#[tokio::test]
async fn the_cookie_is_refreshed_with_the_session() {
    let clock = clock();
    let (upstream, _) = stand_in().await;
    let app = gateway(clock.clone(), &upstream);
    let cookie = logged_in(&app).await;
    let at_once = send(&app, "GET", "/auth/profile/me", &[("cookie", &cookie)], "").await;
    assert_eq!(at_once.status(), StatusCode::OK);
    assert_eq!(set_cookie(&at_once), None, "a session used within the touch interval is not refreshed");
    clock.advance(Duration::from_secs(20 * 3600));
    for path in ["/auth/profile/me", "/api/v1/orders"] {
        let later = send(&app, "GET", path, &[("cookie", &cookie)], "").await;
        assert_eq!(later.status(), StatusCode::OK, "{path}");
        let refreshed = set_cookie(&later).unwrap_or_else(|| panic!("{path}: the cookie must be refreshed"));
        assert!(refreshed.starts_with(&format!("{cookie};")) && refreshed.contains("Max-Age=86400"), "{refreshed}");
        assert!(refreshed.contains("HttpOnly") && refreshed.contains("SameSite=Lax") && refreshed.contains("Path=/"));
        clock.advance(Duration::from_secs(3600));
    }
}

fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| line.strip_prefix(&format!("{name}: ")))
}

/// What reaches the service: a valid client request id as sent, an invalid one replaced by
/// the gateway's (which the client gets back); the client's trace continued in a new span.
#[tokio::test]
async fn request_ids_are_checked_and_traces_continued() {
    let (upstream, heads) = stand_in().await;
    let app = gateway(clock(), &upstream);
    let cookie = logged_in(&app).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{parent}-01");
    let long = "a".repeat(200);
    let cases = [("my-request-1", true), ("has spaces in it", false), (long.as_str(), false), ("ünïcode", false)];
    for (index, (request_id, valid)) in cases.into_iter().enumerate() {
        let headers =
            [("cookie", cookie.as_str()), ("x-request-id", request_id), ("traceparent", traceparent.as_str())];
        let response = send(&app, "GET", "/api/v1/orders", &headers, "").await;
        assert_eq!(response.status(), StatusCode::OK, "{request_id}");
        let echoed = response.headers().get("x-request-id").unwrap().to_str().unwrap().to_string();
        let head = heads.lock().unwrap()[index].clone();
        let forwarded: Vec<&str> = head.lines().filter_map(|l| l.strip_prefix("x-request-id: ")).collect();
        assert_eq!(forwarded, [echoed.to_ascii_lowercase().as_str()], "one request id, the one the client got back");
        if valid {
            assert_eq!(echoed, request_id);
        } else {
            assert_ne!(echoed, request_id, "an invalid request id is replaced");
            assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
        }
        let sent = header_of(&head, "traceparent").expect("a traceparent");
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts.len(), 4, "{sent}");
        assert_eq!(parts[1], trace, "the same trace");
        assert_ne!(parts[2], parent, "a new span, not the client's");
        assert_eq!(parts[2].len(), 16);
    }
}
