//! The one table of the store's six services, by [`ServiceName`]: each one's migrations, the
//! demo data it starts with, and how it runs. `shop` composes the store from it for real
//! (tokio sockets, SQLite files) and `sim` for the simulation's cluster (turmoil hosts):
//! neither names a service's crate to start it.

use contracts::{ServiceName, Timestamp};
use platform::net::Listener;
use platform::storage::{Db, Migration};
use platform::Deps;
use std::future::Future;
use std::pin::Pin;

/// What the composition decides for the services, beyond their `Deps`: real mode and the
/// simulation differ only here.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub password_cost: gateway::PasswordCost,
    /// Capacity of every delivery slot.
    pub slot_capacity: i64,
    /// How many hours ahead the delivery slots exist.
    pub delivery_horizon_hours: i64,
    /// Stock of each product of `warehouse::DEMO_CATALOG` (in its order) on first start.
    pub stock: Vec<i64>,
}

impl StoreConfig {
    /// The gateway's configuration: its defaults with this password cost.
    pub fn gateway(&self) -> gateway::Config {
        gateway::Config { password_cost: self.password_cost, ..gateway::CONFIG }
    }

    /// Delivery's configuration: this slot capacity and horizon.
    pub fn delivery(&self) -> delivery::Config {
        delivery::Config { slot_capacity: self.slot_capacity, horizon_hours: self.delivery_horizon_hours }
    }

    /// The demo catalog with this configuration's stock.
    pub fn catalog(&self) -> Vec<warehouse::CatalogEntry> {
        warehouse::DEMO_CATALOG
            .iter()
            .zip(&self.stock)
            .map(|(entry, stock)| warehouse::CatalogEntry { stock: *stock, ..*entry })
            .collect()
    }
}

/// The service's database schema.
pub fn migrations(service: ServiceName) -> Vec<Migration> {
    match service {
        ServiceName::Gateway => gateway::migrations(),
        ServiceName::Order => order::migrations(),
        ServiceName::Billing => billing::migrations(),
        ServiceName::Warehouse => warehouse::migrations(),
        ServiceName::Delivery => delivery::migrations(),
        ServiceName::Notification => notification::migrations(),
    }
}

/// Writes the demo data the service starts with, before it serves (kept if already there):
/// the catalog and its stock (warehouse), the delivery slots from `now` (delivery); nothing
/// for the others.
pub fn seed(service: ServiceName, db: &Db, now: Timestamp, config: &StoreConfig) -> rusqlite::Result<()> {
    match service {
        ServiceName::Warehouse => db.write_blocking(|tx| warehouse::seed_catalog(tx, &config.catalog(), now)),
        ServiceName::Delivery => db.write_blocking(|tx| {
            delivery::store::ensure_slots(tx, now, config.delivery_horizon_hours, config.slot_capacity)
        }),
        ServiceName::Gateway | ServiceName::Order | ServiceName::Billing | ServiceName::Notification => Ok(()),
    }
}

pub type ServiceFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The future that runs the service on `listener` until `shutdown` completes: every
/// service's `run(deps, config, listener, shutdown)` with its own `Config`.
pub fn run(
    service: ServiceName,
    deps: Deps,
    config: &StoreConfig,
    listener: Box<dyn Listener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> ServiceFuture {
    match service {
        ServiceName::Gateway => Box::pin(gateway::run(deps, config.gateway(), listener, shutdown)),
        ServiceName::Order => Box::pin(order::run(deps, order::CONFIG, listener, shutdown)),
        ServiceName::Billing => Box::pin(billing::run(deps, billing::CONFIG, listener, shutdown)),
        ServiceName::Warehouse => Box::pin(warehouse::run(deps, warehouse::CONFIG, listener, shutdown)),
        ServiceName::Delivery => Box::pin(delivery::run(deps, config.delivery(), listener, shutdown)),
        ServiceName::Notification => Box::pin(notification::run(deps, notification::CONFIG, listener, shutdown)),
    }
}
