//! Billing's schema and queries. Balances are whole cents and never below zero (a CHECK).

use contracts::billing::{Account, Transaction, TransactionType};
use contracts::{AccountId, OrderId, TransactionId, UserId};
use contracts::{Money, Timestamp};
use platform::sql::{parsed_at, time_at, time_text};
use platform::storage::Cached;
use platform::storage::Migration;
use rusqlite::{params, Connection, OptionalExtension};

pub fn migrations() -> Vec<Migration> {
    vec![
        Migration {
            version: 1,
            sql: "
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL UNIQUE,
        balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0),
        version INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    -- The ledger. seq gives 'newest first' without relying on equal timestamps.
    CREATE TABLE transactions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        account_id TEXT NOT NULL REFERENCES accounts(id),
        type TEXT NOT NULL CHECK (type IN ('DEPOSIT', 'WITHDRAW', 'REFUND')),
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        order_id TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX transactions_by_account ON transactions(account_id, seq);
    -- A keyed deposit is applied once: the key remembers its request and its answer.
    CREATE TABLE deposit_keys (
        user_id TEXT NOT NULL,
        key TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        transaction_id TEXT NOT NULL,
        new_balance_cents INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    ",
        },
        platform::operations::migration(2),
        platform::outbox::migration(3),
        platform::operations::details_migration(4),
    ]
}

pub fn account_of(connection: &Connection, user_id: UserId) -> rusqlite::Result<Option<Account>> {
    connection
        .query_row_cached(
            "SELECT id, user_id, balance_cents FROM accounts WHERE user_id = ?1",
            [user_id.to_string()],
            |row| {
                Ok(Account {
                    account_id: row.get(0)?,
                    user_id: row.get(1)?,
                    balance: Money::from_cents(row.get(2)?),
                    status: "ACTIVE".to_string(),
                })
            },
        )
        .optional()
}

pub fn insert_transaction(
    connection: &Connection,
    id: TransactionId,
    account_id: AccountId,
    kind: TransactionType,
    amount: Money,
    order_id: Option<OrderId>,
    now: Timestamp,
) -> rusqlite::Result<()> {
    connection.execute_cached(
        "INSERT INTO transactions (id, account_id, type, amount_cents, order_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.to_string(),
            account_id.to_string(),
            kind.as_str(),
            amount.cents(),
            order_id.map(|o| o.to_string()),
            time_text(now)
        ],
    )?;
    Ok(())
}

/// Moves a balance by `delta_cents`; the CHECK refuses a negative result.
pub fn change_balance(connection: &Connection, account_id: AccountId, delta_cents: i64) -> rusqlite::Result<i64> {
    connection.query_row_cached(
        "UPDATE accounts SET balance_cents = balance_cents + ?1, version = version + 1
         WHERE id = ?2 RETURNING balance_cents",
        params![delta_cents, account_id.to_string()],
        |row| row.get(0),
    )
}

pub const TRANSACTIONS_LISTED_MAX: i64 = 1000;

pub fn transactions_of(connection: &Connection, account_id: AccountId) -> rusqlite::Result<Vec<Transaction>> {
    let mut statement = connection.prepare_cached(
        "SELECT id, type, amount_cents, order_id, created_at FROM transactions
         WHERE account_id = ?1 ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![account_id.to_string(), TRANSACTIONS_LISTED_MAX], |row| {
        Ok(Transaction {
            transaction_id: row.get(0)?,
            kind: parsed_at(row, 1, TransactionType::parse)?,
            amount: Money::from_cents(row.get(2)?),
            order_id: row.get(3)?,
            created_at: time_at(row, 4)?,
        })
    })?;
    rows.collect()
}
