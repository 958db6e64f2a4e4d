//! Column conversions shared by every service's store: ids and times as readable text.

use contracts::Timestamp;
use rusqlite::types::Type;
use rusqlite::Row;
use uuid::Uuid;

/// Times are stored as RFC 3339 UTC text with milliseconds, which sorts as it reads.
pub fn time_text(time: Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn conversion_error(index: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
}

pub fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    Uuid::parse_str(&text).map_err(|e| conversion_error(index, e))
}

pub fn optional_uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Uuid>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| conversion_error(index, e))).transpose()
}

pub fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    let text: String = row.get(index)?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| conversion_error(index, e))
}
