//! `cargo test` runs every scenario in `scenarios/` over its seeds (at least 2,000 runs in
//! all; `SIM_SEEDS=N` spreads N runs over the scenarios instead), re-running a sample of
//! seeds to prove their traces equal.

#![allow(clippy::disallowed_methods, reason = "tests read SIM_SEEDS and use all cores")]

use sim::scenario::load_all;
use sim::scenario::load_named;
use sim::sweep::{probe_gaps, sweep, Job, Outcome};

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
    let failures: Vec<String> = outcomes.iter().filter(|o| o.failed()).map(describe).collect();
    let rechecked = jobs.iter().filter(|j| j.recheck).count();
    println!("{} runs, {rechecked} of them twice for determinism", outcomes.len());
    println!("{} passed, {} failed", outcomes.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.concat());
    // The coverage check, enforced for every scenario that ran at least its own seeds.
    let (gaps, unenforced): (Vec<_>, Vec<_>) = probe_gaps(&outcomes).into_iter().partition(|g| g.enforced);
    for gap in &unenforced {
        println!("not hit (yet) {gap}");
    }
    let shown: Vec<String> = gaps.iter().map(|g| format!("UNEXERCISED {g}\n")).collect();
    assert!(gaps.is_empty(), "{}", shown.concat());
}

/// The coverage check fails a scenario that declares a probe its seeds never reach, and
/// names scenario, probe and seeds.
#[test]
fn a_declared_probe_never_hit_fails_the_coverage_check() {
    let mut scenario = load_named("happy-path").unwrap();
    scenario.exercises = vec!["tombstone".to_string(), "key_in_progress".to_string()];
    scenario.seeds = 2;
    let jobs: Vec<Job> =
        (0..2).map(|seed| Job { scenario: scenario.clone(), seed, recheck: false, bug: None }).collect();
    let outcomes = sweep(&jobs, 2, &|_| {});
    assert!(outcomes.iter().all(|o| o.failure.is_none()));
    let gaps = probe_gaps(&outcomes);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert!(gaps[0].enforced);
    assert_eq!(
        (gaps[0].scenario.as_str(), gaps[0].probe.as_str(), gaps[0].seeds.as_slice()),
        ("happy-path", "tombstone", &[0, 1][..])
    );
    assert_eq!(
        gaps[0].to_string(),
        "scenario happy-path exists to exercise probe tombstone, which none of its 2 seeds hit (seeds 0-1)"
    );
    let junit = sim::report::junit(&outcomes);
    assert!(junit.contains("name=\"probes\"") && junit.contains("declared probes never hit: tombstone"), "{junit}");
}
