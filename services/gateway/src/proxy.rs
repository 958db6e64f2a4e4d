//! The proxy: the public contract's `/api/v1/**` routes, each sent to the service that owns
//! it with a JWT minted for the session's user. Anything else under `/api` is a 404 (or a
//! 401 without a session), so internal endpoints cannot be reached through the gateway.

use crate::accounts::SessionUser;
use crate::Gateway;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Router};
use contracts::{ProblemType, ServiceName};
use platform::client::{NeverResent, OutboundRequest, RetryPolicy};
use platform::trace::{RequestContext, REQUEST_ID, TRACEPARENT};
use platform::ApiError;
use std::sync::Arc;

/// The public routes of the contract and who owns each. Nothing else is proxied.
pub const PUBLIC_ROUTES: [(&str, &str, ServiceName); 11] = [
    ("POST", "/api/v1/billing/accounts", ServiceName::Billing),
    ("GET", "/api/v1/billing/accounts/me", ServiceName::Billing),
    ("POST", "/api/v1/billing/deposit", ServiceName::Billing),
    ("GET", "/api/v1/billing/transactions", ServiceName::Billing),
    ("GET", "/api/v1/warehouse/products", ServiceName::Warehouse),
    ("GET", "/api/v1/warehouse/products/{product_id}", ServiceName::Warehouse),
    ("GET", "/api/v1/deliveries/slots", ServiceName::Delivery),
    ("POST", "/api/v1/order", ServiceName::Order),
    ("GET", "/api/v1/order/{order_id}", ServiceName::Order),
    ("GET", "/api/v1/orders", ServiceName::Order),
    ("GET", "/api/v1/notifications", ServiceName::Notification),
];

/// Headers passed to the service unchanged; everything else (Cookie, Authorization,
/// X-User-*, …) stays at the gateway. `X-Request-Id` and `traceparent` are the gateway's
/// own: the request id the client sent if it was valid (else a new one), and a new span of
/// the client's trace.
const FORWARDED_HEADERS: [HeaderName; 3] =
    [header::CONTENT_TYPE, header::ACCEPT, HeaderName::from_static("idempotency-key")];
/// Headers of the service's answer passed back to the client.
const RETURNED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

/// Seconds a client is asked to wait when a service is unreachable.
const RETRY_AFTER_S: u32 = 1;

pub fn routes() -> Router<Arc<Gateway>> {
    let mut router = Router::new();
    for (method, path, upstream) in PUBLIC_ROUTES {
        let handler = move |state, user, context, request| proxy(state, user, context, request, upstream);
        let route: MethodRouter<Arc<Gateway>> = if method == "GET" { get(handler) } else { post(handler) };
        let allow = if method == "GET" { "GET,HEAD" } else { "POST" };
        router = router.route(path, route.fallback(move |state, headers| wrong_method(state, headers, allow)));
    }
    router
}

/// A public route called with another method: 401 without a session (every `/api` call
/// needs one, and an anonymous caller learns nothing about the routes), else 405.
async fn wrong_method(State(state): State<Arc<Gateway>>, headers: HeaderMap, allow: &'static str) -> Response {
    if state.session_user(&headers).await.ok().flatten().is_none() {
        return ApiError::unauthorized("log in first: no valid session").into_response();
    }
    let mut response =
        ApiError::new(405, ProblemType::MethodNotAllowed, "Method not allowed", "this route takes another method")
            .into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Unknown routes: 401 under `/api` without a session (every `/api` call needs one), else 404.
pub async fn unknown(State(state): State<Arc<Gateway>>, headers: HeaderMap, request: Request) -> ApiError {
    let under_api = request.uri().path().starts_with("/api/");
    if under_api && state.session_user(&headers).await.ok().flatten().is_none() {
        return ApiError::unauthorized("log in first: no valid session");
    }
    ApiError::not_found("no such route")
}

async fn proxy(
    State(state): State<Arc<Gateway>>,
    user: SessionUser,
    Extension(context): Extension<RequestContext>,
    request: Request,
    upstream: ServiceName,
) -> Response {
    let mut response = forward(&state, &user, &context, request, upstream).await.into_response();
    user.refresh_cookie(&state, &mut response);
    response
}

async fn forward(
    state: &Gateway,
    user: &SessionUser,
    context: &RequestContext,
    request: Request,
    upstream: ServiceName,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, platform::json::BODY_SIZE_MAX_BYTES).await.map_err(|_| {
        ApiError::new(413, ProblemType::BodyTooLarge, "Payload too large", "request body is over 64 KiB")
    })?;
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str()).to_string();
    let keyed = parts.headers.contains_key("idempotency-key");
    let idempotent = parts.method == Method::GET || keyed;
    let mut outbound = OutboundRequest::new(parts.method.clone(), path);
    outbound = if idempotent {
        outbound.idempotent(true)
    } else {
        // An unkeyed write (opening an account, an unkeyed deposit) is sent once
        // (`RetryPolicy::once` below) and never again by anything: the only exemption from
        // the simulation's injected duplicates (see `NeverResent`).
        outbound.never_resent(NeverResent::UnkeyedGatewayWrite)
    };
    outbound.body = body;
    for name in FORWARDED_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            outbound.headers.push((name, value.clone()));
        }
    }
    let traceparent = context.child_traceparent(&state.env.ids);
    let token = format!("Bearer {}", state.auth.mint_user_token(user.user_id));
    outbound = outbound
        .header(TRACEPARENT, &traceparent)
        .header(header::AUTHORIZATION, &token)
        .header(REQUEST_ID, &context.request_id);
    let policy = if idempotent {
        state.config.upstream_retry
    } else {
        RetryPolicy::once(state.config.upstream_retry.attempt_timeout_ms)
    };
    let address = state.peers.address(upstream).to_string();
    let reply = match state.http.send(&address, &outbound, policy).await {
        Ok(reply) => reply,
        Err(platform::client::CallError::Status { status, problem: Some(problem) }) => {
            if let Some(metrics) = state.env.metrics.gateway().filter(|_| status == 503) {
                metrics.upstream_unavailable.inc();
            }
            return Ok(platform::error::problem_response(&problem, (status == 503).then_some(RETRY_AFTER_S), None));
        }
        Err(error) => {
            tracing::warn!(?upstream, %error, "upstream unavailable");
            if let Some(metrics) = state.env.metrics.gateway() {
                metrics.upstream_unavailable.inc();
            }
            return Err(ApiError::unavailable(format!("{upstream:?} service is unavailable"), RETRY_AFTER_S));
        }
    };
    let status = StatusCode::from_u16(reply.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, reply.body).into_response();
    for name in RETURNED_HEADERS {
        if let Some(value) = reply.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    Ok(response)
}
