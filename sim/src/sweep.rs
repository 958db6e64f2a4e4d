//! Sweeps: many seeds of many scenarios on all cores, with the determinism self-check.

use crate::run::{run, RunReport, Stats};
use crate::scenario::Scenario;
use platform::bugs::Bug;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// One seed's verdict, small enough to keep for thousands of runs.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub digest: String,
    /// The full report of a failing run; passing runs keep only their digest.
    pub failure: Option<Box<RunReport>>,
    /// A second run of the same seed disagreed: (first digest, second digest).
    pub nondeterministic: Option<(String, String)>,
    /// Whether the seed ran twice.
    pub rechecked: bool,
    pub stats: crate::run::Stats,
    /// The probes the scenario declares it exercises (its `exercises`).
    pub exercises: Vec<String>,
    /// The scenario's own `seeds`: its probes are held to be hit within that many.
    pub scenario_seeds: u64,
}

/// One seed of one scenario to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub scenario: Scenario,
    pub seed: u64,
    /// Run twice and compare the digests.
    pub recheck: bool,
    pub bug: Option<Bug>,
}

/// Runs the seed, and again when `recheck` holds, comparing the digests.
pub fn run_seed(job: &Job) -> Outcome {
    let (scenario, seed) = (&job.scenario, job.seed);
    let report = run(scenario, seed, job.bug);
    let nondeterministic = if job.recheck {
        let again = run(scenario, seed, job.bug);
        (again.digest != report.digest).then(|| (report.digest.clone(), again.digest.clone()))
    } else {
        None
    };
    Outcome {
        scenario: scenario.name.clone(),
        seed,
        digest: report.digest.clone(),
        stats: report.stats.clone(),
        failure: (!report.passed()).then(|| Box::new(report)),
        nondeterministic,
        rechecked: job.recheck,
        exercises: scenario.exercises.clone(),
        scenario_seeds: scenario.seeds,
    }
}

/// Runs every (scenario, seed) job on `workers` threads; `progress` is told of each end.
/// Results come back in job order, whatever order the threads finished in.
pub fn sweep(jobs: &[Job], workers: usize, progress: &(dyn Fn(&Outcome) + Sync)) -> Vec<Outcome> {
    run_jobs(jobs, workers, false, progress).into_iter().map(|o| o.expect("every job ran")).collect()
}

/// Runs the jobs in order on `workers` threads until one fails (a violation or a
/// nondeterministic digest), starting no job after that; returns the first failure in job
/// order among those that ran, and how many ran. The judge of a mutant (`sim/mutants.sh`).
pub fn first_failure(jobs: &[Job], workers: usize) -> (Option<Outcome>, usize) {
    let outcomes = run_jobs(jobs, workers, true, &|_| {});
    let ran = outcomes.iter().flatten().count();
    (outcomes.into_iter().flatten().find(Outcome::failed), ran)
}

impl Outcome {
    /// A violation, or two runs of the seed that disagreed.
    pub fn failed(&self) -> bool {
        self.failure.is_some() || self.nondeterministic.is_some()
    }
}

/// The worker pool of [`sweep`] and [`first_failure`]: with `stop_at_failure`, no job starts
/// after one has failed, and the jobs not started stay `None`.
fn run_jobs(
    jobs: &[Job],
    workers: usize,
    stop_at_failure: bool,
    progress: &(dyn Fn(&Outcome) + Sync),
) -> Vec<Option<Outcome>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    // Independent simulations on all cores; each run is single-threaded.
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(index) else {
                    return;
                };
                let outcome = run_seed(job);
                progress(&outcome);
                if stop_at_failure && outcome.failed() {
                    stop.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(outcome);
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// What a sweep exercised, added up over its runs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Totals {
    pub runs: u64,
    pub simulated_ms: u64,
    pub orders: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub requests: u64,
    pub faults: std::collections::BTreeMap<String, u64>,
    pub saga_events: std::collections::BTreeMap<String, u64>,
    pub coverage: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// Hits of each coverage probe.
    pub probes: std::collections::BTreeMap<String, u64>,
    /// Requests of each adversarial workload behaviour.
    pub workload: std::collections::BTreeMap<String, u64>,
    /// Crash points reached (armed or not) and fired, by point name.
    pub crash_points: std::collections::BTreeMap<String, (u64, u64)>,
    /// Runs whose plan had a fault of each kind.
    pub fault_runs: std::collections::BTreeMap<String, u64>,
    /// Crash-point faults planned, and runs that planned one, by point name.
    pub crash_points_planned: std::collections::BTreeMap<String, u64>,
    pub crash_point_runs: std::collections::BTreeMap<String, u64>,
    /// Totals from the services' metrics registries (`Stats::metrics`).
    pub metrics: std::collections::BTreeMap<String, u64>,
}

impl Totals {
    pub fn add(&mut self, stats: &Stats) {
        self.runs += 1;
        self.simulated_ms += stats.simulated_ms;
        self.orders += stats.orders;
        self.confirmed += stats.confirmed;
        self.failed += stats.failed;
        self.requests += stats.requests;
        for (kind, count) in &stats.faults {
            *self.faults.entry(kind.clone()).or_default() += count;
            *self.fault_runs.entry(kind.clone()).or_default() += u64::from(*count > 0);
        }
        for (point, count) in &stats.crash_points_planned {
            *self.crash_points_planned.entry(point.clone()).or_default() += count;
            *self.crash_point_runs.entry(point.clone()).or_default() += u64::from(*count > 0);
        }
        for (event, count) in &stats.saga_events {
            *self.saga_events.entry(event.clone()).or_default() += count;
        }
        for (probe, hits) in &stats.probes {
            *self.probes.entry(probe.clone()).or_default() += hits;
        }
        for (key, hits) in &stats.crash_points {
            let point = key.split_whitespace().next().unwrap_or(key).to_string();
            self.crash_points.entry(point).or_default().0 += hits;
        }
        for (key, fired) in &stats.crash_points_fired {
            let point = key.split_whitespace().next().unwrap_or(key).to_string();
            self.crash_points.entry(point).or_default().1 += fired;
        }
        for (name, value) in &stats.metrics {
            *self.metrics.entry(name.clone()).or_default() += value;
        }
        for (behaviour, count) in &stats.workload {
            *self.workload.entry(behaviour.clone()).or_default() += count;
        }
        for (event, faults) in &stats.coverage {
            let row = self.coverage.entry(event.clone()).or_default();
            for (fault, count) in faults {
                *row.entry(fault.clone()).or_default() += count;
            }
        }
    }
}

/// A scenario's declared probe that none of its seeds in a sweep hit. Fields in
/// alphabetical order, as `summary.json` has them (`report::Summary`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProbeGap {
    /// Whether at least the scenario's own `seeds` ran: only then does the gap fail the
    /// sweep (fewer seeds may simply not reach a rare probe).
    pub enforced: bool,
    pub probe: String,
    pub scenario: String,
    /// The seeds of the scenario that ran, in order.
    pub seeds: Vec<u64>,
}

impl std::fmt::Display for ProbeGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scenario {} exists to exercise probe {}, which none of its {} seeds hit (seeds {})",
            self.scenario,
            self.probe,
            self.seeds.len(),
            seed_ranges(&self.seeds)
        )?;
        if !self.enforced {
            write!(f, "; not enforced: fewer seeds than the scenario's own")?;
        }
        Ok(())
    }
}

/// "0-29" or "0-9, 20, 40-41".
pub fn seed_ranges(seeds: &[u64]) -> String {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &seed in seeds {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == seed => *last = seed,
            _ => ranges.push((seed, seed)),
        }
    }
    let shown: Vec<String> =
        ranges.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    shown.join(", ")
}

/// The coverage check: per scenario of the sweep, each declared probe that no seed hit
/// (`enforced` when the scenario ran at least its own `seeds`).
/// Results are in scenario order, then in the order the scenario declares its probes.
pub fn probe_gaps(outcomes: &[Outcome]) -> Vec<ProbeGap> {
    type Seen<'a> = (&'a Outcome, Vec<u64>, std::collections::BTreeSet<&'a str>);
    let mut scenarios: std::collections::BTreeMap<&str, Seen<'_>> = std::collections::BTreeMap::new();
    for outcome in outcomes {
        let entry =
            scenarios.entry(outcome.scenario.as_str()).or_insert_with(|| (outcome, Vec::new(), Default::default()));
        entry.1.push(outcome.seed);
        entry.2.extend(outcome.stats.probes.iter().filter(|(_, hits)| **hits > 0).map(|(probe, _)| probe.as_str()));
    }
    let mut gaps = Vec::new();
    for (scenario, (first, mut seeds, hit)) in scenarios {
        seeds.sort_unstable();
        seeds.dedup();
        let enforced = seeds.len() as u64 >= first.scenario_seeds;
        for probe in first.exercises.iter().filter(|p| !hit.contains(p.as_str())) {
            let (scenario, probe, seeds) = (scenario.to_string(), probe.clone(), seeds.clone());
            gaps.push(ProbeGap { scenario, probe, seeds, enforced });
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_are_compact() {
        assert_eq!(seed_ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(seed_ranges(&[0, 1, 5, 7, 8]), "0-1, 5, 7-8");
        assert_eq!(seed_ranges(&[]), "");
    }
}
