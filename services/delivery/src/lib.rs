//! The delivery service: hourly slots with a capacity, book and cancel by order id.
//! A slot is never booked over its capacity: the check and the booking are one transaction.

mod routes;
pub mod store;

use platform::auth::Auth;
use platform::net::Listener;
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::storage::Db;
use platform::{Deps, Env};
use std::future::Future;
use std::sync::Arc;

pub use store::migrations;

/// What delivery is told at start (the registry's `StoreConfig` decides both).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub slot_capacity: i64,
    /// How far ahead slots are offered.
    pub horizon_hours: i64,
}

pub struct Delivery {
    env: Env,
    db: Db,
    config: Config,
}

pub async fn run(deps: Deps, config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let spawner = deps.env.spawner;
    deps.env.metrics.participants();
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), contracts::ServiceName::Delivery));
    let delivery = Arc::new(Delivery { env: deps.env.clone(), db: deps.db.clone(), config });
    let router = with_common_layers(routes::routes(delivery, auth), &deps.env, &deps.db);
    serve(listener, router, SERVER_LIMITS, spawner, deps.env.clock.clone(), shutdown).await;
}

/// The service's OpenAPI document: every route it serves, internal ones included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <routes::Api as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut doc);
    doc
}
