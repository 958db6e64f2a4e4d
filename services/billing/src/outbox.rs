//! The outbox relay: delivers billing's payment events to the notification service until
//! each is acknowledged, oldest first, a bounded batch at a time.

use crate::Billing;
use contracts::notification::NotificationEvent;
use http::Method;
use platform::client::{OutboundRequest, RetryPolicy};
use platform::trace::RequestContext;
use rusqlite::params;
use std::sync::Arc;
use std::time::Duration;

pub async fn relay(billing: Arc<Billing>) {
    loop {
        let delivered_all = deliver_batch(&billing).await;
        if delivered_all {
            let wait = billing.env.clock.sleep(Duration::from_millis(billing.config.outbox_poll_interval_ms));
            tokio::select! {
                biased;
                () = billing.outbox_wakeup.notified() => {}
                () = wait => {}
            }
        } else {
            billing.env.clock.sleep(Duration::from_millis(billing.config.outbox_poll_interval_ms)).await;
        }
    }
}

/// Returns whether everything pending was delivered.
async fn deliver_batch(billing: &Billing) -> bool {
    let batch: Result<Vec<(i64, String)>, rusqlite::Error> = billing.db.read(|c| {
        let mut statement = c.prepare("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?1")?;
        let rows = statement.query_map([billing.config.outbox_batch_size_max], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    });
    let Ok(batch) = batch else {
        return false;
    };
    for (seq, text) in batch {
        let Ok(event) = serde_json::from_str::<NotificationEvent>(&text) else {
            tracing::error!(seq, "undecodable outbox event left in place");
            return false;
        };
        let request = OutboundRequest::new(Method::POST, "/api/v1/notifications/events").json(&event).idempotent(true);
        let context = RequestContext::background(&billing.env.ids);
        let policy = RetryPolicy::once(billing.config.notification_call_timeout_ms);
        let delivered = billing
            .client
            .send(&billing.notification_addr, request, &context, policy)
            .await
            .and_then(|reply| reply.success())
            .is_ok();
        let outcome = billing.db.write(|tx| {
            if delivered {
                tx.execute("DELETE FROM outbox WHERE seq = ?1", params![seq])
            } else {
                tx.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?1", params![seq])
            }
        });
        tracing::debug!(seq, delivered, order_id = %event.order_id, kind = event.kind.as_str(), "outbox delivery");
        if !delivered || outcome.is_err() {
            return false;
        }
    }
    true
}
