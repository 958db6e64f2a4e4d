//! The benchmark (not a test): scenarios per second and simulated-to-wall time for the
//! standard scenario mix under both time drivers (the fixed 1 ms step and the event-driven
//! one), next to bare turmoil with the same hosts and the same simulated durations, all
//! measured in the same process, interleaved run by run, so that the ratios cancel the
//! machine's speed and its moments of load.

use crate::run::{run_driven, TimeDriver, TICK_MS};
use crate::scenario::Scenario;
use crate::wall::wall_ms;
use contracts::ServiceName;
use std::time::Duration;

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub runs: u64,
    pub simulated_ms: u64,
    /// The store under the fixed driver (one step per simulated millisecond).
    pub store_wall_ms: f64,
    /// The store under the event-driven driver, the same runs.
    pub event_wall_ms: f64,
    pub bare_wall_ms: f64,
    pub store_runs_per_s: f64,
    pub event_runs_per_s: f64,
    pub bare_runs_per_s: f64,
    /// Simulated time per wall time, for the store (fixed driver).
    pub store_speedup: f64,
    /// Simulated time per wall time, for the store (event-driven driver).
    pub event_speedup: f64,
    pub bare_speedup: f64,
    /// store wall time / bare turmoil wall time: what the services and checkers cost.
    pub ratio: f64,
    /// fixed driver's wall time / event-driven driver's: what skipping idle time gains.
    pub event_gain: f64,
    /// Turmoil steps of all runs under each driver.
    pub fixed_steps: u64,
    pub event_steps: u64,
    /// Host ticks (a host's runtime run for one step) of all runs under each driver, and
    /// the running hosts' ticks the event-driven driver skipped (left idle for a step).
    pub fixed_host_ticks: u64,
    pub event_host_ticks: u64,
    pub event_host_skips: u64,
    /// Runs whose digest differs between the drivers (0: both drivers ran the same runs).
    pub digests_differing: u64,
    /// What the goals ask of the event-driven runs, from the figures above.
    pub bounds: Bounds,
}

/// What the goals (10x the fixed driver's runs per second, 700x real time) ask of the
/// event-driven runs, per run. Both drivers do the same work (the digests agree): the
/// services, the shoppers, the checks and the messages' delivery. The fixed driver pays on
/// top for stepping every host every millisecond, idle or not: `stepping_ms`, the difference
/// of their wall times. Work taken out of a run (a cheaper service, a cheaper check) comes
/// off both alike, so the gain `(event + stepping) / event` grows only as the event-driven
/// run gets cheaper: to `gain` at an event-driven cost of `stepping / (gain - 1)`. Derived
/// from one bench's wall times, so as noisy as they are.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Bounds {
    /// Simulated time per run.
    pub simulated_ms: f64,
    /// Wall time per run under each driver.
    pub fixed_ms: f64,
    pub event_ms: f64,
    /// What the fixed driver pays per run that the event-driven one does not (at least 0).
    pub stepping_ms: f64,
    /// The most an event-driven run may cost for a 10x gain over the fixed driver, and for
    /// 700x real time.
    pub event_budget_10x_ms: f64,
    pub event_budget_700x_real_time_ms: f64,
}

impl Bounds {
    pub fn new(simulated_ms: f64, fixed_ms: f64, event_ms: f64) -> Bounds {
        let stepping_ms = (fixed_ms - event_ms).max(0.0);
        Bounds {
            simulated_ms,
            fixed_ms,
            event_ms,
            stepping_ms,
            event_budget_10x_ms: stepping_ms / (10.0 - 1.0),
            event_budget_700x_real_time_ms: simulated_ms / 700.0,
        }
    }

    /// How many times cheaper the event-driven runs must get to cost `budget_ms`.
    pub fn cheaper_by(&self, budget_ms: f64) -> f64 {
        self.event_ms / budget_ms
    }
}

/// Bare turmoil: the same hosts (six idle services, the shoppers as clients) stepped for
/// `simulated_ms` with the same tick.
fn bare_turmoil(hosts: u32, simulated_ms: u64) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(1)
        .tick_duration(Duration::from_millis(TICK_MS))
        .simulation_duration(Duration::from_millis(simulated_ms + 1_000))
        .build();
    for service in ServiceName::ALL {
        sim.host(service.as_str(), || async {
            std::future::pending::<()>().await;
            Ok(())
        });
    }
    for index in 0..hosts {
        sim.client(format!("shopper-{index}").as_str(), async move {
            #[expect(clippy::disallowed_methods, reason = "bare turmoil: tokio time is simulated")]
            tokio::time::sleep(Duration::from_millis(simulated_ms)).await;
            Ok(())
        });
    }
    sim.run().expect("the bare simulation runs");
}

/// What the benchmark keeps of one run.
struct Run {
    shoppers: u32,
    simulated_ms: u64,
    steps: u64,
    host_ticks: u64,
    host_skips: u64,
    digest: String,
}

/// One run of `scenario` with `seed` under `time`, and its wall time.
fn timed_run(scenario: &Scenario, seed: u64, time: TimeDriver) -> (Run, f64) {
    wall_ms(|| {
        let report = run_driven(scenario, seed, None, time);
        Run {
            shoppers: scenario.shoppers,
            simulated_ms: report.stats.simulated_ms,
            steps: report.steps,
            host_ticks: report.host_ticks,
            host_skips: report.host_skips,
            digest: report.digest,
        }
    })
}

/// Runs `seeds` seeds of every scenario under each driver and bare turmoil for each run's
/// simulated time, interleaved run by run (fixed, bare, event-driven), so that a busy
/// moment of a shared machine slows all three alike instead of one driver's whole phase.
pub fn bench(scenarios: &[Scenario], seeds: u64) -> BenchReport {
    let (mut fixed, mut event) = (Vec::new(), Vec::new());
    let (mut store_wall_ms, mut event_wall_ms, mut bare_wall_ms) = (0.0, 0.0, 0.0);
    for scenario in scenarios {
        for seed in 0..seeds {
            let (run, wall) = timed_run(scenario, seed, TimeDriver::Fixed);
            store_wall_ms += wall;
            let ((), bare) = wall_ms(|| bare_turmoil(run.shoppers, run.simulated_ms));
            bare_wall_ms += bare;
            fixed.push(run);
            let (run, wall) = timed_run(scenario, seed, TimeDriver::EventDriven);
            event_wall_ms += wall;
            event.push(run);
        }
    }
    let runs = fixed.len() as u64;
    let simulated_ms: u64 = fixed.iter().map(|run| run.simulated_ms).sum();
    let digests_differing = fixed.iter().zip(&event).filter(|(f, e)| f.digest != e.digest).count() as u64;
    let total = |runs: &[Run], count: fn(&Run) -> u64| runs.iter().map(count).sum();
    let per_run = |wall_ms: f64| wall_ms / runs.max(1) as f64;
    let bounds = Bounds::new(per_run(simulated_ms as f64), per_run(store_wall_ms), per_run(event_wall_ms));
    BenchReport {
        runs,
        simulated_ms,
        store_wall_ms,
        event_wall_ms,
        bare_wall_ms,
        store_runs_per_s: runs as f64 / (store_wall_ms / 1000.0),
        event_runs_per_s: runs as f64 / (event_wall_ms / 1000.0),
        bare_runs_per_s: runs as f64 / (bare_wall_ms / 1000.0),
        store_speedup: simulated_ms as f64 / store_wall_ms,
        event_speedup: simulated_ms as f64 / event_wall_ms,
        bare_speedup: simulated_ms as f64 / bare_wall_ms,
        ratio: store_wall_ms / bare_wall_ms,
        event_gain: store_wall_ms / event_wall_ms,
        fixed_steps: total(&fixed, |run| run.steps),
        event_steps: total(&event, |run| run.steps),
        fixed_host_ticks: total(&fixed, |run| run.host_ticks),
        event_host_ticks: total(&event, |run| run.host_ticks),
        event_host_skips: total(&event, |run| run.host_skips),
        digests_differing,
        bounds,
    }
}

#[cfg(test)]
mod tests {
    use super::Bounds;

    #[test]
    fn the_budgets_follow_from_the_wall_times() {
        // 11.3 s simulated; the fixed driver 250 ms per run, the event-driven one 52 ms.
        let bounds = Bounds::new(11_300.0, 250.0, 52.0);
        assert_eq!(bounds.stepping_ms, 198.0);
        assert_eq!(bounds.event_budget_10x_ms, 22.0);
        // Taking 30 ms of work out of both runs gives the 10x: (250 - 30) / (52 - 30).
        assert_eq!((250.0 - 30.0) / (52.0 - 30.0), 10.0);
        assert!((bounds.cheaper_by(bounds.event_budget_10x_ms) - 52.0 / 22.0).abs() < 1e-9);
        // 11,300 ms at 700x real time is 16.14 ms of wall time.
        assert!((bounds.event_budget_700x_real_time_ms - 11_300.0 / 700.0).abs() < 1e-9);
        // Noise that makes the fixed driver look cheaper than the event-driven one.
        assert_eq!(Bounds::new(11_300.0, 50.0, 52.0).stepping_ms, 0.0);
    }
}
