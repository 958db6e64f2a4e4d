//! Sweeps: many seeds of many scenarios on all cores, with the determinism self-check.

use crate::run::{run, RunReport, Stats};
use crate::scenario::Scenario;
use platform::bugs::Bug;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    }
}

/// Runs every (scenario, seed) job on `workers` threads; `progress` is told of each end.
/// Results come back in job order, whatever order the threads finished in.
pub fn sweep(jobs: &[Job], workers: usize, progress: &(dyn Fn(&Outcome) + Sync)) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    // Independent simulations on all cores; each run is single-threaded.
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(index) else {
                    return;
                };
                let outcome = run_seed(job);
                progress(&outcome);
                results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(outcome);
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().map(|o| o.expect("every job ran")).collect()
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
        }
        for (event, count) in &stats.saga_events {
            *self.saga_events.entry(event.clone()).or_default() += count;
        }
        for (event, faults) in &stats.coverage {
            let row = self.coverage.entry(event.clone()).or_default();
            for (fault, count) in faults {
                *row.entry(fault.clone()).or_default() += count;
            }
        }
    }
}
