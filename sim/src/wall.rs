//! The harness's one reading of the host clock: how long some work took, for the sweep's
//! `summary.json` (`wall_ms`, `runs_per_s`) and the benchmark. Never part of a run.

/// The work's value and its wall time in milliseconds.
#[expect(clippy::disallowed_types, clippy::disallowed_methods, reason = "the sweep and the benchmark report wall time")]
pub fn wall_ms<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let started = std::time::Instant::now();
    let value = work();
    (value, started.elapsed().as_secs_f64() * 1000.0)
}
