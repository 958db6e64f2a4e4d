//! The gateway in process for the tests: an in-memory database, fixed secrets, every peer
//! at one address.

use axum::Router;
use platform::auth::Secrets;
use platform::clock::ManualClock;
use platform::internal::Peers;
use platform::real::TokioNet;
use platform::storage::Db;
use platform::{Deps, Env, Ids};
use std::sync::Arc;

pub fn gateway_app(clock: Arc<ManualClock>, ids: Ids, upstream: &str) -> Router {
    let deps = Deps {
        env: Env::new(clock, Arc::new(TokioNet), ids),
        db: Db::open_memory(&gateway::migrations()).unwrap(),
        secrets: Secrets { user_token_secret: b"u".to_vec(), service_token_secret: b"s".to_vec() },
        peers: Peers::new(|_| upstream.to_string()),
    };
    gateway::app(deps, gateway::Config { password_cost: gateway::PASSWORD_COST_LOW, ..gateway::CONFIG })
}
