//! Wire types of the store's HTTP contract (`shared/spec/API.md`): serde only, no I/O.

pub mod auth;
pub mod billing;
pub mod catalog;
pub mod ids;
pub mod money;
pub mod notification;
pub mod order;
pub mod problem;
pub mod saga;
pub mod service;

pub use ids::{AccountId, Id, NotificationId, OrderId, ProductId, TransactionId, UserId};
pub use money::Money;
pub use problem::{Problem, ProblemKind, ProblemType};
pub use service::ServiceName;

/// Timestamps on the wire: RFC 3339 UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
