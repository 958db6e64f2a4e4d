//! Crash points (after FoundationDB's BUGGIFY): named places in the seams where the
//! simulation may crash a host — right after something committed and before the work that
//! depends on it (the reply, the call, the delete) runs. A crash point asserts nothing; when
//! the simulation has armed it for the current host, [`reached`] answers `true` and the
//! caller must stop there (see [`here`]): the simulation crashes the host at its next step,
//! so the work after the point never runs, as if the process had died between two lines.
//!
//! Arming is per thread and off unless the simulation enables it for a run (turmoil runs
//! every host of one run on the calling thread; sweeps run seeds on different threads), so
//! in real mode [`reached`] is a thread-local read and answers `false`.

use contracts::ServiceName;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A place where a crash is worth simulating. Names (`name`) are what fault plans carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CrashPoint {
    /// A participant committed a saga step (an action or its cancel) and has not replied.
    ParticipantCommitted,
    /// The order runner logged an action as started and has not used its answer (the call
    /// goes out while its start's write commits: it may be on its way already).
    SagaLogWritten,
    /// The order runner logged a compensation as started and has not sent it.
    CompensationLogged,
    /// The order service committed a new order and its key, and has not started the saga.
    KeyCommitted,
    /// An outbox relay had an event acknowledged and has not deleted it.
    OutboxDelivered,
    /// The order service's recovery claimed an unfinished saga (after a restart, or in its
    /// periodic scan) and has not resumed it: a crash during recovery.
    RecoveryResumed,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::ParticipantCommitted,
        CrashPoint::SagaLogWritten,
        CrashPoint::CompensationLogged,
        CrashPoint::KeyCommitted,
        CrashPoint::OutboxDelivered,
        CrashPoint::RecoveryResumed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::ParticipantCommitted => "participant_committed",
            CrashPoint::SagaLogWritten => "saga_log_written",
            CrashPoint::CompensationLogged => "compensation_logged",
            CrashPoint::KeyCommitted => "key_committed",
            CrashPoint::OutboxDelivered => "outbox_delivered",
            CrashPoint::RecoveryResumed => "recovery_resumed",
        }
    }

    /// The hosts that can reach this point.
    pub fn hosts(self) -> &'static [ServiceName] {
        use ServiceName::{Billing, Delivery, Order, Warehouse};
        match self {
            CrashPoint::ParticipantCommitted => &[Billing, Warehouse, Delivery],
            CrashPoint::SagaLogWritten
            | CrashPoint::CompensationLogged
            | CrashPoint::KeyCommitted
            | CrashPoint::RecoveryResumed => &[Order],
            CrashPoint::OutboxDelivered => &[Order, Billing],
        }
    }

    pub fn parse(name: &str) -> Option<CrashPoint> {
        CrashPoint::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One armed crash point: the `nth` time `host` reaches `point` while armed, it crashes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Arm {
    id: usize,
    point: CrashPoint,
    host: String,
    nth: u32,
    seen: u32,
}

struct State {
    /// Which host is running now (the simulation knows; the services do not).
    current_host: fn() -> Option<String>,
    arms: Vec<Arm>,
    /// Crashes asked for and not yet taken: (arm id, host).
    requests: Vec<(usize, String)>,
    /// Every crash point reached while enabled, armed or not, by point and host.
    hits: BTreeMap<(CrashPoint, String), u64>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Whether the current host must crash here. Counts the hit when enabled.
pub fn reached(point: CrashPoint) -> bool {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let Some(state) = state.as_mut() else { return false };
        let Some(host) = (state.current_host)() else { return false };
        *state.hits.entry((point, host.clone())).or_default() += 1;
        let mut fired = None;
        for arm in state.arms.iter_mut().filter(|a| a.point == point && a.host == host) {
            arm.seen += 1;
            if arm.seen == arm.nth && fired.is_none() {
                fired = Some(arm.id);
            }
        }
        let Some(id) = fired else { return false };
        state.arms.retain(|a| a.id != id);
        state.requests.push((id, host));
        crate::probe::hit(crate::probe::Probe::CrashPointFired);
        true
    })
}

/// Marks `point` in an async task: when the current host must crash here, the task stops
/// for good (it never resumes; the crash at the simulation's next step drops it), so
/// nothing after the point runs. Otherwise returns at once.
pub async fn here(point: CrashPoint) {
    if reached(point) {
        std::future::pending::<()>().await;
    }
}

/// Starts crash points on this thread, none armed; `current_host` names the running host.
pub fn enable(current_host: fn() -> Option<String>) {
    STATE.with(|state| {
        *state.borrow_mut() =
            Some(State { current_host, arms: Vec::new(), requests: Vec::new(), hits: BTreeMap::new() })
    });
}

/// Arms `point` on `host` (as fault `id`): its `nth` hit from now crashes the host.
pub fn arm(id: usize, point: CrashPoint, host: &str, nth: u32) {
    STATE.with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.arms.retain(|a| a.id != id);
            state.arms.push(Arm { id, point, host: host.to_string(), nth: nth.max(1), seen: 0 });
        }
    });
}

/// Disarms fault `id` if it has not fired.
pub fn disarm(id: usize) {
    STATE.with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.arms.retain(|a| a.id != id);
        }
    });
}

/// The crashes asked for since the last call: (fault id, host).
pub fn take_requests() -> Vec<(usize, String)> {
    STATE.with(|state| state.borrow_mut().as_mut().map(|s| std::mem::take(&mut s.requests)).unwrap_or_default())
}

/// Stops crash points on this thread; hands back the hits since [`enable`].
pub fn take() -> BTreeMap<(CrashPoint, String), u64> {
    STATE.with(|state| state.borrow_mut().take()).map(|s| s.hits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billing() -> Option<String> {
        Some("billing".to_string())
    }

    #[test]
    fn off_unless_enabled_and_fires_on_the_nth_hit_of_its_host() {
        assert!(!reached(CrashPoint::ParticipantCommitted));
        enable(billing);
        arm(3, CrashPoint::ParticipantCommitted, "billing", 2);
        arm(4, CrashPoint::ParticipantCommitted, "warehouse", 1);
        assert!(!reached(CrashPoint::ParticipantCommitted));
        assert!(!reached(CrashPoint::OutboxDelivered));
        assert!(reached(CrashPoint::ParticipantCommitted));
        assert!(!reached(CrashPoint::ParticipantCommitted), "an arm fires once");
        assert_eq!(take_requests(), [(3, "billing".to_string())]);
        assert!(take_requests().is_empty());
        let hits = take();
        assert_eq!(hits.get(&(CrashPoint::ParticipantCommitted, "billing".to_string())), Some(&3));
        assert!(!reached(CrashPoint::ParticipantCommitted));
    }

    #[test]
    fn names_round_trip() {
        for point in CrashPoint::ALL {
            assert_eq!(CrashPoint::parse(point.name()), Some(point));
            assert!(!point.hosts().is_empty());
        }
    }
}
