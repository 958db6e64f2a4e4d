//! Coverage probes ("sometimes" assertions, after Antithesis' `sometimes` and FoundationDB's
//! `TEST()` macros): named places in the services that a fault-heavy run is meant to reach
//! now and then — a repeated action answered from its record, a tombstone, a resumed saga.
//! A probe asserts nothing; the simulation counts the hits of each run and fails a scenario
//! none of whose seeds reached a probe the scenario declares it exists to exercise.
//!
//! Counting is per thread and off unless the simulation enables it for a run (turmoil runs
//! every host of one run on the calling thread; sweeps run seeds on different threads), so
//! in real mode [`hit`] is a thread-local read and nothing else.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// A place worth reaching. Names (`name`) are what scenario files declare in `exercises`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    /// A participant answered an action from its existing operation record (a repeat).
    RepeatedAction,
    /// An action arrived after its cancel's tombstone and was refused.
    LateActionRefused,
    /// A cancel arrived before its action and left a tombstone.
    Tombstone,
    /// A cancel arrived for an action already cancelled or undone, and changed nothing.
    RepeatedCancel,
    /// A cancel undid an applied action (a compensation that did work).
    ActionUndone,
    /// A saga started by recovery (after a restart or a stop) rather than by its request.
    SagaResumed,
    /// A compensation round was not acknowledged and is retried.
    CompensationRetried,
    /// An outbox event delivered after a failed attempt.
    OutboxRedelivered,
    /// The HTTP client sent an injected duplicate of a request (any not exempted as never resent).
    DuplicateSent,
    /// An injected duplicate went out late, after its original.
    LateDuplicateSent,
    /// An order request answered 200 from its key (a replay).
    KeyReplayed,
    /// An order request answered 409: its key is held by a request still waiting.
    KeyInProgress,
    /// An order request answered 409 duplicate-order (a similar order within the window).
    DuplicateOrder,
    /// An order request answered 202: its saga outlived the request's deadline.
    OrderAccepted,
    /// An HTTP attempt between services got no answer within its deadline.
    AttemptTimedOut,
    /// A reservation was refused for want of stock.
    OutOfStock,
    /// A booking was refused: the slot was full or already past.
    NoDeliverySlot,
    /// The delivery horizon moved on to a new hour: slots were added to a horizon that
    /// already held some (not the first seeding).
    SlotsExtended,
    /// An armed crash point fired: its host is crashed right there (`crate::crash_point`).
    CrashPointFired,
    /// A write transaction failed by an injected storage fault and left no effect
    /// (`crate::storage_fault`).
    StorageFault,
    /// A request between services went out on a pooled keep-alive connection.
    ConnectionReused,
    /// A pooled connection its peer had closed (a restart, an idle deadline) was found
    /// closed, or handed the request back unsent; the request went on another connection.
    StaleConnection,
    /// A request on a pooled connection was written and no whole answer came back (a
    /// half-open connection, a peer reset): sent again on a fresh connection only if
    /// idempotent, else reported as of unknown outcome.
    PooledRequestLost,
    /// A resumed saga compensated a step its log never showed as started: the runner before
    /// may have sent it while the write of its start failed to commit.
    UnloggedCallCompensated,
}

impl Probe {
    pub const ALL: [Probe; 24] = [
        Probe::RepeatedAction,
        Probe::LateActionRefused,
        Probe::Tombstone,
        Probe::RepeatedCancel,
        Probe::ActionUndone,
        Probe::SagaResumed,
        Probe::CompensationRetried,
        Probe::OutboxRedelivered,
        Probe::DuplicateSent,
        Probe::LateDuplicateSent,
        Probe::KeyReplayed,
        Probe::KeyInProgress,
        Probe::DuplicateOrder,
        Probe::OrderAccepted,
        Probe::AttemptTimedOut,
        Probe::OutOfStock,
        Probe::NoDeliverySlot,
        Probe::SlotsExtended,
        Probe::CrashPointFired,
        Probe::StorageFault,
        Probe::ConnectionReused,
        Probe::StaleConnection,
        Probe::PooledRequestLost,
        Probe::UnloggedCallCompensated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Probe::RepeatedAction => "repeated_action",
            Probe::LateActionRefused => "late_action_refused",
            Probe::Tombstone => "tombstone",
            Probe::RepeatedCancel => "repeated_cancel",
            Probe::ActionUndone => "action_undone",
            Probe::SagaResumed => "saga_resumed",
            Probe::CompensationRetried => "compensation_retried",
            Probe::OutboxRedelivered => "outbox_redelivered",
            Probe::DuplicateSent => "duplicate_sent",
            Probe::LateDuplicateSent => "late_duplicate_sent",
            Probe::KeyReplayed => "key_replayed",
            Probe::KeyInProgress => "key_in_progress",
            Probe::DuplicateOrder => "duplicate_order",
            Probe::OrderAccepted => "order_accepted",
            Probe::AttemptTimedOut => "attempt_timed_out",
            Probe::OutOfStock => "out_of_stock",
            Probe::NoDeliverySlot => "no_delivery_slot",
            Probe::SlotsExtended => "slots_extended",
            Probe::CrashPointFired => "crash_point_fired",
            Probe::StorageFault => "storage_fault",
            Probe::ConnectionReused => "connection_reused",
            Probe::StaleConnection => "stale_connection",
            Probe::PooledRequestLost => "pooled_request_lost",
            Probe::UnloggedCallCompensated => "unlogged_call_compensated",
        }
    }

    /// One line on what a hit means (for reports).
    pub fn doc(self) -> &'static str {
        match self {
            Probe::RepeatedAction => "a participant answered an action from its existing operation record",
            Probe::LateActionRefused => "an action arrived after its cancel's tombstone and was refused",
            Probe::Tombstone => "a cancel arrived before its action and left a tombstone",
            Probe::RepeatedCancel => "a cancel of an action already cancelled or undone changed nothing",
            Probe::ActionUndone => "a cancel undid an applied action",
            Probe::SagaResumed => "a saga was started by recovery rather than by its create request",
            Probe::CompensationRetried => "a compensation round failed and is retried",
            Probe::OutboxRedelivered => "an outbox event was delivered after a failed attempt",
            Probe::DuplicateSent => "an injected duplicate of a request was sent",
            Probe::LateDuplicateSent => "an injected duplicate went out late, after its original",
            Probe::KeyReplayed => "an order request was answered 200 from its idempotency key",
            Probe::KeyInProgress => "an order request was answered 409: its key's first request still waits",
            Probe::DuplicateOrder => "an order request was answered 409 duplicate-order",
            Probe::OrderAccepted => "an order request was answered 202: its saga outlived the deadline",
            Probe::AttemptTimedOut => "an HTTP attempt between services got no answer within its deadline",
            Probe::OutOfStock => "a reservation was refused for want of stock",
            Probe::NoDeliverySlot => "a booking was refused: the slot was full or already past",
            Probe::SlotsExtended => "the delivery horizon moved on to a new hour and its new slots were added",
            Probe::CrashPointFired => "an armed crash point fired and crashed its host right there",
            Probe::StorageFault => "a write transaction failed by an injected storage fault and left no effect",
            Probe::ConnectionReused => "a request between services went out on a pooled keep-alive connection",
            Probe::StaleConnection => {
                "a pooled connection its peer had closed was found closed or refused the request unsent"
            }
            Probe::PooledRequestLost => {
                "a request on a pooled connection got no whole answer: resent fresh only if idempotent"
            }
            Probe::UnloggedCallCompensated => {
                "a resumed saga compensated a step whose call may have gone out with a start never committed"
            }
        }
    }

    pub fn parse(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }
}

thread_local! {
    static COUNTS: RefCell<Option<BTreeMap<Probe, u64>>> = const { RefCell::new(None) };
}

/// Records a hit of `probe` if counting is enabled on this thread; otherwise nothing.
#[inline]
pub fn hit(probe: Probe) {
    COUNTS.with(|counts| {
        if let Some(counts) = counts.borrow_mut().as_mut() {
            *counts.entry(probe).or_default() += 1;
        }
    });
}

/// Starts counting on this thread, from zero.
pub fn enable() {
    COUNTS.with(|counts| *counts.borrow_mut() = Some(BTreeMap::new()));
}

/// Stops counting on this thread and hands back the counts since [`enable`].
pub fn take() -> BTreeMap<Probe, u64> {
    COUNTS.with(|counts| counts.borrow_mut().take()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_count_only_while_enabled() {
        hit(Probe::Tombstone);
        assert!(take().is_empty());
        enable();
        hit(Probe::Tombstone);
        hit(Probe::Tombstone);
        hit(Probe::SagaResumed);
        let counts = take();
        assert_eq!(counts.get(&Probe::Tombstone), Some(&2));
        assert_eq!(counts.get(&Probe::SagaResumed), Some(&1));
        hit(Probe::Tombstone);
        assert!(take().is_empty());
    }

    #[test]
    fn names_round_trip() {
        for probe in Probe::ALL {
            assert_eq!(Probe::parse(probe.name()), Some(probe));
            assert!(!probe.doc().is_empty());
        }
        assert_eq!(Probe::parse("nope"), None);
    }
}
