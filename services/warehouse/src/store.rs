//! Warehouse schema, the demo catalog, and reserve/release of an order's items.

use contracts::catalog::Product;
use contracts::saga::{reason, ReserveItem, StepResult};
use contracts::{Money, Timestamp};
use contracts::{OrderId, ProductId, TransactionId};
use platform::operations::{action_step, compensation_step};
use platform::sql::time_text;
use platform::storage::Cached;
use platform::storage::Migration;
use rusqlite::{params, Connection, OptionalExtension};

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            sql: "
            CREATE TABLE products (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                price_cents INTEGER NOT NULL CHECK (price_cents > 0),
                created_at TEXT NOT NULL
            );
            -- total = available + reserved; reserved never above total.
            CREATE TABLE stocks (
                product_id TEXT PRIMARY KEY REFERENCES products(id),
                total_quantity INTEGER NOT NULL CHECK (total_quantity >= 0),
                reserved_quantity INTEGER NOT NULL CHECK (reserved_quantity >= 0 AND reserved_quantity <= total_quantity)
            );
            CREATE TABLE stock_reservations (
                order_id TEXT NOT NULL,
                product_id TEXT NOT NULL REFERENCES products(id),
                quantity INTEGER NOT NULL CHECK (quantity > 0),
                status TEXT NOT NULL CHECK (status IN ('RESERVED', 'RELEASED')),
                created_at TEXT NOT NULL,
                PRIMARY KEY (order_id, product_id)
            );",
        },
        platform::operations::migration(2),
        platform::operations::details_migration(3),
    ]
}

#[derive(Clone, Copy, Debug)]
pub struct CatalogEntry {
    pub id: ProductId,
    pub name: &'static str,
    pub price_cents: i64,
    pub stock: i64,
}

/// Real mode's demo catalog; fixed ids so the README's examples work on any machine.
pub const DEMO_CATALOG: [CatalogEntry; 5] = [
    CatalogEntry {
        id: ProductId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001),
        name: "Espresso machine",
        price_cents: 24_900,
        stock: 20,
    },
    CatalogEntry {
        id: ProductId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0002),
        name: "Coffee grinder",
        price_cents: 8_950,
        stock: 30,
    },
    CatalogEntry {
        id: ProductId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0003),
        name: "Milk jug",
        price_cents: 1_500,
        stock: 100,
    },
    CatalogEntry {
        id: ProductId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0004),
        name: "Tamper",
        price_cents: 2_999,
        stock: 50,
    },
    CatalogEntry {
        id: ProductId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0005),
        name: "Bag of beans, 1 kg",
        price_cents: 1_800,
        stock: 3,
    },
];

/// Adds the catalog entries that are not there yet; existing stock is left alone.
pub fn seed_catalog(connection: &Connection, catalog: &[CatalogEntry], now: Timestamp) -> rusqlite::Result<()> {
    let now = time_text(now);
    for entry in catalog {
        connection.execute_cached(
            "INSERT OR IGNORE INTO products (id, name, price_cents, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![entry.id.to_string(), entry.name, entry.price_cents, now],
        )?;
        connection.execute_cached(
            "INSERT OR IGNORE INTO stocks (product_id, total_quantity, reserved_quantity) VALUES (?1, ?2, 0)",
            params![entry.id.to_string(), entry.stock],
        )?;
    }
    Ok(())
}

const PRODUCT_COLUMNS: &str = "SELECT p.id, p.name, p.price_cents, s.total_quantity - s.reserved_quantity
     FROM products p JOIN stocks s ON s.product_id = p.id";

fn product_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        product_id: row.get(0)?,
        name: row.get(1)?,
        price: Money::from_cents(row.get(2)?),
        available: row.get(3)?,
    })
}

pub fn products(connection: &Connection) -> rusqlite::Result<Vec<Product>> {
    let mut statement = connection.prepare_cached(&format!("{PRODUCT_COLUMNS} ORDER BY p.name, p.id"))?;
    let rows = statement.query_map([], product_row)?;
    rows.collect()
}

pub fn product(connection: &Connection, id: ProductId) -> rusqlite::Result<Option<Product>> {
    connection.query_row_cached(&format!("{PRODUCT_COLUMNS} WHERE p.id = ?1"), [id.to_string()], product_row).optional()
}

/// The id a reservation answers with: it is named by its order (one per order), so its
/// transaction id is the order's UUID.
pub fn reservation_id(order_id: OrderId) -> TransactionId {
    TransactionId::from_uuid(order_id.uuid())
}

/// Reserves every line of the order or none of them.
pub fn reserve(
    tx: &Connection,
    order_id: OrderId,
    items: &[ReserveItem],
    now: Timestamp,
) -> rusqlite::Result<StepResult> {
    action_step(tx, "reserve", order_id, now, |tx| {
        for item in items {
            let available: Option<i64> = tx
                .query_row_cached(
                    "SELECT total_quantity - reserved_quantity FROM stocks WHERE product_id = ?1",
                    [item.product_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            let short = available.unwrap_or(0) < item.quantity;
            #[cfg(feature = "planted-bugs")]
            let short = short && !crate::planted::constraint_masked();
            if short {
                platform::probe::hit(platform::probe::Probe::OutOfStock);
                return Ok(StepResult::refused(reason::OUT_OF_STOCK));
            }
        }
        for item in items {
            tx.execute_cached(
                "UPDATE stocks SET reserved_quantity = reserved_quantity + ?1 WHERE product_id = ?2",
                params![item.quantity, item.product_id.to_string()],
            )?;
            tx.execute_cached(
                "INSERT INTO stock_reservations (order_id, product_id, quantity, status, created_at) VALUES (?1, ?2, ?3, 'RESERVED', ?4)",
                params![order_id.to_string(), item.product_id.to_string(), item.quantity, time_text(now)],
            )?;
        }
        Ok(StepResult::ok("reserved", Some(reservation_id(order_id))))
    })
}

/// Releases the order's reservation if it was made; otherwise leaves a tombstone.
pub fn release(tx: &Connection, order_id: OrderId, now: Timestamp) -> rusqlite::Result<StepResult> {
    compensation_step(tx, "reserve", order_id, now, |tx| {
        let lines: Vec<(String, i64)> = {
            let mut statement = tx.prepare_cached(
                "SELECT product_id, quantity FROM stock_reservations WHERE order_id = ?1 AND status = 'RESERVED'",
            )?;
            let rows = statement.query_map([order_id.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (product_id, quantity) in lines {
            tx.execute_cached(
                "UPDATE stocks SET reserved_quantity = reserved_quantity - ?1 WHERE product_id = ?2",
                params![quantity, product_id],
            )?;
        }
        tx.execute_cached(
            "UPDATE stock_reservations SET status = 'RELEASED' WHERE order_id = ?1",
            [order_id.to_string()],
        )?;
        Ok(())
    })
}
