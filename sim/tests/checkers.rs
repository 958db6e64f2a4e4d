//! Every invariant checker, shown failing: a clean run passes, then one planted corruption
//! of the databases or the history at a time must be reported as that invariant.

use sim::checks::{final_checks, Violation};
use sim::cluster::Cluster;
use sim::history::{Action, Event};
use sim::plan::from_seed;
use sim::run::run_plan_keeping_state;
use sim::scenario::load_named;

fn clean_run() -> (Vec<Event>, Cluster) {
    let scenario = load_named("happy-path").unwrap();
    let (report, cluster) = run_plan_keeping_state(&scenario, &from_seed(&scenario, 1));
    assert!(report.passed(), "{:?}", report.violations);
    assert!(report.stats.confirmed >= 2, "the clean run needs confirmed orders: {:?}", report.stats);
    (report.history, cluster)
}

fn confirmed_order(cluster: &Cluster) -> String {
    cluster.dbs["order"]
        .read(|c| {
            c.query_row("SELECT id FROM orders WHERE status = 'CONFIRMED' ORDER BY seq LIMIT 1", [], |r| r.get(0))
        })
        .unwrap()
}

fn tamper(cluster: &Cluster, service: &str, sql: &str) {
    let changed = cluster.dbs[service].write(|tx| tx.execute(sql, [])).unwrap();
    assert!(changed > 0, "the tampering changed nothing: {sql}");
}

fn assert_caught(violations: &[Violation], invariant: u8) {
    assert!(
        violations.iter().any(|v| v.invariant == invariant),
        "invariant {invariant} not reported; got {violations:#?}"
    );
}

#[test]
fn saga_atomicity_catches_a_confirmed_order_without_its_booking() {
    let (history, cluster) = clean_run();
    let order = confirmed_order(&cluster);
    tamper(
        &cluster,
        "delivery",
        &format!("UPDATE delivery_reservations SET status = 'CANCELLED' WHERE order_id = '{order}'"),
    );
    assert_caught(&final_checks(&cluster, &history), 1);
}

#[test]
fn money_catches_a_balance_that_appeared_from_nowhere() {
    let (history, cluster) = clean_run();
    tamper(&cluster, "billing", "UPDATE accounts SET balance_cents = balance_cents + 100 WHERE rowid = 1");
    assert_caught(&final_checks(&cluster, &history), 2);
}

#[test]
fn stock_catches_reserved_units_no_order_holds() {
    let (history, cluster) = clean_run();
    tamper(&cluster, "warehouse", "UPDATE stocks SET reserved_quantity = reserved_quantity + 1 WHERE total_quantity > reserved_quantity AND rowid = (SELECT MIN(rowid) FROM stocks WHERE total_quantity > reserved_quantity)");
    assert_caught(&final_checks(&cluster, &history), 3);
}

#[test]
fn slots_catch_a_booking_counter_out_of_step() {
    let (history, cluster) = clean_run();
    tamper(&cluster, "delivery", "UPDATE delivery_slots SET booked = booked - 1 WHERE slot = (SELECT MIN(slot) FROM delivery_slots WHERE booked > 0)");
    assert_caught(&final_checks(&cluster, &history), 4);
}

#[test]
fn idempotency_catches_a_second_withdrawal() {
    let (history, cluster) = clean_run();
    let order = confirmed_order(&cluster);
    tamper(
        &cluster,
        "billing",
        &format!("INSERT INTO transactions (id, account_id, type, amount_cents, order_id, created_at) SELECT 'dup-' || id, account_id, type, amount_cents, order_id, created_at FROM transactions WHERE order_id = '{order}' AND type = 'WITHDRAW'"),
    );
    assert_caught(&final_checks(&cluster, &history), 5);
}

#[test]
fn what_clients_saw_catches_a_status_read_going_backwards() {
    let (mut history, cluster) = clean_run();
    let seen = history.iter().find(|e| e.order_status.as_deref() == Some("CONFIRMED")).unwrap().clone();
    history.push(Event {
        at_ms: seen.at_ms + 2,
        sent_ms: seen.at_ms + 1,
        action: Action::PollOrder,
        status: Some(200),
        order_status: Some("PAID".into()),
        ..seen
    });
    assert_caught(&final_checks(&cluster, &history), 6);
}

#[test]
fn overlapping_reads_may_be_answered_in_either_order() {
    let (mut history, cluster) = clean_run();
    let seen = history.iter().find(|e| e.order_status.as_deref() == Some("CONFIRMED")).unwrap().clone();
    // A twin request sent before the CONFIRMED answer came, answered after it: not a regression.
    let twin = Event { at_ms: seen.at_ms + 1, sent_ms: seen.sent_ms, order_status: Some("PAID".into()), ..seen };
    history.push(twin);
    let violations = final_checks(&cluster, &history);
    assert!(!violations.iter().any(|v| v.invariant == 6), "{violations:#?}");
}

#[test]
fn duplicate_orders_are_caught() {
    let (history, cluster) = clean_run();
    let order = confirmed_order(&cluster);
    tamper(
        &cluster,
        "order",
        &format!("INSERT INTO orders (id, number, user_id, status, price_cents, address, preferred_time_slot, description, items_signature, trace_id, created_at, updated_at) SELECT '00000000-0000-4000-8000-0000000000cc', 'COPY-' || number, user_id, 'CONFIRMED', 0, address, preferred_time_slot, description, items_signature, trace_id, created_at, updated_at FROM orders WHERE id = '{order}'"),
    );
    let violations = final_checks(&cluster, &history);
    assert_caught(&violations, 7);
}

#[test]
fn notifications_catch_a_lost_payment_notice() {
    let (history, cluster) = clean_run();
    tamper(
        &cluster,
        "notification",
        "DELETE FROM notifications WHERE rowid = (SELECT MIN(rowid) FROM notifications WHERE type = 'PAYMENT_DEBITED')",
    );
    assert_caught(&final_checks(&cluster, &history), 8);
}

#[test]
fn notifications_catch_an_outbox_left_undelivered() {
    let (history, cluster) = clean_run();
    tamper(&cluster, "billing", "INSERT INTO outbox (event, created_at) VALUES ('{}', 'now')");
    assert_caught(&final_checks(&cluster, &history), 8);
}

#[test]
fn termination_catches_an_unfinished_order() {
    let (history, cluster) = clean_run();
    let order = confirmed_order(&cluster);
    tamper(&cluster, "order", &format!("UPDATE orders SET status = 'DELIVERY_BOOKED' WHERE id = '{order}'"));
    assert_caught(&final_checks(&cluster, &history), 9);
}

#[test]
fn access_catches_a_shopper_reading_another_shoppers_order() {
    let (mut history, cluster) = clean_run();
    let any = history[0].clone();
    history.push(Event { action: Action::Peek, status: Some(200), ..any });
    assert_caught(&final_checks(&cluster, &history), 10);
}
