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
use contracts::notification::{NotificationEvent, EVENT_BATCH_MAX};
use contracts::Timestamp;
use http::Method;
use rusqlite::{params, Connection};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where a relay delivers its batches: the notification service records a batch in one
/// transaction (one commit for all of its events, and one request). Its single-event
/// intake (`/api/v1/notifications/events`) stays for other callers.
pub const NOTIFICATION_BATCH_PATH: &str = "/api/v1/notifications/events/batch";

/// The most bytes of events' JSON one batch carries: under the notification service's body
/// limit ([`crate::json::BODY_SIZE_MAX_BYTES`], 64 KiB) with room to spare.
const BATCH_BYTES_MAX: usize = 48 * 1024;

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
    /// How long a woken relay waits for more events before it reads its batch.
    pub linger_ms: u64,
}

pub const RELAY_CONFIG: RelayConfig =
    RelayConfig { poll_interval_ms: 500, batch_size_max: 32, call_timeout_ms: 1_000, linger_ms: 5 };

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
                    () = self.wakeup.notified() => self.env.clock.sleep(Duration::from_millis(self.config.linger_ms)).await,
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

    /// Delivers the oldest pending events, up to a batch, in one request; returns whether
    /// every event it read was delivered (an undecodable one stops the batch before it and
    /// stays in place, as does every event of a batch that was not acknowledged).
    async fn deliver_batch(&self) -> bool {
        let metrics = self.env.metrics.outbox();
        // The depth and age gauges' query is all they need: with the metrics off it is not run.
        if let Some(metrics) = metrics {
            self.set_gauges(metrics);
        }
        let limit = self.config.batch_size_max.min(EVENT_BATCH_MAX as u32);
        let pending: Result<Vec<(i64, String, i64)>, rusqlite::Error> = self.db.read(|c| {
            let mut statement = c.prepare_cached("SELECT seq, event, attempts FROM outbox ORDER BY seq LIMIT ?1")?;
            let rows = statement.query_map([limit], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
            rows.collect()
        });
        let pending = match pending {
            Ok(pending) => pending,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox");
                return false;
            }
        };
        let mut batch = Batch::default();
        let mut stopped = false;
        for (seq, text, attempts) in pending {
            let Ok(event) = serde_json::from_str::<NotificationEvent>(&text) else {
                tracing::error!(seq, "undecodable outbox event left in place");
                stopped = true;
                break;
            };
            // The request body is the events' stored texts, joined: it stays under the
            // notification service's body limit (the rest waits for the next batch).
            if !batch.events.is_empty() && batch.bytes + text.len() + 1 > BATCH_BYTES_MAX {
                break;
            }
            batch.bytes += text.len() + 1;
            batch.seqs.push(seq);
            batch.redelivered |= attempts > 0;
            batch.events.push(event);
        }
        if batch.events.is_empty() {
            return !stopped;
        }
        let request = OutboundRequest::new(Method::POST, NOTIFICATION_BATCH_PATH).json(&batch.events).idempotent(true);
        let context = RequestContext::background(&self.env.ids);
        let policy = RetryPolicy::once(self.config.call_timeout_ms);
        let reply = self.client.send(&self.notification_addr, request, &context, policy).await;
        let delivered = reply.and_then(|reply| reply.success()).is_ok();
        // Whether the events leave the outbox: once delivered.
        let done = delivered;
        #[cfg(feature = "planted-bugs")]
        let done = done || crate::planted::direct_notification(self);
        if delivered {
            crate::crash_point::here(crate::crash_point::CrashPoint::OutboxDelivered).await;
        }
        let recorded = self
            .db
            .write(|tx| {
                for seq in &batch.seqs {
                    if done {
                        tx.execute_cached("DELETE FROM outbox WHERE seq = ?1", params![seq])?;
                    } else {
                        tx.execute_cached("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?1", params![seq])?;
                    }
                }
                Ok::<(), rusqlite::Error>(())
            })
            .await;
        for event in &batch.events {
            tracing::debug!(delivered, order_id = %event.order_id, kind = event.kind.as_str(), "outbox delivery");
        }
        if let Some(metrics) = metrics {
            let count = batch.events.len() as u64;
            if delivered {
                metrics.deliveries.inc_by(count);
            } else {
                metrics.failures.inc_by(count);
            }
        }
        if !done || recorded.is_err() {
            return false;
        }
        if delivered && batch.redelivered {
            crate::probe::hit(crate::probe::Probe::OutboxRedelivered);
        }
        !stopped
    }
}

/// The events one request delivers, with their outbox rows.
#[derive(Default)]
struct Batch {
    seqs: Vec<i64>,
    events: Vec<NotificationEvent>,
    /// The events' stored JSON, with a separator each.
    bytes: usize,
    /// Whether any of them was tried before.
    redelivered: bool,
}
