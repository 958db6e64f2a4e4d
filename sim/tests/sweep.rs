//! `cargo test` runs every scenario in `scenarios/` over its seeds (at least 2,000 runs in
//! all; `SIM_SEEDS=N` spreads N runs over the scenarios instead), re-running a sample of
//! seeds to prove their traces equal.

#![allow(clippy::disallowed_methods, reason = "tests read SIM_SEEDS and use all cores")]

use sim::scenario::load_all;
use sim::sweep::{sweep, Job, Outcome};

/// Seeds of each scenario that run twice.
const DETERMINISM_SAMPLE: u64 = 3;

fn jobs() -> Vec<Job> {
    let scenarios = load_all().expect("scenarios/ loads");
    let total: u64 = scenarios.iter().map(|s| s.seeds).sum();
    let wanted: Option<u64> = std::env::var("SIM_SEEDS").ok().map(|v| v.parse().expect("SIM_SEEDS is a number"));
    let mut jobs = Vec::new();
    for scenario in scenarios {
        let seeds = match wanted {
            Some(wanted) => (wanted * scenario.seeds / total.max(1)).max(1),
            None => scenario.seeds,
        };
        for seed in 0..seeds {
            jobs.push(Job { scenario: scenario.clone(), seed, recheck: seed < DETERMINISM_SAMPLE, bug: None });
        }
    }
    jobs
}

fn describe(outcome: &Outcome) -> String {
    let mut text = String::new();
    if let Some((first, second)) = &outcome.nondeterministic {
        text.push_str(&format!(
            "NONDETERMINISTIC {} seed {}: digests {first} then {second}\n",
            outcome.scenario, outcome.seed
        ));
    }
    if let Some(report) = &outcome.failure {
        text.push_str(&format!("FAILED {} seed {}\n", report.scenario, report.seed));
        for violation in report.violations.iter().take(5) {
            text.push_str(&format!("  {violation}\n"));
        }
        text.push_str(&format!("  replay: {}\n", report.replay_command()));
    }
    text
}

#[test]
fn every_scenario_holds_every_invariant_on_every_seed() {
    let jobs = jobs();
    let default_total: u64 = load_all().unwrap().iter().map(|s| s.seeds).sum();
    assert!(default_total >= 2_000, "the scenarios hold {default_total} seeds; at least 2,000 must run by default");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let outcomes = sweep(&jobs, workers, &|_| {});
    // The CI artifact: the README's test command leaves the sweep's reports in reports/.
    let reports = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports");
    sim::report::write_reports(&reports, &outcomes, 0.0, &[]).expect("reports/ is writable");
    let failures: Vec<String> =
        outcomes.iter().filter(|o| o.failure.is_some() || o.nondeterministic.is_some()).map(describe).collect();
    let rechecked = jobs.iter().filter(|j| j.recheck).count();
    println!("{} runs, {rechecked} of them twice for determinism", outcomes.len());
    println!("{} passed, {} failed", outcomes.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.concat());
}
