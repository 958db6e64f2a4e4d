//! Prometheus metrics (the `prometheus-client` crate): one explicit [`Registry`] per service
//! instance, handed out in [`crate::Env`], so six services in one process and the
//! simulation's hosts never share one. Every duration is measured on the clock seam.
//!
//! HTTP and storage metrics are registered for every service; the groups a service uses
//! ([`Metrics::orders`], [`Metrics::participants`], [`Metrics::outbox`],
//! [`Metrics::gateway`]) are registered on first use, so a service's `/metrics` shows only
//! its own figures. Names are listed in docs/API.md ("Health and metrics").
//!
//! [`Metrics::off`] records nothing: it holds no registry, every accessor answers `None`,
//! so a call site skips the work (label strings, clock reads, the queries behind gauges)
//! along with the record; the HTTP layer is not installed and `/metrics` is not routed
//! (404). `shop --metrics off` runs so, to measure what metrics cost; the simulation's
//! are always on.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Seconds from 1 ms to about 16 s (15 buckets, doubling).
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 15)
}

fn duration_histogram() -> Histogram {
    Histogram::new(duration_buckets())
}

/// Storage transactions are mostly sub-millisecond: from 50 µs to about 1.6 s.
fn storage_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Writes per commit (`storage::MAX_BATCH` at most): 1, 2, 4, … 64.
fn batch_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 7))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// One service instance's metrics, or none ([`Metrics::off`]). Cheap to clone; clones share
/// the registry.
#[derive(Clone)]
pub struct Metrics(Option<Arc<Inner>>);

struct Inner {
    registry: Mutex<Registry>,
    http: Http,
    storage: Storage,
    orders: OnceLock<Orders>,
    participants: OnceLock<Participants>,
    outbox: OnceLock<Outbox>,
    gateway: OnceLock<Gateway>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with the HTTP and storage metrics.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let http = Http::register(&mut registry);
        let storage = Storage::register(&mut registry);
        Metrics(Some(Arc::new(Inner {
            registry: Mutex::new(registry),
            http,
            storage,
            orders: OnceLock::new(),
            participants: OnceLock::new(),
            outbox: OnceLock::new(),
            gateway: OnceLock::new(),
        })))
    }

    /// No registry: nothing is recorded, every accessor answers `None`.
    pub fn off() -> Metrics {
        Metrics(None)
    }

    /// Whether this instance records ([`Metrics::new`]) or not ([`Metrics::off`]).
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn register_once<'a, G>(inner: &'a Inner, cell: &'a OnceLock<G>, register: fn(&mut Registry) -> G) -> &'a G {
        cell.get_or_init(|| register(&mut inner.registry.lock().unwrap_or_else(|p| p.into_inner())))
    }

    pub fn http(&self) -> Option<&Http> {
        self.0.as_deref().map(|inner| &inner.http)
    }

    pub fn storage(&self) -> Option<&Storage> {
        self.0.as_deref().map(|inner| &inner.storage)
    }

    pub fn orders(&self) -> Option<&Orders> {
        self.0.as_deref().map(|inner| Metrics::register_once(inner, &inner.orders, Orders::register))
    }

    pub fn participants(&self) -> Option<&Participants> {
        self.0.as_deref().map(|inner| Metrics::register_once(inner, &inner.participants, Participants::register))
    }

    pub fn outbox(&self) -> Option<&Outbox> {
        self.0.as_deref().map(|inner| Metrics::register_once(inner, &inner.outbox, Outbox::register))
    }

    pub fn gateway(&self) -> Option<&Gateway> {
        self.0.as_deref().map(|inner| Metrics::register_once(inner, &inner.gateway, Gateway::register))
    }

    /// The registry in the OpenMetrics text format; `None` when off.
    pub fn encode(&self) -> Option<String> {
        let inner = self.0.as_deref()?;
        let mut text = String::new();
        let registry = inner.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("writing to a String cannot fail");
        Some(text)
    }
}

// ---- HTTP ----

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/api/v1/order/{id}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

pub struct Http {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Histograms<RouteLabels>,
}

impl Http {
    fn register(registry: &mut Registry) -> Http {
        let http = Http { requests: Family::default(), duration: Family::new_with_constructor(duration_histogram) };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template and method",
            http.duration.clone(),
        );
        http
    }

    pub fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let (route, method) = (route.to_string(), method.to_string());
        self.requests.get_or_create(&RequestLabels { route: route.clone(), method: method.clone(), status }).inc();
        self.duration.get_or_create(&RouteLabels { route, method }).observe(elapsed.as_secs_f64());
    }
}

// ---- storage ----

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are snake_case")]
pub enum TransactionKind {
    read,
    write,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransactionLabels {
    pub kind: TransactionKind,
}

pub struct Storage {
    pub transaction_duration: Histograms<TransactionLabels>,
    /// Write transactions that failed busy, locked or with an I/O error
    /// (`storage::is_transient`): answered 503, retried by the caller or the saga recovery.
    pub busy: Counter,
    /// Writes made durable by each commit (group commit: `storage::Db::write`).
    pub commit_batch_size: Histogram,
}

impl Storage {
    fn register(registry: &mut Registry) -> Storage {
        let storage = Storage {
            transaction_duration: Family::new_with_constructor(storage_histogram),
            busy: Counter::default(),
            commit_batch_size: batch_size_histogram(),
        };
        for kind in [TransactionKind::read, TransactionKind::write] {
            drop(storage.transaction_duration.get_or_create(&TransactionLabels { kind }));
        }
        registry.register(
            "storage_transaction_duration_seconds",
            "Time a database transaction took, waiting for the connection included, by kind",
            storage.transaction_duration.clone(),
        );
        registry.register(
            "storage_busy",
            "Write transactions that failed busy, locked or with an I/O error and left no effect",
            storage.busy.clone(),
        );
        registry.register(
            "storage_commit_batch_size",
            "Write transactions made durable by one commit (one fsync): concurrent writes are committed together",
            storage.commit_batch_size.clone(),
        );
        storage
    }

    pub fn observe(&self, kind: TransactionKind, elapsed: Duration) {
        self.transaction_duration.get_or_create(&TransactionLabels { kind }).observe(elapsed.as_secs_f64());
    }
}

// ---- orders (the order service) ----

/// The outcome of `POST /api/v1/order` in the contract's decision table.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are snake_case")]
pub enum IdempotencyOutcome {
    /// 201 (or 202/422): a new order.
    created,
    /// 200: a replay answered from the key.
    replayed,
    /// 409: the key's first request is still waiting.
    in_progress,
    /// 409: a similar order without a key (or with another key) within the window.
    duplicate,
    /// 422: the key was used with another body.
    key_reused,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IdempotencyLabels {
    pub outcome: IdempotencyOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are snake_case")]
pub enum StepPhase {
    action,
    compensation,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub step: String,
    pub phase: StepPhase,
}

/// The reasons an order fails for in the normal course (the contract's); others (e.g.
/// `REJECTED_401`) get a series when they first happen.
pub const FAILURE_REASONS: [&str; 5] = [
    contracts::saga::reason::INSUFFICIENT_FUNDS,
    contracts::saga::reason::NO_ACCOUNT,
    contracts::saga::reason::OUT_OF_STOCK,
    contracts::saga::reason::NO_DELIVERY_SLOT,
    contracts::saga::reason::SERVICE_UNAVAILABLE,
];

pub struct Orders {
    pub created: Counter,
    pub confirmed: Counter,
    pub failed: Family<ReasonLabels, Counter>,
    pub idempotency: Family<IdempotencyLabels, Counter>,
    /// Unfinished sagas, as the recovery scan last counted them.
    pub sagas_in_flight: Gauge,
    /// Age of the oldest unfinished saga at the recovery scan (0 when there is none).
    pub oldest_saga_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub step_duration: Histograms<StepLabels>,
    pub compensation_rounds: Counter,
    /// Compensation calls not acknowledged (they are retried in the next round).
    pub compensation_failures: Counter,
    pub sagas_recovered: Counter,
}

impl Orders {
    fn register(registry: &mut Registry) -> Orders {
        let orders = Orders {
            created: Counter::default(),
            confirmed: Counter::default(),
            failed: Family::default(),
            idempotency: Family::default(),
            sagas_in_flight: Gauge::default(),
            oldest_saga_age_seconds: Gauge::default(),
            step_duration: Family::new_with_constructor(duration_histogram),
            compensation_rounds: Counter::default(),
            compensation_failures: Counter::default(),
            sagas_recovered: Counter::default(),
        };
        // Every known label set starts at 0, so that its series exists (and `rate` sees the
        // first increase) before the first event.
        use IdempotencyOutcome::*;
        for outcome in [created, replayed, in_progress, duplicate, key_reused] {
            drop(orders.idempotency.get_or_create(&IdempotencyLabels { outcome }));
        }
        for reason in FAILURE_REASONS {
            drop(orders.failed.get_or_create(&ReasonLabels { reason: reason.to_string() }));
        }
        registry.register("orders_created", "Orders created (a saga started)", orders.created.clone());
        registry.register("orders_confirmed", "Orders confirmed", orders.confirmed.clone());
        registry.register("orders_failed", "Orders failed, by reason", orders.failed.clone());
        registry.register(
            "order_requests_idempotency",
            "Order creation requests by idempotency outcome",
            orders.idempotency.clone(),
        );
        registry.register(
            "sagas_in_flight",
            "Unfinished sagas at the last recovery scan",
            orders.sagas_in_flight.clone(),
        );
        registry.register(
            "saga_oldest_in_flight_age_seconds",
            "Age of the oldest unfinished saga at the last recovery scan",
            orders.oldest_saga_age_seconds.clone(),
        );
        registry.register(
            "saga_step_duration_seconds",
            "Duration of one saga step call (with its retries), by step and phase",
            orders.step_duration.clone(),
        );
        registry.register(
            "saga_compensation_rounds",
            "Compensation rounds started",
            orders.compensation_rounds.clone(),
        );
        registry.register(
            "saga_compensation_failures",
            "Compensation calls not acknowledged (retried next round)",
            orders.compensation_failures.clone(),
        );
        registry.register("sagas_recovered", "Sagas resumed by recovery", orders.sagas_recovered.clone());
        orders
    }
}

// ---- participants (billing, warehouse, delivery) ----

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are snake_case")]
pub enum ParticipantOperation {
    action,
    cancel,
}

/// What a participant's operation record made of one call.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are snake_case")]
pub enum ParticipantOutcome {
    /// An action took effect.
    applied,
    /// An action refused for a business reason (no effect).
    refused,
    /// A repeated action answered from the record.
    repeated,
    /// An action that arrived after its cancel's tombstone.
    late_action_refused,
    /// A cancel that undid an applied action.
    undone,
    /// A cancel of a refused action (nothing to undo).
    cancelled,
    /// A cancel that arrived first and left a tombstone.
    tombstone,
    /// A repeated cancel.
    repeated_cancel,
}

impl ParticipantOutcome {
    pub fn operation(self) -> ParticipantOperation {
        use ParticipantOutcome::*;
        match self {
            applied | refused | repeated | late_action_refused => ParticipantOperation::action,
            undone | cancelled | tombstone | repeated_cancel => ParticipantOperation::cancel,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ParticipantLabels {
    pub operation: ParticipantOperation,
    pub outcome: ParticipantOutcome,
}

pub struct Participants {
    pub operations: Family<ParticipantLabels, Counter>,
}

impl Participants {
    fn register(registry: &mut Registry) -> Participants {
        let participants = Participants { operations: Family::default() };
        use ParticipantOutcome::*;
        for outcome in [applied, refused, repeated, late_action_refused, undone, cancelled, tombstone, repeated_cancel]
        {
            drop(participants.operations.get_or_create(&ParticipantLabels { operation: outcome.operation(), outcome }));
        }
        registry.register(
            "participant_operations",
            "Saga step calls committed by this participant, by operation and outcome",
            participants.operations.clone(),
        );
        participants
    }

    pub fn record(&self, outcome: ParticipantOutcome) {
        self.operations.get_or_create(&ParticipantLabels { operation: outcome.operation(), outcome }).inc();
    }
}

// ---- outbox (order, billing) ----

pub struct Outbox {
    pub depth: Gauge,
    pub oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub deliveries: Counter,
    pub failures: Counter,
}

impl Outbox {
    fn register(registry: &mut Registry) -> Outbox {
        let outbox = Outbox {
            depth: Gauge::default(),
            oldest_age_seconds: Gauge::default(),
            deliveries: Counter::default(),
            failures: Counter::default(),
        };
        registry.register(
            "outbox_depth",
            "Events waiting in the outbox at the relay's last look",
            outbox.depth.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest waiting event at the relay's last look (0 when empty)",
            outbox.oldest_age_seconds.clone(),
        );
        registry.register("outbox_deliveries", "Events delivered and acknowledged", outbox.deliveries.clone());
        registry.register(
            "outbox_delivery_failures",
            "Delivery attempts that failed (kept and retried)",
            outbox.failures.clone(),
        );
        outbox
    }
}

// ---- gateway ----

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, reason = "label values are snake_case")]
pub enum LoginResult {
    success,
    failure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub result: LoginResult,
}

pub struct Gateway {
    pub logins: Family<LoginLabels, Counter>,
    /// Sessions used within the idle timeout, counted from the sessions table at start and
    /// at each login and logout.
    pub active_sessions: Gauge,
    pub upstream_unavailable: Counter,
}

impl Gateway {
    fn register(registry: &mut Registry) -> Gateway {
        let gateway = Gateway {
            logins: Family::default(),
            active_sessions: Gauge::default(),
            upstream_unavailable: Counter::default(),
        };
        for result in [LoginResult::success, LoginResult::failure] {
            drop(gateway.logins.get_or_create(&LoginLabels { result }));
        }
        registry.register("gateway_logins", "Login attempts, by result", gateway.logins.clone());
        registry.register(
            "gateway_active_sessions",
            "Sessions used within the idle timeout, counted at start and at each login and logout",
            gateway.active_sessions.clone(),
        );
        registry.register(
            "gateway_upstream_unavailable",
            "Proxied calls answered 503 because the service behind was unreachable or unavailable",
            gateway.upstream_unavailable.clone(),
        );
        gateway
    }

    pub fn login(&self, result: LoginResult) {
        self.logins.get_or_create(&LoginLabels { result }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_has_its_own_registry_and_groups_appear_on_first_use() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.http().unwrap().record("/api/v1/order", "POST", 201, Duration::from_millis(3));
        a.orders().unwrap().confirmed.inc();
        let text_a = a.encode().unwrap();
        let text_b = b.encode().unwrap();
        assert!(
            text_a.contains(r#"http_requests_total{route="/api/v1/order",method="POST",status="201"} 1"#),
            "{text_a}"
        );
        assert!(text_a.contains("orders_confirmed_total 1"), "{text_a}");
        assert!(!text_b.contains("orders_confirmed"), "{text_b}");
        assert!(!text_b.contains(r#"route="/api/v1/order""#), "{text_b}");
        assert!(text_a.ends_with("# EOF\n"));
    }

    #[test]
    fn participant_outcomes_carry_their_operation() {
        let metrics = Metrics::new();
        metrics.participants().unwrap().record(ParticipantOutcome::tombstone);
        let text = metrics.encode().unwrap();
        assert!(text.contains(r#"participant_operations_total{operation="cancel",outcome="tombstone"} 1"#), "{text}");
    }

    #[test]
    fn off_has_no_registry_and_no_instruments() {
        let off = Metrics::off();
        assert!(!off.is_on());
        assert!(off.http().is_none() && off.storage().is_none() && off.orders().is_none());
        assert!(off.participants().is_none() && off.outbox().is_none() && off.gateway().is_none());
        assert_eq!(off.encode(), None);
        assert!(Metrics::new().is_on());
    }
}
