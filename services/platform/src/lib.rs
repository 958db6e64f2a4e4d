//! The seams every service is written against, the HTTP plumbing over them, and the
//! real-mode adapters. Service code reaches time, randomness, sockets and storage only
//! through [`Env`] and [`storage::Db`]; the simulation plugs in its own [`Clock`] and [`Net`].

pub mod auth;
pub mod client;
pub mod clock;
pub mod error;
pub mod ids;
pub mod internal;
pub mod json;
pub mod net;
pub mod operations;
pub mod outbox;
pub mod real;
pub mod server;
pub mod sql;
pub mod storage;
pub mod trace;

pub use clock::Clock;
pub use error::ApiError;
pub use ids::Ids;
pub use net::Net;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The capabilities one service instance runs with. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    pub clock: Arc<dyn Clock>,
    pub net: Arc<dyn Net>,
    pub ids: Ids,
}

/// Everything a service instance is handed at start: capabilities, its own database,
/// the token secrets and where its peers listen.
#[derive(Clone)]
pub struct Deps {
    pub env: Env,
    pub db: storage::Db,
    pub secrets: auth::Secrets,
    pub peers: internal::Peers,
}
