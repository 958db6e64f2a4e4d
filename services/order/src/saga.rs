//! The order saga as a declared step table and a log-driven state machine.
//!
//! Every decision is a pure function of the saga log ([`replay`] then [`next_move`]); the
//! runner only performs the move and logs its result. So a restarted orchestrator resumes
//! every saga exactly where its log ends: an action logged as started but never answered is
//! sent again (participants make repeats no-ops), and compensations run in reverse order
//! until each is acknowledged. Only a participant's own business refusal (from its operation
//! record) says an action took no effect; any other failure of a started action — no
//! answer, or a 4xx from the participant's transport or auth layer, which may hide an
//! earlier attempt that was applied — is compensated.

use crate::store::LogEntry;
use contracts::order::OrderStatus;
use contracts::saga::reason;
use contracts::ServiceName;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Withdraw,
    Reserve,
    Book,
}

/// The saga, in order. Compensation runs in the reverse order.
pub const STEPS: [Step; 3] = [Step::Withdraw, Step::Reserve, Step::Book];

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Withdraw => "withdraw",
            Step::Reserve => "reserve",
            Step::Book => "book",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        STEPS.into_iter().find(|s| s.name() == name)
    }

    /// The order's status once this step's action succeeded.
    pub fn status_after(self) -> OrderStatus {
        match self {
            Step::Withdraw => OrderStatus::Paid,
            Step::Reserve => OrderStatus::ItemsReserved,
            Step::Book => OrderStatus::DeliveryBooked,
        }
    }

    /// The participant that takes this step.
    pub fn participant(self) -> ServiceName {
        match self {
            Step::Withdraw => ServiceName::Billing,
            Step::Reserve => ServiceName::Warehouse,
            Step::Book => ServiceName::Delivery,
        }
    }

    pub fn action_path(self) -> &'static str {
        match self {
            Step::Withdraw => "/api/v1/billing/withdraw",
            Step::Reserve => "/api/v1/warehouse/reserve",
            Step::Book => "/api/v1/deliveries/reserve",
        }
    }

    pub fn compensation_path(self, order_id: uuid::Uuid) -> String {
        match self {
            Step::Withdraw => format!("/api/v1/billing/withdraw/cancel/{order_id}"),
            Step::Reserve => format!("/api/v1/warehouse/reserve/cancel/{order_id}"),
            Step::Book => format!("/api/v1/deliveries/reserve/cancel/{order_id}"),
        }
    }
}

/// Log vocabulary: (phase, event).
pub mod log {
    pub const PHASE_ACTION: &str = "ACTION";
    pub const PHASE_COMPENSATION: &str = "COMPENSATION";
    pub const PHASE_SAGA: &str = "SAGA";
    pub const STARTED: &str = "STARTED";
    pub const SUCCEEDED: &str = "SUCCEEDED";
    pub const REFUSED: &str = "REFUSED";
    pub const REJECTED: &str = "REJECTED";
    pub const UNKNOWN: &str = "UNKNOWN";
    pub const ACKNOWLEDGED: &str = "ACKNOWLEDGED";
    pub const BEGUN: &str = "BEGUN";
    pub const COMPENSATE: &str = "COMPENSATE";
    pub const FINISHED: &str = "FINISHED";
    pub const SAGA_STEP: &str = "saga";
}

/// What the log says about one step's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Sent (or about to be), no answer recorded: it may have taken effect.
    Started,
    Succeeded,
    /// Refused for a business reason (the participant's operation record): nothing took effect.
    Refused(String),
    /// The call itself was refused (a 4xx status, e.g. an expired credential): this attempt
    /// did nothing, but an earlier attempt of the same call that got no answer may have.
    Rejected(String),
    /// No answer within the whole retry budget: it may have taken effect.
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SagaState {
    pub actions: BTreeMap<Step, ActionOutcome>,
    /// Set once the saga decided to unwind, with the order's future `errorMessage`.
    pub compensating: Option<String>,
    pub compensated: BTreeSet<Step>,
    pub finished: bool,
}

/// The detail of a rejected call (`REJECTED_401`). Logs written before [`log::REJECTED`]
/// existed logged such a step `REFUSED` with this detail; it is read as rejected.
pub const REJECTED_PREFIX: &str = "REJECTED_";

/// Rebuilds the saga's state from its log.
pub fn replay(entries: &[LogEntry]) -> SagaState {
    let mut state = SagaState::default();
    for (step, phase, event, detail) in entries {
        match (phase.as_str(), Step::parse(step)) {
            (log::PHASE_ACTION, Some(step)) => {
                let outcome = match event.as_str() {
                    log::SUCCEEDED => ActionOutcome::Succeeded,
                    log::REFUSED if detail.starts_with(REJECTED_PREFIX) => ActionOutcome::Rejected(detail.clone()),
                    log::REFUSED => ActionOutcome::Refused(detail.clone()),
                    log::REJECTED => ActionOutcome::Rejected(detail.clone()),
                    log::UNKNOWN => ActionOutcome::Unknown,
                    _ => ActionOutcome::Started,
                };
                state.actions.insert(step, outcome);
            }
            (log::PHASE_COMPENSATION, Some(step)) if event == log::ACKNOWLEDGED => {
                state.compensated.insert(step);
            }
            (log::PHASE_SAGA, _) if event == log::COMPENSATE => state.compensating = Some(detail.clone()),
            (log::PHASE_SAGA, _) if event == log::FINISHED => state.finished = true,
            _ => {}
        }
    }
    state
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Move {
    Act(Step),
    Compensate(Step),
    Finish { status: OrderStatus, error_message: Option<String> },
    Done,
}

/// Whether compensating `outcome` may be needed: anything that may have taken effect.
fn may_have_taken_effect(outcome: &ActionOutcome) -> bool {
    matches!(
        outcome,
        ActionOutcome::Started | ActionOutcome::Succeeded | ActionOutcome::Unknown | ActionOutcome::Rejected(_)
    )
}

/// Why the saga unwinds, if it does: the logged decision, or else the first refused or
/// unknown action (the runner logs both in one transaction; this keeps any log resumable).
fn unwind_reason(state: &SagaState) -> Option<String> {
    state.compensating.clone().or_else(|| {
        state.actions.values().find_map(|outcome| match outcome {
            ActionOutcome::Refused(reason) | ActionOutcome::Rejected(reason) => Some(reason.clone()),
            ActionOutcome::Unknown => Some(reason::SERVICE_UNAVAILABLE.to_string()),
            ActionOutcome::Started | ActionOutcome::Succeeded => None,
        })
    })
}

/// The one next move of a saga in `state`.
pub fn next_move(state: &SagaState) -> Move {
    if state.finished {
        return Move::Done;
    }
    if let Some(error_message) = unwind_reason(state) {
        let pending = STEPS.into_iter().rev().find(|step| {
            state.actions.get(step).is_some_and(may_have_taken_effect) && !state.compensated.contains(step)
        });
        return match pending {
            Some(step) => Move::Compensate(step),
            None => Move::Finish { status: OrderStatus::Failed, error_message: Some(error_message) },
        };
    }
    match STEPS.into_iter().find(|step| state.actions.get(step) != Some(&ActionOutcome::Succeeded)) {
        Some(step) => Move::Act(step),
        None => Move::Finish { status: OrderStatus::Confirmed, error_message: None },
    }
}

#[cfg(test)]
mod tests {
    //! Tests generated from the step table: for a failure at every step, the saga unwinds
    //! exactly the steps before it, in reverse; and replaying any prefix of a log resumes it.
    use super::*;

    fn entry(step: &str, phase: &str, event: &str, detail: &str) -> LogEntry {
        (step.to_string(), phase.to_string(), event.to_string(), detail.to_string())
    }

    /// Drives the state machine against in-memory participants; `fail_at` refuses one step,
    /// `unknown_at` loses one step's answer. Returns the log and the moves made.
    fn drive(fail_at: Option<Step>, unknown_at: Option<Step>) -> (Vec<LogEntry>, Vec<Move>) {
        drive_from(vec![entry(log::SAGA_STEP, log::PHASE_SAGA, log::BEGUN, "")], fail_at, unknown_at)
    }

    fn drive_from(
        entries: Vec<LogEntry>,
        fail_at: Option<Step>,
        unknown_at: Option<Step>,
    ) -> (Vec<LogEntry>, Vec<Move>) {
        drive_rejecting(entries, fail_at, unknown_at, None)
    }

    /// [`drive_from`], where `rejected_at` answers one step's call with a 401 (every time).
    fn drive_rejecting(
        mut entries: Vec<LogEntry>,
        fail_at: Option<Step>,
        unknown_at: Option<Step>,
        rejected_at: Option<Step>,
    ) -> (Vec<LogEntry>, Vec<Move>) {
        let mut moves = Vec::new();
        for _ in 0..20 {
            let next = next_move(&replay(&entries));
            moves.push(next.clone());
            match next {
                Move::Act(step) => {
                    entries.push(entry(step.name(), log::PHASE_ACTION, log::STARTED, ""));
                    if Some(step) == fail_at {
                        entries.push(entry(step.name(), log::PHASE_ACTION, log::REFUSED, "OUT_OF_STOCK"));
                        entries.push(entry(log::SAGA_STEP, log::PHASE_SAGA, log::COMPENSATE, "OUT_OF_STOCK"));
                    } else if Some(step) == rejected_at {
                        entries.push(entry(step.name(), log::PHASE_ACTION, log::REJECTED, "REJECTED_401"));
                        entries.push(entry(log::SAGA_STEP, log::PHASE_SAGA, log::COMPENSATE, "REJECTED_401"));
                    } else if Some(step) == unknown_at {
                        entries.push(entry(step.name(), log::PHASE_ACTION, log::UNKNOWN, ""));
                        entries.push(entry(
                            log::SAGA_STEP,
                            log::PHASE_SAGA,
                            log::COMPENSATE,
                            reason::SERVICE_UNAVAILABLE,
                        ));
                    } else {
                        entries.push(entry(step.name(), log::PHASE_ACTION, log::SUCCEEDED, ""));
                    }
                }
                Move::Compensate(step) => {
                    entries.push(entry(step.name(), log::PHASE_COMPENSATION, log::ACKNOWLEDGED, ""))
                }
                Move::Finish { .. } => entries.push(entry(log::SAGA_STEP, log::PHASE_SAGA, log::FINISHED, "")),
                Move::Done => return (entries, moves),
            }
        }
        panic!("saga did not finish within 20 moves: {moves:?}");
    }

    #[test]
    fn all_steps_succeeding_confirms() {
        let (_, moves) = drive(None, None);
        let acts: Vec<Move> = STEPS.into_iter().map(Move::Act).collect();
        assert_eq!(&moves[..3], &acts[..]);
        assert_eq!(moves[3], Move::Finish { status: OrderStatus::Confirmed, error_message: None });
    }

    #[test]
    fn a_refusal_at_every_step_unwinds_exactly_the_steps_before_it() {
        for (index, failing) in STEPS.into_iter().enumerate() {
            let (_, moves) = drive(Some(failing), None);
            let compensated: Vec<Step> =
                moves.iter().filter_map(|m| if let Move::Compensate(s) = m { Some(*s) } else { None }).collect();
            let expected: Vec<Step> = STEPS[..index].iter().rev().copied().collect();
            assert_eq!(compensated, expected, "failure at {failing:?}");
            for later in &STEPS[index + 1..] {
                assert!(!moves.contains(&Move::Act(*later)), "{later:?} ran after {failing:?} failed");
            }
            assert!(moves
                .contains(&Move::Finish { status: OrderStatus::Failed, error_message: Some("OUT_OF_STOCK".into()) }));
        }
    }

    #[test]
    fn an_unknown_outcome_at_every_step_is_compensated_too() {
        for (index, lost) in STEPS.into_iter().enumerate() {
            let (_, moves) = drive(None, Some(lost));
            let compensated: Vec<Step> =
                moves.iter().filter_map(|m| if let Move::Compensate(s) = m { Some(*s) } else { None }).collect();
            let expected: Vec<Step> = STEPS[..=index].iter().rev().copied().collect();
            assert_eq!(compensated, expected, "unknown outcome at {lost:?}");
        }
    }

    fn compensations(moves: &[Move]) -> Vec<Step> {
        moves.iter().filter_map(|m| if let Move::Compensate(s) = m { Some(*s) } else { None }).collect()
    }

    #[test]
    fn a_rejection_at_every_step_is_compensated_and_stops_the_saga() {
        // A 4xx may hide an earlier attempt of the same call that was applied.
        for (index, rejected) in STEPS.into_iter().enumerate() {
            let start = vec![entry(log::SAGA_STEP, log::PHASE_SAGA, log::BEGUN, "")];
            let (_, moves) = drive_rejecting(start, None, None, Some(rejected));
            let expected: Vec<Step> = STEPS[..=index].iter().rev().copied().collect();
            assert_eq!(compensations(&moves), expected, "rejection at {rejected:?}");
            for later in &STEPS[index + 1..] {
                assert!(!moves.contains(&Move::Act(*later)), "{later:?} ran after {rejected:?} was rejected");
            }
            let failed = Move::Finish { status: OrderStatus::Failed, error_message: Some("REJECTED_401".into()) };
            assert!(moves.contains(&failed), "rejection at {rejected:?}: {moves:?}");
        }
    }

    #[test]
    fn every_prefix_of_a_log_with_a_rejection_resumes_to_the_same_end() {
        for rejected in STEPS {
            let start = vec![entry(log::SAGA_STEP, log::PHASE_SAGA, log::BEGUN, "")];
            let (full, full_moves) = drive_rejecting(start, None, None, Some(rejected));
            let final_move = full_moves.iter().rev().nth(1).cloned();
            let final_state = replay(&full);
            for cut in 1..full.len() {
                let (resumed, moves) = drive_rejecting(full[..cut].to_vec(), None, None, Some(rejected));
                let resumed_state = replay(&resumed);
                assert_eq!(resumed_state.actions, final_state.actions, "cut {cut}, rejection at {rejected:?}");
                assert_eq!(resumed_state.compensated, final_state.compensated, "cut {cut}, rejection at {rejected:?}");
                assert_eq!(moves.iter().rev().nth(1).cloned(), final_move, "cut {cut}, rejection at {rejected:?}");
            }
        }
    }

    #[test]
    fn a_rejection_logged_as_refused_by_an_older_version_is_compensated() {
        let entries = vec![
            entry(log::SAGA_STEP, log::PHASE_SAGA, log::BEGUN, ""),
            entry("withdraw", log::PHASE_ACTION, log::STARTED, ""),
            entry("withdraw", log::PHASE_ACTION, log::REFUSED, "REJECTED_401"),
            entry(log::SAGA_STEP, log::PHASE_SAGA, log::COMPENSATE, "REJECTED_401"),
        ];
        assert_eq!(next_move(&replay(&entries)), Move::Compensate(Step::Withdraw));
    }

    #[test]
    fn a_business_refusal_is_not_compensated() {
        let entries = vec![
            entry(log::SAGA_STEP, log::PHASE_SAGA, log::BEGUN, ""),
            entry("withdraw", log::PHASE_ACTION, log::STARTED, ""),
            entry("withdraw", log::PHASE_ACTION, log::REFUSED, reason::INSUFFICIENT_FUNDS),
            entry(log::SAGA_STEP, log::PHASE_SAGA, log::COMPENSATE, reason::INSUFFICIENT_FUNDS),
        ];
        let failed =
            Move::Finish { status: OrderStatus::Failed, error_message: Some(reason::INSUFFICIENT_FUNDS.into()) };
        assert_eq!(next_move(&replay(&entries)), failed);
    }

    #[test]
    fn every_prefix_of_a_log_resumes_to_the_same_end() {
        for fail_at in [None, Some(Step::Withdraw), Some(Step::Reserve), Some(Step::Book)] {
            let (full, full_moves) = drive(fail_at, None);
            let final_move = full_moves.iter().rev().nth(1).cloned();
            let final_state = replay(&full);
            for cut in 1..full.len() {
                // The orchestrator crashed after writing `cut` entries; the restart resumes.
                let (resumed, moves) = drive_from(full[..cut].to_vec(), fail_at, None);
                let resumed_state = replay(&resumed);
                assert_eq!(resumed_state.actions, final_state.actions, "cut {cut}, failure {fail_at:?}");
                assert_eq!(resumed_state.compensated, final_state.compensated, "cut {cut}, failure {fail_at:?}");
                assert_eq!(moves.iter().rev().nth(1).cloned(), final_move, "cut {cut}, failure {fail_at:?}");
            }
        }
    }

    #[test]
    fn an_action_started_but_unanswered_is_sent_again() {
        let entries = vec![
            entry(log::SAGA_STEP, log::PHASE_SAGA, log::BEGUN, ""),
            entry("withdraw", log::PHASE_ACTION, log::STARTED, ""),
        ];
        assert_eq!(next_move(&replay(&entries)), Move::Act(Step::Withdraw));
    }

    #[test]
    fn a_started_action_is_compensated_when_unwinding() {
        let entries = vec![
            entry("withdraw", log::PHASE_ACTION, log::SUCCEEDED, ""),
            entry("reserve", log::PHASE_ACTION, log::STARTED, ""),
            entry(log::SAGA_STEP, log::PHASE_SAGA, log::COMPENSATE, "OUT_OF_STOCK"),
        ];
        assert_eq!(next_move(&replay(&entries)), Move::Compensate(Step::Reserve));
    }
}
