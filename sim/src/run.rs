//! One run: build the cluster from the seed, drive the safety phase with faults, heal, let
//! the cluster settle in the liveness phase, check every invariant, digest the trace.

use crate::checks::{always, final_checks, Violation};
use crate::cluster::{add_hosts, prepare, Cluster};
use crate::errors;
use crate::faults::Fault;
use crate::faults::{service_host, timeline, Action, Effects, Planned};
use crate::gauges::{Gauges, HostState};
use crate::history::{Action as Request, Event, History};
use crate::plan::{from_seed, Plan};
use crate::replay::Replay;
use crate::scenario::Scenario;
use crate::seed::child_seed;
use crate::shopper::{Board, Shopper};
use crate::snapshot::{Snapshot, OUTBOX_SERVICES};
use contracts::order::OrderStatus;
use contracts::{ServiceName, Timestamp};
use order::saga::{step_text, Event as LogEvent, Phase};
use platform::bugs::{self, Bug};
use platform::crash_point::CrashPoint;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Simulated time per step of the fixed driver; the resolution of simulated time.
pub const TICK_MS: u64 = 1;
/// How often (simulated time) the "always" invariants and the settle check run.
pub const CHECK_EVERY_MS: u64 = 250;

/// The services whose databases hold the levels checked every [`CHECK_EVERY_MS`]
/// (`Snapshot::levels`: balances, stock, delivery slots).
const LEVEL_SERVICES: [ServiceName; 3] = [ServiceName::Billing, ServiceName::Warehouse, ServiceName::Delivery];

/// The "(always)" checks of the levels ([`always`] on [`Snapshot::levels`]), run every
/// [`CHECK_EVERY_MS`]. Only a commit changes a database, so while none of
/// [`LEVEL_SERVICES`] committed since the last reading the levels are as they were then,
/// and so is what the checks found in them (already reported): the reading is skipped.
#[derive(Debug, Default)]
pub struct LevelsWatch {
    /// Those databases' commits (`Db::commits`) at the last reading.
    read_at: Option<[u64; LEVEL_SERVICES.len()]>,
    /// How many readings were taken and how many skipped.
    pub readings: u64,
    pub skipped: u64,
}

impl LevelsWatch {
    /// What the checks find now: nothing new when no levels database committed since the
    /// last reading.
    pub fn check(&mut self, cluster: &Cluster) -> Vec<Violation> {
        let commits = LEVEL_SERVICES.map(|service| cluster.dbs[&service].commits());
        if self.read_at == Some(commits) {
            self.skipped += 1;
            return Vec::new();
        }
        self.read_at = Some(commits);
        self.readings += 1;
        always(&Snapshot::levels(cluster))
    }
}

/// How the driver advances simulated time. Both give every run the same trace (the same
/// digest): a millisecond in which nothing was due changes nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeDriver {
    /// One turmoil step per simulated millisecond, busy or idle (the baseline).
    Fixed,
    /// When nothing can happen before some later millisecond — no host task ready, no
    /// timer due ([`crate::timers`]), no message delivered (`Sim::next_delivery`), no
    /// fault edge, restart, heal, check or the end of the run — one step straight to it;
    /// and in every step only the hosts that may progress in it are ticked
    /// (`Sim::step_hosts_by`), the others catching the time up when next ticked.
    #[default]
    EventDriven,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub digest: String,
    pub violations: Vec<Violation>,
    pub plan: Plan,
    pub history: Vec<Event>,
    pub stats: Stats,
    /// Faults applied and phase changes, with simulated times.
    pub timeline: Vec<String>,
    /// Every saga's log, for the failure report's sequence diagrams.
    pub saga_log: Vec<SagaEntry>,
    /// Billing's ledger lines of the orders (phase `BILLING`, event the transaction type).
    pub ledger: Vec<SagaEntry>,
    /// Turmoil steps the run took (the cost the time driver decides; not in the digest).
    pub steps: u64,
    /// Host ticks the steps ran (a host's runtime run for a step) and skipped (a running
    /// host left idle: the event-driven driver's); not in the digest.
    pub host_ticks: u64,
    pub host_skips: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub simulated_ms: u64,
    pub orders: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub requests: u64,
    /// Faults of each kind in the plan.
    pub faults: BTreeMap<String, u64>,
    /// Saga log events by "step phase event" (e.g. "withdraw ACTION UNKNOWN"): what the
    /// faults did to the sagas.
    pub saga_events: BTreeMap<String, u64>,
    /// Saga log events by the faults active when they happened ("none" when none was):
    /// which saga steps saw which faults.
    pub coverage: BTreeMap<String, BTreeMap<String, u64>>,
    /// Hits of each coverage probe (`platform::probe`) in the run, by probe name.
    pub probes: BTreeMap<String, u64>,
    /// Crash points (`platform::crash_point`) reached in the run, armed or not, by
    /// "point host".
    #[serde(default)]
    pub crash_points: BTreeMap<String, u64>,
    /// Write transactions failed by storage faults (`platform::storage_fault`), by
    /// "host failure" (e.g. "billing io_error").
    #[serde(default)]
    pub storage_faults: BTreeMap<String, u64>,
    /// Crash points that fired (crashed their host) in the run, by "point host".
    #[serde(default)]
    pub crash_points_fired: BTreeMap<String, u64>,
    /// Crash-point faults in the plan, by point name.
    #[serde(default)]
    pub crash_points_planned: BTreeMap<String, u64>,
    /// Requests of each adversarial workload behaviour (`Action::behaviour`, and
    /// `similar_at_once` for the similar orders sent at once under two keys).
    pub workload: BTreeMap<String, u64>,
    /// Totals read from the services' own metrics registries (one per host, kept across
    /// restarts), in the operator's terms: compensation rounds and failures, sagas resumed by
    /// recovery, outbox deliveries and failed delivery attempts (retries), busy writes.
    #[serde(default)]
    pub metrics: BTreeMap<String, u64>,
}

/// One line of the order service's saga log, on the simulation's time line.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SagaEntry {
    /// Simulated time (the order service's clock less its skew).
    pub at_ms: u64,
    pub order_id: String,
    pub step: String,
    pub phase: String,
    pub event: String,
    pub detail: String,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command line that replays this run (`crate::replay`).
    pub fn replay_command(&self) -> String {
        Replay::Seed { scenario: &self.scenario, seed: self.seed, bug: self.plan.bug.as_deref() }.to_string()
    }
}

#[expect(clippy::disallowed_types, reason = "turmoil's epoch is a SystemTime, pinned here")]
fn builder(scenario: &Scenario, seed: u64) -> turmoil::Builder {
    let mut builder = turmoil::Builder::new();
    // `Scenario::validate`: a whole second, not before 1970.
    let epoch = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(scenario.start.timestamp() as u64);
    builder
        .rng_seed(child_seed(seed, "turmoil"))
        .epoch(epoch)
        .tick_duration(Duration::from_millis(TICK_MS))
        .simulation_duration(Duration::from_millis(scenario.safety_ms + scenario.liveness_ms + 60_000))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(scenario.latency_max_ms.max(1)));
    builder
}

struct Driver<'a> {
    sim: turmoil::Sim<'a>,
    cluster: Cluster,
    scenario: Scenario,
    hosts: Vec<String>,
    crashed: [u32; ServiceName::ALL.len()],
    /// Since when each service has run without a crash (None while it is down).
    up_since_ms: [Option<u64>; ServiceName::ALL.len()],
    /// The watch over the services' gauges (check 15).
    gauges: Gauges,
    /// The "(always)" checks of the levels (invariants 2-4).
    levels: LevelsWatch,
    log: Vec<String>,
    /// Each crash-point fault's point and down time, by its index in the plan.
    crash_point_down_ms: BTreeMap<usize, (CrashPoint, u64)>,
    /// Crash points that fired, by "point host".
    crash_points_fired: BTreeMap<String, u64>,
    /// Restarts owed to crash points that fired: (when, fault index, host).
    crash_point_restarts: Vec<(u64, usize, ServiceName)>,
    /// The run's seed: each storage fault draws its failing writes from its own stream.
    seed: u64,
    /// A host may have a task ready to run that no timer woke: the harness changed the
    /// cluster since the last step (a fault applied, a host crashed or restarted, the
    /// heal: a restarted host's software is ready to run), or, after the last step, a host
    /// has a wake from outside it pending (`Sim::hosts_woken`: e.g. a SYN accepted on
    /// another host completes its `connect`, perhaps after its turn in the step). The
    /// next step is then one millisecond. (Every other wake is local to a host and runs
    /// within the step that caused it, but a timer's, which the registry shows.)
    busy: bool,
}

impl Driver<'_> {
    fn now_ms(&self) -> u64 {
        self.sim.elapsed().as_millis() as u64
    }

    /// Applies one action of the plan's fault number `index`.
    fn apply(&mut self, index: usize, action: &Action) {
        let at = self.now_ms();
        self.busy = true;
        self.log.push(format!("{at:>7} ms fault #{index} {action:?}"));
        match action {
            Action::Partition(a, b) => self.sim.partition(a.as_str(), b.as_str()),
            Action::Repair(a, b) => self.sim.repair(a.as_str(), b.as_str()),
            Action::PartitionOneWay(a, b) => self.sim.partition_oneway(a.as_str(), b.as_str()),
            Action::RepairOneWay(a, b) => self.sim.repair_oneway(a.as_str(), b.as_str()),
            Action::Hold(a, b) => self.sim.hold(a.as_str(), b.as_str()),
            Action::Release(a, b) => self.sim.release(a.as_str(), b.as_str()),
            Action::Crash(host) => {
                self.crashed[host.index()] += 1;
                self.up_since_ms[host.index()] = None;
                self.sim.crash(host.as_str());
            }
            Action::Restart(host) => {
                let depth = &mut self.crashed[host.index()];
                *depth = depth.saturating_sub(1);
                if *depth == 0 {
                    self.up_since_ms[host.index()] = Some(at);
                    self.sim.bounce(host.as_str());
                }
            }
            Action::Skew(host, skew_ms) => self.cluster.skews[host].store(*skew_ms, Ordering::Relaxed),
            Action::Latency(max_ms) => {
                let max = if *max_ms == 0 { self.scenario.latency_max_ms.max(1) } else { *max_ms };
                self.sim.set_max_message_latency(Duration::from_millis(max));
            }
            Action::Duplicates(per_mille, delay_max_ms) => {
                self.cluster.duplicates.store(*per_mille, Ordering::Relaxed);
                self.cluster.duplicate_delay_max_ms.store(*delay_max_ms, Ordering::Relaxed);
            }
            Action::Arm(point, host, nth) => platform::crash_point::arm(index, *point, host.as_str(), *nth),
            Action::Disarm => platform::crash_point::disarm(index),
            Action::FailWrites(host, per_mille) => {
                let seed = child_seed(self.seed, &format!("storage/{index}"));
                platform::storage_fault::arm(index, host.as_str(), *per_mille, seed);
            }
            Action::HealWrites => platform::storage_fault::disarm(index),
        }
    }

    /// Crashes the hosts whose armed crash point fired in the last step (their task waits
    /// at the point), and owes each a restart after its fault's down time.
    fn take_crash_points(&mut self) {
        for (index, host) in platform::crash_point::take_requests() {
            let host = service_host(&host);
            self.apply(index, &Action::Crash(host));
            let (point, down_ms) = self.crash_point_down_ms[&index];
            *self.crash_points_fired.entry(format!("{point} {host}")).or_default() += 1;
            self.crash_point_restarts.push((self.now_ms() + down_ms, index, host));
        }
    }

    /// Restarts the hosts whose crash point's down time is over.
    fn restart_crash_points(&mut self) {
        let now = self.now_ms();
        let (due, later): (Vec<_>, Vec<_>) = self.crash_point_restarts.drain(..).partition(|(at, _, _)| *at <= now);
        self.crash_point_restarts = later;
        for (_, index, host) in due {
            self.apply(index, &Action::Restart(host));
        }
    }

    /// Ends every fault: links repaired and released, crashed hosts restarted, clocks true.
    fn heal(&mut self) {
        let at = self.now_ms();
        self.busy = true;
        self.log.push(format!("{at:>7} ms heal: liveness phase begins"));
        for index in self.crash_point_down_ms.keys() {
            platform::crash_point::disarm(*index);
        }
        self.crash_point_restarts.clear();
        platform::storage_fault::disarm_all();
        for (index, a) in self.hosts.iter().enumerate() {
            for b in &self.hosts[index + 1..] {
                self.sim.repair(a.as_str(), b.as_str());
                self.sim.release(a.as_str(), b.as_str());
            }
        }
        // In the order of the hosts' names, as when they were counted by name.
        let mut services = ServiceName::ALL;
        services.sort_by_key(|s| s.as_str());
        for host in services {
            if self.crashed[host.index()] > 0 {
                self.crashed[host.index()] = 0;
                self.up_since_ms[host.index()] = Some(self.now_ms());
                self.sim.bounce(host.as_str());
            }
        }
        for skew in self.cluster.skews.values() {
            skew.store(0, Ordering::Relaxed);
        }
        self.cluster.duplicates.store(0, Ordering::Relaxed);
        self.cluster.duplicate_delay_max_ms.store(0, Ordering::Relaxed);
        self.cluster.lost_answers.store(0, Ordering::Relaxed);
        self.sim.set_max_message_latency(Duration::from_millis(self.scenario.latency_max_ms.max(1)));
    }

    /// Quiescence: every order final, both outboxes empty, and nothing the harness
    /// scheduled (a late duplicate) still pending.
    fn settled(&self) -> bool {
        Snapshot::settled(&self.cluster) && self.pending_duplicates() == 0
    }

    fn pending_duplicates(&self) -> u64 {
        self.cluster.pending_duplicates.load(Ordering::Relaxed)
    }

    /// How many milliseconds the next step may span with nothing happening before its
    /// last millisecond: at most up to `horizon` (the harness's next own event), no
    /// further than the earliest registered timer (which fires at the end of the step),
    /// and up to the next message delivery (a step hands over what its end reaches; a
    /// host it is handed to runs only the step's last millisecond: see `drive`). One
    /// when anything may be ready now: see `busy`; a timer fired and its task has not run
    /// yet; a message waits for a running host.
    fn quiet_ms(&self, horizon: u64) -> u64 {
        let now = self.now_ms();
        if self.busy {
            return TICK_MS;
        }
        let mut jump = horizon.saturating_sub(now);
        if let Some(deadline) = crate::timers::earliest_ms() {
            jump = jump.min(deadline.saturating_sub(now));
        }
        if let Some(wait) = self.sim.next_delivery() {
            let wait_ms = u64::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(u64::MAX);
            jump = jump.min(wait_ms);
        }
        jump.max(TICK_MS)
    }
}

/// Runs `scenario` with the plan `seed` decides, with `bug` planted if given.
pub fn run(scenario: &Scenario, seed: u64, bug: Option<Bug>) -> RunReport {
    run_driven(scenario, seed, bug, TimeDriver::default())
}

/// [`run`] with the given time driver (the benchmark and the drivers' identity test).
pub fn run_driven(scenario: &Scenario, seed: u64, bug: Option<Bug>, time: TimeDriver) -> RunReport {
    let mut plan = from_seed(scenario, seed);
    plan.bug = bug.map(|b| b.name().to_string());
    run_plan_driven(scenario, &plan, time)
}

/// Runs an explicit plan (a seed's, an edited one, a shrunk one).
pub fn run_plan(scenario: &Scenario, plan: &Plan) -> RunReport {
    run_plan_driven(scenario, plan, TimeDriver::default())
}

/// [`run_plan`] with the given time driver.
pub fn run_plan_driven(scenario: &Scenario, plan: &Plan, time: TimeDriver) -> RunReport {
    planted(plan, || drive(scenario, plan, time)).0
}

/// [`run_plan`], also handing back the snapshot the checks read (for their own tests).
pub fn run_plan_keeping_state(scenario: &Scenario, plan: &Plan) -> (RunReport, Snapshot) {
    planted(plan, || drive(scenario, plan, TimeDriver::default()))
}

/// Runs `work` with the plan's bug planted.
fn planted<T>(plan: &Plan, work: impl FnOnce() -> T) -> T {
    let bug = plan.bug.as_deref().map(|name| Bug::parse(name).unwrap_or_else(|| panic!("no planted bug named {name}")));
    assert!(bugs::plant(bug), "this build has no planted bugs: build with --features planted-bugs");
    let result = work();
    bugs::plant(None);
    result
}

fn drive(scenario: &Scenario, plan: &Plan, time: TimeDriver) -> (RunReport, Snapshot) {
    let scenario =
        &Scenario { safety_ms: plan.safety_ms, liveness_ms: plan.liveness_ms, start: plan.start, ..scenario.clone() };
    let seed = plan.seed;
    let cluster = prepare(scenario);
    cluster.lost_answers.store(plan.lost_answer_per_mille, Ordering::Relaxed);
    crate::timers::reset();
    let mut sim = builder(scenario, seed).build();
    add_hosts(&mut sim, &cluster, seed, scenario);
    let history: History = Rc::new(RefCell::new(Vec::new()));
    let board: Board = Rc::new(RefCell::new(BTreeMap::new()));
    let shared = Arc::new(scenario.clone());
    let mut hosts: Vec<String> = ServiceName::ALL.iter().map(|s| s.to_string()).collect();
    for shopper_plan in &plan.shoppers {
        let name = format!("shopper-{}", shopper_plan.index);
        let shopper = Shopper::new(shopper_plan.clone(), seed, shared.clone(), history.clone(), board.clone());
        sim.client(name.as_str(), shopper.run());
        hosts.push(name);
    }
    let mut edges = timeline(&plan.faults).into_iter().peekable();
    let mut effects = Effects::new(&plan.faults, &hosts);
    let crash_point_down_ms = (plan.faults.iter().enumerate())
        .filter_map(|(index, p)| match p.fault {
            Fault::CrashPoint { point, down_ms, .. } => Some((index, (point, down_ms))),
            _ => None,
        })
        .collect();
    let mut driver = Driver {
        sim,
        cluster,
        scenario: scenario.clone(),
        hosts,
        crashed: [0; ServiceName::ALL.len()],
        up_since_ms: [Some(0); ServiceName::ALL.len()],
        gauges: Gauges::default(),
        levels: LevelsWatch::default(),
        log: Vec::new(),
        crash_point_down_ms,
        crash_points_fired: BTreeMap::new(),
        crash_point_restarts: Vec::new(),
        seed,
        // The hosts' software has not run yet.
        busy: true,
    };
    let mut violations = Vec::new();
    let mut healed = false;
    let end_ms = scenario.safety_ms + scenario.liveness_ms;
    let mut steps: u64 = 0;
    platform::probe::enable();
    platform::crash_point::enable(errors::current_host);
    platform::storage_fault::enable(errors::current_host);
    while driver.now_ms() < end_ms {
        let now = driver.now_ms();
        if !healed && now >= scenario.safety_ms {
            healed = true;
            driver.heal();
        }
        if !healed {
            driver.restart_crash_points();
        }
        while !healed && edges.peek().is_some_and(|(at, _)| *at <= now) {
            let (_, edge) = edges.next().expect("peeked");
            for action in effects.apply(edge) {
                driver.apply(edge.index, &action);
            }
        }
        let tick_ms = match time {
            TimeDriver::Fixed => TICK_MS,
            TimeDriver::EventDriven => {
                let next_check = (now / CHECK_EVERY_MS + 1) * CHECK_EVERY_MS;
                let mut horizon = end_ms.min(next_check);
                if !healed {
                    horizon = horizon.min(scenario.safety_ms);
                    horizon = horizon.min(edges.peek().map_or(u64::MAX, |(at, _)| *at));
                    horizon =
                        horizon.min(driver.crash_point_restarts.iter().map(|(at, _, _)| *at).min().unwrap_or(u64::MAX));
                }
                driver.quiet_ms(horizon)
            }
        };
        // A panic in a host's task comes out of `step` (turmoil's runtimes shut down on an
        // unhandled panic): a violation with its evidence, not an aborted sweep.
        let step = Duration::from_millis(tick_ms);
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match time {
            TimeDriver::Fixed => driver.sim.step_by(step),
            // A host is ticked only when something may make it progress in the step; one
            // of its own timers due by the step's end is the registry's to tell.
            TimeDriver::EventDriven => {
                // Nothing of any host is due before the step's last millisecond (see
                // `quiet_ms`): a ticked host catches up the rest (the lead) first.
                let until_ms = now + tick_ms;
                let lead = Duration::from_millis(tick_ms - TICK_MS);
                driver.sim.step_hosts_by(step, lead, &|host| crate::timers::due_by(host, until_ms))
            }
        }));
        let clients_done = match stepped {
            Ok(Ok(done)) => done,
            Err(payload) => {
                let raised = errors::panic_message(payload.as_ref());
                violations.push(errors::panic_violation(&driver.cluster.incidents, &raised, driver.now_ms()));
                break;
            }
            Ok(Err(error)) if driver.cluster.incidents.last_panic().is_some() => {
                let raised = error.to_string();
                violations.push(errors::panic_violation(&driver.cluster.incidents, &raised, driver.now_ms()));
                break;
            }
            Ok(Err(error)) => {
                violations.push(Violation {
                    invariant: 0,
                    name: "harness",
                    subject: "simulation".into(),
                    evidence: error.to_string(),
                });
                break;
            }
        };
        steps += 1;
        driver.busy = driver.sim.hosts_woken();
        driver.take_crash_points();
        if driver.now_ms().is_multiple_of(CHECK_EVERY_MS) {
            let up_since_ms = driver.up_since_ms;
            let host = |service: ServiceName| HostState {
                up_since_ms: up_since_ms[service.index()],
                skew_bound_ms: crate::model::skew_bound_ms(plan, service),
            };
            let gauges = driver.gauges.check(&driver.cluster, driver.now_ms(), host);
            for found in driver.levels.check(&driver.cluster).into_iter().chain(gauges) {
                if !violations.contains(&found) {
                    violations.push(found);
                }
            }
            if healed && clients_done && driver.settled() {
                break;
            }
        }
    }
    let probes = platform::probe::take();
    let crash_points = platform::crash_point::take();
    let storage_faults = platform::storage_fault::take();
    let simulated_ms = driver.now_ms();
    driver.log.push(format!("{simulated_ms:>7} ms end of run"));
    let pending = driver.pending_duplicates();
    if pending > 0 && violations.iter().all(|v| v.invariant != 0) {
        // Unfinished orders and undelivered events are reported by the final checks.
        violations.push(Violation {
            invariant: 9,
            name: crate::checks::NAMES[8],
            subject: "the harness's own scheduled work".into(),
            evidence: format!(
                "{pending} late duplicate request(s) still pending at the liveness bound ({simulated_ms} ms)"
            ),
        });
    }
    let history = history.borrow().clone();
    let snapshot = Snapshot::take(&driver.cluster);
    for found in final_checks(&snapshot, &history, plan).into_iter().chain(driver.cluster.incidents.violations()) {
        if !violations.contains(&found) {
            violations.push(found);
        }
    }
    let saga_log = saga_log(&snapshot, plan);
    let ledger = ledger(&snapshot, plan);
    let mut stats = stats(&snapshot, &history, &plan.faults, simulated_ms);
    stats.coverage = coverage(&saga_log, plan);
    stats.probes = probes.into_iter().map(|(probe, hits)| (probe.name().to_string(), hits)).collect();
    stats.crash_points =
        crash_points.into_iter().map(|((point, host), hits)| (format!("{} {host}", point.name()), hits)).collect();
    stats.storage_faults = storage_faults
        .into_iter()
        .map(|((host, failure), count)| (format!("{host} {}", failure.name()), count))
        .collect();
    stats.crash_points_fired = std::mem::take(&mut driver.crash_points_fired);
    stats.metrics = operator_totals(&driver.cluster);
    let digest = digest(&snapshot, &history, plan, &violations);
    let (host_ticks, host_skips) = driver.sim.host_ticks();
    let report = RunReport {
        scenario: scenario.name.clone(),
        seed,
        digest,
        violations,
        plan: plan.clone(),
        history,
        stats,
        timeline: driver.log,
        saga_log,
        ledger,
        steps,
        host_ticks,
        host_skips,
    };
    (report, snapshot)
}

fn stats(snapshot: &Snapshot, history: &[Event], plan: &[Planned], simulated_ms: u64) -> Stats {
    let mut faults = BTreeMap::new();
    let mut crash_points_planned = BTreeMap::new();
    for planned in plan {
        *faults.entry(planned.fault.kind().name().to_string()).or_default() += 1;
        if let Fault::CrashPoint { point, .. } = &planned.fault {
            *crash_points_planned.entry(point.name().to_string()).or_default() += 1;
        }
    }
    let mut saga_events = BTreeMap::new();
    for entry in &snapshot.saga_log {
        let (step, phase, event) = (step_text(entry.step), entry.phase.as_str(), entry.event.as_str());
        *saga_events.entry(format!("{step} {phase} {event}")).or_default() += 1;
    }
    let count = |status: OrderStatus| snapshot.orders.iter().filter(|o| o.status == status).count() as u64;
    let mut workload: BTreeMap<String, u64> = BTreeMap::new();
    for event in history {
        let behaviour = match (event.action, event.at_once, event.key.is_some()) {
            (Request::PlaceOrder, true, _) => Some("similar_at_once"),
            (Request::Deposit, true, true) => Some("racing_deposit_keyed"),
            (Request::Deposit, true, false) => Some("racing_deposit_unkeyed"),
            (action, _, _) => action.behaviour(),
        };
        for behaviour in behaviour.into_iter().chain(event.behaviours.iter().copied()) {
            *workload.entry(behaviour.to_string()).or_default() += 1;
        }
    }
    Stats {
        workload,
        saga_events,
        coverage: BTreeMap::new(),
        probes: BTreeMap::new(),
        crash_points: BTreeMap::new(),
        storage_faults: BTreeMap::new(),
        crash_points_fired: BTreeMap::new(),
        metrics: BTreeMap::new(),
        crash_points_planned,
        simulated_ms,
        orders: snapshot.orders.len() as u64,
        confirmed: count(OrderStatus::Confirmed),
        failed: count(OrderStatus::Failed),
        requests: history.len() as u64,
        faults,
    }
}

/// What the services' metrics say the run did (see `Stats::metrics`). The simulation's
/// metrics are always on (`Metrics::new` in the cluster).
fn operator_totals(cluster: &Cluster) -> BTreeMap<String, u64> {
    const ON: &str = "the simulation's metrics are always on";
    let orders = cluster.metrics[&ServiceName::Order].orders().expect(ON);
    let outboxes = || OUTBOX_SERVICES.iter().map(|service| cluster.metrics[service].outbox().expect(ON));
    let totals = [
        ("compensation_rounds", orders.compensation_rounds.get()),
        ("compensation_failures", orders.compensation_failures.get()),
        ("sagas_recovered", orders.sagas_recovered.get()),
        ("outbox_deliveries", outboxes().map(|o| o.deliveries.get()).sum()),
        ("outbox_delivery_failures", outboxes().map(|o| o.failures.get()).sum()),
        ("storage_busy", cluster.metrics.values().map(|m| m.storage().expect(ON).busy.get()).sum()),
    ];
    totals.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

/// A digest of everything the run decided: plan, history, every database's final state
/// and the verdict.
fn digest(snapshot: &Snapshot, history: &[Event], plan: &Plan, violations: &[Violation]) -> String {
    let mut hasher = Sha256::new();
    // Serialized straight into the hash: the same bytes as `to_vec`, with no copy of them.
    serde_json::to_writer(&mut hasher, plan).expect("serializable");
    serde_json::to_writer(&mut hasher, history).expect("serializable");
    snapshot.digest(&mut hasher);
    serde_json::to_writer(&mut hasher, violations).expect("serializable");
    platform::ids::to_hex(&hasher.finalize()[..16])
}

/// A service's clock skew at simulated time `at_ms`, from the plan.
pub fn skew_ms(plan: &Plan, service: ServiceName, at_ms: u64) -> i64 {
    // The latest skew that has begun is the one in effect (an edited plan may be unsorted).
    plan.faults
        .iter()
        .filter(|p| p.at_ms <= at_ms && at_ms < plan.safety_ms)
        .filter_map(|p| match &p.fault {
            Fault::Skew { host, skew_ms } if *host == service => Some((p.at_ms, *skew_ms)),
            _ => None,
        })
        .max_by_key(|(began, _)| *began)
        .map_or(0, |(_, skew)| skew)
}

/// How near a skew's edge a reading may fall and still be read with either skew: the
/// driver moves a clock between two steps, and a step's writes see the new skew.
pub const SKEW_EDGE_MS: u64 = 50;

/// Where `at`, read on `service`'s clock, can fall on the simulation's time line: the
/// earliest and the latest such time. Each is the reading less a skew the plan gives the
/// service (none included) that is in effect then (within [`SKEW_EDGE_MS`] of an edge,
/// either). Not clamped at the epoch: a clock set back early in a run reads before it. A
/// clock set back reads some instants twice, hence two bounds; with no consistent reading
/// (an edited plan), the widest ones.
pub fn sim_ms_bounds(plan: &Plan, service: ServiceName, at: Timestamp) -> (u64, u64) {
    let seen = (at - plan.start).num_milliseconds();
    let skews = plan.faults.iter().filter_map(|p| match &p.fault {
        Fault::Skew { host, skew_ms } if *host == service => Some(*skew_ms),
        _ => None,
    });
    let candidates: Vec<i64> = std::iter::once(0).chain(skews).collect();
    let in_effect = |skew: i64, t: u64| {
        [t.saturating_sub(SKEW_EDGE_MS), t, t + SKEW_EDGE_MS]
            .into_iter()
            .any(|near| skew_ms(plan, service, near) == skew)
    };
    let consistent =
        candidates.iter().filter_map(|skew| u64::try_from(seen - skew).ok().filter(|t| in_effect(*skew, *t)));
    let (earliest, latest) = consistent.fold((None, None), |(low, high): (Option<u64>, Option<u64>), t| {
        (Some(low.map_or(t, |l| l.min(t))), Some(high.map_or(t, |h| h.max(t))))
    });
    let widest = candidates.iter().map(|s| s.abs()).max().unwrap_or(0);
    (
        earliest.unwrap_or_else(|| u64::try_from(seen - widest).unwrap_or(0)),
        latest.unwrap_or_else(|| u64::try_from(seen + widest).unwrap_or(0)),
    )
}

/// Where `at`, read on `service`'s clock, falls on the simulation's time line: the earliest
/// time it can (see [`sim_ms_bounds`]).
pub fn sim_ms(plan: &Plan, service: ServiceName, at: Timestamp) -> u64 {
    sim_ms_bounds(plan, service, at).0
}

fn saga_log(snapshot: &Snapshot, plan: &Plan) -> Vec<SagaEntry> {
    snapshot
        .saga_log
        .iter()
        .map(|row| SagaEntry {
            at_ms: sim_ms(plan, ServiceName::Order, row.at),
            order_id: row.order_id.to_string(),
            step: step_text(row.step).to_string(),
            phase: row.phase.as_str().to_string(),
            event: row.event.as_str().to_string(),
            detail: row.detail.clone(),
        })
        .collect()
}

/// Billing's ledger lines that name an order, on the simulation's time line.
fn ledger(snapshot: &Snapshot, plan: &Plan) -> Vec<SagaEntry> {
    snapshot
        .ledger
        .iter()
        .filter_map(|line| {
            let order_id = line.order_id?;
            Some(SagaEntry {
                at_ms: sim_ms(plan, ServiceName::Billing, line.created_at),
                order_id: order_id.to_string(),
                step: "ledger".into(),
                phase: "BILLING".into(),
                event: line.kind.as_str().to_string(),
                detail: contracts::Money::from_cents(line.amount_cents).to_string(),
            })
        })
        .collect()
}

/// The faults active at `at_ms`, as labels ("crash billing", "partition order~billing").
pub fn active_faults(plan: &Plan, at_ms: u64) -> Vec<String> {
    let mut labels: Vec<String> = plan
        .faults
        .iter()
        .filter(|p| p.at_ms <= at_ms && at_ms < plan.safety_ms)
        .filter_map(|p| {
            let (end, label) = match &p.fault {
                Fault::Partition { a, b, duration_ms } => (p.at_ms + duration_ms, format!("partition {a}~{b}")),
                Fault::PartitionOneWay { from, to, duration_ms } => {
                    (p.at_ms + duration_ms, format!("partition {from}->{to}"))
                }
                Fault::Isolate { host, duration_ms } => (p.at_ms + duration_ms, format!("isolate {host}")),
                Fault::Hold { a, b, duration_ms } => (p.at_ms + duration_ms, format!("hold {a}~{b}")),
                Fault::Pause { host, duration_ms } => (p.at_ms + duration_ms, format!("pause {host}")),
                Fault::Crash { host, down_ms } => (p.at_ms + down_ms, format!("crash {host}")),
                Fault::Skew { host, .. } => (plan.safety_ms, format!("skew {host}")),
                Fault::Latency { duration_ms, .. } => (p.at_ms + duration_ms, "latency".to_string()),
                Fault::Duplicate { duration_ms, delay_max_ms, .. } => {
                    let label = if *delay_max_ms > 0 { "late duplicates" } else { "duplicates" };
                    (p.at_ms + duration_ms, label.to_string())
                }
                Fault::CrashPoint { point, host, armed_ms, down_ms, .. } => {
                    (p.at_ms + armed_ms + down_ms, format!("crash-point {point} {host}"))
                }
                Fault::Storage { host, duration_ms, .. } => (p.at_ms + duration_ms, format!("storage {host}")),
            };
            (at_ms < end).then_some(label)
        })
        .collect();
    labels.sort();
    labels.dedup();
    labels
}

fn coverage(saga_log: &[SagaEntry], plan: &Plan) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut coverage: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (saga, compensate) = (Phase::Saga.as_str(), LogEvent::Compensate.as_str());
    for entry in saga_log.iter().filter(|e| e.phase != saga || e.event == compensate) {
        let row = coverage.entry(format!("{} {} {}", entry.step, entry.phase, entry.event)).or_default();
        let active = active_faults(plan, entry.at_ms);
        if active.is_empty() {
            *row.entry("none".to_string()).or_default() += 1;
        }
        for label in active {
            *row.entry(label).or_default() += 1;
        }
    }
    coverage
}
