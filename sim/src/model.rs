//! The reference model: what a correct store could have answered, reconstructed from the
//! plan and the snapshot. When was a fault touching a request or a saga; what was a user's
//! balance, a product's stock, a slot's bookings when a participant decided. Times written
//! by a service are on its own (possibly skewed) clock, so every reconstruction allows a
//! tolerance: a decision is called unjustified only when no ordering of the rows within the
//! tolerance could justify it.

use crate::faults::Fault;
use crate::plan::Plan;
use crate::run::skew_ms;
use crate::snapshot::{Participant, Snapshot};
use contracts::{OrderId, ProductId, ServiceName, Timestamp, UserId};
use platform::auth::{CLOCK_LEEWAY_S, TOKEN_TTL_S};

/// How long a fault's effects may outlast it: a call decided during the fault and answered
/// just after, a restarted service opening its listener.
pub const FAULT_AFTERMATH_MS: u64 = 1_000;

/// The label of a duplicate fault's window.
pub const DUPLICATES: &str = "duplicates";

/// One fault's reach on the simulation's time line: `[begin_ms, end_ms)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub begin_ms: u64,
    pub end_ms: u64,
    pub label: String,
}

/// Every fault of the plan, with its aftermath; nothing outlasts the heal. Answers lost on
/// reused connections (`Plan::lost_answer_per_mille`) are one fault over the whole safety
/// phase.
pub fn fault_windows(plan: &Plan) -> Vec<Window> {
    let lost_answers = (plan.lost_answer_per_mille > 0).then(|| Window {
        begin_ms: 0,
        end_ms: plan.safety_ms + FAULT_AFTERMATH_MS,
        label: format!("lost answers {}/1000", plan.lost_answer_per_mille),
    });
    plan.faults
        .iter()
        .filter(|p| p.at_ms < plan.safety_ms)
        .map(|p| {
            let (duration_ms, label) = match &p.fault {
                Fault::Partition { a, b, duration_ms } => (*duration_ms, format!("partition {a}~{b}")),
                Fault::PartitionOneWay { from, to, duration_ms } => (*duration_ms, format!("partition {from}->{to}")),
                Fault::Isolate { host, duration_ms } => (*duration_ms, format!("isolate {host}")),
                Fault::Hold { a, b, duration_ms } => (*duration_ms, format!("hold {a}~{b}")),
                // Every saga call through the host is held, like an isolation.
                Fault::Pause { host, duration_ms } => (*duration_ms, format!("pause {host}")),
                Fault::Crash { host, down_ms } => (*down_ms, format!("crash {host}")),
                Fault::Skew { host, skew_ms } => (plan.safety_ms, format!("skew {host} {skew_ms} ms")),
                Fault::Latency { max_ms, duration_ms } => (*duration_ms, format!("latency {max_ms} ms")),
                Fault::Duplicate { duration_ms, .. } => (*duration_ms, DUPLICATES.to_string()),
                // It may fire at the end of its window and keep the host down for `down_ms`.
                Fault::CrashPoint { point, host, armed_ms, down_ms, .. } => {
                    (armed_ms + down_ms, format!("crash-point {point} {host}"))
                }
                Fault::Storage { host, per_mille, duration_ms } => {
                    (*duration_ms, format!("storage {host} {per_mille}/1000"))
                }
            };
            let end_ms = (p.at_ms + duration_ms).min(plan.safety_ms) + FAULT_AFTERMATH_MS;
            Window { begin_ms: p.at_ms, end_ms, label }
        })
        .chain(lost_answers)
        .collect()
}

/// The faults whose reach overlaps `[begin_ms, end_ms]`.
pub fn faults_touching(windows: &[Window], begin_ms: u64, end_ms: u64) -> Vec<&str> {
    windows.iter().filter(|w| w.begin_ms <= end_ms && begin_ms < w.end_ms).map(|w| w.label.as_str()).collect()
}

/// The largest clock skew the plan gives `service`, in ms (0 without skew).
pub fn skew_bound_ms(plan: &Plan, service: ServiceName) -> i64 {
    plan.faults
        .iter()
        .filter_map(|p| match &p.fault {
            Fault::Skew { host, skew_ms } if *host == service => Some(skew_ms.abs()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// How far a verifier's clock may run ahead of the minter's before it refuses the minter's
/// tokens: the token lifetime plus the verifiers' leeway (`platform::auth`), less the second
/// that truncating both times to whole seconds may take off.
pub const TOKEN_LIMIT_MS: i64 = (TOKEN_TTL_S + CLOCK_LEEWAY_S - 1) * 1000;

/// The skews `service`'s clock has at some time within `[from_ms, to_ms]`, from the plan.
fn skews_within(plan: &Plan, service: ServiceName, from_ms: u64, to_ms: u64) -> Vec<i64> {
    let changes = plan.faults.iter().map(|p| p.at_ms).chain([plan.safety_ms]);
    let moments = std::iter::once(from_ms).chain(changes.filter(|t| from_ms < *t && *t <= to_ms));
    moments.map(|t| skew_ms(plan, service, t)).collect()
}

/// The furthest `verifier`'s clock may have run ahead of `minter`'s for a token minted and
/// verified within `[from_ms, to_ms]` (the time between the two counts too), by the plan's
/// skews.
pub fn clock_lead_ms(plan: &Plan, minter: ServiceName, verifier: ServiceName, from_ms: u64, to_ms: u64) -> i64 {
    let ahead = skews_within(plan, verifier, from_ms, to_ms).into_iter().max().unwrap_or(0);
    let behind = skews_within(plan, minter, from_ms, to_ms).into_iter().min().unwrap_or(0);
    ahead - behind + to_ms.saturating_sub(from_ms) as i64
}

/// Whether `verifier` may rightly have refused a token `minter` minted within
/// `[from_ms, to_ms]` as expired: the plan's skews put its clock more than the token's
/// lifetime and the leeway ahead.
pub fn token_refusable(plan: &Plan, minter: ServiceName, verifier: ServiceName, from_ms: u64, to_ms: u64) -> bool {
    clock_lead_ms(plan, minter, verifier, from_ms, to_ms) > TOKEN_LIMIT_MS
}

/// How far apart two rows of one service may be written yet carry times in the other
/// order: a millisecond's ties, plus twice the largest skew (a clock moved between them).
pub fn tolerance_ms(plan: &Plan, service: ServiceName) -> i64 {
    1 + 2 * skew_bound_ms(plan, service)
}

fn ms_between(a: Timestamp, b: Timestamp) -> i64 {
    (a - b).num_milliseconds()
}

/// Whether something at `at` was possibly before `t`, definitely before, or neither.
fn before(at: Timestamp, t: Timestamp, tolerance_ms: i64) -> (bool, bool) {
    let delta = ms_between(at, t);
    (delta <= tolerance_ms, delta < -tolerance_ms)
}

/// The lowest balance the user's account could have had when billing decided at `t`.
pub fn lowest_balance_at(snapshot: &Snapshot, user_id: UserId, t: Timestamp, tolerance_ms: i64) -> Option<i64> {
    let account = snapshot.account_of(user_id)?;
    let mut lowest = 0;
    for line in snapshot.ledger.iter().filter(|l| l.account_id == account.id) {
        let (maybe, surely) = before(line.created_at, t, tolerance_ms);
        let effect = line.effect_cents();
        if surely || (maybe && effect < 0) {
            lowest += effect;
        }
    }
    Some(lowest)
}

/// Whether the user had no account when billing decided at `t` (or may not have had).
pub fn maybe_no_account_at(snapshot: &Snapshot, user_id: UserId, t: Timestamp, tolerance_ms: i64) -> bool {
    snapshot.account_of(user_id).is_none_or(|a| !before(a.created_at, t, tolerance_ms).1)
}

/// When the participant undid the order's action, if it did.
fn undone_at(snapshot: &Snapshot, participant: Participant, order_id: OrderId) -> Option<Timestamp> {
    snapshot
        .operations
        .get(&participant)?
        .get(&order_id)
        .and_then(|op| (op.state == platform::operations::OperationState::Undone).then_some(op.updated_at))
}

/// Whether a hold made at `made` and released at `released` may have been live at `t`.
fn maybe_live(made: Timestamp, released: Option<Timestamp>, t: Timestamp, tolerance_ms: i64) -> bool {
    let made_before = before(made, t, tolerance_ms).0;
    let still_held = released.is_none_or(|r| ms_between(r, t) >= -tolerance_ms);
    made_before && still_held
}

/// The fewest units of `product` the warehouse could have had available at `t`, leaving
/// out `order_id`'s own reservation.
pub fn lowest_available_at(
    snapshot: &Snapshot,
    product: ProductId,
    order_id: OrderId,
    t: Timestamp,
    tolerance_ms: i64,
) -> i64 {
    let total = snapshot.stocks.iter().find(|s| s.product_id == product).map_or(0, |s| s.total);
    let held: i64 = snapshot
        .stock_reservations
        .iter()
        .filter(|r| r.product_id == product && r.order_id != order_id)
        .filter(|r| {
            let released = if r.held { None } else { undone_at(snapshot, Participant::Warehouse, r.order_id) };
            // A released row with no undo time cannot be placed: count it as live.
            maybe_live(r.created_at, released, t, tolerance_ms)
        })
        .map(|r| r.quantity)
        .sum();
    total - held
}

/// The most bookings `slot` could have had at `t`, leaving out `order_id`'s own.
pub fn most_booked_at(snapshot: &Snapshot, slot: Timestamp, order_id: OrderId, t: Timestamp, tolerance_ms: i64) -> i64 {
    snapshot
        .bookings
        .iter()
        .filter(|b| b.slot == slot && b.order_id != order_id)
        .filter(|b| {
            let cancelled = if b.held { None } else { undone_at(snapshot, Participant::Delivery, b.order_id) };
            maybe_live(b.created_at, cancelled, t, tolerance_ms)
        })
        .count() as i64
}

/// The start of the hour `time` falls in.
pub fn hour_of(time: Timestamp) -> Timestamp {
    use chrono::{DurationRound, TimeDelta};
    time.duration_trunc(TimeDelta::hours(1)).unwrap_or(time)
}
