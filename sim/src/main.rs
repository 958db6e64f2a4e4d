//! `sim`: run one seed, or sweep scenarios over seed ranges on all cores.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sim::run::run;
use sim::scenario::{load_all, load_named, Scenario};
use sim::sweep::{sweep, Outcome, Totals};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "sim", about = "Deterministic simulation of the store.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one seed of one scenario and print its trace digest.
    Run {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Print the timeline of faults and requests.
        #[arg(long)]
        trace: bool,
    },
    /// Benchmark (one core): the scenario mix against bare turmoil with the same hosts and
    /// simulated time; prints runs per second, simulated-to-wall speed and the ratio.
    Bench {
        /// Seeds of each scenario.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
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
        /// Worker threads (default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Print what the sweep exercised: faults and saga events, added up.
        #[arg(long)]
        stats: bool,
    },
}

fn scenarios(names: &[String]) -> Result<Vec<Scenario>, String> {
    if names.is_empty() {
        return load_all().map_err(|e| e.to_string());
    }
    names.iter().map(|n| load_named(n).map_err(|e| e.to_string())).collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench { seeds } => run_bench(seeds),
        Command::Run { scenario, seed, trace } => run_one(&scenario, seed, trace),
        Command::Sweep { scenario, from, seeds, check_determinism, jobs, stats } => {
            run_sweep(&scenario, from, seeds, check_determinism, jobs, stats)
        }
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

fn run_one(name: &str, seed: u64, trace: bool) -> Result<bool, String> {
    let scenario = load_named(name).map_err(|e| e.to_string())?;
    let report = run(&scenario, seed, None);
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
    Ok(report.passed())
}

fn parse_ms(line: &str) -> u64 {
    line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn run_sweep(
    names: &[String],
    from: u64,
    seeds: Option<u64>,
    check_determinism: bool,
    jobs: Option<usize>,
    stats: bool,
) -> Result<bool, String> {
    let scenarios = scenarios(names)?;
    let mut work = Vec::new();
    for scenario in &scenarios {
        for seed in from..from + seeds.unwrap_or(scenario.seeds) {
            work.push((scenario.clone(), seed, check_determinism));
        }
    }
    let workers = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(work.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, ~{eta} left {msg}")
            .expect("valid template"),
    );
    let outcomes = sweep(&work, workers, &|outcome: &Outcome| {
        if outcome.failure.is_some() || outcome.nondeterministic.is_some() {
            bar.println(format!("FAILED {} seed {}", outcome.scenario, outcome.seed));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    print_failures(&outcomes);
    if stats {
        let mut totals = Totals::default();
        for outcome in &outcomes {
            totals.add(&outcome.stats);
        }
        println!("{}", serde_json::to_string_pretty(&totals).expect("serializable"));
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some() || o.nondeterministic.is_some()).count();
    println!("{} passed, {failed} failed", outcomes.len() - failed);
    Ok(failed == 0)
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
