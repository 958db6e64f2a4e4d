//! `sim bench`: the scenario mix against bare turmoil.

use super::Verdict;
use crate::scenario::load_all;

pub fn run(seeds: u64) -> Verdict {
    let scenarios = load_all().map_err(|e| e.to_string())?;
    let report = crate::bench::bench(&scenarios, seeds);
    println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
    println!(
        "store: {:.1} runs/s, {:.0}x real time; bare turmoil: {:.1} runs/s, {:.0}x real time; ratio {:.2}",
        report.store_runs_per_s, report.store_speedup, report.bare_runs_per_s, report.bare_speedup, report.ratio
    );
    let per_run = |steps: u64| steps as f64 / report.runs.max(1) as f64;
    println!(
        "event-driven store: {:.1} runs/s, {:.0}x real time; {:.2}x the fixed driver's runs/s; steps per run {:.0} (fixed {:.0}); digests differing {}",
        report.event_runs_per_s,
        report.event_speedup,
        report.event_gain,
        per_run(report.event_steps),
        per_run(report.fixed_steps),
        report.digests_differing
    );
    println!(
        "host ticks per run: event-driven {:.0} ({:.0} skipped), fixed {:.0}",
        per_run(report.event_host_ticks),
        per_run(report.event_host_skips),
        per_run(report.fixed_host_ticks)
    );
    let bounds = &report.bounds;
    println!(
        "per run: {:.0} ms simulated; fixed driver {:.1} ms, event-driven {:.1} ms; the fixed driver's stepping over idle \
         time {:.1} ms",
        bounds.simulated_ms, bounds.fixed_ms, bounds.event_ms, bounds.stepping_ms
    );
    println!(
        "goals: 10x the fixed driver needs event-driven runs of <= {:.1} ms ({:.1}x cheaper than now), 700x real time \
         <= {:.1} ms ({:.1}x cheaper)",
        bounds.event_budget_10x_ms,
        bounds.cheaper_by(bounds.event_budget_10x_ms),
        bounds.event_budget_700x_real_time_ms,
        bounds.cheaper_by(bounds.event_budget_700x_real_time_ms),
    );
    Ok(report.digests_differing == 0)
}
