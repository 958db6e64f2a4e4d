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
//! One registry a thread (a run is on one thread); [`reset`] starts a run's, and a sleep
//! left over from an earlier run on the thread removes nothing from it.
//!
//! [`SimClock::sleep`]: crate::seams::SimClock

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

#[derive(Default)]
struct Registry {
    /// Which run this registry belongs to (bumped by [`reset`]).
    generation: u64,
    /// Deadlines in simulated milliseconds → how many sleeps wait for each.
    deadlines: BTreeMap<u64, u32>,
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
    });
}

/// The earliest deadline registered (simulated milliseconds), if any.
pub fn earliest_ms() -> Option<u64> {
    REGISTRY.with(|r| r.borrow().deadlines.keys().next().copied())
}

fn register(deadline_ms: u64) -> u64 {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        *r.deadlines.entry(deadline_ms).or_default() += 1;
        r.generation
    })
}

fn unregister(generation: u64, deadline_ms: u64) {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if r.generation != generation {
            return;
        }
        if let Some(count) = r.deadlines.get_mut(&deadline_ms) {
            *count -= 1;
            if *count == 0 {
                r.deadlines.remove(&deadline_ms);
            }
        }
    });
}

/// A sleep whose deadline is in the registry while it is pending.
pub struct Registered<F> {
    inner: Pin<Box<F>>,
    /// (generation, deadline) while registered.
    entry: Option<(u64, u64)>,
}

impl<F: Future<Output = ()>> Registered<F> {
    /// `sleep` (just created) ends `duration` after simulated time `now` (the host's
    /// `turmoil::sim_elapsed`).
    pub fn new(sleep: F, now: Duration, duration: Duration) -> Registered<F> {
        let deadline_ms = u64::try_from(now.saturating_add(duration).as_millis()).unwrap_or(u64::MAX);
        let generation = register(deadline_ms);
        Registered { inner: Box::pin(sleep), entry: Some((generation, deadline_ms)) }
    }
}

impl<F> Registered<F> {
    fn release(&mut self) {
        if let Some((generation, deadline_ms)) = self.entry.take() {
            unregister(generation, deadline_ms);
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
