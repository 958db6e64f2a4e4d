//! Named regressions: each bug the harness found on its way, pinned to the seed that found it.

use sim::run::run;
use sim::scenario::load_named;

/// A crash dropped the host's tasks in an order that depended on process-global tokio task
/// ids, so the same seed ran differently the second time in one process. Fixed by spawning
/// every task through `Env::spawn` (a turmoil host's `LocalSet`).
#[test]
fn regression_a_crash_drops_tasks_in_the_same_order_every_time() {
    let scenario = load_named("crash").unwrap();
    let first = run(&scenario, 0, None);
    let second = run(&scenario, 0, None);
    assert_eq!(first.digest, second.digest);
    assert!(first.passed(), "{:?}", first.violations);
}

/// A double submit's two answers were recorded together after both arrived, in a fixed
/// order, so a status read earlier could look like it came later ("FAILED, then
/// ITEMS_RESERVED"). Each answer is now recorded as it arrives, and reads that overlap in
/// time are not ordered by the checker. Found by `sim sweep --scenario swarm --from 100000`.
#[test]
fn regression_twin_answers_are_recorded_as_they_arrive() {
    let scenario = load_named("swarm").unwrap();
    let report = run(&scenario, 100_001, None);
    assert!(report.passed(), "{:#?}", report.violations);
}
