//! Storage faults: the simulation may fail a host's write transactions (`Db::write`) the
//! way a real SQLite can — the write lock is busy when the transaction begins, or an I/O
//! error strikes when it commits, after the work ran. Either way the transaction is rolled
//! back and leaves no effect, and the caller gets a `rusqlite::Error` it must treat as
//! transient (`storage::is_transient`): a request answers 503, a background loop retries
//! later; nothing acknowledged is lost, because nothing was acknowledged.
//!
//! Arming is per thread and off unless the simulation enables it for a run (as
//! `crate::crash_point`), so in real mode [`draw`] is a thread-local read and answers
//! `None`. Which write fails is decided by a counter of the armed host's writes mixed with
//! the seed handed in when arming: no ambient randomness, the same run fails the same writes.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// How an injected fault fails a write transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StorageFailure {
    /// `SQLITE_BUSY` when the transaction begins: the work never runs.
    Busy,
    /// `SQLITE_IOERR_WRITE` when the transaction commits: the work ran and is rolled back.
    IoError,
}

impl StorageFailure {
    pub fn name(self) -> &'static str {
        match self {
            StorageFailure::Busy => "busy",
            StorageFailure::IoError => "io_error",
        }
    }

    /// The error SQLite would have returned.
    pub fn error(self) -> rusqlite::Error {
        let (code, message) = match self {
            StorageFailure::Busy => (rusqlite::ffi::SQLITE_BUSY, "database is locked (injected storage fault)"),
            StorageFailure::IoError => (rusqlite::ffi::SQLITE_IOERR_WRITE, "disk I/O error (injected storage fault)"),
        };
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_string()))
    }
}

/// One armed fault: each write of `host` fails with probability `per_mille`/1000.
struct Arm {
    id: usize,
    host: String,
    per_mille: u32,
    seed: u64,
    /// Writes of `host` seen by this arm.
    writes: u64,
}

struct State {
    /// Which host is running now (the simulation knows; the services do not).
    current_host: fn() -> Option<String>,
    arms: Vec<Arm>,
    /// Failures injected since [`enable`], by (host, failure).
    injected: BTreeMap<(String, StorageFailure), u64>,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// SplitMix64's finalizer: a well-mixed 64-bit value from `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Whether the current host's write transaction, beginning now, must fail, and how. Every
/// arm of the host counts the write; the first that fires decides. Counts the injection.
pub fn draw() -> Option<StorageFailure> {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        let state = state.as_mut()?;
        if state.arms.is_empty() {
            return None;
        }
        let host = (state.current_host)()?;
        let mut failure = None;
        for arm in state.arms.iter_mut().filter(|a| a.host == host) {
            arm.writes += 1;
            let x = mix(arm.seed ^ mix(arm.writes));
            if failure.is_none() && x % 1_000 < u64::from(arm.per_mille) {
                failure = Some(if (x >> 32) & 1 == 0 { StorageFailure::Busy } else { StorageFailure::IoError });
            }
        }
        let failure = failure?;
        *state.injected.entry((host, failure)).or_default() += 1;
        Some(failure)
    })
}

/// Starts storage faults on this thread, none armed; `current_host` names the running host.
pub fn enable(current_host: fn() -> Option<String>) {
    STATE.with(|state| *state.borrow_mut() = Some(State { current_host, arms: Vec::new(), injected: BTreeMap::new() }));
}

/// Arms fault `id` on `host`: from now on each of its writes fails with probability
/// `per_mille`/1000, drawn from `seed` and a count of the host's writes.
pub fn arm(id: usize, host: &str, per_mille: u32, seed: u64) {
    STATE.with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.arms.retain(|a| a.id != id);
            state.arms.push(Arm { id, host: host.to_string(), per_mille: per_mille.min(1_000), seed, writes: 0 });
        }
    });
}

/// Ends fault `id`.
pub fn disarm(id: usize) {
    STATE.with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.arms.retain(|a| a.id != id);
        }
    });
}

/// Ends every fault (the heal).
pub fn disarm_all() {
    STATE.with(|state| {
        if let Some(state) = state.borrow_mut().as_mut() {
            state.arms.clear();
        }
    });
}

/// Stops storage faults on this thread; hands back the failures injected since [`enable`].
pub fn take() -> BTreeMap<(String, StorageFailure), u64> {
    STATE.with(|state| state.borrow_mut().take()).map(|s| s.injected).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn billing() -> Option<String> {
        Some("billing".to_string())
    }

    #[test]
    fn off_unless_enabled_and_armed_for_the_current_host() {
        assert_eq!(draw(), None);
        enable(billing);
        assert_eq!(draw(), None, "enabled, nothing armed");
        arm(1, "warehouse", 1_000, 7);
        assert_eq!(draw(), None, "armed for another host");
        arm(2, "billing", 1_000, 7);
        assert!(draw().is_some(), "per mille 1000 fails every write");
        disarm(2);
        assert_eq!(draw(), None);
        let injected = take();
        assert_eq!(injected.values().sum::<u64>(), 1);
        assert_eq!(draw(), None, "off again after take");
    }

    #[test]
    fn the_same_seed_fails_the_same_writes_with_both_failures() {
        let run = |seed: u64| {
            enable(billing);
            arm(0, "billing", 300, seed);
            let drawn: Vec<Option<StorageFailure>> = (0..200).map(|_| draw()).collect();
            take();
            drawn
        };
        let first = run(42);
        assert_eq!(first, run(42));
        assert_ne!(first, run(43));
        let failed = first.iter().flatten().count();
        assert!((30..=90).contains(&failed), "about 300 per mille of 200 writes, got {failed}");
        assert!(first.contains(&Some(StorageFailure::Busy)) && first.contains(&Some(StorageFailure::IoError)));
    }
}
