//! Delivery HTTP routes.

use crate::store::{book, cancel_booking, ensure_slots, slots};
use crate::Delivery;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::catalog::Slot;
use contracts::saga::{BookRequest, StepResult};
use contracts::ProblemType;
use contracts::{OrderId, TransactionId};
use platform::auth::{Auth, Caller, Service};
use platform::json::{Json, Path};
use platform::operations::step_endpoint;
use platform::trace::RequestContext;
use platform::ApiError;
use std::sync::Arc;

type Shared = axum::extract::State<Arc<Delivery>>;

/// Longest delivery address accepted.
pub const ADDRESS_LENGTH_MAX: usize = 500;

pub fn routes(delivery: Arc<Delivery>, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/deliveries/slots", get(list))
        .route("/api/v1/deliveries/reserve", post(book_step))
        .route("/api/v1/deliveries/reserve/cancel/{order_id}", post(cancel_step))
        .layer(Extension(auth))
        .with_state(delivery)
}

#[utoipa::path(get, path = "/api/v1/deliveries/slots", operation_id = "listSlots", tag = "delivery", security(("userToken" = []), ("serviceToken" = [])),
    responses((status = 200, description = "The delivery slots ahead, with what is left of each", body = Vec<Slot>)))]
async fn list(state: Shared, _caller: Caller) -> Result<axum::Json<Vec<Slot>>, ApiError> {
    let now = state.env.clock.now_utc();
    let config = state.config;
    state.db.write(|tx| ensure_slots(tx, now, config.horizon_hours, config.slot_capacity)).await?;
    Ok(axum::Json(state.db.read(|c| slots(c, now, config.horizon_hours))?))
}

#[utoipa::path(post, path = "/api/v1/deliveries/reserve", operation_id = "bookDelivery", tag = "delivery (internal)", security(("serviceToken" = [])),
    request_body = BookRequest,
    responses(
        (status = 200, description = "The saga's delivery step: booked, or refused with the reason in `message`", body = StepResult),
        (status = 400, description = "/problems/invalid-address: 1-500 characters", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn book_step(
    state: Shared,
    _caller: Service,
    Extension(context): Extension<RequestContext>,
    Json(request): Json<BookRequest>,
) -> Result<axum::Json<StepResult>, ApiError> {
    if request.address.trim().is_empty() || request.address.chars().count() > ADDRESS_LENGTH_MAX {
        return Err(ApiError::bad_request(ProblemType::InvalidAddress, "address must be 1-500 characters"));
    }
    let config = state.config;
    let reservation_id: TransactionId = state.env.ids.id_at(state.env.clock.now_utc());
    let result = step_endpoint(&state.env, &state.db, request.order_id, &context, |tx, now| {
        ensure_slots(tx, now, config.horizon_hours, config.slot_capacity)?;
        book(tx, &request, reservation_id, now)
    })
    .await?;
    Ok(axum::Json(result))
}

#[utoipa::path(post, path = "/api/v1/deliveries/reserve/cancel/{order_id}", operation_id = "cancelDelivery", tag = "delivery (internal)", security(("serviceToken" = [])),
    params(("order_id" = Uuid, Path, description = "The order whose booking is cancelled")),
    responses((status = 200, description = "The booking's compensation: cancelled, or nothing to undo", body = StepResult)))]
async fn cancel_step(
    state: Shared,
    _caller: Service,
    Extension(context): Extension<RequestContext>,
    Path(order_id): Path<OrderId>,
) -> Result<axum::Json<StepResult>, ApiError> {
    let result =
        step_endpoint(&state.env, &state.db, order_id, &context, |tx, now| cancel_booking(tx, order_id, now)).await?;
    Ok(axum::Json(result))
}

/// Delivery's routes: the slots (public) and the saga's steps.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, book_step, cancel_step))]
pub struct Api;
