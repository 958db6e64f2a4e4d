//! Shrinking: from a failing plan, a greedy search for a smaller plan that still violates
//! the same invariant — fewer faults, fewer shoppers, fewer orders, shorter faults, a
//! shorter safety phase — bounded in runs. Each accepted step restarts the search, so the
//! result is 1-minimal for the reductions tried (removing any one more thing passes).

use crate::faults::Fault;
use crate::plan::{Plan, PlannedOrder};
use crate::run::{run_plan, RunReport};
use crate::scenario::Scenario;

#[derive(Clone, Debug)]
pub struct Shrunk {
    pub original: Plan,
    pub minimal: Plan,
    /// The violation the minimal plan still shows.
    pub report: RunReport,
    pub invariant: u8,
    pub runs: u32,
}

/// Every plan one reduction smaller than `plan`, most promising first.
fn candidates(plan: &Plan) -> Vec<Plan> {
    let mut smaller = Vec::new();
    for index in 0..plan.faults.len() {
        let mut candidate = plan.clone();
        candidate.faults.remove(index);
        smaller.push(candidate);
    }
    for index in 0..plan.shoppers.len() {
        if plan.shoppers.len() > 1 {
            let mut candidate = plan.clone();
            candidate.shoppers.remove(index);
            smaller.push(candidate);
        }
    }
    for (shopper, shopper_plan) in plan.shoppers.iter().enumerate() {
        for order in 0..shopper_plan.orders.len() {
            let mut candidate = plan.clone();
            candidate.shoppers[shopper].orders.remove(order);
            smaller.push(candidate);
        }
    }
    // Plainer orders: no twin, no side trip, no pause.
    for (shopper, shopper_plan) in plan.shoppers.iter().enumerate() {
        for (index, order) in shopper_plan.orders.iter().enumerate() {
            let plain = PlannedOrder::plain(order.think_ms, order.items.clone(), order.slot_hour);
            let still = PlannedOrder { think_ms: 0, ..order.clone() };
            for simpler in [plain, still] {
                if &simpler != order {
                    let mut candidate = plan.clone();
                    candidate.shoppers[shopper].orders[index] = simpler;
                    smaller.push(candidate);
                }
            }
        }
    }
    for (index, planned) in plan.faults.iter().enumerate() {
        if let Some(shorter) = halved(&planned.fault) {
            let mut candidate = plan.clone();
            candidate.faults[index].fault = shorter;
            smaller.push(candidate);
        }
    }
    let last_event_ms = plan.faults.iter().map(|f| f.at_ms).max().unwrap_or(0);
    if plan.safety_ms / 2 > last_event_ms {
        smaller.push(Plan { safety_ms: plan.safety_ms / 2, ..plan.clone() });
    }
    smaller
}

/// The fault with half its duration, if that is still a meaningful fault.
fn halved(fault: &Fault) -> Option<Fault> {
    const SHORTEST_MS: u64 = 100;
    let half = |ms: u64| (ms / 2 >= SHORTEST_MS).then_some(ms / 2);
    Some(match fault.clone() {
        Fault::Partition { a, b, duration_ms } => Fault::Partition { a, b, duration_ms: half(duration_ms)? },
        Fault::PartitionOneWay { from, to, duration_ms } => {
            Fault::PartitionOneWay { from, to, duration_ms: half(duration_ms)? }
        }
        Fault::Isolate { host, duration_ms } => Fault::Isolate { host, duration_ms: half(duration_ms)? },
        Fault::Hold { a, b, duration_ms } => Fault::Hold { a, b, duration_ms: half(duration_ms)? },
        Fault::Pause { host, duration_ms } => Fault::Pause { host, duration_ms: half(duration_ms)? },
        Fault::Crash { host, down_ms } => Fault::Crash { host, down_ms: half(down_ms)? },
        Fault::Latency { max_ms, duration_ms } => Fault::Latency { max_ms, duration_ms: half(duration_ms)? },
        Fault::Duplicate { per_mille, duration_ms, delay_max_ms } => {
            Fault::Duplicate { per_mille, duration_ms: half(duration_ms)?, delay_max_ms }
        }
        Fault::CrashPoint { point, host, nth, armed_ms, down_ms } => {
            Fault::CrashPoint { point, host, nth, armed_ms, down_ms: half(down_ms)? }
        }
        Fault::Storage { host, per_mille, duration_ms } => {
            Fault::Storage { host, per_mille, duration_ms: half(duration_ms)? }
        }
        Fault::Skew { .. } => return None,
    })
}

/// Shrinks a failing `plan`, spending at most `runs_max` runs. `None` if it does not fail.
pub fn shrink(scenario: &Scenario, plan: &Plan, runs_max: u32) -> Option<Shrunk> {
    let first = run_plan(scenario, plan);
    let invariant = first.violations.first()?.invariant;
    let still_fails = |report: &RunReport| report.violations.iter().any(|v| v.invariant == invariant);
    let mut current = plan.clone();
    let mut report = first;
    let mut runs = 1;
    'search: while runs < runs_max {
        for candidate in candidates(&current) {
            if runs >= runs_max {
                break 'search;
            }
            runs += 1;
            let attempt = run_plan(scenario, &candidate);
            if still_fails(&attempt) {
                current = candidate;
                report = attempt;
                continue 'search;
            }
        }
        break;
    }
    Some(Shrunk { original: plan.clone(), minimal: current, report, invariant, runs })
}
