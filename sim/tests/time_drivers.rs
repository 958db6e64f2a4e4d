//! The event-driven time driver changes only what a run costs: every scenario's seeds and
//! every planted bug's targeted runs give the same digest, the same violations and the same
//! fault timeline under it as under the fixed 1 ms driver, in fewer steps.
//! `SIM_DRIVER_SEEDS` (default 2) sets the seeds of each scenario.

use sim::catalog::CATALOG;
use sim::run::{run_driven, RunReport, TimeDriver};
use sim::scenario::{load_all, load_named};

#[expect(clippy::disallowed_methods, reason = "the test reads SIM_DRIVER_SEEDS")]
fn seeds() -> u64 {
    std::env::var("SIM_DRIVER_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2)
}

/// Runs the seed under both drivers, asserts the same run, and returns the steps each took.
fn same_run(fixed: &RunReport, event: &RunReport) -> (u64, u64) {
    let what = format!("{} seed {} bug {:?}", fixed.scenario, fixed.seed, fixed.plan.bug);
    assert_eq!(fixed.digest, event.digest, "{what}: the drivers' digests differ");
    assert_eq!(fixed.violations, event.violations, "{what}: the drivers' verdicts differ");
    assert_eq!(fixed.timeline, event.timeline, "{what}: the drivers' fault timelines differ");
    assert_eq!(fixed.stats, event.stats, "{what}: the drivers' statistics differ");
    (fixed.steps, event.steps)
}

#[test]
fn every_scenario_runs_the_same_under_both_drivers_in_fewer_steps() {
    let (mut fixed_steps, mut event_steps) = (0, 0);
    for scenario in load_all().expect("the scenarios load") {
        for seed in 0..seeds() {
            let fixed = run_driven(&scenario, seed, None, TimeDriver::Fixed);
            let event = run_driven(&scenario, seed, None, TimeDriver::EventDriven);
            let (f, e) = same_run(&fixed, &event);
            assert_eq!(f, fixed.stats.simulated_ms, "the fixed driver steps once a millisecond");
            fixed_steps += f;
            event_steps += e;
        }
    }
    println!("steps: fixed {fixed_steps}, event-driven {event_steps}");
    assert!(
        event_steps * 2 < fixed_steps,
        "the event-driven driver skips little: {event_steps} of {fixed_steps} steps"
    );
}

#[test]
fn every_planted_bug_runs_the_same_under_both_drivers() {
    for entry in &CATALOG {
        let scenario = load_named(entry.scenario).expect("the scenario loads");
        for seed in 0..seeds() {
            let fixed = run_driven(&scenario, seed, Some(entry.bug), TimeDriver::Fixed);
            let event = run_driven(&scenario, seed, Some(entry.bug), TimeDriver::EventDriven);
            same_run(&fixed, &event);
        }
    }
}
