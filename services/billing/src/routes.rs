//! Billing's HTTP routes: thin handlers over the store and the operations.

use crate::operations::{cancel_withdraw, withdraw};
use crate::store::{account_of, change_balance, insert_transaction, transactions_of};
use crate::Billing;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use contracts::billing::{Account, DepositRequest, DepositResponse, Transaction, TransactionType};
use contracts::order::IdempotencyKey;
use contracts::saga::{StepResult, WithdrawRequest};
use contracts::Money;
use contracts::ProblemType;
use contracts::{AccountId, OrderId, TransactionId};
use platform::auth::{Auth, Service, User};
use platform::json::{idempotency_key, Json, Path};
use platform::operations::step_endpoint;
use platform::sql::time_text;
use platform::storage::Cached;
use platform::trace::RequestContext;
use platform::ApiError;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;

type Shared = axum::extract::State<Arc<Billing>>;

pub fn routes(billing: Arc<Billing>, auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/billing/accounts", post(open_account))
        .route("/api/v1/billing/accounts/me", get(my_account))
        .route("/api/v1/billing/deposit", post(deposit))
        .route("/api/v1/billing/transactions", get(transactions))
        .route("/api/v1/billing/withdraw", post(withdraw_step))
        .route("/api/v1/billing/withdraw/cancel/{order_id}", post(cancel_step))
        .layer(Extension(auth))
        .with_state(billing)
}

#[utoipa::path(post, path = "/api/v1/billing/accounts", operation_id = "openAccount", tag = "billing", security(("userToken" = [])),
    responses(
        (status = 201, description = "The user's new account", body = Account),
        (status = 200, description = "The user's account, opened earlier", body = Account),
    ))]
async fn open_account(state: Shared, User(user_id): User) -> Result<impl IntoResponse, ApiError> {
    let account_id: AccountId = state.env.ids.id();
    let now = state.env.clock.now_utc();
    let (created, account) = state
        .db
        .write(|tx| {
            if let Some(account) = account_of(tx, user_id)? {
                return Ok::<_, ApiError>((false, account));
            }
            tx.execute_cached(
                "INSERT INTO accounts (id, user_id, balance_cents, created_at) VALUES (?1, ?2, 0, ?3)",
                params![account_id.to_string(), user_id.to_string(), time_text(now)],
            )?;
            let account = account_of(tx, user_id)?.ok_or_else(|| ApiError::internal("account vanished"))?;
            Ok((true, account))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(account)))
}

#[utoipa::path(get, path = "/api/v1/billing/accounts/me", operation_id = "getAccount", tag = "billing", security(("userToken" = [])),
    responses(
        (status = 200, description = "The user's account and balance", body = Account),
        (status = 404, description = "/problems/not-found: no account yet", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn my_account(state: Shared, User(user_id): User) -> Result<axum::Json<Account>, ApiError> {
    let account = state.db.read(|c| account_of(c, user_id))?;
    account
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("no account; open one with POST /api/v1/billing/accounts"))
}

#[utoipa::path(post, path = "/api/v1/billing/deposit", operation_id = "deposit", tag = "billing", security(("userToken" = [])),
    params(("Idempotency-Key" = Option<IdempotencyKey>, Header, description = "1-255 printable ASCII characters; a repeat with the same amount answers the first deposit")),
    request_body = DepositRequest,
    responses(
        (status = 200, description = "Deposited (or the same key's earlier deposit)", body = DepositResponse),
        (status = 400, description = "/problems/invalid-amount; /problems/idempotency-key-invalid", body = contracts::Problem, content_type = "application/problem+json"),
        (status = 404, description = "/problems/not-found: no account yet", body = contracts::Problem, content_type = "application/problem+json"),
        (status = 422, description = "/problems/idempotency-key-reused: the key was used with another amount", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn deposit(
    state: Shared,
    User(user_id): User,
    headers: HeaderMap,
    Json(request): Json<DepositRequest>,
) -> Result<axum::Json<DepositResponse>, ApiError> {
    let key = idempotency_key(&headers)?;
    let amount = Money::parse_positive(&request.amount.to_string())
        .map_err(|e| ApiError::bad_request(ProblemType::InvalidAmount, e.to_string()))?;
    let transaction_id: TransactionId = state.env.ids.id_at(state.env.clock.now_utc());
    let now = state.env.clock.now_utc();
    let response = state.db.write(|tx| {
        if let Some(key) = &key {
            let earlier: Option<(i64, TransactionId, i64)> = tx
                .query_row_cached(
                    "SELECT amount_cents, transaction_id, new_balance_cents FROM deposit_keys WHERE user_id = ?1 AND key = ?2",
                    params![user_id.to_string(), key.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            if let Some((amount_cents, transaction_id, new_balance_cents)) = earlier {
                if amount_cents != amount.cents() {
                    return Err(ApiError::unprocessable(ProblemType::IdempotencyKeyReused, "this Idempotency-Key was used with another amount"));
                }
                return Ok(DepositResponse { success: true, new_balance: Money::from_cents(new_balance_cents), transaction_id });
            }
        }
        let account = account_of(tx, user_id)?.ok_or_else(|| ApiError::not_found("no account; open one first"))?;
        let new_balance = change_balance(tx, account.account_id, amount.cents())?;
        insert_transaction(tx, transaction_id, account.account_id, TransactionType::Deposit, amount, None, now)?;
        if let Some(key) = &key {
            tx.execute_cached(
                "INSERT INTO deposit_keys (user_id, key, amount_cents, transaction_id, new_balance_cents, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user_id.to_string(), key.as_str(), amount.cents(), transaction_id.to_string(), new_balance, time_text(now)],
            )?;
        }
        Ok(DepositResponse { success: true, new_balance: Money::from_cents(new_balance), transaction_id })
    })
    .await?;
    Ok(axum::Json(response))
}

#[utoipa::path(get, path = "/api/v1/billing/transactions", operation_id = "listTransactions", tag = "billing", security(("userToken" = [])),
    responses((status = 200, description = "The account's transactions, newest first (at most 1,000)", body = Vec<Transaction>)))]
async fn transactions(state: Shared, User(user_id): User) -> Result<impl IntoResponse, ApiError> {
    let listed = state.db.read(|c| match account_of(c, user_id)? {
        Some(account) => transactions_of(c, account.account_id),
        None => Ok(Vec::new()),
    })?;
    Ok(axum::Json(listed))
}

#[utoipa::path(post, path = "/api/v1/billing/withdraw", operation_id = "withdraw", tag = "billing (internal)", security(("serviceToken" = [])),
    request_body = WithdrawRequest,
    responses(
        (status = 200, description = "The saga's payment step: applied, or refused with the reason in `message`", body = StepResult),
        (status = 400, description = "/problems/invalid-amount", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn withdraw_step(
    state: Shared,
    _caller: Service,
    Extension(context): Extension<RequestContext>,
    Json(request): Json<WithdrawRequest>,
) -> Result<axum::Json<StepResult>, ApiError> {
    if request.amount.cents() <= 0 {
        return Err(ApiError::bad_request(ProblemType::InvalidAmount, "amount must be greater than zero"));
    }
    let transaction_id: TransactionId = state.env.ids.id_at(state.env.clock.now_utc());
    let result = step_endpoint(&state.env, &state.db, request.order_id, &context, |tx, now| {
        withdraw(tx, &request, transaction_id, now)
    })
    .await?;
    state.outbox_wakeup.notify_one();
    Ok(axum::Json(result))
}

#[utoipa::path(post, path = "/api/v1/billing/withdraw/cancel/{order_id}", operation_id = "cancelWithdraw", tag = "billing (internal)", security(("serviceToken" = [])),
    params(("order_id" = Uuid, Path, description = "The order whose payment is refunded")),
    responses((status = 200, description = "The payment's compensation: refunded, or nothing to undo", body = StepResult)))]
async fn cancel_step(
    state: Shared,
    _caller: Service,
    Extension(context): Extension<RequestContext>,
    Path(order_id): Path<OrderId>,
) -> Result<axum::Json<StepResult>, ApiError> {
    let refund_id: TransactionId = state.env.ids.id_at(state.env.clock.now_utc());
    let result = step_endpoint(&state.env, &state.db, order_id, &context, |tx, now| {
        cancel_withdraw(tx, order_id, refund_id, now)
    })
    .await?;
    state.outbox_wakeup.notify_one();
    Ok(axum::Json(result))
}

/// Billing's routes: the public ones (through the gateway) and the saga's steps.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(open_account, my_account, deposit, transactions, withdraw_step, cancel_step),
    components(schemas(contracts::order::IdempotencyKey))
)]
pub struct Api;
