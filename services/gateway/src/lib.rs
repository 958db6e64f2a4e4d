//! The gateway: the store's only door. Registration, login with a server-side session
//! cookie, profile and logout against its own user store; every `/api/v1/**` call of the
//! public contract proxied to the owning service with a short-lived JWT minted for it.

mod accounts;
mod proxy;
pub use proxy::PUBLIC_ROUTES;
pub mod store;

use argon2::Params;
use axum::Router;
use platform::auth::Auth;
use platform::client::{HttpClient, RetryPolicy, SERVICE_POOL};
use platform::internal::Peers;
use platform::net::Listener;
use platform::server::{serve, with_layers_keeping_fallback, SERVER_LIMITS};
use platform::storage::Db;
use platform::{Deps, Env};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub use store::migrations;

#[derive(Clone, Copy, Debug)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// OWASP's Argon2id baseline (19 MiB, 2 iterations).
pub const PASSWORD_COST_STANDARD: PasswordCost = PasswordCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };
/// For simulations and tests only: fast, and still a real Argon2id hash.
pub const PASSWORD_COST_LOW: PasswordCost = PasswordCost { memory_kib: 64, iterations: 1, parallelism: 1 };

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub password_cost: PasswordCost,
    /// Password hashes (register, login) computed at once; more get 503 with `Retry-After`.
    /// Bounds their memory (`password_cost.memory_kib` each) and CPU.
    pub password_hash_concurrency_max: usize,
    /// A session unused for this long is gone.
    pub session_idle_timeout_s: i64,
    /// A session's last use is written at most this often.
    pub session_touch_interval_s: i64,
    /// Calls to the services: GETs and keyed POSTs may be retried, others are sent once.
    pub upstream_retry: RetryPolicy,
}

pub const CONFIG: Config = Config {
    password_cost: PASSWORD_COST_STANDARD,
    password_hash_concurrency_max: 4,
    session_idle_timeout_s: 24 * 60 * 60,
    session_touch_interval_s: 60,
    upstream_retry: RetryPolicy {
        attempt_timeout_ms: 8_000,
        attempt_count_max: 2,
        backoff_initial_ms: 100,
        backoff_max_ms: 500,
    },
};

pub struct Gateway {
    env: Env,
    db: Db,
    auth: Arc<Auth>,
    http: HttpClient,
    peers: Peers,
    config: Config,
    argon2_params: Params,
    /// One permit per password hash under way (see `Config::password_hash_concurrency_max`).
    hash_slots: Arc<Semaphore>,
    /// Verified when a login names an unknown email, so that it costs what a wrong
    /// password costs.
    decoy_hash: String,
}

/// The gateway's whole HTTP surface, ready to serve.
pub fn app(deps: Deps, config: Config) -> Router {
    let cost = config.password_cost;
    let argon2_params =
        Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None).expect("valid Argon2 cost in config");
    let gateway = Arc::new(Gateway {
        auth: Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), contracts::ServiceName::Gateway)),
        http: HttpClient::keep_alive(deps.env.clone(), SERVICE_POOL),
        env: deps.env.clone(),
        db: deps.db.clone(),
        peers: deps.peers,
        config,
        decoy_hash: accounts::hash_password(&argon2_params, "decoy password", &[7; 16])
            .expect("hashing with valid params"),
        argon2_params,
        hash_slots: Arc::new(Semaphore::new(config.password_hash_concurrency_max)),
    });
    gateway.count_live_sessions();
    let routes = accounts::routes()
        .merge(proxy::routes())
        .route("/openapi.json", axum::routing::get(openapi_document))
        .fallback(proxy::unknown)
        .with_state(gateway);
    with_layers_keeping_fallback(routes, &deps.env)
}

/// The public API's OpenAPI document as checked in (`docs/openapi/public.json`), which
/// `shop`'s tests keep equal to the one generated from the handlers (`shop::openapi`).
pub const PUBLIC_OPENAPI: &str = include_str!("../../../docs/openapi/public.json");

/// `GET /openapi.json`: the public API's document; no session needed.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "auth",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
async fn openapi_document() -> impl axum::response::IntoResponse {
    ([(http::header::CONTENT_TYPE, "application/json")], PUBLIC_OPENAPI)
}

/// The gateway's own routes: registration, login, profile, logout and this document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <accounts::Api as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut doc);
    doc
}

pub async fn run(deps: Deps, config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let (spawner, clock) = (deps.env.spawner, deps.env.clock.clone());
    serve(listener, app(deps, config), SERVER_LIMITS, spawner, clock, shutdown).await;
}
