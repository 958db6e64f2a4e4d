//! `coverage.md`, for people: which saga events happened under which faults, the probes,
//! the workload behaviours and the faults planned.

use crate::scenario::FaultKind;
use crate::sweep::Totals;
use platform::crash_point::CrashPoint;
use platform::probe::Probe;
use std::fmt::Write as _;

/// Which saga steps saw which faults, as a Markdown table.
pub fn coverage_markdown(totals: &Totals) -> String {
    let mut md = String::from(
        "# Fault coverage\n\nSaga log events by the faults active when they happened, added up over the sweep.\n\n",
    );
    md.push_str("| saga event | no fault | under faults |\n|---|---|---|\n");
    for (event, faults) in &totals.coverage {
        let none = faults.get("none").copied().unwrap_or(0);
        let mut under: Vec<(&String, &u64)> = faults.iter().filter(|(f, _)| *f != "none").collect();
        under.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let listed: Vec<String> = under.iter().map(|(f, n)| format!("{f}: {n}")).collect();
        let shown = if listed.is_empty() { "**never**".to_string() } else { listed.join(", ") };
        let _ = writeln!(md, "| {event} | {none} | {shown} |");
    }
    md.push_str(&never_seen(totals));
    md.push_str("\n## Probes\n\nHits of each coverage probe (`platform::probe`), added up over the sweep.\n\n");
    md.push_str("| probe | hits | a hit means |\n|---|---|---|\n");
    for probe in Probe::ALL {
        let hits = totals.probes.get(probe.name()).copied().unwrap_or(0);
        let shown = if hits == 0 { "**never**".to_string() } else { hits.to_string() };
        let _ = writeln!(md, "| {} | {shown} | {} |", probe.name(), probe.doc());
    }
    md.push_str("\n## Workload\n\nRequests of each adversarial shopper behaviour, added up over the sweep.\n\n");
    md.push_str("| behaviour | requests |\n|---|---|\n");
    for behaviour in WORKLOAD {
        let count = totals.workload.get(behaviour).copied().unwrap_or(0);
        let shown = if count == 0 { "**never**".to_string() } else { count.to_string() };
        let _ = writeln!(md, "| {behaviour} | {shown} |");
    }
    md.push_str(&faults_markdown(totals));
    md
}

/// Every fault kind and every crash point: how many the sweep planned, in how many runs,
/// and (crash points) how often the code reached the point, armed or not.
fn faults_markdown(totals: &Totals) -> String {
    let mut md = String::from("\n## Faults\n\nFaults of each kind (and crash points by point) planned over the sweep, the runs that planned one, and (crash points) the times the code reached the point, armed or not, and the times it fired (crashed its host).\n\n");
    md.push_str("| fault | planned | runs | reached | fired |\n|---|---|---|---|---|\n");
    let shown = |n: u64| if n == 0 { "**never**".to_string() } else { n.to_string() };
    for kind in FaultKind::ALL {
        let planned = totals.faults.get(kind.name()).copied().unwrap_or(0);
        let runs = totals.fault_runs.get(kind.name()).copied().unwrap_or(0);
        let _ = writeln!(md, "| {} | {} | {} | | |", kind.name(), shown(planned), shown(runs));
    }
    for point in CrashPoint::ALL {
        let planned = totals.crash_points_planned.get(point.name()).copied().unwrap_or(0);
        let runs = totals.crash_point_runs.get(point.name()).copied().unwrap_or(0);
        let (reached, fired) = totals.crash_points.get(point.name()).copied().unwrap_or_default();
        let _ = writeln!(
            md,
            "| crash_point {} | {} | {} | {} | {} |",
            point.name(),
            shown(planned),
            shown(runs),
            shown(reached),
            shown(fired)
        );
    }
    md
}

/// The adversarial workload behaviours, as `Stats::workload` counts them (an event's
/// `Action::behaviour` and its own `behaviours`).
pub const WORKLOAD: [&str; 21] = [
    "double_submit",
    "similar_order",
    "abandoned",
    "late_retry",
    "order_key_reused",
    "key_shared",
    "similar_at_once",
    "deposit_key_reused",
    "racing_deposit_keyed",
    "racing_deposit_unkeyed",
    "internal_route",
    "forged_cookie",
    "no_session",
    "peek_other_order",
    "transactions_read",
    "notifications_read",
    "second_session",
    "logout_in_flight",
    "logged_out_cookie",
    "order_body_at_limit",
    "order_body_past_limit",
];

/// The fault kind (as in `summary.json`'s `faults`) of an active-fault label.
fn label_kind(label: &str) -> Option<&'static str> {
    let mut words = label.split_whitespace();
    let kind = match (words.next()?, words.next()) {
        ("partition", Some(link)) if link.contains("->") => "partition_one_way",
        ("partition", _) => "partition",
        ("isolate", _) => "isolate",
        ("hold", _) => "hold",
        ("pause", _) => "pause",
        ("crash", _) => "crash",
        ("crash-point", _) => "crash_point",
        ("storage", _) => "storage",
        ("skew", _) => "skew",
        ("latency", _) => "latency",
        ("duplicates", _) | ("late", Some("duplicates")) => "duplicate",
        _ => return None,
    };
    Some(kind)
}

/// Saga events × the fault kinds the sweep planned, for the pairs never seen together.
fn never_seen(totals: &Totals) -> String {
    let planned: Vec<&str> = totals.faults.iter().filter(|(_, n)| **n > 0).map(|(kind, _)| kind.as_str()).collect();
    let mut md = String::from(
        "\n## Never seen\n\nSaga events that never happened while a fault of a kind the sweep planned was active.\n\n",
    );
    if planned.is_empty() {
        md.push_str("The sweep planned no faults.\n");
        return md;
    }
    md.push_str("| saga event | fault kinds never active then |\n|---|---|\n");
    let mut gaps = 0;
    for (event, faults) in &totals.coverage {
        let missing: Vec<&str> = planned
            .iter()
            .copied()
            .filter(|kind| !faults.iter().any(|(label, n)| *n > 0 && label_kind(label) == Some(*kind)))
            .collect();
        if !missing.is_empty() {
            gaps += missing.len();
            let _ = writeln!(md, "| {event} | {} |", missing.join(", "));
        }
    }
    if gaps == 0 {
        md.push_str("| (none) | every saga event was seen under every planned kind |\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_their_fault_kinds() {
        assert_eq!(label_kind("partition order~billing"), Some("partition"));
        assert_eq!(label_kind("partition order->billing"), Some("partition_one_way"));
        assert_eq!(label_kind("isolate billing"), Some("isolate"));
        assert_eq!(label_kind("pause billing"), Some("pause"));
        assert_eq!(label_kind("late duplicates"), Some("duplicate"));
        assert_eq!(label_kind("duplicates"), Some("duplicate"));
        assert_eq!(label_kind("none"), None);
    }

    #[test]
    fn coverage_lists_pairs_never_seen_and_probes() {
        let mut totals = Totals::default();
        totals.faults.insert("crash".into(), 3);
        totals.faults.insert("hold".into(), 2);
        totals.coverage.entry("withdraw ACTION SUCCEEDED".into()).or_default().insert("crash billing".into(), 4);
        totals.probes.insert("tombstone".into(), 2);
        let md = coverage_markdown(&totals);
        assert!(md.contains("| withdraw ACTION SUCCEEDED | hold |"), "{md}");
        assert!(md.contains("| tombstone | 2 |"), "{md}");
        assert!(md.contains("| saga_resumed | **never** |"), "{md}");
    }

    #[test]
    fn coverage_lists_crash_points_reached_and_fired() {
        let mut totals = Totals::default();
        let stats = crate::run::Stats {
            crash_points: [("recovery_resumed order".to_string(), 3), ("key_committed order".to_string(), 5)].into(),
            crash_points_fired: [("recovery_resumed order".to_string(), 1)].into(),
            ..Default::default()
        };
        totals.add(&stats);
        totals.add(&stats);
        let md = coverage_markdown(&totals);
        assert!(md.contains("| crash_point recovery_resumed | **never** | **never** | 6 | 2 |"), "{md}");
        assert!(md.contains("| crash_point key_committed | **never** | **never** | 10 | **never** |"), "{md}");
        assert!(
            md.contains("| crash_point outbox_delivered | **never** | **never** | **never** | **never** |"),
            "{md}"
        );
    }
}
