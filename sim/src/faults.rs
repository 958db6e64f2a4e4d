//! The fault plan: drawn from the seed (swarm-style unless the scenario pins the mix),
//! explicit, and expanded into a timeline of actions on the cluster.

use crate::scenario::{FaultKind, FaultMix, FaultMode, Scenario};
use crate::seed::Draw;
use contracts::ServiceName;
use platform::crash_point::CrashPoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a pause lasts: past the HTTP client's 1 s attempt deadline, so callers time out
/// (and retry, compensate or answer 503) while their requests are held.
pub const PAUSE_MS: (u64, u64) = (1_500, 6_000);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Both directions between two services cut.
    Partition { a: ServiceName, b: ServiceName, duration_ms: u64 },
    /// Traffic from one service to another dropped, the other way works.
    PartitionOneWay { from: ServiceName, to: ServiceName, duration_ms: u64 },
    /// A service cut from every other host.
    Isolate { host: ServiceName, duration_ms: u64 },
    /// Traffic between two services held, then released all at once.
    Hold { a: ServiceName, b: ServiceName, duration_ms: u64 },
    /// A service crashed (uncommitted work lost), restarted after `down_ms`.
    Crash { host: ServiceName, down_ms: u64 },
    /// A service's wall clock moved by `skew_ms` until the end of the safety phase.
    Skew { host: ServiceName, skew_ms: i64 },
    /// Message latency up to `max_ms` for a while.
    Latency { max_ms: u64, duration_ms: u64 },
    /// Outbound requests of every service sent twice, per mille: every request but those
    /// marked `platform::client::NeverResent`, whether marked idempotent or not.
    Duplicate {
        per_mille: u32,
        duration_ms: u64,
        /// 0: each copy is sent at once; otherwise up to this late.
        #[serde(default)]
        delay_max_ms: u64,
    },
    /// A crash point (`platform::crash_point`, after FoundationDB's BUGGIFY) armed on a
    /// host for `armed_ms`: the `nth` time the host reaches it meanwhile, the host crashes
    /// right there (the work after the point never runs) and restarts after `down_ms`.
    CrashPoint {
        #[serde(with = "crash_point_name")]
        point: CrashPoint,
        host: ServiceName,
        nth: u32,
        armed_ms: u64,
        down_ms: u64,
    },
    /// A storage fault (`platform::storage_fault`) on a host for a while: each of its write
    /// transactions fails (busy at begin, or an I/O error at commit) with `per_mille`/1000
    /// chance, and leaves no effect. One in five is an outage (1000: every write fails, a
    /// full disk), long enough to outlast a caller's retry budget.
    Storage { host: ServiceName, per_mille: u32, duration_ms: u64 },
    /// A host paused (a stop-the-world pause, SIGSTOP): every link of the host held in both
    /// directions for longer than its callers' deadlines, then released at once (what was
    /// held arrives late). Its own tasks run on, unheard.
    Pause { host: ServiceName, duration_ms: u64 },
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
            Fault::CrashPoint { .. } => FaultKind::CrashPoint,
            Fault::Storage { .. } => FaultKind::Storage,
            Fault::Pause { .. } => FaultKind::Pause,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Planned {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

/// A crash point is written by its name (`CrashPoint::name`); an unknown name is an error.
mod crash_point_name {
    use platform::crash_point::CrashPoint;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(point: &CrashPoint, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(point.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CrashPoint, D::Error> {
        let name = String::deserialize(deserializer)?;
        CrashPoint::parse(&name).ok_or_else(|| D::Error::custom(format!("no crash point named '{name}'")))
    }
}

/// What happens to the cluster at one moment. Links are between turmoil hosts (services and
/// shoppers), named as turmoil names them; the rest act on a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Partition(String, String),
    Repair(String, String),
    PartitionOneWay(String, String),
    RepairOneWay(String, String),
    Hold(String, String),
    Release(String, String),
    Crash(ServiceName),
    Restart(ServiceName),
    Skew(ServiceName, i64),
    Latency(u64),
    /// Per mille duplicated, and how late a copy may go.
    Duplicates(u32, u64),
    /// A crash point armed (point, host, nth hit); the driver crashes the host when it fires.
    Arm(CrashPoint, ServiceName, u32),
    /// The crash point's window is over (nothing if it fired).
    Disarm,
    /// A storage fault begins on a host: per mille of its writes fail.
    FailWrites(ServiceName, u32),
    /// The storage fault ends.
    HealWrites,
}

/// The run's faults, in time order.
pub fn plan(scenario: &Scenario, seed: u64) -> Vec<Planned> {
    let mut draw = Draw::new(seed, "faults");
    let targets: Vec<ServiceName> =
        if scenario.faults.targets.is_empty() { ServiceName::ALL.to_vec() } else { scenario.faults.targets.clone() };
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
            let mut fault = draw_fault(kind, &mut kind_draw, &targets, &scenario.faults);
            if let Fault::CrashPoint { point, host, nth, armed_ms, .. } = &mut fault {
                if *point == CrashPoint::RecoveryResumed {
                    // Recovery has work only when its host restarts with sagas in flight:
                    // the point comes with a crash of the host at its next saga-log write
                    // (a saga surely in flight), and stays armed from then until `armed_ms`
                    // after that crash's restart, for the first saga recovery claims.
                    let lead_armed_ms = kind_draw.range(100, scenario.faults.duration_max_ms.max(100));
                    let down_ms = kind_draw.range(100, scenario.faults.duration_max_ms.max(100));
                    *armed_ms += lead_armed_ms + down_ms;
                    *nth = 1;
                    let lead = Fault::CrashPoint {
                        point: CrashPoint::SagaLogWritten,
                        host: *host,
                        nth: 1,
                        armed_ms: lead_armed_ms,
                        down_ms,
                    };
                    planned.push(Planned { at_ms, fault: lead });
                }
            }
            planned.push(Planned { at_ms, fault });
        }
    }
    planned.sort_by_key(|p| p.at_ms);
    planned
}

/// The service a turmoil host name names (a crash point's host is never a shopper).
pub fn service_host(host: &str) -> ServiceName {
    ServiceName::parse(host).unwrap_or_else(|| panic!("'{host}' is not a service"))
}

/// The pairs of services that talk to each other: faults between any other pair would
/// change nothing.
pub const LINKS: [(ServiceName, ServiceName); 10] = {
    use ServiceName::*;
    [
        (Gateway, Order),
        (Gateway, Billing),
        (Gateway, Warehouse),
        (Gateway, Delivery),
        (Gateway, Notification),
        (Order, Billing),
        (Order, Warehouse),
        (Order, Delivery),
        (Billing, Notification),
        (Order, Notification),
    ]
};

/// A link with at least one end among `targets`, in a random direction.
fn two_services(draw: &mut Draw, targets: &[ServiceName]) -> (ServiceName, ServiceName) {
    let links: Vec<(ServiceName, ServiceName)> =
        LINKS.iter().copied().filter(|(a, b)| targets.contains(a) || targets.contains(b)).collect();
    let (a, b) = if links.is_empty() { LINKS[0] } else { *draw.pick(&links) };
    if draw.chance(500) {
        (a, b)
    } else {
        (b, a)
    }
}

fn draw_fault(kind: FaultKind, draw: &mut Draw, targets: &[ServiceName], mix: &FaultMix) -> Fault {
    let duration_max_ms = mix.duration_max_ms;
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
        FaultKind::Isolate => Fault::Isolate { host: *draw.pick(targets), duration_ms },
        FaultKind::Hold => {
            let (a, b) = two_services(draw, targets);
            Fault::Hold { a, b, duration_ms }
        }
        FaultKind::Crash => Fault::Crash { host: *draw.pick(targets), down_ms: duration_ms },
        FaultKind::Skew => {
            let magnitude = draw.range(1_000, mix.skew_max_ms.max(1_000)) as i64;
            let skew_ms = if draw.chance(500) { magnitude } else { -magnitude };
            Fault::Skew { host: *draw.pick(targets), skew_ms }
        }
        FaultKind::Latency => Fault::Latency { max_ms: draw.range(20, 400), duration_ms },
        FaultKind::Duplicate => {
            let per_mille = draw.range(50, 500) as u32;
            let delay_max_ms = if draw.chance(500) { 0 } else { draw.range(1_000, 10_000) };
            Fault::Duplicate { per_mille, duration_ms, delay_max_ms }
        }
        FaultKind::CrashPoint => {
            // Only the points some target can reach (all of them when every service is a
            // target); a scenario aimed at the participants crashes participants.
            let reachable: Vec<CrashPoint> =
                CrashPoint::ALL.into_iter().filter(|p| p.hosts().iter().any(|h| targets.contains(h))).collect();
            let point = if reachable.is_empty() { *draw.pick(&CrashPoint::ALL) } else { *draw.pick(&reachable) };
            let hosts: Vec<ServiceName> = point.hosts().iter().copied().filter(|h| targets.contains(h)).collect();
            let host = if hosts.is_empty() { point.hosts()[0] } else { *draw.pick(&hosts) };
            let nth = draw.range(1, 3) as u32;
            let down_ms = draw.range(100, duration_max_ms.max(100));
            Fault::CrashPoint { point, host, nth, armed_ms: duration_ms, down_ms }
        }
        FaultKind::Storage => {
            let host = *draw.pick(targets);
            let per_mille = if draw.chance(200) { 1_000 } else { draw.range(50, 500) as u32 };
            Fault::Storage { host, per_mille, duration_ms }
        }
        FaultKind::Pause => Fault::Pause { host: *draw.pick(targets), duration_ms: draw.range(PAUSE_MS.0, PAUSE_MS.1) },
    }
}

/// One moment of the timeline: the plan's fault number `index` begins or ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub index: usize,
    pub begins: bool,
}

/// Expands a plan into timed edges: each fault begins, and (but a skew) ends. Edges at the
/// same moment keep their plan order.
pub fn timeline(plan: &[Planned]) -> Vec<(u64, Edge)> {
    let mut edges = Vec::new();
    for (index, Planned { at_ms, fault }) in plan.iter().enumerate() {
        edges.push((*at_ms, Edge { index, begins: true }));
        let duration_ms = match fault {
            Fault::Partition { duration_ms, .. }
            | Fault::PartitionOneWay { duration_ms, .. }
            | Fault::Isolate { duration_ms, .. }
            | Fault::Hold { duration_ms, .. }
            | Fault::Pause { duration_ms, .. }
            | Fault::Latency { duration_ms, .. }
            | Fault::Duplicate { duration_ms, .. }
            | Fault::Storage { duration_ms, .. } => Some(*duration_ms),
            Fault::Crash { down_ms, .. } => Some(*down_ms),
            Fault::CrashPoint { armed_ms, .. } => Some(*armed_ms),
            Fault::Skew { .. } => None,
        };
        if let Some(duration_ms) = duration_ms {
            edges.push((at_ms + duration_ms, Edge { index, begins: false }));
        }
    }
    // Stable: edges at the same moment keep their plan order.
    edges.sort_by_key(|(at, _)| *at);
    edges
}

/// What one direction of a link currently does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Flow {
    #[default]
    Open,
    Held,
    Cut,
}

/// One link (an unordered pair of hosts, `a < b`) and the active faults on it.
#[derive(Clone, Debug, Default)]
struct Link {
    /// Active faults cutting a->b and b->a.
    cuts: [u32; 2],
    /// Active holds.
    holds: u32,
    /// What was last applied to the cluster, a->b and b->a.
    flows: [Flow; 2],
}

/// The faults in effect: each fault's end ends only that fault. Turns the timeline's edges
/// into actions on the cluster from the effective state of what is still active: the
/// strongest duplicate fault, the largest latency, and per link a count of the partitions
/// (two-way, one-way, isolations) and holds on it, repaired or released only at zero.
/// Crashes are counted by the driver; a skew lasts until the heal.
#[derive(Clone, Debug)]
pub struct Effects {
    faults: Vec<Fault>,
    hosts: Vec<String>,
    active: Vec<bool>,
    links: BTreeMap<(String, String), Link>,
    /// (per mille, delay max) in effect; (0, 0) when off.
    duplicates: (u32, u64),
    /// Largest latency in effect; 0 for the scenario's own.
    latency_ms: u64,
}

impl Effects {
    /// `hosts` are every host of the cluster, for isolation.
    pub fn new(plan: &[Planned], hosts: &[String]) -> Effects {
        Effects {
            faults: plan.iter().map(|p| p.fault.clone()).collect(),
            hosts: hosts.to_vec(),
            active: vec![false; plan.len()],
            links: BTreeMap::new(),
            duplicates: (0, 0),
            latency_ms: 0,
        }
    }

    /// The faults active now, by their index in the plan.
    pub fn active(&self) -> Vec<usize> {
        (0..self.active.len()).filter(|i| self.active[*i]).collect()
    }

    /// Applies one edge; returns what must be done to the cluster, in order.
    pub fn apply(&mut self, edge: Edge) -> Vec<Action> {
        let Some(fault) = self.faults.get(edge.index).cloned() else {
            return Vec::new();
        };
        if self.active[edge.index] == edge.begins {
            return Vec::new(); // an edge applied twice changes nothing
        }
        self.active[edge.index] = edge.begins;
        let step: i64 = if edge.begins { 1 } else { -1 };
        let mut actions = Vec::new();
        match &fault {
            Fault::Partition { a, b, .. } => {
                let (a, b) = (a.as_str(), b.as_str());
                self.count_cut(a, b, step);
                self.count_cut(b, a, step);
                self.settle_link(a, b, &mut actions);
            }
            Fault::PartitionOneWay { from, to, .. } => {
                self.count_cut(from.as_str(), to.as_str(), step);
                self.settle_link(from.as_str(), to.as_str(), &mut actions);
            }
            Fault::Isolate { host, .. } => {
                let host = host.as_str();
                let others: Vec<String> = self.hosts.iter().filter(|h| *h != host).cloned().collect();
                for other in &others {
                    self.count_cut(host, other, step);
                    self.count_cut(other, host, step);
                    self.settle_link(host, other, &mut actions);
                }
            }
            Fault::Hold { a, b, .. } => {
                let link = self.link(a.as_str(), b.as_str());
                link.holds = link.holds.saturating_add_signed(step as i32);
                self.settle_link(a.as_str(), b.as_str(), &mut actions);
            }
            Fault::Pause { host, .. } => {
                let host = host.as_str();
                let others: Vec<String> = self.hosts.iter().filter(|h| *h != host).cloned().collect();
                for other in &others {
                    let link = self.link(host, other);
                    link.holds = link.holds.saturating_add_signed(step as i32);
                    self.settle_link(host, other, &mut actions);
                }
            }
            Fault::Crash { host, .. } => {
                actions.push(if edge.begins { Action::Crash(*host) } else { Action::Restart(*host) });
            }
            Fault::CrashPoint { point, host, nth, .. } => {
                actions.push(if edge.begins { Action::Arm(*point, *host, *nth) } else { Action::Disarm });
            }
            Fault::Storage { host, per_mille, .. } => {
                actions.push(if edge.begins { Action::FailWrites(*host, *per_mille) } else { Action::HealWrites });
            }
            Fault::Skew { host, skew_ms } => {
                if edge.begins {
                    actions.push(Action::Skew(*host, *skew_ms));
                }
            }
            Fault::Latency { .. } => {
                let latency_ms = self.active_faults().filter_map(|f| match f {
                    Fault::Latency { max_ms, .. } => Some(*max_ms),
                    _ => None,
                });
                let latency_ms = latency_ms.max().unwrap_or(0);
                if latency_ms != self.latency_ms {
                    self.latency_ms = latency_ms;
                    actions.push(Action::Latency(latency_ms));
                }
            }
            Fault::Duplicate { .. } => {
                let strongest = self.active_faults().filter_map(|f| match f {
                    Fault::Duplicate { per_mille, delay_max_ms, .. } => Some((*per_mille, *delay_max_ms)),
                    _ => None,
                });
                let duplicates = strongest.max().unwrap_or((0, 0));
                if duplicates != self.duplicates {
                    self.duplicates = duplicates;
                    actions.push(Action::Duplicates(duplicates.0, duplicates.1));
                }
            }
        }
        actions
    }

    fn active_faults(&self) -> impl Iterator<Item = &Fault> {
        self.faults.iter().zip(&self.active).filter(|(_, active)| **active).map(|(fault, _)| fault)
    }

    fn link(&mut self, a: &str, b: &str) -> &mut Link {
        let key = if a < b { (a.to_string(), b.to_string()) } else { (b.to_string(), a.to_string()) };
        self.links.entry(key).or_default()
    }

    fn count_cut(&mut self, from: &str, to: &str, step: i64) {
        let direction = usize::from(from > to);
        let link = self.link(from, to);
        link.cuts[direction] = link.cuts[direction].saturating_add_signed(step as i32);
    }

    /// Brings the link between `x` and `y` to what its active faults want: a cut direction
    /// drops traffic; otherwise a held link holds it; otherwise it flows.
    fn settle_link(&mut self, x: &str, y: &str, actions: &mut Vec<Action>) {
        let (a, b) = if x < y { (x.to_string(), y.to_string()) } else { (y.to_string(), x.to_string()) };
        let link = self.link(&a, &b);
        let held = link.holds > 0;
        let want = link.cuts.map(|cuts| match (cuts > 0, held) {
            (true, _) => Flow::Cut,
            (false, true) => Flow::Held,
            (false, false) => Flow::Open,
        });
        if want == link.flows {
            return;
        }
        let mut flows = link.flows;
        // Held traffic is let go only when the last hold ends (turmoil's release opens both
        // directions and delivers what was held).
        if !held && flows.contains(&Flow::Held) {
            actions.push(Action::Release(a.clone(), b.clone()));
            flows = [Flow::Open; 2];
        }
        // A hold covers both directions; a direction that stops being cut under a hold is
        // held again.
        let rehold = (0..2).any(|d| want[d] == Flow::Held && flows[d] != Flow::Held);
        if rehold {
            actions.push(Action::Hold(a.clone(), b.clone()));
            flows = [Flow::Held; 2];
        }
        if want == [Flow::Cut; 2] && flows[0] != Flow::Cut && flows[1] != Flow::Cut {
            actions.push(Action::Partition(a.clone(), b.clone()));
            flows = [Flow::Cut; 2];
        }
        if want == [Flow::Open; 2] && flows == [Flow::Cut; 2] {
            actions.push(Action::Repair(a.clone(), b.clone()));
            flows = [Flow::Open; 2];
        }
        for (direction, (from, to)) in [(a.clone(), b.clone()), (b.clone(), a.clone())].into_iter().enumerate() {
            match (flows[direction], want[direction]) {
                (Flow::Cut, Flow::Cut) => {}
                (_, Flow::Cut) => actions.push(Action::PartitionOneWay(from, to)),
                (Flow::Cut, _) => actions.push(Action::RepairOneWay(from, to)),
                _ => {}
            }
        }
        self.link(&a, &b).flows = want;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        ServiceName::ALL.iter().map(|s| s.to_string()).chain(["shopper-0".to_string()]).collect()
    }

    /// Every action the timeline of `plan` leads to, with its time.
    fn actions(plan: &[Planned]) -> Vec<(u64, Action)> {
        let mut effects = Effects::new(plan, &hosts());
        let mut out = Vec::new();
        for (at, edge) in timeline(plan) {
            out.extend(effects.apply(edge).into_iter().map(|action| (at, action)));
        }
        out
    }

    fn at(at_ms: u64, fault: Fault) -> Planned {
        Planned { at_ms, fault }
    }

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn overlapping_duplicate_faults_end_one_at_a_time() {
        let plan = [
            at(0, Fault::Duplicate { per_mille: 300, duration_ms: 1_000, delay_max_ms: 5_000 }),
            at(500, Fault::Duplicate { per_mille: 100, duration_ms: 1_000, delay_max_ms: 0 }),
        ];
        assert_eq!(
            actions(&plan),
            [
                (0, Action::Duplicates(300, 5_000)),
                // The weaker one begins under the stronger: nothing changes.
                (1_000, Action::Duplicates(100, 0)),
                (1_500, Action::Duplicates(0, 0)),
            ]
        );
    }

    #[test]
    fn a_stronger_duplicate_fault_takes_over_and_hands_back() {
        let plan = [
            at(0, Fault::Duplicate { per_mille: 100, duration_ms: 2_000, delay_max_ms: 0 }),
            at(500, Fault::Duplicate { per_mille: 400, duration_ms: 500, delay_max_ms: 1_000 }),
        ];
        assert_eq!(
            actions(&plan),
            [
                (0, Action::Duplicates(100, 0)),
                (500, Action::Duplicates(400, 1_000)),
                (1_000, Action::Duplicates(100, 0)),
                (2_000, Action::Duplicates(0, 0)),
            ]
        );
    }

    #[test]
    fn swarm_seed_7_keeps_its_second_duplicate_fault_on() {
        let scenario = crate::scenario::load_named("swarm").unwrap();
        let planned = crate::plan::from_seed(&scenario, 7).faults;
        let duplicates: Vec<(usize, u64, u64)> = planned
            .iter()
            .enumerate()
            .filter_map(|(index, p)| match p.fault {
                Fault::Duplicate { duration_ms, .. } => Some((index, p.at_ms, p.at_ms + duration_ms)),
                _ => None,
            })
            .collect();
        // Two duplicate faults of the seed overlap: one ends while the other is active.
        let (first_end, other) = duplicates
            .iter()
            .find_map(|(i, _, end)| {
                duplicates.iter().find(|(j, begin, end2)| j != i && begin < end && end < end2).map(|o| (*end, *o))
            })
            .expect("swarm seed 7 plans two overlapping duplicate faults");
        let mut effects = Effects::new(&planned, &hosts());
        let mut duplicates_on = (0, 0);
        for (at, edge) in timeline(&planned) {
            for action in effects.apply(edge) {
                if let Action::Duplicates(per_mille, delay_max_ms) = action {
                    duplicates_on = (per_mille, delay_max_ms);
                }
            }
            if at == first_end {
                assert!(effects.active().contains(&other.0));
                assert!(duplicates_on.0 > 0, "the end of one duplicate fault switched the other off at {at} ms");
            }
        }
        assert_eq!(duplicates_on, (0, 0));
    }

    #[test]
    fn latency_is_the_largest_active() {
        let plan = [
            at(0, Fault::Latency { max_ms: 300, duration_ms: 1_000 }),
            at(100, Fault::Latency { max_ms: 50, duration_ms: 2_000 }),
        ];
        assert_eq!(
            actions(&plan),
            [(0, Action::Latency(300)), (1_000, Action::Latency(50)), (2_100, Action::Latency(0))]
        );
    }

    #[test]
    fn a_repair_ends_only_its_own_partition() {
        let plan = [
            at(0, Fault::Partition { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 1_000 }),
            at(500, Fault::Partition { a: ServiceName::Billing, b: ServiceName::Order, duration_ms: 1_000 }),
        ];
        assert_eq!(
            actions(&plan),
            [(0, Action::Partition(s("billing"), s("order"))), (1_500, Action::Repair(s("billing"), s("order")))]
        );
    }

    #[test]
    fn an_isolation_outlasts_a_partition_it_overlaps() {
        let plan = [
            at(0, Fault::Partition { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 1_000 }),
            at(200, Fault::Isolate { host: ServiceName::Billing, duration_ms: 2_000 }),
        ];
        let all = actions(&plan);
        // At 1000 the partition ends, but billing is still isolated: nothing is repaired.
        assert!(all.iter().all(|(at, _)| *at != 1_000), "{all:?}");
        let repaired: Vec<&Action> = all.iter().filter(|(at, _)| *at == 2_200).map(|(_, a)| a).collect();
        assert_eq!(repaired.len(), hosts().len() - 1);
        assert!(repaired.contains(&&Action::Repair(s("billing"), s("order"))));
    }

    #[test]
    fn a_one_way_partition_under_a_two_way_one_keeps_its_direction_cut() {
        let plan = [
            at(0, Fault::Partition { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 1_000 }),
            at(500, Fault::PartitionOneWay { from: ServiceName::Order, to: ServiceName::Billing, duration_ms: 1_000 }),
        ];
        assert_eq!(
            actions(&plan),
            [
                (0, Action::Partition(s("billing"), s("order"))),
                (1_000, Action::RepairOneWay(s("billing"), s("order"))),
                (1_500, Action::RepairOneWay(s("order"), s("billing"))),
            ]
        );
    }

    #[test]
    fn a_release_ends_only_its_own_hold() {
        let plan = [
            at(0, Fault::Hold { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 1_000 }),
            at(500, Fault::Hold { a: ServiceName::Billing, b: ServiceName::Order, duration_ms: 1_000 }),
        ];
        assert_eq!(
            actions(&plan),
            [(0, Action::Hold(s("billing"), s("order"))), (1_500, Action::Release(s("billing"), s("order")))]
        );
    }

    #[test]
    fn a_hold_outlasting_a_partition_holds_again() {
        let plan = [
            at(0, Fault::Hold { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 2_000 }),
            at(500, Fault::Partition { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 500 }),
        ];
        assert_eq!(
            actions(&plan),
            [
                (0, Action::Hold(s("billing"), s("order"))),
                (500, Action::Partition(s("billing"), s("order"))),
                (1_000, Action::Hold(s("billing"), s("order"))),
                (2_000, Action::Release(s("billing"), s("order"))),
            ]
        );
    }

    #[test]
    fn a_pause_holds_every_link_of_its_host_and_ends_only_its_own_holds() {
        let plan = [
            at(0, Fault::Pause { host: ServiceName::Billing, duration_ms: 2_000 }),
            at(500, Fault::Hold { a: ServiceName::Order, b: ServiceName::Billing, duration_ms: 3_000 }),
            at(1_000, Fault::Partition { a: ServiceName::Billing, b: ServiceName::Warehouse, duration_ms: 2_000 }),
        ];
        let all = actions(&plan);
        let begun: Vec<&Action> = all.iter().filter(|(at, _)| *at == 0).map(|(_, a)| a).collect();
        assert_eq!(begun.len(), hosts().len() - 1, "{all:?}");
        assert!(begun.contains(&&Action::Hold(s("billing"), s("order"))));
        assert!(begun.contains(&&Action::Hold(s("billing"), s("shopper-0"))));
        let ended: Vec<&Action> = all.iter().filter(|(at, _)| *at == 2_000).map(|(_, a)| a).collect();
        // The pause ends: every link of billing released but the one still held by the hold
        // and the one still cut by the partition.
        assert_eq!(ended.len(), hosts().len() - 3, "{all:?}");
        assert!(ended.contains(&&Action::Release(s("billing"), s("delivery"))));
        assert!(!ended.iter().any(|a| matches!(a, Action::Release(x, y) if x == "billing" && y == "order")));
        assert!(all.contains(&(3_000, Action::Repair(s("billing"), s("warehouse")))), "{all:?}");
        assert!(all.contains(&(3_500, Action::Release(s("billing"), s("order")))), "{all:?}");
    }

    #[test]
    fn a_pause_outlasts_the_call_deadline() {
        // The saga's calls, the catalog read and the outbox relay's calls.
        let deadline_ms = [
            order::runner::ACTION_RETRY.attempt_timeout_ms,
            order::CONFIG.catalog_retry.attempt_timeout_ms,
            platform::outbox::RELAY_CONFIG.call_timeout_ms,
        ]
        .into_iter()
        .max()
        .unwrap();
        let scenario = crate::scenario::load_named("pause").unwrap();
        for seed in 0..20 {
            for planned in crate::plan::from_seed(&scenario, seed).faults {
                let Fault::Pause { duration_ms, .. } = planned.fault else { panic!("{planned:?}") };
                assert!(duration_ms > deadline_ms, "seed {seed}: {duration_ms} ms");
            }
        }
    }

    #[test]
    fn a_recovery_crash_point_comes_with_a_crash_mid_saga_and_outlasts_its_restart() {
        let scenario = crate::scenario::load_named("crash-points").unwrap();
        let mut seen = 0;
        for seed in 0..100 {
            let planned = crate::plan::from_seed(&scenario, seed).faults;
            for (index, p) in planned.iter().enumerate() {
                let Fault::CrashPoint { point, host, armed_ms, .. } = &p.fault else { continue };
                if *point != CrashPoint::RecoveryResumed {
                    continue;
                }
                seen += 1;
                let lead = index.checked_sub(1).map(|i| &planned[i]);
                let Some(Planned {
                    at_ms,
                    fault: Fault::CrashPoint { point: lead_point, host: crashed, armed_ms: lead_armed_ms, down_ms, .. },
                }) = lead
                else {
                    panic!("seed {seed}: no crash before {p:?}")
                };
                assert_eq!((at_ms, crashed, lead_point), (&p.at_ms, host, &CrashPoint::SagaLogWritten));
                assert!(*armed_ms > lead_armed_ms + down_ms, "seed {seed}: disarmed before the restart");
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn crash_points_aimed_at_the_participants_crash_participants_some_past_the_retry_budget() {
        let scenario = crate::scenario::load_named("participant-crash").unwrap();
        let budget_ms =
            order::runner::ACTION_RETRY.attempt_timeout_ms * u64::from(order::runner::ACTION_RETRY.attempt_count_max);
        let (mut points, mut past_budget) = (0, 0);
        for seed in 0..50 {
            for planned in crate::plan::from_seed(&scenario, seed).faults {
                let Fault::CrashPoint { host, down_ms, .. } = &planned.fault else { continue };
                points += 1;
                assert!(scenario.faults.targets.contains(host), "seed {seed}: {planned:?}");
                past_budget += usize::from(*down_ms > budget_ms);
            }
        }
        assert!(points > 0 && past_budget > 0, "{points} crash points, {past_budget} past the budget");
    }

    #[test]
    fn a_crash_point_is_armed_for_its_window() {
        let fault = Fault::CrashPoint {
            point: CrashPoint::KeyCommitted,
            host: ServiceName::Order,
            nth: 2,
            armed_ms: 500,
            down_ms: 900,
        };
        assert_eq!(
            actions(&[at(100, fault)]),
            [(100, Action::Arm(CrashPoint::KeyCommitted, ServiceName::Order, 2)), (600, Action::Disarm)]
        );
    }

    #[test]
    fn a_storage_fault_fails_writes_for_its_window() {
        let fault = Fault::Storage { host: ServiceName::Billing, per_mille: 300, duration_ms: 700 };
        assert_eq!(
            actions(&[at(50, fault)]),
            [(50, Action::FailWrites(ServiceName::Billing, 300)), (750, Action::HealWrites)]
        );
    }

    #[test]
    fn crashes_and_skews_pass_through() {
        let plan = [
            at(0, Fault::Crash { host: ServiceName::Order, down_ms: 1_000 }),
            at(100, Fault::Skew { host: ServiceName::Billing, skew_ms: -5_000 }),
        ];
        assert_eq!(
            actions(&plan),
            [
                (0, Action::Crash(ServiceName::Order)),
                (100, Action::Skew(ServiceName::Billing, -5_000)),
                (1_000, Action::Restart(ServiceName::Order)),
            ]
        );
    }
}
