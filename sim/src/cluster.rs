//! The cluster: one turmoil host per service, running the very code `shop` runs, each with
//! its database kept here, outside the host, so a crash loses only uncommitted work.

use crate::errors::Incidents;
use crate::faults::SERVICES;
use crate::scenario::Scenario;
use crate::seams::{SimClock, TurmoilNet};
use crate::seed::child_seed;
use chrono::TimeDelta;
use contracts::Timestamp;
use platform::auth::Secrets;
use platform::internal::Peers;
use platform::metrics::Metrics;
use platform::storage::Db;
use platform::{Chaos, Deps, Env, Ids, Net, Spawner};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::pending;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};
use std::sync::Arc;
use tracing::instrument::WithSubscriber;
use uuid::Uuid;

/// 2026-01-01T00:00:00Z: every run's wall clock starts here.
pub const EPOCH_S: i64 = 1_767_225_600;
pub const DELIVERY_HORIZON_HOURS: i64 = 48;

pub fn epoch() -> Timestamp {
    Timestamp::from_timestamp(EPOCH_S, 0).expect("valid epoch")
}

pub fn port_of(service: &str) -> u16 {
    8080 + SERVICES.iter().position(|s| *s == service).expect("a service name") as u16
}

pub struct Cluster {
    pub dbs: BTreeMap<&'static str, Db>,
    /// Each host's metrics registry, kept across its restarts (like its database), so a
    /// run's totals count every incarnation.
    pub metrics: BTreeMap<&'static str, Metrics>,
    pub skews: BTreeMap<&'static str, Arc<AtomicI64>>,
    pub duplicates: Arc<AtomicU32>,
    pub duplicate_delay_max_ms: Arc<AtomicU64>,
    /// Late duplicates scheduled by any service and not yet finished (`Chaos::pending`).
    pub pending_duplicates: Arc<AtomicU64>,
    pub peers: Peers,
    /// Total stock of each product at the start.
    pub initial_stock: BTreeMap<Uuid, i64>,
    /// What the service hosts logged at ERROR, and their panics (invariant 11).
    pub incidents: Incidents,
}

fn migrations(service: &str) -> Vec<platform::storage::Migration> {
    match service {
        "gateway" => gateway::migrations(),
        "order" => order::migrations(),
        "billing" => billing::migrations(),
        "warehouse" => warehouse::migrations(),
        "delivery" => delivery::migrations(),
        _ => notification::migrations(),
    }
}

fn peers() -> Peers {
    let addr = |s: &str| format!("{s}:{}", port_of(s));
    Peers {
        gateway: addr("gateway"),
        order: addr("order"),
        billing: addr("billing"),
        warehouse: addr("warehouse"),
        delivery: addr("delivery"),
        notification: addr("notification"),
    }
}

/// Opens the databases and seeds the catalog and the slots, before any host runs.
pub fn prepare(scenario: &Scenario) -> Cluster {
    let mut dbs = BTreeMap::new();
    for service in SERVICES {
        dbs.insert(service, Db::open_memory(&migrations(service)).expect("in-memory database"));
    }
    let catalog: Vec<warehouse::CatalogEntry> = warehouse::DEMO_CATALOG
        .iter()
        .zip(scenario.stock)
        .map(|(entry, stock)| warehouse::CatalogEntry {
            id: entry.id,
            name: entry.name,
            price_cents: entry.price_cents,
            stock,
        })
        .collect();
    let now = platform::sql::time_text(epoch());
    dbs["warehouse"].write(|tx| warehouse::seed_catalog(tx, &catalog, &now)).expect("seed the catalog");
    dbs["delivery"]
        .write(|tx| delivery::store::ensure_slots(tx, epoch(), DELIVERY_HORIZON_HOURS, scenario.slot_capacity))
        .expect("seed the slots");
    Cluster {
        dbs,
        metrics: SERVICES.iter().map(|s| (*s, Metrics::new())).collect(),
        skews: SERVICES.iter().map(|s| (*s, Arc::new(AtomicI64::new(0)))).collect(),
        duplicates: Arc::new(AtomicU32::new(0)),
        duplicate_delay_max_ms: Arc::new(AtomicU64::new(0)),
        pending_duplicates: Arc::new(AtomicU64::new(0)),
        peers: peers(),
        initial_stock: catalog.iter().map(|c| (c.id, c.stock)).collect(),
        incidents: Incidents::new(),
    }
}

fn secrets(seed: u64) -> Secrets {
    let ids = Ids::from_seed(child_seed(seed, "secrets"));
    Secrets { user_token_secret: ids.hex(32).into_bytes(), service_token_secret: ids.hex(32).into_bytes() }
}

/// Registers the six services as turmoil hosts. Each restart gets fresh ids derived from
/// the seed, the service and its incarnation.
pub fn add_hosts(sim: &mut turmoil::Sim<'_>, cluster: &Cluster, seed: u64, scenario: &Scenario) {
    let secrets = secrets(seed);
    for service in SERVICES {
        let db = cluster.dbs[service].clone();
        let metrics = cluster.metrics[service].clone();
        let skew = cluster.skews[service].clone();
        let duplicates = cluster.duplicates.clone();
        let duplicate_delay_max_ms = cluster.duplicate_delay_max_ms.clone();
        let pending = cluster.pending_duplicates.clone();
        let peers = cluster.peers.clone();
        let secrets = secrets.clone();
        let slot_capacity = scenario.slot_capacity;
        let incarnation = Cell::new(0u32);
        // One tracing dispatcher per host, around every incarnation of its future.
        let dispatch = cluster.incidents.dispatch(service);
        sim.host(service, move || {
            incarnation.set(incarnation.get() + 1);
            let ids = Ids::from_seed(child_seed(seed, &format!("ids/{service}/{}", incarnation.get())));
            let chaos = Chaos {
                duplicate_per_mille: duplicates.clone(),
                duplicate_delay_max_ms: duplicate_delay_max_ms.clone(),
                pending: pending.clone(),
            };
            let clock = Arc::new(SimClock { skew_ms: skew.clone() });
            let db = db.clone().with_metrics(metrics.clone(), clock.clone());
            let env =
                Env { clock, net: Arc::new(TurmoilNet), ids, chaos, spawner: Spawner::Local, metrics: metrics.clone() };
            let deps = Deps { env, db, secrets: secrets.clone(), peers: peers.clone() };
            async move {
                let listener = TurmoilNet.bind(&format!("0.0.0.0:{}", port_of(service))).await?;
                run_service(service, deps, listener, slot_capacity).await;
                Ok(())
            }
            .with_subscriber(dispatch.clone())
        });
    }
}

async fn run_service(service: &str, deps: Deps, listener: Box<dyn platform::net::Listener>, slot_capacity: i64) {
    let forever = pending::<()>();
    match service {
        "gateway" => {
            let config = gateway::Config { password_cost: gateway::PASSWORD_COST_LOW, ..gateway::CONFIG };
            gateway::run(deps, config, listener, forever).await;
        }
        "order" => order::run(deps, order::CONFIG, listener, forever).await,
        "billing" => billing::run(deps, platform::outbox::RELAY_CONFIG, listener, forever).await,
        "warehouse" => warehouse::run(deps, listener, forever).await,
        "delivery" => {
            let config = delivery::Config { slot_capacity, horizon_hours: DELIVERY_HORIZON_HOURS };
            delivery::run(deps, config, listener, forever).await;
        }
        _ => notification::run(deps, listener, forever).await,
    }
}

/// The slot a shopper asks for: `hour` hours after the epoch.
pub fn slot(hour: u32) -> Timestamp {
    epoch() + TimeDelta::hours(i64::from(hour))
}
