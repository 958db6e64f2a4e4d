//! The order service: idempotent order creation (the contract's decision table), the saga
//! orchestrator with its log, recovery of every unfinished saga after a restart, and the
//! outbox for `ORDER_CONFIRMED`/`ORDER_FAILED`.

mod create;
#[cfg(feature = "planted-bugs")]
mod planted;
mod routes;
pub mod runner;
pub mod saga;
pub mod store;

use contracts::{OrderId, ServiceName, UserId};
use platform::auth::Auth;
use platform::client::RetryPolicy;
use platform::internal::{InternalClient, Peers};
use platform::metrics::{StepLabels, StepPhase};
use platform::net::Listener;
use platform::outbox::{Relay, RelayConfig};
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::storage::Db;
use platform::{Deps, Env};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

pub use store::migrations;

#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How long `POST /api/v1/order` waits for the saga before answering 202.
    pub request_deadline_ms: u64,
    /// The similar-order window, on the service's clock.
    pub similar_order_window_ms: i64,
    /// Saga actions, and each round of a compensation.
    pub action_retry: RetryPolicy,
    /// Pause between compensation rounds; compensations are retried until acknowledged.
    pub compensation_round_pause_ms: u64,
    /// Reading catalog prices while creating an order.
    pub catalog_retry: RetryPolicy,
    /// How long a read of the catalog's names and prices prices new orders (`create::PriceList`).
    pub price_list_max_age_ms: u64,
    pub saga_concurrency_max: usize,
    /// How often unfinished sagas that are not running are picked up again.
    pub recovery_interval_ms: u64,
    pub unfinished_batch_size_max: i64,
    pub relay: RelayConfig,
}

pub const CONFIG: Config = Config {
    request_deadline_ms: 5_000,
    similar_order_window_ms: 5 * 60 * 1000,
    action_retry: runner::ACTION_RETRY,
    compensation_round_pause_ms: 1_000,
    catalog_retry: RetryPolicy {
        attempt_timeout_ms: 1_000,
        attempt_count_max: 2,
        backoff_initial_ms: 50,
        backoff_max_ms: 200,
    },
    price_list_max_age_ms: 30_000,
    saga_concurrency_max: 256,
    recovery_interval_ms: 2_000,
    unfinished_batch_size_max: 256,
    relay: platform::outbox::RELAY_CONFIG,
};

pub struct Orders {
    env: Env,
    db: Db,
    client: InternalClient,
    peers: Peers,
    config: Config,
    /// Sagas running in this process, each with a receiver that turns true when done.
    running: Mutex<BTreeMap<OrderId, watch::Receiver<bool>>>,
    /// (user, key) of creation requests on their way from the key's commit to their saga's
    /// end, each with the number of requests holding it (`create::Waiting`).
    waiting: Mutex<BTreeMap<(UserId, String), u32>>,
    outbox_wakeup: Arc<Notify>,
    /// The catalog's names and prices as last read from the warehouse.
    price_list: Mutex<Option<create::PriceList>>,
    #[cfg(feature = "planted-bugs")]
    memory_keys: planted::MemoryKeys,
}

pub async fn run(deps: Deps, config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let spawner = deps.env.spawner;
    if let Some(metrics) = deps.env.metrics.orders() {
        for step in saga::STEPS {
            for phase in [StepPhase::action, StepPhase::compensation] {
                drop(metrics.step_duration.get_or_create(&StepLabels { step: step.name().to_string(), phase }));
            }
        }
    }
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), contracts::ServiceName::Order));
    let client = InternalClient::new(deps.env.clone(), auth.clone());
    let wakeup = Arc::new(Notify::new());
    let relay = Relay {
        env: deps.env.clone(),
        db: deps.db.clone(),
        client: client.clone(),
        notification_addr: deps.peers.address(ServiceName::Notification).to_string(),
        config: config.relay,
        wakeup: wakeup.clone(),
    };
    let orders = Arc::new(Orders {
        env: deps.env.clone(),
        db: deps.db.clone(),
        client,
        peers: deps.peers,
        config,
        running: Mutex::new(BTreeMap::new()),
        waiting: Mutex::new(BTreeMap::new()),
        outbox_wakeup: wakeup,
        price_list: Mutex::new(None),
        #[cfg(feature = "planted-bugs")]
        memory_keys: Default::default(),
    });
    let relay = spawner.spawn(relay.run());
    let recovery = spawner.spawn(recover(orders.clone()));
    let router = with_common_layers(routes::routes(orders, auth), &deps.env, &deps.db);
    serve(listener, router, SERVER_LIMITS, spawner, deps.env.clock.clone(), shutdown).await;
    relay.abort();
    recovery.abort();
}

impl Orders {
    /// Sets the in-flight gauges from the orders table: unfinished sagas, and the age of
    /// the oldest (on the wall clock of the clock seam). A failed read (a stored time that
    /// does not parse) is logged and leaves them as they were. With the metrics off it reads
    /// nothing.
    fn count_unfinished(&self) {
        let Some(metrics) = self.env.metrics.orders() else { return };
        let (count, oldest) = match self.db.read(store::unfinished_summary) {
            Ok(summary) => summary,
            Err(error) => {
                tracing::error!(%error, "cannot count the unfinished sagas; the gauges keep their values");
                return;
            }
        };
        metrics.sagas_in_flight.set(count);
        let age = oldest.map_or(0.0, |created| {
            let age = self.env.clock.now_utc().signed_duration_since(created);
            age.num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics.oldest_saga_age_seconds.set(age);
    }
}

/// Resumes every unfinished saga now (after a restart) and then periodically (sagas that
/// stopped on a storage error or found the concurrency limit full).
async fn recover(orders: Arc<Orders>) {
    #[cfg(feature = "planted-bugs")]
    if planted::no_recovery() {
        return;
    }
    loop {
        orders.count_unfinished();
        match orders.db.read(|c| store::unfinished_orders(c, orders.config.unfinished_batch_size_max)) {
            Ok(unfinished) => {
                for order_id in unfinished {
                    if orders.resume_saga(order_id).is_none() {
                        break;
                    }
                }
            }
            Err(error) => tracing::error!(%error, "cannot list unfinished sagas"),
        }
        orders.env.clock.sleep(Duration::from_millis(orders.config.recovery_interval_ms)).await;
    }
}

/// The service's OpenAPI document: every route it serves, internal ones included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <routes::Api as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut doc);
    doc
}
