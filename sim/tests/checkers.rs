//! Every check, shown failing: a clean run passes, then one planted corruption of the
//! snapshot or the history at a time must be reported as that invariant. The checks are
//! pure functions of (snapshot, history, plan), so the corruptions are plain edits.

use contracts::notification::NotificationType;
use contracts::order::OrderStatus;
use contracts::saga::reason;
use contracts::{NotificationId, OrderId, ProblemType, ServiceName, TransactionId};
use order::saga::{Event as LogEvent, Phase, Step};
use platform::operations::OperationState;
use sim::checks::{final_checks, latest_written_ms, Violation, CONTRACT, JUSTIFIED_OUTCOMES, LISTINGS};
use sim::faults::{Fault, Planned};
use sim::history::{Action, Event, Listed};
use sim::model;
use sim::plan::{from_seed, Plan};
use sim::run::{run_plan_keeping_state, sim_ms, sim_ms_bounds};
use sim::scenario::load_named;
use sim::snapshot::{OperationRow, Participant, Snapshot};
use std::sync::OnceLock;

struct Clean {
    history: Vec<Event>,
    snapshot: Snapshot,
    plan: Plan,
}

/// One clean run of `happy-path`, shared by the tests (each edits its own copy).
fn clean() -> &'static Clean {
    static CLEAN: OnceLock<Clean> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let scenario = load_named("happy-path").unwrap();
        let plan = from_seed(&scenario, 1);
        let (report, snapshot) = run_plan_keeping_state(&scenario, &plan);
        assert!(report.passed(), "{:#?}", report.violations);
        assert!(report.stats.confirmed >= 2, "the clean run needs confirmed orders: {:?}", report.stats);
        Clean { history: report.history, snapshot, plan }
    })
}

fn parts() -> (Vec<Event>, Snapshot) {
    (clean().history.clone(), clean().snapshot.clone())
}

fn check(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    final_checks(snapshot, history, &clean().plan)
}

fn confirmed(snapshot: &Snapshot) -> usize {
    snapshot.orders.iter().position(|o| o.status == OrderStatus::Confirmed).expect("a confirmed order")
}

fn assert_caught(violations: &[Violation], invariant: u8) {
    assert!(
        violations.iter().any(|v| v.invariant == invariant),
        "invariant {invariant} not reported; got {violations:#?}"
    );
}

#[test]
fn a_clean_run_passes_every_check() {
    let (history, snapshot) = parts();
    let violations = check(&snapshot, &history);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn saga_atomicity_catches_a_confirmed_order_without_its_booking() {
    let (history, mut snapshot) = parts();
    let order = snapshot.orders[confirmed(&snapshot)].id;
    snapshot.bookings.iter_mut().filter(|b| b.order_id == order).for_each(|b| b.held = false);
    assert_caught(&check(&snapshot, &history), 1);
}

/// A final order's saga log must hold every answer and its end: an answer dropped (a
/// runner that never wrote its answers: statuses and money can still look right) or the
/// end missing is a violation of atomicity's record.
#[test]
fn saga_atomicity_catches_a_final_order_whose_log_lost_an_answer_or_its_end() {
    let (history, snapshot) = parts();
    let order = snapshot.orders[confirmed(&snapshot)].id;
    for (phase, event, saying) in [
        (Phase::Action, LogEvent::Succeeded, "never answered"),
        (Phase::Saga, LogEvent::Finished, "its end is logged as []"),
    ] {
        let mut edited = snapshot.clone();
        let before = edited.saga_log.len();
        edited.saga_log.retain(|e| !(e.order_id == order && e.phase == phase && e.event == event));
        assert!(edited.saga_log.len() < before, "the clean log holds {event:?}");
        assert_caught_saying(&check(&edited, &history), 1, saying);
    }
}

#[test]
fn money_catches_a_balance_that_appeared_from_nowhere() {
    let (history, mut snapshot) = parts();
    snapshot.accounts[0].balance_cents += 100;
    assert_caught(&check(&snapshot, &history), 2);
}

#[test]
fn money_catches_a_debit_booked_to_another_users_account() {
    let (history, mut snapshot) = parts();
    let order = snapshot.orders[confirmed(&snapshot)].clone();
    let other = snapshot.accounts.iter().find(|a| a.user_id != order.user_id).unwrap().id;
    let line = snapshot.ledger.iter_mut().find(|l| l.order_id == Some(order.id)).unwrap();
    let own = line.account_id;
    line.account_id = other;
    // Balances moved with it, so only the owner check can see it.
    let amount = line.amount_cents;
    snapshot.accounts.iter_mut().find(|a| a.id == own).unwrap().balance_cents += amount;
    snapshot.accounts.iter_mut().find(|a| a.id == other).unwrap().balance_cents -= amount;
    let violations = check(&snapshot, &history);
    assert!(
        violations.iter().any(|v| v.invariant == 2 && v.subject == format!("order {}", order.id)),
        "{violations:#?}"
    );
}

#[test]
fn money_catches_an_acknowledged_deposit_missing_from_the_ledger() {
    let (history, mut snapshot) = parts();
    let acknowledged = history.iter().find_map(|e| e.transaction_id).expect("an acknowledged deposit");
    let line = snapshot.ledger.iter_mut().find(|l| l.id == acknowledged).unwrap();
    line.id = TransactionId::from_u128(7);
    assert_caught(&check(&snapshot, &history), 2);
}

#[test]
fn stock_catches_reserved_units_no_order_holds() {
    let (history, mut snapshot) = parts();
    let stock = snapshot.stocks.iter_mut().find(|s| s.total > s.reserved).unwrap();
    stock.reserved += 1;
    assert_caught(&check(&snapshot, &history), 3);
}

#[test]
fn slots_catch_a_booking_counted_in_another_slot() {
    let (history, mut snapshot) = parts();
    let booked = snapshot.slots.iter().position(|s| s.booked > 0).unwrap();
    let free = snapshot.slots.iter().position(|s| s.booked == 0 && s.capacity > 0).unwrap();
    snapshot.slots[booked].booked -= 1;
    snapshot.slots[free].booked += 1;
    assert_caught(&check(&snapshot, &history), 4);
}

#[test]
fn idempotency_catches_a_second_withdrawal() {
    let (history, mut snapshot) = parts();
    let order = snapshot.orders[confirmed(&snapshot)].id;
    let mut copy = snapshot.ledger.iter().find(|l| l.order_id == Some(order)).unwrap().clone();
    copy.id = TransactionId::from_u128(9);
    copy.seq += 10_000;
    snapshot.ledger.push(copy);
    assert_caught(&check(&snapshot, &history), 5);
}

#[test]
fn what_clients_saw_catches_a_status_read_going_backwards() {
    let (mut history, snapshot) = parts();
    let seen = history.iter().find(|e| e.order_status == Some(OrderStatus::Confirmed)).unwrap().clone();
    history.push(Event {
        at_ms: seen.at_ms + 2,
        sent_ms: seen.at_ms + 1,
        action: Action::PollOrder,
        status: Some(200),
        order_status: Some(OrderStatus::Paid),
        ..seen
    });
    assert_caught(&check(&snapshot, &history), 6);
}

#[test]
fn what_clients_saw_counts_the_final_status_as_the_last_read() {
    let (history, mut snapshot) = parts();
    // A poll saw CONFIRMED (not a 201: only the monotonicity check can see this one).
    let polled = history
        .iter()
        .find(|e| e.action == Action::PollOrder && e.order_status == Some(OrderStatus::Confirmed))
        .or_else(|| history.iter().find(|e| e.status == Some(200) && e.order_status == Some(OrderStatus::Confirmed)))
        .and_then(|e| e.order_id);
    let order_id = polled.unwrap_or_else(|| snapshot.orders[confirmed(&snapshot)].id);
    snapshot.orders.iter_mut().find(|o| o.id == order_id).unwrap().status = OrderStatus::Failed;
    let violations = check(&snapshot, &history);
    assert!(violations.iter().any(|v| v.invariant == 6 && v.evidence.contains("at the end")), "{violations:#?}");
}

#[test]
fn overlapping_reads_may_be_answered_in_either_order() {
    let (mut history, snapshot) = parts();
    let seen = history.iter().find(|e| e.order_status == Some(OrderStatus::Confirmed)).unwrap().clone();
    // A twin request sent before the CONFIRMED answer came, answered after it: not a regression.
    let twin = Event { at_ms: seen.at_ms + 1, sent_ms: seen.sent_ms, order_status: Some(OrderStatus::Paid), ..seen };
    history.push(twin);
    let violations = check(&snapshot, &history);
    assert!(!violations.iter().any(|v| v.invariant == 6), "{violations:#?}");
}

#[test]
fn duplicate_orders_are_caught_by_their_lines_not_their_stored_signature() {
    let (history, mut snapshot) = parts();
    let mut copy = snapshot.orders[confirmed(&snapshot)].clone();
    copy.id = OrderId::from_u128(0xcc);
    copy.status = OrderStatus::New;
    snapshot.orders.push(copy);
    assert_caught(&check(&snapshot, &history), 7);
}

#[test]
fn notifications_catch_a_lost_payment_notice() {
    let (history, mut snapshot) = parts();
    let lost = snapshot.notifications.iter().position(|n| n.kind == NotificationType::PaymentDebited).unwrap();
    snapshot.notifications.remove(lost);
    assert_caught(&check(&snapshot, &history), 8);
}

#[test]
fn notifications_catch_a_notice_with_the_wrong_amount() {
    let (history, mut snapshot) = parts();
    snapshot.notifications[0].amount_cents = snapshot.notifications[0].amount_cents.map(|a| a + 1);
    assert_caught(&check(&snapshot, &history), 8);
}

/// Each outbox delivers oldest first: two of billing's notices, or two of the order
/// service's, stored the other way round are caught; a billing notice and an order notice
/// swapped are not (two outboxes, no order between them).
#[test]
fn notifications_catch_an_outbox_delivered_out_of_order() {
    let (history, snapshot) = parts();
    assert!(check(&snapshot, &history).is_empty());
    let payments = [NotificationType::PaymentDebited, NotificationType::PaymentRefunded];
    let from_billing = |kind: &NotificationType| payments.contains(kind);
    for billing in [true, false] {
        let of_source: Vec<usize> = (0..snapshot.notifications.len())
            .filter(|i| from_billing(&snapshot.notifications[*i].kind) == billing)
            .collect();
        assert!(of_source.len() >= 2, "the clean run has two notices from each outbox");
        let mut swapped = snapshot.clone();
        swapped.notifications.swap(of_source[0], of_source[1]);
        assert_caught_saying(&check(&swapped, &history), 8, "whose fact committed later");
    }
    let first_payment = snapshot.notifications.iter().position(|n| from_billing(&n.kind)).unwrap();
    let first_outcome = snapshot.notifications.iter().position(|n| !from_billing(&n.kind)).unwrap();
    let mut across = snapshot.clone();
    let payment = across.notifications.remove(first_payment);
    across.notifications.insert(first_outcome.max(first_payment), payment);
    assert!(check(&across, &history).iter().all(|v| !v.evidence.contains("whose fact committed later")));
}

#[test]
fn notifications_catch_an_outbox_left_undelivered() {
    let (history, mut snapshot) = parts();
    snapshot.outbox.insert(ServiceName::Billing, 1);
    assert_caught(&check(&snapshot, &history), 8);
}

/// Rule 10: a 202 comes only once the request's 5 s deadline has passed with the saga still
/// running. An order answered 202 at once is caught; the same answer after the deadline is not
/// a rule-10 violation.
#[test]
fn contract_catches_a_202_before_the_deadline() {
    let (history, snapshot) = parts();
    let index = history.iter().position(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    let accepted = |waited_ms: u64| {
        let mut history = history.clone();
        let event = &mut history[index];
        event.status = Some(202);
        event.order_status = Some(OrderStatus::Processing);
        event.order.as_mut().expect("a 201 carries its order").status = OrderStatus::Processing;
        event.at_ms = event.sent_ms + waited_ms;
        check(&snapshot, &history)
    };
    assert_caught_saying(&accepted(30), CONTRACT, "202 after 30 ms: rule 10");
    assert!(accepted(5_000).iter().all(|v| !v.evidence.contains("rule 10")));
}

#[test]
fn what_clients_saw_catches_an_accepted_order_lost() {
    let (mut history, mut snapshot) = parts();
    let index = history.iter().position(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    let order = history[index].order_id.unwrap();
    // Answered 202 (accepted, the saga running on), then gone from the order database.
    history[index].status = Some(202);
    history[index].order_status = Some(OrderStatus::Processing);
    history.retain(|e| e.order_id != Some(order) || e.action == Action::PlaceOrder);
    snapshot.orders.retain(|o| o.id != order);
    let violations = check(&snapshot, &history);
    assert!(
        violations.iter().any(|v| v.invariant == 6 && v.evidence.contains("not in the order database")),
        "{violations:#?}"
    );
}

#[test]
fn termination_catches_an_unfinished_order() {
    let (history, mut snapshot) = parts();
    let index = confirmed(&snapshot);
    snapshot.orders[index].status = OrderStatus::DeliveryBooked;
    assert_caught(&check(&snapshot, &history), 9);
}

#[test]
fn access_catches_a_shopper_reading_another_shoppers_order() {
    let (mut history, snapshot) = parts();
    let any = history[0].clone();
    history.push(Event { action: Action::Peek, status: Some(200), ..any });
    assert_caught(&check(&snapshot, &history), 10);
}

/// Turns a confirmed order into one that failed with `message`, undone everywhere (so
/// only the justification check can object).
fn fail_cleanly(snapshot: &mut Snapshot, message: &str) -> OrderId {
    let index = confirmed(snapshot);
    let order = snapshot.orders[index].clone();
    snapshot.orders[index].status = OrderStatus::Failed;
    snapshot.orders[index].error_message = Some(message.to_string());
    let withdrawal = snapshot.ledger.iter().position(|l| l.order_id == Some(order.id)).unwrap();
    let line = snapshot.ledger.remove(withdrawal);
    snapshot.accounts.iter_mut().find(|a| a.id == line.account_id).unwrap().balance_cents += line.amount_cents;
    for row in snapshot.stock_reservations.iter_mut().filter(|r| r.order_id == order.id) {
        row.held = false;
        snapshot.stocks.iter_mut().find(|s| s.product_id == row.product_id).unwrap().reserved -= row.quantity;
    }
    for booking in snapshot.bookings.iter_mut().filter(|b| b.order_id == order.id) {
        booking.held = false;
        snapshot.slots.iter_mut().find(|s| s.slot == booking.slot).unwrap().booked -= 1;
    }
    snapshot.notifications.retain(|n| n.order_id != order.id);
    order.id
}

#[test]
fn justified_outcomes_catch_an_unavailable_failure_with_no_fault() {
    let (history, mut snapshot) = parts();
    let order = fail_cleanly(&mut snapshot, reason::SERVICE_UNAVAILABLE);
    let violations = check(&snapshot, &history);
    let subject = format!("order {order}");
    assert!(violations.iter().any(|v| v.invariant == JUSTIFIED_OUTCOMES && v.subject == subject), "{violations:#?}");
}

#[test]
fn justified_outcomes_catch_a_refusal_no_participant_made() {
    let (history, mut snapshot) = parts();
    fail_cleanly(&mut snapshot, reason::OUT_OF_STOCK);
    assert_caught(&check(&snapshot, &history), JUSTIFIED_OUTCOMES);
}

#[test]
fn justified_outcomes_catch_insufficient_funds_with_money_in_the_account() {
    let (history, mut snapshot) = parts();
    let order = fail_cleanly(&mut snapshot, reason::INSUFFICIENT_FUNDS);
    let user = snapshot.order(order).unwrap().user_id;
    let price = snapshot.order(order).unwrap().price_cents;
    let account = snapshot.accounts.iter().find(|a| a.user_id == user).unwrap().clone();
    assert!(account.balance_cents >= price, "the tampered order must have been affordable");
    // Billing "refused" it a minute after everything else.
    let late = snapshot.ledger.iter().map(|l| l.created_at).max().unwrap() + chrono::TimeDelta::minutes(1);
    let refusal = OperationRow {
        state: OperationState::Refused,
        message: reason::INSUFFICIENT_FUNDS.into(),
        created_at: late,
        updated_at: late,
        trace_id: snapshot.orders.iter().find(|o| o.id == order).and_then(|o| o.trace_id.clone()),
        action_repeats: 0,
        cancel_repeats: 0,
    };
    snapshot.operations.get_mut(&Participant::Billing).unwrap().insert(order, refusal);
    let violations = check(&snapshot, &history);
    assert!(
        violations.iter().any(|v| v.invariant == JUSTIFIED_OUTCOMES && v.evidence.contains("balance was at least")),
        "{violations:#?}"
    );
}

#[test]
fn justified_outcomes_catch_a_shopper_giving_up_with_no_fault() {
    let (mut history, snapshot) = parts();
    let mut gave_up = Event::new(0, Action::GaveUp, 100, 100);
    gave_up.about = Some(Action::OpenAccount);
    history.push(gave_up);
    assert_caught(&check(&snapshot, &history), JUSTIFIED_OUTCOMES);
}

#[test]
fn justified_outcomes_catch_a_missing_last_order() {
    let (mut history, snapshot) = parts();
    history.retain(|e| !(e.shopper == 1 && e.asked.as_ref().is_some_and(|a| a.last)));
    let violations = check(&snapshot, &history);
    assert!(
        violations.iter().any(|v| v.invariant == JUSTIFIED_OUTCOMES && v.subject == "shopper-1"),
        "{violations:#?}"
    );
}

#[test]
fn contract_catches_a_400_to_a_well_formed_order() {
    let (mut history, snapshot) = parts();
    let placed = history.iter_mut().find(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    placed.status = Some(400);
    placed.problem = Some(ProblemType::UnknownProduct.into());
    assert_caught(&check(&snapshot, &history), CONTRACT);
}

#[test]
fn contract_catches_unavailable_with_no_fault() {
    let (mut history, snapshot) = parts();
    let placed = history.iter_mut().find(|e| e.action == Action::Login).unwrap();
    placed.status = Some(503);
    assert_caught(&check(&snapshot, &history), CONTRACT);
}

/// The clean plan with one storage fault on `host` from `at_ms` for `duration_ms`.
fn with_storage_fault(host: ServiceName, at_ms: u64, duration_ms: u64) -> Plan {
    let mut plan = clean().plan.clone();
    let fault = Fault::Storage { host, per_mille: 500, duration_ms };
    plan.faults.push(Planned { at_ms, fault });
    plan
}

#[test]
fn contract_accepts_unavailable_only_while_a_storage_fault_is_active() {
    let (mut history, snapshot) = parts();
    let safety_ms = clean().plan.safety_ms;
    // A read answered in the middle of the safety phase, turned into a 503.
    let index = history
        .iter()
        .position(|e| e.status == Some(200) && e.sent_ms > 2_000 && e.at_ms + 2_000 < safety_ms)
        .expect("a read answered mid-run");
    history[index].status = Some(503);
    let (sent_ms, at_ms) = (history[index].sent_ms, history[index].at_ms);
    let contract = |plan: &Plan| {
        final_checks(&snapshot, &history, plan).into_iter().filter(|v| v.invariant == CONTRACT).collect::<Vec<_>>()
    };
    // A storage fault active while the request was under way explains the 503.
    let during = with_storage_fault(ServiceName::Billing, sent_ms.saturating_sub(50), 100);
    assert!(contract(&during).is_empty(), "{:#?}", contract(&during));
    // One that ended (with its aftermath) before the request, or began after its answer, does not.
    // (`sent_ms` > 2 s: the window [0, sent_ms - 10) with its aftermath ends before it.)
    let before = with_storage_fault(ServiceName::Billing, 0, sent_ms - model::FAULT_AFTERMATH_MS - 10);
    assert_caught(&contract(&before), CONTRACT);
    let after = with_storage_fault(ServiceName::Billing, at_ms + 1, 500);
    assert_caught(&contract(&after), CONTRACT);
}

/// The first and last simulated times of the order's saga log.
fn saga_span(snapshot: &Snapshot, plan: &Plan, order: OrderId) -> (u64, u64) {
    let times: Vec<u64> = snapshot
        .saga_log
        .iter()
        .filter(|e| e.order_id == order)
        .map(|e| sim_ms(plan, ServiceName::Order, e.at))
        .collect();
    (*times.iter().min().unwrap(), *times.iter().max().unwrap())
}

#[test]
fn justified_outcomes_accept_an_unavailable_failure_only_under_a_storage_fault() {
    let (history, mut snapshot) = parts();
    let order = fail_cleanly(&mut snapshot, reason::SERVICE_UNAVAILABLE);
    let subject = format!("order {order}");
    let plan = &clean().plan;
    let (begin, end) = saga_span(&snapshot, plan, order);
    let unjustified = |plan: &Plan| {
        final_checks(&snapshot, &history, plan)
            .iter()
            .any(|v| v.invariant == JUSTIFIED_OUTCOMES && v.subject == subject)
    };
    // A storage fault on the orchestrator while the saga ran justifies the failure.
    assert!(!unjustified(&with_storage_fault(ServiceName::Order, begin, (end - begin).max(100))));
    // One that began after the saga ended (and its aftermath) does not.
    let later = end + model::FAULT_AFTERMATH_MS + 1;
    assert!(later < plan.safety_ms, "the saga ended at {end} ms, the safety phase at {} ms", plan.safety_ms);
    assert!(unjustified(&with_storage_fault(ServiceName::Order, later, 100)));
}

/// A step's failure reason is one docs/API.md names: under a fault touching the saga, a
/// 4xx refusal of the call passes, a 5xx one (the runner must call that unavailable) or a
/// reason nobody wrote down does not.
#[test]
fn justified_outcomes_catch_a_failure_reason_the_contract_does_not_name() {
    let (history, mut snapshot) = parts();
    let order = fail_cleanly(&mut snapshot, reason::SERVICE_UNAVAILABLE);
    let subject = format!("order {order}");
    let plan = &clean().plan;
    let (begin, end) = saga_span(&snapshot, plan, order);
    let faulty = with_storage_fault(ServiceName::Order, begin, (end - begin).max(100));
    let verdict = |snapshot: &sim::snapshot::Snapshot| {
        final_checks(snapshot, &history, &faulty)
            .into_iter()
            .find(|v| v.invariant == JUSTIFIED_OUTCOMES && v.subject == subject)
    };
    for (message, named) in
        [("REJECTED_408", true), ("SERVICE_UNAVAILABLE", true), ("REJECTED_503", false), ("TIMEOUT", false)]
    {
        snapshot.orders.iter_mut().find(|o| o.id == order).unwrap().error_message = Some(message.to_string());
        match verdict(&snapshot) {
            None => assert!(named, "{message} passed"),
            Some(v) => {
                assert!(!named, "{message} was caught: {v:?}");
                assert!(v.evidence.contains("not a reason docs/API.md names"), "{v:?}");
            }
        }
    }
}

#[test]
fn contract_catches_an_order_answered_at_another_price() {
    let (mut history, snapshot) = parts();
    let placed = history.iter_mut().find(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    placed.order.as_mut().unwrap().price_cents += 1;
    assert_caught(&check(&snapshot, &history), CONTRACT);
}

#[test]
fn contract_catches_a_duplicate_order_answer_naming_other_items() {
    let (mut history, snapshot) = parts();
    let index = history.iter().position(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    let mut answer = history[index].clone();
    answer.status = Some(409);
    answer.problem = Some(ProblemType::DuplicateOrder.into());
    let other = snapshot
        .orders
        .iter()
        .find(|o| Some(o.id) != answer.order_id && o.items != answer.order.as_ref().unwrap().items);
    answer.asked.as_mut().unwrap().items = other.map(|o| o.items.clone()).unwrap_or_default();
    answer.key = Some("another-key".into());
    history.push(answer);
    assert_caught(&check(&snapshot, &history), CONTRACT);
}

#[test]
fn contract_catches_a_value_the_code_never_writes() {
    let (history, mut snapshot) = parts();
    snapshot.unreadable.push("order.orders: unknown value 'SHIPPED'".into());
    assert_caught(&check(&snapshot, &history), CONTRACT);
}

/// The first event of `action` in the clean run, or (when the seed's plan has none) a copy
/// of the first `like` event recorded as one.
fn an_event(history: &mut Vec<Event>, action: Action, like: Action) -> &mut Event {
    if let Some(index) = history.iter().position(|e| e.action == action) {
        return &mut history[index];
    }
    let mut event = history.iter().find(|e| e.action == like).expect("an event to copy").clone();
    event.action = action;
    history.push(event);
    history.last_mut().unwrap()
}

fn assert_caught_saying(violations: &[Violation], invariant: u8, saying: &str) {
    assert!(
        violations.iter().any(|v| v.invariant == invariant && v.evidence.contains(saying)),
        "invariant {invariant} saying {saying:?} not reported; got {violations:#?}"
    );
}

#[test]
fn contract_catches_a_reused_order_key_that_made_an_order() {
    let (mut history, snapshot) = parts();
    let reused = an_event(&mut history, Action::ReuseKey, Action::PlaceOrder);
    reused.status = Some(201);
    reused.problem = None;
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "not an answer the contract allows");
}

#[test]
fn contract_catches_a_reused_order_key_refused_as_something_else() {
    let (mut history, snapshot) = parts();
    let reused = an_event(&mut history, Action::ReuseKey, Action::PlaceOrder);
    reused.status = Some(422);
    reused.problem = Some(ProblemType::OrderRejected.into());
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "not idempotency-key-reused");
}

/// A body at a limit of the contract is valid (400 only for its unsold products); one past
/// it is invalid-order; each refused as the other is a violation, and a 201 to either too.
#[test]
fn contract_catches_an_order_body_at_or_past_a_limit_answered_wrongly() {
    for (action, problem, wrong, saying) in [
        (Action::AtLimit, ProblemType::UnknownProduct, ProblemType::InvalidOrder, "not unknown-product"),
        (Action::PastLimit, ProblemType::InvalidOrder, ProblemType::UnknownProduct, "not invalid-order"),
    ] {
        let (mut history, snapshot) = parts();
        let edge = an_event(&mut history, action, Action::PlaceOrder);
        edge.status = Some(400);
        edge.problem = Some(problem.into());
        edge.order = None;
        let right = check(&snapshot, &history);
        assert!(right.iter().all(|v| v.invariant != CONTRACT), "{action:?} answered {problem}: {right:#?}");
        let edge = an_event(&mut history, action, Action::PlaceOrder);
        edge.problem = Some(wrong.into());
        assert_caught_saying(&check(&snapshot, &history), CONTRACT, saying);
        let edge = an_event(&mut history, action, Action::PlaceOrder);
        edge.status = Some(201);
        edge.problem = None;
        assert_caught_saying(&check(&snapshot, &history), CONTRACT, "not an answer the contract allows");
    }
}

#[test]
fn contract_catches_key_reused_for_a_key_used_with_this_very_body() {
    let (mut history, snapshot) = parts();
    let placed = history.iter_mut().find(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    placed.status = Some(422);
    placed.problem = Some(ProblemType::IdempotencyKeyReused.into());
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "422 to a key used with this very body");
}

#[test]
fn contract_catches_a_reused_deposit_key_applied_with_another_amount() {
    let (mut history, snapshot) = parts();
    let reused = an_event(&mut history, Action::ReuseDepositKey, Action::Deposit);
    reused.status = Some(200);
    reused.problem = None;
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "not an answer the contract allows");
}

#[test]
fn contract_catches_a_similar_order_at_once_named_as_another_users() {
    let (mut history, mut snapshot) = parts();
    let index = history.iter().position(|e| e.action == Action::PlaceOrder && e.status == Some(201)).unwrap();
    let mut twin = history[index].clone();
    twin.status = Some(409);
    twin.problem = Some(ProblemType::DuplicateOrder.into());
    twin.key = Some(format!("{}-twin", twin.key.as_deref().unwrap()));
    twin.at_once = true;
    history[index].at_once = true;
    history.push(twin);
    // The order service counted the answer it gave (check 15 holds the figures to the answers).
    *snapshot.figures.as_mut().unwrap().idempotency.get_mut("duplicate").unwrap() += 1;
    // The clean answer names the shopper's own similar order.
    assert!(check(&snapshot, &history).is_empty(), "{:#?}", check(&snapshot, &history));
    let named = history[index].order_id.unwrap();
    let other =
        snapshot.orders.iter().map(|o| o.user_id).find(|u| *u != history[index].order.as_ref().unwrap().user_id);
    snapshot.orders.iter_mut().find(|o| o.id == named).unwrap().user_id = other.unwrap();
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "of other items or another user");
}

#[test]
fn access_catches_an_internal_route_reached_through_the_gateway() {
    let (mut history, snapshot) = parts();
    let internal = an_event(&mut history, Action::Internal, Action::Anonymous);
    internal.status = Some(200);
    internal.problem = None;
    let violations = check(&snapshot, &history);
    assert_caught(&violations, 10);
    assert_caught(&violations, CONTRACT);
}

#[test]
fn access_catches_a_forged_cookie_accepted() {
    let (mut history, snapshot) = parts();
    let forged = an_event(&mut history, Action::Forged, Action::Anonymous);
    forged.status = Some(200);
    forged.problem = None;
    let violations = check(&snapshot, &history);
    assert_caught(&violations, 10);
    assert_caught(&violations, CONTRACT);
}

#[test]
fn access_catches_another_users_order_in_ones_transactions_or_notifications() {
    for action in [Action::ReadTransactions, Action::ReadNotifications] {
        let (mut history, snapshot) = parts();
        let read = an_event(&mut history, action, Action::ListOrders);
        let shopper = read.shopper;
        read.status = Some(200);
        read.malformed = None;
        let mine = snapshot.users.get(&format!("shopper{shopper}@example.com")).copied();
        let foreign = snapshot.orders.iter().find(|o| Some(o.user_id) != mine).expect("another user's order").id;
        read.listed = Some(vec![foreign]);
        assert_caught(&check(&snapshot, &history), 10);
    }
}

/// The clean plan with `host`'s clock moved by `skew_ms` from the start.
fn skewed(host: ServiceName, skew_ms: i64) -> Plan {
    let mut plan = clean().plan.clone();
    plan.faults.push(Planned { at_ms: 0, fault: Fault::Skew { host, skew_ms } });
    plan
}

fn contract_violations_naming(violations: &[Violation], saying: &str) -> usize {
    violations.iter().filter(|v| v.invariant == CONTRACT && v.evidence.contains(saying)).count()
}

/// The first answer of a session `session` of the clean run to `action`, in the safety phase.
fn answered_under(history: &[Event], action: Action, session: Option<u32>) -> usize {
    history
        .iter()
        .position(|e| {
            e.action == action
                && e.session.is_some()
                && (session.is_none() || e.session == session)
                && e.at_ms < clean().plan.safety_ms
                && e.status.is_some()
        })
        .unwrap_or_else(|| panic!("the clean run has no {action:?} under session {session:?}"))
}

#[test]
fn contract_catches_a_live_session_refused() {
    let (mut history, snapshot) = parts();
    let index = answered_under(&history, Action::ListOrders, None);
    history[index].status = Some(401);
    history[index].listed = None;
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "401 with a live session");
}

#[test]
fn contract_accepts_a_401_exactly_when_the_plans_skews_put_the_service_past_the_gateways_tokens() {
    let (mut history, snapshot) = parts();
    let index = answered_under(&history, Action::ListOrders, None);
    history[index].status = Some(401);
    history[index].listed = None;
    let saying = "401 with a live session";
    // The order service 400 s ahead of the gateway: past the 60 s lifetime and 300 s leeway.
    let far = final_checks(&snapshot, &history, &skewed(ServiceName::Gateway, -400_000));
    assert_eq!(contract_violations_naming(&far, saying), 0, "{far:#?}");
    let far = final_checks(&snapshot, &history, &skewed(ServiceName::Order, 400_000));
    assert_eq!(contract_violations_naming(&far, saying), 0, "{far:#?}");
    // 200 s ahead (within the leeway), or 400 s behind (a verifier behind needs none): wrong.
    for plan in [
        skewed(ServiceName::Gateway, -200_000),
        skewed(ServiceName::Order, -400_000),
        skewed(ServiceName::Billing, 400_000),
    ] {
        assert_caught_saying(&final_checks(&snapshot, &history, &plan), CONTRACT, saying);
    }
}

#[test]
fn contract_accepts_a_401_to_an_order_in_flight_only_once_its_session_was_logged_out() {
    let (mut history, snapshot) = parts();
    // An order placed under a second session, which the shopper then logged out.
    let logout = history.iter().position(|e| e.action == Action::Logout && e.status == Some(204)).unwrap();
    let (shopper, session) = (history[logout].shopper, history[logout].session);
    let placed = history
        .iter()
        .position(|e| e.shopper == shopper && e.session == session && e.action == Action::PlaceOrder)
        .expect("an order under the logged-out session");
    history[placed].status = Some(401);
    history[placed].problem = Some(ProblemType::Unauthorized.into());
    // Answered before the logout was sent: the session was live.
    assert!(history[placed].at_ms < history[logout].sent_ms);
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "401 with a live session");
    // The logout sent while the order was in flight: the gateway may have seen it gone.
    history[logout].sent_ms = history[placed].at_ms - 1;
    let violations = check(&snapshot, &history);
    assert_eq!(contract_violations_naming(&violations, "401 with a live session"), 0, "{violations:#?}");
}

#[test]
fn contract_catches_a_logged_out_cookie_accepted() {
    let (mut history, snapshot) = parts();
    let index = history.iter().position(|e| e.action == Action::LoggedOut).expect("a logged-out call");
    history[index].status = Some(200);
    history[index].problem = None;
    let violations = check(&snapshot, &history);
    assert_caught(&violations, 10);
    assert_caught_saying(&violations, CONTRACT, "not an answer the contract allows");
}

#[test]
fn contract_catches_a_live_sessions_logout_refused() {
    let (mut history, snapshot) = parts();
    let index = history.iter().position(|e| e.action == Action::Logout && e.status == Some(204)).unwrap();
    history[index].status = Some(401);
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "a live session's logout refused");
}

#[test]
fn contract_catches_a_list_leaving_out_an_order_placed_under_the_other_session() {
    let (mut history, snapshot) = parts();
    // The list under the first session after an order placed under the second.
    let logout = history.iter().position(|e| e.action == Action::Logout && e.status == Some(204)).unwrap();
    let (shopper, second) = (history[logout].shopper, history[logout].session);
    let placed = history
        .iter()
        .find(|e| e.shopper == shopper && e.session == second && e.action == Action::PlaceOrder && e.order_id.is_some())
        .and_then(|e| e.order_id)
        .unwrap();
    let list = history
        .iter()
        .position(|e| {
            e.shopper == shopper
                && e.action == Action::ListOrders
                && e.session != second
                && e.sent_ms > history[logout].at_ms
        })
        .expect("a list under the first session");
    assert!(history[list].listed.as_ref().unwrap().contains(&placed));
    assert!(check(&snapshot, &history).is_empty());
    history[list].listed.as_mut().unwrap().retain(|id| *id != placed);
    assert_caught_saying(&check(&snapshot, &history), CONTRACT, "leaves out order");
}

#[test]
fn justified_outcomes_accept_a_rejected_401_only_under_a_skew_past_the_token_limit() {
    let (history, mut snapshot) = parts();
    let rejected = "REJECTED_401";
    let order = fail_cleanly(&mut snapshot, rejected);
    let subject = format!("order {order}");
    let unjustified = |violations: Vec<Violation>| {
        violations.iter().any(|v| v.invariant == JUSTIFIED_OUTCOMES && v.subject == subject)
    };
    // No step of the saga says it was rejected.
    assert!(unjustified(final_checks(&snapshot, &history, &skewed(ServiceName::Billing, 400_000))));
    let withdraw = Some(Step::Withdraw);
    let mut entry = snapshot.saga_log.iter().find(|e| e.order_id == order && e.step == withdraw).unwrap().clone();
    (entry.phase, entry.event, entry.detail) = (Phase::Action, LogEvent::Rejected, rejected.into());
    snapshot.saga_log.push(entry);
    // Billing 400 s ahead of the order service: its tokens are past the lifetime and leeway.
    assert!(!unjustified(final_checks(&snapshot, &history, &skewed(ServiceName::Billing, 400_000))));
    // No skew, one within the leeway, billing behind, or another participant ahead: wrong.
    for plan in [
        clean().plan.clone(),
        skewed(ServiceName::Billing, 200_000),
        skewed(ServiceName::Billing, -400_000),
        skewed(ServiceName::Delivery, 400_000),
    ] {
        assert!(unjustified(final_checks(&snapshot, &history, &plan)), "{plan:?}");
    }
}

/// The clean run's last 200 answer of `action` (a listing) holding an entry, by index.
fn last_listing(history: &[Event], action: Action) -> usize {
    history
        .iter()
        .rposition(|e| e.action == action && e.status == Some(200) && e.entries.as_ref().is_some_and(|l| !l.is_empty()))
        .unwrap_or_else(|| panic!("a {action:?} answer listing something"))
}

#[test]
fn listings_catch_a_committed_row_left_out() {
    for action in [Action::ListOrders, Action::ReadTransactions, Action::ReadNotifications] {
        let (mut history, snapshot) = parts();
        let list = last_listing(&history, action);
        history[list].entries.as_mut().unwrap().pop();
        assert_caught_saying(&check(&snapshot, &history), LISTINGS, "leaves out");
    }
}

#[test]
fn listings_accept_a_row_committed_after_the_request_was_sent_left_out() {
    let (mut history, snapshot) = parts();
    let plan = &clean().plan;
    let list = last_listing(&history, Action::ReadTransactions);
    // The newest line listed, as if it were committed just as the request went out.
    let newest = history[list].entries.as_ref().unwrap()[0].id();
    let line = snapshot.ledger.iter().find(|l| l.id.uuid() == newest).unwrap();
    history[list].sent_ms = latest_written_ms(plan, ServiceName::Billing, line.created_at);
    history[list].entries.as_mut().unwrap().remove(0);
    assert!(check(&snapshot, &history).is_empty(), "{:#?}", check(&snapshot, &history));
    // A millisecond later it was committed before the request: left out, it is caught.
    history[list].sent_ms += 1;
    assert_caught_saying(&check(&snapshot, &history), LISTINGS, "leaves out");
}

#[test]
fn listings_catch_an_entry_that_does_not_exist() {
    for action in [Action::ListOrders, Action::ReadTransactions, Action::ReadNotifications] {
        let (mut history, snapshot) = parts();
        let list = last_listing(&history, action);
        let entry = &mut history[list].entries.as_mut().unwrap()[0];
        match entry {
            Listed::Order { id, .. } => *id = OrderId::from_u128(7),
            Listed::Transaction { id, .. } => *id = TransactionId::from_u128(7),
            Listed::Notification { id, .. } => *id = NotificationId::from_u128(7),
        }
        assert_caught_saying(&check(&snapshot, &history), LISTINGS, "no such row exists");
    }
}

#[test]
fn listings_catch_another_users_transaction() {
    let (mut history, snapshot) = parts();
    let list = last_listing(&history, Action::ReadTransactions);
    let own = history[list].entries.as_ref().unwrap().iter().map(Listed::id).collect::<Vec<_>>();
    let own_account = snapshot.ledger.iter().find(|l| l.id.uuid() == own[0]).unwrap().account_id;
    let other = snapshot.ledger.iter().find(|l| l.account_id != own_account).expect("another user's line");
    // Exactly as the other user's row says it, so only its owner is wrong.
    history[list].entries.as_mut().unwrap().push(Listed::Transaction {
        id: other.id,
        kind: other.kind,
        amount_cents: other.amount_cents,
        order_id: other.order_id,
    });
    assert_caught_saying(&check(&snapshot, &history), LISTINGS, "not of user");
}

#[test]
fn listings_catch_a_transaction_with_a_wrong_amount() {
    let (mut history, snapshot) = parts();
    let list = last_listing(&history, Action::ReadTransactions);
    if let Listed::Transaction { amount_cents, .. } = &mut history[list].entries.as_mut().unwrap()[0] {
        *amount_cents += 1;
    }
    assert_caught_saying(&check(&snapshot, &history), LISTINGS, "the row says");
}

#[test]
fn listings_catch_a_notification_of_another_order() {
    let (mut history, snapshot) = parts();
    let list = last_listing(&history, Action::ReadNotifications);
    if let Listed::Notification { order_id, .. } = &mut history[list].entries.as_mut().unwrap()[0] {
        *order_id = OrderId::from_u128(7);
    }
    assert_caught_saying(&check(&snapshot, &history), LISTINGS, "the row says");
}

#[test]
fn listings_catch_an_entry_listed_twice() {
    let (mut history, snapshot) = parts();
    let list = last_listing(&history, Action::ListOrders);
    let entries = history[list].entries.as_mut().unwrap();
    entries.push(entries[0].clone());
    assert_caught_saying(&check(&snapshot, &history), LISTINGS, "listed twice");
}

#[test]
fn a_row_written_under_a_skew_is_placed_by_the_skews_that_could_be_in_effect() {
    let plan = skewed(ServiceName::Billing, 3_000);
    let safety = plan.safety_ms as i64;
    assert!(safety > 4_000, "the clean plan's safety phase is {safety} ms");
    let at = |ms: i64| sim::cluster::epoch() + chrono::TimeDelta::milliseconds(ms);
    // Billing's clock read 1 s before the heal while it ran 3 s ahead: written 4 s before it.
    assert_eq!(latest_written_ms(&plan, ServiceName::Billing, at(safety - 1_000)), (safety - 4_000) as u64);
    // A reading both the skewed clock and the true one after the heal can give: the later,
    // and the earlier of the two bounds is the skewed one.
    assert_eq!(latest_written_ms(&plan, ServiceName::Billing, at(safety + 1_000)), (safety + 1_000) as u64);
    assert_eq!(
        sim_ms_bounds(&plan, ServiceName::Billing, at(safety + 1_000)),
        ((safety - 2_000) as u64, (safety + 1_000) as u64)
    );
    // A clock set back past the epoch early in the run: its readings fall before the epoch.
    let behind = skewed(ServiceName::Billing, -20_000);
    assert_eq!(latest_written_ms(&behind, ServiceName::Billing, at(1_500 - 20_000)), 1_500);
    assert_eq!(sim_ms_bounds(&behind, ServiceName::Billing, at(1_500 - 20_000)), (1_500, 1_500));
    // Without the skew, the clock's reading is the time.
    assert_eq!(latest_written_ms(&clean().plan, ServiceName::Billing, at(safety - 1_000)), (safety - 1_000) as u64);
}

/// A notification carries its fact's own time, exactly: not none (the outbox forgot to
/// stamp it, and the listing falls back to when the notification service stored it), and
/// not a moment later.
#[test]
fn notifications_catch_an_event_without_its_facts_time() {
    let (history, snapshot) = parts();
    assert!(check(&snapshot, &history).is_empty());
    let stamped = snapshot.notifications.iter().position(|n| n.occurred_at.is_some()).expect("a stamped notification");
    let mut unstamped = snapshot.clone();
    unstamped.notifications[stamped].occurred_at = None;
    assert_caught_saying(&check(&unstamped, &history), 8, "not its fact's");
    let mut later = snapshot.clone();
    let at = later.notifications[stamped].occurred_at.as_mut().unwrap();
    *at += chrono::TimeDelta::milliseconds(1);
    assert_caught_saying(&check(&later, &history), 8, "not its fact's");
}

/// The participants' records agree with the saga: a confirmed order's step left refused at
/// its participant, a failed order's left applied, or a step whose cancel was acknowledged
/// left refused, is caught.
#[test]
fn saga_atomicity_catches_a_participant_record_that_disagrees_with_the_saga() {
    let (history, snapshot) = parts();
    let index = confirmed(&snapshot);
    let order = snapshot.orders[index].id;
    let set = |snapshot: &mut Snapshot, participant: Participant, state: OperationState| {
        snapshot.operations.get_mut(&participant).unwrap().get_mut(&order).unwrap().state = state;
    };
    let mut refused = snapshot.clone();
    set(&mut refused, Participant::Warehouse, OperationState::Refused);
    assert_caught_saying(&check(&refused, &history), 1, "warehouse's record of its reserve is Some(\"REFUSED\")");
    let mut failed = snapshot.clone();
    failed.orders[index].status = OrderStatus::Failed;
    assert_caught_saying(
        &final_checks(&failed, &history, &clean().plan),
        1,
        "billing's record of its withdraw is Some(\"APPLIED\")",
    );
    let mut cancelled = snapshot.clone();
    cancelled.orders[index].status = OrderStatus::Failed;
    for participant in Participant::ALL {
        set(&mut cancelled, participant, OperationState::Undone);
    }
    let at = cancelled.saga_log.iter().find(|e| e.order_id == order).unwrap().clone();
    cancelled.saga_log.push(sim::snapshot::SagaRow {
        step: Some(Step::Book),
        phase: Phase::Compensation,
        event: LogEvent::Acknowledged,
        detail: String::new(),
        ..at
    });
    let quiet = |s: &Snapshot| {
        final_checks(s, &history, &clean().plan)
            .into_iter()
            .filter(|v| v.invariant == 1 && v.evidence.contains("record"))
            .count()
    };
    assert_eq!(quiet(&cancelled), 0);
    set(&mut cancelled, Participant::Delivery, OperationState::Refused);
    assert_caught_saying(&check(&cancelled, &history), 1, "though it acknowledged the cancel");
}

/// The levels' checks while the simulation runs skip a reading only when no levels
/// database committed since the last one: a slot overbooked by a commit in between is
/// caught at the next reading, and a reading with no commit before it finds nothing new.
#[test]
fn the_levels_watch_reads_again_after_every_commit_and_catches_an_overbooking() {
    let scenario = load_named("happy-path").unwrap();
    let cluster = sim::cluster::prepare(&scenario);
    let mut watch = sim::run::LevelsWatch::default();
    assert_eq!(watch.check(&cluster), Vec::new(), "fresh databases hold sane levels");
    assert_eq!(watch.check(&cluster), Vec::new());
    assert_eq!((watch.readings, watch.skipped), (1, 1), "nothing committed: the second reading is skipped");
    let delivery = &cluster.dbs[&ServiceName::Delivery];
    // The schema's CHECK would refuse it: switched off for this one write, as if the
    // database were one without it.
    delivery
        .write_blocking(|c| {
            c.pragma_update(None, "ignore_check_constraints", true)?;
            let overbooked = c.execute(
                "UPDATE delivery_slots SET booked = capacity + 1 WHERE slot = (SELECT MIN(slot) FROM delivery_slots)",
                [],
            );
            c.pragma_update(None, "ignore_check_constraints", false)?;
            overbooked
        })
        .map(|rows| assert_eq!(rows, 1, "one slot overbooked"))
        .unwrap();
    assert_caught(&watch.check(&cluster), 4);
    assert_eq!(watch.readings, 2);
    // A write that is rolled back commits nothing: no new reading.
    let refused: Result<(), rusqlite::Error> = delivery.write_blocking(|_| Err(rusqlite::Error::InvalidQuery));
    assert!(refused.is_err());
    assert_eq!(watch.check(&cluster), Vec::new());
    assert_eq!((watch.readings, watch.skipped), (2, 2));
}
