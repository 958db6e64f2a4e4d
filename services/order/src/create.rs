//! `POST /api/v1/order`: the contract's decision table, in its order.

use crate::routes::Shared;
use crate::store::{insert_key, insert_order, key_record, order, similar_order, KeyRecord, NewOrder};
use crate::Orders;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{TimeDelta, Timelike};
use contracts::catalog::Product;
use contracts::order::{CreateOrderRequest, IdempotencyKey, Order, OrderItem, OrderStatus, ITEMS_MAX, QUANTITY_MAX};
use contracts::ProblemType;
use contracts::Timestamp;
use contracts::{Money, ServiceName};
use contracts::{OrderId, ProductId, UserId};
use http::Method;
use platform::auth::User;
use platform::client::OutboundRequest;
use platform::json::{parse_json, required_idempotency_key};
use platform::metrics::{IdempotencyLabels, IdempotencyOutcome};
use platform::probe::{self, Probe};
use platform::trace::RequestContext;
use platform::ApiError;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub const ADDRESS_LENGTH_MAX: usize = 500;
pub const DESCRIPTION_LENGTH_MAX: usize = 1000;
/// Seconds a client is asked to wait before repeating a request still in progress.
pub(crate) const RETRY_AFTER_S: u32 = 1;

/// Checks everything about the body that needs no other service.
fn validate(request: &CreateOrderRequest) -> Result<(), ApiError> {
    let invalid = |detail: &str| Err(ApiError::bad_request(ProblemType::InvalidOrder, detail));
    if request.items.is_empty() || request.items.len() > ITEMS_MAX {
        return invalid("items must hold 1-50 lines");
    }
    if request.items.iter().any(|i| !(1..=QUANTITY_MAX).contains(&i.quantity)) {
        return invalid("every quantity must be 1-1000");
    }
    // Lines of one product are reserved as one (the warehouse takes distinct products), so the
    // limit holds for their sum too; checked here, before any money moves.
    let mut merged: BTreeMap<ProductId, i64> = BTreeMap::new();
    for item in &request.items {
        *merged.entry(item.product_id).or_default() += item.quantity;
    }
    if merged.values().any(|quantity| *quantity > QUANTITY_MAX) {
        return invalid("the quantities of one product, added up over its lines, must be at most 1000");
    }
    let address = &request.delivery_info.address;
    if address.trim().is_empty() || address.chars().count() > ADDRESS_LENGTH_MAX {
        return invalid("deliveryInfo.address must be 1-500 characters");
    }
    let slot = request.delivery_info.preferred_time_slot;
    if slot.minute() != 0 || slot.second() != 0 || slot.nanosecond() != 0 {
        return invalid("deliveryInfo.preferredTimeSlot must be the start of an hour");
    }
    if request.description.as_ref().is_some_and(|d| d.chars().count() > DESCRIPTION_LENGTH_MAX) {
        return invalid("description must be at most 1000 characters");
    }
    Ok(())
}

/// Sorted (productId, quantity) pairs: equal for the same multiset of lines.
pub fn items_signature(request: &CreateOrderRequest) -> String {
    let mut pairs: Vec<(ProductId, i64)> = request.items.iter().map(|i| (i.product_id, i.quantity)).collect();
    pairs.sort();
    pairs.iter().map(|(p, q)| format!("{p}x{q}")).collect::<Vec<_>>().join(",")
}

/// A digest of what the request asks for (names and prices in items are ignored).
pub fn request_hash(request: &CreateOrderRequest) -> String {
    let lines: Vec<(ProductId, i64)> = request.items.iter().map(|i| (i.product_id, i.quantity)).collect();
    let canonical = serde_json::json!({
        "items": lines,
        "deliveryInfo": request.delivery_info,
        "description": request.description,
    });
    platform::ids::to_hex(&Sha256::digest(canonical.to_string().as_bytes()))
}

fn order_json(order: &Order) -> serde_json::Value {
    serde_json::to_value(order).unwrap_or_default()
}

fn order_response(status: StatusCode, order: &Order) -> Response {
    let location = format!("/api/v1/order/{}", order.id);
    (status, [(http::header::LOCATION, location)], axum::Json(order)).into_response()
}

impl Orders {
    fn load(&self, order_id: OrderId) -> Result<Order, ApiError> {
        self.db.read(|c| order(c, order_id))?.ok_or_else(|| ApiError::internal("the key's order is missing"))
    }

    /// Answers a key that was used before with the same body (steps 5, 6 and 7).
    fn answer_replay(&self, user_id: UserId, key: &IdempotencyKey, record: &KeyRecord) -> Result<Response, ApiError> {
        let order = self.load(record.order_id)?;
        if record.duplicate {
            probe::hit(Probe::DuplicateOrder);
            self.idempotency(IdempotencyOutcome::duplicate);
            return Err(duplicate(&order));
        }
        let waiting =
            self.waiting.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&(user_id, key.as_str().to_string()));
        if waiting {
            probe::hit(Probe::KeyInProgress);
            self.idempotency(IdempotencyOutcome::in_progress);
            return Err(ApiError::conflict(
                ProblemType::IdempotencyRequestInProgress,
                "an earlier request with this key is still being processed",
            )
            .with_retry_after(RETRY_AFTER_S));
        }
        probe::hit(Probe::KeyReplayed);
        self.idempotency(IdempotencyOutcome::replayed);
        Ok(order_response(StatusCode::OK, &order))
    }

    fn idempotency(&self, outcome: IdempotencyOutcome) {
        if let Some(metrics) = self.env.metrics.orders() {
            metrics.idempotency.get_or_create(&IdempotencyLabels { outcome }).inc();
        }
    }

    fn key_reused(&self) -> ApiError {
        self.idempotency(IdempotencyOutcome::key_reused);
        ApiError::unprocessable(
            ProblemType::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        )
    }

    /// Catalog prices of the requested products; unknown product → 400, unreachable → 503.
    /// Read from the price list while it is younger than `price_list_max_age_ms` and holds
    /// every requested product, else from the warehouse (which renews the list).
    async fn prices(
        &self,
        request: &CreateOrderRequest,
        context: &RequestContext,
    ) -> Result<BTreeMap<ProductId, Product>, ApiError> {
        let now = self.env.clock.now();
        let max_age = Duration::from_millis(self.config.price_list_max_age_ms);
        let cached = self.price_list.lock().unwrap_or_else(|p| p.into_inner()).as_ref().and_then(|list| {
            list.prices(request, now.checked_duration_since(list.read_at).is_some_and(|age| age < max_age))
        });
        if let Some(prices) = cached {
            return Ok(prices);
        }
        let call = OutboundRequest::new(Method::GET, "/api/v1/warehouse/products").idempotent(true);
        let unavailable =
            |detail: String| ApiError::unavailable(format!("catalog unavailable: {detail}"), RETRY_AFTER_S);
        let reply = self
            .client
            .send(self.peers.address(ServiceName::Warehouse), call, context, self.config.catalog_retry)
            .await;
        let catalog: Vec<Product> =
            reply.and_then(|r| r.success()).and_then(|r| r.json()).map_err(|e| unavailable(e.to_string()))?;
        let list = PriceList { read_at: now, products: catalog.into_iter().map(|p| (p.product_id, p)).collect() };
        let unknown = request.items.iter().find(|i| !list.products.contains_key(&i.product_id));
        let prices = match unknown {
            Some(unknown) => {
                Err(ApiError::bad_request(ProblemType::UnknownProduct, format!("no product {}", unknown.product_id)))
            }
            None => Ok(list.prices(request, true).unwrap_or_default()),
        };
        *self.price_list.lock().unwrap_or_else(|p| p.into_inner()) = Some(list);
        prices
    }

    fn price_order(
        &self,
        user_id: UserId,
        request: &CreateOrderRequest,
        catalog: &BTreeMap<ProductId, Product>,
        trace_id: &str,
    ) -> Result<NewOrder, ApiError> {
        let mut items = Vec::with_capacity(request.items.len());
        let mut total = Money::ZERO;
        for line in &request.items {
            let product = &catalog[&line.product_id];
            let line_total = product.price.checked_mul(line.quantity);
            total = line_total
                .and_then(|t| total.checked_add(t))
                .ok_or_else(|| ApiError::bad_request(ProblemType::InvalidOrder, "order total is too large"))?;
            items.push(OrderItem {
                product_id: line.product_id,
                name: product.name.clone(),
                quantity: line.quantity,
                price: product.price,
            });
        }
        Ok(NewOrder {
            id: self.env.ids.id_at(self.env.clock.now_utc()),
            user_id,
            price: total,
            items,
            delivery_info: request.delivery_info.clone(),
            description: request.description.clone(),
            items_signature: items_signature(request),
            trace_id: trace_id.to_string(),
        })
    }
}

/// The catalog's products as one read from the warehouse found them, and when (on the
/// service's monotonic clock). Only a product's name and price are taken from it: the
/// warehouse never changes either once it has the product (`warehouse::seed_catalog` adds
/// products and leaves existing ones alone), so a younger list prices an order as a fresh
/// read would. Stock is never taken from it; a product it lacks sends the order service back to
/// the warehouse, so an unknown product is still answered from a fresh read. Its size is the
/// catalog's, the size of one read.
pub(crate) struct PriceList {
    read_at: tokio::time::Instant,
    products: BTreeMap<ProductId, Product>,
}

impl PriceList {
    /// The requested products, when `fresh` and every one of them is on the list.
    fn prices(&self, request: &CreateOrderRequest, fresh: bool) -> Option<BTreeMap<ProductId, Product>> {
        if !fresh {
            return None;
        }
        request.items.iter().map(|i| self.products.get(&i.product_id).map(|p| (p.product_id, p.clone()))).collect()
    }
}

fn duplicate(order: &Order) -> ApiError {
    ApiError::conflict(
        ProblemType::DuplicateOrder,
        format!("a similar order {} was placed less than 5 minutes ago", order.number),
    )
    .with_order(order_json(order))
}

impl Orders {
    fn find_key(
        &self,
        connection: &Connection,
        user_id: UserId,
        key: &IdempotencyKey,
    ) -> rusqlite::Result<Option<KeyRecord>> {
        #[cfg(feature = "planted-bugs")]
        if let Some(found) = self.memory_keys.find(user_id, key) {
            return Ok(found);
        }
        key_record(connection, user_id, key.as_str())
    }

    fn store_key(
        &self,
        tx: &Connection,
        user_id: UserId,
        key: &IdempotencyKey,
        record: KeyRecord,
        now: Timestamp,
    ) -> rusqlite::Result<()> {
        #[cfg(feature = "planted-bugs")]
        if self.memory_keys.keep(user_id, key, &record) {
            return Ok(());
        }
        insert_key(tx, user_id, key.as_str(), &record, now)
    }

    /// Answers the request as a duplicate of `similar`, which its key then keeps answering.
    fn record_duplicate(
        &self,
        tx: &Connection,
        user_id: UserId,
        key: &IdempotencyKey,
        hash: &str,
        similar: OrderId,
        now: Timestamp,
    ) -> Result<Recorded<'_>, ApiError> {
        if self.find_key(tx, user_id, key)?.is_none() {
            let record = KeyRecord { request_hash: hash.to_string(), duplicate: true, order_id: similar };
            self.store_key(tx, user_id, key, record, now)?;
        }
        Ok(Recorded::Duplicate(similar))
    }

    /// The one transaction of a new request: the key (again, against a concurrent twin),
    /// the similar-order rule, then the order, its key and the saga's first log entries (its
    /// first call's start among them: `runner::begin`).
    fn record(
        &self,
        tx: &Connection,
        key: &IdempotencyKey,
        hash: &str,
        new_order: &NewOrder,
    ) -> Result<Recorded<'_>, ApiError> {
        let user_id = new_order.user_id;
        let now = self.env.clock.now_utc();
        let window_start = now - TimeDelta::milliseconds(self.config.similar_order_window_ms);
        let similar = |tx: &Connection| similar_order(tx, user_id, &new_order.items_signature, window_start);
        #[cfg(feature = "planted-bugs")]
        if let Some(found) = crate::planted::similar_first(|| similar(tx))? {
            return self.record_duplicate(tx, user_id, key, hash, found, now);
        }
        if let Some(record) = self.find_key(tx, user_id, key)? {
            return Ok(Recorded::Replay(record));
        }
        if let Some(found) = similar(tx)? {
            return self.record_duplicate(tx, user_id, key, hash, found, now);
        }
        insert_order(tx, new_order, now)?;
        let record = KeyRecord { request_hash: hash.to_string(), duplicate: false, order_id: new_order.id };
        self.store_key(tx, user_id, key, record, now)?;
        crate::runner::begin(tx, new_order.id, now)?;
        // Step 5's mark is set before the commit that follows, so no twin ever finds the key
        // without it; if the commit fails, dropping the answer drops the mark.
        Ok(Recorded::New(new_order.id, Waiting::hold(self, user_id, key)))
    }
}

enum Recorded<'a> {
    New(OrderId, Waiting<'a>),
    Replay(KeyRecord),
    Duplicate(OrderId),
}

/// `POST /api/v1/order`: the contract's steps 1-11 (`shared/spec/API.md`).
#[utoipa::path(post, path = "/api/v1/order", operation_id = "createOrder", tag = "order", security(("userToken" = [])),
    params(("Idempotency-Key" = IdempotencyKey, Header, description = "Required: 1-255 printable ASCII characters; the same key and body answer the same order")),
    request_body = CreateOrderRequest,
    responses(
        (status = 201, description = "Placed and confirmed within the request's deadline", body = Order,
            headers(("Location" = String, description = "The order's URL")), links(("getOrder" = (operation_id = "getOrder", parameters(("order_id" = "$response.body#/id")))))),
        (status = 200, description = "The same key and body as an earlier order: that order as it is now", body = Order, links(("getOrder" = (operation_id = "getOrder", parameters(("order_id" = "$response.body#/id")))))),
        (status = 202, description = "Recorded; its saga still runs (read it at `Location`)", body = Order,
            headers(("Location" = String, description = "The order's URL")), links(("getOrder" = (operation_id = "getOrder", parameters(("order_id" = "$response.body#/id")))))),
        (status = 400, description = "/problems/idempotency-key-missing; /problems/idempotency-key-invalid; /problems/invalid-order; /problems/unknown-product", body = contracts::Problem, content_type = "application/problem+json"),
        (status = 409, description = "/problems/duplicate-order: a similar order under another key less than 5 minutes ago (the order in `order`); /problems/idempotency-request-in-progress: an earlier request with this key still waits for its saga (`Retry-After`)", body = contracts::Problem, content_type = "application/problem+json", links(("getOrder" = (operation_id = "getOrder", parameters(("order_id" = "$response.body#/order/id")))))),
        (status = 422, description = "/problems/order-rejected: the saga failed, the reason in the order's `errorMessage` (the order in `order`); /problems/idempotency-key-reused: the key was used with another body", body = contracts::Problem, content_type = "application/problem+json", links(("getOrder" = (operation_id = "getOrder", parameters(("order_id" = "$response.body#/order/id")))))),
    ))]
pub async fn create_order(
    state: Shared,
    User(user_id): User,
    Extension(context): Extension<RequestContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    #[cfg(feature = "planted-bugs")]
    if let Some(unavailable) = crate::planted::unavailable_all() {
        return Err(unavailable);
    }
    let started = state.env.clock.now();
    let key = required_idempotency_key(&headers)?;
    let request: CreateOrderRequest = parse_json(&body)?;
    validate(&request)?;
    let hash = request_hash(&request);
    let earlier = state.db.read(|c| state.find_key(c, user_id, &key))?;
    let replay = earlier.as_ref().filter(|r| r.request_hash == hash);
    #[cfg(feature = "planted-bugs")]
    let replay = replay.filter(|_| !crate::planted::similar_before_key());
    if let Some(record) = replay {
        return state.answer_replay(user_id, &key, record);
    }
    let catalog = state.prices(&request, &context).await?;
    if earlier.as_ref().is_some_and(|r| r.request_hash != hash) {
        return Err(state.key_reused());
    }
    let new_order = state.price_order(user_id, &request, &catalog, &context.trace_id)?;
    place(&state, &key, &hash, &new_order, started).await
}

/// Records a priced request in one transaction and answers it: from the key when a twin got
/// there first (steps 4–7), else by starting the new order's saga (steps 8–10).
async fn place(
    state: &Arc<Orders>,
    key: &IdempotencyKey,
    hash: &str,
    new_order: &NewOrder,
    started: tokio::time::Instant,
) -> Result<Response, ApiError> {
    let user_id = new_order.user_id;
    let recorded = state.db.write(|tx| state.record(tx, key, hash, new_order)).await?;
    match recorded {
        Recorded::Replay(record) => {
            if record.request_hash != hash {
                return Err(state.key_reused());
            }
            state.answer_replay(user_id, key, &record)
        }
        Recorded::Duplicate(similar) => {
            probe::hit(Probe::DuplicateOrder);
            state.idempotency(IdempotencyOutcome::duplicate);
            Err(duplicate(&state.load(similar)?))
        }
        Recorded::New(order_id, waiting) => {
            state.idempotency(IdempotencyOutcome::created);
            if let Some(metrics) = state.env.metrics.orders() {
                metrics.created.inc();
            }
            platform::crash_point::here(platform::crash_point::CrashPoint::KeyCommitted).await;
            let elapsed = state.env.clock.now().saturating_duration_since(started);
            let remaining = Duration::from_millis(state.config.request_deadline_ms).saturating_sub(elapsed);
            await_saga(state, waiting, order_id, remaining).await
        }
    }
}

/// A request's place in `Orders::waiting` (step 5), taken before its key commits and given
/// up however the request ends: when its saga answers, at its deadline, when the commit fails,
/// there first, or when the client goes away and the server drops the handler anywhere on the
/// way (the saga runs on; a repeat of the key must then get step 6). Marks are counted, so
/// that one request giving its place up never takes another's (only the planted `MemoryKeys`
/// bug lets two requests record one key).
struct Waiting<'a> {
    orders: &'a Orders,
    entry: (UserId, String),
}

impl<'a> Waiting<'a> {
    fn hold(orders: &'a Orders, user_id: UserId, key: &IdempotencyKey) -> Waiting<'a> {
        let entry = (user_id, key.as_str().to_string());
        *orders.waiting.lock().unwrap_or_else(|p| p.into_inner()).entry(entry.clone()).or_default() += 1;
        Waiting { orders, entry }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.orders.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = waiting.get_mut(&self.entry) {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&self.entry);
            }
        }
    }
}

/// Starts the new order's saga and waits for it at most `remaining` (steps 8, 9, 10).
async fn await_saga(
    state: &Arc<Orders>,
    waiting: Waiting<'_>,
    order_id: OrderId,
    remaining: Duration,
) -> Result<Response, ApiError> {
    if let Some(mut done) = state.start_saga(order_id) {
        let _ = state.env.clock.timeout(remaining, done.wait_for(|finished| *finished)).await;
    }
    drop(waiting);
    let order = state.load(order_id)?;
    match order.status {
        OrderStatus::Confirmed => Ok(order_response(StatusCode::CREATED, &order)),
        OrderStatus::Failed => {
            let reason = order.error_message.clone().unwrap_or_default();
            let mut error =
                ApiError::unprocessable(ProblemType::OrderRejected, format!("the order was rejected: {reason}"))
                    .with_order(order_json(&order));
            error.location = Some(format!("/api/v1/order/{}", order.id));
            Err(error)
        }
        _ => {
            probe::hit(Probe::OrderAccepted);
            Ok(order_response(StatusCode::ACCEPTED, &order))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[(u128, i64)]) -> CreateOrderRequest {
        let items: Vec<serde_json::Value> = lines
            .iter()
            .map(
                |(product, quantity)| serde_json::json!({"productId": ProductId::from_u128(*product), "quantity": quantity}),
            )
            .collect();
        serde_json::from_value(serde_json::json!({
            "items": items,
            "deliveryInfo": {"address": "1 Test Street", "preferredTimeSlot": "2030-01-01T10:00:00Z"},
        }))
        .unwrap()
    }

    #[test]
    fn lines_of_one_product_are_limited_together() {
        assert!(validate(&request(&[(1, 600), (2, 600)])).is_ok());
        assert!(validate(&request(&[(1, 500), (1, 500)])).is_ok());
        let refused = validate(&request(&[(1, 600), (2, 1), (1, 600)])).unwrap_err();
        assert_eq!(refused.problem.status, 400);
        assert_eq!(refused.problem.kind, ProblemType::InvalidOrder);
    }

    /// A network with nobody on it: every connection is refused.
    struct NoNet;

    impl platform::Net for NoNet {
        fn bind<'a>(
            &'a self,
            _: &'a str,
        ) -> platform::BoxFuture<'a, std::io::Result<Box<dyn platform::net::Listener>>> {
            Box::pin(async { Err(std::io::ErrorKind::Unsupported.into()) })
        }
        fn connect<'a>(&'a self, _: &'a str) -> platform::BoxFuture<'a, std::io::Result<platform::net::BoxIo>> {
            Box::pin(async { Err(std::io::ErrorKind::ConnectionRefused.into()) })
        }
    }

    fn orders() -> Arc<Orders> {
        let start = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let clock: Arc<dyn platform::Clock> = Arc::new(platform::clock::ManualClock::new(start));
        let env = platform::Env::new(clock.clone(), Arc::new(NoNet), platform::Ids::from_seed(7));
        let secrets = platform::auth::Secrets { user_token_secret: vec![1; 32], service_token_secret: vec![2; 32] };
        let auth = Arc::new(platform::auth::Auth::new(clock, secrets, contracts::ServiceName::Order));
        Arc::new(Orders {
            client: platform::internal::InternalClient::new(env.clone(), auth),
            env,
            db: platform::storage::Db::open_memory(&crate::migrations()).unwrap(),
            peers: platform::internal::Peers::new(|service| format!("{service}:1")),
            config: crate::CONFIG,
            running: Default::default(),
            waiting: Default::default(),
            outbox_wakeup: Default::default(),
            price_list: Default::default(),
            #[cfg(feature = "planted-bugs")]
            memory_keys: Default::default(),
        })
    }

    fn product(id: u128) -> Product {
        Product {
            product_id: ProductId::from_u128(id),
            name: "thing".to_string(),
            price: Money::from_cents(1_500),
            available: 10,
        }
    }

    /// New orders are priced from the kept price list while it is younger than its age
    /// limit and names every requested product; otherwise the warehouse is asked (here
    /// nobody answers: 503, nothing priced).
    #[tokio::test(start_paused = true)]
    async fn orders_are_priced_from_the_kept_list_while_it_is_fresh_and_complete() {
        let state = orders();
        let context = RequestContext::background(&state.env.ids);
        let asked = |answer: Result<BTreeMap<ProductId, Product>, ApiError>| {
            answer.expect_err("the warehouse is unreachable").problem.status
        };
        assert_eq!(asked(state.prices(&request(&[(1, 2)]), &context).await), 503, "nothing kept yet");
        let kept = [(ProductId::from_u128(1), product(1))].into_iter().collect();
        *state.price_list.lock().unwrap() = Some(PriceList { read_at: state.env.clock.now(), products: kept });
        let prices = state.prices(&request(&[(1, 2)]), &context).await.expect("priced from the list");
        assert_eq!(prices[&ProductId::from_u128(1)].price, Money::from_cents(1_500));
        tokio::time::advance(Duration::from_millis(crate::CONFIG.price_list_max_age_ms - 1)).await;
        assert!(state.prices(&request(&[(1, 2)]), &context).await.is_ok(), "still fresh");
        assert_eq!(asked(state.prices(&request(&[(1, 2), (2, 1)]), &context).await), 503, "a product it lacks");
        tokio::time::advance(Duration::from_millis(crate::CONFIG.price_list_max_age_ms)).await;
        assert_eq!(asked(state.prices(&request(&[(1, 2)]), &context).await), 503, "too old");
    }

    fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    }

    fn order_host() -> Option<String> {
        Some("order".to_string())
    }

    /// Step 5 holds from the moment the key commits: a twin that arrives between the commit
    /// and the start of the wait gets 409 in progress, not the new order. The mark goes with
    /// the request, also when the request is dropped there (the client went away): a twin
    /// then gets step 6.
    #[tokio::test]
    async fn a_twin_in_the_window_after_the_key_commits_is_told_in_progress() {
        let state = orders();
        let user_id = UserId::from_u128(42);
        let key = IdempotencyKey::parse("k-window").unwrap();
        let request = request(&[(1, 2)]);
        let hash = request_hash(&request);
        let catalog: BTreeMap<ProductId, Product> = [(ProductId::from_u128(1), product(1))].into_iter().collect();
        let priced = || state.price_order(user_id, &request, &catalog, "trace").unwrap();
        let started = state.env.clock.now();

        // The first request stops right after its transaction committed (the crash point
        // fires there and never returns): the window a twin may fall into.
        platform::crash_point::enable(order_host);
        platform::crash_point::arm(0, platform::crash_point::CrashPoint::KeyCommitted, "order", 1);
        let first_order = priced();
        let mut first = Box::pin(place(&state, &key, &hash, &first_order, started));
        assert!(poll_once(first.as_mut()).is_pending());
        assert_eq!(platform::crash_point::take_requests().len(), 1, "stopped at the commit");

        for twin in 0..2 {
            let answer = place(&state, &key, &hash, &priced(), started).await;
            let problem = answer.expect_err("a twin in the window must not get the order").problem;
            assert_eq!(
                (problem.status, problem.kind.known()),
                (409, Some(ProblemType::IdempotencyRequestInProgress)),
                "twin {twin}"
            );
        }

        drop(first);
        let answer = place(&state, &key, &hash, &priced(), started).await.expect("step 6 once the first is gone");
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(state.waiting.lock().unwrap().is_empty(), "no mark left behind");
        platform::crash_point::take();
    }

    /// docs/API.md names the retry budget of a saga action as the code has it.
    #[test]
    fn the_docs_name_the_action_retry_budget() {
        let docs = include_str!("../../../docs/API.md").split_whitespace().collect::<Vec<_>>().join(" ");
        let policy = crate::runner::ACTION_RETRY;
        let named = format!("{} attempts of {} s", policy.attempt_count_max, policy.attempt_timeout_ms / 1000);
        assert!(docs.contains(&named), "docs/API.md should say {named:?}");
    }

    /// The limits count characters (as the docs say), not UTF-8 bytes.
    #[test]
    fn address_and_description_limits_count_characters() {
        let mut order = request(&[(1, 1)]);
        order.delivery_info.address = "é".repeat(ADDRESS_LENGTH_MAX);
        order.description = Some("ж".repeat(DESCRIPTION_LENGTH_MAX));
        assert!(validate(&order).is_ok(), "500 and 1,000 two-byte characters are within the limits");
        order.delivery_info.address.push('é');
        assert_eq!(validate(&order).unwrap_err().problem.kind, ProblemType::InvalidOrder);
        order.delivery_info.address = "é".repeat(ADDRESS_LENGTH_MAX);
        order.description = Some("ж".repeat(DESCRIPTION_LENGTH_MAX + 1));
        assert_eq!(validate(&order).unwrap_err().problem.kind, ProblemType::InvalidOrder);
    }
}
