//! Sessions against the clock seam: 24 hours of inactivity end a session; use keeps it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use platform::clock::ManualClock;
use platform::Ids;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

mod common;

fn gateway(clock: Arc<ManualClock>) -> Router {
    gateway_with_ids(clock, Ids::from_seed(1))
}

fn gateway_with_ids(clock: Arc<ManualClock>, ids: Ids) -> Router {
    common::gateway_app(clock, ids, "127.0.0.1:9")
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>) {
    let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = app.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = response.status();
    let cookie =
        response.headers().get("set-cookie").map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    let _ = response.into_body().collect().await.unwrap();
    (status, cookie)
}

async fn logged_in(app: &Router) -> String {
    let credentials = r#"{"email":"kim@example.com","password":"long enough"}"#;
    assert_eq!(call(app, "POST", "/auth/register", None, credentials).await.0, StatusCode::CREATED);
    let (status, cookie) = call(app, "POST", "/auth/login", None, credentials).await;
    assert_eq!(status, StatusCode::OK);
    cookie.unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_session_idle_for_24_hours_is_gone() {
    let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    let app = gateway(clock.clone());
    let cookie = logged_in(&app).await;
    clock.advance(23 * HOUR);
    assert_eq!(call(&app, "GET", "/auth/profile/me", Some(&cookie), "").await.0, StatusCode::OK);
    // That use refreshed it: another 23 hours are fine too.
    clock.advance(23 * HOUR);
    assert_eq!(call(&app, "GET", "/auth/profile/me", Some(&cookie), "").await.0, StatusCode::OK);
    clock.advance(24 * HOUR);
    assert_eq!(call(&app, "GET", "/auth/profile/me", Some(&cookie), "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "GET", "/api/v1/orders", Some(&cookie), "").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_is_final() {
    let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    let app = gateway(clock);
    let cookie = logged_in(&app).await;
    assert_eq!(call(&app, "POST", "/auth/logout", Some(&cookie), "").await.0, StatusCode::NO_CONTENT);
    assert_eq!(call(&app, "GET", "/auth/profile/me", Some(&cookie), "").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "POST", "/auth/logout", Some(&cookie), "").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_alike() {
    let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    let app = gateway(clock);
    logged_in(&app).await;
    let wrong =
        call(&app, "POST", "/auth/login", None, r#"{"email":"kim@example.com","password":"not the one"}"#).await;
    let unknown =
        call(&app, "POST", "/auth/login", None, r#"{"email":"nobody@example.com","password":"not the one"}"#).await;
    assert_eq!(wrong, (StatusCode::UNAUTHORIZED, None));
    assert_eq!(wrong, unknown);
}

/// The session id a fresh gateway with these ids gives the first shopper who logs in.
async fn first_session_id(ids: Ids) -> String {
    let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    let cookie = logged_in(&gateway_with_ids(clock, ids)).await;
    cookie.strip_prefix("session=").unwrap().to_string()
}

/// In the simulation a seed decides everything, session ids included; in real mode the ids
/// come from the same kind of seeded stream (request ids are minted from it and are public),
/// but session ids come from the operating system: two gateways with one seed, the same
/// requests and the same public stream still hand out different session ids of 256 bits.
#[tokio::test]
async fn real_session_ids_do_not_follow_from_the_seed() {
    assert_eq!(first_session_id(Ids::from_seed(1)).await, first_session_id(Ids::from_seed(1)).await);
    let (a, b) = (Ids::with_os_secrets(1), Ids::with_os_secrets(1));
    let (session_a, session_b) = (first_session_id(a.clone()).await, first_session_id(b.clone()).await);
    assert_eq!(a.uuid(), b.uuid(), "the public streams are alike");
    assert_ne!(session_a, session_b, "a session id is not derived from the seed");
    assert_eq!(session_a.len(), 64);
    assert!(session_a.bytes().all(|c| c.is_ascii_hexdigit()));
}
