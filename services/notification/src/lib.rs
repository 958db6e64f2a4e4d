//! The notification service: idempotent intake of events (one per order and type, however
//! often delivered) and each shopper's own listing.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::notification::{Notification, NotificationEvent, NotificationType};
use contracts::Money;
use platform::auth::{Auth, Service, User};
use platform::json::Json;
use platform::net::Listener;
use platform::server::{serve, with_common_layers, SERVER_LIMITS};
use platform::sql::{time_at, time_text, uuid_at};
use platform::storage::{Db, Migration};
use platform::{ApiError, Deps, Env};
use rusqlite::params;
use std::future::Future;
use std::sync::Arc;

pub fn migrations() -> Vec<Migration> {
    vec![Migration {
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
    }]
}

pub const NOTIFICATIONS_LISTED_MAX: i64 = 1000;
pub const MESSAGE_LENGTH_MAX: usize = 1000;

pub struct Notifications {
    env: Env,
    db: Db,
}

type Shared = axum::extract::State<Arc<Notifications>>;

pub async fn run(deps: Deps, listener: Box<dyn Listener>, shutdown: impl Future<Output = ()>) {
    let spawner = deps.env.spawner;
    let auth = Arc::new(Auth::new(deps.env.clock.clone(), deps.secrets.clone(), "notification"));
    let state = Arc::new(Notifications { env: deps.env.clone(), db: deps.db });
    let routes = Router::new()
        .route("/api/v1/notifications", get(list))
        .route("/api/v1/notifications/events", post(intake))
        .layer(Extension(auth))
        .with_state(state);
    serve(
        listener,
        with_common_layers(routes, deps.env.ids.clone()),
        SERVER_LIMITS,
        spawner,
        deps.env.clock.clone(),
        shutdown,
    )
    .await;
}

/// Stores the event once per (order, type); repeats are acknowledged and change nothing.
async fn intake(state: Shared, _caller: Service, Json(event): Json<NotificationEvent>) -> Result<StatusCode, ApiError> {
    if event.message.len() > MESSAGE_LENGTH_MAX {
        return Err(ApiError::bad_request("invalid-message", "message is over 1000 characters"));
    }
    let id = state.env.ids.uuid();
    let now = time_text(state.env.clock.now_utc());
    let inserted = state.db.write(|tx| {
        tx.execute(
            "INSERT OR IGNORE INTO notifications (id, user_id, order_id, type, amount_cents, message, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id.to_string(),
                event.user_id.to_string(),
                event.order_id.to_string(),
                event.kind.as_str(),
                event.amount.map(Money::cents),
                event.message,
                now
            ],
        )
    })?;
    tracing::info!(order_id = %event.order_id, kind = event.kind.as_str(), new = inserted == 1, "notification");
    Ok(if inserted == 1 { StatusCode::CREATED } else { StatusCode::OK })
}

async fn list(state: Shared, User(user_id): User) -> Result<axum::Json<Vec<Notification>>, ApiError> {
    let listed = state.db.read(|c| {
        let mut statement = c.prepare(
            "SELECT id, type, order_id, amount_cents, message, created_at FROM notifications
             WHERE user_id = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(params![user_id.to_string(), NOTIFICATIONS_LISTED_MAX], |row| {
            let kind: String = row.get(1)?;
            let amount: Option<i64> = row.get(3)?;
            Ok(Notification {
                id: uuid_at(row, 0)?,
                kind: NotificationType::parse(&kind).unwrap_or(NotificationType::OrderFailed),
                order_id: uuid_at(row, 2)?,
                amount: amount.map(Money::from_cents),
                message: row.get(4)?,
                created_at: time_at(row, 5)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
    })?;
    Ok(axum::Json(listed))
}
