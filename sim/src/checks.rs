//! The invariants of SIMULATION.md and the reference model's checks, as pure functions of
//! the shoppers' history, the end-of-run [`Snapshot`] of every database and the plan. A
//! violation names the invariant, the entities and the evidence. sim/README.md lists every
//! check with what it reads.

use crate::cluster::DELIVERY_HORIZON_HOURS;
use crate::history::{Action, Event, Listed, SeenProduct};
use crate::model::{
    fault_windows, faults_touching, hour_of, lowest_available_at, lowest_balance_at, maybe_no_account_at,
    most_booked_at, skew_bound_ms, token_refusable, tolerance_ms, Window, FAULT_AFTERMATH_MS,
};
use crate::plan::Plan;
use crate::run::sim_ms_bounds;
use crate::snapshot::{NotificationRow, OrderRow, Participant, SagaRow, Snapshot};
use contracts::billing::TransactionType;
use contracts::notification::NotificationType;
use contracts::order::OrderStatus;
use contracts::saga::reason;
use contracts::{OrderId, ProblemType, ProductId, ServiceName, Timestamp, TransactionId, UserId};
use order::saga::{Event as LogEvent, Phase, Step, REJECTED_PREFIX, STEPS};
use platform::client::CallError;
use platform::operations::OperationState;
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

pub const NAMES: [&str; 15] = [
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
    "internal errors",
    "justified outcomes",
    "answers match the contract",
    "listings complete and true",
    "operator figures",
];

/// Invariant numbers of the checks beyond SIMULATION.md's ten.
pub const INTERNAL_ERRORS: u8 = 11;
pub const JUSTIFIED_OUTCOMES: u8 = 12;
pub const CONTRACT: u8 = 13;
pub const LISTINGS: u8 = 14;
pub const FIGURES: u8 = 15;

pub fn violation(invariant: u8, subject: impl Into<String>, evidence: impl Into<String>) -> Violation {
    Violation { invariant, name: NAMES[usize::from(invariant) - 1], subject: subject.into(), evidence: evidence.into() }
}

/// The cheap checks of the "(always)" invariants, run while the simulation runs on
/// [`Snapshot::levels`].
pub fn always(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    for account in snapshot.accounts.iter().filter(|a| a.balance_cents < 0) {
        let evidence = format!("balance {} cents is below zero", account.balance_cents);
        found.push(violation(2, format!("user {}", account.user_id), evidence));
    }
    for stock in snapshot.stocks.iter().filter(|s| s.total - s.reserved < 0 || s.reserved < 0) {
        let evidence = format!(
            "available {} below zero (total {}, reserved {})",
            stock.total - stock.reserved,
            stock.total,
            stock.reserved
        );
        found.push(violation(3, format!("product {}", stock.product_id), evidence));
    }
    for slot in snapshot.slots.iter().filter(|s| s.booked > s.capacity) {
        let evidence = format!("{} bookings over capacity {}", slot.booked, slot.capacity);
        found.push(violation(4, format!("slot {}", slot.slot), evidence));
    }
    for what in &snapshot.unreadable {
        found.push(violation(CONTRACT, "a database", format!("a value the code should never write: {what}")));
    }
    found
}

/// Every check, after the liveness phase.
pub fn final_checks(snapshot: &Snapshot, history: &[Event], plan: &Plan) -> Vec<Violation> {
    let faults = fault_windows(plan);
    let mut found = always(snapshot);
    found.extend(saga_atomicity(snapshot));
    found.extend(money(snapshot, history));
    found.extend(stock(snapshot));
    found.extend(slots(snapshot));
    found.extend(idempotency(snapshot, history));
    found.extend(in_progress_after_final(snapshot, history, plan));
    found.extend(clients_saw(snapshot, history));
    found.extend(statuses_move_forward(snapshot));
    found.extend(internal_errors(history));
    found.extend(duplicates(snapshot));
    found.extend(notifications(snapshot));
    for order in snapshot.orders.iter().filter(|o| !o.status.is_final()) {
        let evidence = format!("still {} after the liveness phase", order.status.as_str());
        found.push(violation(9, format!("order {}", order.id), evidence));
    }
    found.extend(access(snapshot, history));
    found.extend(justified_failures(snapshot, plan, &faults));
    found.extend(rejections_logged_as_such(snapshot));
    found.extend(justified_give_ups(history, &faults));
    found.extend(last_orders(snapshot, history, plan));
    found.extend(contract_answers(snapshot, history, plan, &faults));
    found.extend(lists_name_acknowledged_orders(history));
    found.extend(listings(snapshot, history, plan));
    found.extend(slot_listings(snapshot, history, plan));
    found.extend(product_reads(snapshot, history));
    found.extend(crate::figures::check(snapshot, history));
    found.extend(records_carry_the_saga_trace(snapshot));
    found
}

/// (withdrawals, refunds, net debit in cents) of each order, from billing's ledger.
fn net_debits(snapshot: &Snapshot) -> BTreeMap<OrderId, (i64, i64, i64)> {
    let mut debits: BTreeMap<OrderId, (i64, i64, i64)> = BTreeMap::new();
    for line in &snapshot.ledger {
        let Some(order) = line.order_id else { continue };
        let entry = debits.entry(order).or_default();
        match line.kind {
            TransactionType::Withdraw => {
                entry.0 += 1;
                entry.2 += line.amount_cents;
            }
            TransactionType::Refund => {
                entry.1 += 1;
                entry.2 -= line.amount_cents;
            }
            TransactionType::Deposit => {}
        }
    }
    debits
}

fn reserved_by_order(snapshot: &Snapshot) -> BTreeMap<OrderId, BTreeMap<ProductId, i64>> {
    let mut reserved: BTreeMap<OrderId, BTreeMap<ProductId, i64>> = BTreeMap::new();
    for row in snapshot.stock_reservations.iter().filter(|r| r.held) {
        *reserved.entry(row.order_id).or_default().entry(row.product_id).or_default() += row.quantity;
    }
    reserved
}

fn booked_orders(snapshot: &Snapshot) -> BTreeSet<OrderId> {
    snapshot.bookings.iter().filter(|b| b.held).map(|b| b.order_id).collect()
}

fn saga_atomicity(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let debits = net_debits(snapshot);
    let reserved = reserved_by_order(snapshot);
    let booked = booked_orders(snapshot);
    for order in &snapshot.orders {
        let (withdrawals, refunds, net) = debits.get(&order.id).copied().unwrap_or_default();
        if withdrawals > 1 || refunds > 1 {
            let evidence = format!("{withdrawals} withdrawals and {refunds} refunds recorded");
            found.push(violation(5, format!("order {}", order.id), evidence));
        }
        let stock = reserved.get(&order.id);
        let is_booked = booked.contains(&order.id);
        let complete = net == order.price_cents && stock == Some(&order.items) && is_booked;
        let undone = net == 0 && stock.is_none() && !is_booked;
        let evidence = format!(
            "{} with net debit {net} of price {}, stock reserved {stock:?} of {:?}, booked {is_booked}",
            order.status.as_str(),
            order.price_cents,
            order.items
        );
        match order.status {
            OrderStatus::Confirmed if !complete => found.push(violation(1, format!("order {}", order.id), evidence)),
            OrderStatus::Failed if !undone => found.push(violation(1, format!("order {}", order.id), evidence)),
            _ => {}
        }
    }
    found.extend(operation_records(snapshot));
    found.extend(refusals_not_compensated(snapshot));
    found.extend(saga_logs_complete(snapshot));
    let known: BTreeSet<OrderId> = snapshot.orders.iter().map(|o| o.id).collect();
    let strays: BTreeSet<OrderId> = debits.keys().chain(reserved.keys()).chain(booked.iter()).copied().collect();
    for order in strays.difference(&known) {
        found.push(violation(
            1,
            format!("order {order}"),
            "money, stock or a booking held for an order that does not exist",
        ));
    }
    found
}

/// A final order's saga log tells its whole story (the runner logs every call's start before
/// it uses its answer, and that answer after, at the latest with the next move): every
/// action logged as started is answered later in the log, every compensation logged as
/// started is acknowledged, every step of a `CONFIRMED` order is logged as succeeded, and
/// the saga's end is logged once, with the order's status.
fn saga_logs_complete(snapshot: &Snapshot) -> Vec<Violation> {
    let mut logs: BTreeMap<OrderId, Vec<&SagaRow>> = BTreeMap::new();
    for entry in &snapshot.saga_log {
        logs.entry(entry.order_id).or_default().push(entry);
    }
    let mut found = Vec::new();
    for order in snapshot.orders.iter().filter(|o| o.status.is_final()) {
        let (mut unanswered, mut unacknowledged) = (BTreeSet::new(), BTreeSet::new());
        let mut last_answer: BTreeMap<Step, LogEvent> = BTreeMap::new();
        let mut ends = Vec::new();
        for entry in logs.get(&order.id).into_iter().flatten() {
            match (entry.phase, entry.step, entry.event) {
                (Phase::Action, Some(step), LogEvent::Started) => {
                    unanswered.insert(step);
                }
                (Phase::Action, Some(step), answer) => {
                    unanswered.remove(&step);
                    last_answer.insert(step, answer);
                }
                (Phase::Compensation, Some(step), LogEvent::Started) => {
                    unacknowledged.insert(step);
                }
                (Phase::Compensation, Some(step), LogEvent::Acknowledged) => {
                    unacknowledged.remove(&step);
                }
                (Phase::Saga, None, LogEvent::Finished) => ends.push(entry.detail.as_str()),
                _ => {}
            }
        }
        let mut gaps: Vec<String> = Vec::new();
        gaps.extend(unanswered.iter().map(|step| format!("its {} was started and never answered", step.name())));
        gaps.extend(
            unacknowledged.iter().map(|step| format!("the compensation of its {} was never acknowledged", step.name())),
        );
        if order.status == OrderStatus::Confirmed {
            gaps.extend(
                STEPS
                    .iter()
                    .filter(|step| last_answer.get(step) != Some(&LogEvent::Succeeded))
                    .map(|step| format!("its {} is not logged as succeeded", step.name())),
            );
        }
        if ends != [order.status.as_str()] {
            gaps.push(format!("its end is logged as {ends:?}"));
        }
        if !gaps.is_empty() {
            let evidence = format!("{} order's saga log: {}", order.status.as_str(), gaps.join("; "));
            found.push(violation(1, format!("order {}", order.id), evidence));
        }
    }
    found
}

/// The participants' own records of each order agree with its saga: a `CONFIRMED` order's
/// step is `APPLIED` at its participant; a `FAILED` order has no `APPLIED` record left; a
/// step whose compensation the saga logged acknowledged is `UNDONE` or `CANCELLED` there
/// (the participant said so: a later repeat of the action must meet that record).
fn operation_records(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let acknowledged: BTreeSet<(OrderId, Step)> = snapshot
        .saga_log
        .iter()
        .filter(|e| e.phase == Phase::Compensation && e.event == LogEvent::Acknowledged)
        .filter_map(|e| Some((e.order_id, e.step?)))
        .collect();
    for order in snapshot.orders.iter().filter(|o| o.status.is_final()) {
        for participant in Participant::ALL {
            let state = snapshot.operations.get(&participant).and_then(|ops| ops.get(&order.id)).map(|op| op.state);
            let compensated = acknowledged.contains(&(order.id, participant.step()));
            let wrong = match order.status {
                OrderStatus::Confirmed => state != Some(OperationState::Applied),
                _ => state == Some(OperationState::Applied),
            } || (compensated
                && !matches!(state, Some(OperationState::Undone | OperationState::Cancelled)));
            if wrong {
                let evidence = format!(
                    "{} order; {}'s record of its {} is {:?}{}",
                    order.status.as_str(),
                    participant.service(),
                    participant.step().name(),
                    state.map(OperationState::as_str),
                    if compensated { ", though it acknowledged the cancel" } else { "" }
                );
                found.push(violation(1, format!("order {}", order.id), evidence));
            }
        }
    }
    found
}

fn money(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    let deposits: i64 =
        snapshot.ledger.iter().filter(|l| l.kind == TransactionType::Deposit).map(|l| l.amount_cents).sum();
    let balances: i64 = snapshot.accounts.iter().map(|a| a.balance_cents).sum();
    let confirmed: i64 =
        snapshot.orders.iter().filter(|o| o.status == OrderStatus::Confirmed).map(|o| o.price_cents).sum();
    if deposits != balances + confirmed {
        let evidence = format!(
            "deposits {deposits} != balances {balances} + confirmed prices {confirmed} (off by {})",
            deposits - balances - confirmed
        );
        found.push(violation(2, "the store", evidence));
    }
    // Per account: the ledger adds up to the balance.
    for account in &snapshot.accounts {
        let lines: i64 = snapshot.ledger.iter().filter(|l| l.account_id == account.id).map(|l| l.effect_cents()).sum();
        if lines != account.balance_cents {
            let evidence = format!("ledger adds up to {lines}, balance is {}", account.balance_cents);
            found.push(violation(2, format!("user {}", account.user_id), evidence));
        }
    }
    // An order's lines are on its own user's account.
    for line in &snapshot.ledger {
        let Some(order_id) = line.order_id else { continue };
        let (Some(order), owner) = (snapshot.order(order_id), snapshot.owner_of(line.account_id)) else { continue };
        if owner != Some(order.user_id) {
            let evidence = format!(
                "{:?} of {} cents booked to account {} (user {owner:?}), the order's user is {}",
                line.kind, line.amount_cents, line.account_id, order.user_id
            );
            found.push(violation(2, format!("order {order_id}"), evidence));
        }
    }
    // Every deposit acknowledged to a shopper is in the ledger once, with its amount, on
    // that shopper's account.
    let shopper_users = shopper_users(snapshot);
    for event in history.iter().filter(|e| e.action == Action::Deposit && e.status == Some(200)) {
        let Some(transaction_id) = event.transaction_id else { continue };
        let lines: Vec<_> = snapshot.ledger.iter().filter(|l| l.id == transaction_id).collect();
        let user = shopper_users.get(&event.shopper).copied();
        let right = lines.len() == 1
            && lines[0].kind == TransactionType::Deposit
            && Some(lines[0].amount_cents) == event.amount_cents
            && snapshot.owner_of(lines[0].account_id) == user;
        if !right {
            let evidence = format!(
                "deposit of {:?} cents acknowledged at {} ms as transaction {transaction_id}; the ledger holds {lines:?}",
                event.amount_cents, event.at_ms
            );
            found.push(violation(2, format!("shopper-{}", event.shopper), evidence));
        }
    }
    found
}

/// Each shopper's user id, by the email the shoppers register with.
pub fn shopper_users(snapshot: &Snapshot) -> BTreeMap<u32, UserId> {
    snapshot
        .users
        .iter()
        .filter_map(|(email, id)| {
            let index = email.strip_prefix("shopper")?.strip_suffix("@example.com")?.parse().ok()?;
            Some((index, *id))
        })
        .collect()
}

fn stock(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    for stock in &snapshot.stocks {
        let initial = snapshot.initial_stock.get(&stock.product_id).copied().unwrap_or(0);
        let confirmed: i64 = snapshot
            .orders
            .iter()
            .filter(|o| o.status == OrderStatus::Confirmed)
            .filter_map(|o| o.items.get(&stock.product_id))
            .sum();
        let held: i64 = snapshot
            .stock_reservations
            .iter()
            .filter(|r| r.held && r.product_id == stock.product_id)
            .map(|r| r.quantity)
            .sum();
        if stock.total != initial || stock.reserved != confirmed || stock.reserved != held {
            let evidence = format!(
                "initial {initial}, total now {}, reserved {}, live reservations hold {held}, confirmed orders hold {confirmed}",
                stock.total, stock.reserved
            );
            found.push(violation(3, format!("product {}", stock.product_id), evidence));
        }
    }
    found
}

fn slots(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let booked = booked_orders(snapshot);
    let confirmed: BTreeSet<OrderId> =
        snapshot.orders.iter().filter(|o| o.status == OrderStatus::Confirmed).map(|o| o.id).collect();
    if confirmed != booked {
        let evidence = format!(
            "{} CONFIRMED orders, {} bookings; confirmed without booking {:?}, booked not confirmed {:?}",
            confirmed.len(),
            booked.len(),
            confirmed.difference(&booked).collect::<Vec<_>>(),
            booked.difference(&confirmed).collect::<Vec<_>>()
        );
        found.push(violation(4, "the delivery slots", evidence));
    }
    for slot in &snapshot.slots {
        let live = snapshot.bookings.iter().filter(|b| b.held && b.slot == slot.slot).count() as i64;
        if live != slot.booked {
            let evidence = format!("counter says {} booked, {live} live bookings", slot.booked);
            found.push(violation(4, format!("slot {}", slot.slot), evidence));
        }
    }
    for booking in snapshot.bookings.iter().filter(|b| b.held) {
        let Some(order) = snapshot.order(booking.order_id) else { continue };
        if booking.slot != order.slot || booking.user_id != order.user_id {
            let evidence = format!(
                "booked slot {} for user {}; the order asks slot {} for user {}",
                booking.slot, booking.user_id, order.slot, order.user_id
            );
            found.push(violation(4, format!("order {}", order.id), evidence));
        }
    }
    found
}

fn idempotency(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    // Every answer that names an order for a key names the same one (a 409 duplicate names
    // the similar order, consistently).
    let mut named: BTreeMap<(u32, &str), BTreeSet<OrderId>> = BTreeMap::new();
    for event in history.iter().filter(|e| e.action == Action::PlaceOrder) {
        if let (Some(key), Some(order)) = (&event.key, event.order_id) {
            if event.problem_type() != Some(ProblemType::IdempotencyRequestInProgress) {
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
            || (event.status == Some(422) && event.problem_type() == Some(ProblemType::OrderRejected))
        {
            made.insert((event.shopper, key));
        } else if event.problem_type() == Some(ProblemType::DuplicateOrder) {
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
            let evidence = format!("answers named {} orders: {ids:?}", ids.len());
            found.push(violation(5, format!("shopper-{shopper} key {key}"), evidence));
        }
    }
    let keyed: BTreeMap<OrderId, usize> =
        snapshot.keys.iter().filter(|k| !k.duplicate).fold(BTreeMap::new(), |mut m, k| {
            *m.entry(k.order_id).or_default() += 1;
            m
        });
    for order in &snapshot.orders {
        match keyed.get(&order.id) {
            Some(1) => {}
            count => {
                let evidence = format!("{} idempotency keys made this order", count.copied().unwrap_or(0));
                found.push(violation(5, format!("order {}", order.id), evidence));
            }
        }
    }
    // A keyed deposit is applied once: every deposit line is named by one key, or answers
    // one unkeyed request.
    let by_key: BTreeSet<TransactionId> = snapshot.deposit_keys.iter().map(|k| k.transaction_id).collect();
    let users = shopper_users(snapshot);
    for (shopper, user) in &users {
        let Some(account) = snapshot.account_of(*user) else { continue };
        let unkeyed_lines = snapshot
            .ledger
            .iter()
            .filter(|l| l.account_id == account.id && l.kind == TransactionType::Deposit && !by_key.contains(&l.id))
            .count();
        let unkeyed_requests =
            history.iter().filter(|e| e.shopper == *shopper && e.action == Action::Deposit && e.key.is_none()).count();
        if unkeyed_lines > unkeyed_requests {
            let evidence =
                format!("{unkeyed_lines} deposits named by no key, {unkeyed_requests} unkeyed deposit requests sent");
            found.push(violation(5, format!("user {user}"), evidence));
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
fn in_progress_after_final(snapshot: &Snapshot, history: &[Event], plan: &Plan) -> Vec<Violation> {
    let shoppers: BTreeMap<UserId, u32> = shopper_users(snapshot).into_iter().map(|(s, u)| (u, s)).collect();
    let order_of_key: BTreeMap<(u32, &str), OrderId> = snapshot
        .keys
        .iter()
        .filter(|k| !k.duplicate)
        .filter_map(|k| Some(((*shoppers.get(&k.user_id)?, k.key.as_str()), k.order_id)))
        .collect();
    let finished: BTreeMap<OrderId, u64> = snapshot
        .saga_log
        .iter()
        .filter(|e| e.event == LogEvent::Finished)
        .map(|e| (e.order_id, latest_written_ms(plan, ServiceName::Order, e.at)))
        .collect();
    let liveness_from_ms = plan.safety_ms;
    // The first such answer per key, and how many there were.
    let mut stuck: BTreeMap<(u32, &str), (String, u32)> = BTreeMap::new();
    let in_progress = Some(ProblemType::IdempotencyRequestInProgress);
    for event in history.iter().filter(|e| e.action == Action::PlaceOrder && e.problem_type() == in_progress) {
        let Some(key) = event.key.as_deref() else { continue };
        let Some(order) = order_of_key.get(&(event.shopper, key)).copied() else { continue };
        let seen_final = history.iter().find(|e| {
            e.order_id == Some(order)
                && e.at_ms + WAITING_RELEASE_MARGIN_MS <= event.sent_ms
                && e.order.as_ref().is_some_and(|o| o.status.is_final())
        });
        let logged_final = finished.get(&order).filter(|finished_ms| {
            event.sent_ms >= liveness_from_ms && **finished_ms + WAITING_RELEASE_MARGIN_MS <= event.sent_ms
        });
        let evidence = match (seen_final, logged_final) {
            (Some(seen), _) => format!(
                "a repeat sent at {} ms answered 409 idempotency-request-in-progress, though order {order} was read {} at {} ms",
                event.sent_ms,
                seen.order_status.map_or("", OrderStatus::as_str),
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

fn clients_saw(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    let status_of: BTreeMap<OrderId, OrderStatus> = snapshot.orders.iter().map(|o| (o.id, o.status)).collect();
    // Every status read of each order: (sent, answered, status).
    let mut reads: BTreeMap<OrderId, Vec<(u64, u64, OrderStatus)>> = BTreeMap::new();
    for event in history {
        let (Some(order), Some(seen)) = (event.order_id, event.order_status) else {
            continue;
        };
        let promised = match (event.status, event.problem_type()) {
            (Some(201), _) => Some(OrderStatus::Confirmed),
            (Some(422), Some(ProblemType::OrderRejected)) => Some(OrderStatus::Failed),
            _ => None,
        };
        // An order acknowledged to its client (created, accepted, replayed, read) is never lost.
        if matches!(event.status, Some(200..=202)) && !status_of.contains_key(&order) {
            let evidence = format!(
                "{:?} answered {} at {} ms naming this order, which is not in the order database",
                event.action,
                event.status.unwrap_or(0),
                event.at_ms
            );
            found.push(violation(6, format!("order {order}"), evidence));
        }
        if let Some(promised) = promised.filter(|_| event.action == Action::PlaceOrder) {
            let end = status_of.get(&order).map_or("missing", |s| s.as_str());
            if end != promised.as_str() {
                let evidence =
                    format!("answered {} at {} ms, {end} at the end", event.status.unwrap_or(0), event.at_ms);
                found.push(violation(6, format!("order {order}"), evidence));
            }
        }
        reads.entry(order).or_default().push((event.sent_ms, event.at_ms, seen));
    }
    // The database's final status is the last read of every order.
    for (order, reads) in &mut reads {
        if let Some(status) = status_of.get(order) {
            reads.push((u64::MAX, u64::MAX, *status));
        }
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
            let later = if *later_at == u64::MAX { "at the end".to_string() } else { format!("at {later_at} ms") };
            let evidence = format!("read {} at {answered} ms, then {} {later}", before.as_str(), after.as_str());
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

/// Two orders with the same items (computed from their lines) under five minutes apart,
/// neither FAILED.
fn duplicates(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let live: Vec<&OrderRow> = snapshot.orders.iter().filter(|o| o.status != OrderStatus::Failed).collect();
    for (index, a) in live.iter().enumerate() {
        for b in &live[index + 1..] {
            if a.user_id != b.user_id || a.signature() != b.signature() {
                continue;
            }
            let apart_ms = (a.created_at - b.created_at).num_milliseconds().abs();
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

fn notifications(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut by_order: BTreeMap<OrderId, BTreeMap<NotificationType, i64>> = BTreeMap::new();
    for notification in &snapshot.notifications {
        *by_order.entry(notification.order_id).or_default().entry(notification.kind).or_default() += 1;
        let Some(order) = snapshot.order(notification.order_id) else { continue };
        if notification.user_id != order.user_id || notification.amount_cents != Some(order.price_cents) {
            let evidence = format!(
                "{} for user {} amount {:?}; the order's user is {}, its price {}",
                notification.kind.as_str(),
                notification.user_id,
                notification.amount_cents,
                order.user_id,
                order.price_cents
            );
            found.push(violation(8, format!("order {}", order.id), evidence));
        }
    }
    found.extend(notification_times(snapshot));
    found.extend(notifications_in_outbox_order(snapshot));
    let debits = net_debits(snapshot);
    for order in &snapshot.orders {
        let (withdrawals, refunds, _) = debits.get(&order.id).copied().unwrap_or_default();
        let expected: BTreeMap<NotificationType, i64> = [
            (NotificationType::PaymentDebited, withdrawals.min(1)),
            (NotificationType::PaymentRefunded, refunds.min(1)),
            (NotificationType::OrderConfirmed, i64::from(order.status == OrderStatus::Confirmed)),
            (NotificationType::OrderFailed, i64::from(order.status == OrderStatus::Failed)),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
        let actual = by_order.remove(&order.id).unwrap_or_default();
        if actual != expected {
            found.push(violation(
                8,
                format!("order {}", order.id),
                format!("notifications {actual:?}, expected {expected:?} for {}", order.status.as_str()),
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
    for (service, pending) in snapshot.outbox.iter().filter(|(_, n)| **n > 0) {
        found.push(violation(8, format!("{service}'s outbox"), format!("{pending} events never delivered")));
    }
    found
}

/// Each outbox delivers oldest first (`platform::outbox`: a relay stops at the first event
/// it cannot deliver and starts again from it), so the notification service stores each
/// source's events in the order their facts committed: billing's in the order of its
/// ledger lines, the order service's in the order of the sagas' FINISHED lines (each event
/// is enqueued in its fact's transaction; the first of a fact's events is the one stored).
fn notifications_in_outbox_order(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    // (source, the fact's place in its table) of each notification, in arrival order.
    let mut last: BTreeMap<&str, (usize, &NotificationRow)> = BTreeMap::new();
    for notification in &snapshot.notifications {
        let (source, fact) = match notification.kind {
            NotificationType::PaymentDebited | NotificationType::PaymentRefunded => {
                let kind = if notification.kind == NotificationType::PaymentDebited {
                    TransactionType::Withdraw
                } else {
                    TransactionType::Refund
                };
                let line =
                    snapshot.ledger.iter().position(|l| l.order_id == Some(notification.order_id) && l.kind == kind);
                (ServiceName::Billing.as_str(), line)
            }
            NotificationType::OrderConfirmed | NotificationType::OrderFailed => {
                let finished = (snapshot.saga_log.iter())
                    .position(|e| e.order_id == notification.order_id && e.event == LogEvent::Finished);
                (ServiceName::Order.as_str(), finished)
            }
        };
        let Some(fact) = fact else { continue }; // judged by the counts
        if let Some((before, earlier)) = last.get(source) {
            if fact < *before {
                let evidence = format!(
                    "{} of order {} arrived after {} of order {}, whose fact committed later",
                    notification.kind.as_str(),
                    notification.order_id,
                    earlier.kind.as_str(),
                    earlier.order_id
                );
                found.push(violation(8, format!("{source}'s outbox"), evidence));
                continue;
            }
        }
        last.insert(source, (fact, notification));
    }
    found
}

/// Each notification carries its fact's own time (docs/API.md, "createdAt is the event's
/// own time"): the outbox stamps the event in the transaction that records the fact, so the
/// time is exactly that transaction's: the ledger line's for a payment, the saga's FINISHED
/// line's for the order's outcome.
fn notification_times(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    for notification in &snapshot.notifications {
        let facts: Vec<Timestamp> = match notification.kind {
            NotificationType::PaymentDebited | NotificationType::PaymentRefunded => {
                let kind = if notification.kind == NotificationType::PaymentDebited {
                    TransactionType::Withdraw
                } else {
                    TransactionType::Refund
                };
                snapshot
                    .ledger
                    .iter()
                    .filter(|l| l.order_id == Some(notification.order_id) && l.kind == kind)
                    .map(|l| l.created_at)
                    .collect()
            }
            NotificationType::OrderConfirmed | NotificationType::OrderFailed => snapshot
                .saga_log
                .iter()
                .filter(|e| e.order_id == notification.order_id && e.event == LogEvent::Finished)
                .map(|e| e.at)
                .collect(),
        };
        if facts.is_empty() {
            continue; // judged by the counts below
        }
        if !notification.occurred_at.is_some_and(|at| facts.contains(&at)) {
            let evidence = format!(
                "{} carries the time {:?}, not its fact's ({facts:?})",
                notification.kind.as_str(),
                notification.occurred_at
            );
            found.push(violation(8, format!("order {}", notification.order_id), evidence));
        }
    }
    found
}

fn access(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    let users = shopper_users(snapshot);
    for event in history {
        let own = users.get(&event.shopper).copied();
        let leaked = match event.action {
            Action::Anonymous => event.status.is_some_and(|s| s != 401),
            Action::Peek | Action::Internal | Action::Forged | Action::LoggedOut => {
                event.status.is_some_and(|s| (200..300).contains(&s))
            }
            Action::PollOrder | Action::PlaceOrder => {
                event.status == Some(200) && event.order.as_ref().is_some_and(|o| Some(o.user_id) != own)
            }
            Action::ListOrders | Action::ReadTransactions | Action::ReadNotifications => event
                .listed
                .as_ref()
                .is_some_and(|ids| ids.iter().any(|id| snapshot.order(*id).is_some_and(|o| Some(o.user_id) != own))),
            _ => false,
        };
        if leaked {
            let evidence = format!("{:?} at {} ms answered {}", event.action, event.at_ms, event.status.unwrap_or(0));
            found.push(violation(10, format!("shopper-{}", event.shopper), evidence));
        }
    }
    found
}

/// Whether `message` names a step that failed for want of a participant, as docs/API.md
/// writes it: `SERVICE_UNAVAILABLE` (unreachable, or answering 5xx, for the whole retry
/// budget) or `REJECTED_<4xx>` (the call itself refused, e.g. 408 for a body held past the
/// server's deadline).
fn unavailable_reason(message: &str) -> bool {
    let rejected_4xx = message
        .strip_prefix(REJECTED_PREFIX)
        .and_then(|status| status.parse::<u16>().ok())
        .is_some_and(|status| (400..500).contains(&status));
    message == reason::SERVICE_UNAVAILABLE || rejected_4xx
}

/// The simulated times of the order's saga: its first and last log lines.
fn saga_span_ms(snapshot: &Snapshot, plan: &Plan, order_id: OrderId) -> Option<(u64, u64)> {
    let mut times = snapshot
        .saga_log
        .iter()
        .filter(|e| e.order_id == order_id)
        .map(|e| sim_ms_bounds(plan, ServiceName::Order, e.at));
    let first = times.next()?;
    Some(times.fold(first, |(low, high), (early, late)| (low.min(early), high.max(late))))
}

/// Why a participant's refusal with `message` of the order may have been right, or `None`.
fn refusal_justified(snapshot: &Snapshot, plan: &Plan, order: &OrderRow, message: &str) -> Result<(), String> {
    let participant = match message {
        reason::INSUFFICIENT_FUNDS | reason::NO_ACCOUNT => Participant::Billing,
        reason::OUT_OF_STOCK => Participant::Warehouse,
        _ => Participant::Delivery,
    };
    let service = participant.service();
    let operation = snapshot.operations.get(&participant).and_then(|ops| ops.get(&order.id));
    let Some(operation) = operation.filter(|op| op.message == message) else {
        return Err(format!("{service} holds no refusal {message} of this order ({operation:?})"));
    };
    let t = operation.created_at;
    let tolerance = tolerance_ms(plan, service);
    match message {
        reason::INSUFFICIENT_FUNDS => match lowest_balance_at(snapshot, order.user_id, t, tolerance) {
            Some(lowest) if lowest >= order.price_cents => Err(format!(
                "billing refused at {t} but the balance was at least {lowest} cents for a price of {}",
                order.price_cents
            )),
            _ => Ok(()),
        },
        reason::NO_ACCOUNT if !maybe_no_account_at(snapshot, order.user_id, t, tolerance) => {
            Err(format!("billing refused at {t} though the account existed before"))
        }
        reason::OUT_OF_STOCK => {
            let short = order
                .items
                .iter()
                .any(|(product, quantity)| lowest_available_at(snapshot, *product, order.id, t, tolerance) < *quantity);
            let levels: Vec<(ProductId, i64, i64)> = order
                .items
                .iter()
                .map(|(p, q)| (*p, *q, lowest_available_at(snapshot, *p, order.id, t, tolerance)))
                .collect();
            if short {
                Ok(())
            } else {
                Err(format!("the warehouse refused at {t}; (product, asked, at least available): {levels:?}"))
            }
        }
        reason::NO_DELIVERY_SLOT => {
            let latest_now = t + chrono::TimeDelta::milliseconds(tolerance);
            let Some(slot) = snapshot.slots.iter().find(|s| s.slot == order.slot) else {
                // The delivery service keeps a slot for every hour from the current one to its
                // horizon ahead (docs/API.md, "Create order"): only a slot outside that span
                // may be missing.
                let earliest_now = t - chrono::TimeDelta::milliseconds(tolerance);
                let horizon_end = hour_of(latest_now) + chrono::TimeDelta::hours(DELIVERY_HORIZON_HOURS);
                return if order.slot < hour_of(earliest_now) || order.slot >= horizon_end {
                    Ok(())
                } else {
                    Err(format!(
                        "delivery refused at {t} for want of the slot {}, which was within its \
                         {DELIVERY_HORIZON_HOURS}-hour horizon yet does not exist",
                        order.slot
                    ))
                };
            };
            let booked = most_booked_at(snapshot, order.slot, order.id, t, tolerance);
            // Past, or not yet within the horizon (a slot the horizon reached only later
            // exists at the end: the run crossed an hour, scenario `year-end`).
            let earliest_now = t - chrono::TimeDelta::milliseconds(tolerance);
            let not_yet = order.slot >= hour_of(earliest_now) + chrono::TimeDelta::hours(DELIVERY_HORIZON_HOURS);
            if booked >= slot.capacity || order.slot < hour_of(latest_now) || not_yet {
                Ok(())
            } else {
                Err(format!(
                    "delivery refused at {t}; the slot had at most {booked} of {} booked, was not past and \
                     was within the {DELIVERY_HORIZON_HOURS}-hour horizon",
                    slot.capacity
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Every FAILED order failed for a reason the model can justify: a participant's business
/// refusal that the ledger, the stock or the slot's bookings bear out, or an unavailable
/// service while a fault touched its saga.
fn justified_failures(snapshot: &Snapshot, plan: &Plan, faults: &[Window]) -> Vec<Violation> {
    let mut found = Vec::new();
    for order in snapshot.orders.iter().filter(|o| o.status == OrderStatus::Failed) {
        let message = order.error_message.as_deref().unwrap_or("");
        let business = [reason::INSUFFICIENT_FUNDS, reason::NO_ACCOUNT, reason::OUT_OF_STOCK, reason::NO_DELIVERY_SLOT];
        let verdict = if business.contains(&message) {
            refusal_justified(snapshot, plan, order, message)
        } else if message == format!("{REJECTED_PREFIX}401") {
            rejection_401_justified(snapshot, plan, order.id)
        } else if !unavailable_reason(message) {
            Err(format!(
                "failed with {message:?}: not a reason docs/API.md names (a business reason, {}, or {REJECTED_PREFIX} \
                 and a 4xx status)",
                reason::SERVICE_UNAVAILABLE
            ))
        } else {
            let (begin, end) = saga_span_ms(snapshot, plan, order.id).unwrap_or((0, u64::MAX));
            // The saga's times are on the order service's clock: a skew blurs them.
            let slack = skew_bound_ms(plan, ServiceName::Order).unsigned_abs();
            if faults_touching(faults, begin.saturating_sub(slack), end.saturating_add(slack)).is_empty() {
                Err(format!("failed with {message:?} between {begin} and {end} ms, and no fault touched its saga"))
            } else {
                Ok(())
            }
        };
        if let Err(evidence) = verdict {
            found.push(violation(JUSTIFIED_OUTCOMES, format!("order {}", order.id), evidence));
        }
    }
    found
}

/// A step its participant refused (a business refusal: nothing took effect, saga.rs) is not
/// compensated: a cancel of it would only hold the order back from `FAILED` until a
/// participant that did nothing acknowledged it. Read from the saga log alone: the step's
/// last action line before its first compensation line.
fn refusals_not_compensated(snapshot: &Snapshot) -> Vec<Violation> {
    let mut last_action: BTreeMap<(OrderId, Step), (LogEvent, &str)> = BTreeMap::new();
    let mut found = Vec::new();
    let mut reported = BTreeSet::new();
    for entry in &snapshot.saga_log {
        let Some(step) = entry.step else { continue };
        let key = (entry.order_id, step);
        match (entry.phase, last_action.get(&key)) {
            (Phase::Action, _) => {
                last_action.insert(key, (entry.event, &entry.detail));
            }
            (Phase::Compensation, Some((LogEvent::Refused, reason))) if reported.insert(key) => {
                let evidence =
                    format!("step {} was refused by its participant ({reason}) yet compensated", step.name());
                found.push(violation(1, format!("order {}", entry.order_id), evidence));
            }
            _ => {}
        }
    }
    found
}

/// "A status never moves backwards, and `CONFIRMED` and `FAILED` are final" (API.md), held
/// to every write of an order's status (the harness's trigger, `snapshot::StatusMove`), not
/// only to the reads a shopper happened to make.
fn statuses_move_forward(snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut reported = BTreeSet::new();
    for moved in &snapshot.status_moves {
        if !moved.before.may_become(moved.after) && reported.insert(moved.order_id) {
            let evidence = format!(
                "its status was written from {} to {}: backwards, or out of a final status",
                moved.before.as_str(),
                moved.after.as_str()
            );
            found.push(violation(6, format!("order {}", moved.order_id), evidence));
        }
    }
    // The watch itself: each order's last recorded move ends where the order is.
    let mut last: BTreeMap<OrderId, OrderStatus> = BTreeMap::new();
    for moved in &snapshot.status_moves {
        last.insert(moved.order_id, moved.after);
    }
    for order in &snapshot.orders {
        let recorded = last.get(&order.id).copied().unwrap_or(OrderStatus::New);
        if recorded != order.status {
            let evidence = format!(
                "is {} but the status watch last saw it become {}: a status written past the watch",
                order.status.as_str(),
                recorded.as_str()
            );
            found.push(violation(6, format!("order {}", order.id), evidence));
        }
    }
    found
}

/// Check 14 for the delivery slots a shopper read: one slot for every hour from the current
/// one (on delivery's clock, skew allowed for) to the horizon ahead, each as the database
/// keeps it (its capacity), with no more of it taken than bookings were ever made for it.
fn slot_listings(snapshot: &Snapshot, history: &[Event], plan: &Plan) -> Vec<Violation> {
    let mut found = Vec::new();
    let skew = skew_bound_ms(plan, ServiceName::Delivery).abs();
    // A simulated time on delivery's clock, skewed by up to `skew` either way (before the
    // epoch, too).
    let at = |ms: u64, skewed: i64| plan.start + chrono::TimeDelta::milliseconds(ms as i64 + skewed);
    for event in history.iter().filter(|e| e.action == Action::ReadSlots) {
        let Some(slots) = &event.slots else { continue };
        let subject = format!("shopper-{}", event.shopper);
        let mut wrong = |why: String| {
            let evidence = format!("the slots read at {} ms: {why}", event.at_ms);
            found.push(violation(LISTINGS, subject.clone(), evidence));
        };
        let (earliest, latest) = (hour_of(at(event.sent_ms, -skew)), hour_of(at(event.at_ms, skew)));
        let first = slots.first().map(|s| s.slot);
        if slots.len() != DELIVERY_HORIZON_HOURS as usize || !first.is_some_and(|f| earliest <= f && f <= latest) {
            wrong(format!(
                "{} slots from {first:?}, not {DELIVERY_HORIZON_HOURS} from the current hour ({earliest} to {latest})",
                slots.len()
            ));
            continue;
        }
        for (hour, listed) in slots.iter().enumerate() {
            let expected = slots[0].slot + chrono::TimeDelta::hours(hour as i64);
            let kept = snapshot.slots.iter().find(|s| s.slot == listed.slot);
            let of_slot = || snapshot.bookings.iter().filter(|b| b.slot == listed.slot);
            let bookings = of_slot().count() as i64;
            // Held at the end and made before the read: held when it was read (a cancelled
            // booking is never booked again).
            let held_before = of_slot().filter(|b| b.held && b.created_at < at(event.sent_ms, -skew)).count();
            let taken = listed.capacity - listed.remaining;
            if listed.slot != expected {
                wrong(format!("slot {} listed where {expected} belongs", listed.slot));
            } else if kept.is_none_or(|k| k.capacity != listed.capacity) {
                wrong(format!(
                    "slot {} listed with capacity {}; the database keeps {kept:?}",
                    listed.slot, listed.capacity
                ));
            } else if taken < held_before as i64 || taken > bookings {
                wrong(format!(
                    "slot {} listed with {} of {} remaining, though {held_before} bookings held it then and \
                     {bookings} were ever made for it",
                    listed.slot, listed.remaining, listed.capacity
                ));
            } else {
                continue;
            }
            break;
        }
    }
    found
}

/// Traces (check 15, what an operator follows): every participant's operation record
/// carries the trace of its order's saga, the one the request that created the order
/// started, also when the saga was resumed after a crash or by recovery.
fn records_carry_the_saga_trace(snapshot: &Snapshot) -> Vec<Violation> {
    let traces: BTreeMap<OrderId, Option<&String>> =
        snapshot.orders.iter().map(|o| (o.id, o.trace_id.as_ref())).collect();
    let mut found = Vec::new();
    for (participant, records) in &snapshot.operations {
        for (order_id, record) in records {
            let Some(order_trace) = traces.get(order_id) else { continue };
            if record.trace_id.as_ref() != *order_trace || record.trace_id.is_none() {
                let evidence = format!(
                    "its {} record carries trace {:?}, its saga trace {:?}",
                    participant.service(),
                    record.trace_id,
                    order_trace
                );
                found.push(violation(FIGURES, format!("order {order_id}"), evidence));
            }
        }
    }
    found
}

/// Check 13 for a product read by id: the product asked for, under the catalog's name and
/// price, with no more available than there ever was of it.
fn product_reads(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    for event in history.iter().filter(|e| e.action == Action::ReadProduct) {
        let Some(SeenProduct { asked, answered: Some((id, name, price_cents, available)) }) = &event.product else {
            continue;
        };
        let entry = warehouse::DEMO_CATALOG.iter().find(|c| c.id == *asked);
        let stock = snapshot.initial_stock.get(asked).copied().unwrap_or(0);
        let right = entry.is_some_and(|c| c.id == *id && c.name == name && c.price_cents == *price_cents)
            && (0..=stock).contains(available);
        if !right {
            let evidence = format!(
                "product {asked} read at {} ms answered {id} {name:?} at {price_cents} cents with {available} available; \
                 the catalog has {entry:?}, {stock} in stock at the start",
                event.at_ms
            );
            found.push(violation(CONTRACT, format!("shopper-{}", event.shopper), evidence));
        }
    }
    found
}

/// A step's call that was answered 4xx was refused, not of unknown outcome (docs/API.md:
/// the step is `REJECTED_<status>` and compensated): the saga log never records such an
/// answer as `Unknown`, which would fail the order as `SERVICE_UNAVAILABLE`, blaming a
/// participant that answered.
fn rejections_logged_as_such(snapshot: &Snapshot) -> Vec<Violation> {
    snapshot
        .saga_log
        .iter()
        .filter(|e| e.phase == Phase::Action && e.event == LogEvent::Unknown)
        .filter_map(|e| Some((e, CallError::status_in(&e.detail).filter(|status| *status < 500)?)))
        .map(|(e, status)| {
            let step = e.step.map_or("saga", Step::name);
            let evidence = format!(
                "step {step} was answered {status} but logged as of unknown outcome ({:?}); a 4xx answer is \
                 {REJECTED_PREFIX}{status}",
                e.detail
            );
            violation(JUSTIFIED_OUTCOMES, format!("order {}", e.order_id), evidence)
        })
        .collect()
}

/// A saga step answered 401 (an expired service token) only when the plan's skews put the
/// participant's clock more than the token's lifetime and leeway ahead of the order
/// service's while the step was under way (from the saga's start to the rejection's log
/// line, a fault's aftermath either side: the log's times are the order service's, mapped
/// back).
fn rejection_401_justified(snapshot: &Snapshot, plan: &Plan, order_id: OrderId) -> Result<(), String> {
    let rejected = format!("{REJECTED_PREFIX}401");
    let (begin, _) = saga_span_ms(snapshot, plan, order_id).unwrap_or((0, 0));
    let steps: Vec<(Step, u64)> = snapshot
        .saga_log
        .iter()
        .filter(|e| e.order_id == order_id && e.phase == Phase::Action && e.detail == rejected)
        .filter_map(|e| Some((e.step?, latest_written_ms(plan, ServiceName::Order, e.at))))
        .collect();
    if steps.is_empty() {
        return Err(format!("failed with {rejected:?}, and no step of its saga was rejected 401"));
    }
    for (step, at_ms) in &steps {
        let participant = step.participant();
        let (from, to) = (begin.saturating_sub(FAULT_AFTERMATH_MS), at_ms + FAULT_AFTERMATH_MS);
        if token_refusable(plan, ServiceName::Order, participant, from, to) {
            return Ok(());
        }
    }
    let steps: Vec<(&str, u64)> = steps.iter().map(|(step, at_ms)| (step.name(), *at_ms)).collect();
    Err(format!(
        "failed with {rejected:?} (steps rejected: {steps:?}), but no skew of the plan put a participant's clock \
         more than the token lifetime and leeway ahead of the order service's"
    ))
}

/// A shopper gives up on a step only when a fault kept it from succeeding.
fn justified_give_ups(history: &[Event], faults: &[Window]) -> Vec<Violation> {
    let mut found = Vec::new();
    for gave_up in history.iter().filter(|e| e.action == Action::GaveUp) {
        let Some(step) = gave_up.about else { continue };
        let first = history
            .iter()
            .filter(|e| e.shopper == gave_up.shopper && e.action == step && e.at_ms <= gave_up.at_ms)
            .map(|e| e.sent_ms)
            .min()
            .unwrap_or(gave_up.at_ms);
        if faults_touching(faults, first, gave_up.at_ms).is_empty() {
            let evidence =
                format!("gave up on {step:?} at {} ms, tried since {first} ms, with no fault", gave_up.at_ms);
            found.push(violation(JUSTIFIED_OUTCOMES, format!("shopper-{}", gave_up.shopper), evidence));
        }
    }
    found
}

/// After healing, every shopper whose setup succeeded places one last order it can afford,
/// and a correct store confirms it (or refuses it for a reason the model bears out).
fn last_orders(snapshot: &Snapshot, history: &[Event], plan: &Plan) -> Vec<Violation> {
    let mut found = Vec::new();
    let stock_left = snapshot.stocks.iter().any(|s| s.total > s.reserved);
    for shopper in &plan.shoppers {
        let mine: Vec<&Event> = history.iter().filter(|e| e.shopper == shopper.index).collect();
        if mine.iter().any(|e| e.action == Action::GaveUp) {
            continue; // judged by the give-up check
        }
        let placed: Vec<&&Event> = mine.iter().filter(|e| e.asked.as_ref().is_some_and(|a| a.last)).collect();
        let subject = format!("shopper-{}", shopper.index);
        let Some(order_id) = placed.iter().find_map(|e| e.order_id) else {
            if stock_left || !placed.is_empty() {
                let answers: Vec<Option<u16>> = placed.iter().map(|e| e.status).collect();
                let evidence = format!("no last order after healing (answers {answers:?}; stock left: {stock_left})");
                found.push(violation(JUSTIFIED_OUTCOMES, subject, evidence));
            }
            continue;
        };
        let Some(order) = snapshot.order(order_id) else { continue };
        let verdict = match (order.status, order.error_message.as_deref()) {
            (OrderStatus::Confirmed, _) => Ok(()),
            (OrderStatus::Failed, Some(message @ (reason::OUT_OF_STOCK | reason::NO_DELIVERY_SLOT))) => {
                refusal_justified(snapshot, plan, order, message)
            }
            (status, message) => Err(format!("ended {} ({message:?})", status.as_str())),
        };
        if let Err(why) = verdict {
            let evidence = format!("the last order {order_id}, placed after healing, {why}");
            found.push(violation(JUSTIFIED_OUTCOMES, subject, evidence));
        }
    }
    found
}

/// The answers the contract's tables allow for a well-formed request of `action`.
fn allowed(action: Action) -> &'static [u16] {
    match action {
        Action::Register => &[201, 409],
        Action::Login => &[200],
        Action::OpenAccount => &[200, 201],
        Action::Deposit | Action::PollOrder | Action::ListOrders | Action::ReadAccount | Action::ReadCatalog => &[200],
        Action::PlaceOrder => &[200, 201, 202, 409, 422],
        Action::Peek | Action::Internal => &[404],
        Action::Anonymous | Action::Forged | Action::LoggedOut => &[401],
        Action::Logout => &[204, 401],
        Action::ReuseKey | Action::ReuseDepositKey => &[422],
        Action::ReadTransactions | Action::ReadNotifications | Action::ReadSlots | Action::ReadProduct => &[200],
        Action::AtLimit | Action::PastLimit => &[400],
        Action::GaveUp => &[],
    }
}

/// Every answer is one the contract allows for that request in that state, with the
/// contract's body.
fn contract_answers(snapshot: &Snapshot, history: &[Event], plan: &Plan, faults: &[Window]) -> Vec<Violation> {
    let mut found = Vec::new();
    let catalog: BTreeMap<ProductId, i64> = warehouse::DEMO_CATALOG.iter().map(|c| (c.id, c.price_cents)).collect();
    for (index, event) in history.iter().enumerate().filter(|(_, e)| e.action != Action::GaveUp) {
        let subject = format!("shopper-{}", event.shopper);
        let describe = |why: &str| {
            format!(
                "{:?}{} sent at {} ms answered {} at {} ms: {why}",
                event.action,
                event.key.as_ref().map_or(String::new(), |k| format!(" key {k}")),
                event.sent_ms,
                event.status.map_or("nothing".to_string(), |s| s.to_string()),
                event.at_ms
            )
        };
        let touched = !faults_touching(faults, event.sent_ms, event.at_ms).is_empty();
        match event.status {
            None if event.abandoned => continue,
            None | Some(503) if touched => continue,
            None | Some(503) => {
                found.push(violation(CONTRACT, subject, describe("unavailable with no fault")));
                continue;
            }
            Some(500 | 502) => continue, // reported as an internal error
            Some(401) if !allowed(event.action).contains(&401) => {
                // The gateway refuses a session logged out meanwhile; a service refuses the
                // gateway's token when its clock runs too far ahead.
                if !session_ended(history, event) && !token_refused(plan, event) {
                    found.push(violation(
                        CONTRACT,
                        subject,
                        describe("401 with a live session, and no skew of the plan puts the answering service's clock past the gateway's tokens"),
                    ));
                }
                continue;
            }
            Some(status) if !allowed(event.action).contains(&status) => {
                found.push(violation(CONTRACT, subject, describe("not an answer the contract allows here")));
                continue;
            }
            Some(_) => {}
        }
        if let Some(what) = &event.malformed {
            found.push(violation(CONTRACT, subject, describe(&format!("malformed body: {what}"))));
            continue;
        }
        let earlier = &history[..index];
        let same_step_before = earlier.iter().any(|e| e.shopper == event.shopper && e.action == event.action);
        let verdict = match (event.action, event.status) {
            // 409 email taken / 200 account exists: only after an earlier attempt of ours.
            (Action::Register, Some(409)) | (Action::OpenAccount, Some(200)) if !same_step_before => {
                Err("answered as a repeat, but this was the first attempt".to_string())
            }
            // A logout answered 401 only after an earlier attempt on that session.
            (Action::Logout, Some(401))
                if !earlier.iter().any(|e| e.action == Action::Logout && same_session(e, event)) =>
            {
                Err("a live session's logout refused".to_string())
            }
            (Action::PlaceOrder, Some(status)) => order_answer(snapshot, history, event, status, &catalog, touched),
            // A key taken by an earlier request, repeated with another body.
            (Action::ReuseKey | Action::ReuseDepositKey, _)
                if event.problem_type() != Some(ProblemType::IdempotencyKeyReused) =>
            {
                Err(format!(
                    "a reused key answered with problem {:?}, not idempotency-key-reused",
                    event.problem_text()
                ))
            }
            // A body at a limit is valid: only its products, which nobody sells, are refused.
            (Action::AtLimit, _) if event.problem_type() != Some(ProblemType::UnknownProduct) => Err(format!(
                "an order body at a limit of the contract answered with problem {:?}, not unknown-product",
                event.problem_text()
            )),
            (Action::PastLimit, _) if event.problem_type() != Some(ProblemType::InvalidOrder) => Err(format!(
                "an order body past a limit of the contract answered with problem {:?}, not invalid-order",
                event.problem_text()
            )),
            _ => Ok(()),
        };
        if let Err(why) = verdict {
            found.push(violation(CONTRACT, subject, describe(&why)));
        }
    }
    found
}

fn same_session(a: &Event, b: &Event) -> bool {
    a.shopper == b.shopper && a.session.is_some() && a.session == b.session
}

/// Whether a logout of the session `event` carried was sent before its answer came: the
/// gateway may have seen the session gone.
fn session_ended(history: &[Event], event: &Event) -> bool {
    history.iter().any(|e| e.action == Action::Logout && same_session(e, event) && e.sent_ms <= event.at_ms)
}

/// Whether the service that answers `event` behind the gateway may rightly have refused the
/// gateway's token: the plan's skews put its clock more than the token's lifetime and the
/// leeway ahead of the gateway's while the request was under way.
fn token_refused(plan: &Plan, event: &Event) -> bool {
    let Some(service) = event.action.service() else { return false };
    event.session.is_some() && token_refusable(plan, ServiceName::Gateway, service, event.sent_ms, event.at_ms)
}

/// A list of the shopper's orders names every order the shopper was answered with before
/// the list was sent, under any of its sessions (all of them are the same user's).
fn lists_name_acknowledged_orders(history: &[Event]) -> Vec<Violation> {
    let mut found = Vec::new();
    for list in history.iter().filter(|e| e.action == Action::ListOrders && e.status == Some(200)) {
        let Some(listed) = &list.listed else { continue };
        let acknowledged = history.iter().filter(|e| {
            e.shopper == list.shopper
                && e.action == Action::PlaceOrder
                && e.at_ms < list.sent_ms
                && (matches!(e.status, Some(200..=202))
                    || (e.status == Some(422) && e.problem_type() == Some(ProblemType::OrderRejected)))
        });
        if let Some(missing) = acknowledged.filter_map(|e| Some((e, e.order_id?))).find(|(_, id)| !listed.contains(id))
        {
            let (placed, order_id) = missing;
            let evidence = format!(
                "the list sent at {} ms under session {:?} leaves out order {order_id}, answered at {} ms under session {:?}",
                list.sent_ms, list.session, placed.at_ms, placed.session
            );
            found.push(violation(CONTRACT, format!("shopper-{}", list.shopper), evidence));
        }
    }
    found
}

/// The order service's request deadline, as the contract states it (API.md rule 10,
/// "default 5 s"), not read from the service's configuration.
const REQUEST_DEADLINE_MS: u64 = 5_000;

/// A `POST /api/v1/order` answer against the decision table.
fn order_answer(
    snapshot: &Snapshot,
    history: &[Event],
    event: &Event,
    status: u16,
    catalog: &BTreeMap<ProductId, i64>,
    touched: bool,
) -> Result<(), String> {
    let problem = event.problem_type();
    let Some(asked) = &event.asked else { return Ok(()) };
    let carried = event.order.as_ref();
    match (status, problem) {
        (409, Some(ProblemType::IdempotencyRequestInProgress)) => return Ok(()),
        (409, Some(ProblemType::DuplicateOrder)) => {
            let Some(similar) = carried else { return Err("a duplicate-order problem without its order".into()) };
            let Some(row) = snapshot.order(similar.id) else { return Err("names an order that does not exist".into()) };
            let users = shopper_users(snapshot);
            if Some(row.user_id) != users.get(&event.shopper).copied() || row.items != asked.items {
                return Err(format!("names order {} of other items or another user: {:?}", row.id, row.items));
            }
            return Ok(());
        }
        (409, _) => return Err("409 with an unknown problem type".into()),
        (422, Some(ProblemType::OrderRejected)) => {
            let Some(order) = carried else { return Err("a rejection without its order".into()) };
            if order.status != OrderStatus::Failed {
                return Err(format!("a rejection carrying a {} order", order.status.as_str()));
            }
        }
        // The shoppers never reuse a key with another body.
        (422, _) => return Err("422 to a key used with this very body".into()),
        (200..=202, _) => {}
        _ => return Err("not an answer the decision table has".into()),
    }
    let Some(order) = carried else { return Err("no order in the answer".into()) };
    // The order as created: its items, price, delivery and owner; a replay names the same.
    let price: i64 = asked.items.iter().map(|(p, q)| catalog.get(p).copied().unwrap_or(0) * q).sum();
    let users = shopper_users(snapshot);
    if order.items != asked.items || order.slot != asked.slot || order.price_cents != price {
        return Err(format!(
            "carries items {:?} slot {} price {}; asked {:?} slot {} at price {price}",
            order.items, order.slot, order.price_cents, asked.items, asked.slot
        ));
    }
    if Some(order.user_id) != users.get(&event.shopper).copied() {
        return Err(format!("carries an order of user {}", order.user_id));
    }
    if status == 201 && order.status != OrderStatus::Confirmed {
        return Err(format!("201 with a {} order", order.status.as_str()));
    }
    if status == 202 && order.status.is_final() {
        return Err(format!("202 with a {} order", order.status.as_str()));
    }
    // Rule 10: a 202 is the answer of a saga still running when the request's deadline
    // passes, counted from the request's arrival (after it was sent): never sooner, unless a
    // fault touched the request (a saga stopped by a storage error is left to recovery, and
    // its order answered 202 at once). The saga concurrency limit, the other way to an early
    // 202, is never reached here.
    let waited_ms = event.at_ms.saturating_sub(event.sent_ms);
    if status == 202 && waited_ms < REQUEST_DEADLINE_MS && !touched {
        return Err(format!(
            "202 after {waited_ms} ms: rule 10 answers 202 only to a saga still running at the request's \
             {REQUEST_DEADLINE_MS} ms deadline"
        ));
    }
    // A 200 replays a key sent before (or at the same moment, by a twin), or, under a
    // fault, a copy of this very request sent ahead of it: an injected duplicate or the
    // gateway's own retry after an attempt that got no answer.
    let sent_before = history
        .iter()
        .any(|e| e.shopper == event.shopper && e.key == event.key && e.sent_ms <= event.sent_ms && e != event);
    if status == 200 && !sent_before && !touched {
        return Err("200 replay of a key never sent before".into());
    }
    Ok(())
}

/// A listing answers at most this many entries, the newest (docs/API.md); a full one is
/// checked for truth only.
const LISTED_MAX: usize = 1_000;

/// The latest simulated time at which `service` can have written `at` on its own clock
/// (see [`sim_ms_bounds`]). A row whose latest time is before a request went out was
/// committed before it: SQLite work is synchronous, so a row's time is its commit's.
pub fn latest_written_ms(plan: &Plan, service: ServiceName, at: Timestamp) -> u64 {
    sim_ms_bounds(plan, service, at).1
}

/// One row a listing may name: what it is, its id, and what the listing should say of it.
struct ListedRow {
    entry: Listed,
    /// The latest simulated time it can have been committed at.
    written_ms: u64,
}

/// The rows of `user` a listing of `action` draws from, from the snapshot.
fn rows_of(snapshot: &Snapshot, plan: &Plan, action: Action, user: UserId) -> Vec<ListedRow> {
    match action {
        Action::ListOrders => snapshot
            .orders
            .iter()
            .filter(|o| o.user_id == user)
            .map(|o| ListedRow {
                entry: Listed::Order { id: o.id, user_id: o.user_id },
                written_ms: latest_written_ms(plan, ServiceName::Order, o.created_at),
            })
            .collect(),
        Action::ReadTransactions => snapshot
            .ledger
            .iter()
            .filter(|l| snapshot.owner_of(l.account_id) == Some(user))
            .map(|l| ListedRow {
                entry: Listed::Transaction {
                    id: l.id,
                    kind: l.kind,
                    amount_cents: l.amount_cents,
                    order_id: l.order_id,
                },
                written_ms: latest_written_ms(plan, ServiceName::Billing, l.created_at),
            })
            .collect(),
        Action::ReadNotifications => snapshot
            .notifications
            .iter()
            .filter(|n| n.user_id == user)
            .map(|n| ListedRow {
                entry: Listed::Notification {
                    id: n.id,
                    kind: n.kind,
                    order_id: n.order_id,
                    amount_cents: n.amount_cents,
                },
                written_ms: latest_written_ms(plan, ServiceName::Notification, n.created_at),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a row with `id` exists anywhere in the snapshot's table for `action` (of any
/// user), and whose it is.
fn owner_of_row(snapshot: &Snapshot, action: Action, id: Uuid) -> Option<Option<UserId>> {
    match action {
        Action::ListOrders => snapshot.order(OrderId::from_uuid(id)).map(|o| Some(o.user_id)),
        Action::ReadTransactions => {
            snapshot.ledger.iter().find(|l| l.id.uuid() == id).map(|l| snapshot.owner_of(l.account_id))
        }
        Action::ReadNotifications => snapshot.notifications.iter().find(|n| n.id.uuid() == id).map(|n| Some(n.user_id)),
        _ => None,
    }
}

/// Every 200 answer of the shopper's orders, transactions and notifications is true and
/// complete against the final databases: each entry is a row of that shopper's user, as the
/// row says it (a transaction's type, amount and order; a notification's type, order and
/// amount), listed once; and every row of that user committed before the request went out
/// is listed (rows committed while it was under way may or may not be). A full listing (the
/// newest [`LISTED_MAX`]) is held to truth only.
fn listings(snapshot: &Snapshot, history: &[Event], plan: &Plan) -> Vec<Violation> {
    let mut found = Vec::new();
    let users = shopper_users(snapshot);
    let listing = |e: &&Event| {
        matches!(e.action, Action::ListOrders | Action::ReadTransactions | Action::ReadNotifications)
            && e.status == Some(200)
    };
    for event in history.iter().filter(listing) {
        let Some(entries) = &event.entries else { continue };
        let subject = format!("shopper-{}", event.shopper);
        let describe = |why: String| {
            format!("{:?} sent at {} ms answered at {} ms: {why}", event.action, event.sent_ms, event.at_ms)
        };
        let Some(user) = users.get(&event.shopper).copied() else {
            found.push(violation(LISTINGS, subject, describe("a listing for a shopper with no user".into())));
            continue;
        };
        let rows = rows_of(snapshot, plan, event.action, user);
        // True: each entry as its row says, of this user, once.
        let mut seen = BTreeSet::new();
        let false_entries: Vec<String> = entries
            .iter()
            .filter_map(|entry| {
                let id = entry.id();
                if !seen.insert(id) {
                    return Some(format!("{entry:?} listed twice"));
                }
                match rows.iter().find(|r| r.entry.id() == id) {
                    Some(row) if row.entry == *entry => None,
                    Some(row) => Some(format!("{entry:?} listed, the row says {:?}", row.entry)),
                    None => Some(match owner_of_row(snapshot, event.action, id) {
                        Some(owner) => format!("{entry:?} listed, a row of user {owner:?}, not of user {user}"),
                        None => format!("{entry:?} listed, and no such row exists"),
                    }),
                }
            })
            .collect();
        if let Some(first) = false_entries.first() {
            let why = format!("{first} ({} false entries of {})", false_entries.len(), entries.len());
            found.push(violation(LISTINGS, subject.clone(), describe(why)));
        }
        // Complete: every row committed before the request went out.
        if entries.len() >= LISTED_MAX {
            continue;
        }
        let listed: BTreeSet<Uuid> = entries.iter().map(Listed::id).collect();
        let missing: Vec<&ListedRow> =
            rows.iter().filter(|r| r.written_ms < event.sent_ms && !listed.contains(&r.entry.id())).collect();
        if let Some(first) = missing.first() {
            let why = format!(
                "leaves out {:?}, committed by {} ms ({} rows committed before it was sent left out, {} listed)",
                first.entry,
                first.written_ms,
                missing.len(),
                entries.len()
            );
            found.push(violation(LISTINGS, subject, describe(why)));
        }
    }
    found
}
