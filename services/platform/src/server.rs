//! Serves an axum `Router` with hyper over any [`Listener`] of the network seam, with a
//! bound on connections, a header-read deadline, a body-read deadline on the clock seam and
//! a header size limit.

use crate::hyper_timer::ClockTimer;
use crate::ids::Ids;
use crate::json::{as_problem, unknown_route, BODY_SIZE_MAX_BYTES};
use crate::metrics::Metrics;
use crate::net::Listener;
use crate::storage::Db;
use crate::trace::in_request_context;
use crate::{ApiError, Clock, Env, Spawner};
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{header, HeaderValue};
use axum::Router;
use contracts::ProblemType;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    pub connection_count_max: usize,
    /// The headers must arrive within this long (hyper's deadline); the body then has
    /// [`BODY_READ_TIMEOUT_MS`] more (the common layer's).
    pub header_read_timeout_ms: u64,
    /// hyper's read buffer; headers beyond it get 431. At least 8192.
    pub header_buffer_max_bytes: usize,
}

pub const SERVER_LIMITS: ServerLimits = ServerLimits {
    connection_count_max: 1024,
    header_read_timeout_ms: 10_000,
    // Above HEADER_SIZE_MAX_BYTES, so that an overlong header usually reaches
    // the common layer and gets a problem body; past this, hyper answers a bare 431.
    header_buffer_max_bytes: 64 * 1024,
};

/// The whole body must arrive within this long after the headers (on the clock seam);
/// else 408 and the connection closes. With the header deadline it bounds the whole request
/// read, so a client trickling a body cannot hold a connection permit indefinitely. Read by
/// the common layer ([`with_common_layers`]), inside the request's context: a 408 carries
/// its `X-Request-Id` and is counted in the HTTP metrics like any answer.
pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;

/// Largest total size of a request's header names and values.
pub const HEADER_SIZE_MAX_BYTES: usize = 16 * 1024;

/// A 431 problem+json when the request's headers are too large.
fn headers_too_large(request: &axum::extract::Request) -> Option<axum::response::Response> {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    (size > HEADER_SIZE_MAX_BYTES).then(|| {
        let error = crate::ApiError::new(
            431,
            ProblemType::HeadersTooLarge,
            "Request header fields too large",
            format!("request headers take {size} bytes; at most {HEADER_SIZE_MAX_BYTES} are accepted"),
        );
        axum::response::IntoResponse::into_response(error)
    })
}

/// Reads the whole body (at most [`BODY_SIZE_MAX_BYTES`]) within [`BODY_READ_TIMEOUT_MS`]
/// on the clock seam: the request with its body in memory, or the answer instead of it
/// (too slow: 408 problem+json with `Connection: close`; too large: 413, also closing, as
/// the rest of the body is never read).
async fn read_body(
    clock: &dyn Clock,
    request: axum::extract::Request,
) -> Result<axum::extract::Request, axum::response::Response> {
    let (parts, body) = request.into_parts();
    let timeout = Duration::from_millis(BODY_READ_TIMEOUT_MS);
    let read = clock.timeout(timeout, axum::body::to_bytes(body, BODY_SIZE_MAX_BYTES)).await;
    let error = match read {
        Ok(Ok(bytes)) => return Ok(axum::extract::Request::from_parts(parts, bytes.into())),
        Ok(Err(error)) if is_length_limit(&error) => {
            ApiError::new(413, ProblemType::BodyTooLarge, "Payload too large", "request body is over 64 KiB")
        }
        Ok(Err(error)) => ApiError::bad_request(ProblemType::InvalidBody, format!("could not read the body: {error}")),
        Err(elapsed) => {
            tracing::debug!(%elapsed, method = %parts.method, path = parts.uri.path(), "request body too slow");
            ApiError::new(
                408,
                ProblemType::RequestTimeout,
                "Request timeout",
                format!("the request body did not arrive within {} ms", elapsed.duration_ms),
            )
        }
    };
    let mut response = axum::response::IntoResponse::into_response(error);
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    Err(response)
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// Wraps a service's routes with the layers every service shares: problem+json for every
/// error, 404 problem for unknown routes, the 64 KiB body limit, the request context, HTTP
/// metrics, and the operator's routes (`/metrics`, `/health/live`, `/health/ready`). With
/// the metrics off there is no HTTP metrics layer and no `/metrics` route (404).
pub fn with_common_layers(routes: Router, env: &Env, db: &Db) -> Router {
    with_layers_keeping_fallback(routes.merge(ops_routes(env.metrics.clone(), db.clone())).fallback(unknown_route), env)
}

/// [`with_common_layers`] for a router that has a fallback of its own (the gateway's),
/// without the operator's routes: the gateway is the public door, and serves them on a
/// port of their own ([`ops_router`]).
pub fn with_layers_keeping_fallback(routes: Router, env: &Env) -> Router {
    let common = Common { ids: env.ids.clone(), metrics: env.metrics.clone(), clock: env.clock.clone() };
    routes.layer(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(common, common_layer))
            .layer(DefaultBodyLimit::max(BODY_SIZE_MAX_BYTES)),
    )
}

/// What the common layer needs.
#[derive(Clone)]
struct Common {
    ids: Ids,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

/// The middleware every service shares, as one layer (each layer of its own would box the
/// request's future once more), outermost first: HTTP metrics (each answer counted by route
/// template, method and status, its duration observed on the clock seam; only with the
/// metrics on), the request context (`trace::in_request_context`), 431 problem+json for
/// headers over [`HEADER_SIZE_MAX_BYTES`], the body read within its deadline
/// ([`read_body`]: 408, 413), and problem+json for any other error response
/// (`json::as_problem`).
async fn common_layer(
    axum::extract::State(common): axum::extract::State<Common>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let measured = common.metrics.http().map(|http| {
        let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| path.as_str()).to_string();
        (http, route, request.method().as_str().to_string(), common.clock.now())
    });
    let clock = common.clock.clone();
    let response = in_request_context(&common.ids, request, |request| async move {
        if let Some(response) = headers_too_large(&request) {
            return response;
        }
        match read_body(clock.as_ref(), request).await {
            Ok(request) => as_problem(next.run(request).await),
            Err(response) => response,
        }
    })
    .await;
    if let Some((http, route, method, started)) = measured {
        http.record(&route, &method, response.status().as_u16(), common.clock.now().duration_since(started));
    }
    response
}

/// The operator's routes alone, with the common layers: what the gateway serves on its
/// admin port.
pub fn ops_router(env: &Env, db: &Db) -> Router {
    with_common_layers(Router::new(), env, db)
}

/// `GET /metrics` (OpenMetrics text; not routed when the metrics are off: 404),
/// `GET /health/live` (the process answers) and `GET /health/ready` (the database is open,
/// migrated and answers a query), whether the metrics are on or off.
fn ops_routes(metrics: Metrics, db: Db) -> Router {
    use axum::routing::get;
    let health = Router::new().route("/health/live", get(live)).route("/health/ready", get(ready)).with_state(db);
    if !metrics.is_on() {
        return health;
    }
    health.merge(Router::new().route("/metrics", get(metrics_text)).with_state(metrics))
}

/// The answer of the health routes.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `UP`: a service that is not answers 503 (ready) or nothing (live).
    status: &'static str,
    /// The database's migration version (`/health/ready` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
}

#[utoipa::path(get, path = "/health/live", operation_id = "live", tag = "operator",
    responses((status = 200, description = "The process serves", body = Health)))]
async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "UP", schema_version: None })
}

#[utoipa::path(get, path = "/health/ready", operation_id = "ready", tag = "operator",
    responses(
        (status = 200, description = "The database is open, migrated and answers", body = Health),
        (status = 503, description = "/problems/service-unavailable: the database is not migrated or does not answer", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn ready(axum::extract::State(db): axum::extract::State<Db>) -> Result<axum::Json<Health>, ApiError> {
    match db.schema_version() {
        Ok(version) if version > 0 => Ok(axum::Json(Health { status: "UP", schema_version: Some(version) })),
        Ok(_) => Err(ApiError::unavailable("the database is not migrated".to_string(), 1)),
        Err(error) => Err(ApiError::unavailable(format!("the database does not answer: {error}"), 1)),
    }
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operator",
    responses(
        (status = 200, description = "The service's own metrics registry", body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 404, description = "/problems/not-found: the metrics are off (`shop --metrics off`)", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn metrics_text(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
) -> impl axum::response::IntoResponse {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], metrics.encode().unwrap_or_default())
}

/// The operator's routes every service serves on its own port (the gateway on its admin port).
#[derive(utoipa::OpenApi)]
#[openapi(paths(live, ready, metrics_text))]
pub struct OperatorApi;

/// Accepts connections until `shutdown` completes; dropping the returned future (a crash)
/// drops every connection with it. `router` carries the common layers
/// ([`with_common_layers`], [`with_layers_keeping_fallback`], [`ops_router`]): they read
/// each request's body within its deadline. hyper's header deadline sleeps on `clock`.
pub async fn serve(
    mut listener: Box<dyn Listener>,
    router: Router,
    limits: ServerLimits,
    spawner: Spawner,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) {
    let timer = ClockTimer::new(clock);
    let permits = Arc::new(Semaphore::new(limits.connection_count_max));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (io, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let timer = timer.clone();
        spawner.spawn_into(&mut connections, async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(timer)
                .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms))
                .max_buf_size(limits.header_buffer_max_bytes.max(8192))
                .serve_connection(TokioIo::new(io), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}
