//! Performs the saga's moves: calls the participants with deadlines and bounded retries,
//! logs every call's start (committed before its answer is used; the call goes out while it
//! commits: `act`) and every answer after (with the next move: `Unwritten`), and finishes the
//! order.

use crate::saga::{next_move, replay, ActionOutcome, Event, LogEntry, Move, Step, REJECTED_PREFIX, STEPS};
use crate::store::{advance_status, log_saga, order, saga_log, trace_id_of};
use crate::Orders;
use contracts::notification::{NotificationEvent, NotificationType};
use contracts::order::{Order, OrderStatus};
use contracts::saga::{reason, BookRequest, ReserveItem, ReserveRequest, StepResult, WithdrawRequest};
use contracts::ServiceName;
use contracts::{OrderId, ProductId, Timestamp};
use http::Method;
use platform::client::{CallError, OutboundRequest, Reply, RetryPolicy};
use platform::metrics::{ReasonLabels, StepLabels, StepPhase};
use platform::outbox::enqueue;
use platform::probe::{self, Probe};
use platform::trace::RequestContext;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Upper bound on moves of one saga: 3 actions, 3 compensations, a finish, with room.
const SAGA_MOVES_MAX: u32 = 16;

impl Orders {
    /// Starts the order's saga unless it is running; returns a receiver that turns `true`
    /// when it finishes. `None` when the concurrency limit is reached (recovery retries).
    pub fn start_saga(self: &Arc<Self>, order_id: OrderId) -> Option<watch::Receiver<bool>> {
        self.start(order_id, false)
    }

    /// [`Orders::start_saga`] from recovery: a saga it starts is a resumed one.
    pub(crate) fn resume_saga(self: &Arc<Self>, order_id: OrderId) -> Option<watch::Receiver<bool>> {
        self.start(order_id, true)
    }

    fn start(self: &Arc<Self>, order_id: OrderId, resumed: bool) -> Option<watch::Receiver<bool>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = running.get(&order_id) {
            return Some(done.clone());
        }
        if running.len() >= self.config.saga_concurrency_max {
            return None;
        }
        let (sender, receiver) = watch::channel(false);
        running.insert(order_id, receiver.clone());
        if resumed {
            probe::hit(Probe::SagaResumed);
            if let Some(metrics) = self.env.metrics.orders() {
                metrics.sagas_recovered.inc();
            }
        }
        let orders = self.clone();
        self.env.spawn(async move {
            if resumed {
                // Recovery has claimed the saga and not moved it yet.
                platform::crash_point::here(platform::crash_point::CrashPoint::RecoveryResumed).await;
            }
            orders.run_saga(order_id, resumed).await;
            orders.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&order_id);
            let _ = sender.send(true);
        });
        Some(receiver)
    }

    /// Runs the saga to its end. A saga started by the request that created its order
    /// (`resumed` false) finds its first call logged as started by that request's
    /// transaction ([`begin`]) and sends it without a write of its own.
    async fn run_saga(&self, order_id: OrderId, resumed: bool) {
        // The order and its log are read once. From then on this runner is the log's only
        // writer (one runner per order: `start`), so it keeps the log here as it writes it,
        // the last move's answer included before it is written (`Unwritten`).
        let loaded = self.db.read(|c| {
            let trace_id = trace_id_of(c, order_id).ok().flatten();
            Ok::<_, rusqlite::Error>((order(c, order_id)?, saga_log(c, order_id)?, trace_id))
        });
        let Ok((Some(order), mut log, trace_id)) = loaded else {
            tracing::error!(%order_id, "saga cannot read its order; recovery will retry");
            return;
        };
        let context = RequestContext {
            request_id: format!("saga-{order_id}"),
            trace_id: trace_id.unwrap_or_else(|| self.env.ids.hex(16)),
            parent_span_id: None,
        };
        // A resumed saga says so with its first write (`Event::Resumed`: the runner before
        // may have sent a call whose start it never saw commit).
        let mut unwritten = Unwritten::default();
        if resumed {
            unwritten.entries.push(LogEntry::saga(Event::Resumed, ""));
            unwritten.at = Some(self.env.clock.now_utc());
            log.extend(unwritten.entries.iter().cloned());
        }
        let mut fresh = !resumed;
        for _ in 0..SAGA_MOVES_MAX {
            let state = match replay(&log) {
                Ok(state) => state,
                Err(error) => {
                    tracing::error!(%order_id, %error, "saga cannot read its log; recovery will retry");
                    return;
                }
            };
            let earlier = std::mem::take(&mut unwritten);
            // The first move of a fresh saga is its first call, whose start its order's
            // transaction wrote; a resumed saga logs the start of every call it sends.
            let started_with_order = std::mem::take(&mut fresh);
            // What the move writes after `earlier` (if anything), and the answer it leaves
            // unwritten.
            let result = match next_move(&state) {
                // Only the finish writes `Finished`, and it leaves nothing unwritten.
                Move::Done => return,
                Move::Act(step) => {
                    let logged = started_with_order
                        && earlier.at.is_none()
                        && state.actions.get(&step) == Some(&ActionOutcome::Started);
                    let start = (!logged).then(|| LogEntry::action(step, Event::Started, ""));
                    self.act(&order, step, &context, earlier, logged).await.map(|answer| (start, answer))
                }
                Move::Compensate(step) => {
                    if !state.actions.contains_key(&step) {
                        probe::hit(Probe::UnloggedCallCompensated);
                    }
                    self.compensate(order_id, step, &context, earlier)
                        .await
                        .map(|answer| (Some(LogEntry::compensation(step, Event::Started, "")), answer))
                }
                Move::Finish { status, error_message } => self
                    .finish(&order, status, error_message.as_deref(), earlier)
                    .await
                    .map(|()| (Some(LogEntry::saga(Event::Finished, status.as_str())), Unwritten::default())),
            };
            match result {
                Ok((written, answer)) => {
                    log.extend(written);
                    log.extend(answer.entries.iter().cloned());
                    unwritten = answer;
                }
                Err(error) => {
                    // Nothing of the failed transaction took effect; recovery resumes the
                    // saga from its log (a call logged as started and not answered is sent
                    // again, a compensation logged as started and not acknowledged too).
                    if platform::storage::is_transient(&error) {
                        tracing::warn!(%order_id, %error, "saga could not record a move; recovery will retry");
                    } else {
                        tracing::error!(%order_id, %error, "saga could not record a move; recovery will retry");
                    }
                    return;
                }
            }
        }
        tracing::error!(%order_id, "saga exceeded its move budget");
    }

    pub(crate) fn peer(&self, participant: ServiceName) -> &str {
        self.peers.address(participant)
    }

    fn action_request(&self, order: &Order, step: Step) -> OutboundRequest {
        let request = OutboundRequest::new(Method::POST, step.action_path()).idempotent(true);
        match step {
            Step::Withdraw => {
                request.json(&WithdrawRequest { order_id: order.id, user_id: order.user_id, amount: order.price })
            }
            Step::Reserve => {
                let mut merged: BTreeMap<ProductId, i64> = BTreeMap::new();
                for item in &order.items {
                    *merged.entry(item.product_id).or_default() += item.quantity;
                }
                let items =
                    merged.into_iter().map(|(product_id, quantity)| ReserveItem { product_id, quantity }).collect();
                request.json(&ReserveRequest { order_id: order.id, items })
            }
            Step::Book => request.json(&BookRequest {
                order_id: order.id,
                user_id: order.user_id,
                address: order.delivery_info.address.clone(),
                preferred_time_slot: order.delivery_info.preferred_time_slot,
            }),
        }
    }

    /// Calls the participant, and unless the step's start is `logged` already (and nothing
    /// is unwritten), writes `earlier` with that start while the call goes out: the answer
    /// is used, and written, only once that transaction has committed. A runner that stops
    /// before it commits (a crash, a failed write) may thus have sent a call the log does not
    /// show as started; the runner that resumes the saga logs `Resumed`, and should the saga
    /// unwind, it compensates that call too (`saga::next_move`). Returns the answer, not yet
    /// written.
    async fn act(
        &self,
        order: &Order,
        step: Step,
        context: &RequestContext,
        earlier: Unwritten,
        logged: bool,
    ) -> Result<Unwritten, rusqlite::Error> {
        let policy = self.config.action_retry;
        let request = self.action_request(order, step);
        // The call's own duration (the step's figure), whatever the write beside it takes.
        let call = async {
            let started = self.env.clock.now();
            #[cfg(feature = "planted-bugs")]
            if let Some(reply) = crate::planted::status_backwards(self, order.id, step, &request, context).await {
                return (reply, self.env.clock.now().saturating_duration_since(started));
            }
            let reply = self.client.send(self.peer(step.participant()), request, context, policy).await;
            (reply, self.env.clock.now().saturating_duration_since(started))
        };
        let logged_here = || platform::crash_point::here(platform::crash_point::CrashPoint::SagaLogWritten);
        let (reply, took) = if logged {
            logged_here().await;
            call.await
        } else {
            let now = self.env.clock.now_utc();
            let write = async {
                self.db
                    .write(|tx| {
                        earlier.write(tx, order.id)?;
                        log_start(tx, order.id, step, now)
                    })
                    .await?;
                logged_here().await;
                Ok::<_, rusqlite::Error>(())
            };
            // Both to the end: a call given up early may still have arrived.
            let (written, answer) = tokio::join!(write, call);
            written?;
            answer
        };
        Ok(self.answered(step, took, reply))
    }

    /// What the action's answer (`reply`, to a call that `took` so long) decides, to be
    /// logged with the next move.
    fn answered(&self, step: Step, took: Duration, reply: Result<Reply, CallError>) -> Unwritten {
        self.observe_step(step, StepPhase::action, took);
        let at = self.env.clock.now_utc();
        let answer = reply.and_then(|r| {
            if r.status.is_client_error() {
                Err(r.success().unwrap_err())
            } else {
                r.json::<StepResult>()
            }
        });
        let (entries, status) = match answer {
            Ok(result) if result.success => {
                (vec![LogEntry::action(step, Event::Succeeded, &result.message)], Some(step.status_after()))
            }
            Ok(result) => (
                vec![
                    LogEntry::action(step, Event::Refused, &result.message),
                    LogEntry::saga(Event::Compensate, &result.message),
                ],
                None,
            ),
            // Not the participant's business answer: an earlier attempt of this call that got
            // no answer may have taken effect, so the step is compensated (saga.rs).
            Err(CallError::Status { status, .. }) if status < 500 => {
                let detail = format!("{REJECTED_PREFIX}{status}");
                (
                    vec![LogEntry::action(step, Event::Rejected, &detail), LogEntry::saga(Event::Compensate, &detail)],
                    None,
                )
            }
            Err(error) => (
                vec![
                    LogEntry::action(step, Event::Unknown, &error.to_string()),
                    LogEntry::saga(Event::Compensate, reason::SERVICE_UNAVAILABLE),
                ],
                None,
            ),
        };
        Unwritten { entries, status, at: Some(at) }
    }

    /// Writes `earlier` with the compensation's start, then sends it until it is
    /// acknowledged: rounds of bounded retries, with a capped pause between rounds. Only a
    /// crash stops it, and recovery resumes it. Returns the acknowledgement, not yet written.
    async fn compensate(
        &self,
        order_id: OrderId,
        step: Step,
        context: &RequestContext,
        earlier: Unwritten,
    ) -> Result<Unwritten, rusqlite::Error> {
        let now = self.env.clock.now_utc();
        self.db
            .write(|tx| {
                earlier.write(tx, order_id)?;
                log_saga(tx, order_id, &LogEntry::compensation(step, Event::Started, ""), now)
            })
            .await?;
        platform::crash_point::here(platform::crash_point::CrashPoint::CompensationLogged).await;
        #[cfg(feature = "planted-bugs")]
        if let Some(skipped) = crate::planted::forget_stock_release(self, order_id, step, now) {
            return skipped;
        }
        let mut round: u32 = 0;
        loop {
            let request = OutboundRequest::new(Method::POST, step.compensation_path(order_id)).idempotent(true);
            if let Some(metrics) = self.env.metrics.orders() {
                metrics.compensation_rounds.inc();
            }
            let started = self.env.clock.now();
            let reply =
                self.client.send(self.peer(step.participant()), request, context, self.config.action_retry).await;
            self.observe_step(step, StepPhase::compensation, self.env.clock.now().saturating_duration_since(started));
            let acknowledged =
                reply.and_then(|r| r.success()).and_then(|r| r.json::<StepResult>()).is_ok_and(|r| r.success);
            if let Some(metrics) = self.env.metrics.orders().filter(|_| !acknowledged) {
                metrics.compensation_failures.inc();
            }
            if acknowledged {
                let entries = vec![LogEntry::compensation(step, Event::Acknowledged, "")];
                return Ok(Unwritten { entries, status: None, at: Some(self.env.clock.now_utc()) });
            }
            round = round.saturating_add(1);
            #[cfg(feature = "planted-bugs")]
            if let Some(given_up) = crate::planted::compensation_once(self, step) {
                return Ok(given_up);
            }
            tracing::warn!(%order_id, step = step.name(), round, "compensation not acknowledged yet");
            probe::hit(Probe::CompensationRetried);
            self.env.clock.sleep(Duration::from_millis(self.config.compensation_round_pause_ms)).await;
        }
    }

    fn observe_step(&self, step: Step, phase: StepPhase, took: Duration) {
        let Some(metrics) = self.env.metrics.orders() else { return };
        let labels = StepLabels { step: step.name().to_string(), phase };
        metrics.step_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Writes `earlier` with the order's final status, its notification (the outbox) and
    /// the saga's end, in one transaction.
    async fn finish(
        &self,
        order: &Order,
        status: OrderStatus,
        error_message: Option<&str>,
        earlier: Unwritten,
    ) -> Result<(), rusqlite::Error> {
        let now = self.env.clock.now_utc();
        let (kind, message) = match status {
            OrderStatus::Confirmed => (NotificationType::OrderConfirmed, format!("order {} confirmed", order.number)),
            _ => (
                NotificationType::OrderFailed,
                format!("order {} failed: {}", order.number, error_message.unwrap_or("unknown")),
            ),
        };
        let (user_id, amount) = (order.user_id, Some(order.price));
        let event = NotificationEvent { kind, order_id: order.id, user_id, amount, message, occurred_at: None };
        self.db
            .write(|tx| {
                earlier.write(tx, order.id)?;
                advance_status(tx, order.id, status, error_message, now)?;
                enqueue(tx, &event, now)?;
                log_saga(tx, order.id, &LogEntry::saga(Event::Finished, status.as_str()), now)
            })
            .await?;
        if let Some(metrics) = self.env.metrics.orders() {
            match status {
                OrderStatus::Confirmed => metrics.confirmed.inc(),
                _ => {
                    let reason = error_message.unwrap_or("unknown").to_string();
                    metrics.failed.get_or_create(&ReasonLabels { reason }).inc()
                }
            };
        }
        self.outbox_wakeup.notify_one();
        Ok(())
    }
}

/// The saga's first records, written in the transaction that records its order
/// (`create.rs`): the saga begun and its first call's start (the order `PROCESSING`). So a
/// new order's first call costs no commit of its own: the request that created the order
/// starts its saga, which sends that call straight away. A crash after the commit leaves the
/// call logged as started and not answered, which recovery sends, as after any start.
pub(crate) fn begin(tx: &rusqlite::Connection, order_id: OrderId, now: Timestamp) -> rusqlite::Result<()> {
    log_saga(tx, order_id, &LogEntry::saga(Event::Begun, ""), now)?;
    log_start(tx, order_id, STEPS[0], now)
}

/// A call's start, committed before its answer is used (`Orders::act`), the order
/// `PROCESSING` from the first on.
fn log_start(tx: &rusqlite::Connection, order_id: OrderId, step: Step, now: Timestamp) -> rusqlite::Result<()> {
    advance_status(tx, order_id, OrderStatus::Processing, None, now)?;
    log_saga(tx, order_id, &LogEntry::action(step, Event::Started, ""), now)
}

/// A move's outcome, decided and not yet written: an action's answer (with the status it
/// moves the order to) or a compensation's acknowledgement. It is written in the same
/// transaction as the next move's first record (the next call's start, the next
/// compensation's start or the finish), so an order costs one durable commit per call, not
/// two. Until then a crash loses it, exactly as a crash just before it was written would:
/// recovery finds the call logged as started and not answered and sends it again, which the
/// participant answers as before (idempotent by the order id).
#[derive(Debug, Default)]
pub(crate) struct Unwritten {
    pub(crate) entries: Vec<LogEntry>,
    pub(crate) status: Option<OrderStatus>,
    /// When it was decided (each entry's time in the log).
    pub(crate) at: Option<contracts::Timestamp>,
}

impl Unwritten {
    fn write(&self, tx: &rusqlite::Connection, order_id: OrderId) -> rusqlite::Result<()> {
        let Some(at) = self.at else { return Ok(()) };
        for entry in &self.entries {
            log_saga(tx, order_id, entry, at)?;
        }
        if let Some(status) = self.status {
            advance_status(tx, order_id, status, None, at)?;
        }
        Ok(())
    }
}

/// The retry policy of saga actions and of each compensation round.
pub const ACTION_RETRY: RetryPolicy =
    RetryPolicy { attempt_timeout_ms: 1_000, attempt_count_max: 5, backoff_initial_ms: 50, backoff_max_ms: 1_000 };
