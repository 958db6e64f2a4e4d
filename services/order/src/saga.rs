//! The order saga as a declared step table and a log-driven state machine.
//!
//! Every decision is a pure function of the saga log ([`replay`] then [`next_move`]); the
//! runner only performs the move and logs its result. So a restarted orchestrator resumes
//! every saga exactly where its log ends: an action logged as started but never answered is
//! sent again (participants make repeats no-ops), and compensations run in reverse order
//! until each is acknowledged (in a resumed saga, also the step after the last one logged,
//! which a runner before may have sent unlogged: [`Event::Resumed`]). Only a
//! participant's own business refusal (from its operation record) says an action took no
//! effect; any other failure of a started action — no answer, or a 4xx from the
//! participant's transport or auth layer, which may hide an earlier attempt that was
//! applied — is compensated.

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

    pub fn compensation_path(self, order_id: contracts::OrderId) -> String {
        match self {
            Step::Withdraw => format!("/api/v1/billing/withdraw/cancel/{order_id}"),
            Step::Reserve => format!("/api/v1/warehouse/reserve/cancel/{order_id}"),
            Step::Book => format!("/api/v1/deliveries/reserve/cancel/{order_id}"),
        }
    }
}

/// What a saga log entry is about, the table's `phase` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// A step's action (`step` names it).
    Action,
    /// A step's compensation (`step` names it).
    Compensation,
    /// The saga as a whole (`step` is [`SAGA_STEP`]).
    Saga,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Action, Phase::Compensation, Phase::Saga];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Action => "ACTION",
            Phase::Compensation => "COMPENSATION",
            Phase::Saga => "SAGA",
        }
    }

    pub fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// What happened, the saga log's `event` column (which events each phase logs: [`replay`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// A call is about to be sent (an action or a compensation).
    Started,
    /// The action took effect.
    Succeeded,
    /// The participant's business refusal: the action took no effect.
    Refused,
    /// The call was turned away with a 4xx status (detail `REJECTED_<status>`).
    Rejected,
    /// No answer within the retry budget.
    Unknown,
    /// The compensation took effect (or was written off: detail `skipped`, `given up`).
    Acknowledged,
    /// The saga was created with its order.
    Begun,
    /// The saga decided to unwind; the detail is the order's future `errorMessage`.
    Compensate,
    /// The order reached its final status (the detail).
    Finished,
    /// A runner took the saga up after another stopped (a restart, or a write that failed):
    /// if the runner before left a call started and unanswered, it may also have sent the
    /// next, whose start was in the write it never saw commit ([`next_move`] compensates it
    /// too).
    Resumed,
}

impl Event {
    pub const ALL: [Event; 10] = [
        Event::Started,
        Event::Succeeded,
        Event::Refused,
        Event::Rejected,
        Event::Unknown,
        Event::Acknowledged,
        Event::Begun,
        Event::Compensate,
        Event::Finished,
        Event::Resumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Started => "STARTED",
            Event::Succeeded => "SUCCEEDED",
            Event::Refused => "REFUSED",
            Event::Rejected => "REJECTED",
            Event::Unknown => "UNKNOWN",
            Event::Acknowledged => "ACKNOWLEDGED",
            Event::Begun => "BEGUN",
            Event::Compensate => "COMPENSATE",
            Event::Finished => "FINISHED",
            Event::Resumed => "RESUMED",
        }
    }

    pub fn parse(text: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// The saga log's `step` of the entries about the saga as a whole ([`Phase::Saga`]).
pub const SAGA_STEP: &str = "saga";

/// The text of a log entry's `step`: the step's name, or [`SAGA_STEP`].
pub fn step_text(step: Option<Step>) -> &'static str {
    step.map_or(SAGA_STEP, Step::name)
}

/// A log entry's `step` read back: `None` for [`SAGA_STEP`]; a name no step has is `None`
/// outside (unknown).
pub fn parse_step(text: &str) -> Option<Option<Step>> {
    if text == SAGA_STEP {
        Some(None)
    } else {
        Step::parse(text).map(Some)
    }
}

macro_rules! serialize_as_str {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    )*};
}
serialize_as_str!(Phase, Event);

/// One saga log line (the `saga_log` table, without its order and time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The step the entry is about; `None`: the saga as a whole ([`SAGA_STEP`]).
    pub step: Option<Step>,
    pub phase: Phase,
    pub event: Event,
    pub detail: String,
}

impl LogEntry {
    /// An entry about `step`'s action.
    pub fn action(step: Step, event: Event, detail: &str) -> LogEntry {
        LogEntry { step: Some(step), phase: Phase::Action, event, detail: detail.to_string() }
    }

    /// An entry about `step`'s compensation.
    pub fn compensation(step: Step, event: Event, detail: &str) -> LogEntry {
        LogEntry { step: Some(step), phase: Phase::Compensation, event, detail: detail.to_string() }
    }

    /// An entry about the saga as a whole.
    pub fn saga(event: Event, detail: &str) -> LogEntry {
        LogEntry { step: None, phase: Phase::Saga, event, detail: detail.to_string() }
    }
}

/// A log entry no version of the runner writes: an event its phase never logs, or a step
/// that does not fit its phase. The saga stops there (recovery retries, and an operator
/// reads the error) rather than acting on a guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("saga log entry not understood: step '{}', phase {}, event {}", step_text(.0.step), .0.phase.as_str(), .0.event.as_str())]
pub struct UnknownEntry(pub LogEntry);

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
    /// The steps logged as started and not answered when a runner took the saga up again
    /// ([`Event::Resumed`]): the runner before stopped with that call's answer unwritten,
    /// so it may have sent the next call too.
    pub unanswered_at_resume: BTreeSet<Step>,
}

/// The detail of a rejected call (`REJECTED_401`). Logs written before [`Event::Rejected`]
/// existed logged such a step `REFUSED` with this detail; it is read as rejected.
pub const REJECTED_PREFIX: &str = "REJECTED_";

/// Rebuilds the saga's state from its log; an entry the runner never writes is an error.
pub fn replay(entries: &[LogEntry]) -> Result<SagaState, UnknownEntry> {
    let mut state = SagaState::default();
    for entry in entries {
        let not_understood = || UnknownEntry(entry.clone());
        let LogEntry { step, phase, event, detail } = entry;
        match (phase, *step, event) {
            (Phase::Action, Some(step), _) => {
                let outcome = match event {
                    Event::Started => ActionOutcome::Started,
                    Event::Succeeded => ActionOutcome::Succeeded,
                    Event::Refused if detail.starts_with(REJECTED_PREFIX) => ActionOutcome::Rejected(detail.clone()),
                    Event::Refused => ActionOutcome::Refused(detail.clone()),
                    Event::Rejected => ActionOutcome::Rejected(detail.clone()),
                    Event::Unknown => ActionOutcome::Unknown,
                    Event::Acknowledged | Event::Begun | Event::Compensate | Event::Finished | Event::Resumed => {
                        return Err(not_understood())
                    }
                };
                state.actions.insert(step, outcome);
            }
            (Phase::Compensation, Some(_), Event::Started) | (Phase::Saga, None, Event::Begun) => {}
            (Phase::Compensation, Some(step), Event::Acknowledged) => {
                state.compensated.insert(step);
            }
            (Phase::Saga, None, Event::Compensate) => state.compensating = Some(detail.clone()),
            (Phase::Saga, None, Event::Finished) => state.finished = true,
            (Phase::Saga, None, Event::Resumed) => {
                let unanswered = state.actions.iter().filter(|(_, outcome)| **outcome == ActionOutcome::Started);
                state.unanswered_at_resume.extend(unanswered.map(|(step, _)| *step));
            }
            _ => return Err(not_understood()),
        }
    }
    Ok(state)
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

/// The step a runner may have sent without its start in the log: the runner sends a call
/// while the transaction logging its start (with the answer before it) commits, so a runner
/// that stopped before that commit may have sent the step after the last one the log knows
/// (`runner.rs::act`), and left that last one started and unanswered. So it is the step after
/// the furthest one with a logged outcome, if that one was unanswered when a runner resumed
/// the saga and its call may have succeeded (a business refusal stops the saga: no call
/// follows it). The log cannot tell a call sent unlogged from one never sent (a crash while
/// the call before was on its way looks the same), so such a step is compensated either way.
fn call_maybe_unlogged(state: &SagaState) -> Option<Step> {
    #[cfg(feature = "planted-bugs")]
    if crate::planted::forget_unlogged_call() {
        return None;
    }
    let furthest = STEPS.iter().rposition(|step| state.actions.contains_key(step))?;
    let (last, next) = (STEPS[furthest], *STEPS.get(furthest + 1)?);
    let may_have_succeeded = state.actions.get(&last).is_some_and(may_have_taken_effect);
    (state.unanswered_at_resume.contains(&last) && may_have_succeeded).then_some(next)
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
        let unlogged = call_maybe_unlogged(state);
        let pending = STEPS.into_iter().rev().find(|step| {
            (state.actions.get(step).is_some_and(may_have_taken_effect) || unlogged == Some(*step))
                && !state.compensated.contains(step)
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

    /// Drives the state machine against in-memory participants; `fail_at` refuses one step,
    /// `unknown_at` loses one step's answer. Returns the log and the moves made.
    fn drive(fail_at: Option<Step>, unknown_at: Option<Step>) -> (Vec<LogEntry>, Vec<Move>) {
        drive_from(vec![LogEntry::saga(Event::Begun, "")], fail_at, unknown_at)
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
            let next = next_move(&replay(&entries).unwrap());
            moves.push(next.clone());
            match next {
                Move::Act(step) => {
                    entries.push(LogEntry::action(step, Event::Started, ""));
                    if Some(step) == fail_at {
                        entries.push(LogEntry::action(step, Event::Refused, "OUT_OF_STOCK"));
                        entries.push(LogEntry::saga(Event::Compensate, "OUT_OF_STOCK"));
                    } else if Some(step) == rejected_at {
                        entries.push(LogEntry::action(step, Event::Rejected, "REJECTED_401"));
                        entries.push(LogEntry::saga(Event::Compensate, "REJECTED_401"));
                    } else if Some(step) == unknown_at {
                        entries.push(LogEntry::action(step, Event::Unknown, ""));
                        entries.push(LogEntry::saga(Event::Compensate, reason::SERVICE_UNAVAILABLE));
                    } else {
                        entries.push(LogEntry::action(step, Event::Succeeded, ""));
                    }
                }
                Move::Compensate(step) => entries.push(LogEntry::compensation(step, Event::Acknowledged, "")),
                Move::Finish { .. } => entries.push(LogEntry::saga(Event::Finished, "")),
                Move::Done => return (entries, moves),
            }
        }
        panic!("saga did not finish within 20 moves: {moves:?}");
    }

    #[test]
    fn every_word_reads_back_as_itself_and_no_other() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
        for event in Event::ALL {
            assert_eq!(Event::parse(event.as_str()), Some(event));
        }
        for step in STEPS {
            assert_eq!(parse_step(step_text(Some(step))), Some(Some(step)));
        }
        assert_eq!(parse_step(SAGA_STEP), Some(None));
        assert_eq!((Phase::parse("EXPLODED"), Event::parse("EXPLODED"), parse_step("ship")), (None, None, None));
    }

    #[test]
    fn an_entry_the_runner_never_writes_is_an_error_not_a_default() {
        let odd = |step, phase, event| LogEntry { step, phase, event, detail: String::new() };
        for entry in [
            LogEntry::action(Step::Withdraw, Event::Acknowledged, ""),
            LogEntry::action(Step::Reserve, Event::Finished, ""),
            LogEntry::compensation(Step::Reserve, Event::Succeeded, ""),
            LogEntry::saga(Event::Started, ""),
            odd(None, Phase::Action, Event::Started),
            odd(None, Phase::Compensation, Event::Acknowledged),
            odd(Some(Step::Book), Phase::Saga, Event::Finished),
        ] {
            let log = vec![LogEntry::saga(Event::Begun, ""), entry.clone()];
            assert_eq!(replay(&log), Err(UnknownEntry(entry)));
        }
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
            let start = vec![LogEntry::saga(Event::Begun, "")];
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
            let start = vec![LogEntry::saga(Event::Begun, "")];
            let (full, full_moves) = drive_rejecting(start, None, None, Some(rejected));
            let final_move = full_moves.iter().rev().nth(1).cloned();
            let final_state = replay(&full).unwrap();
            for cut in 1..full.len() {
                let (resumed, moves) = drive_rejecting(full[..cut].to_vec(), None, None, Some(rejected));
                let resumed_state = replay(&resumed).unwrap();
                assert_eq!(resumed_state.actions, final_state.actions, "cut {cut}, rejection at {rejected:?}");
                assert_eq!(resumed_state.compensated, final_state.compensated, "cut {cut}, rejection at {rejected:?}");
                assert_eq!(moves.iter().rev().nth(1).cloned(), final_move, "cut {cut}, rejection at {rejected:?}");
            }
        }
    }

    #[test]
    fn a_rejection_logged_as_refused_by_an_older_version_is_compensated() {
        let entries = vec![
            LogEntry::saga(Event::Begun, ""),
            LogEntry::action(Step::Withdraw, Event::Started, ""),
            LogEntry::action(Step::Withdraw, Event::Refused, "REJECTED_401"),
            LogEntry::saga(Event::Compensate, "REJECTED_401"),
        ];
        assert_eq!(next_move(&replay(&entries).unwrap()), Move::Compensate(Step::Withdraw));
    }

    #[test]
    fn a_business_refusal_is_not_compensated() {
        let entries = vec![
            LogEntry::saga(Event::Begun, ""),
            LogEntry::action(Step::Withdraw, Event::Started, ""),
            LogEntry::action(Step::Withdraw, Event::Refused, reason::INSUFFICIENT_FUNDS),
            LogEntry::saga(Event::Compensate, reason::INSUFFICIENT_FUNDS),
        ];
        let failed =
            Move::Finish { status: OrderStatus::Failed, error_message: Some(reason::INSUFFICIENT_FUNDS.into()) };
        assert_eq!(next_move(&replay(&entries).unwrap()), failed);
    }

    #[test]
    fn every_prefix_of_a_log_resumes_to_the_same_end() {
        for fail_at in [None, Some(Step::Withdraw), Some(Step::Reserve), Some(Step::Book)] {
            let (full, full_moves) = drive(fail_at, None);
            let final_move = full_moves.iter().rev().nth(1).cloned();
            let final_state = replay(&full).unwrap();
            for cut in 1..full.len() {
                // The orchestrator crashed after writing `cut` entries; the restart resumes.
                let (resumed, moves) = drive_from(full[..cut].to_vec(), fail_at, None);
                let resumed_state = replay(&resumed).unwrap();
                assert_eq!(resumed_state.actions, final_state.actions, "cut {cut}, failure {fail_at:?}");
                assert_eq!(resumed_state.compensated, final_state.compensated, "cut {cut}, failure {fail_at:?}");
                assert_eq!(moves.iter().rev().nth(1).cloned(), final_move, "cut {cut}, failure {fail_at:?}");
            }
        }
    }

    #[test]
    fn an_action_started_but_unanswered_is_sent_again() {
        let entries = vec![LogEntry::saga(Event::Begun, ""), LogEntry::action(Step::Withdraw, Event::Started, "")];
        assert_eq!(next_move(&replay(&entries).unwrap()), Move::Act(Step::Withdraw));
    }

    /// A resumed saga whose withdrawal's answer was lost: the runner before may have sent the
    /// reservation with the write that logged both, which never committed.
    fn resumed_after_a_lost_answer(then: Vec<LogEntry>) -> Vec<LogEntry> {
        let mut entries = vec![
            LogEntry::saga(Event::Begun, ""),
            LogEntry::action(Step::Withdraw, Event::Started, ""),
            LogEntry::saga(Event::Resumed, ""),
            LogEntry::action(Step::Withdraw, Event::Started, ""),
        ];
        entries.extend(then);
        entries
    }

    #[test]
    fn a_resumed_saga_unwinding_compensates_the_call_that_may_have_gone_out_unlogged() {
        let unknown = vec![
            LogEntry::action(Step::Withdraw, Event::Unknown, ""),
            LogEntry::saga(Event::Compensate, reason::SERVICE_UNAVAILABLE),
        ];
        let (_, moves) = drive_from(resumed_after_a_lost_answer(unknown.clone()), None, None);
        assert_eq!(compensations(&moves), vec![Step::Reserve, Step::Withdraw]);
        // Not resumed: the runner that logged the unknown answer sent nothing after it.
        let mut fresh = resumed_after_a_lost_answer(unknown.clone());
        fresh.retain(|e| e.event != Event::Resumed);
        let (_, moves) = drive_from(fresh, None, None);
        assert_eq!(compensations(&moves), vec![Step::Withdraw]);
        // Resumed only after the unknown answer was logged: the runner that logged it had
        // sent nothing after it, and stopped while unwinding.
        let mut late = vec![LogEntry::saga(Event::Begun, ""), LogEntry::action(Step::Withdraw, Event::Started, "")];
        late.extend(unknown);
        late.push(LogEntry::saga(Event::Resumed, ""));
        let (_, moves) = drive_from(late, None, None);
        assert_eq!(compensations(&moves), vec![Step::Withdraw]);
        // A business refusal is followed by no call, resumed or not.
        let refused = vec![
            LogEntry::action(Step::Withdraw, Event::Refused, reason::INSUFFICIENT_FUNDS),
            LogEntry::saga(Event::Compensate, reason::INSUFFICIENT_FUNDS),
        ];
        let (_, moves) = drive_from(resumed_after_a_lost_answer(refused), None, None);
        assert_eq!(compensations(&moves), Vec::<Step>::new());
        // A later step logged: the runner that logged it logged the one before with it.
        let (_, moves) = drive_from(resumed_after_a_lost_answer(vec![]), Some(Step::Book), None);
        assert_eq!(compensations(&moves), vec![Step::Reserve, Step::Withdraw]);
        // Nothing after the last step.
        let (_, moves) = drive_from(resumed_after_a_lost_answer(vec![]), None, Some(Step::Book));
        assert_eq!(compensations(&moves), vec![Step::Book, Step::Reserve, Step::Withdraw]);
    }

    #[test]
    fn a_started_action_is_compensated_when_unwinding() {
        let entries = vec![
            LogEntry::action(Step::Withdraw, Event::Succeeded, ""),
            LogEntry::action(Step::Reserve, Event::Started, ""),
            LogEntry::saga(Event::Compensate, "OUT_OF_STOCK"),
        ];
        assert_eq!(next_move(&replay(&entries).unwrap()), Move::Compensate(Step::Reserve));
    }
}
