//! The warehouse service: the catalog with prices, stock, and reserve/release by order id.
//! Stock is never oversold: the check and the reservation are one transaction.

#[cfg(feature = "planted-bugs")]
mod planted;
mod routes;
pub mod store;

use platform::auth::Auth;
use platform::net::Listener;
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::storage::Db;
use platform::{Deps, Env};
use std::future::Future;
use std::sync::Arc;

pub use store::{migrations, seed_catalog, CatalogEntry, DEMO_CATALOG};

/// What the warehouse is told at start: nothing yet (the registry seeds its catalog).
#[derive(Clone, Copy, Debug)]
pub struct Config {}

pub const CONFIG: Config = Config {};

pub struct Warehouse {
    env: Env,
    db: Db,
}

/// Runs the warehouse on `listener` until `shutdown`.
pub async fn run(deps: Deps, _config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    deps.env.metrics.participants();
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), contracts::ServiceName::Warehouse));
    let warehouse = Arc::new(Warehouse { env: deps.env.clone(), db: deps.db.clone() });
    let router = with_common_layers(routes::routes(warehouse, auth), &deps.env, &deps.db);
    serve(listener, router, SERVER_LIMITS, deps.env.spawner, deps.env.clock.clone(), shutdown).await;
}

/// The service's OpenAPI document: every route it serves, internal ones included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <routes::Api as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut doc);
    doc
}
