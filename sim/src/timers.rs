//! The timer registry: the deadline of every sleep a simulated host is waiting on, so that
//! the event-driven driver (`run::Driver::EventDriven`) knows how far simulated time can
//! jump with nothing due. Every timer a host creates goes through [`SimClock::sleep`]
//! (services and shoppers alike; hyper's header-read deadline through
//! `platform::hyper_timer::ClockTimer` on that clock), which registers it here.
//!
//! A deadline is registered when its sleep is created (tokio fixes the deadline then) and
//! removed when the sleep completes or is dropped (a crash drops a host's tasks). It is
//! recorded in whole simulated milliseconds rounded down, never later than tokio fires it
//! (tokio rounds up). A deadline at or before now that is still registered is a sleep that
//! fired and whose task has not run yet (or was never polled): the driver then steps one
//! millisecond.
//!
//! Each deadline is also kept under the host whose task created the sleep (turmoil's
//! current host then; its runtime's timer fires it): the driver ticks a host only in a
//! step within which one of its own deadlines falls ([`due_by`]), or for another reason
//! turmoil sees (a message handed to it, a wake from outside it; `Sim::step_hosts_by`).
//!
//! One registry a thread (a run is on one thread); [`reset`] starts a run's, and a sleep
//! left over from an earlier run on the thread removes nothing from it.
//!
//! [`SimClock::sleep`]: crate::seams::SimClock

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Default)]
struct Registry {
    /// Which run this registry belongs to (bumped by [`reset`]).
    generation: u64,
    /// Deadlines in simulated milliseconds → how many sleeps wait for each.
    deadlines: BTreeMap<u64, u32>,
    /// The same, by the host that created the sleep (`None`: outside any host, due for
    /// every host).
    by_host: BTreeMap<Option<IpAddr>, BTreeMap<u64, u32>>,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Starts a run's registry: nothing registered.
pub fn reset() {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        r.generation += 1;
        r.deadlines.clear();
        r.by_host.clear();
    });
}

/// The earliest deadline registered (simulated milliseconds), if any.
pub fn earliest_ms() -> Option<u64> {
    REGISTRY.with(|r| r.borrow().deadlines.keys().next().copied())
}

/// Whether a deadline of `host`'s own (or of no host) falls at or before `until_ms`
/// (simulated milliseconds): a deadline passed and still registered is a sleep that fired
/// and whose task has not run yet.
pub fn due_by(host: IpAddr, until_ms: u64) -> bool {
    REGISTRY.with(|r| {
        let r = r.borrow();
        [Some(host), None]
            .iter()
            .any(|key| r.by_host.get(key).and_then(|d| d.keys().next()).is_some_and(|earliest| *earliest <= until_ms))
    })
}

fn add(deadlines: &mut BTreeMap<u64, u32>, deadline_ms: u64) {
    *deadlines.entry(deadline_ms).or_default() += 1;
}

fn remove(deadlines: &mut BTreeMap<u64, u32>, deadline_ms: u64) {
    if let Some(count) = deadlines.get_mut(&deadline_ms) {
        *count -= 1;
        if *count == 0 {
            deadlines.remove(&deadline_ms);
        }
    }
}

fn register(host: Option<IpAddr>, deadline_ms: u64) -> u64 {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        add(&mut r.deadlines, deadline_ms);
        add(r.by_host.entry(host).or_default(), deadline_ms);
        r.generation
    })
}

fn unregister(generation: u64, host: Option<IpAddr>, deadline_ms: u64) {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if r.generation != generation {
            return;
        }
        remove(&mut r.deadlines, deadline_ms);
        if let Some(deadlines) = r.by_host.get_mut(&host) {
            remove(deadlines, deadline_ms);
        }
    });
}

/// A sleep whose deadline is in the registry while it is pending.
pub struct Registered<F> {
    inner: Pin<Box<F>>,
    /// (generation, host, deadline) while registered.
    entry: Option<(u64, Option<IpAddr>, u64)>,
}

impl<F: Future<Output = ()>> Registered<F> {
    /// `sleep` (just created by a task of `host`, turmoil's current host) ends
    /// `duration` after simulated time `now` (the host's `turmoil::sim_elapsed`).
    pub fn new(sleep: F, host: Option<IpAddr>, now: Duration, duration: Duration) -> Registered<F> {
        let deadline_ms = u64::try_from(now.saturating_add(duration).as_millis()).unwrap_or(u64::MAX);
        let generation = register(host, deadline_ms);
        Registered { inner: Box::pin(sleep), entry: Some((generation, host, deadline_ms)) }
    }
}

impl<F> Registered<F> {
    fn release(&mut self) {
        if let Some((generation, host, deadline_ms)) = self.entry.take() {
            unregister(generation, host, deadline_ms);
        }
    }
}

impl<F: Future<Output = ()>> Future for Registered<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let polled = self.inner.as_mut().poll(cx);
        if polled.is_ready() {
            self.release();
        }
        polled
    }
}

impl<F> Drop for Registered<F> {
    fn drop(&mut self) {
        self.release();
    }
}
