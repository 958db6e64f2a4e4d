//! A transactional outbox: events are written in the same transaction as the change they
//! report, and a relay delivers them to the notification service until acknowledged, oldest
//! first, a bounded batch at a time.

use crate::client::{OutboundRequest, RetryPolicy};
use crate::internal::InternalClient;
use crate::sql::{optional_time_at, stored_time, time_text};
use crate::storage::Cached;
use crate::storage::{Db, Migration};
use crate::trace::RequestContext;
use crate::Env;
use contracts::notification::NotificationEvent;
use contracts::Timestamp;
use http::Method;
use rusqlite::{params, Connection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub const NOTIFICATION_INTAKE_PATH: &str = "/api/v1/notifications/events";

pub fn migration(version: u32) -> Migration {
    Migration {
        version,
        sql: "
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );",
    }
}

/// Adds `event` to the outbox; an event without its own time gets `now`, as stored.
pub fn enqueue(connection: &Connection, event: &NotificationEvent, now: Timestamp) -> rusqlite::Result<()> {
    let event = NotificationEvent { occurred_at: event.occurred_at.or(Some(stored_time(now))), ..event.clone() };
    let text = serde_json::to_string(&event).expect("wire types serialize");
    connection
        .execute_cached("INSERT INTO outbox (event, created_at) VALUES (?1, ?2)", params![text, time_text(now)])?;
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub struct RelayConfig {
    /// How often the relay looks for events when nobody wakes it.
    pub poll_interval_ms: u64,
    pub batch_size_max: u32,
    pub call_timeout_ms: u64,
}

pub const RELAY_CONFIG: RelayConfig = RelayConfig { poll_interval_ms: 500, batch_size_max: 32, call_timeout_ms: 1_000 };

pub struct Relay {
    pub env: Env,
    pub db: Db,
    pub client: InternalClient,
    pub notification_addr: String,
    pub config: RelayConfig,
    /// Notified after a transaction that enqueued events, to deliver them without waiting.
    pub wakeup: Arc<Notify>,
}

impl Relay {
    /// Runs forever; the service stops it by dropping (aborting) its task.
    pub async fn run(self) {
        loop {
            let delivered_all = self.deliver_batch().await;
            let wait = self.env.clock.sleep(Duration::from_millis(self.config.poll_interval_ms));
            if delivered_all {
                tokio::select! {
                    biased;
                    () = self.wakeup.notified() => {}
                    () = wait => {}
                }
            } else {
                wait.await;
            }
        }
    }

    /// Seconds since `created_at` on the clock seam's wall time; 0 for none.
    fn age_seconds(&self, created_at: Option<Timestamp>) -> f64 {
        created_at.map_or(0.0, |created| {
            let age = self.env.clock.now_utc().signed_duration_since(created);
            age.num_milliseconds().max(0) as f64 / 1000.0
        })
    }

    /// Sets the depth and age gauges from the outbox. A read that fails (a stored time that
    /// does not parse) is logged and leaves them as they were; delivery goes on.
    fn set_gauges(&self, metrics: &crate::metrics::Outbox) {
        let summary = self.db.read(|c| {
            c.query_row_cached("SELECT COUNT(*), MIN(created_at) FROM outbox", [], |row| {
                Ok((row.get::<_, i64>(0)?, optional_time_at(row, 1)?))
            })
        });
        match summary {
            Ok((depth, oldest)) => {
                metrics.depth.set(depth);
                metrics.oldest_age_seconds.set(self.age_seconds(oldest));
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox's depth and age; the gauges keep their values")
            }
        }
    }

    /// Returns whether everything pending was delivered.
    async fn deliver_batch(&self) -> bool {
        let metrics = self.env.metrics.outbox();
        // The depth and age gauges' query is all they need: with the metrics off it is not run.
        if let Some(metrics) = metrics {
            self.set_gauges(metrics);
        }
        let batch: Result<Vec<(i64, String, i64)>, rusqlite::Error> = self.db.read(|c| {
            let mut statement = c.prepare_cached("SELECT seq, event, attempts FROM outbox ORDER BY seq LIMIT ?1")?;
            let rows =
                statement.query_map([self.config.batch_size_max], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        });
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox");
                return false;
            }
        };
        for (seq, text, attempts) in batch {
            let Ok(event) = serde_json::from_str::<NotificationEvent>(&text) else {
                tracing::error!(seq, "undecodable outbox event left in place");
                return false;
            };
            let request = OutboundRequest::new(Method::POST, NOTIFICATION_INTAKE_PATH).json(&event).idempotent(true);
            let context = RequestContext::background(&self.env.ids);
            let policy = RetryPolicy::once(self.config.call_timeout_ms);
            let reply = self.client.send(&self.notification_addr, request, &context, policy).await;
            let delivered = reply.and_then(|reply| reply.success()).is_ok();
            // Whether the event leaves the outbox: once delivered.
            let done = delivered;
            #[cfg(feature = "planted-bugs")]
            let done = done || crate::planted::direct_notification(self);
            if delivered {
                crate::crash_point::here(crate::crash_point::CrashPoint::OutboxDelivered).await;
            }
            let recorded = self
                .db
                .write(|tx| {
                    if done {
                        tx.execute_cached("DELETE FROM outbox WHERE seq = ?1", params![seq])
                    } else {
                        tx.execute_cached("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?1", params![seq])
                    }
                })
                .await;
            tracing::debug!(seq, delivered, order_id = %event.order_id, kind = event.kind.as_str(), "outbox delivery");
            if let Some(metrics) = metrics {
                if delivered {
                    metrics.deliveries.inc();
                } else {
                    metrics.failures.inc();
                }
            }
            if !done || recorded.is_err() {
                return false;
            }
            if delivered && attempts > 0 {
                crate::probe::hit(crate::probe::Probe::OutboxRedelivered);
            }
        }
        true
    }
}
