//! Order HTTP routes.

use crate::create::create_order;
use crate::store::{order, orders_of};
use crate::Orders;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::order::Order;
use platform::auth::{Auth, User};
use platform::json::Path;
use platform::ApiError;
use std::sync::Arc;
use uuid::Uuid;

pub type Shared = axum::extract::State<Arc<Orders>>;

pub fn routes(orders: Arc<Orders>, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/order", post(create_order))
        .route("/api/v1/order/{order_id}", get(one))
        .route("/api/v1/orders", get(list))
        .layer(Extension(auth))
        .with_state(orders)
}

/// The owner's order; anyone else gets the same 404 as for an unknown id.
async fn one(state: Shared, User(user_id): User, Path(order_id): Path<Uuid>) -> Result<axum::Json<Order>, ApiError> {
    let found = state.db.read(|c| order(c, order_id))?;
    found.filter(|o| o.user_id == user_id).map(axum::Json).ok_or_else(|| ApiError::not_found("no such order"))
}

async fn list(state: Shared, User(user_id): User) -> Result<axum::Json<Vec<Order>>, ApiError> {
    Ok(axum::Json(state.db.read(|c| orders_of(c, user_id))?))
}
