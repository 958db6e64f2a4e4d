//! What the services' own metrics say a run did (an operator's view of it), read at the end of
//! the run, and check 15: those figures agree with the databases and with what the shoppers
//! were answered. A store can do the right thing and still tell its operator something else: an
//! uncounted order, a refusal counted as an application, a replay never counted.

use crate::checks::{violation, Violation, FIGURES};
use crate::cluster::Cluster;
use crate::history::{Action, Event};
use crate::snapshot::{Participant, Snapshot};
use contracts::order::OrderStatus;
use contracts::{ProblemType, ServiceName};
use order::saga::{Event as LogEvent, Phase, Step};
use platform::metrics::{
    IdempotencyLabels, IdempotencyOutcome, ParticipantLabels, ParticipantOutcome, ReasonLabels, StepLabels, StepPhase,
};
use platform::operations::{OperationState, TOMBSTONE_MESSAGE};
use std::collections::BTreeMap;

/// The counters of the order service and of each participant, by label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// `orders_created_total`.
    pub created: u64,
    /// `orders_confirmed_total`.
    pub confirmed: u64,
    /// `orders_failed_total`, by reason.
    pub failed: BTreeMap<String, u64>,
    /// `order_requests_idempotency_total`, by outcome (its label value).
    pub idempotency: BTreeMap<String, u64>,
    /// `participant_operations_total` of each participant, by outcome (its label value).
    pub participants: BTreeMap<Participant, BTreeMap<String, u64>>,
    /// Observations of `saga_step_duration_seconds` of each step: (action, compensation).
    pub step_observations: BTreeMap<Step, (u64, u64)>,
    /// `saga_compensation_rounds` and `saga_compensation_failures`.
    pub compensation_rounds: u64,
    pub compensation_failures: u64,
}

const IDEMPOTENCY: [IdempotencyOutcome; 5] = [
    IdempotencyOutcome::created,
    IdempotencyOutcome::replayed,
    IdempotencyOutcome::in_progress,
    IdempotencyOutcome::duplicate,
    IdempotencyOutcome::key_reused,
];

const PARTICIPANT: [ParticipantOutcome; 8] = [
    ParticipantOutcome::applied,
    ParticipantOutcome::refused,
    ParticipantOutcome::repeated,
    ParticipantOutcome::late_action_refused,
    ParticipantOutcome::undone,
    ParticipantOutcome::cancelled,
    ParticipantOutcome::tombstone,
    ParticipantOutcome::repeated_cancel,
];

impl Figures {
    /// Reads the figures from the cluster's metrics registries (kept across restarts, like the
    /// databases). The simulation's metrics are always on. `orders_failed_total` is read under
    /// the reasons the metrics name and those of the FAILED orders in `snapshot` (a registry
    /// does not list its label sets).
    pub fn read(cluster: &Cluster, snapshot: &Snapshot) -> Figures {
        const ON: &str = "the simulation's metrics are always on";
        let orders = cluster.metrics[&ServiceName::Order].orders().expect(ON);
        let mut reasons: Vec<String> = platform::metrics::FAILURE_REASONS.iter().map(|r| r.to_string()).collect();
        reasons.extend(snapshot.orders.iter().filter_map(|o| o.error_message.clone()));
        let failed = reasons
            .into_iter()
            .map(|reason| {
                let count = orders.failed.get_or_create(&ReasonLabels { reason: reason.clone() }).get();
                (reason, count)
            })
            .collect();
        let idempotency = IDEMPOTENCY
            .into_iter()
            .map(|outcome| {
                (format!("{outcome:?}"), orders.idempotency.get_or_create(&IdempotencyLabels { outcome }).get())
            })
            .collect();
        let participants = Participant::ALL
            .into_iter()
            .map(|participant| {
                let metrics = cluster.metrics[&participant.service()].participants().expect(ON);
                let counts = PARTICIPANT
                    .into_iter()
                    .map(|outcome| {
                        let labels = ParticipantLabels { operation: outcome.operation(), outcome };
                        (format!("{outcome:?}"), metrics.operations.get_or_create(&labels).get())
                    })
                    .collect();
                (participant, counts)
            })
            .collect();
        let observed = |step: Step, phase: StepPhase| {
            orders.step_duration.get_or_create(&StepLabels { step: step.name().to_string(), phase }).count()
        };
        let step_observations = order::saga::STEPS
            .into_iter()
            .map(|step| (step, (observed(step, StepPhase::action), observed(step, StepPhase::compensation))))
            .collect();
        Figures {
            created: orders.created.get(),
            confirmed: orders.confirmed.get(),
            failed,
            idempotency,
            participants,
            step_observations,
            compensation_rounds: orders.compensation_rounds.get(),
            compensation_failures: orders.compensation_failures.get(),
        }
    }

    fn idempotency(&self, outcome: IdempotencyOutcome) -> u64 {
        self.idempotency.get(&format!("{outcome:?}")).copied().unwrap_or(0)
    }

    fn participant(&self, participant: Participant, outcome: ParticipantOutcome) -> u64 {
        (self.participants.get(&participant).and_then(|counts| counts.get(&format!("{outcome:?}"))).copied())
            .unwrap_or(0)
    }
}

/// Check 15: the operator's figures agree with the store.
///
/// - every order in the database was counted created, once, under both counters; every final
///   status was counted once, a FAILED order under its reason;
/// - each participant counted, per operation record, one first action (applied or refused, as
///   the record's state says it was), one undo or cancel where the record says so, and one
///   tombstone per tombstone; and each repeat its records counted: a repeated action at a
///   tombstone as `late_action_refused`, any other as `repeated`, a repeated cancel as
///   `repeated_cancel`;
/// - every replay, key-in-progress, duplicate and reused key a shopper was answered was counted
///   (at least as many: an answer may be lost on its way).
pub fn check(snapshot: &Snapshot, history: &[Event]) -> Vec<Violation> {
    let Some(figures) = &snapshot.figures else { return Vec::new() };
    let mut found = Vec::new();
    let mut differ = |subject: &str, figure: &str, counted: u64, expected: u64, of: &str| {
        if counted != expected {
            let evidence = format!("{figure} counted {counted}, but {of}: {expected}");
            found.push(violation(FIGURES, subject, evidence));
        }
    };
    const ORDER: &str = ServiceName::Order.as_str();
    let orders = snapshot.orders.len() as u64;
    differ(ORDER, "orders_created_total", figures.created, orders, "orders in the database");
    let created = figures.idempotency(IdempotencyOutcome::created);
    differ(ORDER, "order_requests_idempotency_total{outcome=created}", created, orders, "orders in the database");
    let with = |status: OrderStatus| snapshot.orders.iter().filter(|o| o.status == status).count() as u64;
    differ(ORDER, "orders_confirmed_total", figures.confirmed, with(OrderStatus::Confirmed), "CONFIRMED orders");
    for (reason, counted) in &figures.failed {
        let failed = snapshot
            .orders
            .iter()
            .filter(|o| o.status == OrderStatus::Failed && o.error_message.as_deref() == Some(reason.as_str()))
            .count() as u64;
        differ(ORDER, &format!("orders_failed_total{{reason={reason}}}"), *counted, failed, "orders FAILED so");
    }
    let failed_total: u64 = figures.failed.values().sum();
    differ(ORDER, "orders_failed_total", failed_total, with(OrderStatus::Failed), "FAILED orders");

    for participant in Participant::ALL {
        let records = snapshot.operations.get(&participant).into_iter().flat_map(|r| r.values());
        let (mut applied, mut refused, mut undone, mut cancelled, mut tombstones) = (0, 0, 0, 0, 0);
        // Repeats counted on the records: of an action at a tombstone, of any other action,
        // of a cancel.
        let (mut late, mut repeated, mut repeated_cancels) = (0, 0, 0);
        for record in records {
            if record.state == OperationState::Cancelled && record.message == TOMBSTONE_MESSAGE {
                late += record.action_repeats as u64;
            } else {
                repeated += record.action_repeats as u64;
            }
            repeated_cancels += record.cancel_repeats as u64;
            match record.state {
                OperationState::Applied => applied += 1,
                OperationState::Refused => refused += 1,
                OperationState::Undone => {
                    applied += 1;
                    undone += 1;
                }
                // A cancel that found no record leaves a tombstone; one that found a refusal
                // keeps the refusal's message.
                OperationState::Cancelled if record.message == TOMBSTONE_MESSAGE => tombstones += 1,
                OperationState::Cancelled => {
                    refused += 1;
                    cancelled += 1;
                }
            }
        }
        let subject = participant.service().to_string();
        let count = |outcome| figures.participant(participant, outcome);
        let of = |what: &str| format!("records {what}");
        differ(&subject, "applied", count(ParticipantOutcome::applied), applied, &of("APPLIED or UNDONE"));
        differ(&subject, "refused", count(ParticipantOutcome::refused), refused, &of("REFUSED or a refusal CANCELLED"));
        differ(&subject, "undone", count(ParticipantOutcome::undone), undone, &of("UNDONE"));
        differ(&subject, "cancelled", count(ParticipantOutcome::cancelled), cancelled, &of("of a refusal CANCELLED"));
        differ(&subject, "tombstone", count(ParticipantOutcome::tombstone), tombstones, &of("left as tombstones"));
        differ(
            &subject,
            "repeated",
            count(ParticipantOutcome::repeated),
            repeated,
            &of("repeated actions, not at a tombstone"),
        );
        differ(
            &subject,
            "late_action_refused",
            count(ParticipantOutcome::late_action_refused),
            late,
            &of("repeated actions at a tombstone"),
        );
        differ(
            &subject,
            "repeated_cancel",
            count(ParticipantOutcome::repeated_cancel),
            repeated_cancels,
            &of("repeated cancels"),
        );
    }

    found.extend(step_figures(figures, snapshot));

    // What the shoppers were answered to an order's POST, counted by kind.
    let mut answered: BTreeMap<String, (IdempotencyOutcome, &str, u64)> = BTreeMap::new();
    for event in history.iter().filter(|e| matches!(e.action, Action::PlaceOrder | Action::ReuseKey)) {
        let kind = match (event.status, event.problem_type()) {
            (Some(200), _) => (IdempotencyOutcome::replayed, "200 replays"),
            (Some(409), Some(ProblemType::IdempotencyRequestInProgress)) => {
                (IdempotencyOutcome::in_progress, "409 in-progress answers")
            }
            (Some(409), Some(ProblemType::DuplicateOrder)) => (IdempotencyOutcome::duplicate, "409 duplicate answers"),
            (Some(422), Some(ProblemType::IdempotencyKeyReused)) => {
                (IdempotencyOutcome::key_reused, "422 key-reused answers")
            }
            _ => continue,
        };
        answered.entry(format!("{:?}", kind.0)).or_insert((kind.0, kind.1, 0)).2 += 1;
    }
    for (outcome, what, seen) in answered.into_values() {
        let counted = figures.idempotency(outcome);
        if counted < seen {
            let evidence = format!("{outcome:?} counted {counted}, but the shoppers were answered {seen} {what}");
            found.push(violation(FIGURES, ORDER, evidence));
        }
    }
    found
}

/// The saga's step figures against its log: each step's action durations were observed once
/// per call the log started, at most, and at least once per answer it logged (the duration is
/// observed before the answer is written, so a crash or a failed write in between leaves an
/// observation without its line); each compensation round was counted and its duration
/// observed, at least once per acknowledgement logged; the failed rounds and the
/// acknowledged ones together are at most all rounds.
fn step_figures(figures: &Figures, snapshot: &Snapshot) -> Vec<Violation> {
    let mut found = Vec::new();
    let subject = ServiceName::Order.as_str();
    let logged = |step: Step, phase: Phase, events: &[LogEvent]| {
        (snapshot.saga_log.iter())
            .filter(|e| e.step == Some(step) && e.phase == phase && events.contains(&e.event))
            .count() as u64
    };
    let answers = [LogEvent::Succeeded, LogEvent::Refused, LogEvent::Rejected, LogEvent::Unknown];
    let (mut rounds_observed, mut acknowledged) = (0, 0);
    for step in order::saga::STEPS {
        let (actions, rounds) = figures.step_observations.get(&step).copied().unwrap_or_default();
        let started = logged(step, Phase::Action, &[LogEvent::Started]);
        let answered = logged(step, Phase::Action, &answers);
        if actions < answered || actions > started {
            let evidence = format!(
                "saga_step_duration_seconds{{step={},phase=action}} observed {actions} calls, but the saga log \
                 started {started} and logged {answered} answers",
                step.name()
            );
            found.push(violation(FIGURES, subject, evidence));
        }
        let acks = logged(step, Phase::Compensation, &[LogEvent::Acknowledged]);
        if rounds < acks {
            let evidence = format!(
                "saga_step_duration_seconds{{step={},phase=compensation}} observed {rounds} rounds, but the saga log \
                 acknowledged {acks} compensations",
                step.name()
            );
            found.push(violation(FIGURES, subject, evidence));
        }
        rounds_observed += rounds;
        acknowledged += acks;
    }
    if figures.compensation_rounds < rounds_observed
        || figures.compensation_rounds < figures.compensation_failures + acknowledged
    {
        let evidence = format!(
            "saga_compensation_rounds counted {}, but {rounds_observed} rounds were timed and {} failed besides the \
             {acknowledged} acknowledged",
            figures.compensation_rounds, figures.compensation_failures
        );
        found.push(violation(FIGURES, subject, evidence));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{OperationRow, SagaRow};
    use contracts::OrderId;
    use contracts::Timestamp;

    fn record(state: OperationState, message: &str) -> OperationRow {
        OperationRow {
            state,
            message: message.to_string(),
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            trace_id: None,
            action_repeats: 0,
            cancel_repeats: 0,
        }
    }

    /// Billing with an applied, an undone, a refused-then-cancelled record and a tombstone,
    /// the applied one's action repeated three times and the undone one's cancel once, the
    /// tombstone's late action once, and the figures that agree with them.
    fn agreeing() -> Snapshot {
        let repeated = |record: OperationRow, action_repeats, cancel_repeats| OperationRow {
            action_repeats,
            cancel_repeats,
            ..record
        };
        let records = [
            repeated(record(OperationState::Applied, "withdrawn"), 3, 0),
            repeated(record(OperationState::Undone, "withdrawn"), 0, 1),
            record(OperationState::Cancelled, "INSUFFICIENT_FUNDS"),
            repeated(record(OperationState::Cancelled, TOMBSTONE_MESSAGE), 1, 0),
        ];
        let mut snapshot = Snapshot::default();
        snapshot.operations.insert(
            Participant::Billing,
            records.into_iter().enumerate().map(|(i, r)| (OrderId::from_u128(i as u128), r)).collect(),
        );
        let counts = [
            ("applied", 2),
            ("refused", 1),
            ("undone", 1),
            ("cancelled", 1),
            ("tombstone", 1),
            ("repeated", 3),
            ("late_action_refused", 1),
            ("repeated_cancel", 1),
        ];
        let mut figures = Figures::default();
        figures
            .participants
            .insert(Participant::Billing, counts.map(|(k, v)| (k.to_string(), v)).into_iter().collect());
        snapshot.figures = Some(figures);
        snapshot
    }

    fn with(snapshot: &Snapshot, outcome: &str, count: u64) -> Snapshot {
        let mut changed = snapshot.clone();
        let figures = changed.figures.as_mut().unwrap();
        figures.participants.get_mut(&Participant::Billing).unwrap().insert(outcome.to_string(), count);
        changed
    }

    #[test]
    fn figures_that_agree_with_the_records_pass() {
        assert_eq!(check(&agreeing(), &[]), []);
    }

    #[test]
    fn a_refusal_counted_as_applied_fails() {
        let snapshot = with(&with(&agreeing(), "applied", 3), "refused", 0);
        let found = check(&snapshot, &[]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|v| v.invariant == FIGURES && v.subject == "billing"));
        assert!(found[0].evidence.contains("applied counted 3, but records APPLIED or UNDONE: 2"), "{found:?}");
    }

    #[test]
    fn an_uncounted_tombstone_or_a_late_action_without_one_fails() {
        assert_eq!(check(&with(&agreeing(), "tombstone", 0), &[]).len(), 1);
        let mut no_tombstone = with(&agreeing(), "tombstone", 0);
        no_tombstone.operations.get_mut(&Participant::Billing).unwrap().retain(|_, r| r.message != TOMBSTONE_MESSAGE);
        let found = check(&no_tombstone, &[]);
        let late = "late_action_refused counted 1, but records repeated actions at a tombstone: 0";
        assert!(found.iter().any(|v| v.evidence.contains(late)), "{found:?}");
    }

    #[test]
    fn repeats_labelled_other_than_their_records_say_fail() {
        // A late action at the tombstone counted as a plain repeat (is_tombstone wrong).
        let mislabelled = with(&with(&agreeing(), "late_action_refused", 0), "repeated", 4);
        let found = check(&mislabelled, &[]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found
            .iter()
            .any(|v| v.evidence.contains("repeated counted 4, but records repeated actions, not at a tombstone: 3")));
        let found = check(&with(&agreeing(), "repeated_cancel", 0), &[]);
        assert!(
            found.iter().any(|v| v.evidence.contains("repeated_cancel counted 0, but records repeated cancels: 1")),
            "{found:?}"
        );
    }

    /// A withdrawal answered and then compensated in one round, with the step figures that
    /// agree with that log.
    fn compensated_once() -> Snapshot {
        let mut snapshot = agreeing();
        let line = |phase: Phase, event: LogEvent| SagaRow {
            order_id: OrderId::from_u128(1),
            step: Some(Step::Withdraw),
            phase,
            event,
            detail: String::new(),
            at: Timestamp::UNIX_EPOCH,
        };
        snapshot.saga_log = vec![
            line(Phase::Action, LogEvent::Started),
            line(Phase::Action, LogEvent::Succeeded),
            line(Phase::Compensation, LogEvent::Started),
            line(Phase::Compensation, LogEvent::Acknowledged),
        ];
        let figures = snapshot.figures.as_mut().unwrap();
        figures.step_observations.insert(Step::Withdraw, (1, 1));
        figures.compensation_rounds = 1;
        snapshot
    }

    #[test]
    fn step_figures_against_the_saga_log() {
        assert_eq!(check(&compensated_once(), &[]), []);
        let changed = |change: fn(&mut Figures)| {
            let mut snapshot = compensated_once();
            change(snapshot.figures.as_mut().unwrap());
            check(&snapshot, &[])
        };
        let unobserved = changed(|f| f.step_observations.clear());
        assert!(unobserved.iter().any(|v| v.evidence.contains("phase=action} observed 0 calls")), "{unobserved:?}");
        assert!(unobserved.iter().any(|v| v.evidence.contains("phase=compensation} observed 0 rounds")));
        let twice = changed(|f| f.step_observations.insert(Step::Withdraw, (2, 1)).map(drop).unwrap_or(()));
        assert!(twice.iter().any(|v| v.evidence.contains("observed 2 calls, but the saga log started 1")), "{twice:?}");
        let uncounted = changed(|f| f.compensation_rounds = 0);
        assert!(uncounted.iter().any(|v| v.evidence.contains("saga_compensation_rounds counted 0")), "{uncounted:?}");
        let failed_too = changed(|f| f.compensation_failures = 1);
        assert!(
            failed_too.iter().any(|v| v.evidence.contains("1 failed besides the 1 acknowledged")),
            "{failed_too:?}"
        );
        assert!([unobserved, twice, uncounted, failed_too].iter().flatten().all(|v| v.subject == "order"));
    }

    #[test]
    fn a_snapshot_not_read_from_a_cluster_has_no_figures_to_check() {
        let mut snapshot = with(&agreeing(), "applied", 7);
        snapshot.figures = None;
        assert_eq!(check(&snapshot, &[]), []);
    }
}
