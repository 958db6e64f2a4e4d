//! Planted bugs: the classic saga and idempotency mistakes, compiled in only with the
//! `planted-bugs` feature and switched on one at a time, per thread, by the simulation to
//! prove that its checkers catch them. Without the feature `active` is always false and the
//! bug paths vanish from the build.
//!
//! The last three are negative controls rather than saga bugs: useless stores that break no
//! bookkeeping invariant, which the harness must still reject.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// Billing applies a repeated withdrawal again instead of answering from its record.
    WithdrawTwice,
    /// A cancel that arrives before its withdrawal leaves no tombstone: the late debit stays.
    NoTombstone,
    /// The orchestrator does not resume unfinished sagas after a restart.
    NoRecovery,
    /// Idempotency records are kept only in memory.
    MemoryKeys,
    /// The similar-order check runs before the key lookup.
    SimilarBeforeKey,
    /// A delivery failure forgets to release the reserved stock.
    ForgetStockRelease,
    /// A compensation is given up after one failed round.
    CompensationOnce,
    /// Stock is checked and reserved in two steps with an await between (oversell).
    OversellTwoSteps,
    /// Billing's notifications are sent once, directly, instead of through the outbox.
    DirectNotification,
    /// A late reply to an action moves the order's status, even out of a final one.
    StatusBackwards,
    /// A resumed saga that unwinds does not compensate the call the runner before may have
    /// sent while the write of its start failed (it trusts the log to show every call).
    ForgetUnloggedCall,
    /// Negative control: billing refuses every withdrawal with `INSUFFICIENT_FUNDS`, cleanly
    /// recorded and compensated; every saga FAILs correctly, so only a model of what the store
    /// should have answered can tell.
    RejectAll,
    /// Negative control: the order service answers 503 with `Retry-After` to every
    /// `POST /api/v1/order`, without any fault to explain it.
    UnavailableAll,
    /// Negative control: the warehouse writes a reservation without its own availability
    /// guard, so the `reserved_quantity <= total_quantity` CHECK fires inside the transaction;
    /// it answers 500 and the saga compensates.
    ConstraintMasked,
}

impl Bug {
    pub const ALL: [Bug; 14] = [
        Bug::WithdrawTwice,
        Bug::NoTombstone,
        Bug::NoRecovery,
        Bug::MemoryKeys,
        Bug::SimilarBeforeKey,
        Bug::ForgetStockRelease,
        Bug::CompensationOnce,
        Bug::OversellTwoSteps,
        Bug::DirectNotification,
        Bug::StatusBackwards,
        Bug::ForgetUnloggedCall,
        Bug::RejectAll,
        Bug::UnavailableAll,
        Bug::ConstraintMasked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::WithdrawTwice => "withdraw-twice",
            Bug::NoTombstone => "no-tombstone",
            Bug::NoRecovery => "no-recovery",
            Bug::MemoryKeys => "memory-keys",
            Bug::SimilarBeforeKey => "similar-before-key",
            Bug::ForgetStockRelease => "forget-stock-release",
            Bug::CompensationOnce => "compensation-once",
            Bug::OversellTwoSteps => "oversell-two-steps",
            Bug::DirectNotification => "direct-notification",
            Bug::StatusBackwards => "status-backwards",
            Bug::ForgetUnloggedCall => "forget-unlogged-call",
            Bug::RejectAll => "reject-all",
            Bug::UnavailableAll => "unavailable-all",
            Bug::ConstraintMasked => "constraint-masked",
        }
    }

    pub fn parse(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[cfg(feature = "planted-bugs")]
thread_local! {
    static ACTIVE: std::cell::Cell<Option<Bug>> = const { std::cell::Cell::new(None) };
}

/// Whether `bug` is planted on this thread.
#[inline]
pub fn active(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.with(|active| active.get() == Some(bug))
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}

/// Plants `bug` (or none) on this thread; returns whether this build can plant bugs.
pub fn plant(bug: Option<Bug>) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.with(|active| active.set(bug));
        true
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        bug.is_none()
    }
}
