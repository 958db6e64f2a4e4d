//! The order service's schema and queries: orders and items, idempotency keys, the saga log.

use crate::saga::{parse_step, step_text, Event, LogEntry, Phase};
use contracts::order::{DeliveryInfo, Order, OrderItem, OrderStatus};
use contracts::{Money, OrderId, Timestamp, UserId};
use platform::sql::{optional_time_at, parsed_at, time_at, time_text};
use platform::storage::Cached;
use platform::storage::Migration;
use rusqlite::{params, Connection, OptionalExtension};

/// An unfinished order, as SQL: its status is not one of [`FINAL`] (the test
/// `the_unfinished_orders_are_read_through_their_index` holds the two the same). Written out,
/// not bound, so that SQLite can match it to the partial index `orders_unfinished`.
macro_rules! unfinished {
    () => {
        "status NOT IN ('CONFIRMED', 'FAILED')"
    };
}

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            sql: "
            CREATE TABLE orders (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                number TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                status TEXT NOT NULL,
                price_cents INTEGER NOT NULL,
                address TEXT NOT NULL,
                preferred_time_slot TEXT NOT NULL,
                description TEXT,
                error_message TEXT,
                -- sorted (productId, quantity) pairs: the similar-order rule compares these
                items_signature TEXT NOT NULL,
                -- the trace the saga's calls belong to, kept so recovery continues it
                trace_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                version INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX orders_by_user ON orders(user_id, seq);
            CREATE INDEX orders_unfinished ON orders(status);
            CREATE TABLE order_items (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                order_id TEXT NOT NULL REFERENCES orders(id),
                product_id TEXT NOT NULL,
                name TEXT NOT NULL,
                quantity INTEGER NOT NULL CHECK (quantity > 0),
                price_cents INTEGER NOT NULL,
                created_at TEXT NOT NULL
            );
            CREATE INDEX order_items_by_order ON order_items(order_id, id);
            -- outcome ORDER: the key made order_id. DUPLICATE: the key was answered 409 with
            -- the similar order order_id, and keeps getting that answer.
            CREATE TABLE idempotency_keys (
                user_id TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                outcome TEXT NOT NULL CHECK (outcome IN ('ORDER', 'DUPLICATE')),
                order_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (user_id, key)
            );
            -- Written before each call and after each answer; recovery replays it.
            CREATE TABLE saga_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                order_id TEXT NOT NULL,
                step TEXT NOT NULL,
                phase TEXT NOT NULL CHECK (phase IN ('ACTION', 'COMPENSATION', 'SAGA')),
                event TEXT NOT NULL,
                detail TEXT NOT NULL,
                at TEXT NOT NULL
            );
            CREATE INDEX saga_log_by_order ON saga_log(order_id, seq);",
        },
        platform::outbox::migration(2),
        // The similar-order rule looks for the user's orders with the same items since the
        // window's start (`similar_order`): found through this index, not by reading every
        // order of the user newest first, which made each new order cost more than the last.
        Migration { version: 3, sql: "CREATE INDEX orders_similar ON orders(user_id, items_signature, created_at);" },
        // The index on status was never used: `status NOT IN (?, ?)` cannot seek an index, so
        // the recovery poll and the in-flight gauges read every order ever placed, and each
        // status change moved the order's entry in an index nobody read. An index of the
        // unfinished orders only (a partial index, its condition written out so the planner
        // can match the queries': `unfinished!`) holds the few sagas in flight.
        Migration {
            version: 4,
            sql: concat!(
                "DROP INDEX orders_unfinished; CREATE INDEX orders_unfinished ON orders(seq) WHERE ",
                unfinished!(),
                ";"
            ),
        },
    ]
}

/// A new order as recorded by `POST /api/v1/order`.
pub struct NewOrder {
    pub id: OrderId,
    pub user_id: UserId,
    pub price: Money,
    pub items: Vec<OrderItem>,
    pub delivery_info: DeliveryInfo,
    pub description: Option<String>,
    pub items_signature: String,
    pub trace_id: String,
}

pub fn insert_order(tx: &Connection, order: &NewOrder, now: Timestamp) -> rusqlite::Result<()> {
    let now = time_text(now);
    let seq: i64 = tx.query_row_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM orders", [], |row| row.get(0))?;
    tx.execute_cached(
        "INSERT INTO orders (seq, id, number, user_id, status, price_cents, address, preferred_time_slot, description,
                             items_signature, trace_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'NEW', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![
            seq,
            order.id.to_string(),
            format!("ORD-{seq:08}"),
            order.user_id.to_string(),
            order.price.cents(),
            order.delivery_info.address,
            time_text(order.delivery_info.preferred_time_slot),
            order.description,
            order.items_signature,
            order.trace_id,
            now
        ],
    )?;
    for item in &order.items {
        tx.execute_cached(
            "INSERT INTO order_items (order_id, product_id, name, quantity, price_cents, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![order.id.to_string(), item.product_id.to_string(), item.name, item.quantity, item.price.cents(), now],
        )?;
    }
    Ok(())
}

fn items_of(connection: &Connection, order_id: OrderId) -> rusqlite::Result<Vec<OrderItem>> {
    let mut statement = connection.prepare_cached(
        "SELECT product_id, name, quantity, price_cents FROM order_items WHERE order_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([order_id.to_string()], |row| {
        Ok(OrderItem {
            product_id: row.get(0)?,
            name: row.get(1)?,
            quantity: row.get(2)?,
            price: Money::from_cents(row.get(3)?),
        })
    })?;
    rows.collect()
}

const ORDER_COLUMNS: &str =
    "SELECT id, number, user_id, status, price_cents, address, preferred_time_slot, description,
        error_message, created_at, updated_at FROM orders";

fn order_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: row.get(0)?,
        number: row.get(1)?,
        user_id: row.get(2)?,
        status: parsed_at(row, 3, OrderStatus::parse)?,
        price: Money::from_cents(row.get(4)?),
        items: Vec::new(),
        delivery_info: DeliveryInfo { address: row.get(5)?, preferred_time_slot: time_at(row, 6)? },
        description: row.get(7)?,
        error_message: row.get(8)?,
        created_at: time_at(row, 9)?,
        updated_at: time_at(row, 10)?,
    })
}

pub fn order(connection: &Connection, order_id: OrderId) -> rusqlite::Result<Option<Order>> {
    let found = connection
        .query_row_cached(&format!("{ORDER_COLUMNS} WHERE id = ?1"), [order_id.to_string()], order_row)
        .optional()?;
    found
        .map(|mut order| {
            order.items = items_of(connection, order.id)?;
            Ok(order)
        })
        .transpose()
}

pub const ORDERS_LISTED_MAX: i64 = 1000;

pub fn orders_of(connection: &Connection, user_id: UserId) -> rusqlite::Result<Vec<Order>> {
    let mut statement =
        connection.prepare_cached(&format!("{ORDER_COLUMNS} WHERE user_id = ?1 ORDER BY seq DESC LIMIT ?2"))?;
    let rows = statement.query_map(params![user_id.to_string(), ORDERS_LISTED_MAX], order_row)?;
    let mut orders = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    for order in &mut orders {
        order.items = items_of(connection, order.id)?;
    }
    Ok(orders)
}

pub fn trace_id_of(connection: &Connection, order_id: OrderId) -> rusqlite::Result<Option<String>> {
    connection
        .query_row_cached("SELECT trace_id FROM orders WHERE id = ?1", [order_id.to_string()], |row| row.get(0))
        .optional()
}

/// The final statuses' texts, as stored: a saga in any other status is unfinished.
pub const FINAL: [&str; 2] = [OrderStatus::Confirmed.as_str(), OrderStatus::Failed.as_str()];

/// Ids of every order whose saga has not finished, oldest first (the partial index
/// `orders_unfinished`: only the orders in flight are read).
pub fn unfinished_orders(connection: &Connection, limit: i64) -> rusqlite::Result<Vec<OrderId>> {
    let mut statement = connection.prepare_cached(UNFINISHED_ORDERS)?;
    let rows = statement.query_map(params![limit], |row| row.get(0))?;
    rows.collect()
}

/// How many orders are unfinished, and when the oldest of them was created.
pub fn unfinished_summary(connection: &Connection) -> rusqlite::Result<(i64, Option<Timestamp>)> {
    connection.query_row_cached(UNFINISHED_SUMMARY, [], |row| Ok((row.get(0)?, optional_time_at(row, 1)?)))
}

const UNFINISHED_ORDERS: &str = concat!("SELECT id FROM orders WHERE ", unfinished!(), " ORDER BY seq LIMIT ?1");
const UNFINISHED_SUMMARY: &str = concat!("SELECT COUNT(*), MIN(created_at) FROM orders WHERE ", unfinished!());

/// Moves the order's status forward; never backwards, never out of a final status.
/// Returns whether it moved.
pub fn advance_status(
    tx: &Connection,
    order_id: OrderId,
    next: OrderStatus,
    error_message: Option<&str>,
    now: Timestamp,
) -> rusqlite::Result<bool> {
    let current = tx.query_row_cached("SELECT status FROM orders WHERE id = ?1", [order_id.to_string()], |row| {
        parsed_at(row, 0, OrderStatus::parse)
    })?;
    if current == next || !current.may_become(next) {
        return Ok(false);
    }
    tx.execute_cached(
        "UPDATE orders SET status = ?1, error_message = COALESCE(?2, error_message), updated_at = ?3, version = version + 1
         WHERE id = ?4",
        params![next.as_str(), error_message, time_text(now), order_id.to_string()],
    )?;
    Ok(true)
}

/// The key's earlier use: its request hash, outcome and order.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub request_hash: String,
    pub duplicate: bool,
    pub order_id: OrderId,
}

pub fn key_record(connection: &Connection, user_id: UserId, key: &str) -> rusqlite::Result<Option<KeyRecord>> {
    connection
        .query_row_cached(
            "SELECT request_hash, outcome, order_id FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
            params![user_id.to_string(), key],
            |row| {
                Ok(KeyRecord {
                    request_hash: row.get(0)?,
                    duplicate: parsed_at(row, 1, |outcome| match outcome {
                        "DUPLICATE" => Some(true),
                        "ORDER" => Some(false),
                        _ => None,
                    })?,
                    order_id: row.get(2)?,
                })
            },
        )
        .optional()
}

pub fn insert_key(
    tx: &Connection,
    user_id: UserId,
    key: &str,
    record: &KeyRecord,
    now: Timestamp,
) -> rusqlite::Result<()> {
    let outcome = if record.duplicate { "DUPLICATE" } else { "ORDER" };
    tx.execute_cached(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, outcome, order_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id.to_string(), key, record.request_hash, outcome, record.order_id.to_string(), time_text(now)],
    )?;
    Ok(())
}

/// The newest of the user's orders with these items since a time, failed ones aside (through
/// the index `orders_similar`).
const SIMILAR_ORDER: &str = "SELECT id FROM orders
    WHERE user_id = ?1 AND items_signature = ?2 AND status != ?3 AND created_at > ?4
    ORDER BY seq DESC LIMIT 1";

/// A non-FAILED order of the user with the same items created after `since`.
pub fn similar_order(
    connection: &Connection,
    user_id: UserId,
    items_signature: &str,
    since: Timestamp,
) -> rusqlite::Result<Option<OrderId>> {
    connection
        .query_row_cached(
            SIMILAR_ORDER,
            params![user_id.to_string(), items_signature, OrderStatus::Failed.as_str(), time_text(since)],
            |row| row.get(0),
        )
        .optional()
}

pub fn log_saga(tx: &Connection, order_id: OrderId, entry: &LogEntry, now: Timestamp) -> rusqlite::Result<()> {
    let LogEntry { step, phase, event, detail } = entry;
    let (step, phase, event) = (step_text(*step), phase.as_str(), event.as_str());
    tx.execute_cached(
        "INSERT INTO saga_log (order_id, step, phase, event, detail, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![order_id.to_string(), step, phase, event, detail, time_text(now)],
    )?;
    tracing::info!(%order_id, step, phase, event, detail, "saga step");
    Ok(())
}

/// The order's saga log, oldest first; a word this code does not know is an error.
pub fn saga_log(connection: &Connection, order_id: OrderId) -> rusqlite::Result<Vec<LogEntry>> {
    let mut statement = connection
        .prepare_cached("SELECT step, phase, event, detail FROM saga_log WHERE order_id = ?1 ORDER BY seq")?;
    let rows = statement.query_map([order_id.to_string()], |row| {
        Ok(LogEntry {
            step: parsed_at(row, 0, parse_step)?,
            phase: parsed_at(row, 1, Phase::parse)?,
            event: parsed_at(row, 2, Event::parse)?,
            detail: row.get(3)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::storage::Db;

    /// A saga log word this code does not know (a newer version wrote it, or the file was
    /// damaged) is an error when read back, never a guess such as "started".
    #[test]
    fn an_unknown_saga_log_word_is_an_error_not_a_default() {
        let db = Db::open_memory(&migrations()).unwrap();
        let order_id = OrderId::from_u128(7);
        for (step, phase, event) in
            [("withdraw", "ACTION", "EXPLODED"), ("withdraw", "ACTION", "ACKNOWLEDGED"), ("ship", "ACTION", "STARTED")]
        {
            db.write_blocking(|tx| {
                tx.execute("DELETE FROM saga_log", [])?;
                tx.execute(
                    "INSERT INTO saga_log (order_id, step, phase, event, detail, at) VALUES (?1, ?2, ?3, ?4, '', '2030-01-01T00:00:00.000Z')",
                    params![order_id.to_string(), step, phase, event],
                )
            })
            .unwrap();
            let read = db.read(|c| saga_log(c, order_id));
            let replayed =
                read.map_err(|e| e.to_string()).and_then(|e| crate::saga::replay(&e).map_err(|e| e.to_string()));
            assert!(replayed.is_err(), "{step} {phase} {event}: {replayed:?}");
        }
    }

    /// The similar-order lookup, run for every new order, searches its index on the user,
    /// the items and the time rather than reading every order of the user.
    #[test]
    fn the_similar_order_lookup_searches_its_index() {
        let db = Db::open_memory(&migrations()).unwrap();
        let plan = db
            .read(|c| {
                let mut statement = c.prepare(&format!("EXPLAIN QUERY PLAN {SIMILAR_ORDER}"))?;
                let rows = statement.query_map(["user", "items", "FAILED", "time"], |row| row.get::<_, String>(3))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .unwrap();
        let search = "SEARCH orders USING INDEX orders_similar (user_id=? AND items_signature=? AND created_at>?)";
        assert!(plan.iter().any(|step| step == search), "{plan:?}");
    }

    /// The recovery poll and the in-flight gauges read the unfinished orders through their
    /// partial index, not every order ever placed; the index's condition names [`FINAL`].
    #[test]
    fn the_unfinished_orders_are_read_through_their_index() {
        assert_eq!(unfinished!(), format!("status NOT IN ('{}', '{}')", FINAL[0], FINAL[1]));
        let db = Db::open_memory(&migrations()).unwrap();
        for query in [UNFINISHED_ORDERS, UNFINISHED_SUMMARY] {
            let plan = db
                .read(|c| {
                    let mut statement = c.prepare(&format!("EXPLAIN QUERY PLAN {query}"))?;
                    let values = vec![1; statement.parameter_count()];
                    let rows =
                        statement.query_map(rusqlite::params_from_iter(values), |row| row.get::<_, String>(3))?;
                    rows.collect::<rusqlite::Result<Vec<String>>>()
                })
                .unwrap();
            assert_eq!(plan, ["SCAN orders USING INDEX orders_unfinished"], "{query}");
        }
    }

    /// The in-flight summary reads the oldest unfinished order's time as a time: none when
    /// every order is final, an error (never an age of 0) when the stored text is not a time.
    #[test]
    fn the_unfinished_summary_reads_its_time_or_fails() {
        let db = Db::open_memory(&migrations()).unwrap();
        assert_eq!(db.read(unfinished_summary).unwrap(), (0, None));
        let insert = |id: u128, status: &str, created_at: &str| {
            db.write_blocking(|tx| {
                tx.execute(
                    "INSERT INTO orders (id, number, user_id, status, price_cents, address, preferred_time_slot,
                     items_signature, trace_id, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 100, 'a', '2030-01-01T10:00:00.000Z', 'sig', 't', ?5, ?5)",
                    params![
                        OrderId::from_u128(id),
                        format!("N-{id}"),
                        OrderId::from_u128(99).to_string(),
                        status,
                        created_at
                    ],
                )
            })
            .unwrap();
        };
        insert(1, "CONFIRMED", "2030-01-01T00:00:00.000Z");
        insert(2, "PAID", "2030-01-01T00:00:02.000Z");
        insert(3, "NEW", "2030-01-01T00:00:01.000Z");
        let oldest = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:01.000Z").unwrap().to_utc();
        assert_eq!(db.read(unfinished_summary).unwrap(), (2, Some(oldest)));
        insert(4, "PROCESSING", "1999-13-45 (not a time)");
        assert!(db.read(unfinished_summary).is_err());
    }
}
