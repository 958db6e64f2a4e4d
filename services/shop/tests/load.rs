//! The store under load, through the real `shop` over loopback: blocking work (password
//! hashes, database commits) must not starve the async workers that carry the sagas.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests drive real processes in real time"
)]

mod common;

use common::*;
use contracts::order::OrderStatus;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FLOOD_LOGINS: usize = 50;
const ORDERS: i64 = 8;

/// What the flood's logins were answered: status (0: no answer) → count, and how many 503s
/// came without `Retry-After`.
#[derive(Debug, Default)]
struct Outcomes {
    by_status: BTreeMap<u16, usize>,
    unavailable_without_retry_after: usize,
}

/// 50 clients at once log in with a wrong password (Argon2id at its standard cost, 19 MiB),
/// each sending its next attempt as soon as the last was answered, while one shopper places
/// orders. Every order must confirm: the hashes may not take the workers the sagas run on
/// (before the fix, saga calls timed out behind them and orders failed with
/// SERVICE_UNAVAILABLE or the gateway answered 503/504). The flood itself is answered 401
/// (a hash ran) or 503 with `Retry-After` (the hash pool was full), never anything else.
#[test]
fn orders_keep_confirming_while_fifty_wrong_password_logins_run() {
    let shop = TestShop::start_standard_cost();
    let ann = shop.shopper("ann", "5000");
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let flood: Vec<_> = (0..FLOOD_LOGINS)
        .map(|_| {
            let (stop, outcomes, base) = (stop.clone(), outcomes.clone(), shop.url(0));
            std::thread::spawn(move || {
                let client = Client::new(&base);
                let body = json!({"email": "ann@example.com", "password": "not the password"}).to_string();
                while !stop.load(Ordering::SeqCst) {
                    let answer = client.try_send("POST", "/auth/login", Some(body.as_bytes()), &[]);
                    let status = answer.as_ref().map_or(0, |a| a.status);
                    let mut outcomes = outcomes.lock().unwrap();
                    *outcomes.by_status.entry(status).or_default() += 1;
                    if status == 503 {
                        if answer.as_ref().and_then(|a| a.header("retry-after")) != Some("1") {
                            outcomes.unavailable_without_retry_after += 1;
                        }
                        drop(outcomes);
                        // A little pause, so the test's own clients do not eat the cores.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    // The flood is under way once every client has had an answer or two.
    ann.eventually(
        Duration::from_secs(120),
        |_| outcomes.lock().unwrap().by_status.values().sum::<usize>(),
        |answered| *answered >= 2 * FLOOD_LOGINS,
    );

    let mut orders = Vec::new();
    for index in 0..ORDERS {
        let body = order_body(&[(JUG, index + 1)], &slot_in(2 + index));
        let answer = ann.try_send(
            "POST",
            "/api/v1/order",
            Some(body.to_string().as_bytes()),
            &[("Idempotency-Key", &format!("flood-{index}"))],
        );
        orders.push(answer.map(|a| (a.status, status_in(&a.body), a.body["order"]["errorMessage"].clone())));
    }
    stop.store(true, Ordering::SeqCst);
    for client in flood {
        client.join().unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    eprintln!("orders during the flood: {orders:?}\nflood answers: {outcomes:?}");

    let confirmed = orders.iter().filter(|o| matches!(o, Some((201, Some(OrderStatus::Confirmed), _)))).count();
    assert_eq!(confirmed, orders.len(), "every order placed during the flood confirms: {orders:?}");
    let unexpected: Vec<_> = outcomes.by_status.keys().filter(|status| ![401, 503].contains(*status)).collect();
    assert!(unexpected.is_empty(), "the flood is answered 401 or 503 only: {outcomes:?}");
    assert!(outcomes.by_status.get(&401).is_some_and(|n| *n > 0), "hashes ran: {outcomes:?}");
    assert_eq!(outcomes.unavailable_without_retry_after, 0, "every 503 says when to retry: {outcomes:?}");
}
