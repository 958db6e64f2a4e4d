//! Scenarios are data: a TOML file in `scenarios/` fixes the workload, the fault mix and the
//! phase lengths; the seed decides everything else.

use contracts::ServiceName;
use platform::probe::Probe;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Seeds `cargo test` runs for this scenario (scaled by `SIM_SEEDS`).
    pub seeds: u64,
    pub shoppers: u32,
    pub orders_per_shopper: u32,
    /// Faults are injected and new work starts only in the safety phase.
    pub safety_ms: u64,
    /// Everything healed; the cluster must settle within this bound.
    pub liveness_ms: u64,
    /// Stock of the five demo products, in catalog order.
    pub stock: [i64; 5],
    pub slot_capacity: i64,
    /// When the run begins, on every service's clock before any skew (RFC 3339; default
    /// 2026-01-01T00:00:00Z, `cluster::EPOCH_S`). A start a few seconds before an hour has
    /// the run cross it: the current delivery slot goes past and the horizon moves on.
    #[serde(default = "crate::cluster::epoch", skip_serializing_if = "crate::cluster::is_epoch")]
    pub start: contracts::Timestamp,
    /// Delivery slots the shoppers choose from: the first N hours after the start's hour.
    pub slot_choices: u32,
    /// Each shopper deposits a whole amount drawn from 0..=deposit_max.
    pub deposit_max: u64,
    pub latency_max_ms: u64,
    /// Per mille of answers on reused keep-alive connections between services that are
    /// lost after the peer did the work (`platform::Chaos::lost_answer_per_mille`): the
    /// caller must take the outcome as unknown and send it again only if idempotent.
    #[serde(default)]
    pub lost_answer_per_mille: u32,
    pub mix: Mix,
    pub faults: FaultMix,
    /// Coverage probes (`platform::probe::Probe` names) this scenario exists to reach: a
    /// sweep fails the scenario when none of its seeds hit one of them.
    #[serde(default)]
    pub exercises: Vec<String>,
}

/// Per mille of a shopper's orders that take each special form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// The same key sent twice at once.
    pub double_submit: u64,
    /// The previous order's items under a new key (a similar order).
    pub similar: u64,
    /// A read of another shopper's order.
    pub peek: u64,
    /// A call without a session.
    pub anonymous: u64,
    /// A client that gives up waiting for its order (drops the connection mid-request)
    /// and repeats the key later, or never.
    #[serde(default)]
    pub abandon: u64,
    /// An order's key repeated with another body after its answer (422 key-reused).
    #[serde(default)]
    pub reuse_key: u64,
    /// The order sent under two keys at once (at most one order; the other 409 duplicate).
    #[serde(default)]
    pub similar_at_once: u64,
    /// An internal route tried through the gateway before the order (404).
    #[serde(default)]
    pub internal: u64,
    /// A call with a forged session cookie before the order (401).
    #[serde(default)]
    pub forged: u64,
    /// A read of the shopper's own transactions and notifications before the order (only
    /// its own orders may show).
    #[serde(default)]
    pub snoop: u64,
    /// Per mille of shoppers who repeat their deposit's key with another amount (422).
    #[serde(default)]
    pub reuse_deposit_key: u64,
    /// A deposit (keyed or not, half and half) sent at the same moment as the order.
    #[serde(default)]
    pub racing_deposit: u64,
    /// A second login before the order, which is placed under it; then that session is
    /// logged out (its cookie answers 401) and the first goes on working.
    #[serde(default)]
    pub second_session: u64,
    /// A logout while the order's answer is awaited; then a new login, which sees the order.
    #[serde(default)]
    pub logout_in_flight: u64,
    /// The order's key is the same string for every shopper (each gets its own order).
    #[serde(default)]
    pub shared_key: u64,
    /// Before the order, order bodies at each of the contract's limits (valid, of products
    /// nobody sells: 400 unknown-product) and just past each (400 invalid-order).
    #[serde(default)]
    pub edge_body: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Partition,
    PartitionOneWay,
    Isolate,
    Hold,
    Crash,
    Skew,
    Latency,
    Duplicate,
    CrashPoint,
    Storage,
    Pause,
}

impl FaultKind {
    /// In plan order; a new kind goes last, so the plans of the kinds before it stay as they were.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Partition,
        FaultKind::PartitionOneWay,
        FaultKind::Isolate,
        FaultKind::Hold,
        FaultKind::Crash,
        FaultKind::Skew,
        FaultKind::Latency,
        FaultKind::Duplicate,
        FaultKind::CrashPoint,
        FaultKind::Storage,
        FaultKind::Pause,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::PartitionOneWay => "partition_one_way",
            FaultKind::Isolate => "isolate",
            FaultKind::Hold => "hold",
            FaultKind::Crash => "crash",
            FaultKind::Skew => "skew",
            FaultKind::Latency => "latency",
            FaultKind::Duplicate => "duplicate",
            FaultKind::CrashPoint => "crash_point",
            FaultKind::Storage => "storage",
            FaultKind::Pause => "pause",
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// No faults.
    None,
    /// Every listed kind, every seed.
    Pinned,
    /// Each listed kind switched on or off per seed, swarm-style.
    Swarm,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultMix {
    pub mode: FaultMode,
    pub kinds: Vec<FaultKind>,
    /// Most events of one kind in one run (each enabled kind draws 1..=this).
    pub events_max: u64,
    /// Longest partition, hold or crash.
    pub duration_max_ms: u64,
    /// Services a fault may target; empty means all six.
    #[serde(default)]
    pub targets: Vec<ServiceName>,
    /// Largest clock skew (either way); large ones cross the token lifetime and its leeway
    /// (`platform::auth`) and the five-minute similar-order window.
    #[serde(default = "default_skew_max_ms")]
    pub skew_max_ms: u64,
}

fn default_skew_max_ms() -> u64 {
    20_000
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: String, source: toml::de::Error },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
    #[error("no scenario named '{0}' in scenarios/")]
    Unknown(String),
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: shown.clone(), source })?;
        let scenario: Scenario =
            toml::from_str(&text).map_err(|source| ScenarioError::Parse { path: shown.clone(), source })?;
        scenario.validate().map_err(|detail| ScenarioError::Invalid { path: shown, detail })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.shoppers == 0 || self.shoppers > 16, "shoppers must be 1-16"),
            (self.orders_per_shopper > 50, "orders_per_shopper must be at most 50"),
            (self.safety_ms == 0 || self.safety_ms > 600_000, "safety_ms must be 1-600000"),
            (self.liveness_ms < 10_000 || self.liveness_ms > 600_000, "liveness_ms must be 10000-600000"),
            (self.slot_choices == 0 || self.slot_choices > 48, "slot_choices must be 1-48"),
            (self.stock.iter().any(|s| *s < 0), "stock must not be negative"),
            (self.slot_capacity < 0, "slot_capacity must not be negative"),
            (self.latency_max_ms > 1_000, "latency_max_ms must be at most 1000"),
            (self.lost_answer_per_mille > 1_000, "lost_answer_per_mille must be at most 1000"),
            (self.faults.events_max > 20, "faults.events_max must be at most 20"),
        ];
        if let Some((_, message)) = checks.iter().find(|(bad, _)| *bad) {
            return Err((*message).to_string());
        }
        check_start(&self.start)?;
        if let Some(unknown) = self.exercises.iter().find(|name| Probe::parse(name).is_none()) {
            let known: Vec<&str> = Probe::ALL.iter().map(|p| p.name()).collect();
            return Err(format!("exercises: no probe named '{unknown}'; known probes: {}", known.join(", ")));
        }
        Ok(())
    }
}

/// A run's `start` (a scenario's, or an edited plan's): simulated time 0 on every clock,
/// which the cluster's clocks count from in whole seconds of the Unix epoch.
pub fn check_start(start: &contracts::Timestamp) -> Result<(), String> {
    if start.timestamp_subsec_nanos() != 0 || start.timestamp() < 0 {
        return Err("start must be a whole second, at or after 1970-01-01T00:00:00Z".to_string());
    }
    Ok(())
}

/// `scenarios/` at the workspace root.
pub fn scenarios_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scenarios")
}

/// Every scenario in `scenarios/`, by file name.
pub fn load_all() -> Result<Vec<Scenario>, ScenarioError> {
    let dir = scenarios_dir();
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(&dir).map_err(|source| ScenarioError::Read { path: shown, source })?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| Scenario::load(p)).collect()
}

pub fn load_named(name: &str) -> Result<Scenario, ScenarioError> {
    let path = scenarios_dir().join(format!("{name}.toml"));
    if !path.exists() {
        return Err(ScenarioError::Unknown(name.to_string()));
    }
    Scenario::load(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_exercises(exercises: &str) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(scenarios_dir().join("happy-path.toml")).unwrap();
        let text: String = text.lines().filter(|l| !l.starts_with("exercises")).map(|l| format!("{l}\n")).collect();
        let path = std::env::temp_dir().join(format!("sim-scenario-{}-{}.toml", std::process::id(), exercises.len()));
        std::fs::write(&path, format!("exercises = {exercises}\n{text}")).unwrap();
        let loaded = Scenario::load(&path);
        let _ = std::fs::remove_file(&path);
        loaded
    }

    #[test]
    fn exercises_name_known_probes() {
        let loaded = with_exercises("[\"tombstone\", \"saga_resumed\"]").unwrap();
        assert_eq!(loaded.exercises, ["tombstone", "saga_resumed"]);
        let error = with_exercises("[\"tombstones\"]").unwrap_err().to_string();
        assert!(error.contains("exercises: no probe named 'tombstones'"), "{error}");
        assert!(error.contains("known probes: repeated_action"), "{error}");
    }

    #[test]
    fn fault_targets_name_services() {
        let text = std::fs::read_to_string(scenarios_dir().join("participant-crash.toml")).unwrap();
        assert!(text.contains("targets = ["), "participant-crash.toml no longer lists targets");
        let load = |text: &str| {
            let path = std::env::temp_dir().join(format!("sim-targets-{}-{}.toml", std::process::id(), text.len()));
            std::fs::write(&path, text).unwrap();
            let loaded = Scenario::load(&path);
            let _ = std::fs::remove_file(&path);
            loaded
        };
        let loaded = load(&text).unwrap();
        assert!(!loaded.faults.targets.is_empty() && !loaded.faults.targets.contains(&ServiceName::Order));
        let misspelt = text.replacen("\"billing\"", "\"bililng\"", 1);
        assert_ne!(misspelt, text);
        let error = load(&misspelt).unwrap_err().to_string();
        assert!(error.contains("bililng"), "{error}");
    }

    #[test]
    fn every_scenario_file_loads() {
        for scenario in load_all().unwrap() {
            assert!(!scenario.name.is_empty());
        }
    }
}
