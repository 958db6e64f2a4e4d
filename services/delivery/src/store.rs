//! Delivery schema, the rolling window of hourly slots, and book/cancel by order id.

use chrono::{DurationRound, TimeDelta};
use contracts::catalog::Slot;
use contracts::saga::{reason, BookRequest, StepResult};
use contracts::Timestamp;
use contracts::{OrderId, TransactionId};
use platform::operations::{action_step, compensation_step};
use platform::sql::{time_at, time_text};
use platform::storage::Cached;
use platform::storage::Migration;
use rusqlite::{params, Connection, OptionalExtension};

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            sql: "
            CREATE TABLE delivery_slots (
                slot TEXT PRIMARY KEY,
                capacity INTEGER NOT NULL CHECK (capacity >= 0),
                booked INTEGER NOT NULL CHECK (booked >= 0 AND booked <= capacity)
            );
            CREATE TABLE delivery_reservations (
                order_id TEXT PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                slot TEXT NOT NULL REFERENCES delivery_slots(slot),
                address TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('BOOKED', 'CANCELLED')),
                created_at TEXT NOT NULL
            );",
        },
        platform::operations::migration(2),
        platform::operations::details_migration(3),
    ]
}

/// The start of the hour `time` falls in.
pub fn hour_of(time: Timestamp) -> Timestamp {
    time.duration_trunc(TimeDelta::hours(1)).unwrap_or(time)
}

/// Makes sure a slot exists for every hour from the current one to `horizon_hours` ahead.
/// Slots are whole hours, one row each (`slot` is the key), so when the range already holds
/// `horizon_hours` rows every one exists and nothing is written (a booking used to try one
/// insert per hour of the horizon: about 4% of the real store's time in a profile).
pub fn ensure_slots(tx: &Connection, now: Timestamp, horizon_hours: i64, capacity: i64) -> rusqlite::Result<()> {
    let first = hour_of(now);
    let present: i64 = tx.query_row_cached(
        "SELECT COUNT(*) FROM delivery_slots WHERE slot >= ?1 AND slot < ?2",
        params![time_text(first), time_text(first + TimeDelta::hours(horizon_hours))],
        |row| row.get(0),
    )?;
    if present >= horizon_hours {
        return Ok(());
    }
    if present > 0 {
        platform::probe::hit(platform::probe::Probe::SlotsExtended);
    }
    let mut statement =
        tx.prepare_cached("INSERT OR IGNORE INTO delivery_slots (slot, capacity, booked) VALUES (?1, ?2, 0)")?;
    for hour in 0..horizon_hours {
        statement.execute(params![time_text(first + TimeDelta::hours(hour)), capacity])?;
    }
    Ok(())
}

pub fn slots(connection: &Connection, now: Timestamp, horizon_hours: i64) -> rusqlite::Result<Vec<Slot>> {
    let first = hour_of(now);
    let mut statement = connection.prepare_cached(
        "SELECT slot, capacity, capacity - booked FROM delivery_slots WHERE slot >= ?1 AND slot < ?2 ORDER BY slot",
    )?;
    let rows = statement
        .query_map(params![time_text(first), time_text(first + TimeDelta::hours(horizon_hours))], |row| {
            Ok(Slot { slot: time_at(row, 0)?, capacity: row.get(1)?, remaining: row.get(2)? })
        })?;
    rows.collect()
}

/// Books the slot for the order if it exists, is not past, and has room.
pub fn book(
    tx: &Connection,
    request: &BookRequest,
    reservation_id: TransactionId,
    now: Timestamp,
) -> rusqlite::Result<StepResult> {
    let now_text = time_text(now);
    let slot_text = time_text(request.preferred_time_slot);
    action_step(tx, "book", request.order_id, now, |tx| {
        let remaining: Option<i64> = tx
            .query_row_cached("SELECT capacity - booked FROM delivery_slots WHERE slot = ?1", [&slot_text], |row| {
                row.get(0)
            })
            .optional()?;
        let in_future = request.preferred_time_slot >= hour_of(now);
        if !in_future || remaining.unwrap_or(0) <= 0 {
            platform::probe::hit(platform::probe::Probe::NoDeliverySlot);
            return Ok(StepResult::refused(reason::NO_DELIVERY_SLOT));
        }
        tx.execute_cached("UPDATE delivery_slots SET booked = booked + 1 WHERE slot = ?1", [&slot_text])?;
        tx.execute_cached(
            "INSERT INTO delivery_reservations (order_id, id, user_id, slot, address, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'BOOKED', ?6)",
            params![
                request.order_id.to_string(),
                reservation_id.to_string(),
                request.user_id.to_string(),
                slot_text,
                request.address,
                now_text
            ],
        )?;
        Ok(StepResult::ok("booked", Some(reservation_id)))
    })
}

/// Frees the order's slot if it was booked; otherwise leaves a tombstone.
pub fn cancel_booking(tx: &Connection, order_id: OrderId, now: Timestamp) -> rusqlite::Result<StepResult> {
    compensation_step(tx, "book", order_id, now, |tx| {
        let slot: String = tx.query_row_cached(
            "SELECT slot FROM delivery_reservations WHERE order_id = ?1 AND status = 'BOOKED'",
            [order_id.to_string()],
            |row| row.get(0),
        )?;
        tx.execute_cached("UPDATE delivery_slots SET booked = booked - 1 WHERE slot = ?1", [&slot])?;
        tx.execute_cached(
            "UPDATE delivery_reservations SET status = 'CANCELLED' WHERE order_id = ?1",
            [order_id.to_string()],
        )?;
        Ok(())
    })
}
