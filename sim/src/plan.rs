//! The plan: everything the seed decides before the run starts — each shopper's deposit and
//! orders with their think times, and the faults with their times — as data that can be
//! written to a file, edited, replayed and shrunk. A seed's run *is* the replay of its plan.

use crate::faults::{plan as fault_plan, Planned};
use crate::scenario::{Scenario, ScenarioError};
use crate::seed::Draw;
use contracts::ProductId;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub scenario: String,
    /// Still seeds what a plan leaves open: ids, turmoil's latencies, shoppers' backoffs.
    pub seed: u64,
    /// The planted bug this plan was found with, if any.
    #[serde(default)]
    pub bug: Option<String>,
    pub safety_ms: u64,
    pub liveness_ms: u64,
    pub shoppers: Vec<ShopperPlan>,
    pub faults: Vec<Planned>,
    /// The scenario's `lost_answer_per_mille`, through the safety phase.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_answer_per_mille: u32,
    /// The scenario's `start`: simulated time 0 on every clock (left out when it is the
    /// default epoch, so older plans and digests read the same).
    #[serde(default = "crate::cluster::epoch", skip_serializing_if = "crate::cluster::is_epoch")]
    pub start: contracts::Timestamp,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ShopperPlan {
    pub index: u32,
    /// Whole currency units; 0 deposits nothing.
    pub deposit: u64,
    pub orders: Vec<PlannedOrder>,
    /// After the deposit, repeat its key with another amount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reuse_deposit_key: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlannedOrder {
    /// Pause before this order (and its side trips).
    pub think_ms: u64,
    pub items: Vec<PlannedItem>,
    /// Hours after the epoch.
    pub slot_hour: u32,
    /// The key sent twice at once.
    #[serde(default)]
    pub double_submit: bool,
    /// First read another shopper's order.
    #[serde(default)]
    pub peek: bool,
    /// First call without a session.
    #[serde(default)]
    pub anonymous: bool,
    /// The shopper stops waiting for the answer after this long and drops the connection,
    /// while the saga may still run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandon_after_ms: Option<u64>,
    /// After giving up, the shopper repeats the key this much later (from
    /// [`LATE_RETRY_MS`] on: after the other orders, once the cluster is healed); never
    /// if `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// After the order's answer, repeat its key with another body.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reuse_key: bool,
    /// Send the order under two keys at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub similar_at_once: bool,
    /// First try an internal route through the gateway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// First call with a forged session cookie.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forged: bool,
    /// First read the shopper's own transactions and notifications.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snoop: bool,
    /// A deposit sent at the same moment as the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racing_deposit: Option<RacingDeposit>,
    /// First log in a second time and place the order under the new session (the first
    /// keeps working); then log the new session out, try its cookie on the `/api` routes
    /// (401) and go on under the first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub second_session: bool,
    /// Log out this long after sending the order, on a second connection, while its answer
    /// may still be awaited; then try the old cookie on the `/api` routes (401), log in
    /// again and see the order (the saga is not tied to the session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_after_ms: Option<u64>,
    /// The order's `Idempotency-Key` is a string every shopper uses for its order of this
    /// number (keys are scoped per user: each gets its own order).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_key: bool,
    /// First send bodies at each limit of the contract ([`Limit::AT`]) and just past each
    /// ([`Limit::AT`] and [`Limit::PAST_ONLY`]): every limit on one trip, so that a sweep of a few seeds sees them all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edge_bodies: bool,
}

/// A limit the order service checks on an order's body before asking any other service,
/// as docs/API.md states it ("Create order").
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// 1 line (at) or none (past).
    NoLines,
    /// 50 lines (at) or 51 (past).
    Lines,
    /// A line of 1000 units (at) or 1001 (past).
    Quantity,
    /// Two lines of one product adding up to 1000 units (at) or 1001 (past).
    MergedQuantity,
    /// An address of 500 characters (at) or 501 (past), each two bytes in UTF-8.
    Address,
    /// A description of 1000 characters (at) or 1001 (past), each two bytes in UTF-8.
    Description,
    /// A slot starting on the hour (at) or half past it (past).
    Slot,
    /// A slot starting 30 seconds past the hour (past; at, it is [`Limit::Slot`]'s).
    SlotSeconds,
    /// A slot starting half a second past the hour (past; at, it is [`Limit::Slot`]'s).
    SlotFraction,
}

impl Limit {
    /// The limits sent at the limit: each a different body.
    pub const AT: [Limit; 7] = [
        Limit::NoLines,
        Limit::Lines,
        Limit::Quantity,
        Limit::MergedQuantity,
        Limit::Address,
        Limit::Description,
        Limit::Slot,
    ];
    /// The limits sent only just past the limit (besides [`Limit::AT`]): the slot off in
    /// each of its other parts.
    pub const PAST_ONLY: [Limit; 2] = [Limit::SlotSeconds, Limit::SlotFraction];
}

/// A deposit racing an order: whole currency units, with an `Idempotency-Key` (retried
/// under it until acknowledged) or without one (sent once).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RacingDeposit {
    pub amount: u64,
    pub keyed: bool,
}

/// A retry of an abandoned key this long after giving up, or longer, is a late one.
pub const LATE_RETRY_MS: u64 = 5_000;

impl PlannedOrder {
    /// An order with every workload behaviour off: the plan's base for a fresh order, and
    /// what the shrinker turns an order into.
    pub fn plain(think_ms: u64, items: Vec<PlannedItem>, slot_hour: u32) -> PlannedOrder {
        PlannedOrder {
            think_ms,
            items,
            slot_hour,
            double_submit: false,
            peek: false,
            anonymous: false,
            abandon_after_ms: None,
            retry_after_ms: None,
            reuse_key: false,
            similar_at_once: false,
            internal: false,
            forged: false,
            snoop: false,
            racing_deposit: None,
            second_session: false,
            logout_after_ms: None,
            shared_key: false,
            edge_bodies: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlannedItem {
    pub product: ProductId,
    pub quantity: i64,
}

fn draw_items(draw: &mut Draw) -> Vec<PlannedItem> {
    let mut items: Vec<PlannedItem> = Vec::new();
    for _ in 0..draw.range(1, 2) {
        let product = draw.pick(&warehouse::DEMO_CATALOG).id;
        let quantity = draw.range(1, 3) as i64;
        if !items.iter().any(|i| i.product == product) {
            items.push(PlannedItem { product, quantity });
        }
    }
    items
}

fn shopper_plan(scenario: &Scenario, seed: u64, index: u32) -> ShopperPlan {
    let mut draw = Draw::new(seed, &format!("plan/shopper/{index}"));
    let deposit = draw.range(0, scenario.deposit_max);
    let spread_ms = scenario.safety_ms / u64::from(scenario.orders_per_shopper.max(1));
    let mut orders: Vec<PlannedOrder> = Vec::new();
    for _ in 0..scenario.orders_per_shopper {
        let think_ms = draw.range(0, spread_ms);
        let peek = draw.chance(scenario.mix.peek);
        let anonymous = draw.chance(scenario.mix.anonymous);
        let similar = !orders.is_empty() && draw.chance(scenario.mix.similar);
        let items = draw_items(&mut draw);
        let slot_hour = draw.range(1, u64::from(scenario.slot_choices)) as u32;
        let fresh = PlannedOrder {
            double_submit: draw.chance(scenario.mix.double_submit),
            peek,
            anonymous,
            ..PlannedOrder::plain(think_ms, items, slot_hour)
        };
        // A similar order: the previous order's items and slot under a new key.
        let order = match orders.last().filter(|_| similar) {
            Some(previous) => PlannedOrder { items: previous.items.clone(), slot_hour: previous.slot_hour, ..fresh },
            None => fresh,
        };
        orders.push(order);
    }
    draw_abandons(scenario, seed, index, &mut orders);
    let reuse_deposit_key = draw_adversary(scenario, seed, index, &mut orders);
    draw_sessions(scenario, seed, index, &mut orders);
    draw_edge_bodies(scenario, seed, index, &mut orders);
    ShopperPlan { index, deposit, orders, reuse_deposit_key }
}

/// The adversarial behaviours (issue 10's workload): drawn from a stream of their own, so
/// scenarios without these knobs keep their plans. Returns whether the shopper repeats its
/// deposit's key with another amount.
fn draw_adversary(scenario: &Scenario, seed: u64, index: u32, orders: &mut [PlannedOrder]) -> bool {
    let mix = &scenario.mix;
    let mut draw = Draw::new(seed, &format!("plan/shopper/{index}/adversary"));
    let reuse_deposit_key = draw.chance(mix.reuse_deposit_key);
    for order in orders.iter_mut() {
        let reuse_key = draw.chance(mix.reuse_key);
        let similar_at_once = draw.chance(mix.similar_at_once);
        order.internal = draw.chance(mix.internal);
        order.forged = draw.chance(mix.forged);
        order.snoop = draw.chance(mix.snoop);
        let racing = draw.chance(mix.racing_deposit);
        let amount = draw.range(1, (scenario.deposit_max / 2).max(1));
        let keyed = draw.chance(500);
        order.racing_deposit = racing.then_some(RacingDeposit { amount, keyed });
        // An abandoned key is repeated by its own rules; a double submit keeps one key.
        if order.abandon_after_ms.is_none() {
            order.reuse_key = reuse_key;
            order.similar_at_once = similar_at_once && !order.double_submit;
        }
    }
    reuse_deposit_key
}

/// Second sessions, logouts while an order is in flight, and keys shared by all shoppers:
/// drawn from a stream of their own, so scenarios without these knobs keep their plans.
fn draw_sessions(scenario: &Scenario, seed: u64, index: u32, orders: &mut [PlannedOrder]) {
    let mix = &scenario.mix;
    let mut draw = Draw::new(seed, &format!("plan/shopper/{index}/sessions"));
    for order in orders.iter_mut() {
        let second_session = draw.chance(mix.second_session);
        let logout = draw.chance(mix.logout_in_flight);
        // From before the order reaches the gateway to well after a saga's usual end.
        let logout_after_ms = draw.range(1, 120);
        order.shared_key = draw.chance(mix.shared_key);
        // A logout in flight is one attempt of one order, on its own session.
        let single = order.abandon_after_ms.is_none() && !order.double_submit && !order.similar_at_once;
        order.second_session = second_session;
        order.logout_after_ms = (logout && single && !second_session).then_some(logout_after_ms);
    }
}

/// Order bodies at and past the contract's limits: drawn from a stream of their own, so
/// scenarios without the knob keep their plans.
fn draw_edge_bodies(scenario: &Scenario, seed: u64, index: u32, orders: &mut [PlannedOrder]) {
    let mut draw = Draw::new(seed, &format!("plan/shopper/{index}/edge"));
    for order in orders.iter_mut() {
        order.edge_bodies = draw.chance(scenario.mix.edge_body);
    }
}

/// Which orders the shopper gives up waiting for, and when it repeats their keys. Drawn
/// from a stream of its own, so scenarios without abandons keep their plans.
fn draw_abandons(scenario: &Scenario, seed: u64, index: u32, orders: &mut [PlannedOrder]) {
    let mut draw = Draw::new(seed, &format!("plan/shopper/{index}/abandon"));
    for order in orders.iter_mut() {
        if !draw.chance(scenario.mix.abandon) {
            continue;
        }
        // Anywhere from before the order is recorded to well before the order service's
        // 5 s deadline answers 202.
        order.abandon_after_ms = Some(draw.range(20, 3_000));
        order.retry_after_ms = match draw.range(0, 9) {
            0..=2 => None,
            3..=5 => Some(draw.range(500, 3_000)),
            _ => Some(draw.range(LATE_RETRY_MS, 12_000)),
        };
        order.double_submit = false;
    }
    // At least one abandoned key is repeated late, so a key stuck "in progress" shows.
    let late = |o: &PlannedOrder| o.retry_after_ms.is_some_and(|r| r >= LATE_RETRY_MS);
    if !orders.iter().any(|o| o.abandon_after_ms.is_some() && late(o)) {
        if let Some(last) = orders.iter_mut().rev().find(|o| o.abandon_after_ms.is_some()) {
            last.retry_after_ms = Some(LATE_RETRY_MS);
        }
    }
}

/// The plan `seed` decides for `scenario`.
pub fn from_seed(scenario: &Scenario, seed: u64) -> Plan {
    Plan {
        scenario: scenario.name.clone(),
        seed,
        bug: None,
        safety_ms: scenario.safety_ms,
        liveness_ms: scenario.liveness_ms,
        shoppers: (0..scenario.shoppers).map(|index| shopper_plan(scenario, seed, index)).collect(),
        faults: fault_plan(scenario, seed),
        lost_answer_per_mille: scenario.lost_answer_per_mille,
        start: scenario.start,
    }
}

impl Plan {
    pub fn order_count(&self) -> usize {
        self.shoppers.iter().map(|s| s.orders.len()).sum()
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self).expect("plans serialize") + "\n")
    }

    pub fn read(path: &Path) -> Result<Plan, ScenarioError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| ScenarioError::Invalid { path: shown.clone(), detail: e.to_string() })?;
        crate::scenario::check_start(&plan.start).map_err(|detail| ScenarioError::Invalid { path: shown, detail })?;
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_survives_its_file() {
        let scenario = crate::scenario::load_named("swarm").unwrap();
        let plan = from_seed(&scenario, 42);
        let path = std::env::temp_dir().join(format!("plan-{}.json", std::process::id()));
        plan.write(&path).unwrap();
        assert_eq!(Plan::read(&path).unwrap(), plan);
        std::fs::remove_file(path).unwrap();
        assert_eq!(from_seed(&scenario, 42), plan, "one seed, one plan");
        assert_ne!(from_seed(&scenario, 43), plan);
    }

    /// An edited plan's `start` is held to a scenario's rule: a start the clocks cannot
    /// count from is refused when the plan is read, with the rule, never run.
    #[test]
    fn a_plan_whose_start_the_clocks_cannot_count_from_is_refused() {
        let plan = from_seed(&crate::scenario::load_named("happy-path").unwrap(), 1);
        let path = std::env::temp_dir().join(format!("plan-start-{}.json", std::process::id()));
        for (start, refused) in
            [("2026-06-01T12:00:00Z", false), ("2026-06-01T12:00:00.500Z", true), ("1969-12-31T23:59:59Z", true)]
        {
            let mut value = serde_json::to_value(&plan).unwrap();
            value["start"] = serde_json::json!(start);
            std::fs::write(&path, value.to_string()).unwrap();
            match Plan::read(&path) {
                Ok(read) => assert!(!refused, "{start} was read as {}", read.start),
                Err(error) => {
                    assert!(refused, "{start}: {error}");
                    assert!(error.to_string().contains("start must be a whole second"), "{start}: {error}");
                }
            }
        }
        std::fs::remove_file(path).unwrap();
    }
}
