//! The gateway as the only door, through the real `shop`: the shopper flow, isolation
//! between shoppers, internal endpoints unreachable, tokens checked by every service.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests drive real processes in real time"
)]

mod common;

use common::*;
use contracts::ProblemType;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

#[test]
fn the_shopper_flow_ends_with_logout() {
    let shop = TestShop::start();
    let mut ann = shop.gateway();
    let registered = ann.register_and_login("ann@example.com");
    let profile = ann.get("/auth/profile/me");
    assert_eq!(profile.status, 200);
    assert_eq!(profile.body["userId"], registered["userId"]);
    assert_eq!(profile.body["firstName"], "Test");
    assert_eq!(ann.post("/api/v1/billing/accounts", json!({})).status, 201);
    assert_eq!(ann.post("/api/v1/billing/accounts", json!({})).status, 200, "a second open returns the account");
    assert_eq!(ann.post("/api/v1/billing/deposit", json!({"amount": 100})).status, 200);
    let order = ann.post_keyed("/api/v1/order", "k", &order_body(&[(JUG, 1)], &slot_in(2)));
    assert_eq!(order.status, 201, "{order:?}");

    let logout = ann.send("POST", "/auth/logout", None, &[]);
    assert_eq!(logout.status, 204);
    for path in ["/auth/profile/me", "/api/v1/orders", "/api/v1/billing/accounts/me"] {
        assert_eq!(ann.get(path).status, 401, "{path} after logout");
    }
    assert_eq!(ann.send("POST", "/auth/logout", None, &[]).status, 401);
}

#[test]
fn registration_and_login_refuse_bad_input() {
    let shop = TestShop::start();
    let mut bob = shop.gateway();
    bob.register_and_login("bob@example.com");
    let cases = [
        (json!({"email": "not-an-email", "password": "long enough"}), 400, Some(ProblemType::InvalidEmail)),
        (json!({"email": "x@example.com", "password": "short"}), 400, Some(ProblemType::InvalidPassword)),
        (json!({"email": "BOB@example.com", "password": "long enough"}), 409, Some(ProblemType::EmailTaken)),
        (json!({"email": "x@example.com"}), 400, Some(ProblemType::InvalidBody)),
        (json!({"email": 5, "password": "long enough"}), 400, Some(ProblemType::InvalidBody)),
    ];
    for (body, status, kind) in cases {
        let answer = shop.gateway().post("/auth/register", body.clone());
        assert_eq!((answer.status, answer.problem_type()), (status, kind), "{body}");
    }
    let wrong = shop.gateway().post("/auth/login", json!({"email": "bob@example.com", "password": "wrong password"}));
    let unknown =
        shop.gateway().post("/auth/login", json!({"email": "nobody@example.com", "password": "wrong password"}));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body, "the same answer for a wrong password and an unknown email");
    let via_root = shop.gateway().post("/auth/", json!({"email": "bob@example.com", "password": "correct horse"}));
    assert_eq!(via_root.status, 200);
}

#[test]
fn a_shopper_sees_only_their_own_data() {
    let shop = TestShop::start();
    let ann = shop.shopper("ann", "500");
    let order = ann.post_keyed("/api/v1/order", "k", &order_body(&[(JUG, 1)], &slot_in(2)));
    assert_eq!(order.status, 201);
    let order_id = order.body["id"].as_str().unwrap();

    let mut eve = shop.gateway();
    eve.register_and_login("eve@example.com");
    assert_eq!(eve.get(&format!("/api/v1/order/{order_id}")).status, 404);
    assert_eq!(eve.get("/api/v1/billing/accounts/me").status, 404);
    assert_eq!(eve.get("/api/v1/orders").body, json!([]));
    assert_eq!(eve.get("/api/v1/notifications").body, json!([]));
    assert_eq!(eve.get("/api/v1/billing/transactions").body, json!([]));
    // Claiming to be Ann in headers changes nothing: the gateway drops them.
    let ann_id = ann.get("/auth/profile/me").body["userId"].as_str().unwrap().to_string();
    let spoofed =
        eve.send("GET", "/api/v1/orders", None, &[("X-User-Id", &ann_id), ("Authorization", "Bearer nonsense")]);
    assert_eq!(spoofed.status, 200);
    assert_eq!(spoofed.body, json!([]));
}

fn token(secret: &str, sub: &str, aud: &str, exp_offset_s: i64) -> String {
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now()).timestamp();
    // A service credential names its service as issuer and subject; a user token the gateway.
    let iss = if sub.starts_with("service:") { sub } else { "store-gateway" };
    let claims = json!({"sub": sub, "iss": iss, "aud": aud, "iat": now, "exp": now + exp_offset_s});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[test]
fn internal_endpoints_and_tokens_are_guarded() {
    let shop = TestShop::start();
    let ann = shop.shopper("ann", "500");
    let internal = [
        "/api/v1/billing/withdraw",
        "/api/v1/billing/withdraw/cancel/00000000-0000-4000-8000-000000000001",
        "/api/v1/warehouse/reserve",
        "/api/v1/warehouse/reserve/cancel/00000000-0000-4000-8000-000000000001",
        "/api/v1/deliveries/reserve",
        "/api/v1/deliveries/reserve/cancel/00000000-0000-4000-8000-000000000001",
        "/api/v1/notifications/events",
        "/api/v1/notifications/events/batch",
    ];
    for path in internal {
        assert_eq!(ann.post(path, json!({})).status, 404, "{path} through the gateway");
    }
    let user = ann.get("/auth/profile/me").body["userId"].as_str().unwrap().to_string();
    let billing = Client::new(&shop.url(2));
    let call = |token: &str, path: &str, method: &str| {
        let bearer = format!("Bearer {token}");
        billing.send(method, path, (method == "POST").then_some(b"{}".as_slice()), &[("Authorization", &bearer)]).status
    };
    let valid = token(USER_TOKEN_SECRET, &user, "store-api", 60);
    assert_eq!(call(&valid, "/api/v1/billing/accounts/me", "GET"), 200, "a valid user token works");
    assert_eq!(call(&valid, "/api/v1/billing/withdraw", "POST"), 401, "a user token cannot call internal endpoints");
    let forged = token("guessed secret", &user, "store-api", 60);
    assert_eq!(call(&forged, "/api/v1/billing/accounts/me", "GET"), 401, "forged");
    // Services accept a token until their clock passes its expiry plus a bounded leeway
    // (clocks of separate hosts disagree; docs/API.md), and not a second longer.
    let leeway_s = platform::auth::CLOCK_LEEWAY_S;
    let within_leeway = token(USER_TOKEN_SECRET, &user, "store-api", -10);
    assert_eq!(call(&within_leeway, "/api/v1/billing/accounts/me", "GET"), 200, "expired within the leeway");
    let expired = token(USER_TOKEN_SECRET, &user, "store-api", -(leeway_s + 10));
    assert_eq!(call(&expired, "/api/v1/billing/accounts/me", "GET"), 401, "expired");
    let wrong_audience = token(USER_TOKEN_SECRET, &user, "somebody-else", 60);
    assert_eq!(call(&wrong_audience, "/api/v1/billing/accounts/me", "GET"), 401, "wrong audience");
    assert_eq!(billing.get("/api/v1/billing/accounts/me").status, 401, "no token");
    let service = token(SERVICE_TOKEN_SECRET, "service:order", "store-internal", 60);
    assert_eq!(call(&service, "/api/v1/billing/withdraw/cancel/00000000-0000-4000-8000-0000000000aa", "POST"), 200);
}

/// The outboxes' batch intake records a batch whole, once: repeats add nothing, and a batch
/// that is empty, too long or holds one bad event is refused with nothing of it stored.
#[test]
fn the_notification_batch_intake_records_whole_batches_once() {
    let shop = TestShop::start();
    let ann = shop.shopper("ann", "0");
    let user = ann.get("/auth/profile/me").body["userId"].as_str().unwrap().to_string();
    let notification = Client::new(&shop.url(5));
    let bearer = format!("Bearer {}", token(SERVICE_TOKEN_SECRET, "service:billing", "store-internal", 60));
    let post = |events: &Value| {
        let body = serde_json::to_vec(events).unwrap();
        notification.send("POST", "/api/v1/notifications/events/batch", Some(&body), &[("Authorization", &bearer)])
    };
    let event = |order: u32, kind: &str, message: String| json!({"type": kind, "orderId": format!("00000000-0000-4000-8000-{order:012}"), "userId": user, "message": message});
    let listed = || ann.get("/api/v1/notifications").body.as_array().unwrap().len();

    // A message's length is counted in characters, not bytes: 1,001 Cyrillic letters are over.
    let bad = json!([event(1, "PAYMENT_DEBITED", "ok".into()), event(1, "ORDER_CONFIRMED", "ж".repeat(1001))]);
    let refused = post(&bad);
    assert_eq!((refused.status, refused.body["type"].as_str()), (400, Some("/problems/invalid-message")));
    let too_many: Vec<Value> = (0..33).map(|order| event(order, "PAYMENT_DEBITED", "ok".into())).collect();
    for (events, what) in [(json!([]), "empty"), (json!(too_many), "33 events")] {
        let refused = post(&events);
        assert_eq!((refused.status, refused.body["type"].as_str()), (400, Some("/problems/invalid-body")), "{what}");
    }
    assert_eq!(listed(), 0, "a refused batch stores nothing");

    // 1,000 of them (2,000 bytes) are within the limit, in a batch and alone.
    let batch = json!([event(1, "PAYMENT_DEBITED", "debited".into()), event(1, "ORDER_CONFIRMED", "ж".repeat(1000))]);
    let first = post(&batch);
    assert_eq!((first.status, &first.body), (200, &json!({"created": 2})));
    let again = post(&batch);
    assert_eq!((again.status, &again.body), (200, &json!({"created": 0})), "a repeat adds nothing");
    assert_eq!(listed(), 2);
    let single = serde_json::to_vec(&event(2, "ORDER_CONFIRMED", "ж".repeat(1000))).unwrap();
    let alone = notification.send("POST", "/api/v1/notifications/events", Some(&single), &[("Authorization", &bearer)]);
    assert_eq!(alone.status, 201, "a message of 1,000 characters alone");
    let single = serde_json::to_vec(&event(3, "ORDER_CONFIRMED", "ж".repeat(1001))).unwrap();
    let alone = notification.send("POST", "/api/v1/notifications/events", Some(&single), &[("Authorization", &bearer)]);
    assert_eq!((alone.status, alone.body["type"].as_str()), (400, Some("/problems/invalid-message")));
    assert_eq!(listed(), 3);
    let user_token = format!("Bearer {}", token(USER_TOKEN_SECRET, &user, "store-api", 60));
    let body = serde_json::to_vec(&batch).unwrap();
    let as_user =
        notification.send("POST", "/api/v1/notifications/events/batch", Some(&body), &[("Authorization", &user_token)]);
    assert_eq!(as_user.status, 401, "a user token cannot deliver events");
}

#[test]
fn bad_requests_get_precise_problems_never_500() {
    let shop = TestShop::start();
    let ann = shop.shopper("ann", "0");
    let anonymous = shop.gateway();
    let huge = vec![b'1'; 70 * 1024];
    let long_header = "a".repeat(20 * 1024);
    type Case<'a> = (&'a Client, &'a str, &'a str, Option<&'a [u8]>, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": "), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": true}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": \"1.001\"}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": -5}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": 1000000000.01}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": 10.0000000000000001}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": \"1_000\"}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(b"{\"amount\": 1.00000000000000000000000000001}"), vec![], 400),
        (&ann, "POST", "/api/v1/billing/deposit", Some(&huge), vec![], 413),
        (&ann, "GET", "/api/v1/orders", None, vec![("X-Long", &long_header)], 431),
        (&ann, "GET", "/api/v1/order/not-a-uuid", None, vec![], 400),
        (&ann, "GET", "/api/v1/nothing-here", None, vec![], 404),
        (&ann, "DELETE", "/api/v1/orders", None, vec![], 405),
        (&anonymous, "GET", "/api/v1/nothing-here", None, vec![], 401),
        (&anonymous, "GET", "/nowhere", None, vec![], 404),
        (&anonymous, "POST", "/auth/login", Some(b"[]"), vec![], 400),
    ];
    for (client, method, path, body, headers, status) in cases {
        let answer = client.send(method, path, body, &headers);
        assert_eq!(answer.status, status, "{method} {path}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{method} {path}");
        assert_eq!(answer.body["status"], status, "{method} {path}");
    }
}

#[test]
fn request_ids_are_echoed_and_minted() {
    let shop = TestShop::start();
    let ann = shop.shopper("ann", "0");
    let echoed = ann.send("GET", "/api/v1/orders", None, &[("X-Request-Id", "my-request-1")]);
    assert_eq!(echoed.header("x-request-id"), Some("my-request-1"));
    let minted = ann.get("/api/v1/orders");
    assert!(minted.header("x-request-id").is_some_and(|id| id.len() >= 16));
}

#[test]
fn a_gateway_restart_keeps_sessions() {
    let mut shop = TestShop::start_groups(&["gateway", "order,billing,warehouse,delivery,notification"], 5);
    let ann = shop.shopper("ann", "42");
    shop.kill("gateway");
    assert!(ann.try_send("GET", "/auth/profile/me", None, &[]).is_none(), "the gateway is down");
    shop.start_group("gateway");
    assert_eq!(ann.get("/auth/profile/me").status, 200);
    assert_eq!(ann.balance(), "42.00");
}

#[test]
fn a_service_that_is_down_gets_503_with_retry_after() {
    let mut shop = TestShop::start_groups(&["gateway,order,billing,warehouse,delivery", "notification"], 5);
    let ann = shop.shopper("ann", "0");
    shop.kill("notification");
    let answer = ann.get("/api/v1/notifications");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(answer.problem_type(), Some(ProblemType::ServiceUnavailable));
}
