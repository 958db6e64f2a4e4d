//! The store through the real `shop` over loopback HTTP: the seed's key scenario and every
//! failure path of the contract, with balances, stock, slots and notifications checked.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests drive real processes in real time"
)]

mod common;

use common::*;
use contracts::order::OrderStatus;
use contracts::ProblemType;
use serde_json::json;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(20);

#[test]
fn key_scenario_confirms_and_records_everything() {
    let shop = TestShop::start();
    let ann = shop.shopper("ann", "5000");
    let slot = slot_in(3);
    let stock_before = ann.available(ESPRESSO);
    let slot_before = ann.slot_remaining(&slot);

    let answer = ann.post_keyed("/api/v1/order", "k-1", &order_body(&[(ESPRESSO, 2)], &slot));
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(status_in(&answer.body), Some(OrderStatus::Confirmed));
    assert_eq!(answer.body["price"], "498.00");
    assert_eq!(answer.body["items"][0]["name"], "Espresso machine");
    let order_id = answer.body["id"].as_str().unwrap().to_string();
    assert_eq!(answer.header("location"), Some(format!("/api/v1/order/{order_id}").as_str()));
    assert!(answer.header("x-request-id").is_some());

    assert_eq!(ann.balance(), "4502.00");
    assert_eq!(ann.available(ESPRESSO), stock_before - 2);
    assert_eq!(ann.slot_remaining(&slot), slot_before - 1);
    let types = ann.eventually(SETTLE, |c| c.notification_types(&order_id), |t| t.len() == 2);
    assert_eq!(types, ["ORDER_CONFIRMED", "PAYMENT_DEBITED"]);
    let ledger = ann.get("/api/v1/billing/transactions").body;
    assert_eq!(ledger[0]["type"], "WITHDRAW");
    assert_eq!(ledger[0]["orderId"], order_id.as_str());
    assert_eq!(ledger[1]["type"], "DEPOSIT");
    assert_eq!(ann.get("/api/v1/orders").body.as_array().unwrap().len(), 1);
}

/// One service per container: a gateway whose peers run elsewhere, reached only through
/// `--peer SERVICE=HOST:PORT`, places an order that confirms there.
#[test]
fn a_gateway_reaches_services_elsewhere_through_peer_addresses() {
    let backend = TestShop::start_groups(&["order,billing,warehouse,delivery,notification"], 5);
    let mut front = TestShop::start_groups(&[], 5);
    let peers: Vec<String> = ["order", "billing", "warehouse", "delivery", "notification"]
        .iter()
        .zip(1u16..)
        .map(|(service, offset)| format!("--peer={service}=127.0.0.1:{}", backend.base_port + offset))
        .collect();
    front.start_group_with("gateway", &peers);
    let ann = front.shopper("ann", "5000");
    let answer = ann.post_keyed("/api/v1/order", "k-peer", &order_body(&[(ESPRESSO, 1)], &slot_in(3)));
    assert_eq!(answer.status, 201, "{answer:?}");
    assert_eq!(status_in(&answer.body), Some(OrderStatus::Confirmed));
    assert_eq!(ann.balance(), "4751.00");
}

/// A rejected order: 422 with the reason, and nothing changed anywhere.
fn assert_rejected(client: &Client, body: serde_json::Value, reason: &str) -> String {
    let balance = client.balance();
    let stocks: Vec<i64> = [ESPRESSO, GRINDER, BEANS].iter().map(|p| client.available(p)).collect();
    let answer = client.post_keyed("/api/v1/order", &format!("key-{reason}"), &body);
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.problem_type(), Some(ProblemType::OrderRejected));
    assert_eq!(status_in(&answer.body["order"]), Some(OrderStatus::Failed));
    assert_eq!(answer.body["order"]["errorMessage"], reason);
    let order_id = answer.body["order"]["id"].as_str().unwrap().to_string();
    assert_eq!(client.balance(), balance, "money back after {reason}");
    let after: Vec<i64> = [ESPRESSO, GRINDER, BEANS].iter().map(|p| client.available(p)).collect();
    assert_eq!(after, stocks, "stock back after {reason}");
    assert_eq!(client.order_status(&order_id), Some(OrderStatus::Failed));
    order_id
}

#[test]
fn insufficient_funds_is_rejected_and_nothing_moves() {
    let shop = TestShop::start();
    let bob = shop.shopper("bob", "100");
    let order_id = assert_rejected(&bob, order_body(&[(ESPRESSO, 1)], &slot_in(3)), "INSUFFICIENT_FUNDS");
    let types = bob.eventually(SETTLE, |c| c.notification_types(&order_id), |t| !t.is_empty());
    assert_eq!(types, ["ORDER_FAILED"]);
}

#[test]
fn no_account_is_rejected() {
    let shop = TestShop::start();
    let mut cat = shop.gateway();
    cat.register_and_login("cat@example.com");
    let answer = cat.post_keyed("/api/v1/order", "k", &order_body(&[(JUG, 1)], &slot_in(3)));
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["order"]["errorMessage"], "NO_ACCOUNT");
}

#[test]
fn out_of_stock_refunds_the_payment() {
    let shop = TestShop::start();
    let dan = shop.shopper("dan", "1000");
    let order_id = assert_rejected(&dan, order_body(&[(BEANS, 4)], &slot_in(3)), "OUT_OF_STOCK");
    let types = dan.eventually(SETTLE, |c| c.notification_types(&order_id), |t| t.len() == 3);
    assert_eq!(types, ["ORDER_FAILED", "PAYMENT_DEBITED", "PAYMENT_REFUNDED"]);
    let ledger = dan.get("/api/v1/billing/transactions").body;
    assert_eq!(ledger[0]["type"], "REFUND");
    assert_eq!(ledger[1]["type"], "WITHDRAW");
}

#[test]
fn a_full_slot_releases_stock_and_refunds() {
    let shop = TestShop::start_groups(&["gateway,order,billing,warehouse,delivery,notification"], 1);
    let eve = shop.shopper("eve", "1000");
    let slot = slot_in(5);
    let first = eve.post_keyed("/api/v1/order", "first", &order_body(&[(JUG, 1)], &slot));
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(eve.slot_remaining(&slot), 0);
    let order_id = assert_rejected(&eve, order_body(&[(GRINDER, 1)], &slot), "NO_DELIVERY_SLOT");
    assert_eq!(eve.slot_remaining(&slot), 0);
    let types = eve.eventually(SETTLE, |c| c.notification_types(&order_id), |t| t.len() == 3);
    assert_eq!(types, ["ORDER_FAILED", "PAYMENT_DEBITED", "PAYMENT_REFUNDED"]);
}

#[test]
fn idempotency_keys_and_similar_orders_follow_the_decision_table() {
    let shop = TestShop::start();
    let fay = shop.shopper("fay", "5000");
    let slot = slot_in(4);
    let body = order_body(&[(TAMPER, 1), (JUG, 2)], &slot);
    let first = fay.post_keyed("/api/v1/order", "same-key", &body);
    assert_eq!(first.status, 201, "{first:?}");

    let again = fay.post_keyed("/api/v1/order", "same-key", &body);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["id"], first.body["id"]);

    let other = order_body(&[(TAMPER, 2)], &slot);
    let reused = fay.post_keyed("/api/v1/order", "same-key", &other);
    assert_eq!(reused.status, 422, "{reused:?}");
    assert_eq!(reused.problem_type(), Some(ProblemType::IdempotencyKeyReused));

    // The same items in another order of lines, under a new key: a similar order.
    let similar = order_body(&[(JUG, 2), (TAMPER, 1)], &slot);
    let duplicate = fay.post_keyed("/api/v1/order", "new-key", &similar);
    assert_eq!(duplicate.status, 409, "{duplicate:?}");
    assert_eq!(duplicate.problem_type(), Some(ProblemType::DuplicateOrder));
    assert_eq!(duplicate.body["order"]["id"], first.body["id"]);
    let repeated = fay.post_keyed("/api/v1/order", "new-key", &similar);
    assert_eq!(repeated.status, 409);
    assert_eq!(repeated.body["order"]["id"], first.body["id"]);

    assert_eq!(fay.get("/api/v1/orders").body.as_array().unwrap().len(), 1);
    assert_eq!(fay.balance(), format!("{:.2}", 5000.0 - 29.99 - 30.0));
}

#[test]
fn malformed_orders_get_precise_400s() {
    let shop = TestShop::start();
    let gil = shop.shopper("gil", "10");
    let slot = slot_in(3);
    let good = order_body(&[(JUG, 1)], &slot).to_string();
    let cases: Vec<(Option<&str>, String, Option<ProblemType>)> = vec![
        (None, good.clone(), Some(ProblemType::IdempotencyKeyMissing)),
        (Some(""), good.clone(), Some(ProblemType::IdempotencyKeyInvalid)),
        (Some("k"), "{\"items\": [".to_string(), Some(ProblemType::MalformedJson)),
        (Some("k"), json!({"items": "x"}).to_string(), Some(ProblemType::InvalidBody)),
        (Some("k"), order_body(&[], &slot).to_string(), Some(ProblemType::InvalidOrder)),
        (Some("k"), order_body(&[(JUG, 0)], &slot).to_string(), Some(ProblemType::InvalidOrder)),
        (Some("k"), order_body(&[(JUG, 1001)], &slot).to_string(), Some(ProblemType::InvalidOrder)),
        (Some("k"), order_body(&[(JUG, 1)], "2030-01-01T10:30:00Z").to_string(), Some(ProblemType::InvalidOrder)),
        (
            Some("k"),
            order_body(&[("00000000-0000-4000-8000-0000000000ff", 1)], &slot).to_string(),
            Some(ProblemType::UnknownProduct),
        ),
    ];
    for (key, body, expected) in cases {
        let headers: Vec<(&str, &str)> = key.map(|k| vec![("Idempotency-Key", k)]).unwrap_or_default();
        let answer = gil.send("POST", "/api/v1/order", Some(body.as_bytes()), &headers);
        assert_eq!(answer.status, 400, "{body}: {answer:?}");
        assert_eq!(answer.problem_type(), expected, "{body}");
        assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    }
    assert!(gil.get("/api/v1/orders").body.as_array().unwrap().is_empty());
}

/// Two lines of one product whose sum is over the limit are refused before any money moves;
/// the address limit counts characters, here and at the delivery service.
#[test]
fn merged_lines_and_character_limits_are_checked_before_the_saga() {
    let shop = TestShop::start();
    let ivy = shop.shopper("ivy", "20000");
    let slot = slot_in(3);
    let merged = ivy.post_keyed("/api/v1/order", "merged", &order_body(&[(JUG, 600), (JUG, 600)], &slot));
    assert_eq!((merged.status, merged.problem_type()), (400, Some(ProblemType::InvalidOrder)), "{merged:?}");
    assert_eq!(ivy.balance(), "20000.00", "nothing charged");
    assert!(ivy.get("/api/v1/orders").body.as_array().unwrap().is_empty());
    assert!(ivy.get("/api/v1/billing/transactions").body.as_array().unwrap().len() == 1, "only the deposit");

    let mut body = order_body(&[(JUG, 1)], &slot);
    body["deliveryInfo"]["address"] = json!("é".repeat(500));
    body["description"] = json!("ж".repeat(1000));
    let wide = ivy.post_keyed("/api/v1/order", "wide", &body);
    assert_eq!(wide.status, 201, "500 two-byte characters are a valid address: {wide:?}");
    body["deliveryInfo"]["address"] = json!("é".repeat(501));
    let too_wide = ivy.post_keyed("/api/v1/order", "too-wide", &body);
    assert_eq!((too_wide.status, too_wide.problem_type()), (400, Some(ProblemType::InvalidOrder)), "{too_wide:?}");
}

#[test]
fn a_participant_down_during_the_saga_answers_202_and_nothing_is_lost() {
    let mut shop = TestShop::start_groups(&["gateway,order,billing,warehouse,notification", "delivery"], 5);
    let hal = shop.shopper("hal", "1000");
    let slot = slot_in(3);
    let stock_before = hal.available(GRINDER);
    shop.kill("delivery");

    let answer = hal.post_keyed("/api/v1/order", "while-down", &order_body(&[(GRINDER, 1)], &slot));
    assert_eq!(answer.status, 202, "{answer:?}");
    let order_id = answer.body["id"].as_str().unwrap().to_string();
    assert!(!hal.order_status(&order_id).is_some_and(OrderStatus::is_final));

    shop.start_group("delivery");
    let status = hal.eventually(SETTLE, |c| c.order_status(&order_id), |s| s.is_some_and(OrderStatus::is_final));
    assert_consistent(&hal, &order_id, status, "1000.00", stock_before, GRINDER);
}

/// The end state of one order is all or nothing, and its notifications match it.
fn assert_consistent(
    client: &Client,
    order_id: &str,
    status: Option<OrderStatus>,
    balance_before: &str,
    stock_before: i64,
    product: &str,
) {
    let order = client.get(&format!("/api/v1/order/{order_id}")).body;
    let price: f64 = order["price"].as_str().unwrap().parse().unwrap();
    let before: f64 = balance_before.parse().unwrap();
    let quantity = order["items"][0]["quantity"].as_i64().unwrap();
    let expected_notifications = match status {
        Some(OrderStatus::Confirmed) => {
            assert_eq!(client.balance(), format!("{:.2}", before - price));
            assert_eq!(client.available(product), stock_before - quantity);
            vec!["ORDER_CONFIRMED", "PAYMENT_DEBITED"]
        }
        Some(OrderStatus::Failed) => {
            assert_eq!(client.balance(), balance_before);
            assert_eq!(client.available(product), stock_before);
            if order["errorMessage"] == "INSUFFICIENT_FUNDS" || order["errorMessage"] == "NO_ACCOUNT" {
                vec!["ORDER_FAILED"]
            } else {
                vec!["ORDER_FAILED", "PAYMENT_DEBITED", "PAYMENT_REFUNDED"]
            }
        }
        other => panic!("order {order_id} never finished: {other:?}"),
    };
    let types =
        client.eventually(SETTLE, |c| c.notification_types(order_id), |t| t.len() == expected_notifications.len());
    assert_eq!(types, expected_notifications);
}

#[test]
fn the_orchestrator_killed_mid_saga_finishes_after_restart() {
    let mut shop = TestShop::start_groups(&["gateway,billing,warehouse,notification", "order", "delivery"], 5);
    let ivy = shop.shopper("ivy", "1000");
    let slot = slot_in(3);
    let stock_before = ivy.available(TAMPER);
    shop.kill("delivery");

    // The saga is now stuck on the delivery step; kill the orchestrator under it.
    let mut impatient = Client::with_timeout(&shop.url(0), Duration::from_millis(1500));
    impatient.cookie = ivy.cookie.clone();
    let answer = impatient.try_send(
        "POST",
        "/api/v1/order",
        Some(order_body(&[(TAMPER, 1)], &slot).to_string().as_bytes()),
        &[("Idempotency-Key", "crash")],
    );
    assert!(answer.is_none(), "the order should still be running: {answer:?}");
    shop.kill("order");
    shop.start_group("delivery");
    shop.start_group("order");

    let orders =
        ivy.eventually(SETTLE, |c| c.get("/api/v1/orders").body, |o| o.as_array().is_some_and(|a| a.len() == 1));
    let order_id = orders[0]["id"].as_str().unwrap().to_string();
    let status = ivy.eventually(SETTLE, |c| c.order_status(&order_id), |s| s.is_some_and(OrderStatus::is_final));
    assert_consistent(&ivy, &order_id, status, "1000.00", stock_before, TAMPER);
    // The key still names the same order after the crash.
    let replay = ivy.post_keyed("/api/v1/order", "crash", &order_body(&[(TAMPER, 1)], &slot));
    assert_eq!(replay.status, 200, "{replay:?}");
    assert_eq!(replay.body["id"], order_id.as_str());
}

#[test]
fn a_restart_keeps_all_data() {
    let mut shop = TestShop::start();
    let jon = shop.shopper("jon", "250");
    let answer = jon.post_keyed("/api/v1/order", "before-restart", &order_body(&[(JUG, 1)], &slot_in(3)));
    assert_eq!(answer.status, 201);
    shop.kill("gateway,order,billing,warehouse,delivery,notification");
    shop.start_group("gateway,order,billing,warehouse,delivery,notification");
    assert_eq!(jon.balance(), "235.00", "the session, the account and the debit survived");
    assert_eq!(status_in(&jon.get("/api/v1/orders").body[0]), Some(OrderStatus::Confirmed));
}

/// A port taken between the test's check and the shop's bind (another test's client, say)
/// moves the test shop to a fresh block of ports instead of failing the test.
#[test]
fn a_taken_port_moves_the_test_shop_to_fresh_ports() {
    let mut shop = TestShop::start_groups(&[], 5);
    let holder = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let taken = holder.local_addr().unwrap().port();
    shop.base_port = taken;
    shop.start_group("gateway,order,billing,warehouse,delivery,notification");
    assert_ne!(shop.base_port, taken);
    let ann = shop.shopper("ann", "10");
    assert_eq!(ann.balance(), "10.00");
}
