//! Participant operation records: one row per order id, written in the same transaction as
//! the business change, so that a repeated action returns the stored answer and changes
//! nothing, a cancel that arrives first leaves a tombstone, an action after its cancel is
//! refused, and a repeated cancel changes nothing. And the shape every participant's saga
//! step endpoint shares ([`step_endpoint`], [`action_step`], [`compensation_step`]): each
//! participant keeps only its own decision (what to apply, what to undo).

use crate::crash_point::{self, CrashPoint};
use crate::metrics::ParticipantOutcome as Outcome;
use crate::probe::{self, Probe};
use crate::sql::{parsed_at, time_text};
use crate::storage::record_participant_outcome as record;
use crate::storage::Cached;
use crate::storage::{Db, Migration};
use crate::trace::RequestContext;
use crate::{ApiError, Env};
use contracts::saga::{reason, StepResult};
use contracts::{OrderId, Timestamp, TransactionId};
use rusqlite::{params, Connection, OptionalExtension};

/// The `operations` table; each participant adds it as one of its migrations.
pub fn migration(version: u32) -> Migration {
    Migration {
        version,
        sql: "
        CREATE TABLE operations (
            order_id TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (state IN ('APPLIED', 'REFUSED', 'UNDONE', 'CANCELLED')),
            message TEXT NOT NULL,
            transaction_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );",
    }
}

/// The `operations` table's details, added after [`migration`] by each participant: the
/// trace of the saga call that created the record (`trace_id`, set by [`step_endpoint`]), so
/// that an operator finds a step's saga from the participant's side, and how many times the
/// action and the cancel were repeated after the first (`action_repeats`, `cancel_repeats`:
/// what the `repeated`, `late_action_refused` and `repeated_cancel` counts add up to).
pub fn details_migration(version: u32) -> Migration {
    Migration {
        version,
        sql: "ALTER TABLE operations ADD COLUMN trace_id TEXT;
              ALTER TABLE operations ADD COLUMN action_repeats INTEGER NOT NULL DEFAULT 0;
              ALTER TABLE operations ADD COLUMN cancel_repeats INTEGER NOT NULL DEFAULT 0;",
    }
}

/// Counts a repeat of the order's action or cancel on its record.
fn count_repeat(connection: &Connection, order_id: OrderId, column: RepeatColumn) -> rusqlite::Result<()> {
    let sql = match column {
        RepeatColumn::Action => "UPDATE operations SET action_repeats = action_repeats + 1 WHERE order_id = ?1",
        RepeatColumn::Cancel => "UPDATE operations SET cancel_repeats = cancel_repeats + 1 WHERE order_id = ?1",
    };
    connection.execute_cached(sql, [order_id.to_string()])?;
    Ok(())
}

enum RepeatColumn {
    Action,
    Cancel,
}

/// APPLIED: the action took effect. REFUSED: refused for a business reason (nothing done).
/// UNDONE: applied, then compensated. CANCELLED: cancelled with nothing to undo (a
/// tombstone when the cancel came first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationState {
    Applied,
    Refused,
    Undone,
    Cancelled,
}

impl OperationState {
    pub const ALL: [OperationState; 4] =
        [OperationState::Applied, OperationState::Refused, OperationState::Undone, OperationState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Applied => "APPLIED",
            OperationState::Refused => "REFUSED",
            OperationState::Undone => "UNDONE",
            OperationState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<OperationState> {
        OperationState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    pub state: OperationState,
    pub message: String,
    pub transaction_id: Option<TransactionId>,
}

/// The message of a tombstone: a cancel that arrived before its action.
pub const TOMBSTONE_MESSAGE: &str = "cancelled before the action";

impl Operation {
    /// Whether this record is a tombstone (cancelled before any action arrived).
    pub fn is_tombstone(&self) -> bool {
        self.state == OperationState::Cancelled && self.message == TOMBSTONE_MESSAGE
    }

    /// The answer a repeated action gets.
    pub fn answer(&self) -> StepResult {
        match self.state {
            OperationState::Applied => StepResult::ok(&self.message, self.transaction_id),
            OperationState::Refused => StepResult::refused(&self.message),
            OperationState::Undone | OperationState::Cancelled => StepResult::refused(reason::CANCELLED),
        }
    }
}

pub fn find(connection: &Connection, order_id: OrderId) -> rusqlite::Result<Option<Operation>> {
    connection
        .query_row_cached(
            "SELECT state, message, transaction_id FROM operations WHERE order_id = ?1",
            [order_id.to_string()],
            |row| {
                Ok(Operation {
                    state: parsed_at(row, 0, OperationState::parse)?,
                    message: row.get(1)?,
                    transaction_id: row.get(2)?,
                })
            },
        )
        .optional()
}

fn store(connection: &Connection, order_id: OrderId, operation: &Operation, now: Timestamp) -> rusqlite::Result<()> {
    connection.execute_cached(
        "INSERT INTO operations (order_id, state, message, transaction_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT(order_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        params![
            order_id.to_string(),
            operation.state.as_str(),
            operation.message,
            operation.transaction_id.map(|t| t.to_string()),
            time_text(now)
        ],
    )?;
    Ok(())
}

/// Runs `apply` once per order id. `apply` makes the business change and answers; its
/// answer is stored with it. Call inside the transaction that `apply` writes in.
pub fn act(
    connection: &Connection,
    order_id: OrderId,
    now: Timestamp,
    apply: impl FnOnce(&Connection) -> rusqlite::Result<StepResult>,
) -> rusqlite::Result<StepResult> {
    if let Some(existing) = find(connection, order_id)? {
        count_repeat(connection, order_id, RepeatColumn::Action)?;
        probe::hit(if existing.is_tombstone() { Probe::LateActionRefused } else { Probe::RepeatedAction });
        record(if existing.is_tombstone() { Outcome::late_action_refused } else { Outcome::repeated });
        return Ok(existing.answer());
    }
    let result = apply(connection)?;
    let state = if result.success { OperationState::Applied } else { OperationState::Refused };
    let operation = Operation { state, message: result.message.clone(), transaction_id: result.transaction_id };
    store(connection, order_id, &operation, now)?;
    record(if result.success { Outcome::applied } else { Outcome::refused });
    Ok(result)
}

/// Compensates the order's action: `undo` runs only if the action was applied and not yet
/// undone; a cancel with no action leaves a tombstone. Always acknowledges.
pub fn cancel(
    connection: &Connection,
    order_id: OrderId,
    now: Timestamp,
    undo: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<(StepResult, OperationState)> {
    let next = match find(connection, order_id)? {
        None => {
            probe::hit(Probe::Tombstone);
            record(Outcome::tombstone);
            Operation { state: OperationState::Cancelled, message: TOMBSTONE_MESSAGE.to_string(), transaction_id: None }
        }
        Some(existing) => match existing.state {
            OperationState::Undone | OperationState::Cancelled => {
                count_repeat(connection, order_id, RepeatColumn::Cancel)?;
                probe::hit(Probe::RepeatedCancel);
                record(Outcome::repeated_cancel);
                return Ok((StepResult::ok("already cancelled", None), existing.state));
            }
            OperationState::Refused => {
                record(Outcome::cancelled);
                Operation { state: OperationState::Cancelled, ..existing }
            }
            OperationState::Applied => {
                undo(connection)?;
                probe::hit(Probe::ActionUndone);
                record(Outcome::undone);
                Operation { state: OperationState::Undone, ..existing }
            }
        },
    };
    store(connection, order_id, &next, now)?;
    Ok((StepResult::ok("cancelled", None), next.state))
}

/// A participant's saga step endpoint, an action or its compensation: `step` runs in one write
/// transaction at the clock's time, then the participant's crash point after the commit.
pub async fn step_endpoint(
    env: &Env,
    db: &Db,
    order_id: OrderId,
    context: &RequestContext,
    step: impl FnOnce(&Connection, Timestamp) -> rusqlite::Result<StepResult>,
) -> Result<StepResult, ApiError> {
    let now = env.clock.now_utc();
    let result = db
        .write(|tx| {
            let result = step(tx, now)?;
            // The record's trace: the call that created it (a repeat or a cancel keeps it).
            tx.execute_cached(
                "UPDATE operations SET trace_id = ?1 WHERE order_id = ?2 AND trace_id IS NULL",
                params![context.trace_id, order_id.to_string()],
            )?;
            Ok::<_, rusqlite::Error>(result)
        })
        .await?;
    crash_point::here(CrashPoint::ParticipantCommitted).await;
    Ok(result)
}

/// The saga step `step`'s action for the order ([`act`]: `apply` at most once), logged.
pub fn action_step(
    connection: &Connection,
    step: &'static str,
    order_id: OrderId,
    now: Timestamp,
    apply: impl FnOnce(&Connection) -> rusqlite::Result<StepResult>,
) -> rusqlite::Result<StepResult> {
    let result = act(connection, order_id, now, apply)?;
    tracing::info!(%order_id, step, success = result.success, message = %result.message, "saga step");
    Ok(result)
}

/// The saga step `step`'s compensation for the order ([`cancel`]: `undo` only what was
/// applied), logged.
pub fn compensation_step(
    connection: &Connection,
    step: &'static str,
    order_id: OrderId,
    now: Timestamp,
    undo: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<StepResult> {
    let (result, state) = cancel(connection, order_id, now, undo)?;
    tracing::info!(%order_id, step, outcome = state.as_str(), "saga compensation");
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Db;

    fn now() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    fn db() -> Db {
        Db::open_memory(&[
            migration(1),
            Migration { version: 2, sql: "CREATE TABLE effects (n INTEGER);" },
            details_migration(3),
        ])
        .unwrap()
    }

    fn effects(db: &Db) -> i64 {
        db.read(|c| c.query_row("SELECT COALESCE(SUM(n), 0) FROM effects", [], |r| r.get(0))).unwrap()
    }

    fn apply(c: &Connection) -> rusqlite::Result<StepResult> {
        c.execute("INSERT INTO effects (n) VALUES (1)", [])?;
        Ok(StepResult::ok("done", None))
    }

    fn undo(c: &Connection) -> rusqlite::Result<()> {
        c.execute("INSERT INTO effects (n) VALUES (-1)", [])?;
        Ok(())
    }

    #[test]
    fn repeated_action_is_a_no_op() {
        let db = db();
        let order = OrderId::from_u128(1);
        let first = db.write_blocking(|tx| act(tx, order, now(), apply)).unwrap();
        let second = db.write_blocking(|tx| act(tx, order, now(), apply)).unwrap();
        assert_eq!(first, second);
        assert_eq!(effects(&db), 1);
    }

    #[test]
    fn cancel_first_leaves_a_tombstone_and_refuses_the_late_action() {
        let db = db();
        let order = OrderId::from_u128(2);
        let (ack, state) = db.write_blocking(|tx| cancel(tx, order, now(), undo)).unwrap();
        assert!(ack.success);
        assert_eq!(state, OperationState::Cancelled);
        let late = db.write_blocking(|tx| act(tx, order, now(), apply)).unwrap();
        assert!(!late.success);
        assert_eq!(late.message, reason::CANCELLED);
        assert_eq!(effects(&db), 0);
    }

    #[test]
    fn cancel_undoes_once() {
        let db = db();
        let order = OrderId::from_u128(3);
        db.write_blocking(|tx| act(tx, order, now(), apply)).unwrap();
        db.write_blocking(|tx| cancel(tx, order, now(), undo)).unwrap();
        let (_, state) = db.write_blocking(|tx| cancel(tx, order, now(), undo)).unwrap();
        assert_eq!(state, OperationState::Undone);
        assert_eq!(effects(&db), 0);
        assert!(!db.write_blocking(|tx| act(tx, order, now(), apply)).unwrap().success);
        let repeats: (i64, i64) = db
            .read(|c| {
                c.query_row("SELECT action_repeats, cancel_repeats FROM operations WHERE order_id = ?1", [order], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .unwrap();
        assert_eq!(repeats, (1, 1), "the late action and the second cancel are counted on the record");
    }

    /// A state this code does not know (one a newer version wrote) is a storage error, not a
    /// guess: neither an action nor a cancel acts on it, and the request answers 500.
    #[test]
    fn an_unknown_state_read_back_is_an_error() {
        let db = db();
        let order = OrderId::from_u128(4);
        db.write_blocking(|tx| act(tx, order, now(), apply)).unwrap();
        db.write_blocking(|tx| {
            tx.execute_batch("PRAGMA ignore_check_constraints = ON")?;
            tx.execute("UPDATE operations SET state = 'PAUSED' WHERE order_id = ?1", [order.to_string()])?;
            tx.execute_batch("PRAGMA ignore_check_constraints = OFF")
        })
        .unwrap();
        let error = db.write_blocking(|tx| act(tx, order, now(), apply)).expect_err("an unknown state is an error");
        assert!(error.to_string().contains("unknown value 'PAUSED'"), "{error}");
        assert!(db.write_blocking(|tx| cancel(tx, order, now(), undo)).is_err());
        assert_eq!(crate::ApiError::from(error).problem.status, 500);
        assert_eq!(effects(&db), 1, "nothing more was done");
    }
}
