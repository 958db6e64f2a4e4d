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
    Ok(report.digests_differing == 0)
}
