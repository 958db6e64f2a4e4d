//! A run's timeline for people: the driver's fault and phase lines and the history's
//! requests, merged in simulated time. `sim run --trace` prints it; a failure page shows it.

use crate::run::RunReport;

/// The merged lines, earliest first (a driver line before a request of the same moment).
pub fn merged(report: &RunReport) -> Vec<String> {
    let mut lines: Vec<(u64, String)> = report.timeline.iter().map(|l| (at_ms(l), l.clone())).collect();
    lines.extend(report.history.iter().map(|e| (e.at_ms, e.line())));
    lines.sort_by_key(|(at, _)| *at);
    lines.into_iter().map(|(_, l)| l).collect()
}

/// The simulated time a driver line starts with (0 when it has none).
fn at_ms(line: &str) -> u64 {
    line.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}
