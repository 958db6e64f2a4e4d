//! The cluster: one turmoil host per service, running the very code `shop` runs, each with
//! its database kept here, outside the host, so a crash loses only uncommitted work.

use crate::errors::Incidents;
use crate::scenario::Scenario;
use crate::seams::{SimClock, TurmoilNet};
use crate::seed::child_seed;
use chrono::TimeDelta;
use contracts::{ProductId, ServiceName, Timestamp};
use platform::auth::Secrets;
use platform::internal::Peers;
use platform::metrics::Metrics;
use platform::storage::Db;
use platform::{Chaos, Deps, Env, Ids, Net, Spawner};
use registry::StoreConfig;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};
use std::sync::Arc;
use tracing::instrument::WithSubscriber;

/// 2026-01-01T00:00:00Z: every run's wall clock starts here.
pub const EPOCH_S: i64 = 1_767_225_600;
pub const DELIVERY_HORIZON_HOURS: i64 = 48;

/// Simulated time 0 unless a scenario starts elsewhere (`Scenario::start`).
pub fn epoch() -> Timestamp {
    Timestamp::from_timestamp(EPOCH_S, 0).expect("valid epoch")
}

pub fn is_epoch(start: &Timestamp) -> bool {
    *start == epoch()
}

pub fn port_of(service: ServiceName) -> u16 {
    8080 + service.port_offset()
}

pub struct Cluster {
    /// Simulated time 0 on every clock (`Scenario::start`).
    pub start: Timestamp,
    pub dbs: BTreeMap<ServiceName, Db>,
    /// Each host's metrics registry, kept across its restarts (like its database), so a
    /// run's totals count every incarnation.
    pub metrics: BTreeMap<ServiceName, Metrics>,
    pub skews: BTreeMap<ServiceName, Arc<AtomicI64>>,
    pub duplicates: Arc<AtomicU32>,
    pub duplicate_delay_max_ms: Arc<AtomicU64>,
    /// Answers lost on reused connections, per mille (`Chaos::lost_answer_per_mille`).
    pub lost_answers: Arc<AtomicU32>,
    /// Late duplicates scheduled by any service and not yet finished (`Chaos::pending`).
    pub pending_duplicates: Arc<AtomicU64>,
    pub peers: Peers,
    /// Total stock of each product at the start.
    pub initial_stock: BTreeMap<ProductId, i64>,
    /// What the service hosts logged at ERROR, and their panics (invariant 11).
    pub incidents: Incidents,
}

/// Where each service host listens: `order:8081`.
pub fn peers() -> Peers {
    Peers::new(|service| format!("{service}:{}", port_of(service)))
}

/// What the services run with in the simulation: the scenario's stock and slot capacity,
/// slots two days ahead, the cheapest password hashes.
pub fn store_config(scenario: &Scenario) -> StoreConfig {
    StoreConfig {
        password_cost: gateway::PASSWORD_COST_LOW,
        slot_capacity: scenario.slot_capacity,
        delivery_horizon_hours: DELIVERY_HORIZON_HOURS,
        stock: scenario.stock.to_vec(),
    }
}

/// Opens the databases and seeds the catalog and the slots, before any host runs.
pub fn prepare(scenario: &Scenario) -> Cluster {
    let config = store_config(scenario);
    let mut dbs = BTreeMap::new();
    for service in ServiceName::ALL {
        let db = fresh_db(service, &config, scenario.start);
        if service == ServiceName::Order {
            crate::snapshot::watch_status_moves(&db).expect("watch the orders' statuses");
        }
        dbs.insert(service, db);
    }
    Cluster {
        start: scenario.start,
        dbs,
        metrics: ServiceName::ALL.iter().map(|s| (*s, Metrics::new())).collect(),
        skews: ServiceName::ALL.iter().map(|s| (*s, Arc::new(AtomicI64::new(0)))).collect(),
        duplicates: Arc::new(AtomicU32::new(0)),
        duplicate_delay_max_ms: Arc::new(AtomicU64::new(0)),
        lost_answers: Arc::new(AtomicU32::new(0)),
        pending_duplicates: Arc::new(AtomicU64::new(0)),
        peers: peers(),
        initial_stock: config.catalog().iter().map(|c| (c.id, c.stock)).collect(),
        incidents: Incidents::new(),
    }
}

/// What a service's database holds before its host first runs: its migrations and demo
/// data (`registry::seed`), which depend only on the service and on these (not on the
/// password cost: nothing seeded is hashed).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TemplateKey {
    service: ServiceName,
    /// The slots are seeded from the start's hour.
    start: Timestamp,
    stock: Vec<i64>,
    slot_capacity: i64,
    delivery_horizon_hours: i64,
}

thread_local! {
    /// Each service's database as `prepare` starts it, migrated and seeded once per thread
    /// and configuration (at most one per service and scenario): every run gets a copy.
    static TEMPLATES: RefCell<BTreeMap<TemplateKey, Db>> = const { RefCell::new(BTreeMap::new()) };
}

/// A private in-memory database for `service`, migrated and seeded: a copy of this
/// thread's template (`Db::open_memory_copy`), page for page what migrating and seeding a
/// new one gives, without running the migrations and the seeding in every run.
fn fresh_db(service: ServiceName, config: &StoreConfig, start: Timestamp) -> Db {
    let key = TemplateKey {
        service,
        start,
        stock: config.stock.clone(),
        slot_capacity: config.slot_capacity,
        delivery_horizon_hours: config.delivery_horizon_hours,
    };
    TEMPLATES.with(|templates| {
        let mut templates = templates.borrow_mut();
        let template = templates.entry(key).or_insert_with(|| {
            let db = Db::open_memory(&registry::migrations(service)).expect("in-memory database");
            registry::seed(service, &db, start, config).expect("seed the demo data");
            db
        });
        Db::open_memory_copy(template).expect("copy of the in-memory database")
    })
}

fn secrets(seed: u64) -> Secrets {
    let ids = Ids::from_seed(child_seed(seed, "secrets"));
    Secrets { user_token_secret: ids.hex(32).into_bytes(), service_token_secret: ids.hex(32).into_bytes() }
}

/// Registers the six services as turmoil hosts. Each restart gets fresh ids derived from
/// the seed, the service and its incarnation.
pub fn add_hosts(sim: &mut turmoil::Sim<'_>, cluster: &Cluster, seed: u64, scenario: &Scenario) {
    let secrets = secrets(seed);
    let config = store_config(scenario);
    for service in ServiceName::ALL {
        let db = cluster.dbs[&service].clone();
        let metrics = cluster.metrics[&service].clone();
        let skew = cluster.skews[&service].clone();
        let duplicates = cluster.duplicates.clone();
        let duplicate_delay_max_ms = cluster.duplicate_delay_max_ms.clone();
        let pending = cluster.pending_duplicates.clone();
        let lost_answers = cluster.lost_answers.clone();
        let peers = cluster.peers.clone();
        let secrets = secrets.clone();
        let config = config.clone();
        let incarnation = Cell::new(0u32);
        // One tracing dispatcher per host, around every incarnation of its future.
        let dispatch = cluster.incidents.dispatch(service);
        sim.host(service.as_str(), move || {
            incarnation.set(incarnation.get() + 1);
            let ids = Ids::from_seed(child_seed(seed, &format!("ids/{service}/{}", incarnation.get())));
            let chaos = Chaos {
                duplicate_per_mille: duplicates.clone(),
                duplicate_delay_max_ms: duplicate_delay_max_ms.clone(),
                pending: pending.clone(),
                lost_answer_per_mille: lost_answers.clone(),
            };
            let clock = Arc::new(SimClock { skew_ms: skew.clone() });
            let db = db.clone().with_metrics(metrics.clone(), clock.clone());
            let env =
                Env { clock, net: Arc::new(TurmoilNet), ids, chaos, spawner: Spawner::Local, metrics: metrics.clone() };
            let deps = Deps { env, db, secrets: secrets.clone(), peers: peers.clone() };
            let config = config.clone();
            async move {
                let listener = TurmoilNet.bind(&format!("0.0.0.0:{}", port_of(service))).await?;
                registry::run(service, deps, &config, listener, std::future::pending()).await;
                Ok(())
            }
            .with_subscriber(dispatch.clone())
        });
    }
}

/// The slot a shopper asks for: `hour` hours after the hour the run starts in.
pub fn slot(start: Timestamp, hour: u32) -> Timestamp {
    crate::model::hour_of(start) + TimeDelta::hours(i64::from(hour))
}
