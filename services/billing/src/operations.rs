//! Withdraw and refund by order id, kept exactly-once by the shared operation records.

use crate::store::{account_of, change_balance, insert_transaction};
use contracts::billing::TransactionType;
use contracts::notification::{NotificationEvent, NotificationType};
use contracts::saga::{reason, StepResult, WithdrawRequest};
use contracts::{AccountId, Money, OrderId, Timestamp, TransactionId, UserId};
use platform::operations::{action_step, compensation_step};
use platform::outbox::enqueue as enqueue_event;
use platform::storage::Cached;
use rusqlite::{Connection, OptionalExtension};

/// Debits the order's amount once; refusals are stored too, so a repeat gets the same answer.
pub fn withdraw(
    tx: &Connection,
    request: &WithdrawRequest,
    transaction_id: TransactionId,
    now: Timestamp,
) -> rusqlite::Result<StepResult> {
    #[cfg(feature = "planted-bugs")]
    if let Some(answer) = crate::planted::withdraw_twice(tx, request, transaction_id, now)? {
        return Ok(answer);
    }
    action_step(tx, "withdraw", request.order_id, now, |tx| {
        #[cfg(feature = "planted-bugs")]
        if let Some(refusal) = crate::planted::reject_all() {
            return Ok(refusal);
        }
        let account = match account_of(tx, request.user_id)? {
            None => return Ok(StepResult::refused(reason::NO_ACCOUNT)),
            Some(account) if account.balance < request.amount => {
                return Ok(StepResult::refused(reason::INSUFFICIENT_FUNDS))
            }
            Some(account) => account,
        };
        change_balance(tx, account.account_id, -request.amount.cents())?;
        insert_transaction(
            tx,
            transaction_id,
            account.account_id,
            TransactionType::Withdraw,
            request.amount,
            Some(request.order_id),
            now,
        )?;
        let event = NotificationEvent {
            kind: NotificationType::PaymentDebited,
            order_id: request.order_id,
            user_id: request.user_id,
            amount: Some(request.amount),
            message: format!("{} debited for order {}", request.amount, request.order_id),
            occurred_at: None,
        };
        enqueue_event(tx, &event, now)?;
        Ok(StepResult::ok("withdrawn", Some(transaction_id)))
    })
}

/// Refunds the order's withdrawal if it was applied; otherwise leaves a tombstone.
pub fn cancel_withdraw(
    tx: &Connection,
    order_id: OrderId,
    refund_id: TransactionId,
    now: Timestamp,
) -> rusqlite::Result<StepResult> {
    #[cfg(feature = "planted-bugs")]
    if let Some(answer) = crate::planted::no_tombstone(tx, order_id)? {
        return Ok(answer);
    }
    compensation_step(tx, "withdraw", order_id, now, |tx| {
        let (account_id, amount_cents, user_id): (AccountId, i64, UserId) = tx
            .query_row_cached(
                "SELECT t.account_id, t.amount_cents, a.user_id FROM transactions t JOIN accounts a ON a.id = t.account_id
                 WHERE t.order_id = ?1 AND t.type = 'WITHDRAW'",
                [order_id.to_string()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        let amount = Money::from_cents(amount_cents);
        change_balance(tx, account_id, amount_cents)?;
        insert_transaction(tx, refund_id, account_id, TransactionType::Refund, amount, Some(order_id), now)?;
        let event = NotificationEvent {
            kind: NotificationType::PaymentRefunded,
            order_id,
            user_id,
            amount: Some(amount),
            message: format!("{amount} refunded for order {order_id}"),
            occurred_at: None,
        };
        enqueue_event(tx, &event, now)
    })
}
