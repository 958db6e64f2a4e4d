//! `sim sweep`: scenarios over seed ranges on all cores (or one shard of them), then the
//! reports; `finish` is shared with `sim merge`.

use super::{parse_bug, scenario, scenarios, Verdict};
use crate::shard::{ShardRecord, ShardSpec, SweepKey};
use crate::shrink::shrink;
use crate::sweep::{probe_gaps, sweep, Job, Outcome, Totals};
use crate::wall::wall_ms;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Runs a sweep may spend shrinking one failure for its page.
const SHRINK_RUNS_MAX: u32 = 100;

pub struct SweepOptions {
    pub from: u64,
    pub seeds: Option<u64>,
    pub check_determinism: bool,
    pub jobs: Option<usize>,
    pub stats: bool,
    pub reports: PathBuf,
    pub shrink_failures: usize,
    pub shard: Option<ShardSpec>,
}

/// What a sweep (or a merge of its shards) does with its outcomes.
pub struct Finish {
    pub reports: PathBuf,
    pub shrink_failures: usize,
    pub stats: bool,
}

pub fn run(names: &[String], bug: Option<&str>, options: &SweepOptions) -> Verdict {
    let bug = parse_bug(bug)?;
    let scenarios = scenarios(names)?;
    let mut work = Vec::new();
    for scenario in &scenarios {
        for seed in options.from..options.from + options.seeds.unwrap_or(scenario.seeds) {
            work.push(Job { scenario: scenario.clone(), seed, recheck: options.check_determinism, bug });
        }
    }
    let key = SweepKey {
        scenarios: scenarios.iter().map(|s| s.name.clone()).collect(),
        from: options.from,
        seeds: options.seeds,
        check_determinism: options.check_determinism,
        bug: bug.map(|b| b.name().to_string()),
        jobs: work.len(),
    };
    let indexes: Vec<usize> = (0..work.len()).filter(|&i| options.shard.is_none_or(|s| s.owns(i))).collect();
    let work: Vec<Job> = indexes.iter().map(|&i| work[i].clone()).collect();
    let workers = options.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(work.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left {msg}")
            .expect("valid template"),
    );
    let (outcomes, wall) = wall_ms(|| {
        sweep(&work, workers, &|outcome: &Outcome| {
            if outcome.failed() {
                bar.println(format!("FAILED {} seed {}", outcome.scenario, outcome.seed));
            }
            bar.inc(1);
        })
    });
    bar.finish_and_clear();
    if let Some(shard) = options.shard {
        let total = key.jobs;
        ShardRecord::new(shard, key, wall, &indexes, &outcomes)
            .write(&options.reports)
            .map_err(|e| format!("cannot write shard.json to {}: {e}", options.reports.display()))?;
        println!("shard {shard}: {} of the sweep's {total} runs", outcomes.len());
    }
    let finish =
        Finish { reports: options.reports.clone(), shrink_failures: options.shrink_failures, stats: options.stats };
    finish.run(&outcomes, wall)
}

impl Finish {
    /// Shrinks the first failures, writes the reports, prints the verdict; true when it passed.
    pub fn run(&self, outcomes: &[Outcome], wall: f64) -> Verdict {
        let mut shrunk = Vec::new();
        for report in outcomes.iter().filter_map(|o| o.failure.as_deref()).take(self.shrink_failures) {
            let scenario = scenario(&report.scenario)?;
            eprintln!("shrinking {} seed {} …", report.scenario, report.seed);
            shrunk.extend(shrink(&scenario, &report.plan, SHRINK_RUNS_MAX));
        }
        crate::report::write_reports(&self.reports, outcomes, wall, &shrunk)
            .map_err(|e| format!("cannot write reports to {}: {e}", self.reports.display()))?;
        print_failures(outcomes);
        if self.stats {
            let mut totals = Totals::default();
            for outcome in outcomes {
                totals.add(&outcome.stats);
            }
            println!("{}", serde_json::to_string_pretty(&totals).expect("serializable"));
        }
        let failed = outcomes.iter().filter(|o| o.failed()).count();
        // The coverage check: each scenario must reach the probes it declares in `exercises`.
        let (gaps, unenforced): (Vec<_>, Vec<_>) = probe_gaps(outcomes).into_iter().partition(|g| g.enforced);
        for gap in &unenforced {
            println!("not hit (yet) {gap}");
        }
        for gap in &gaps {
            println!("UNEXERCISED {gap}");
        }
        println!(
            "reports: {}/junit.xml, summary.json, coverage.md{}",
            self.reports.display(),
            if failed > 0 { ", failures/" } else { "" }
        );
        let unexercised =
            if gaps.is_empty() { String::new() } else { format!(", {} declared probes never hit", gaps.len()) };
        println!("{} passed, {failed} failed{unexercised}", outcomes.len() - failed);
        Ok(failed == 0 && gaps.is_empty())
    }
}

fn print_failures(outcomes: &[Outcome]) {
    for outcome in outcomes {
        if let Some((first, second)) = &outcome.nondeterministic {
            println!("NONDETERMINISTIC {} seed {}: digests {first} and {second}", outcome.scenario, outcome.seed);
        }
        let Some(report) = &outcome.failure else {
            continue;
        };
        println!("FAILED scenario {} seed {} (digest {})", report.scenario, report.seed, report.digest);
        for violation in report.violations.iter().take(5) {
            println!("  {violation}");
        }
        if report.violations.len() > 5 {
            println!("  … and {} more", report.violations.len() - 5);
        }
        println!("  replay: {}", report.replay_command());
    }
}
