//! The catalog of planted bugs: for each, the scenario that targets it and the invariants
//! whose checkers must catch it. The tests and `sim catalog` both read it.

use crate::plan::from_seed;
use crate::run::{run, RunReport};
use crate::scenario::{load_named, Scenario, ScenarioError};
use crate::shrink::{shrink, Shrunk};
use platform::bugs::Bug;

pub struct Entry {
    pub bug: Bug,
    pub scenario: &'static str,
    /// A failing run must violate at least one of these.
    pub invariants: &'static [u8],
}

use crate::checks::{CONTRACT, INTERNAL_ERRORS, JUSTIFIED_OUTCOMES};

pub const CATALOG: [Entry; 14] = [
    Entry { bug: Bug::WithdrawTwice, scenario: "duplicate", invariants: &[1, 2, 5] },
    Entry { bug: Bug::NoTombstone, scenario: "cancel-before-withdraw", invariants: &[1, 2] },
    Entry { bug: Bug::NoRecovery, scenario: "orchestrator-crash", invariants: &[9] },
    Entry { bug: Bug::MemoryKeys, scenario: "happy-path", invariants: &[5] },
    Entry { bug: Bug::SimilarBeforeKey, scenario: "happy-path", invariants: &[5] },
    Entry { bug: Bug::ForgetStockRelease, scenario: "last-unit", invariants: &[1, 3] },
    Entry { bug: Bug::CompensationOnce, scenario: "compensation-outage", invariants: &[1, 2, 3, 4] },
    Entry { bug: Bug::OversellTwoSteps, scenario: "last-unit", invariants: &[3] },
    Entry { bug: Bug::DirectNotification, scenario: "isolate", invariants: &[8] },
    Entry { bug: Bug::StatusBackwards, scenario: "late-reply", invariants: &[6, 9] },
    Entry { bug: Bug::ForgetUnloggedCall, scenario: "unlogged-call", invariants: &[1, 3] },
    // Negative controls: useless stores that keep every bookkeeping invariant.
    Entry { bug: Bug::RejectAll, scenario: "happy-path", invariants: &[JUSTIFIED_OUTCOMES] },
    Entry { bug: Bug::UnavailableAll, scenario: "happy-path", invariants: &[JUSTIFIED_OUTCOMES, CONTRACT] },
    Entry { bug: Bug::ConstraintMasked, scenario: "last-unit", invariants: &[INTERNAL_ERRORS] },
];

/// The first seed in `0..seeds_max` whose run with `bug` fails, with its report.
pub fn first_failure(scenario: &Scenario, bug: Bug, seeds_max: u64) -> Option<(u64, RunReport)> {
    (0..seeds_max).find_map(|seed| {
        let report = run(scenario, seed, Some(bug));
        (!report.passed()).then_some((seed, report))
    })
}

/// What the catalog found for one bug.
pub struct Finding {
    pub seeds_to_failure: Option<u64>,
    pub report: Option<RunReport>,
    pub shrunk: Option<Shrunk>,
}

/// Hunts `bug` in `scenario_name` within `seeds_max` seeds and shrinks the first failure.
pub fn hunt(bug: Bug, scenario_name: &str, seeds_max: u64, shrink_runs_max: u32) -> Result<Finding, ScenarioError> {
    let scenario = load_named(scenario_name)?;
    let Some((seed, report)) = first_failure(&scenario, bug, seeds_max) else {
        return Ok(Finding { seeds_to_failure: None, report: None, shrunk: None });
    };
    let mut plan = from_seed(&scenario, seed);
    plan.bug = Some(bug.name().to_string());
    let shrunk = shrink(&scenario, &plan, shrink_runs_max);
    Ok(Finding { seeds_to_failure: Some(seed + 1), report: Some(report), shrunk })
}

/// One row of the README's table: a bug hunted in its scenario and in the swarm scenario.
pub struct Row {
    pub bug: Bug,
    pub scenario: &'static str,
    /// Seeds to the first failure in the targeted scenario (`None`: not within `targeted_seeds`).
    pub targeted: Option<u64>,
    pub targeted_seeds: u64,
    /// Seeds to the first failure in the swarm scenario (`None`: not within `swarm_seeds`).
    pub swarm: Option<u64>,
    pub swarm_seeds: u64,
    /// The targeted failure, shrunk.
    pub shrunk: Option<Shrunk>,
}

impl Row {
    /// Caught by its targeted scenario (what `tests/planted_bugs.rs` holds to); the swarm's
    /// column measures the swarm, and a bug it misses is shown, not failed.
    pub fn caught(&self) -> bool {
        self.targeted.is_some()
    }

    /// `| bug | invariant | targeted scenario | seeds to first failure | seeds in swarm | minimal plan |`
    pub fn markdown(&self) -> String {
        let shown = |n: Option<u64>, max: u64| n.map_or(format!("not within {max}"), |n| n.to_string());
        let (invariant, minimal) = match &self.shrunk {
            Some(s) => (
                s.invariant.to_string(),
                format!("{} faults, {} orders", s.minimal.faults.len(), s.minimal.order_count()),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        format!(
            "| `{}` | {} | {} | {} | {} | {} |",
            self.bug.name(),
            invariant,
            self.scenario,
            shown(self.targeted, self.targeted_seeds),
            shown(self.swarm, self.swarm_seeds),
            minimal
        )
    }
}

/// The table's header lines.
pub const TABLE_HEADER: &str = "| bug | invariant | targeted scenario | seeds to first failure | seeds in swarm | minimal plan |\n|---|---|---|---|---|---|";

/// Runs a shrink of a hunted failure may spend.
const HUNT_SHRINK_RUNS_MAX: u32 = 300;

/// Hunts every catalogued bug (only those in `only`, when it names any), one thread a bug,
/// in its scenario within `targeted_seeds` and in the swarm scenario within `swarm_seeds`.
/// Rows in catalog order.
pub fn hunt_all(only: &[Bug], targeted_seeds: u64, swarm_seeds: u64) -> Result<Vec<Row>, ScenarioError> {
    let swarm = load_named("swarm")?;
    std::thread::scope(|scope| {
        let handles: Vec<_> = CATALOG
            .iter()
            .filter(|entry| only.is_empty() || only.contains(&entry.bug))
            .map(|entry| {
                let swarm = &swarm;
                scope.spawn(move || {
                    let finding = hunt(entry.bug, entry.scenario, targeted_seeds, HUNT_SHRINK_RUNS_MAX)?;
                    let in_swarm = first_failure(swarm, entry.bug, swarm_seeds).map(|(seed, _)| seed + 1);
                    Ok(Row {
                        bug: entry.bug,
                        scenario: entry.scenario,
                        targeted: finding.seeds_to_failure,
                        targeted_seeds,
                        swarm: in_swarm,
                        swarm_seeds,
                        shrunk: finding.shrunk,
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a hunt finished")).collect()
    })
}
