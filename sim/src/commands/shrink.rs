//! `sim shrink`: a failing seed to a minimal plan, both plans written next to each other.

use super::{parse_bug, scenario, Verdict};
use crate::plan::{from_seed, Plan};
use crate::replay::Replay;
use crate::shrink::shrink;
use std::path::Path;

pub fn run(name: &str, seed: u64, bug: Option<&str>, runs_max: u32, out: &Path) -> Verdict {
    let bug = parse_bug(bug)?;
    let scenario = scenario(name)?;
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
    println!("original plan: {}", original.display());
    println!("minimal plan:  {}", minimal.display());
    println!("replay: {}", Replay::Plan { path: &minimal, planted_bugs: bug.is_some() });
    Ok(false)
}
