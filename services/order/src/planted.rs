//! The order service's planted bugs (`platform::bugs`), compiled only with the
//! `planted-bugs` feature: each is a hook's body, taken only while a run plants its bug.

use crate::runner::Unwritten;
use crate::saga::{replay, Event, LogEntry, Step};
use crate::store::{saga_log, KeyRecord};
use crate::Orders;
use contracts::order::IdempotencyKey;
use contracts::saga::{reason, StepResult};
use contracts::Timestamp;
use contracts::{OrderId, UserId};
use platform::bugs::{active, Bug};
use platform::client::{CallError, OutboundRequest, Reply, RetryPolicy};
use platform::storage::Cached;
use platform::trace::RequestContext;
use platform::ApiError;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// `UnavailableAll`, the negative control: every order answered 503, with no fault to
/// explain it.
pub(crate) fn unavailable_all() -> Option<ApiError> {
    active(Bug::UnavailableAll)
        .then(|| ApiError::unavailable("the order service is unavailable", crate::create::RETRY_AFTER_S))
}

/// `SimilarBeforeKey`: whether the early replay of a known key is skipped (the similar
/// order is looked for first).
pub(crate) fn similar_before_key() -> bool {
    active(Bug::SimilarBeforeKey)
}

/// `SimilarBeforeKey` inside the transaction: the similar order, looked for before the key.
pub(crate) fn similar_first(
    similar: impl FnOnce() -> rusqlite::Result<Option<OrderId>>,
) -> rusqlite::Result<Option<OrderId>> {
    if active(Bug::SimilarBeforeKey) {
        similar()
    } else {
        Ok(None)
    }
}

/// `MemoryKeys`: idempotency records kept only in the process's memory.
#[derive(Default)]
pub(crate) struct MemoryKeys(Mutex<BTreeMap<(UserId, String), KeyRecord>>);

impl MemoryKeys {
    /// The key's record from memory (`Some`) while the bug is planted.
    pub(crate) fn find(&self, user_id: UserId, key: &IdempotencyKey) -> Option<Option<KeyRecord>> {
        active(Bug::MemoryKeys).then(|| {
            let memory = self.0.lock().unwrap_or_else(|p| p.into_inner());
            memory.get(&(user_id, key.as_str().to_string())).cloned()
        })
    }

    /// Keeps the key's record in memory instead of the database; whether it did.
    pub(crate) fn keep(&self, user_id: UserId, key: &IdempotencyKey, record: &KeyRecord) -> bool {
        if !active(Bug::MemoryKeys) {
            return false;
        }
        let mut memory = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memory.insert((user_id, key.as_str().to_string()), record.clone());
        true
    }
}

/// `ForgetUnloggedCall`: an unwinding saga compensates only the calls its log shows.
pub(crate) fn forget_unlogged_call() -> bool {
    active(Bug::ForgetUnloggedCall)
}

/// `NoRecovery`: unfinished sagas are not resumed after a restart.
pub(crate) fn no_recovery() -> bool {
    active(Bug::NoRecovery)
}

/// `ForgetStockRelease`: a saga unwinding for want of a delivery slot "needs" no stock
/// release; the compensation is logged acknowledged (with the next move) without being sent.
pub(crate) fn forget_stock_release(
    orders: &Orders,
    order_id: OrderId,
    step: Step,
    now: Timestamp,
) -> Option<Result<Unwritten, rusqlite::Error>> {
    if !active(Bug::ForgetStockRelease) || step != Step::Reserve {
        return None;
    }
    let state = match orders.db.read(|c| saga_log(c, order_id)) {
        Ok(entries) => replay(&entries).ok()?,
        Err(error) => return Some(Err(error)),
    };
    (state.compensating.as_deref() == Some(reason::NO_DELIVERY_SLOT)).then(|| Ok(acknowledged(step, "skipped", now)))
}

/// `CompensationOnce`: one failed round and the compensation is written off.
pub(crate) fn compensation_once(orders: &Orders, step: Step) -> Option<Unwritten> {
    active(Bug::CompensationOnce).then(|| acknowledged(step, "given up", orders.env.clock.now_utc()))
}

/// The compensation of `step` logged acknowledged (with the saga's next move) with `detail`.
fn acknowledged(step: Step, detail: &str, at: Timestamp) -> Unwritten {
    Unwritten { entries: vec![LogEntry::compensation(step, Event::Acknowledged, detail)], status: None, at: Some(at) }
}

/// How long the planted `StatusBackwards` bug keeps a late attempt alive.
const LATE_REPLY_WAIT_MS: u64 = 30_000;

/// `StatusBackwards`: one attempt kept alive past its deadline, whose late success is
/// written to the order's status without the forward-only check. `None` unless planted.
pub(crate) async fn status_backwards(
    orders: &Orders,
    order_id: OrderId,
    step: Step,
    request: &OutboundRequest,
    context: &RequestContext,
) -> Option<Result<Reply, CallError>> {
    if !active(Bug::StatusBackwards) {
        return None;
    }
    let (answer, waiting) = tokio::sync::oneshot::channel();
    let (client, db, clock) = (orders.client.clone(), orders.db.clone(), orders.env.clock.clone());
    let (addr, context, request) = (orders.peer(step.participant()).to_string(), context.clone(), request.clone());
    orders.env.spawn(async move {
        let reply = client.send(&addr, request, &context, RetryPolicy::once(LATE_REPLY_WAIT_MS)).await;
        let Err(reply) = answer.send(reply) else { return };
        let succeeded = reply.and_then(|r| r.json::<StepResult>()).is_ok_and(|r| r.success);
        if succeeded {
            let now = platform::sql::time_text(clock.now_utc());
            let _ = db
                .write(|tx| {
                    tx.execute_cached(
                        "UPDATE orders SET status = ?1, updated_at = ?2 WHERE id = ?3",
                        rusqlite::params![step.status_after().as_str(), now, order_id.to_string()],
                    )
                })
                .await;
        }
    });
    let deadline = Duration::from_millis(orders.config.action_retry.attempt_timeout_ms);
    Some(match orders.env.clock.timeout(deadline, waiting).await {
        Ok(Ok(reply)) => reply,
        _ => Err(CallError::Timeout {
            addr: orders.peer(step.participant()).to_string(),
            timeout_ms: deadline.as_millis() as u64,
        }),
    })
}
