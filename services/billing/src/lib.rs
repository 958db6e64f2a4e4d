//! The billing service: accounts, deposits, the ledger, withdraw and refund by order id,
//! and the outbox that tells the notification service about payments.

mod operations;
mod outbox;
mod routes;
pub mod store;

use platform::auth::Auth;
use platform::internal::InternalClient;
use platform::net::Listener;
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::storage::Db;
use platform::{Deps, Env};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;

pub use store::migrations;

#[derive(Clone, Debug)]
pub struct Config {
    /// How often the outbox relay looks for undelivered events when not woken.
    pub outbox_poll_interval_ms: u64,
    pub outbox_batch_size_max: u32,
    pub notification_call_timeout_ms: u64,
}

pub const CONFIG: Config = Config {
    outbox_poll_interval_ms: 500,
    outbox_batch_size_max: 32,
    notification_call_timeout_ms: 1_000,
};

pub struct Billing {
    env: Env,
    db: Db,
    client: InternalClient,
    notification_addr: String,
    config: Config,
    outbox_wakeup: Notify,
}

/// Runs billing on `listener` until `shutdown`; also runs the outbox relay.
pub async fn run(deps: Deps, config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), "billing"));
    let billing = Arc::new(Billing {
        client: InternalClient::new(deps.env.clone(), auth.clone()),
        env: deps.env.clone(),
        db: deps.db,
        notification_addr: deps.peers.notification.clone(),
        config,
        outbox_wakeup: Notify::new(),
    });
    let router = with_common_layers(routes::routes(billing.clone(), auth), deps.env.ids.clone());
    let relay = tokio::spawn(outbox::relay(billing));
    serve(listener, router, SERVER_LIMITS, shutdown).await;
    relay.abort();
}
