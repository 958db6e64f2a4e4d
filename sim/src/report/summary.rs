//! `summary.json`, for CI dashboards and scripts: the sweep's counts and totals.

use super::{page_stem, WORKLOAD};
use crate::sweep::{probe_gaps, Outcome, ProbeGap, Totals};
use platform::crash_point::CrashPoint;
use platform::probe::Probe;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Bumped when a field of `summary.json` changes meaning or goes away.
pub const SUMMARY_SCHEMA: u32 = 1;

/// `summary.json`. Fields (here and in the structs below) are in alphabetical order, the
/// order the file has always had its keys in; a test holds them there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Orders that ended confirmed.
    pub confirmed: u64,
    /// Saga events by the faults active when they happened.
    pub coverage: BTreeMap<String, BTreeMap<String, u64>>,
    /// Every crash point: reached (armed or not) and fired.
    pub crash_points: BTreeMap<&'static str, CrashPointCount>,
    /// Runs that were run twice.
    pub determinism_checks: usize,
    /// Runs that failed.
    pub failed: u64,
    /// Orders that ended failed.
    pub failed_orders: u64,
    pub failures: Vec<FailureSummary>,
    /// Faults planned, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Totals from the services' metrics registries.
    pub metrics: BTreeMap<String, u64>,
    /// Runs whose second run gave another digest.
    pub nondeterministic: usize,
    pub orders: u64,
    pub passed: u64,
    pub probe_gaps: Vec<ProbeGap>,
    /// Hits of every coverage probe.
    pub probes: BTreeMap<&'static str, u64>,
    pub requests: u64,
    pub runs: usize,
    /// Wall time: differs between two sweeps of the same seeds.
    pub runs_per_s: f64,
    pub saga_events: BTreeMap<String, u64>,
    pub scenarios: Vec<ScenarioSummary>,
    pub schema: u32,
    pub simulated_ms: u64,
    /// Wall time: differs between two sweeps of the same seeds.
    pub wall_ms: f64,
    /// Requests of every adversarial workload behaviour.
    pub workload: BTreeMap<&'static str, u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct CrashPointCount {
    pub fired: u64,
    pub reached: u64,
}

/// One failing run: how to replay it and where its page is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailureSummary {
    pub bug: Option<String>,
    pub invariants: BTreeSet<u8>,
    /// Relative to the reports directory.
    pub page: String,
    pub replay: String,
    pub scenario: String,
    pub seed: u64,
}

/// One scenario of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioSummary {
    pub failed: u64,
    pub name: String,
    pub passed: u64,
    /// How many of its seeds hit each probe.
    pub probe_seeds: BTreeMap<String, u64>,
    pub seeds: u64,
}

pub fn summary(outcomes: &[Outcome], wall_ms: f64) -> Summary {
    let mut totals = Totals::default();
    let mut scenarios: BTreeMap<&str, ScenarioSummary> = BTreeMap::new();
    for outcome in outcomes {
        totals.add(&outcome.stats);
        let entry = scenarios.entry(outcome.scenario.as_str()).or_insert_with(|| ScenarioSummary {
            failed: 0,
            name: outcome.scenario.clone(),
            passed: 0,
            probe_seeds: BTreeMap::new(),
            seeds: 0,
        });
        entry.seeds += 1;
        if outcome.failed() {
            entry.failed += 1;
        } else {
            entry.passed += 1;
        }
        for (probe, _) in outcome.stats.probes.iter().filter(|(_, hits)| **hits > 0) {
            *entry.probe_seeds.entry(probe.clone()).or_default() += 1;
        }
    }
    let failures = outcomes
        .iter()
        .filter_map(|o| o.failure.as_ref())
        .map(|r| FailureSummary {
            bug: r.plan.bug.clone(),
            invariants: r.violations.iter().map(|v| v.invariant).collect(),
            page: format!("{}.md", page_stem(r)),
            replay: r.replay_command(),
            scenario: r.scenario.clone(),
            seed: r.seed,
        })
        .collect();
    let failed = scenarios.values().map(|s| s.failed).sum::<u64>();
    Summary {
        confirmed: totals.confirmed,
        crash_points: CrashPoint::ALL
            .iter()
            .map(|p| {
                let (reached, fired) = totals.crash_points.get(p.name()).copied().unwrap_or_default();
                (p.name(), CrashPointCount { fired, reached })
            })
            .collect(),
        determinism_checks: outcomes.iter().filter(|o| o.rechecked).count(),
        failed,
        failed_orders: totals.failed,
        failures,
        nondeterministic: outcomes.iter().filter(|o| o.nondeterministic.is_some()).count(),
        orders: totals.orders,
        passed: outcomes.len() as u64 - failed,
        probe_gaps: probe_gaps(outcomes),
        probes: Probe::ALL.iter().map(|p| (p.name(), totals.probes.get(p.name()).copied().unwrap_or(0))).collect(),
        requests: totals.requests,
        runs: outcomes.len(),
        runs_per_s: if wall_ms > 0.0 {
            ((outcomes.len() as f64) / (wall_ms / 1000.0) * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        scenarios: scenarios.into_values().collect(),
        schema: SUMMARY_SCHEMA,
        simulated_ms: totals.simulated_ms,
        wall_ms: (wall_ms * 1000.0).round() / 1000.0,
        workload: WORKLOAD.iter().map(|w| (*w, totals.workload.get(*w).copied().unwrap_or(0))).collect(),
        coverage: totals.coverage,
        faults: totals.faults,
        metrics: totals.metrics,
        saga_events: totals.saga_events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde_json writes a struct's fields in declaration order and a map's keys sorted: the
    /// file keeps its shape only while every struct here declares its fields sorted.
    #[test]
    fn fields_are_written_in_the_order_of_the_files_before() {
        let mut summary = summary(&[], 1.0);
        summary.scenarios.push(ScenarioSummary {
            failed: 1,
            name: "crash".into(),
            passed: 2,
            probe_seeds: [("tombstone".to_string(), 1)].into(),
            seeds: 3,
        });
        summary.failures.push(FailureSummary {
            bug: Some("withdraw-twice".into()),
            invariants: [1, 2].into(),
            page: "failures/crash-seed-4-withdraw-twice.md".into(),
            replay: "cargo run".into(),
            scenario: "crash".into(),
            seed: 4,
        });
        summary.probe_gaps.push(ProbeGap {
            enforced: true,
            probe: "tombstone".into(),
            scenario: "crash".into(),
            seeds: vec![0, 1],
        });
        let written = serde_json::to_string_pretty(&summary).unwrap();
        let sorted = serde_json::to_string_pretty(&serde_json::to_value(&summary).unwrap()).unwrap();
        assert_eq!(written, sorted);
    }
}
