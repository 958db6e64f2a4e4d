//! Every planted bug is caught: a bounded sweep of the scenario that targets it finds a
//! violation of the invariant the bug breaks, the failing run replays to the same digest
//! from its plan, and the shrunk plan still fails the same way. (The same scenarios without
//! the bug pass in `sweep.rs`.)

use sim::catalog::{hunt, Entry, CATALOG};
use sim::run::run_plan;
use sim::scenario::load_named;

/// The bound: every bug and negative control within 20 seeds of its targeted scenario.
const SEEDS_MAX: u64 = 20;
/// Enough for a smaller plan that still fails; `sim shrink` goes further (`--runs-max`).
const SHRINK_RUNS_MAX: u32 = 40;

fn prove(entry: &Entry) {
    let name = entry.bug.name();
    let finding = hunt(entry.bug, entry.scenario, SEEDS_MAX, SHRINK_RUNS_MAX).expect("the scenario loads");
    let report =
        finding.report.unwrap_or_else(|| panic!("{name}: no violation within {SEEDS_MAX} seeds of {}", entry.scenario));
    assert!(
        report.violations.iter().any(|v| entry.invariants.contains(&v.invariant)),
        "{name}: caught, but not as invariant {:?}: {:#?}",
        entry.invariants,
        report.violations
    );
    let scenario = load_named(entry.scenario).unwrap();
    let replay = run_plan(&scenario, &report.plan);
    assert_eq!(replay.digest, report.digest, "{name}: the failing plan replays to another digest");
    let shrunk = finding.shrunk.expect("a failing plan shrinks");
    let minimal = run_plan(&scenario, &shrunk.minimal);
    assert!(
        minimal.violations.iter().any(|v| v.invariant == shrunk.invariant),
        "{name}: the minimal plan no longer violates invariant {}",
        shrunk.invariant
    );
    assert!(shrunk.minimal.faults.len() <= shrunk.original.faults.len());
    assert!(shrunk.minimal.order_count() <= shrunk.original.order_count());
    println!(
        "{name}: seed {} of {}, invariant {}, minimal plan {} faults / {} orders (from {} / {}) after {} runs",
        finding.seeds_to_failure.unwrap_or(0) - 1,
        entry.scenario,
        shrunk.invariant,
        shrunk.minimal.faults.len(),
        shrunk.minimal.order_count(),
        shrunk.original.faults.len(),
        shrunk.original.order_count(),
        shrunk.runs
    );
}

fn entry(name: &str) -> &'static Entry {
    CATALOG.iter().find(|e| e.bug.name() == name).expect("a catalogued bug")
}

#[test]
fn withdraw_twice() {
    prove(entry("withdraw-twice"));
}

#[test]
fn no_tombstone() {
    prove(entry("no-tombstone"));
}

#[test]
fn no_recovery() {
    prove(entry("no-recovery"));
}

#[test]
fn memory_keys() {
    prove(entry("memory-keys"));
}

#[test]
fn similar_before_key() {
    prove(entry("similar-before-key"));
}

#[test]
fn forget_stock_release() {
    prove(entry("forget-stock-release"));
}

#[test]
fn compensation_once() {
    prove(entry("compensation-once"));
}

#[test]
fn oversell_two_steps() {
    prove(entry("oversell-two-steps"));
}

#[test]
fn direct_notification() {
    prove(entry("direct-notification"));
}

#[test]
fn status_backwards() {
    prove(entry("status-backwards"));
}

#[test]
fn forget_unlogged_call() {
    prove(entry("forget-unlogged-call"));
}

/// A negative control: a 500 from a CHECK constraint, compensated cleanly, breaks no
/// bookkeeping invariant; only invariant 11 (internal errors) sees it.
#[test]
fn constraint_masked() {
    prove(entry("constraint-masked"));
}

/// A negative control: every order refused as INSUFFICIENT_FUNDS by billing, cleanly
/// compensated; only the reference model (invariant 12) sees that the money was there.
#[test]
fn reject_all() {
    prove(entry("reject-all"));
}

/// A negative control: the order service answers 503 to every order; the contract check
/// (invariant 13) sees a 503 with no fault, the reference model a last order never placed.
#[test]
fn unavailable_all() {
    prove(entry("unavailable-all"));
}

#[test]
fn the_catalog_covers_every_planted_bug() {
    for bug in platform::bugs::Bug::ALL {
        assert!(CATALOG.iter().any(|e| e.bug == bug), "{} has no catalog entry", bug.name());
    }
}
