//! The invariants of SIMULATION.md, checked against the shoppers' history and the final
//! contents of every service's database, read directly. A violation names the invariant,
//! the entities and the evidence.

use crate::cluster::Cluster;
use crate::history::{Action, Event};
use contracts::order::OrderStatus;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    pub invariant: u8,
    pub name: &'static str,
    /// The order, user, product or slot concerned.
    pub subject: String,
    pub evidence: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invariant {} ({}) violated for {}: {}", self.invariant, self.name, self.subject, self.evidence)
    }
}

pub const NAMES: [&str; 10] = [
    "saga atomicity",
    "money",
    "stock",
    "slots",
    "idempotency",
    "what clients saw",
    "duplicate orders",
    "notifications",
    "termination",
    "access",
];

fn violation(invariant: u8, subject: impl Into<String>, evidence: impl Into<String>) -> Violation {
    Violation { invariant, name: NAMES[usize::from(invariant) - 1], subject: subject.into(), evidence: evidence.into() }
}

/// One order as the order service recorded it.
#[derive(Clone, Debug)]
pub struct OrderRow {
    pub id: Uuid,
    pub user_id: String,
    pub status: String,
    pub price_cents: i64,
    pub signature: String,
    pub created_at: String,
    pub items: BTreeMap<Uuid, i64>,
}

fn query<T>(db: &platform::storage::Db, sql: &str, map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Vec<T> {
    db.read(|c: &Connection| {
        let mut statement = c.prepare(sql)?;
        let rows = statement.query_map([], |row| map(row))?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
    })
    .expect("the checker's queries match the schemas")
}

fn uuid(text: String) -> Uuid {
    Uuid::parse_str(&text).expect("ids are uuids")
}

pub fn orders(cluster: &Cluster) -> Vec<OrderRow> {
    let db = &cluster.dbs["order"];
    let mut orders = query(
        db,
        "SELECT id, user_id, status, price_cents, items_signature, created_at FROM orders ORDER BY seq",
        |r| {
            Ok(OrderRow {
                id: uuid(r.get(0)?),
                user_id: r.get(1)?,
                status: r.get(2)?,
                price_cents: r.get(3)?,
                signature: r.get(4)?,
                created_at: r.get(5)?,
                items: BTreeMap::new(),
            })
        },
    );
    let lines = query(db, "SELECT order_id, product_id, quantity FROM order_items ORDER BY id", |r| {
        Ok((uuid(r.get(0)?), uuid(r.get(1)?), r.get::<_, i64>(2)?))
    });
    for (order_id, product, quantity) in lines {
        if let Some(order) = orders.iter_mut().find(|o| o.id == order_id) {
            *order.items.entry(product).or_default() += quantity;
        }
    }
    orders
}

/// The cheap checks of the "(always)" invariants, run while the simulation runs.
pub fn always(cluster: &Cluster) -> Vec<Violation> {
    let mut found = Vec::new();
    for (user, balance) in query(&cluster.dbs["billing"], "SELECT user_id, balance_cents FROM accounts", |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    }) {
        if balance < 0 {
            found.push(violation(2, format!("user {user}"), format!("balance {balance} cents is below zero")));
        }
    }
    let stocks =
        query(&cluster.dbs["warehouse"], "SELECT product_id, total_quantity, reserved_quantity FROM stocks", |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
    for (product, total, reserved) in stocks {
        if total - reserved < 0 {
            found.push(violation(
                3,
                format!("product {product}"),
                format!("available {} below zero (total {total}, reserved {reserved})", total - reserved),
            ));
        }
    }
    let slots = query(&cluster.dbs["delivery"], "SELECT slot, capacity, booked FROM delivery_slots", |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    for (slot, capacity, booked) in slots {
        if booked > capacity {
            found.push(violation(4, format!("slot {slot}"), format!("{booked} bookings over capacity {capacity}")));
        }
    }
    found
}

/// Every invariant, after the liveness phase.
pub fn final_checks(cluster: &Cluster, history: &[Event]) -> Vec<Violation> {
    let orders = orders(cluster);
    let mut found = always(cluster);
    found.extend(saga_money_stock_slots(cluster, &orders));
    found.extend(idempotency(cluster, &orders, history));
    found.extend(in_progress_after_final(cluster, history));
    found.extend(clients_saw(&orders, history));
    found.extend(internal_errors(history));
    found.extend(duplicates(&orders));
    found.extend(notifications(cluster, &orders));
    for order in orders.iter().filter(|o| !matches!(o.status.as_str(), "CONFIRMED" | "FAILED")) {
        found.push(violation(
            9,
            format!("order {}", order.id),
            format!("still {} after the liveness phase", order.status),
        ));
    }
    found.extend(access(history));
    found
}

fn net_debits(cluster: &Cluster) -> BTreeMap<Uuid, (i64, i64, i64)> {
    let rows = query(
        &cluster.dbs["billing"],
        "SELECT order_id, type, amount_cents FROM transactions WHERE order_id IS NOT NULL",
        |r| Ok((uuid(r.get(0)?), r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
    );
    // (withdrawals, refunds, net cents) per order
    let mut debits: BTreeMap<Uuid, (i64, i64, i64)> = BTreeMap::new();
    for (order, kind, amount) in rows {
        let entry = debits.entry(order).or_default();
        if kind == "WITHDRAW" {
            entry.0 += 1;
            entry.2 += amount;
        } else {
            entry.1 += 1;
            entry.2 -= amount;
        }
    }
    debits
}

fn saga_money_stock_slots(cluster: &Cluster, orders: &[OrderRow]) -> Vec<Violation> {
    let mut found = Vec::new();
    let debits = net_debits(cluster);
    let reserved = query(
        &cluster.dbs["warehouse"],
        "SELECT order_id, product_id, quantity FROM stock_reservations WHERE status = 'RESERVED'",
        |r| Ok((uuid(r.get(0)?), uuid(r.get(1)?), r.get::<_, i64>(2)?)),
    );
    let mut reserved_by_order: BTreeMap<Uuid, BTreeMap<Uuid, i64>> = BTreeMap::new();
    for (order, product, quantity) in &reserved {
        *reserved_by_order.entry(*order).or_default().entry(*product).or_default() += quantity;
    }
    let booked: BTreeSet<Uuid> =
        query(&cluster.dbs["delivery"], "SELECT order_id FROM delivery_reservations WHERE status = 'BOOKED'", |r| {
            Ok(uuid(r.get(0)?))
        })
        .into_iter()
        .collect();
    for order in orders {
        let (withdrawals, refunds, net) = debits.get(&order.id).copied().unwrap_or_default();
        if withdrawals > 1 || refunds > 1 {
            found.push(violation(
                5,
                format!("order {}", order.id),
                format!("{withdrawals} withdrawals and {refunds} refunds recorded"),
            ));
        }
        let stock = reserved_by_order.get(&order.id);
        let is_booked = booked.contains(&order.id);
        let complete = net == order.price_cents && stock == Some(&order.items) && is_booked;
        let undone = net == 0 && stock.is_none() && !is_booked;
        let evidence = format!(
            "{} with net debit {net} of price {}, stock reserved {stock:?} of {:?}, booked {is_booked}",
            order.status, order.price_cents, order.items
        );
        match order.status.as_str() {
            "CONFIRMED" if !complete => found.push(violation(1, format!("order {}", order.id), evidence)),
            "FAILED" if !undone => found.push(violation(1, format!("order {}", order.id), evidence)),
            _ => {}
        }
    }
    found.extend(money(cluster, orders));
    found.extend(stock(cluster, orders));
    found.extend(slots(cluster, orders, &booked));
    found
}

fn money(cluster: &Cluster, orders: &[OrderRow]) -> Vec<Violation> {
    let billing = &cluster.dbs["billing"];
    let deposits: i64 =
        query(billing, "SELECT COALESCE(SUM(amount_cents), 0) FROM transactions WHERE type = 'DEPOSIT'", |r| r.get(0))
            [0];
    let balances: i64 = query(billing, "SELECT COALESCE(SUM(balance_cents), 0) FROM accounts", |r| r.get(0))[0];
    let confirmed: i64 = orders.iter().filter(|o| o.status == "CONFIRMED").map(|o| o.price_cents).sum();
    if deposits != balances + confirmed {
        let evidence = format!(
            "deposits {deposits} != balances {balances} + confirmed prices {confirmed} (off by {})",
            deposits - balances - confirmed
        );
        return vec![violation(2, "the store", evidence)];
    }
    Vec::new()
}

fn stock(cluster: &Cluster, orders: &[OrderRow]) -> Vec<Violation> {
    let mut found = Vec::new();
    let stocks =
        query(&cluster.dbs["warehouse"], "SELECT product_id, total_quantity, reserved_quantity FROM stocks", |r| {
            Ok((uuid(r.get(0)?), r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
    for (product, total, reserved) in stocks {
        let initial = cluster.initial_stock.get(&product).copied().unwrap_or(0);
        let confirmed: i64 =
            orders.iter().filter(|o| o.status == "CONFIRMED").filter_map(|o| o.items.get(&product)).sum();
        if total != initial || reserved != confirmed {
            let evidence =
                format!("initial {initial}, total now {total}, reserved {reserved}, confirmed orders hold {confirmed}");
            found.push(violation(3, format!("product {product}"), evidence));
        }
    }
    found
}

fn slots(cluster: &Cluster, orders: &[OrderRow], booked: &BTreeSet<Uuid>) -> Vec<Violation> {
    let mut found = Vec::new();
    let counted: i64 =
        query(&cluster.dbs["delivery"], "SELECT COALESCE(SUM(booked), 0) FROM delivery_slots", |r| r.get(0))[0];
    let confirmed: BTreeSet<Uuid> = orders.iter().filter(|o| o.status == "CONFIRMED").map(|o| o.id).collect();
    if &confirmed != booked || counted != confirmed.len() as i64 {
        let evidence =
            format!("{} CONFIRMED orders, {} bookings, slot counters sum to {counted}", confirmed.len(), booked.len());
        found.push(violation(4, "the delivery slots", evidence));
    }
    found
}

fn idempotency(cluster: &Cluster, orders: &[OrderRow], history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    // Every answer that names an order for a key names the same one (a 409 duplicate names
    // the similar order, consistently).
    let mut named: BTreeMap<(u32, &str), BTreeSet<Uuid>> = BTreeMap::new();
    for event in history.iter().filter(|e| e.action == Action::PlaceOrder) {
        if let (Some(key), Some(order)) = (&event.key, event.order_id) {
            if event.problem.as_deref() != Some("/problems/idempotency-request-in-progress") {
                named.entry((event.shopper, key.as_str())).or_default().insert(order);
            }
        }
    }
    // A key that made an order is answered from its record, never as a duplicate of it
    // (a key answered as a duplicate keeps that answer and never makes an order).
    let mut made: BTreeSet<(u32, &str)> = BTreeSet::new();
    let mut duplicate: BTreeMap<(u32, &str), u64> = BTreeMap::new();
    for event in history.iter().filter(|e| e.action == Action::PlaceOrder) {
        let Some(key) = event.key.as_deref() else { continue };
        if matches!(event.status, Some(200..=202))
            || (event.status == Some(422) && event.problem.as_deref() == Some("/problems/order-rejected"))
        {
            made.insert((event.shopper, key));
        } else if event.problem.as_deref() == Some("/problems/duplicate-order") {
            duplicate.entry((event.shopper, key)).or_insert(event.at_ms);
        }
    }
    for ((shopper, key), at_ms) in &duplicate {
        if made.contains(&(*shopper, *key)) {
            let evidence = format!("answered 409 duplicate-order at {at_ms} ms, yet the same key made an order");
            found.push(violation(5, format!("shopper-{shopper} key {key}"), evidence));
        }
    }
    for ((shopper, key), ids) in &named {
        if ids.len() > 1 {
            found.push(violation(
                5,
                format!("shopper-{shopper} key {key}"),
                format!("answers named {} orders: {ids:?}", ids.len()),
            ));
        }
    }
    let keys = query(
        &cluster.dbs["order"],
        "SELECT COUNT(*), COUNT(DISTINCT user_id || '/' || key) FROM idempotency_keys",
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    );
    if keys[0].0 != keys[0].1 {
        found.push(violation(5, "idempotency keys", format!("{} records for {} distinct keys", keys[0].0, keys[0].1)));
    }
    let order_keys = query(
        &cluster.dbs["order"],
        "SELECT order_id, COUNT(*) FROM idempotency_keys WHERE outcome = 'ORDER' GROUP BY order_id",
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    );
    let keyed: BTreeSet<String> = order_keys.iter().map(|(o, _)| o.clone()).collect();
    for order in orders.iter().filter(|o| !keyed.contains(&o.id.to_string())) {
        found.push(violation(5, format!("order {}", order.id), "an order with no idempotency key"));
    }
    let deposits = query(&cluster.dbs["billing"], "SELECT a.user_id, COUNT(*) FROM transactions t JOIN accounts a ON a.id = t.account_id WHERE t.type = 'DEPOSIT' GROUP BY a.user_id", |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    });
    for (user, count) in deposits {
        if count > 1 {
            found.push(violation(5, format!("user {user}"), format!("one keyed deposit applied {count} times")));
        }
    }
    found
}

/// How long after a saga's end a request that waited for it may still hold its key.
const WAITING_RELEASE_MARGIN_MS: u64 = 1_000;

/// A repeat of a key sent after its order was final gets the order (step 6 of the
/// contract), never 409 in-progress: no request can still be waiting for an ended saga.
/// "Final" is seen either by the shopper (an earlier answer showed CONFIRMED or FAILED) or
/// in the saga log, for repeats sent in the liveness phase (when no clock is skewed any
/// more, so a saga that ended then has its true time, and one that ended earlier ended
/// before the phase).
fn in_progress_after_final(cluster: &Cluster, history: &[Event]) -> Vec<Violation> {
    let users: BTreeMap<String, u32> = query(&cluster.dbs["gateway"], "SELECT id, email FROM users", |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .into_iter()
    .filter_map(|(id, email)| {
        let index = email.strip_prefix("shopper")?.strip_suffix("@example.com")?.parse().ok()?;
        Some((id, index))
    })
    .collect();
    let mut order_of_key: BTreeMap<(u32, String), Uuid> = BTreeMap::new();
    for (user, key, order) in query(
        &cluster.dbs["order"],
        "SELECT user_id, key, order_id FROM idempotency_keys WHERE outcome = 'ORDER'",
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, uuid(r.get(2)?))),
    ) {
        if let Some(shopper) = users.get(&user) {
            order_of_key.insert((*shopper, key), order);
        }
    }
    let epoch_ms = crate::cluster::epoch().timestamp_millis();
    let finished: BTreeMap<Uuid, u64> =
        query(&cluster.dbs["order"], "SELECT order_id, at FROM saga_log WHERE event = 'FINISHED'", |r| {
            Ok((uuid(r.get(0)?), r.get::<_, String>(1)?))
        })
        .into_iter()
        .filter_map(|(order, at)| {
            let at_ms = chrono::DateTime::parse_from_rfc3339(&at).ok()?.timestamp_millis() - epoch_ms;
            Some((order, u64::try_from(at_ms).ok()?))
        })
        .collect();
    let liveness_from_ms = cluster.liveness_from_ms.load(std::sync::atomic::Ordering::Relaxed);
    // The first such answer per key, and how many there were.
    let mut stuck: BTreeMap<(u32, &str), (String, u32)> = BTreeMap::new();
    let in_progress = "/problems/idempotency-request-in-progress";
    for event in history.iter().filter(|e| e.action == Action::PlaceOrder && e.problem.as_deref() == Some(in_progress))
    {
        let Some(key) = event.key.as_deref() else { continue };
        let Some(order) = order_of_key.get(&(event.shopper, key.to_string())).copied() else { continue };
        let seen_final = history.iter().find(|e| {
            e.order_id == Some(order)
                && e.at_ms + WAITING_RELEASE_MARGIN_MS <= event.sent_ms
                && matches!(e.order_status.as_deref(), Some("CONFIRMED" | "FAILED"))
        });
        let logged_final = finished.get(&order).filter(|finished_ms| {
            event.sent_ms >= liveness_from_ms && **finished_ms + WAITING_RELEASE_MARGIN_MS <= event.sent_ms
        });
        let evidence = match (seen_final, logged_final) {
            (Some(seen), _) => format!(
                "a repeat sent at {} ms answered 409 idempotency-request-in-progress, though order {order} was read {} at {} ms",
                event.sent_ms,
                seen.order_status.as_deref().unwrap_or_default(),
                seen.at_ms
            ),
            (None, Some(finished_ms)) => format!(
                "a repeat sent at {} ms (liveness phase from {liveness_from_ms} ms) answered 409 \
                 idempotency-request-in-progress, though the saga of order {order} finished at {finished_ms} ms",
                event.sent_ms
            ),
            (None, None) => continue,
        };
        stuck.entry((event.shopper, key)).or_insert((evidence, 0)).1 += 1;
    }
    stuck
        .into_iter()
        .map(|((shopper, key), (first, count))| {
            let evidence = format!("{first} ({count} such answers)");
            violation(5, format!("shopper-{shopper} key {key}"), evidence)
        })
        .collect()
}

fn clients_saw(orders: &[OrderRow], history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    let status_of: BTreeMap<Uuid, &str> = orders.iter().map(|o| (o.id, o.status.as_str())).collect();
    // Every status read of each order: (sent, answered, status).
    let mut reads: BTreeMap<Uuid, Vec<(u64, u64, OrderStatus)>> = BTreeMap::new();
    for event in history {
        let (Some(order), Some(seen)) = (event.order_id, event.order_status.as_deref().and_then(OrderStatus::parse))
        else {
            continue;
        };
        let promised = match (event.status, event.problem.as_deref()) {
            (Some(201), _) => Some("CONFIRMED"),
            (Some(422), Some("/problems/order-rejected")) => Some("FAILED"),
            _ => None,
        };
        if let Some(promised) = promised.filter(|_| event.action == Action::PlaceOrder) {
            let end = status_of.get(&order).copied().unwrap_or("missing");
            if end != promised {
                let evidence =
                    format!("answered {} at {} ms, {end} at the end", event.status.unwrap_or(0), event.at_ms);
                found.push(violation(6, format!("order {order}"), evidence));
            }
        }
        reads.entry(order).or_default().push((event.sent_ms, event.at_ms, seen));
    }
    // A read sent after another was answered must not see an earlier status; reads that
    // overlap in time (a double submit) may be served in either order.
    for (order, reads) in &reads {
        let backwards = reads.iter().find_map(|(_, answered, before)| {
            reads
                .iter()
                .find(|(sent, _, after)| sent >= answered && !before.may_become(*after))
                .map(|later| (answered, before, later))
        });
        if let Some((answered, before, (_, later_at, after))) = backwards {
            let evidence =
                format!("read {} at {answered} ms, then {} at {later_at} ms", before.as_str(), after.as_str());
            found.push(violation(6, format!("order {order}"), evidence));
        }
    }
    found
}

/// An internal error is never an answer the contract allows (input errors are 4xx, an
/// unreachable service is 503).
fn internal_errors(history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    for event in history.iter().filter(|e| matches!(e.status, Some(500 | 502))) {
        let evidence = format!("{:?} at {} ms answered {}", event.action, event.at_ms, event.status.unwrap_or(0));
        found.push(violation(6, format!("shopper-{}", event.shopper), evidence));
    }
    found
}

fn duplicates(orders: &[OrderRow]) -> Vec<Violation> {
    let mut found = Vec::new();
    let live: Vec<&OrderRow> = orders.iter().filter(|o| o.status != "FAILED").collect();
    for (index, a) in live.iter().enumerate() {
        for b in &live[index + 1..] {
            if a.user_id != b.user_id || a.signature != b.signature {
                continue;
            }
            let time = |t: &str| chrono::DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_millis()).unwrap_or(0);
            let apart_ms = (time(&a.created_at) - time(&b.created_at)).abs();
            if apart_ms < 5 * 60 * 1000 {
                found.push(violation(
                    7,
                    format!("orders {} and {}", a.id, b.id),
                    format!("same items, same user, created {apart_ms} ms apart, neither FAILED"),
                ));
            }
        }
    }
    found
}

fn notifications(cluster: &Cluster, orders: &[OrderRow]) -> Vec<Violation> {
    let mut found = Vec::new();
    let counts = query(
        &cluster.dbs["notification"],
        "SELECT order_id, type, COUNT(*) FROM notifications GROUP BY order_id, type",
        |r| Ok((uuid(r.get(0)?), r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
    );
    let mut by_order: BTreeMap<Uuid, BTreeMap<String, i64>> = BTreeMap::new();
    for (order, kind, count) in counts {
        by_order.entry(order).or_default().insert(kind, count);
    }
    let debits = net_debits(cluster);
    for order in orders {
        let (withdrawals, refunds, _) = debits.get(&order.id).copied().unwrap_or_default();
        let expected: BTreeMap<String, i64> = [
            ("PAYMENT_DEBITED", withdrawals.min(1)),
            ("PAYMENT_REFUNDED", refunds.min(1)),
            ("ORDER_CONFIRMED", i64::from(order.status == "CONFIRMED")),
            ("ORDER_FAILED", i64::from(order.status == "FAILED")),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        let actual = by_order.remove(&order.id).unwrap_or_default();
        if actual != expected {
            found.push(violation(
                8,
                format!("order {}", order.id),
                format!("notifications {actual:?}, expected {expected:?} for {}", order.status),
            ));
        }
    }
    for (order, actual) in by_order {
        found.push(violation(
            8,
            format!("order {order}"),
            format!("notifications {actual:?} for an order that does not exist"),
        ));
    }
    for service in ["billing", "order"] {
        let pending: i64 = query(&cluster.dbs[service], "SELECT COUNT(*) FROM outbox", |r| r.get(0))[0];
        if pending > 0 {
            found.push(violation(8, format!("{service}'s outbox"), format!("{pending} events never delivered")));
        }
    }
    found
}

fn access(history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    for event in history {
        let leaked = match event.action {
            Action::Anonymous => event.status.is_some_and(|s| s != 401),
            Action::Peek => event.status.is_some_and(|s| (200..300).contains(&s)),
            _ => false,
        };
        if leaked {
            let evidence = format!("{:?} at {} ms answered {}", event.action, event.at_ms, event.status.unwrap_or(0));
            found.push(violation(10, format!("shopper-{}", event.shopper), evidence));
        }
    }
    found
}
