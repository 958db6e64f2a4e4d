//! `sim`: run one seed or plan, sweep scenarios over seed ranges on all cores, shrink a
//! failing seed to a minimal plan, or benchmark against bare turmoil. This file parses the
//! command line and calls the command (`sim::commands`); nothing else.

use clap::{Parser, Subcommand};
use sim::commands::run::RunArgs;
use sim::commands::sweep::{Finish, SweepOptions};
use sim::commands::{bench, catalog, merge, run, shrink, sweep};
use sim::run::TimeDriver;
use sim::shard::ShardSpec;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc rather than the system's allocator: a run's services allocate and free small
/// buffers all the time (request bodies, rows, futures), and glibc's malloc and free were
/// about a sixth of a profile. Nothing the simulation decides depends on addresses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// How simulated time advances (the digest is the same either way).
        #[arg(long, value_enum, default_value_t)]
        time: TimeDriver,
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
    /// Benchmark (one core): the scenario mix under the fixed and the event-driven time
    /// driver against bare turmoil with the same hosts and simulated time; prints runs per
    /// second, simulated-to-wall speed, the ratios and steps per run (fails if a digest
    /// differs between the drivers).
    Bench {
        /// Seeds of each scenario.
        #[arg(long, default_value_t = 10)]
        seeds: u64,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run { scenario, seed, plan, bug, trace, write_plan, time } => {
            run::run(RunArgs { scenario, seed, plan, bug, trace, write_plan, time })
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
            sweep::run(&scenario, bug.as_deref(), &options)
        }
        Command::Merge { shards, reports, shrink_failures, stats } => {
            merge::run(&shards, &Finish { reports, shrink_failures, stats })
        }
        Command::Shrink { scenario, seed, bug, runs_max, out } => {
            shrink::run(&scenario, seed, bug.as_deref(), runs_max, &out)
        }
        Command::Bench { seeds } => bench::run(seeds),
        Command::Catalog { targeted_seeds, swarm_seeds, bug } => catalog::run(targeted_seeds, swarm_seeds, &bug),
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
