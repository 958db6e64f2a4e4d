//! Invariant 11, internal errors: any ERROR-level event a service logs, any 5xx other than
//! "unavailable" that one sends (the platform logs those at ERROR, see
//! `platform::trace::request_context`), and any panic inside a host is a violation, whether
//! or not a shopper saw it (FoundationDB fails a run on any SevError).
//!
//! Each service host gets its own tracing [`Dispatch`], set around the host's future with
//! `WithSubscriber` (every turmoil host runs on the one thread of its run, and `sim sweep`
//! runs other seeds on other threads, so a global subscriber would mix them up); tasks
//! spawned inside a host keep it through `platform::Spawner`. The collector enables ERROR
//! events only, so every other callsite stays disabled and costs what it cost before.

use crate::checks::Violation;
use contracts::ServiceName;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Once};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

pub const INVARIANT: u8 = crate::checks::INTERNAL_ERRORS;
pub const NAME: &str = crate::checks::NAMES[INVARIANT as usize - 1];

/// One ERROR event or panic in a host, as logged.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Incident {
    pub host: ServiceName,
    /// Simulated time.
    pub at_ms: u64,
    /// `error` for an ERROR event, `panic` for a panic.
    pub kind: &'static str,
    /// The event's target (its module) or the panic's location.
    pub target: String,
    pub message: String,
    /// The event's other fields, `name=value` separated by spaces.
    pub fields: String,
}

/// What every service host of one run logged at ERROR. Cheap to clone; clones share.
#[derive(Clone, Default)]
pub struct Incidents(Arc<Mutex<Vec<Incident>>>);

impl Incidents {
    pub fn new() -> Incidents {
        install_panic_hook();
        Incidents::default()
    }

    /// The dispatcher for one host: create it once per host and run, and set it around every
    /// incarnation of the host's future.
    pub fn dispatch(&self, host: ServiceName) -> Dispatch {
        Dispatch::new(HostCollector { host, incidents: self.clone() })
    }

    pub fn all(&self) -> Vec<Incident> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, incident: Incident) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(incident);
    }

    /// The panic recorded last, if any (for the evidence of a step that panicked).
    pub fn last_panic(&self) -> Option<Incident> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().rev().find(|i| i.kind == "panic").cloned()
    }

    /// One violation per host and kind of incident (its target and message), with the first
    /// occurrence as evidence and how often it happened.
    pub fn violations(&self) -> Vec<Violation> {
        // (host, kind, target, message) -> (first occurrence, count, last time); hosts in name order
        type Kind = (&'static str, &'static str, String, String);
        let mut grouped: BTreeMap<Kind, (Incident, u64, u64)> = BTreeMap::new();
        for incident in self.all() {
            let key = (incident.host.as_str(), incident.kind, incident.target.clone(), incident.message.clone());
            let at_ms = incident.at_ms;
            let entry = grouped.entry(key).or_insert((incident, 0, at_ms));
            entry.1 += 1;
            entry.2 = at_ms;
        }
        grouped
            .into_values()
            .map(|(first, count, last_ms)| {
                let mut evidence = format!("{} at {} ms: {}", first.kind, first.at_ms, first.message);
                if !first.fields.is_empty() {
                    let _ = write!(evidence, " ({})", first.fields);
                }
                let _ = write!(evidence, " [{}]", first.target);
                if count > 1 {
                    let _ = write!(evidence, "; {count} times in all, the last at {last_ms} ms");
                }
                Violation { invariant: INVARIANT, name: NAME, subject: format!("host {}", first.host), evidence }
            })
            .collect()
    }
}

/// A violation for a step of the simulation that a host's panic stopped (turmoil re-raises
/// it from `Sim::step`, or returns it as the host's error), with the panic the hook caught
/// inside the host as evidence; `raised` is what came out of the step.
pub fn panic_violation(incidents: &Incidents, raised: &str, at_ms: u64) -> Violation {
    let (subject, evidence) = match incidents.last_panic() {
        Some(p) => (
            format!("host {}", p.host),
            format!("panic at {} ms: {} [{}]; the run stopped there", p.at_ms, p.message, p.target),
        ),
        None => ("the simulation".to_string(), format!("panic at {at_ms} ms: {raised}; the run stopped there")),
    };
    Violation { invariant: INVARIANT, name: NAME, subject, evidence }
}

/// The message a panic carried.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Records a panic in the host whose dispatcher is current (a panic inside a host's task),
/// then does what the previous hook did. Installed once per process; outside a service host
/// it records nothing.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::dispatcher::get_default(|dispatch| {
                if let Some(collector) = dispatch.downcast_ref::<HostCollector>() {
                    let message = panic_message(info.payload());
                    let target = info.location().map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
                    collector.record("panic", target, message, String::new());
                }
            });
            previous(info);
        }));
    });
}

/// The service host whose task is running now, from the current tracing dispatcher (every
/// host's tasks run under its own; see the module doc), for `platform::crash_point`.
pub fn current_host() -> Option<String> {
    tracing::dispatcher::get_default(|dispatch| dispatch.downcast_ref::<HostCollector>().map(|c| c.host.to_string()))
}

struct HostCollector {
    host: ServiceName,
    incidents: Incidents,
}

impl HostCollector {
    fn record(&self, kind: &'static str, target: String, message: String, fields: String) {
        let at_ms = turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64);
        self.incidents.push(Incident { host: self.host, at_ms, kind, target, message, fields });
    }
}

impl Subscriber for HostCollector {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && *metadata.level() == Level::ERROR
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::ERROR)
    }

    // Spans are never enabled; these are never called for them.
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.record("error", event.metadata().target().to_string(), fields.message, fields.others);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    others: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.others.is_empty() {
                self.others.push(' ');
            }
            let _ = write!(self.others, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            if !self.others.is_empty() {
                self.others.push(' ');
            }
            let _ = write!(self.others, "{}={value}", field.name());
        }
    }
}
