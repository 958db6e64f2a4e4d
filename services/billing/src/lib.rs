//! The billing service: accounts, deposits, the ledger, withdraw and refund by order id,
//! and the outbox that tells the notification service about payments.

mod operations;
#[cfg(feature = "planted-bugs")]
mod planted;
mod routes;
pub mod store;

use contracts::ServiceName;
use platform::auth::Auth;
use platform::internal::InternalClient;
use platform::net::Listener;
use platform::outbox::{Relay, RelayConfig};
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::storage::Db;
use platform::{Deps, Env};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;

pub use store::migrations;

/// What billing is told at start.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The outbox relay to the notification service.
    pub relay: RelayConfig,
}

pub const CONFIG: Config = Config { relay: platform::outbox::RELAY_CONFIG };

pub struct Billing {
    env: Env,
    db: Db,
    outbox_wakeup: Arc<Notify>,
}

/// Runs billing on `listener` until `shutdown`; also runs the outbox relay.
pub async fn run(deps: Deps, config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let spawner = deps.env.spawner;
    deps.env.metrics.participants();
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), contracts::ServiceName::Billing));
    let wakeup = Arc::new(Notify::new());
    let relay = Relay {
        env: deps.env.clone(),
        db: deps.db.clone(),
        client: InternalClient::new(deps.env.clone(), auth.clone()),
        notification_addr: deps.peers.address(ServiceName::Notification).to_string(),
        config: config.relay,
        wakeup: wakeup.clone(),
    };
    let billing = Arc::new(Billing { env: deps.env.clone(), db: deps.db.clone(), outbox_wakeup: wakeup });
    let router = with_common_layers(routes::routes(billing, auth), &deps.env, &deps.db);
    let relay = spawner.spawn(relay.run());
    serve(listener, router, SERVER_LIMITS, spawner, deps.env.clock.clone(), shutdown).await;
    relay.abort();
}

/// The service's OpenAPI document: every route it serves, internal ones included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <routes::Api as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut doc);
    doc
}
