//! Billing's planted bugs (`platform::bugs`), compiled only with the `planted-bugs`
//! feature: each is a hook's body, taken only while a run plants its bug.

use crate::store::{account_of, change_balance, insert_transaction};
use contracts::billing::TransactionType;
use contracts::saga::{reason, StepResult, WithdrawRequest};
use contracts::{OrderId, Timestamp, TransactionId};
use platform::bugs::{active, Bug};
use platform::operations::{find, OperationState};
use rusqlite::Connection;

/// `WithdrawTwice`: a repeated withdrawal is applied again instead of answered from its
/// record; `Some` (the record's answer) when it was.
pub(crate) fn withdraw_twice(
    tx: &Connection,
    request: &WithdrawRequest,
    transaction_id: TransactionId,
    now: Timestamp,
) -> rusqlite::Result<Option<StepResult>> {
    if !active(Bug::WithdrawTwice) {
        return Ok(None);
    }
    let Some(done) = find(tx, request.order_id)?.filter(|op| op.state == OperationState::Applied) else {
        return Ok(None);
    };
    if let Some(account) = account_of(tx, request.user_id)?.filter(|a| a.balance >= request.amount) {
        change_balance(tx, account.account_id, -request.amount.cents())?;
        let again = TransactionId::from_u128(transaction_id.uuid().as_u128() ^ 1);
        let order = Some(request.order_id);
        insert_transaction(tx, again, account.account_id, TransactionType::Withdraw, request.amount, order, now)?;
    }
    Ok(Some(done.answer()))
}

/// `RejectAll`, the negative control: every withdrawal refused for a plausible reason.
pub(crate) fn reject_all() -> Option<StepResult> {
    active(Bug::RejectAll).then(|| StepResult::refused(reason::INSUFFICIENT_FUNDS))
}

/// `NoTombstone`: a cancel with nothing to refund writes nothing, so a late debit stays.
pub(crate) fn no_tombstone(tx: &Connection, order_id: OrderId) -> rusqlite::Result<Option<StepResult>> {
    if active(Bug::NoTombstone) && find(tx, order_id)?.is_none() {
        return Ok(Some(StepResult::ok("nothing to cancel", None)));
    }
    Ok(None)
}
