//! The gateway's user store: users with Argon2id hashes, and server-side sessions (stored
//! by a digest of their id, so the database alone does not hold usable cookies).

use contracts::Timestamp;
use contracts::UserId;
use platform::sql::{time_at, time_text};
use platform::storage::Cached;
use platform::storage::Migration;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 1,
        sql: "
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            first_name TEXT,
            last_name TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE sessions (
            id_digest TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL
        );
        CREATE INDEX sessions_by_user ON sessions(user_id);",
    }]
}

pub fn session_digest(session_id: &str) -> String {
    platform::ids::to_hex(&Sha256::digest(session_id.as_bytes()))
}

pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

const USER_COLUMNS: &str = "SELECT id, email, password_hash, first_name, last_name FROM users";

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        first_name: row.get(3)?,
        last_name: row.get(4)?,
    })
}

pub fn user_by_email(connection: &Connection, email: &str) -> rusqlite::Result<Option<UserRow>> {
    connection.query_row_cached(&format!("{USER_COLUMNS} WHERE email = ?1"), [email], user_row).optional()
}

pub fn user_by_id(connection: &Connection, id: UserId) -> rusqlite::Result<Option<UserRow>> {
    connection.query_row_cached(&format!("{USER_COLUMNS} WHERE id = ?1"), [id.to_string()], user_row).optional()
}

/// The session's user and last use, by the cookie's session id.
/// The session's user and last use.
pub fn session(connection: &Connection, session_id: &str) -> rusqlite::Result<Option<(UserId, Timestamp)>> {
    connection
        .query_row_cached(
            "SELECT user_id, last_seen_at FROM sessions WHERE id_digest = ?1",
            [session_digest(session_id)],
            |row| Ok((row.get(0)?, time_at(row, 1)?)),
        )
        .optional()
}

/// Sessions used since `cutoff`: the live ones.
pub fn live_session_count(connection: &Connection, cutoff: Timestamp) -> rusqlite::Result<i64> {
    connection.query_row_cached("SELECT COUNT(*) FROM sessions WHERE last_seen_at > ?1", [time_text(cutoff)], |row| {
        row.get(0)
    })
}

pub fn insert_session(tx: &Connection, session_id: &str, user_id: UserId, now: Timestamp) -> rusqlite::Result<()> {
    tx.execute_cached(
        "INSERT INTO sessions (id_digest, user_id, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?3)",
        params![session_digest(session_id), user_id.to_string(), time_text(now)],
    )?;
    Ok(())
}

pub fn touch_session(tx: &Connection, session_id: &str, now: Timestamp) -> rusqlite::Result<()> {
    tx.execute_cached(
        "UPDATE sessions SET last_seen_at = ?1 WHERE id_digest = ?2",
        params![time_text(now), session_digest(session_id)],
    )?;
    Ok(())
}

pub fn delete_session(tx: &Connection, session_id: &str) -> rusqlite::Result<usize> {
    tx.execute_cached("DELETE FROM sessions WHERE id_digest = ?1", [session_digest(session_id)])
}
