//! Order HTTP routes.

use crate::create::create_order;
use crate::store::{order, orders_of};
use crate::Orders;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::order::Order;
use contracts::OrderId;
use platform::auth::{Auth, User};
use platform::json::Path;
use platform::ApiError;
use std::sync::Arc;

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
#[utoipa::path(get, path = "/api/v1/order/{order_id}", operation_id = "getOrder", tag = "order", security(("userToken" = [])),
    params(("order_id" = Uuid, Path, description = "The order")),
    responses(
        (status = 200, description = "The user's order", body = Order),
        (status = 404, description = "/problems/not-found: no such order of this user", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn one(state: Shared, User(user_id): User, Path(order_id): Path<OrderId>) -> Result<axum::Json<Order>, ApiError> {
    let found = state.db.read(|c| order(c, order_id))?;
    found.filter(|o| o.user_id == user_id).map(axum::Json).ok_or_else(|| ApiError::not_found("no such order"))
}

#[utoipa::path(get, path = "/api/v1/orders", operation_id = "listOrders", tag = "order", security(("userToken" = [])),
    responses((status = 200, description = "The user's orders, newest first (at most 1,000)", body = Vec<Order>)))]
async fn list(state: Shared, User(user_id): User) -> Result<axum::Json<Vec<Order>>, ApiError> {
    Ok(axum::Json(state.db.read(|c| orders_of(c, user_id))?))
}

/// The order service's routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(crate::create::create_order, one, list), components(schemas(contracts::order::IdempotencyKey)))]
pub struct Api;
