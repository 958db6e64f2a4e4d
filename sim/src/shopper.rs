//! Shoppers: client hosts that work through the gateway as people (and their browsers)
//! do — retrying with the same key, double-submitting, reordering similar items, polling
//! orders that answered 202, and trying to read other shoppers' orders. After healing,
//! each places one last order it can afford, for stock and a slot that are there: a
//! correct store must confirm it (Jepsen's final reads). Every answer is recorded with
//! what it said in the contract's terms, for the checks to hold it to the contract.

use crate::cluster::slot;
use crate::history::{Action, AskedOrder, Event, History, Listed, SeenOrder, SeenProduct};
use crate::plan::{Limit, PlannedItem, PlannedOrder, ShopperPlan, LATE_RETRY_MS};
use crate::scenario::Scenario;
use crate::seams::{SimClock, TurmoilNet};
use crate::seed::{child_seed, Draw};
use bytes::Bytes;
use contracts::billing::{Account, DepositResponse, Transaction};
use contracts::catalog::{Product, Slot};
use contracts::notification::Notification;
use contracts::order::{Order, OrderStatus};
use contracts::{OrderId, ProblemKind, ProblemType, ProductId, ServiceName};
use http::{header, HeaderName, Method};
use platform::client::{CallError, HttpClient, OutboundRequest, RetryPolicy};
use platform::{Clock, Env, Ids, Spawner};
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
/// How long after healing the shoppers wait before their last order: restarted services
/// come up and held messages land.
pub const LAST_ORDER_AFTER_HEAL_MS: u64 = 3_000;
/// The last order's slot: this many hours after the epoch, plus the shopper's index (a
/// slot no planned order uses).
const LAST_ORDER_SLOT_HOUR: u32 = 24;
/// A late repeat of an abandoned key waits at least this long into the liveness phase, so
/// the cluster has healed and the abandoned saga has most likely ended.
const LATE_RETRY_AFTER_HEAL_MS: u64 = 3_000;
/// Late repeats fall at most this long after [`LATE_RETRY_AFTER_HEAL_MS`].
const LATE_RETRY_WINDOW_MS: u64 = 2_000;

/// Orders each shopper has seen, for other shoppers to try to read.
pub type Board = Rc<RefCell<BTreeMap<u32, Vec<OrderId>>>>;

/// The longest delivery address docs/API.md allows, in characters ("Create order"): written
/// out here, not taken from a service, so that a service whose own constant drifts is seen.
const ADDRESS_CHARS_MAX: usize = 500;

/// Product ids nobody sells (the demo catalog's are `00000000-…`): the high bits of the
/// edge bodies' products.
const UNSOLD: u128 = 0xe0000000_0000_4000_8000_000000000000;

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
    /// The session `cookie` holds: the shopper's logins numbered from 1.
    session: u32,
    /// Successful logins so far.
    logins: u32,
    gateway: String,
}

/// No answer within the shopper's deadline (or the connection failed).
struct NoAnswer {
    sent_ms: u64,
    session: Option<u32>,
}

/// One request of a shopper to the gateway: its method, path, JSON body and
/// `Idempotency-Key`.
struct Request<'a> {
    method: Method,
    path: &'a str,
    body: Option<&'a Value>,
    key: Option<&'a str>,
}

impl<'a> Request<'a> {
    fn get(path: &'a str) -> Request<'a> {
        Request { method: Method::GET, path, body: None, key: None }
    }

    fn post(path: &'a str, body: Option<&'a Value>, key: Option<&'a str>) -> Request<'a> {
        Request { method: Method::POST, path, body, key }
    }
}

struct Answer {
    status: u16,
    body: Value,
    /// When the request went out: reads that overlap in time may be answered in any order.
    sent_ms: u64,
    /// The session the request carried.
    session: Option<u32>,
}

impl Answer {
    /// The order an answer names: the order itself (`id`), or a problem's `order`.
    fn order_id(&self) -> Option<OrderId> {
        self.body["id"].as_str().or(self.body["order"]["id"].as_str()).and_then(|id| id.parse::<OrderId>().ok())
    }

    /// The problem type of an error answer, when it is one the store has.
    fn problem(&self) -> Option<ProblemType> {
        self.body["type"].as_str().and_then(ProblemType::from_uri)
    }

    /// The status of an order body, when the answer is one.
    fn order_status(&self) -> Option<OrderStatus> {
        serde_json::from_value(self.body["status"].clone()).ok()
    }
}

/// Every `/api` route a logged-out cookie is tried on (and the gateway's own session
/// routes): each must answer 401.
const LOGGED_OUT_ROUTES: [(&str, &str); 10] = [
    ("GET", "/api/v1/orders"),
    ("GET", "/api/v1/order/"),
    ("POST", "/api/v1/order"),
    ("GET", "/api/v1/billing/accounts/me"),
    ("POST", "/api/v1/billing/deposit"),
    ("GET", "/api/v1/billing/transactions"),
    ("GET", "/api/v1/warehouse/products"),
    ("GET", "/api/v1/notifications"),
    ("GET", "/auth/profile/me"),
    ("POST", "/auth/logout"),
];

impl Shopper {
    pub fn new(plan: ShopperPlan, seed: u64, scenario: Arc<Scenario>, history: History, board: Board) -> Shopper {
        let index = plan.index;
        let clock = Arc::new(SimClock { skew_ms: Arc::new(AtomicI64::new(0)) });
        // The shopper's connection drivers run on its host's LocalSet, like every service
        // host's tasks: a runtime-spawned task could run before the LocalSet's own in a
        // tick, and the fixed and event-driven drivers could order them differently
        // (vendor/turmoil/PATCH.md).
        let env = Env {
            spawner: Spawner::Local,
            ..Env::new(
                clock.clone(),
                Arc::new(TurmoilNet),
                Ids::from_seed(child_seed(seed, &format!("shopper-ids/{index}"))),
            )
        };
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
            session: 0,
            logins: 0,
            gateway: crate::cluster::peers().address(ServiceName::Gateway).to_string(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        let started = self.started.expect("started");
        self.clock.now().saturating_duration_since(started).as_millis() as u64
    }

    async fn pause(&self, ms: u64) {
        self.clock.sleep(Duration::from_millis(ms)).await;
    }

    async fn call(&self, request: Request<'_>, with_session: bool) -> Result<Answer, NoAnswer> {
        let (cookie, session) = self.credentials(with_session);
        self.send_as(request, cookie.as_deref(), session, ANSWER_TIMEOUT_MS).await
    }

    /// The session cookie to send (none unless `with_session` and logged in) and its number.
    fn credentials(&self, with_session: bool) -> (Option<String>, Option<u32>) {
        let cookie = if with_session { self.cookie.clone() } else { None };
        let session = cookie.as_ref().map(|_| self.session);
        (cookie, session)
    }

    /// One request with `cookie` (or none) as the session; `session` numbers it.
    async fn send_as(
        &self,
        Request { method, path, body, key }: Request<'_>,
        cookie: Option<&str>,
        session: Option<u32>,
        timeout_ms: u64,
    ) -> Result<Answer, NoAnswer> {
        let sent_ms = self.elapsed_ms();
        let mut request = OutboundRequest::new(method, path);
        if let Some(body) = body {
            request.body = Bytes::from(body.to_string());
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = key {
            request = request.header(HeaderName::from_static("idempotency-key"), key);
        }
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let sent = self.http.send(&self.gateway, &request, RetryPolicy::once(timeout_ms)).await;
        // Every task of the shopper's host is on its LocalSet (`Shopper::new`): a task on
        // the host's runtime could run out of turn while a time driver catches the host up.
        let on_runtime = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        assert_eq!(on_runtime, 0, "shopper {}: tasks spawned on the host's runtime", self.index);
        let reply = match sent {
            Ok(reply) => reply,
            // An error status is an answer too; only a transport failure is "no answer".
            Err(CallError::Status { status, problem }) => {
                let body = problem.map_or(Value::Null, |p| serde_json::to_value(p).unwrap_or(Value::Null));
                return Ok(Answer { status, body, sent_ms, session });
            }
            Err(_) => return Err(NoAnswer { sent_ms, session }),
        };
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        Ok(Answer { status: reply.status.as_u16(), body, sent_ms, session })
    }

    /// The event of one answer, with what its body says in the contract's terms.
    fn event(
        &self,
        action: Action,
        key: Option<&str>,
        answer: Result<&Answer, &NoAnswer>,
        amount_cents: Option<i64>,
    ) -> Event {
        let at_ms = self.elapsed_ms();
        let (sent_ms, session) = match answer {
            Ok(answer) => (answer.sent_ms, answer.session),
            Err(none) => (none.sent_ms, none.session),
        };
        let mut event = Event::new(self.index, action, sent_ms, at_ms);
        event.session = session;
        event.key = key.map(str::to_string);
        event.amount_cents = amount_cents;
        let Ok(answer) = answer else { return event };
        event.status = Some(answer.status);
        let body = &answer.body;
        event.problem = body.get("type").and_then(Value::as_str).map(ProblemKind::parse);
        let success = (200..300).contains(&answer.status);
        let mut malformed = |what: &str| {
            if success {
                event.malformed = Some(what.to_string());
            }
        };
        match action {
            Action::PlaceOrder | Action::PollOrder | Action::Peek => {
                let carried = if body.get("order").is_some() { &body["order"] } else { body };
                match serde_json::from_value::<Order>(carried.clone()) {
                    Ok(order) => {
                        event.order_id = Some(order.id);
                        event.order_status = Some(order.status);
                        event.order = Some(SeenOrder::from_order(&order));
                    }
                    Err(error) => malformed(&format!("not an order: {error}")),
                }
            }
            Action::Deposit => match serde_json::from_value::<DepositResponse>(body.clone()) {
                Ok(deposit) if deposit.success => {
                    event.transaction_id = Some(deposit.transaction_id);
                    event.balance_cents = Some(deposit.new_balance.cents());
                }
                Ok(_) => malformed("success is false"),
                Err(error) => malformed(&format!("not a deposit answer: {error}")),
            },
            Action::ReadAccount | Action::OpenAccount => match serde_json::from_value::<Account>(body.clone()) {
                Ok(account) => event.balance_cents = Some(account.balance.cents()),
                Err(error) => malformed(&format!("not an account: {error}")),
            },
            Action::ListOrders => match serde_json::from_value::<Vec<Order>>(body.clone()) {
                Ok(orders) => {
                    event.listed = Some(orders.iter().map(|o| o.id).collect());
                    if success {
                        let entries = orders.iter().map(|o| Listed::Order { id: o.id, user_id: o.user_id });
                        event.entries = Some(entries.collect());
                    }
                }
                Err(error) => malformed(&format!("not a list of orders: {error}")),
            },
            Action::ReadCatalog => {
                if let Err(error) = serde_json::from_value::<Vec<Product>>(body.clone()) {
                    malformed(&format!("not a catalog: {error}"));
                }
            }
            Action::ReadProduct => {
                if let Err(error) = serde_json::from_value::<Product>(body.clone()) {
                    malformed(&format!("not a product: {error}"));
                }
            }
            Action::ReadSlots => match serde_json::from_value::<Vec<Slot>>(body.clone()) {
                Ok(slots) if success => event.slots = Some(slots),
                Ok(_) => {}
                Err(error) => malformed(&format!("not a list of slots: {error}")),
            },
            Action::ReadTransactions | Action::ReadNotifications => match body.as_array() {
                // The order ids, for the access check (whatever the status).
                Some(entries) => {
                    event.listed = Some(
                        entries
                            .iter()
                            .filter_map(|e| e.get("orderId").and_then(Value::as_str))
                            .filter_map(|id| id.parse::<OrderId>().ok())
                            .collect(),
                    );
                    // The entries themselves, for the listings check.
                    let listed = match action {
                        Action::ReadTransactions => listed_transactions(body),
                        _ => listed_notifications(body),
                    };
                    match listed {
                        Ok(listed) if success => event.entries = Some(listed),
                        Ok(_) => {}
                        Err(what) => malformed(&what),
                    }
                }
                None => malformed("not a list"),
            },
            Action::Register
            | Action::Login
            | Action::Anonymous
            | Action::GaveUp
            | Action::ReuseKey
            | Action::ReuseDepositKey
            | Action::Internal
            | Action::Forged
            | Action::Logout
            | Action::LoggedOut
            | Action::AtLimit
            | Action::PastLimit => {}
        }
        event
    }

    fn push(&self, event: Event) {
        self.history.borrow_mut().push(event);
    }

    fn record(&self, action: Action, key: Option<&str>, answer: Result<&Answer, &NoAnswer>, amount_cents: Option<i64>) {
        self.push(self.event(action, key, answer, amount_cents));
    }

    /// The shopper stopped trying `step` after its last attempt.
    fn give_up(&self, step: Action) {
        let at = self.elapsed_ms();
        let mut event = Event::new(self.index, Action::GaveUp, at, at);
        event.about = Some(step);
        self.push(event);
    }

    /// POSTs one step until `done` accepts the answer, a bounded number of times.
    /// Deposits `amount` (whole units) under `key`, repeated until answered 200.
    async fn deposit_until_answered(&mut self, key: &str, amount: i64) -> Option<Value> {
        let body = json!({ "amount": amount });
        self.until(Action::Deposit, "/api/v1/billing/deposit", Some(body), Some(key), Some(amount * 100), |s| s == 200)
            .await
    }

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
            let answer = self.call(Request::post(path, body.as_ref(), key), true).await;
            self.record(action, key, answer.as_ref(), amount);
            if let Some(answer) = answer.ok().filter(|a| done(a.status)) {
                return Some(answer.body);
            }
            let backoff = 200 * u64::from(attempt + 1);
            let jitter = self.draw.range(0, 200);
            self.pause(backoff + jitter).await;
        }
        self.give_up(action);
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
        let mut previous: Option<PlannedOrder> = None;
        for (number, order) in self.plan.orders.clone().into_iter().enumerate() {
            self.pause(order.think_ms).await;
            // New work starts only in the safety phase.
            if self.elapsed_ms() >= self.scenario.safety_ms {
                break;
            }
            // The session this order's work is done under ends after it; the first goes on.
            let first_session = match order.second_session {
                true => match self.login(&["second_session"]).await {
                    Some(first) => Some(first),
                    None => return Ok(()),
                },
                false => None,
            };
            self.side_trip(&order).await;
            let key = match order.shared_key {
                true => format!("shared-order-{number}"),
                false => format!("order-{}-{number}", self.index),
            };
            let request = self.order_body(&order.items, order.slot_hour, false);
            let similar = previous.as_ref().is_some_and(|p| p.items == order.items && p.slot_hour == order.slot_hour);
            previous = Some(order.clone());
            let mut marks: Vec<&'static str> = Vec::new();
            if similar {
                marks.push("similar_order");
            }
            if order.shared_key {
                marks.push("key_shared");
            }
            let placed: Vec<OrderId> = match (order.abandon_after_ms, order.logout_after_ms) {
                (Some(abandon_ms), _) => self
                    .place_abandoning(&key, &request, abandon_ms, order.retry_after_ms, &mut late, &marks)
                    .await
                    .into_iter()
                    .collect(),
                (None, Some(logout_ms)) => match self.place_logging_out(&key, &request, logout_ms, &marks).await {
                    Some(placed) => placed.into_iter().collect(),
                    None => return Ok(()),
                },
                (None, None) => {
                    let placing = async {
                        if order.similar_at_once {
                            // Two keys, the same items, at once: at most one order; the other
                            // is answered 409 duplicate-order naming it.
                            let twin = format!("{key}-twin");
                            let (first, second) = tokio::join!(
                                self.place_marked(&key, &request, false, true, &marks),
                                self.place_marked(&twin, &request, false, true, &marks)
                            );
                            first.into_iter().chain(second).collect::<Vec<_>>()
                        } else {
                            let double = order.double_submit;
                            self.place_marked(&key, &request, double, false, &marks).await.into_iter().collect()
                        }
                    };
                    tokio::join!(placing, self.racing_deposit(number, order.racing_deposit)).0
                }
            };
            pending.extend(placed);
            if order.reuse_key && order.abandon_after_ms.is_none() {
                self.reuse_key(&key, &order).await;
            }
            if let Some(first) = first_session {
                self.end_second_session(first).await;
            }
        }
        pending.extend(self.retry_late(late).await);
        for order_id in pending {
            self.poll(order_id).await;
        }
        let listed = self.call(Request::get("/api/v1/orders"), true).await;
        self.record(Action::ListOrders, None, listed.as_ref(), None);
        self.last_order().await;
        self.final_reads().await;
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
        if self.login(&[]).await.is_none() {
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
            let deposited = self.deposit_until_answered(&key, amount).await;
            if deposited.is_some() && self.plan.reuse_deposit_key {
                // The same key with another amount: never applied, 422 key-reused.
                let other = amount + 1;
                let body = json!({ "amount": other });
                let answer = self.call(Request::post("/api/v1/billing/deposit", Some(&body), Some(&key)), true).await;
                self.record(Action::ReuseDepositKey, Some(&key), answer.as_ref(), Some(other * 100));
            }
        }
        true
    }

    /// Logs in (a new session, numbered after the shopper's earlier logins) and makes it the
    /// current one. Hands back the session it replaced (`None` inside: there was none); `None`
    /// when the shopper gave up.
    async fn login(&mut self, marks: &[&'static str]) -> Option<(Option<String>, u32)> {
        let email = format!("shopper{}@example.com", self.index);
        let credentials = json!({ "email": email, "password": format!("password-{}", self.index) });
        for attempt in 0..STEP_ATTEMPTS_MAX {
            let mut request = OutboundRequest::new(Method::POST, "/auth/login").json(&credentials);
            request = request.header(header::CONTENT_TYPE, "application/json");
            let sent_ms = self.elapsed_ms();
            let reply = self.http.send(&self.gateway, &request, RetryPolicy::once(ANSWER_TIMEOUT_MS)).await;
            let reply = match reply {
                Ok(reply) => Some(reply),
                Err(CallError::Status { status, .. }) => {
                    let answer = Answer { status, body: Value::Null, sent_ms, session: None };
                    self.record(Action::Login, None, Ok(&answer), None);
                    self.pause(200 * u64::from(attempt + 1)).await;
                    continue;
                }
                Err(_) => None,
            };
            let answer = match &reply {
                Some(r) => Ok(Answer { status: r.status.as_u16(), body: Value::Null, sent_ms, session: None }),
                None => Err(NoAnswer { sent_ms, session: None }),
            };
            let mut event = self.event(Action::Login, None, answer.as_ref(), None);
            let cookie = reply
                .as_ref()
                .filter(|r| r.status == 200)
                .and_then(|r| r.headers.get(header::SET_COOKIE))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_string);
            if let Some(cookie) = cookie {
                self.logins += 1;
                event.session = Some(self.logins);
                event.behaviours = marks.to_vec();
                self.push(event);
                let replaced = (self.cookie.replace(cookie), self.session);
                self.session = self.logins;
                return Some(replaced);
            }
            self.push(event);
            self.pause(200 * u64::from(attempt + 1)).await;
        }
        self.give_up(Action::Login);
        None
    }

    /// Logs `session` out, retrying after no answer or 5xx; a 401 to a repeat means an
    /// earlier attempt did it. Whether the session is surely gone.
    async fn logout(&self, cookie: &str, session: u32, marks: &[&'static str]) -> bool {
        for attempt in 0..STEP_ATTEMPTS_MAX {
            let answer =
                self.send_as(Request::post("/auth/logout", None, None), Some(cookie), Some(session), ANSWER_TIMEOUT_MS);
            let answer = answer.await;
            let mut event = self.event(Action::Logout, None, answer.as_ref(), None);
            if attempt == 0 {
                event.behaviours = marks.to_vec();
            }
            self.push(event);
            if answer.is_ok_and(|a| a.status == 204 || (a.status == 401 && attempt > 0)) {
                return true;
            }
            self.pause(200 * u64::from(attempt + 1)).await;
        }
        false
    }

    /// A logged-out cookie on every route of [`LOGGED_OUT_ROUTES`]: each must answer 401.
    async fn try_logged_out(&self, cookie: &str, session: u32) {
        let order_id = self.board.borrow().get(&self.index).and_then(|ids| ids.first().copied());
        let order_id = order_id.unwrap_or(OrderId::from_u128(u128::from(self.index) + 1));
        let order = self.order_body(&self.plan.orders.first().map(|o| o.items.clone()).unwrap_or_default(), 1, false).0;
        for (method, path) in LOGGED_OUT_ROUTES {
            let (method, path, body, key) = match (method, path) {
                ("GET", "/api/v1/order/") => (Method::GET, format!("{path}{order_id}"), None, None),
                ("POST", "/api/v1/order") => {
                    (Method::POST, path.to_string(), Some(order.clone()), Some(format!("logged-out-{}", self.index)))
                }
                ("POST", "/api/v1/billing/deposit") => {
                    (Method::POST, path.to_string(), Some(json!({"amount": 1})), None)
                }
                ("POST", _) => (Method::POST, path.to_string(), None, None),
                _ => (Method::GET, path.to_string(), None, None),
            };
            let answer = self
                .send_as(
                    Request { method, path: &path, body: body.as_ref(), key: key.as_deref() },
                    Some(cookie),
                    Some(session),
                    ANSWER_TIMEOUT_MS,
                )
                .await;
            self.record(Action::LoggedOut, key.as_deref(), answer.as_ref(), None);
        }
    }

    /// After an order placed under a second session: the first still works and lists it;
    /// the second is logged out, its cookie refused everywhere, and the first still works.
    async fn end_second_session(&mut self, (first, first_session): (Option<String>, u32)) {
        let (second, second_session) = (std::mem::replace(&mut self.cookie, first), self.session);
        self.session = first_session;
        let listed = self.call(Request::get("/api/v1/orders"), true).await;
        self.record(Action::ListOrders, None, listed.as_ref(), None);
        let Some(second) = second else { return };
        if self.logout(&second, second_session, &[]).await {
            self.try_logged_out(&second, second_session).await;
        }
        let listed = self.call(Request::get("/api/v1/orders"), true).await;
        self.record(Action::ListOrders, None, listed.as_ref(), None);
    }

    /// Sends an order and logs its session out `logout_ms` later on a second connection,
    /// whether or not the answer came yet; then tries the old cookie everywhere (401), logs
    /// in again and repeats the key if the first answer did not settle it. The orders to
    /// poll; `None` when the shopper could not log in again.
    async fn place_logging_out(
        &mut self,
        key: &str,
        request: &(Value, AskedOrder),
        logout_ms: u64,
        marks: &[&'static str],
    ) -> Option<Option<OrderId>> {
        let (body, asked) = request;
        let (Some(cookie), session) = (self.cookie.clone(), self.session) else { return Some(None) };
        let answered = std::cell::Cell::new(false);
        let placing = async {
            let answer = self.place_once(key, body, asked, false, marks).await;
            answered.set(true);
            answer
        };
        let logging_out = async {
            self.pause(logout_ms).await;
            let marks: &[&'static str] = if answered.get() { &[] } else { &["logout_in_flight"] };
            self.logout(&cookie, session, marks).await
        };
        let (answer, logged_out) = tokio::join!(placing, logging_out);
        if logged_out {
            self.try_logged_out(&cookie, session).await;
        }
        self.login(&[]).await?;
        let named = answer.as_ref().and_then(|a| a.order_id());
        if let Some(order_id) = named {
            self.board.borrow_mut().entry(self.index).or_default().push(order_id);
            // Seen under the new session: polled until final.
            return Some(Some(order_id));
        }
        // No answer, 5xx, in progress, or refused with the session: the key again.
        Some(self.place(key, request, false).await)
    }

    /// The shopper's delivery address: odd-numbered shoppers live at the longest address the
    /// contract allows (500 characters, padded with two-byte ones), so that orders the whole
    /// saga carries to the delivery service test every service's limit, not only the order
    /// service's (the edge bodies stop at the warehouse: nobody sells their products).
    fn address(&self) -> String {
        let street = format!("{} Sim Street", self.index);
        if self.index.is_multiple_of(2) {
            return street;
        }
        let pad = ADDRESS_CHARS_MAX - street.chars().count();
        format!("{street}{}", "é".repeat(pad))
    }

    /// The request body of an order, and what it asks for.
    fn order_body(&self, items: &[PlannedItem], slot_hour: u32, last: bool) -> (Value, AskedOrder) {
        let lines: Vec<Value> =
            items.iter().map(|i| json!({ "productId": i.product, "quantity": i.quantity })).collect();
        let slot = slot(self.scenario.start, slot_hour);
        let slot_text = slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body =
            json!({ "items": lines, "deliveryInfo": { "address": self.address(), "preferredTimeSlot": slot_text } });
        let mut asked = BTreeMap::new();
        for item in items {
            *asked.entry(item.product).or_default() += item.quantity;
        }
        (body, AskedOrder { items: asked, slot, last })
    }

    /// An order body at `limit` of the contract (docs/API.md, "Create order"), or one past it,
    /// of products nobody sells: the limits are the contract's, written out here, so that a
    /// service whose own constant drifts is seen.
    fn edge_body(&self, limit: Limit, past: bool, slot_hour: u32) -> Value {
        let unsold = |i: usize| ProductId::from_u128(UNSOLD | i as u128);
        let line = |i: usize, quantity: usize| json!({ "productId": unsold(i), "quantity": quantity });
        let extra = usize::from(past);
        let mut lines = vec![line(0, 1)];
        let mut address = format!("{} Sim Street", self.index);
        let mut description = None;
        let mut slot = slot(self.scenario.start, slot_hour);
        match limit {
            Limit::NoLines if past => lines.clear(),
            Limit::NoLines => {}
            Limit::Lines => lines = (0..50 + extra).map(|i| line(i, 1)).collect(),
            Limit::Quantity => lines = vec![line(0, 1000 + extra)],
            Limit::MergedQuantity => lines = vec![line(0, 500), line(0, 500 + extra)],
            // Characters, not bytes: each is two bytes in UTF-8.
            Limit::Address => address = "é".repeat(ADDRESS_CHARS_MAX + extra),
            Limit::Description => description = Some("ü".repeat(1000 + extra)),
            Limit::Slot if past => slot += chrono::TimeDelta::minutes(30),
            Limit::SlotSeconds if past => slot += chrono::TimeDelta::seconds(30),
            Limit::SlotFraction if past => slot += chrono::TimeDelta::milliseconds(500),
            Limit::Slot | Limit::SlotSeconds | Limit::SlotFraction => {}
        }
        // Fractions of a second only when there are some.
        let slot_text = slot.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let mut body =
            json!({ "items": lines, "deliveryInfo": { "address": address, "preferredTimeSlot": slot_text } });
        if let Some(description) = description {
            body["description"] = json!(description);
        }
        body
    }

    async fn place_once(
        &self,
        key: &str,
        body: &Value,
        asked: &AskedOrder,
        at_once: bool,
        marks: &[&'static str],
    ) -> Option<Answer> {
        let answer = self.call(Request::post("/api/v1/order", Some(body), Some(key)), true).await;
        let mut event = self.event(Action::PlaceOrder, Some(key), answer.as_ref(), None);
        event.asked = Some(asked.clone());
        event.at_once = at_once;
        event.behaviours = marks.to_vec();
        self.push(event);
        answer.ok()
    }

    /// Places an order, retrying the same key after no answer, 5xx or 409 in-progress;
    /// sometimes sends the key twice at once. Returns the order to poll if it answered 202.
    async fn place(&self, key: &str, request: &(Value, AskedOrder), double: bool) -> Option<OrderId> {
        self.place_marked(key, request, double, false, &[]).await
    }

    /// [`Self::place`]; `at_once` marks the first attempt as one of two similar orders
    /// sent at once under two keys.
    async fn place_marked(
        &self,
        key: &str,
        (body, asked): &(Value, AskedOrder),
        double: bool,
        at_once: bool,
        marks: &[&'static str],
    ) -> Option<OrderId> {
        for attempt in 0..STEP_ATTEMPTS_MAX {
            let first: &[&'static str] = if attempt == 0 { marks } else { &[] };
            let answer = if double && attempt == 0 {
                // Each twin is recorded when its own answer arrives.
                let twins: Vec<&'static str> = first.iter().copied().chain(["double_submit"]).collect();
                tokio::join!(
                    self.place_once(key, body, asked, false, &twins),
                    self.place_once(key, body, asked, false, &twins)
                )
                .0
            } else {
                self.place_once(key, body, asked, at_once && attempt == 0, first).await
            };
            let Some(answer) = answer else {
                self.pause(500).await;
                continue;
            };
            let order_id = answer.order_id();
            if let Some(order_id) = order_id {
                self.board.borrow_mut().entry(self.index).or_default().push(order_id);
            }
            match answer.status {
                202 => return order_id,
                409 if answer.problem() == Some(ProblemType::IdempotencyRequestInProgress) => self.pause(1_000).await,
                status if status >= 500 => self.pause(500 + 250 * u64::from(attempt)).await,
                _ => return None,
            }
        }
        self.give_up(Action::PlaceOrder);
        None
    }

    /// Places an order but gives up waiting after `abandon_ms` (the connection is dropped
    /// while the saga may still run), then repeats the key soon, late, or never.
    async fn place_abandoning(
        &mut self,
        key: &str,
        request: &(Value, AskedOrder),
        abandon_ms: u64,
        retry_after_ms: Option<u64>,
        late: &mut Vec<(u64, String, (Value, AskedOrder))>,
        marks: &[&'static str],
    ) -> Option<OrderId> {
        let (body, asked) = request;
        // Waits at most `abandon_ms`; then the connection is dropped.
        let (cookie, session) = self.credentials(true);
        let answer = self
            .send_as(Request::post("/api/v1/order", Some(body), Some(key)), cookie.as_deref(), session, abandon_ms)
            .await;
        let mut event = self.event(Action::PlaceOrder, Some(key), answer.as_ref(), None);
        event.asked = Some(asked.clone());
        event.abandoned = answer.is_err();
        event.behaviours = marks.to_vec();
        if event.abandoned {
            event.behaviours.push("abandoned");
        }
        self.push(event);
        if let Ok(answer) = answer {
            let order_id = answer.order_id();
            if let Some(order_id) = order_id {
                self.board.borrow_mut().entry(self.index).or_default().push(order_id);
            }
            let in_progress = answer.problem() == Some(ProblemType::IdempotencyRequestInProgress);
            match answer.status {
                202 => return order_id,
                status if status < 500 && !in_progress => return None,
                _ => {}
            }
        }
        match retry_after_ms {
            Some(after) if after < LATE_RETRY_MS => {
                self.pause(after).await;
                self.place(key, request, false).await
            }
            Some(after) => {
                late.push((self.elapsed_ms() + after, key.to_string(), request.clone()));
                None
            }
            None => None,
        }
    }

    /// Repeats abandoned keys late: when due, but not before the cluster has healed and
    /// settled a little, and early enough to finish within the liveness phase.
    async fn retry_late(&mut self, mut late: Vec<(u64, String, (Value, AskedOrder))>) -> Vec<OrderId> {
        let earliest = self.scenario.safety_ms + LATE_RETRY_AFTER_HEAL_MS;
        // Soon after the heal: a run costs what it simulates, and a stuck key shows as well
        // at 3 s after the heal as at 30 s.
        let latest = earliest + LATE_RETRY_WINDOW_MS;
        late.sort_by_key(|(due, _, _)| *due);
        let mut pending = Vec::new();
        for (due, key, request) in late {
            let at = due.max(earliest).min(latest);
            self.pause(at.saturating_sub(self.elapsed_ms())).await;
            pending.extend(self.place_marked(&key, &request, false, false, &["late_retry"]).await);
        }
        pending
    }

    async fn poll(&mut self, order_id: OrderId) {
        let deadline = self.scenario.safety_ms + self.scenario.liveness_ms - 2_000;
        while self.elapsed_ms() < deadline {
            let answer = self.call(Request::get(&format!("/api/v1/order/{order_id}")), true).await;
            self.record(Action::PollOrder, None, answer.as_ref(), None);
            if let Ok(answer) = answer {
                if answer.status == 200 && answer.order_status().is_some_and(OrderStatus::is_final) {
                    return;
                }
            }
            self.pause(POLL_INTERVAL_MS).await;
        }
    }

    /// A GET whose answer is recorded; the body when it answered 200.
    async fn read(&mut self, action: Action, path: &str) -> Option<Value> {
        let answer = self.call(Request::get(path), true).await;
        self.record(action, None, answer.as_ref(), None);
        answer.ok().filter(|a| a.status == 200).map(|a| a.body)
    }

    /// After healing: one order the shopper can afford (it deposits first if need be), for
    /// the product with the most stock, in a slot no planned order uses, unlike any of its
    /// live orders. A correct store confirms it.
    async fn last_order(&mut self) {
        let begin_ms = self.scenario.safety_ms + LAST_ORDER_AFTER_HEAL_MS;
        let now = self.elapsed_ms();
        if now < begin_ms {
            self.pause(begin_ms - now).await;
        }
        let Some(catalog) = self.read(Action::ReadCatalog, "/api/v1/warehouse/products").await else { return };
        let catalog: Vec<Product> = serde_json::from_value(catalog).unwrap_or_default();
        let Some(mine) = self.read(Action::ListOrders, "/api/v1/orders").await else { return };
        let mine: Vec<Order> = serde_json::from_value(mine).unwrap_or_default();
        let live: Vec<BTreeMap<ProductId, i64>> =
            mine.iter().filter(|o| o.status != OrderStatus::Failed).map(|o| SeenOrder::from_order(o).items).collect();
        let Some(items) = unlike_any(&catalog, &live) else {
            return; // nothing left to sell: the checks confirm it from the warehouse's rows
        };
        let price_of = |item: &PlannedItem| {
            let price = catalog.iter().find(|p| p.product_id == item.product).map_or(0, |p| p.price.cents());
            price.saturating_mul(item.quantity)
        };
        let price_cents: i64 = items.iter().map(price_of).sum();
        let Some(account) = self.read(Action::ReadAccount, "/api/v1/billing/accounts/me").await else { return };
        let balance_cents = serde_json::from_value::<Account>(account).map_or(0, |a| a.balance.cents());
        if balance_cents < price_cents {
            let amount = (price_cents - balance_cents + 99) / 100;
            let key = format!("last-deposit-{}", self.index);
            let deposited = self.deposit_until_answered(&key, amount).await;
            if deposited.is_none() {
                return;
            }
        }
        let request = self.order_body(&items, LAST_ORDER_SLOT_HOUR + self.index, true);
        let key = format!("last-order-{}", self.index);
        if let Some(order_id) = self.place(&key, &request, false).await {
            self.poll(order_id).await;
        }
    }

    /// `GET /api/v1/warehouse/products/{id}`, recorded with the id asked.
    async fn read_product(&mut self, product: ProductId) {
        let path = format!("/api/v1/warehouse/products/{product}");
        let answer = self.call(Request::get(&path), true).await;
        let mut event = self.event(Action::ReadProduct, None, answer.as_ref(), None);
        let answered = answer
            .ok()
            .filter(|a| a.status == 200)
            .and_then(|a| serde_json::from_value::<Product>(a.body).ok())
            .map(|p| (p.product_id, p.name, p.price.cents(), p.available));
        event.product = Some(SeenProduct { asked: product, answered });
        self.push(event);
    }

    /// Once its last order is final: the shopper's orders, transactions and notifications,
    /// the delivery slots and its first order's first product, each read once, for the
    /// listings and contract checks to hold against the final databases. (Read before the
    /// orders instead, the extra round trips moved the seeds that stage `status-backwards`
    /// and `no-recovery` past the planted-bug test's 20.)
    async fn final_reads(&mut self) {
        self.read(Action::ListOrders, "/api/v1/orders").await;
        self.read(Action::ReadTransactions, "/api/v1/billing/transactions").await;
        self.read(Action::ReadNotifications, "/api/v1/notifications").await;
        self.read(Action::ReadSlots, "/api/v1/deliveries/slots").await;
        if let Some(item) = self.plan.orders.first().and_then(|o| o.items.first()) {
            self.read_product(item.product).await;
        }
    }

    /// A deposit sent at the same moment as order `number`: with a key, retried under it
    /// until acknowledged (or given up); without one, sent once.
    async fn racing_deposit(&self, number: usize, deposit: Option<crate::plan::RacingDeposit>) {
        let Some(deposit) = deposit else { return };
        let amount = deposit.amount as i64;
        let body = json!({ "amount": amount });
        let key = deposit.keyed.then(|| format!("deposit-{}-{number}", self.index));
        let attempts = if deposit.keyed { STEP_ATTEMPTS_MAX } else { 1 };
        for attempt in 0..attempts {
            let answer = self.call(Request::post("/api/v1/billing/deposit", Some(&body), key.as_deref()), true).await;
            let mut event = self.event(Action::Deposit, key.as_deref(), answer.as_ref(), Some(amount * 100));
            event.at_once = true;
            self.push(event);
            if answer.is_ok_and(|a| a.status == 200) {
                return;
            }
            self.pause(200 * u64::from(attempt + 1)).await;
        }
        if deposit.keyed {
            self.give_up(Action::Deposit);
        }
    }

    /// Repeats `key` with another body (one more unit of the first item), once the store
    /// has answered the key in a way that shows it is taken: 422 key-reused is the only
    /// answer the contract allows (503 or none under a fault).
    async fn reuse_key(&self, key: &str, order: &PlannedOrder) {
        let taken = self.history.borrow().iter().any(|e| {
            e.shopper == self.index
                && e.action == Action::PlaceOrder
                && e.key.as_deref() == Some(key)
                && match e.status {
                    Some(200..=202) => true,
                    Some(409 | 422) => e.problem_type() != Some(ProblemType::IdempotencyKeyReused),
                    _ => false,
                }
        });
        if !taken {
            return;
        }
        let mut items = order.items.clone();
        items[0].quantity += 1;
        let (body, _) = self.order_body(&items, order.slot_hour, false);
        let answer = self.call(Request::post("/api/v1/order", Some(&body), Some(key)), true).await;
        self.record(Action::ReuseKey, Some(key), answer.as_ref(), None);
    }

    /// Now and then: read another shopper's order, or call without a session.
    async fn side_trip(&mut self, order: &PlannedOrder) {
        if order.edge_bodies {
            let at = Limit::AT.map(|limit| (limit, false, Action::AtLimit));
            let past = Limit::AT.into_iter().chain(Limit::PAST_ONLY).map(|limit| (limit, true, Action::PastLimit));
            for (limit, past, action) in at.into_iter().chain(past) {
                let key = format!("edge-{:016x}", self.draw.range(1, u64::MAX - 1));
                let body = self.edge_body(limit, past, order.slot_hour);
                let answer = self.call(Request::post("/api/v1/order", Some(&body), Some(&key)), true).await;
                self.record(action, Some(&key), answer.as_ref(), None);
            }
        }
        if order.peek {
            let others: Vec<(u32, OrderId)> = self
                .board
                .borrow()
                .iter()
                .filter(|(who, _)| **who != self.index)
                .flat_map(|(who, ids)| ids.iter().map(|id| (*who, *id)))
                .collect();
            if !others.is_empty() {
                let (owner, order_id) = *self.draw.pick(&others);
                let answer = self.call(Request::get(&format!("/api/v1/order/{order_id}")), true).await;
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
            let answer = self.call(Request::get(path), false).await;
            self.record(Action::Anonymous, None, answer.as_ref(), None);
        }
        if order.internal {
            // A service-to-service route, with a valid session: not reachable (404).
            let order_id = Uuid::from_u128(u128::from(self.draw.range(1, u64::MAX - 1)));
            let (path, body) = match self.draw.range(0, 3) {
                0 => (
                    "/api/v1/billing/withdraw".to_string(),
                    json!({ "orderId": order_id, "userId": order_id, "amount": 1 }),
                ),
                1 => ("/api/v1/warehouse/reserve".to_string(), json!({ "orderId": order_id, "items": [] })),
                2 => (format!("/api/v1/billing/withdraw/cancel/{order_id}"), json!({})),
                _ => (
                    "/api/v1/notifications/events".to_string(),
                    json!({ "type": "ORDER_CONFIRMED", "orderId": order_id, "userId": order_id, "message": "forged" }),
                ),
            };
            let answer = self.call(Request::post(&path, Some(&body), None), true).await;
            self.record(Action::Internal, None, answer.as_ref(), None);
        }
        if order.forged {
            let forged = format!("session={:032x}", self.draw.range(1, u64::MAX - 1));
            let path = *self.draw.pick(&["/api/v1/orders", "/api/v1/billing/accounts/me", "/auth/profile/me"]);
            let answer = self.send_as(Request::get(path), Some(&forged), None, ANSWER_TIMEOUT_MS).await;
            self.record(Action::Forged, None, answer.as_ref(), None);
        }
        if order.snoop {
            let answer = self.call(Request::get("/api/v1/billing/transactions"), true).await;
            self.record(Action::ReadTransactions, None, answer.as_ref(), None);
            let answer = self.call(Request::get("/api/v1/notifications"), true).await;
            self.record(Action::ReadNotifications, None, answer.as_ref(), None);
        }
    }
}

/// The entries of a transactions answer, or what is wrong with its shape.
fn listed_transactions(body: &Value) -> Result<Vec<Listed>, String> {
    let transactions = serde_json::from_value::<Vec<Transaction>>(body.clone())
        .map_err(|error| format!("not a list of transactions: {error}"))?;
    let entry = |t: &Transaction| Listed::Transaction {
        id: t.transaction_id,
        kind: t.kind,
        amount_cents: t.amount.cents(),
        order_id: t.order_id,
    };
    Ok(transactions.iter().map(entry).collect())
}

/// The entries of a notifications answer, or what is wrong with its shape.
fn listed_notifications(body: &Value) -> Result<Vec<Listed>, String> {
    let notifications = serde_json::from_value::<Vec<Notification>>(body.clone())
        .map_err(|error| format!("not a list of notifications: {error}"))?;
    let entry = |n: &Notification| Listed::Notification {
        id: n.id,
        kind: n.kind,
        order_id: n.order_id,
        amount_cents: n.amount.map(|a| a.cents()),
    };
    Ok(notifications.iter().map(entry).collect())
}

/// Items in stock unlike any of `live` (a similar order would be refused as a duplicate):
/// one line of the most available product in the smallest quantity that differs, else two
/// lines of one unit each.
fn unlike_any(catalog: &[Product], live: &[BTreeMap<ProductId, i64>]) -> Option<Vec<PlannedItem>> {
    let mut stocked: Vec<&Product> = catalog.iter().filter(|p| p.available > 0).collect();
    stocked.sort_by_key(|p| std::cmp::Reverse(p.available));
    let unlike = |items: &[PlannedItem]| {
        let signature: BTreeMap<ProductId, i64> = items.iter().map(|i| (i.product, i.quantity)).collect();
        !live.contains(&signature)
    };
    for product in &stocked {
        for quantity in 1..=product.available.min(3) {
            let items = vec![PlannedItem { product: product.product_id, quantity }];
            if unlike(&items) {
                return Some(items);
            }
        }
    }
    for (index, first) in stocked.iter().enumerate() {
        for second in &stocked[index + 1..] {
            let items = vec![
                PlannedItem { product: first.product_id, quantity: 1 },
                PlannedItem { product: second.product_id, quantity: 1 },
            ];
            if unlike(&items) {
                return Some(items);
            }
        }
    }
    None
}
