//! Shoppers: client hosts that work through the gateway as people (and their browsers)
//! do — retrying with the same key, double-submitting, reordering similar items, polling
//! orders that answered 202, and trying to read other shoppers' orders.

use crate::cluster::slot;
use crate::history::{Action, Event, History};
use crate::plan::{PlannedOrder, ShopperPlan, LATE_RETRY_MS};
use crate::scenario::Scenario;
use crate::seams::{SimClock, TurmoilNet};
use crate::seed::{child_seed, Draw};
use bytes::Bytes;
use http::{header, HeaderName, Method};
use platform::client::{CallError, HttpClient, OutboundRequest, RetryPolicy};
use platform::{Clock, Env, Ids};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a shopper waits for any answer.
const ANSWER_TIMEOUT_MS: u64 = 20_000;
/// Attempts of one step before the shopper gives up on it.
const STEP_ATTEMPTS_MAX: u32 = 8;
const POLL_INTERVAL_MS: u64 = 500;
/// A late repeat of an abandoned key waits at least this long into the liveness phase, so
/// the cluster has healed and the abandoned saga has most likely ended.
const LATE_RETRY_AFTER_HEAL_MS: u64 = 3_000;

/// Orders each shopper has seen, for other shoppers to try to read.
pub type Board = Rc<RefCell<BTreeMap<u32, Vec<Uuid>>>>;

pub struct Shopper {
    pub index: u32,
    plan: ShopperPlan,
    pub scenario: Arc<Scenario>,
    pub history: History,
    pub board: Board,
    draw: Draw,
    http: HttpClient,
    clock: Arc<SimClock>,
    started: Option<tokio::time::Instant>,
    cookie: Option<String>,
    gateway: String,
}

struct Answer {
    status: u16,
    body: Value,
    /// When the request went out: reads that overlap in time may be answered in any order.
    sent_ms: u64,
}

impl Shopper {
    pub fn new(plan: ShopperPlan, seed: u64, scenario: Arc<Scenario>, history: History, board: Board) -> Shopper {
        let index = plan.index;
        let clock = Arc::new(SimClock { skew_ms: Arc::new(AtomicI64::new(0)) });
        let env = Env::new(
            clock.clone(),
            Arc::new(TurmoilNet),
            Ids::from_seed(child_seed(seed, &format!("shopper-ids/{index}"))),
        );
        Shopper {
            index,
            plan,
            scenario,
            history,
            board,
            draw: Draw::new(seed, &format!("shopper/{index}")),
            http: HttpClient::new(env),
            clock,
            started: None,
            cookie: None,
            gateway: format!("gateway:{}", crate::cluster::port_of("gateway")),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        let started = self.started.expect("started");
        self.clock.now().saturating_duration_since(started).as_millis() as u64
    }

    async fn pause(&self, ms: u64) {
        self.clock.sleep(Duration::from_millis(ms)).await;
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        with_session: bool,
    ) -> Option<Answer> {
        self.call_within(method, path, body, key, with_session, ANSWER_TIMEOUT_MS).await
    }

    /// [`Self::call`], waiting at most `timeout_ms`; then the connection is dropped.
    async fn call_within(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        with_session: bool,
        timeout_ms: u64,
    ) -> Option<Answer> {
        let sent_ms = self.elapsed_ms();
        let mut request = OutboundRequest::new(method, path);
        if let Some(body) = body {
            request.body = Bytes::from(body.to_string());
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = key {
            request = request.header(HeaderName::from_static("idempotency-key"), key);
        }
        if let (true, Some(cookie)) = (with_session, &self.cookie) {
            request = request.header(header::COOKIE, cookie);
        }
        let reply = match self.http.send(&self.gateway, &request, RetryPolicy::once(timeout_ms)).await {
            Ok(reply) => reply,
            // An error status is an answer too; only a transport failure is "no answer".
            Err(CallError::Status { status, problem }) => {
                let body = problem.map_or(Value::Null, |p| serde_json::to_value(p).unwrap_or(Value::Null));
                return Some(Answer { status, body, sent_ms });
            }
            Err(_) => return None,
        };
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Some(Answer { status: reply.status.as_u16(), body, sent_ms })
    }

    fn record(&self, action: Action, key: Option<&str>, answer: Option<&Answer>, amount_cents: Option<i64>) {
        let body = answer.map(|a| &a.body);
        let order = body.map(|b| if b.get("order").is_some() { &b["order"] } else { b });
        let order_id = order.and_then(|o| o["id"].as_str()).and_then(|id| Uuid::parse_str(id).ok());
        let order_status = order.and_then(|o| o["status"].as_str()).map(str::to_string);
        let problem = body.and_then(|b| b["type"].as_str()).map(str::to_string);
        let at_ms = self.elapsed_ms();
        let event = Event {
            at_ms,
            sent_ms: answer.map_or(at_ms, |a| a.sent_ms),
            shopper: self.index,
            action,
            key: key.map(str::to_string),
            status: answer.map(|a| a.status),
            problem,
            order_id: if matches!(action, Action::ListOrders) { None } else { order_id },
            order_status: if matches!(action, Action::ListOrders) { None } else { order_status },
            amount_cents,
        };
        self.history.borrow_mut().push(event);
    }

    /// POSTs one step until `done` accepts the answer, a bounded number of times.
    async fn until(
        &mut self,
        action: Action,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
        amount: Option<i64>,
        done: impl Fn(u16) -> bool,
    ) -> Option<Value> {
        for attempt in 0..STEP_ATTEMPTS_MAX {
            let answer = self.call(Method::POST, path, body.as_ref(), key, true).await;
            self.record(action, key, answer.as_ref(), amount);
            if let Some(answer) = answer.filter(|a| done(a.status)) {
                return Some(answer.body);
            }
            let backoff = 200 * u64::from(attempt + 1);
            let jitter = self.draw.range(0, 200);
            self.pause(backoff + jitter).await;
        }
        None
    }

    pub async fn run(mut self) -> turmoil::Result {
        self.started = Some(self.clock.now());
        let start_delay = self.draw.range(0, 200);
        self.pause(start_delay).await;
        if !self.sign_up().await {
            return Ok(());
        }
        let mut pending = Vec::new();
        let mut late = Vec::new();
        for (number, order) in self.plan.orders.clone().into_iter().enumerate() {
            self.pause(order.think_ms).await;
            // New work starts only in the safety phase.
            if self.elapsed_ms() >= self.scenario.safety_ms {
                break;
            }
            self.side_trip(&order).await;
            let key = format!("order-{}-{number}", self.index);
            let body = self.order_body(&order);
            let placed = match order.abandon_after_ms {
                Some(abandon_ms) => {
                    self.place_abandoning(&key, &body, abandon_ms, order.retry_after_ms, &mut late).await
                }
                None => self.place(&key, &body, order.double_submit).await,
            };
            pending.extend(placed);
        }
        pending.extend(self.retry_late(late).await);
        for order_id in pending {
            self.poll(order_id).await;
        }
        let listed = self.call(Method::GET, "/api/v1/orders", None, None, true).await;
        self.record(Action::ListOrders, None, listed.as_ref(), None);
        Ok(())
    }

    async fn sign_up(&mut self) -> bool {
        let email = format!("shopper{}@example.com", self.index);
        let credentials = json!({ "email": email, "password": format!("password-{}", self.index) });
        if self
            .until(Action::Register, "/auth/register", Some(credentials.clone()), None, None, |s| s == 201 || s == 409)
            .await
            .is_none()
        {
            return false;
        }
        for attempt in 0..STEP_ATTEMPTS_MAX {
            let mut request = OutboundRequest::new(Method::POST, "/auth/login").json(&credentials);
            request = request.header(header::CONTENT_TYPE, "application/json");
            let reply = self.http.send(&self.gateway, &request, RetryPolicy::once(ANSWER_TIMEOUT_MS)).await.ok();
            let sent_ms = self.elapsed_ms();
            let answer = reply.as_ref().map(|r| Answer { status: r.status.as_u16(), body: Value::Null, sent_ms });
            self.record(Action::Login, None, answer.as_ref(), None);
            let cookie = reply
                .as_ref()
                .filter(|r| r.status == 200)
                .and_then(|r| r.headers.get(header::SET_COOKIE))
                .and_then(|v| v.to_str().ok());
            if let Some(cookie) = cookie {
                self.cookie = cookie.split(';').next().map(str::to_string);
                break;
            }
            self.pause(200 * u64::from(attempt + 1)).await;
        }
        if self.cookie.is_none() {
            return false;
        }
        if self
            .until(Action::OpenAccount, "/api/v1/billing/accounts", None, None, None, |s| s == 200 || s == 201)
            .await
            .is_none()
        {
            return false;
        }
        let amount = self.plan.deposit as i64;
        if amount > 0 {
            let key = format!("deposit-{}", self.index);
            let body = json!({ "amount": amount });
            self.until(Action::Deposit, "/api/v1/billing/deposit", Some(body), Some(&key), Some(amount * 100), |s| {
                s == 200
            })
            .await;
        }
        true
    }

    fn order_body(&self, order: &PlannedOrder) -> Value {
        let items: Vec<Value> =
            order.items.iter().map(|i| json!({ "productId": i.product, "quantity": i.quantity })).collect();
        let slot = slot(order.slot_hour).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        json!({ "items": items, "deliveryInfo": { "address": format!("{} Sim Street", self.index), "preferredTimeSlot": slot } })
    }

    async fn place_once(&self, key: &str, body: &Value) -> Option<Answer> {
        let answer = self.call(Method::POST, "/api/v1/order", Some(body), Some(key), true).await;
        self.record(Action::PlaceOrder, Some(key), answer.as_ref(), None);
        answer
    }

    /// Places an order, retrying the same key after no answer, 5xx or 409 in-progress;
    /// sometimes sends the key twice at once. Returns the order to poll if it answered 202.
    async fn place(&mut self, key: &str, body: &Value, double: bool) -> Option<Uuid> {
        for attempt in 0..STEP_ATTEMPTS_MAX {
            let answer = if double && attempt == 0 {
                // Each twin is recorded when its own answer arrives.
                tokio::join!(self.place_once(key, body), self.place_once(key, body)).0
            } else {
                self.place_once(key, body).await
            };
            let Some(answer) = answer else {
                self.pause(500).await;
                continue;
            };
            let order_id = answer.body["id"]
                .as_str()
                .or(answer.body["order"]["id"].as_str())
                .and_then(|id| Uuid::parse_str(id).ok());
            if let Some(order_id) = order_id {
                self.board.borrow_mut().entry(self.index).or_default().push(order_id);
            }
            match answer.status {
                202 => return order_id,
                409 if answer.body["type"] == "/problems/idempotency-request-in-progress" => self.pause(1_000).await,
                status if status >= 500 => self.pause(500 + 250 * u64::from(attempt)).await,
                _ => return None,
            }
        }
        None
    }

    /// Places an order as a client that gives up: it stops waiting after `abandon_ms` and
    /// drops the connection (the saga may go on), then repeats the key `retry_after_ms`
    /// later — at once if soon, else into `late` — or never. Returns the order to poll.
    async fn place_abandoning(
        &mut self,
        key: &str,
        body: &Value,
        abandon_ms: u64,
        retry_after_ms: Option<u64>,
        late: &mut Vec<(u64, String, Value)>,
    ) -> Option<Uuid> {
        let answer = self.call_within(Method::POST, "/api/v1/order", Some(body), Some(key), true, abandon_ms).await;
        self.record(Action::PlaceOrder, Some(key), answer.as_ref(), None);
        if let Some(answer) = answer {
            let order_id = answer.body["id"]
                .as_str()
                .or(answer.body["order"]["id"].as_str())
                .and_then(|id| Uuid::parse_str(id).ok());
            if let Some(order_id) = order_id {
                self.board.borrow_mut().entry(self.index).or_default().push(order_id);
            }
            let in_progress = answer.body["type"] == "/problems/idempotency-request-in-progress";
            match answer.status {
                202 => return order_id,
                status if status < 500 && !in_progress => return None,
                _ => {}
            }
        }
        match retry_after_ms {
            Some(after) if after < LATE_RETRY_MS => {
                self.pause(after).await;
                self.place(key, body, false).await
            }
            Some(after) => {
                late.push((self.elapsed_ms() + after, key.to_string(), body.clone()));
                None
            }
            None => None,
        }
    }

    /// Repeats abandoned keys late: when due, but not before the cluster has healed and
    /// settled a little, and early enough to finish within the liveness phase.
    async fn retry_late(&mut self, mut late: Vec<(u64, String, Value)>) -> Vec<Uuid> {
        let earliest = self.scenario.safety_ms + LATE_RETRY_AFTER_HEAL_MS;
        let latest = self.scenario.safety_ms + self.scenario.liveness_ms / 2;
        late.sort_by_key(|(due, _, _)| *due);
        let mut pending = Vec::new();
        for (due, key, body) in late {
            let at = due.max(earliest).min(latest);
            self.pause(at.saturating_sub(self.elapsed_ms())).await;
            pending.extend(self.place(&key, &body, false).await);
        }
        pending
    }

    async fn poll(&mut self, order_id: Uuid) {
        let deadline = self.scenario.safety_ms + self.scenario.liveness_ms - 2_000;
        while self.elapsed_ms() < deadline {
            let answer = self.call(Method::GET, &format!("/api/v1/order/{order_id}"), None, None, true).await;
            self.record(Action::PollOrder, None, answer.as_ref(), None);
            if let Some(answer) = answer {
                if answer.status == 200 && matches!(answer.body["status"].as_str(), Some("CONFIRMED" | "FAILED")) {
                    return;
                }
            }
            self.pause(POLL_INTERVAL_MS).await;
        }
    }

    /// Now and then: read another shopper's order, or call without a session.
    async fn side_trip(&mut self, order: &PlannedOrder) {
        if order.peek {
            let others: Vec<(u32, Uuid)> = self
                .board
                .borrow()
                .iter()
                .filter(|(who, _)| **who != self.index)
                .flat_map(|(who, ids)| ids.iter().map(|id| (*who, *id)))
                .collect();
            if !others.is_empty() {
                let (owner, order_id) = *self.draw.pick(&others);
                let answer = self.call(Method::GET, &format!("/api/v1/order/{order_id}"), None, None, true).await;
                self.record(Action::Peek, None, answer.as_ref(), Some(i64::from(owner)));
            }
        }
        if order.anonymous {
            let path = *self.draw.pick(&[
                "/api/v1/orders",
                "/api/v1/billing/accounts/me",
                "/api/v1/notifications",
                "/auth/profile/me",
            ]);
            let answer = self.call(Method::GET, path, None, None, false).await;
            self.record(Action::Anonymous, None, answer.as_ref(), None);
        }
    }
}
