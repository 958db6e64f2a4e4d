//! Invariant 11 (internal errors), shown failing and passing: an ERROR logged in a host, a
//! 500 a service sends and a panic in a host are violations with their evidence; a
//! realistic run, faults included, has none.

use contracts::ServiceName;
use platform::bugs::Bug;
use sim::catalog::first_failure;
use sim::errors::{panic_message, panic_violation, Incidents, INVARIANT};
use sim::run::run;
use sim::scenario::load_named;
use tracing::instrument::WithSubscriber;

#[test]
fn an_error_logged_in_a_host_is_a_violation_naming_the_host() {
    let incidents = Incidents::new();
    let billing = incidents.dispatch(ServiceName::Billing);
    tracing::dispatcher::with_default(&billing, || {
        tracing::info!("fine");
        tracing::warn!("expected under faults");
        tracing::error!(order_id = "o-1", "ledger out of balance");
    });
    let violations = incidents.violations();
    assert_eq!(violations.len(), 1, "only the ERROR counts: {violations:#?}");
    let violation = &violations[0];
    assert_eq!((violation.invariant, violation.subject.as_str()), (INVARIANT, "host billing"));
    assert!(violation.evidence.contains("ledger out of balance"), "{violation:?}");
    assert!(violation.evidence.contains("order_id=o-1"), "{violation:?}");
    // Outside the host's dispatcher nothing is recorded (no global subscriber).
    tracing::error!("logged by no host");
    assert_eq!(incidents.all().len(), 1);
}

#[test]
fn a_panic_in_a_host_is_a_violation_not_an_aborted_run() {
    let incidents = Incidents::new();
    let dispatch = incidents.dispatch(ServiceName::Warehouse);
    let mut sim = turmoil::Builder::new().build();
    sim.host("warehouse", move || {
        async {
            tokio::task::yield_now().await;
            panic!("reserved more than the total");
        }
        .with_subscriber(dispatch.clone())
    });
    // Turmoil re-raises the host's panic from `step` or returns it as the host's error.
    let outcome = (0..100).find_map(|_| {
        let raised = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.step())) {
            Ok(Ok(_)) => return None,
            Ok(Err(error)) => error.to_string(),
            Err(payload) => panic_message(payload.as_ref()),
        };
        Some(panic_violation(&incidents, &raised, sim.elapsed().as_millis() as u64))
    });
    let violation = outcome.expect("the host's panic comes out of a step");
    assert_eq!((violation.invariant, violation.subject.as_str()), (INVARIANT, "host warehouse"));
    assert!(violation.evidence.contains("reserved more than the total"), "{violation:?}");
}

/// A 500 between services: the planted `constraint-masked` warehouse trips its CHECK, answers
/// 500, and the saga compensates cleanly; invariants 1-10 all hold, invariant 11 does not.
#[test]
fn a_500_between_services_is_a_violation() {
    let scenario = load_named("last-unit").unwrap();
    let (seed, report) = first_failure(&scenario, Bug::ConstraintMasked, 20).expect("caught within 20 seeds");
    let found: Vec<_> = report.violations.iter().filter(|v| v.invariant == INVARIANT).collect();
    assert!(
        found.iter().any(|v| v.subject == "host warehouse" && v.evidence.contains("status=500")),
        "seed {seed}: {:#?}",
        report.violations
    );
    assert!(found.iter().any(|v| v.evidence.contains("CHECK constraint failed")), "seed {seed}: {found:#?}");
}

/// Realistic runs, faults and all, log no ERROR: partitions, crashes and holds make calls
/// fail, which services log at WARN.
#[test]
fn realistic_runs_have_no_internal_errors() {
    for (name, seeds) in [("happy-path", 0..2), ("swarm", 0..4)] {
        let scenario = load_named(name).unwrap();
        for seed in seeds {
            let report = run(&scenario, seed, None);
            let found: Vec<_> = report.violations.iter().filter(|v| v.invariant == INVARIANT).collect();
            assert!(found.is_empty(), "{name} seed {seed}: {found:#?}");
            assert!(report.passed(), "{name} seed {seed}: {:#?}", report.violations);
        }
    }
}
