//! The fault plan: drawn from the seed (swarm-style unless the scenario pins the mix),
//! explicit, and expanded into a timeline of actions on the cluster.

use crate::scenario::{FaultKind, FaultMode, Scenario};
use crate::seed::Draw;
use serde::{Deserialize, Serialize};

pub const SERVICES: [&str; 6] = ["gateway", "order", "billing", "warehouse", "delivery", "notification"];

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Both directions between two services cut.
    Partition { a: String, b: String, duration_ms: u64 },
    /// Traffic from one service to another dropped, the other way works.
    PartitionOneWay { from: String, to: String, duration_ms: u64 },
    /// A service cut from every other host.
    Isolate { host: String, duration_ms: u64 },
    /// Traffic between two services held, then released all at once.
    Hold { a: String, b: String, duration_ms: u64 },
    /// A service crashed (uncommitted work lost), restarted after `down_ms`.
    Crash { host: String, down_ms: u64 },
    /// A service's wall clock moved by `skew_ms` until the end of the safety phase.
    Skew { host: String, skew_ms: i64 },
    /// Message latency up to `max_ms` for a while.
    Latency { max_ms: u64, duration_ms: u64 },
    /// Idempotent outbound requests of every service sent twice, per mille.
    Duplicate {
        per_mille: u32,
        duration_ms: u64,
        /// 0: each copy is sent at once; otherwise up to this late.
        #[serde(default)]
        delay_max_ms: u64,
    },
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::PartitionOneWay { .. } => FaultKind::PartitionOneWay,
            Fault::Isolate { .. } => FaultKind::Isolate,
            Fault::Hold { .. } => FaultKind::Hold,
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Skew { .. } => FaultKind::Skew,
            Fault::Latency { .. } => FaultKind::Latency,
            Fault::Duplicate { .. } => FaultKind::Duplicate,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Planned {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// What happens to the cluster at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Partition(String, String),
    Repair(String, String),
    PartitionOneWay(String, String),
    RepairOneWay(String, String),
    Hold(String, String),
    Release(String, String),
    Crash(String),
    Restart(String),
    Skew(String, i64),
    Latency(u64),
    /// Per mille duplicated, and how late a copy may go.
    Duplicates(u32, u64),
}

/// The run's faults, in time order.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<Planned> {
    let mut draw = Draw::new(seed, "faults");
    let targets: Vec<String> = if scenario.faults.targets.is_empty() {
        SERVICES.iter().map(|s| s.to_string()).collect()
    } else {
        scenario.faults.targets.clone()
    };
    let mut planned = Vec::new();
    for kind in FaultKind::ALL {
        let listed = scenario.faults.kinds.contains(&kind);
        // Every kind draws its switch, so the plan of one kind never depends on another's.
        let switched_on = draw.chance(500);
        let enabled = match scenario.faults.mode {
            FaultMode::None => false,
            FaultMode::Pinned => listed,
            FaultMode::Swarm => listed && switched_on,
        };
        let count = draw.range(1, scenario.faults.events_max.max(1));
        let mut kind_draw = Draw::new(seed, &format!("faults/{}", kind.name()));
        if !enabled {
            continue;
        }
        for _ in 0..count {
            let at_ms = kind_draw.range(0, scenario.safety_ms.saturating_sub(1));
            let fault = draw_fault(kind, &mut kind_draw, &targets, scenario.faults.duration_max_ms);
            planned.push(Planned { at_ms, fault });
        }
    }
    planned.sort_by_key(|p| p.at_ms);
    planned
}

/// The pairs of services that talk to each other: faults between any other pair would
/// change nothing.
pub const LINKS: [(&str, &str); 10] = [
    ("gateway", "order"),
    ("gateway", "billing"),
    ("gateway", "warehouse"),
    ("gateway", "delivery"),
    ("gateway", "notification"),
    ("order", "billing"),
    ("order", "warehouse"),
    ("order", "delivery"),
    ("billing", "notification"),
    ("order", "notification"),
];

/// A link with at least one end among `targets`, in a random direction.
fn two_services(draw: &mut Draw, targets: &[String]) -> (String, String) {
    let links: Vec<(&str, &str)> =
        LINKS.iter().copied().filter(|(a, b)| targets.iter().any(|t| t == a || t == b)).collect();
    let (a, b) = if links.is_empty() { LINKS[0] } else { *draw.pick(&links) };
    if draw.chance(500) {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

fn draw_fault(kind: FaultKind, draw: &mut Draw, targets: &[String], duration_max_ms: u64) -> Fault {
    let duration_ms = draw.range(100, duration_max_ms.max(100));
    match kind {
        FaultKind::Partition => {
            let (a, b) = two_services(draw, targets);
            Fault::Partition { a, b, duration_ms }
        }
        FaultKind::PartitionOneWay => {
            let (from, to) = two_services(draw, targets);
            Fault::PartitionOneWay { from, to, duration_ms }
        }
        FaultKind::Isolate => Fault::Isolate { host: draw.pick(targets).clone(), duration_ms },
        FaultKind::Hold => {
            let (a, b) = two_services(draw, targets);
            Fault::Hold { a, b, duration_ms }
        }
        FaultKind::Crash => Fault::Crash { host: draw.pick(targets).clone(), down_ms: duration_ms },
        FaultKind::Skew => {
            let magnitude = draw.range(1_000, 20_000) as i64;
            let skew_ms = if draw.chance(500) { magnitude } else { -magnitude };
            Fault::Skew { host: draw.pick(targets).clone(), skew_ms }
        }
        FaultKind::Latency => Fault::Latency { max_ms: draw.range(20, 400), duration_ms },
        FaultKind::Duplicate => {
            let per_mille = draw.range(50, 500) as u32;
            let delay_max_ms = if draw.chance(500) { 0 } else { draw.range(1_000, 10_000) };
            Fault::Duplicate { per_mille, duration_ms, delay_max_ms }
        }
    }
}

/// Expands a plan into timed actions; `hosts` are every host of the cluster, for isolation.
pub fn timeline(plan: &[Planned], hosts: &[String]) -> Vec<(u64, Action)> {
    let mut actions = Vec::new();
    for Planned { at_ms, fault } in plan {
        let at = *at_ms;
        match fault {
            Fault::Partition { a, b, duration_ms } => {
                actions.push((at, Action::Partition(a.clone(), b.clone())));
                actions.push((at + duration_ms, Action::Repair(a.clone(), b.clone())));
            }
            Fault::PartitionOneWay { from, to, duration_ms } => {
                actions.push((at, Action::PartitionOneWay(from.clone(), to.clone())));
                actions.push((at + duration_ms, Action::RepairOneWay(from.clone(), to.clone())));
            }
            Fault::Isolate { host, duration_ms } => {
                for other in hosts.iter().filter(|h| *h != host) {
                    actions.push((at, Action::Partition(host.clone(), other.clone())));
                    actions.push((at + duration_ms, Action::Repair(host.clone(), other.clone())));
                }
            }
            Fault::Hold { a, b, duration_ms } => {
                actions.push((at, Action::Hold(a.clone(), b.clone())));
                actions.push((at + duration_ms, Action::Release(a.clone(), b.clone())));
            }
            Fault::Crash { host, down_ms } => {
                actions.push((at, Action::Crash(host.clone())));
                actions.push((at + down_ms, Action::Restart(host.clone())));
            }
            Fault::Skew { host, skew_ms } => actions.push((at, Action::Skew(host.clone(), *skew_ms))),
            Fault::Latency { max_ms, duration_ms } => {
                actions.push((at, Action::Latency(*max_ms)));
                actions.push((at + duration_ms, Action::Latency(0)));
            }
            Fault::Duplicate { per_mille, duration_ms, delay_max_ms } => {
                actions.push((at, Action::Duplicates(*per_mille, *delay_max_ms)));
                actions.push((at + duration_ms, Action::Duplicates(0, 0)));
            }
        }
    }
    // Stable: actions at the same moment keep their plan order.
    actions.sort_by_key(|(at, _)| *at);
    actions
}
