//! The notification service: idempotent intake of events (one per order and type, however
//! often delivered) and each shopper's own listing.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::notification::{Notification, NotificationEvent, NotificationType, RecordedEvents, EVENT_BATCH_MAX};
use contracts::{Money, NotificationId, ProblemType, Timestamp, UserId};
use platform::auth::{Auth, Service, User};
use platform::json::Json;
use platform::net::Listener;
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::sql::{parsed_at, time_at, time_text};
use platform::storage::Cached;
use platform::storage::{Db, Migration};
use platform::{ApiError, Deps, Env};
use rusqlite::params;
use std::future::Future;
use std::sync::Arc;

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            sql: "
        CREATE TABLE notifications (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            order_id TEXT NOT NULL,
            type TEXT NOT NULL,
            amount_cents INTEGER,
            message TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (order_id, type)
        );
        CREATE INDEX notifications_by_user ON notifications(user_id, seq);",
        },
        Migration {
            version: 2,
            // The event's own time (its source's transaction); NULL for events stored before.
            sql: "ALTER TABLE notifications ADD COLUMN occurred_at TEXT;",
        },
    ]
}

pub const NOTIFICATIONS_LISTED_MAX: i64 = 1000;
pub const MESSAGE_LENGTH_MAX: usize = 1000;

/// Whether a message is within [`MESSAGE_LENGTH_MAX`] Unicode characters (not bytes, as
/// docs/API.md counts every text field): the single intake and the batch intake alike.
fn message_fits(message: &str) -> bool {
    message.chars().count() <= MESSAGE_LENGTH_MAX
}

fn overlong_message() -> ApiError {
    ApiError::bad_request(ProblemType::InvalidMessage, format!("a message is over {MESSAGE_LENGTH_MAX} characters"))
}

/// What the notification service is told at start: nothing yet.
#[derive(Clone, Copy, Debug)]
pub struct Config {}

pub const CONFIG: Config = Config {};

pub struct Notifications {
    env: Env,
    db: Db,
}

type Shared = axum::extract::State<Arc<Notifications>>;

/// Runs the notification service on `listener` until `shutdown`.
pub async fn run(deps: Deps, _config: Config, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let spawner = deps.env.spawner;
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), contracts::ServiceName::Notification));
    let state = Arc::new(Notifications { env: deps.env.clone(), db: deps.db.clone() });
    let routes = Router::new()
        .route("/api/v1/notifications", get(list))
        .route("/api/v1/notifications/events", post(intake))
        .route("/api/v1/notifications/events/batch", post(intake_batch))
        .layer(Extension(auth))
        .with_state(state);
    serve(
        listener,
        with_common_layers(routes, &deps.env, &deps.db),
        SERVER_LIMITS,
        spawner,
        deps.env.clock.clone(),
        shutdown,
    )
    .await;
}

/// Stores the event once per (order, type); repeats are acknowledged and change nothing.
#[utoipa::path(post, path = "/api/v1/notifications/events", operation_id = "recordEvent", tag = "notification (internal)", security(("serviceToken" = [])),
    request_body = NotificationEvent,
    responses(
        (status = 201, description = "A new event, recorded"),
        (status = 200, description = "The event was recorded before (an outbox's repeat)"),
        (status = 400, description = "/problems/invalid-message: over 1,000 characters", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn intake(state: Shared, _caller: Service, Json(event): Json<NotificationEvent>) -> Result<StatusCode, ApiError> {
    if !message_fits(&event.message) {
        return Err(overlong_message());
    }
    let now = state.env.clock.now_utc();
    let id: NotificationId = state.env.ids.id_at(now);
    let inserted = state.db.write(|tx| store(tx, id, &event, now)).await?;
    tracing::info!(order_id = %event.order_id, kind = event.kind.as_str(), new = inserted == 1, "notification");
    Ok(if inserted == 1 { StatusCode::CREATED } else { StatusCode::OK })
}

/// Stores a batch of events (an outbox relay's), each as [`intake`] would, in one
/// transaction: all of them or, on failure, none. Whole or refused: a batch that is empty,
/// over [`EVENT_BATCH_MAX`] or holds an overlong message is refused, nothing stored.
#[utoipa::path(post, path = "/api/v1/notifications/events/batch", operation_id = "recordEvents", tag = "notification (internal)", security(("serviceToken" = [])),
    request_body = Vec<NotificationEvent>,
    responses(
        (status = 200, description = "Every event recorded, now or before (an outbox's repeat); the body counts the new ones", body = RecordedEvents),
        (status = 400, description = "/problems/invalid-body: no event or over 32; /problems/invalid-message: a message over 1,000 characters", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn intake_batch(
    state: Shared,
    _caller: Service,
    Json(events): Json<Vec<NotificationEvent>>,
) -> Result<axum::Json<RecordedEvents>, ApiError> {
    if events.is_empty() || events.len() > EVENT_BATCH_MAX {
        return Err(ApiError::bad_request(
            ProblemType::InvalidBody,
            format!("a batch holds 1 to {EVENT_BATCH_MAX} events"),
        ));
    }
    if !events.iter().all(|event| message_fits(&event.message)) {
        return Err(overlong_message());
    }
    let now = state.env.clock.now_utc();
    let stamped: Vec<(NotificationId, &NotificationEvent)> =
        events.iter().map(|e| (state.env.ids.id_at(now), e)).collect();
    let inserted = state
        .db
        .write(|tx| {
            stamped.iter().map(|(id, event)| store(tx, *id, event, now)).collect::<rusqlite::Result<Vec<usize>>>()
        })
        .await?;
    for (event, inserted) in events.iter().zip(&inserted) {
        tracing::info!(order_id = %event.order_id, kind = event.kind.as_str(), new = *inserted == 1, "notification");
    }
    Ok(axum::Json(RecordedEvents { created: inserted.iter().sum() }))
}

/// Stores one event unless its (order, type) is there already; the number of rows added.
fn store(
    tx: &rusqlite::Connection,
    id: NotificationId,
    event: &NotificationEvent,
    now: Timestamp,
) -> rusqlite::Result<usize> {
    tx.execute_cached(
            "INSERT OR IGNORE INTO notifications (id, user_id, order_id, type, amount_cents, message, created_at, occurred_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id.to_string(),
                event.user_id.to_string(),
                event.order_id.to_string(),
                event.kind.as_str(),
                event.amount.map(Money::cents),
                event.message,
                time_text(now),
                event.occurred_at.map(time_text),
            ],
        )
}

/// A shopper's notifications, newest first, in the order their facts happened, whichever
/// outbox delivered them and however late: orders by the time of their first event (on its
/// source's clock), newest order first, and one order's events by the saga's sequence, last
/// step first (`ORDER_CONFIRMED`/`ORDER_FAILED`, then `PAYMENT_REFUNDED`, then
/// `PAYMENT_DEBITED`), so clocks that disagree between billing and order never invert a
/// saga. `createdAt` is the event's own time.
const LIST_SQL: &str = "
    WITH mine AS (
        SELECT seq, id, type, order_id, amount_cents, message, COALESCE(occurred_at, created_at) AS at
        FROM notifications WHERE user_id = ?1
    ), orders AS (
        SELECT order_id, MIN(at) AS first_at, MIN(seq) AS first_seq FROM mine GROUP BY order_id
    )
    SELECT mine.id, mine.type, mine.order_id, mine.amount_cents, mine.message, mine.at
    FROM mine JOIN orders USING (order_id)
    ORDER BY orders.first_at DESC, orders.first_seq DESC,
        CASE mine.type WHEN 'PAYMENT_DEBITED' THEN 1 WHEN 'PAYMENT_REFUNDED' THEN 2 ELSE 3 END DESC
    LIMIT ?2";

#[utoipa::path(get, path = "/api/v1/notifications", operation_id = "listNotifications", tag = "notification", security(("userToken" = [])),
    responses((status = 200, description = "The user's notifications: orders newest first, one order's events last step first (at most 1,000)", body = Vec<Notification>)))]
async fn list(state: Shared, User(user_id): User) -> Result<axum::Json<Vec<Notification>>, ApiError> {
    Ok(axum::Json(state.db.read(|c| listed(c, user_id))?))
}

fn listed(c: &rusqlite::Connection, user_id: UserId) -> rusqlite::Result<Vec<Notification>> {
    {
        let mut statement = c.prepare_cached(LIST_SQL)?;
        let rows = statement.query_map(params![user_id.to_string(), NOTIFICATIONS_LISTED_MAX], |row| {
            let amount: Option<i64> = row.get(3)?;
            Ok(Notification {
                id: row.get(0)?,
                kind: parsed_at(row, 1, NotificationType::parse)?,
                order_id: row.get(2)?,
                amount: amount.map(Money::from_cents),
                message: row.get(4)?,
                created_at: time_at(row, 5)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    }
}

/// The notification service's routes: the list (public) and the outboxes' intake.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, intake, intake_batch))]
pub struct Api;

/// The service's OpenAPI document: every route it serves, internal ones included.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <Api as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::OrderId;

    fn at(minute: i64) -> contracts::Timestamp {
        chrono::DateTime::from_timestamp(1_900_000_000 + minute * 60, 0).unwrap()
    }

    /// Events arrive in any order (two outboxes, an outage, clocks that disagree); the
    /// shopper sees orders newest first and each order's events in the saga's order.
    #[test]
    fn the_listing_follows_the_facts_not_the_deliveries() {
        let db = Db::open_memory(&migrations()).unwrap();
        let user = UserId::from_u128(1);
        let (older, newer) = (OrderId::from_u128(10), OrderId::from_u128(20));
        let event = |kind, order_id, minute| NotificationEvent {
            kind,
            order_id,
            user_id: user,
            amount: Some(Money::from_cents(100)),
            message: String::new(),
            occurred_at: Some(at(minute)),
        };
        // Delivered in this order: the order service's ORDER_FAILED first (its clock is
        // behind billing's: it says minute 2, the refund it followed says minute 3), then
        // the newer order, then billing's outbox after an outage.
        let deliveries = [
            event(NotificationType::OrderFailed, older, 2),
            event(NotificationType::PaymentDebited, newer, 5),
            event(NotificationType::OrderConfirmed, newer, 6),
            event(NotificationType::PaymentDebited, older, 1),
            event(NotificationType::PaymentRefunded, older, 3),
            // A repeat changes nothing.
            event(NotificationType::PaymentDebited, older, 1),
        ];
        for (index, delivered) in deliveries.iter().enumerate() {
            let now = at(30 + index as i64);
            db.write_blocking(|tx| store(tx, NotificationId::from_u128(100 + index as u128), delivered, now)).unwrap();
        }
        let shown = db.read(|c| listed(c, user)).unwrap();
        let seen: Vec<(OrderId, NotificationType)> = shown.iter().map(|n| (n.order_id, n.kind)).collect();
        assert_eq!(
            seen,
            [
                (newer, NotificationType::OrderConfirmed),
                (newer, NotificationType::PaymentDebited),
                (older, NotificationType::OrderFailed),
                (older, NotificationType::PaymentRefunded),
                (older, NotificationType::PaymentDebited),
            ]
        );
        assert_eq!(shown[4].created_at, at(1), "createdAt is the event's own time");
        assert!(db.read(|c| listed(c, UserId::from_u128(2))).unwrap().is_empty(), "only the user's own");
    }
}
