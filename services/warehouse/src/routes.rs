//! Warehouse HTTP routes.

use crate::store::{product, products, release, reserve};
use crate::Warehouse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::catalog::Product;
use contracts::order::{ITEMS_MAX, QUANTITY_MAX};
use contracts::saga::{ReserveRequest, StepResult};
use contracts::ProblemType;
use contracts::{OrderId, ProductId};
use platform::auth::{Auth, Caller, Service};
use platform::json::{Json, Path};
use platform::operations::step_endpoint;
use platform::trace::RequestContext;
use platform::ApiError;
use std::sync::Arc;

type Shared = axum::extract::State<Arc<Warehouse>>;

pub fn routes(warehouse: Arc<Warehouse>, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/warehouse/products", get(list))
        .route("/api/v1/warehouse/products/{product_id}", get(one))
        .route("/api/v1/warehouse/reserve", post(reserve_step))
        .route("/api/v1/warehouse/reserve/cancel/{order_id}", post(release_step))
        .layer(Extension(auth))
        .with_state(warehouse)
}

#[utoipa::path(get, path = "/api/v1/warehouse/products", operation_id = "listProducts", tag = "warehouse", security(("userToken" = []), ("serviceToken" = [])),
    responses((status = 200, description = "The catalog, with what is available of each product", body = Vec<Product>)))]
async fn list(state: Shared, _caller: Caller) -> Result<axum::Json<Vec<Product>>, ApiError> {
    Ok(axum::Json(state.db.read(products)?))
}

#[utoipa::path(get, path = "/api/v1/warehouse/products/{product_id}", operation_id = "getProduct", tag = "warehouse", security(("userToken" = []), ("serviceToken" = [])),
    params(("product_id" = Uuid, Path, description = "The product")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "/problems/not-found: no such product", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn one(
    state: Shared,
    _caller: Caller,
    Path(product_id): Path<ProductId>,
) -> Result<axum::Json<Product>, ApiError> {
    state.db.read(|c| product(c, product_id))?.map(axum::Json).ok_or_else(|| ApiError::not_found("no such product"))
}

#[utoipa::path(post, path = "/api/v1/warehouse/reserve", operation_id = "reserveStock", tag = "warehouse (internal)", security(("serviceToken" = [])),
    request_body = ReserveRequest,
    responses(
        (status = 200, description = "The saga's stock step: reserved, or refused with the reason in `message`", body = StepResult),
        (status = 400, description = "/problems/invalid-items: 1-50 distinct products, quantities 1-1000", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn reserve_step(
    state: Shared,
    _caller: Service,
    Extension(context): Extension<RequestContext>,
    Json(request): Json<ReserveRequest>,
) -> Result<axum::Json<StepResult>, ApiError> {
    let lines_ok = !request.items.is_empty() && request.items.len() <= ITEMS_MAX;
    let quantities_ok = request.items.iter().all(|i| (1..=QUANTITY_MAX).contains(&i.quantity));
    let mut ids: Vec<ProductId> = request.items.iter().map(|i| i.product_id).collect();
    ids.sort();
    ids.dedup();
    if !lines_ok || !quantities_ok || ids.len() != request.items.len() {
        return Err(ApiError::bad_request(ProblemType::InvalidItems, "1-50 distinct products, quantities 1-1000"));
    }
    #[cfg(feature = "planted-bugs")]
    if let Some(result) = crate::planted::oversell_two_steps(&state, &request).await {
        return result.map(axum::Json);
    }
    let result = step_endpoint(&state.env, &state.db, request.order_id, &context, |tx, now| {
        reserve(tx, request.order_id, &request.items, now)
    })
    .await?;
    Ok(axum::Json(result))
}

#[utoipa::path(post, path = "/api/v1/warehouse/reserve/cancel/{order_id}", operation_id = "releaseStock", tag = "warehouse (internal)", security(("serviceToken" = [])),
    params(("order_id" = Uuid, Path, description = "The order whose reservation is released")),
    responses((status = 200, description = "The reservation's compensation: released, or nothing to undo", body = StepResult)))]
async fn release_step(
    state: Shared,
    _caller: Service,
    Extension(context): Extension<RequestContext>,
    Path(order_id): Path<OrderId>,
) -> Result<axum::Json<StepResult>, ApiError> {
    let result = step_endpoint(&state.env, &state.db, order_id, &context, |tx, now| release(tx, order_id, now)).await?;
    Ok(axum::Json(result))
}

/// The warehouse's routes: the catalog (public) and the saga's steps.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, one, reserve_step, release_step))]
pub struct Api;
