//! The warehouse's planted bugs (`platform::bugs`), compiled only with the `planted-bugs`
//! feature: each is a hook's body, taken only while a run plants its bug.

use crate::Warehouse;
use contracts::saga::{ReserveRequest, StepResult};
use platform::bugs::{active, Bug};
use platform::sql::time_text;
use platform::storage::Cached;
use platform::ApiError;

/// How long the planted `OversellTwoSteps` bug awaits between its check and its write.
const OVERSELL_GAP_MS: u64 = 200;

/// `OversellTwoSteps`: availability checked in one transaction, the reservation written in
/// another after an await, clamped so that no constraint notices. `None` unless planted.
pub(crate) async fn oversell_two_steps(
    state: &Warehouse,
    request: &ReserveRequest,
) -> Option<Result<StepResult, ApiError>> {
    if !active(Bug::OversellTwoSteps) {
        return None;
    }
    Some(oversell(state, request).await)
}

async fn oversell(state: &Warehouse, request: &ReserveRequest) -> Result<StepResult, ApiError> {
    let enough = state.db.read(|c| {
        request.items.iter().try_fold(true, |enough, item| {
            let available: i64 = c.query_row_cached(
                "SELECT COALESCE(MAX(total_quantity - reserved_quantity), 0) FROM stocks WHERE product_id = ?1",
                [item.product_id.to_string()],
                |row| row.get(0),
            )?;
            Ok::<_, rusqlite::Error>(enough && available >= item.quantity)
        })
    })?;
    state.env.clock.sleep(std::time::Duration::from_millis(OVERSELL_GAP_MS)).await;
    let now = state.env.clock.now_utc();
    let result = state.db.write(|tx| {
        platform::operations::act(tx, request.order_id, now, |tx| {
            if !enough {
                return Ok(StepResult::refused(contracts::saga::reason::OUT_OF_STOCK));
            }
            for item in &request.items {
                tx.execute_cached(
                    "UPDATE stocks SET reserved_quantity = MIN(total_quantity, reserved_quantity + ?1) WHERE product_id = ?2",
                    rusqlite::params![item.quantity, item.product_id.to_string()],
                )?;
                tx.execute_cached(
                    "INSERT INTO stock_reservations (order_id, product_id, quantity, status, created_at) VALUES (?1, ?2, ?3, 'RESERVED', ?4)",
                    rusqlite::params![request.order_id.to_string(), item.product_id.to_string(), item.quantity, time_text(now)],
                )?;
            }
            Ok(StepResult::ok("reserved", Some(crate::store::reservation_id(request.order_id))))
        })
    })
    .await?;
    Ok(result)
}

/// `ConstraintMasked`, the negative control: the availability guard is skipped, so the
/// CHECK on `reserved_quantity` fires inside the transaction instead.
pub(crate) fn constraint_masked() -> bool {
    active(Bug::ConstraintMasked)
}
