//! The benchmark (not a test): scenarios per second and simulated-to-wall time for the
//! standard scenario mix, next to bare turmoil with the same hosts and the same simulated
//! durations, measured in the same process so that the ratio cancels the machine's speed.

use crate::run::{run, TICK_MS};
use crate::scenario::Scenario;
use crate::wall::wall_ms;
use contracts::ServiceName;
use std::time::Duration;

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    pub runs: u64,
    pub simulated_ms: u64,
    pub store_wall_ms: f64,
    pub bare_wall_ms: f64,
    pub store_runs_per_s: f64,
    pub bare_runs_per_s: f64,
    /// Simulated time per wall time, for the store.
    pub store_speedup: f64,
    pub bare_speedup: f64,
    /// store wall time / bare turmoil wall time: what the services and checkers cost.
    pub ratio: f64,
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

/// Runs `seeds` seeds of every scenario, then bare turmoil for each run's simulated time.
pub fn bench(scenarios: &[Scenario], seeds: u64) -> BenchReport {
    let mut durations = Vec::new();
    let (_, store_wall_ms) = wall_ms(|| {
        for scenario in scenarios {
            for seed in 0..seeds {
                let report = run(scenario, seed, None);
                durations.push((scenario.shoppers, report.stats.simulated_ms));
            }
        }
    });
    let (_, bare_wall_ms) = wall_ms(|| {
        for (shoppers, simulated_ms) in &durations {
            bare_turmoil(*shoppers, *simulated_ms);
        }
    });
    let runs = durations.len() as u64;
    let simulated_ms: u64 = durations.iter().map(|(_, ms)| ms).sum();
    BenchReport {
        runs,
        simulated_ms,
        store_wall_ms,
        bare_wall_ms,
        store_runs_per_s: runs as f64 / (store_wall_ms / 1000.0),
        bare_runs_per_s: runs as f64 / (bare_wall_ms / 1000.0),
        store_speedup: simulated_ms as f64 / store_wall_ms,
        bare_speedup: simulated_ms as f64 / bare_wall_ms,
        ratio: store_wall_ms / bare_wall_ms,
    }
}
