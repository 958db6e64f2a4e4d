//! Reports for CI and for people: `junit.xml`, `summary.json`, `coverage.md`, and for each
//! failing seed a self-contained page (Markdown, and HTML that needs no network) with the
//! violation, the shrunk plan, the timeline, and a sequence diagram of the orders involved
//! with the faults marked on it. Nothing here reads a wall clock or writes an absolute
//! path: two sweeps of the same seeds write the same bytes but for `wall_ms`/`runs_per_s`.

use crate::history::Event;
use crate::plan::Plan;
use crate::run::{active_faults, RunReport, SagaEntry};
use crate::scenario::FaultKind;
use crate::shrink::Shrunk;
use crate::snapshot::Participant;
use crate::sweep::{probe_gaps, Outcome, Totals};
use contracts::ServiceName;
use platform::crash_point::CrashPoint;
use platform::probe::Probe;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Bumped when a field of `summary.json` changes meaning or goes away.
pub const SUMMARY_SCHEMA: u32 = 1;

pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The page of a failing run, relative to the reports directory.
pub fn page_stem(report: &RunReport) -> String {
    let bug = report.plan.bug.as_deref().map(|b| format!("-{b}")).unwrap_or_default();
    format!("failures/{}-seed-{}{bug}", report.scenario, report.seed)
}

/// One suite per scenario, one case per seed; a failure carries invariant, evidence and
/// the replay command. `time` is simulated seconds, so the file is reproducible.
pub fn junit(outcomes: &[Outcome]) -> String {
    let gaps: Vec<_> = probe_gaps(outcomes).into_iter().filter(|g| g.enforced).collect();
    let mut suites: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        suites.entry(outcome.scenario.as_str()).or_default().push(outcome);
    }
    let failed = Outcome::failed;
    // A scenario whose declared probes were not all hit gets one more, failing, case.
    let gap_suites: BTreeSet<&str> = gaps.iter().map(|g| g.scenario.as_str()).collect();
    let total_failed = outcomes.iter().filter(|o| failed(o)).count() + gap_suites.len();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let tests = outcomes.len() + gap_suites.len();
    let _ = writeln!(xml, "<testsuites name=\"sim\" tests=\"{tests}\" failures=\"{total_failed}\">");
    for (scenario, cases) in suites {
        let scenario_gaps: Vec<_> = gaps.iter().filter(|g| g.scenario == scenario).collect();
        let extra = usize::from(!scenario_gaps.is_empty());
        let failures = cases.iter().filter(|o| failed(o)).count() + extra;
        let seconds: f64 = cases.iter().map(|o| o.stats.simulated_ms as f64 / 1000.0).sum();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">",
            escape_xml(scenario),
            cases.len() + extra
        );
        for case in cases {
            let name = format!("seed {}", case.seed);
            let time = case.stats.simulated_ms as f64 / 1000.0;
            let _ = write!(
                xml,
                "    <testcase classname=\"sim.{}\" name=\"{name}\" time=\"{time:.3}\"",
                escape_xml(scenario)
            );
            let mut body = String::new();
            if let Some(report) = &case.failure {
                let first = &report.violations[0];
                let mut text = String::new();
                for violation in &report.violations {
                    let _ = writeln!(text, "{violation}");
                }
                let _ = writeln!(text, "replay: {}", report.replay_command());
                let _ = writeln!(text, "report: {}.md", page_stem(report));
                let message = format!("invariant {} ({}) violated for {}", first.invariant, first.name, first.subject);
                let _ = writeln!(
                    body,
                    "      <failure message=\"{}\" type=\"invariant-{}\">{}</failure>",
                    escape_xml(&message),
                    first.invariant,
                    escape_xml(&text)
                );
            }
            if let Some((first, second)) = &case.nondeterministic {
                let message = format!("nondeterministic: digests {first} and {second}");
                let _ = writeln!(body, "      <failure message=\"{message}\" type=\"determinism\"/>");
            }
            if body.is_empty() {
                xml.push_str("/>\n");
            } else {
                let _ = write!(xml, ">\n{body}    </testcase>\n");
            }
        }
        if !scenario_gaps.is_empty() {
            let probes: Vec<&str> = scenario_gaps.iter().map(|g| g.probe.as_str()).collect();
            let message = format!("declared probes never hit: {}", probes.join(", "));
            let mut text = String::new();
            for gap in &scenario_gaps {
                let _ = writeln!(text, "{gap}");
            }
            let _ = write!(
                xml,
                "    <testcase classname=\"sim.{0}\" name=\"probes\" time=\"0.000\">\n      <failure message=\"{1}\" type=\"coverage\">{2}</failure>\n    </testcase>\n",
                escape_xml(scenario),
                escape_xml(&message),
                escape_xml(&text)
            );
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

pub fn summary(outcomes: &[Outcome], wall_ms: f64) -> serde_json::Value {
    let mut totals = Totals::default();
    let mut scenarios: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    // Per scenario: how many of its seeds hit each probe.
    let mut probe_seeds: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for outcome in outcomes {
        totals.add(&outcome.stats);
        let entry = scenarios.entry(outcome.scenario.as_str()).or_default();
        if outcome.failed() {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
        let seeds = probe_seeds.entry(outcome.scenario.as_str()).or_default();
        for (probe, _) in outcome.stats.probes.iter().filter(|(_, hits)| **hits > 0) {
            *seeds.entry(probe.as_str()).or_default() += 1;
        }
    }
    let failures: Vec<serde_json::Value> = outcomes
        .iter()
        .filter_map(|o| o.failure.as_ref())
        .map(|r| {
            let invariants: BTreeSet<u8> = r.violations.iter().map(|v| v.invariant).collect();
            json!({"scenario": r.scenario, "seed": r.seed, "bug": r.plan.bug, "invariants": invariants,
                   "replay": r.replay_command(), "page": format!("{}.md", page_stem(r))})
        })
        .collect();
    let failed = scenarios.values().map(|(_, f)| f).sum::<u64>();
    json!({
        "schema": SUMMARY_SCHEMA,
        "runs": outcomes.len(),
        "passed": outcomes.len() as u64 - failed,
        "failed": failed,
        "determinism_checks": outcomes.iter().filter(|o| o.rechecked).count(),
        "nondeterministic": outcomes.iter().filter(|o| o.nondeterministic.is_some()).count(),
        "scenarios": scenarios.iter().map(|(name, (passed, failed))| json!({"name": name, "seeds": passed + failed, "passed": passed, "failed": failed, "probe_seeds": probe_seeds.get(name).cloned().unwrap_or_default()})).collect::<Vec<_>>(),
        "simulated_ms": totals.simulated_ms,
        "wall_ms": (wall_ms * 1000.0).round() / 1000.0,
        "runs_per_s": if wall_ms > 0.0 { ((outcomes.len() as f64) / (wall_ms / 1000.0) * 1000.0).round() / 1000.0 } else { 0.0 },
        "orders": totals.orders,
        "confirmed": totals.confirmed,
        "failed_orders": totals.failed,
        "requests": totals.requests,
        "faults": totals.faults,
        "saga_events": totals.saga_events,
        "coverage": totals.coverage,
        "probes": Probe::ALL.iter().map(|p| (p.name(), totals.probes.get(p.name()).copied().unwrap_or(0))).collect::<BTreeMap<_, _>>(),
        "probe_gaps": probe_gaps(outcomes),
        "crash_points": CrashPoint::ALL.iter().map(|p| {
            let (reached, fired) = totals.crash_points.get(p.name()).copied().unwrap_or_default();
            (p.name(), json!({"reached": reached, "fired": fired}))
        }).collect::<BTreeMap<_, _>>(),
        "workload": WORKLOAD.iter().map(|w| (*w, totals.workload.get(*w).copied().unwrap_or(0))).collect::<BTreeMap<_, _>>(),
        "metrics": totals.metrics,
        "failures": failures,
    })
}

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

// ---- failure pages -------------------------------------------------------------------

/// A column of the sequence diagram: the shoppers, or a service.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lane {
    Client,
    Service(ServiceName),
}

const LANES: [Lane; 7] = {
    use ServiceName::*;
    [
        Lane::Client,
        Lane::Service(Gateway),
        Lane::Service(Order),
        Lane::Service(Billing),
        Lane::Service(Warehouse),
        Lane::Service(Delivery),
        Lane::Service(Notification),
    ]
};

/// Its title: `Client`, or the service's name capitalized (`Billing`).
impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lane::Client => f.write_str("Client"),
            Lane::Service(service) => {
                let name = service.as_str();
                write!(f, "{}{}", name[..1].to_ascii_uppercase(), &name[1..])
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Item {
    Message { at_ms: u64, from: Lane, to: Lane, label: String, reply: bool },
    Note { at_ms: u64, over: Vec<Lane>, text: String, fault: bool },
}

impl Item {
    fn at_ms(&self) -> u64 {
        match self {
            Item::Message { at_ms, .. } | Item::Note { at_ms, .. } => *at_ms,
        }
    }
}

/// The orders a violation names, or the run's first orders when none is named.
fn involved_orders(report: &RunReport) -> Vec<String> {
    let mut named: Vec<String> = Vec::new();
    for violation in &report.violations {
        for word in violation.subject.split_whitespace().chain(violation.evidence.split_whitespace()) {
            let word = word.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-');
            if uuid::Uuid::parse_str(word).is_ok()
                && report.saga_log.iter().any(|e| e.order_id == word)
                && !named.contains(&word.to_string())
            {
                named.push(word.to_string());
            }
        }
    }
    if named.is_empty() {
        for entry in &report.saga_log {
            if !named.contains(&entry.order_id) && named.len() < 2 {
                named.push(entry.order_id.clone());
            }
        }
    }
    named.truncate(3);
    named
}

fn history_items(history: &[Event], orders: &[String]) -> Vec<Item> {
    let mut items = Vec::new();
    for event in history.iter().filter(|e| e.order_id.is_some_and(|o| orders.contains(&o.to_string()))) {
        let answer = match (event.status, event.order_status) {
            (Some(status), Some(order_status)) => format!("{status} {}", order_status.as_str()),
            (Some(status), None) => status.to_string(),
            (None, _) => "no answer".to_string(),
        };
        let request = match &event.key {
            Some(key) => format!("shopper-{} {:?} {key}", event.shopper, event.action),
            None => format!("shopper-{} {:?}", event.shopper, event.action),
        };
        items.push(Item::Message {
            at_ms: event.at_ms,
            from: Lane::Client,
            to: Lane::Service(ServiceName::Gateway),
            label: request,
            reply: false,
        });
        items.push(Item::Message {
            at_ms: event.at_ms,
            from: Lane::Service(ServiceName::Gateway),
            to: Lane::Client,
            label: answer,
            reply: true,
        });
    }
    items
}

fn saga_items(saga_log: &[SagaEntry], orders: &[String]) -> Vec<Item> {
    let short = |order: &str| order.chars().take(8).collect::<String>();
    let mut items = Vec::new();
    for entry in saga_log.iter().filter(|e| orders.contains(&e.order_id)) {
        let to = Lane::Service(Participant::taking(&entry.step).service());
        let id = short(&entry.order_id);
        let detail = if entry.detail.is_empty() { String::new() } else { format!(" {}", entry.detail) };
        let prefix = match entry.phase.as_str() {
            "ACTION" => "",
            "COMPENSATION" => "cancel ",
            _ => {
                let text = format!("{id} {}{detail}", entry.event.to_lowercase());
                items.push(Item::Note {
                    at_ms: entry.at_ms,
                    over: vec![Lane::Service(ServiceName::Order)],
                    text,
                    fault: false,
                });
                continue;
            }
        };
        let item = if entry.event == "STARTED" {
            let label = format!("{prefix}{} {id}", entry.step);
            Item::Message { at_ms: entry.at_ms, from: Lane::Service(ServiceName::Order), to, label, reply: false }
        } else {
            let label = format!("{prefix}{} {}{detail}", entry.step, entry.event.to_lowercase());
            Item::Message { at_ms: entry.at_ms, from: to, to: Lane::Service(ServiceName::Order), label, reply: true }
        };
        items.push(item);
    }
    items
}

fn fault_items(plan: &Plan) -> Vec<Item> {
    let mut items = Vec::new();
    for planned in &plan.faults {
        for label in active_faults(&Plan { faults: vec![planned.clone()], ..plan.clone() }, planned.at_ms) {
            let over: Vec<Lane> =
                label.split([' ', '~', '-', '>']).filter_map(ServiceName::parse).map(Lane::Service).collect();
            let over = if over.is_empty() {
                vec![Lane::Service(ServiceName::Gateway), Lane::Service(ServiceName::Notification)]
            } else {
                over
            };
            items.push(Item::Note { at_ms: planned.at_ms, over, text: format!("FAULT {label}"), fault: true });
        }
    }
    items
}

fn diagram(report: &RunReport, orders: &[String]) -> Vec<Item> {
    let mut items = fault_items(&report.plan);
    items.extend(history_items(&report.history, orders));
    items.extend(saga_items(&report.saga_log, orders));
    for entry in report.ledger.iter().filter(|e| orders.contains(&e.order_id)) {
        let text =
            format!("ledger {} {} {}", entry.event, entry.detail, entry.order_id.chars().take(8).collect::<String>());
        items.push(Item::Note {
            at_ms: entry.at_ms,
            over: vec![Lane::Service(ServiceName::Billing)],
            text,
            fault: false,
        });
    }
    items.sort_by_key(Item::at_ms);
    items
}

fn mermaid(items: &[Item]) -> String {
    let mut text = String::from("sequenceDiagram\n");
    for lane in LANES {
        let _ = writeln!(text, "    participant {lane}");
    }
    let clean = |s: &str| s.replace([';', '#', ':'], " ");
    for item in items {
        match item {
            Item::Message { at_ms, from, to, label, reply } => {
                let arrow = if *reply { "-->>" } else { "->>" };
                let _ = writeln!(text, "    {from}{arrow}{to}: {} ({at_ms} ms)", clean(label));
            }
            Item::Note { at_ms, over, text: note, .. } => {
                let span =
                    if over.len() > 1 { format!("{},{}", over[0], over[over.len() - 1]) } else { over[0].to_string() };
                let _ = writeln!(text, "    Note over {span}: {} ({at_ms} ms)", clean(note));
            }
        }
    }
    text
}

const COLUMN_PX: usize = 150;
const ROW_PX: usize = 26;
const TOP_PX: usize = 40;

fn column(lane: Lane) -> usize {
    LANES.iter().position(|l| *l == lane).unwrap_or(0) * COLUMN_PX + COLUMN_PX / 2
}

/// The sequence diagram as inline SVG: columns for the services, a row per message.
fn svg(items: &[Item]) -> String {
    let width = LANES.len() * COLUMN_PX;
    let height = TOP_PX + (items.len() + 1) * ROW_PX;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#333\"/></marker></defs>\n"
    );
    for p in LANES {
        let x = column(p);
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"4\" width=\"{}\" height=\"22\" fill=\"#e8eef7\" stroke=\"#5573a6\"/>",
            x - 60,
            120
        );
        let _ = writeln!(svg, "<text x=\"{x}\" y=\"19\" text-anchor=\"middle\" font-weight=\"bold\">{p}</text>");
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"26\" x2=\"{x}\" y2=\"{height}\" stroke=\"#bbb\" stroke-dasharray=\"4 3\"/>"
        );
    }
    for (row, item) in items.iter().enumerate() {
        let y = TOP_PX + row * ROW_PX + ROW_PX / 2;
        match item {
            Item::Message { at_ms, from, to, label, reply } => {
                let (x1, x2) = (column(*from), column(*to));
                let dash = if *reply { " stroke-dasharray=\"5 3\"" } else { "" };
                let _ = writeln!(svg, "<line x1=\"{x1}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#333\"{dash} marker-end=\"url(#arrow)\"/>");
                let _ = writeln!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} ({at_ms} ms)</text>",
                    x1.midpoint(x2),
                    y - 4,
                    escape_xml(label)
                );
            }
            Item::Note { at_ms, over, text, fault } => {
                let text_px = (text.chars().count() + 12) * 6;
                let (low, high) = (
                    over.iter().map(|p| column(*p)).min().unwrap_or(0),
                    over.iter().map(|p| column(*p)).max().unwrap_or(0),
                );
                let half = (high - low + 130).max(text_px) / 2;
                let middle = low.midpoint(high);
                let left = middle.saturating_sub(half).max(2);
                let right = (middle + half).min(LANES.len() * COLUMN_PX - 2);
                let (fill, stroke) = if *fault { ("#fde2e1", "#c0392b") } else { ("#fff8dc", "#b8a04a") };
                let class = if *fault { " class=\"fault\"" } else { "" };
                let _ = writeln!(svg, "<rect{class} x=\"{left}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" stroke=\"{stroke}\"/>", y - 10, right - left, ROW_PX - 6);
                let _ = writeln!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} ({at_ms} ms)</text>",
                    left.midpoint(right),
                    y + 4,
                    escape_xml(text)
                );
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn timeline_lines(report: &RunReport) -> Vec<String> {
    let parse_ms = |line: &str| line.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let mut lines: Vec<(u64, String)> = report.timeline.iter().map(|l| (parse_ms(l), l.clone())).collect();
    lines.extend(report.history.iter().map(|e| (e.at_ms, e.line())));
    lines.sort_by_key(|(at, _)| *at);
    lines.into_iter().map(|(_, l)| l).collect()
}

fn plan_section(shrunk: Option<&Shrunk>, stem: &str) -> String {
    let Some(shrunk) = shrunk else {
        return "No shrunk plan: this failure was not shrunk (see `sim shrink`).\n".to_string();
    };
    let features = if shrunk.minimal.bug.is_some() { " --features planted-bugs" } else { "" };
    let plan_file = format!("reports/plans/{}.min.json", stem.trim_start_matches("failures/"));
    format!(
        "Shrunk in {} runs from {} faults, {} shoppers and {} orders to **{} faults, {} shoppers and {} orders**, still violating invariant {}.\n\n\
         Replay the minimal plan: `cargo run --release -p sim{features} -- run --plan {plan_file} --trace`\n\n```json\n{}\n```\n",
        shrunk.runs,
        shrunk.original.faults.len(),
        shrunk.original.shoppers.len(),
        shrunk.original.order_count(),
        shrunk.minimal.faults.len(),
        shrunk.minimal.shoppers.len(),
        shrunk.minimal.order_count(),
        shrunk.invariant,
        serde_json::to_string_pretty(&shrunk.minimal.faults).unwrap_or_default()
    )
}

/// The page of one failing run, in Markdown (Mermaid diagram) and HTML (inline SVG).
pub fn failure_pages(report: &RunReport, shrunk: Option<&Shrunk>) -> (String, String) {
    let stem = page_stem(report);
    let orders = involved_orders(report);
    let items = diagram(report, &orders);
    let title = format!("Failure: scenario {}, seed {}", report.scenario, report.seed);
    let bug = report.plan.bug.as_deref().map(|b| format!(" with planted bug `{b}`")).unwrap_or_default();
    let mut md = format!(
        "# {title}\n\nScenario `{}`, seed {}{bug}, digest `{}`.\n\n## Violated\n\n",
        report.scenario, report.seed, report.digest
    );
    for violation in &report.violations {
        let _ = writeln!(
            md,
            "- **invariant {} ({})** for {}: {}",
            violation.invariant, violation.name, violation.subject, violation.evidence
        );
    }
    let _ = write!(md, "\nReplay: `{}`\n\n## Shrunk plan\n\n{}", report.replay_command(), plan_section(shrunk, &stem));
    let orders_shown: Vec<String> = orders.iter().map(|o| format!("`{o}`")).collect();
    let _ = write!(
        md,
        "\n## Messages for the orders involved\n\nOrders {}; fault notes are marked FAULT.\n\n```mermaid\n{}```\n",
        orders_shown.join(", "),
        mermaid(&items)
    );
    let timeline = timeline_lines(report).join("\n");
    let _ = write!(md, "\n## Timeline of faults and requests\n\n```text\n{timeline}\n```\n");

    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} pre{{background:#f5f5f5;padding:1em;overflow-x:auto}} .violation{{color:#a00}} svg{{border:1px solid #ddd;background:#fff}}</style></head><body>\n<h1>{}</h1>\n",
        escape_xml(&title),
        escape_xml(&title)
    );
    let _ = writeln!(
        html,
        "<p>Scenario <code>{}</code>, seed {}{}, digest <code>{}</code>.</p>",
        escape_xml(&report.scenario),
        report.seed,
        escape_xml(&bug.replace('`', "")),
        report.digest
    );
    html.push_str("<h2>Violated</h2><ul>\n");
    for violation in &report.violations {
        let _ = writeln!(
            html,
            "<li class=\"violation\"><b>invariant {} ({})</b> for {}: {}</li>",
            violation.invariant,
            violation.name,
            escape_xml(&violation.subject),
            escape_xml(&violation.evidence)
        );
    }
    let _ = writeln!(html, "</ul><p>Replay: <code>{}</code></p>", escape_xml(&report.replay_command()));
    let _ = writeln!(html, "<h2>Shrunk plan</h2><pre>{}</pre>", escape_xml(&plan_section(shrunk, &stem)));
    let _ = writeln!(
        html,
        "<h2>Messages for the orders involved</h2><p>Orders {}; faults in red.</p>\n{}",
        escape_xml(&orders.join(", ")),
        svg(&items)
    );
    let _ = writeln!(
        html,
        "<details><summary>Mermaid source</summary><pre>{}</pre></details>",
        escape_xml(&mermaid(&items))
    );
    let _ =
        writeln!(html, "<h2>Timeline of faults and requests</h2><pre>{}</pre>\n</body></html>", escape_xml(&timeline));
    (md, html)
}

/// Writes every report of a sweep into `dir` (created; old failure pages removed).
pub fn write_reports(dir: &Path, outcomes: &[Outcome], wall_ms: f64, shrunk: &[Shrunk]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let failures_dir = dir.join("failures");
    if failures_dir.exists() {
        std::fs::remove_dir_all(&failures_dir)?;
    }
    std::fs::write(dir.join("junit.xml"), junit(outcomes))?;
    let summary = summary(outcomes, wall_ms);
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).expect("serializable") + "\n")?;
    let mut totals = Totals::default();
    for outcome in outcomes {
        totals.add(&outcome.stats);
    }
    std::fs::write(dir.join("coverage.md"), coverage_markdown(&totals))?;
    for report in outcomes.iter().filter_map(|o| o.failure.as_deref()) {
        let found = shrunk.iter().find(|s| s.original.scenario == report.scenario && s.original.seed == report.seed);
        let (md, html) = failure_pages(report, found);
        let stem = page_stem(report);
        std::fs::create_dir_all(&failures_dir)?;
        std::fs::write(dir.join(format!("{stem}.md")), md)?;
        std::fs::write(dir.join(format!("{stem}.html")), html)?;
        if let Some(shrunk) = found {
            let name = stem.trim_start_matches("failures/");
            shrunk.original.write(&dir.join("plans").join(format!("{name}.json")))?;
            shrunk.minimal.write(&dir.join("plans").join(format!("{name}.min.json")))?;
        }
    }
    Ok(())
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
