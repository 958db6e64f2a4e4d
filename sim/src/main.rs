//! `sim`: run one seed or plan, sweep scenarios over seed ranges on all cores, shrink a
//! failing seed to a minimal plan, or benchmark against bare turmoil.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use platform::bugs::Bug;
use sim::plan::{from_seed, Plan};
use sim::run::{run_plan, RunReport};
use sim::scenario::{load_all, load_named, Scenario};
use sim::shard::{ShardRecord, ShardSpec, SweepKey};
use sim::shrink::shrink;
use sim::sweep::{probe_gaps, sweep, Job, Outcome, Totals};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "sim", about = "Deterministic simulation of the store.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one seed of a scenario (or a plan file) and print its trace digest.
    Run {
        #[arg(long, required_unless_present = "plan")]
        scenario: Option<String>,
        #[arg(long, required_unless_present = "plan")]
        seed: Option<u64>,
        /// Replay a plan written by `shrink` (or `--write-plan`), edited or not.
        #[arg(long, conflicts_with_all = ["scenario", "seed"])]
        plan: Option<PathBuf>,
        /// Plant a bug (needs a build with `--features planted-bugs`).
        #[arg(long)]
        bug: Option<String>,
        /// Print the timeline of faults and requests.
        #[arg(long)]
        trace: bool,
        /// Write the run's plan to this file.
        #[arg(long)]
        write_plan: Option<PathBuf>,
    },
    /// Run scenarios over a range of seeds on all cores; ends with `N passed, M failed`.
    Sweep {
        /// Scenario names (default: every file in scenarios/).
        #[arg(long, value_delimiter = ',')]
        scenario: Vec<String>,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Seeds per scenario (default: each scenario's own `seeds`).
        #[arg(long)]
        seeds: Option<u64>,
        /// Run every seed twice and compare digests.
        #[arg(long)]
        check_determinism: bool,
        /// Plant a bug (needs a build with `--features planted-bugs`).
        #[arg(long)]
        bug: Option<String>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Print what the sweep exercised: faults and saga events, added up.
        #[arg(long)]
        stats: bool,
        /// Where junit.xml, summary.json, coverage.md and the failure pages go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Shrink at most this many failures for their pages (0: none).
        #[arg(long, default_value_t = 3)]
        shrink_failures: usize,
        /// Run only shard I of N (from 1): the runs whose index in the sweep is I-1 modulo
        /// N. Writes shard.json beside the reports for `sim merge`.
        #[arg(long)]
        shard: Option<ShardSpec>,
    },
    /// Merge the reports directories of a sharded sweep's shards (`sweep --shard I/N`) into
    /// the reports the unsharded sweep writes; re-runs only the failing seeds for their pages.
    Merge {
        /// The shards' reports directories (each with its shard.json), every shard once.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Where the merged junit.xml, summary.json, coverage.md and failure pages go.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// Shrink at most this many failures for their pages (0: none).
        #[arg(long, default_value_t = 3)]
        shrink_failures: usize,
        /// Print what the sweep exercised: faults and saga events, added up.
        #[arg(long)]
        stats: bool,
    },
    /// Shrink a failing seed to a minimal plan; writes both plans next to each other.
    Shrink {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        bug: Option<String>,
        /// Most runs the search may spend.
        #[arg(long, default_value_t = 300)]
        runs_max: u32,
        /// Where the plans go.
        #[arg(long, default_value = "reports/plans")]
        out: PathBuf,
    },
    /// Hunt every planted bug: seeds to the first failure in its scenario and in the swarm
    /// scenario, and the size of the shrunk plan; prints the README's table.
    Catalog {
        #[arg(long, default_value_t = 200)]
        targeted_seeds: u64,
        #[arg(long, default_value_t = 2000)]
        swarm_seeds: u64,
        /// Only these bugs (default: every catalogued one).
        #[arg(long, value_delimiter = ',')]
        bug: Vec<String>,
    },
    /// Benchmark (one core): the scenario mix against bare turmoil with the same hosts and
    /// simulated time; prints runs per second, simulated-to-wall speed and the ratio.
    Bench {
        /// Seeds of each scenario.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run { scenario, seed, plan, bug, trace, write_plan } => {
            run_one(scenario, seed, plan, bug.as_deref(), trace, write_plan)
        }
        Command::Sweep {
            scenario,
            from,
            seeds,
            check_determinism,
            bug,
            jobs,
            stats,
            reports,
            shrink_failures,
            shard,
        } => {
            let options = SweepOptions { from, seeds, check_determinism, jobs, stats, reports, shrink_failures, shard };
            run_sweep(&scenario, bug.as_deref(), &options)
        }
        Command::Merge { shards, reports, shrink_failures, stats } => {
            run_merge(&shards, &Finish { reports, shrink_failures, stats })
        }
        Command::Shrink { scenario, seed, bug, runs_max, out } => {
            run_shrink(&scenario, seed, bug.as_deref(), runs_max, &out)
        }
        Command::Bench { seeds } => run_bench(seeds),
        Command::Catalog { targeted_seeds, swarm_seeds, bug } => run_catalog(targeted_seeds, swarm_seeds, &bug),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn parse_bug(name: Option<&str>) -> Result<Option<Bug>, String> {
    let Some(name) = name else { return Ok(None) };
    let bug = Bug::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("no planted bug named '{name}'; known: {}", known.join(", "))
    })?;
    if !platform::bugs::plant(Some(bug)) {
        return Err("this sim was built without planted bugs: run it with `--features planted-bugs`".into());
    }
    platform::bugs::plant(None);
    Ok(Some(bug))
}

/// Runs a sweep may spend shrinking one failure for its page.
const SHRINK_RUNS_MAX: u32 = 100;

fn scenarios(names: &[String]) -> Result<Vec<Scenario>, String> {
    if names.is_empty() {
        return load_all().map_err(|e| e.to_string());
    }
    names.iter().map(|n| load_named(n).map_err(|e| e.to_string())).collect()
}

fn print_report(report: &RunReport, trace: bool) {
    if trace {
        let mut lines: Vec<(u64, String)> = report.timeline.iter().map(|l| (parse_ms(l), l.clone())).collect();
        lines.extend(report.history.iter().map(|e| (e.at_ms, e.line())));
        lines.sort_by_key(|(at, _)| *at);
        for (_, line) in lines {
            println!("{line}");
        }
    }
    let stats = &report.stats;
    println!(
        "scenario {} seed {}: {} orders ({} confirmed, {} failed), {} requests, {} ms simulated, faults {:?}",
        report.scenario,
        report.seed,
        stats.orders,
        stats.confirmed,
        stats.failed,
        stats.requests,
        stats.simulated_ms,
        stats.faults
    );
    println!("digest {}", report.digest);
    for violation in &report.violations {
        println!("VIOLATION {violation}");
    }
}

fn run_one(
    scenario: Option<String>,
    seed: Option<u64>,
    plan_file: Option<PathBuf>,
    bug: Option<&str>,
    trace: bool,
    write_plan: Option<PathBuf>,
) -> Result<bool, String> {
    let bug = parse_bug(bug)?;
    let (scenario, mut plan) = match (plan_file, scenario, seed) {
        (Some(path), _, _) => {
            let plan = Plan::read(&path).map_err(|e| e.to_string())?;
            (load_named(&plan.scenario).map_err(|e| e.to_string())?, plan)
        }
        (None, Some(name), Some(seed)) => {
            let scenario = load_named(&name).map_err(|e| e.to_string())?;
            let plan = from_seed(&scenario, seed);
            (scenario, plan)
        }
        _ => return Err("give --scenario and --seed, or --plan".into()),
    };
    if let Some(bug) = bug {
        plan.bug = Some(bug.name().to_string());
    }
    parse_bug(plan.bug.as_deref())?;
    if let Some(path) = write_plan {
        plan.write(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let report = run_plan(&scenario, &plan);
    print_report(&report, trace);
    Ok(report.passed())
}

fn parse_ms(line: &str) -> u64 {
    line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

struct SweepOptions {
    from: u64,
    seeds: Option<u64>,
    check_determinism: bool,
    jobs: Option<usize>,
    stats: bool,
    reports: PathBuf,
    shrink_failures: usize,
    shard: Option<ShardSpec>,
}

/// What a sweep (or a merge of its shards) does with its outcomes.
struct Finish {
    reports: PathBuf,
    shrink_failures: usize,
    stats: bool,
}

#[expect(clippy::disallowed_types, clippy::disallowed_methods, reason = "the sweep reports its wall time")]
fn wall_ms<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let started = std::time::Instant::now();
    let value = work();
    (value, started.elapsed().as_secs_f64() * 1000.0)
}

fn run_sweep(names: &[String], bug: Option<&str>, options: &SweepOptions) -> Result<bool, String> {
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
    finish_sweep(&outcomes, wall, &finish)
}

fn run_merge(dirs: &[PathBuf], finish: &Finish) -> Result<bool, String> {
    let records =
        dirs.iter().map(|dir| ShardRecord::read(dir)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let runs = sim::shard::check(&records).map_err(|e| e.to_string())?;
    let failing = runs.iter().filter(|r| r.failed).count();
    let first = &records[0];
    let bug = parse_bug(first.sweep.bug.as_deref())?;
    println!(
        "merging {} shards of {} runs ({} scenarios from seed {}); re-running {failing} failing seeds",
        records.len(),
        first.sweep.jobs,
        first.sweep.scenarios.len(),
        first.sweep.from
    );
    let merged = sim::shard::merge(&records, bug).map_err(|e| e.to_string())?;
    finish_sweep(&merged.outcomes, merged.wall_ms, finish)
}

/// Shrinks the first failures, writes the reports, prints the verdict; true when it passed.
fn finish_sweep(outcomes: &[Outcome], wall: f64, options: &Finish) -> Result<bool, String> {
    let mut shrunk = Vec::new();
    for report in outcomes.iter().filter_map(|o| o.failure.as_deref()).take(options.shrink_failures) {
        let scenario = load_named(&report.scenario).map_err(|e| e.to_string())?;
        eprintln!("shrinking {} seed {} …", report.scenario, report.seed);
        shrunk.extend(shrink(&scenario, &report.plan, SHRINK_RUNS_MAX));
    }
    sim::report::write_reports(&options.reports, outcomes, wall, &shrunk)
        .map_err(|e| format!("cannot write reports to {}: {e}", options.reports.display()))?;
    print_failures(outcomes);
    if options.stats {
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
        options.reports.display(),
        if failed > 0 { ", failures/" } else { "" }
    );
    let unexercised =
        if gaps.is_empty() { String::new() } else { format!(", {} declared probes never hit", gaps.len()) };
    println!("{} passed, {failed} failed{unexercised}", outcomes.len() - failed);
    Ok(failed == 0 && gaps.is_empty())
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

fn run_shrink(name: &str, seed: u64, bug: Option<&str>, runs_max: u32, out: &Path) -> Result<bool, String> {
    let bug = parse_bug(bug)?;
    let scenario = load_named(name).map_err(|e| e.to_string())?;
    let mut plan = from_seed(&scenario, seed);
    plan.bug = bug.map(|b| b.name().to_string());
    let Some(shrunk) = shrink(&scenario, &plan, runs_max) else {
        println!("scenario {name} seed {seed} passes: nothing to shrink");
        return Ok(true);
    };
    let stem = format!("{name}-seed-{seed}{}", bug.map(|b| format!("-{}", b.name())).unwrap_or_default());
    let original = out.join(format!("{stem}.json"));
    let minimal = out.join(format!("{stem}.min.json"));
    let write =
        |plan: &Plan, path: &Path| plan.write(path).map_err(|e| format!("cannot write {}: {e}", path.display()));
    write(&shrunk.original, &original)?;
    write(&shrunk.minimal, &minimal)?;
    println!(
        "invariant {} still violated after {} runs: {} faults -> {}, {} shoppers -> {}, {} orders -> {}",
        shrunk.invariant,
        shrunk.runs,
        shrunk.original.faults.len(),
        shrunk.minimal.faults.len(),
        shrunk.original.shoppers.len(),
        shrunk.minimal.shoppers.len(),
        shrunk.original.order_count(),
        shrunk.minimal.order_count()
    );
    for violation in shrunk.report.violations.iter().filter(|v| v.invariant == shrunk.invariant).take(3) {
        println!("  {violation}");
    }
    let features = if bug.is_some() { " --features planted-bugs" } else { "" };
    println!("original plan: {}", original.display());
    println!("minimal plan:  {}", minimal.display());
    println!("replay: cargo run --release -p sim{features} -- run --plan {} --trace", minimal.display());
    Ok(false)
}

fn run_bench(seeds: u64) -> Result<bool, String> {
    let scenarios = load_all().map_err(|e| e.to_string())?;
    let report = sim::bench::bench(&scenarios, seeds);
    println!("{}", serde_json::to_string_pretty(&report).expect("serializable"));
    println!(
        "store: {:.1} runs/s, {:.0}x real time; bare turmoil: {:.1} runs/s, {:.0}x real time; ratio {:.2}",
        report.store_runs_per_s, report.store_speedup, report.bare_runs_per_s, report.bare_speedup, report.ratio
    );
    Ok(true)
}

fn run_catalog(targeted_seeds: u64, swarm_seeds: u64, only: &[String]) -> Result<bool, String> {
    parse_bug(Some(Bug::ALL[0].name()))?;
    for name in only {
        parse_bug(Some(name))?;
    }
    let swarm = load_named("swarm").map_err(|e| e.to_string())?;
    let rows: Vec<(String, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = sim::catalog::CATALOG
            .iter()
            .filter(|entry| only.is_empty() || only.iter().any(|name| name == entry.bug.name()))
            .map(|entry| {
                let swarm = &swarm;
                scope.spawn(move || {
                    let finding = sim::catalog::hunt(entry.bug, entry.scenario, targeted_seeds, 300);
                    let finding = finding.map_err(|e| e.to_string())?;
                    let in_swarm = sim::catalog::first_failure(swarm, entry.bug, swarm_seeds).map(|(seed, _)| seed + 1);
                    let shown = |n: Option<u64>, max: u64| n.map_or(format!("not within {max}"), |n| n.to_string());
                    let (invariant, minimal) = match &finding.shrunk {
                        Some(s) => (
                            s.invariant.to_string(),
                            format!("{} faults, {} orders", s.minimal.faults.len(), s.minimal.order_count()),
                        ),
                        None => ("-".to_string(), "-".to_string()),
                    };
                    let row = format!(
                        "| `{}` | {} | {} | {} | {} | {} |",
                        entry.bug.name(),
                        invariant,
                        entry.scenario,
                        shown(finding.seeds_to_failure, targeted_seeds),
                        shown(in_swarm, swarm_seeds),
                        minimal
                    );
                    Ok::<_, String>((row, finding.seeds_to_failure.is_some() && in_swarm.is_some()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a hunt finished")).collect::<Result<Vec<_>, String>>()
    })?;
    println!("| bug | invariant | targeted scenario | seeds to first failure | seeds in swarm | minimal plan |");
    println!("|---|---|---|---|---|---|");
    for (row, _) in &rows {
        println!("{row}");
    }
    Ok(rows.iter().all(|(_, caught)| *caught))
}
