//! The sequence diagram of a failing run's orders, with the faults marked on it: as Mermaid
//! source (the Markdown page) and as inline SVG (the HTML page, no network needed).

use super::escape_xml;
use crate::history::Event;
use crate::plan::Plan;
use crate::run::{active_faults, RunReport, SagaEntry};
use crate::snapshot::Participant;
use contracts::ServiceName;
use std::fmt::Write as _;

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

/// The diagram of a failing run: the orders it shows and, in time order, its messages and notes.
pub(super) struct Diagram {
    pub orders: Vec<String>,
    items: Vec<Item>,
}

impl Diagram {
    /// The diagram of the orders `report`'s violations name (or of its first orders).
    pub fn of(report: &RunReport) -> Diagram {
        let orders = involved_orders(report);
        let items = items(report, &orders);
        Diagram { orders, items }
    }

    /// As Mermaid source, for the Markdown page.
    pub fn mermaid(&self) -> String {
        mermaid(&self.items)
    }

    /// As inline SVG, for the HTML page.
    pub fn svg(&self) -> String {
        svg(&self.items)
    }
}

fn items(report: &RunReport, orders: &[String]) -> Vec<Item> {
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
