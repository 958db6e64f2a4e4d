//! `sim run`: one seed of a scenario, or a plan file; prints the run's digest.

use super::{parse_bug, scenario, Verdict};
use crate::plan::{from_seed, Plan};
use crate::run::{run_plan_driven, RunReport, TimeDriver};
use std::path::PathBuf;

/// What to run: `--scenario` and `--seed`, or `--plan`.
pub struct RunArgs {
    pub scenario: Option<String>,
    pub seed: Option<u64>,
    pub plan: Option<PathBuf>,
    pub bug: Option<String>,
    /// Print the merged timeline first.
    pub trace: bool,
    pub write_plan: Option<PathBuf>,
    pub time: TimeDriver,
}

pub fn run(args: RunArgs) -> Verdict {
    let bug = parse_bug(args.bug.as_deref())?;
    let (scenario, mut plan) = match (args.plan, args.scenario, args.seed) {
        (Some(path), _, _) => {
            let plan = Plan::read(&path).map_err(|e| e.to_string())?;
            (scenario(&plan.scenario)?, plan)
        }
        (None, Some(name), Some(seed)) => {
            let scenario = scenario(&name)?;
            let plan = from_seed(&scenario, seed);
            (scenario, plan)
        }
        _ => return Err("give --scenario and --seed, or --plan".into()),
    };
    if let Some(bug) = bug {
        plan.bug = Some(bug.name().to_string());
    }
    parse_bug(plan.bug.as_deref())?;
    if let Some(path) = args.write_plan {
        plan.write(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let report = run_plan_driven(&scenario, &plan, args.time);
    print_report(&report, args.trace);
    Ok(report.passed())
}

fn print_report(report: &RunReport, trace: bool) {
    if trace {
        for line in crate::timeline::merged(report) {
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
    println!("steps {}", report.steps);
    println!("digest {}", report.digest);
    for violation in &report.violations {
        println!("VIOLATION {violation}");
    }
}
