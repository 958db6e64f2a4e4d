//! Column conversions shared by every service's store: times as readable text, and enum
//! columns, where a value this code does not know is an error, never a default. (Typed ids
//! convert themselves: `contracts::ids`, feature `sql`.)

use contracts::Timestamp;
use rusqlite::types::Type;
use rusqlite::Row;

/// Times are stored as RFC 3339 UTC text with milliseconds, which sorts as it reads.
pub fn time_text(time: Timestamp) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `time` as the database keeps it ([`time_text`]): to the millisecond.
pub fn stored_time(time: Timestamp) -> Timestamp {
    chrono::SubsecRound::trunc_subsecs(time, 3)
}

fn conversion_error(index: usize, error: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
}

pub fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    let text: String = row.get(index)?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| conversion_error(index, e))
}

/// A time column that may be NULL ([`time_at`] otherwise).
pub fn optional_time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    match row.get_ref(index)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => time_at(row, index).map(Some),
    }
}

/// An enum column read with its `parse`: a value this code does not know (a newer version
/// wrote it, or the file was damaged) is a conversion error, so the request fails as a
/// storage failure (500, logged at ERROR) rather than acting on a guess.
pub fn parsed_at<T>(row: &Row<'_>, index: usize, parse: impl FnOnce(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| conversion_error(index, UnknownValue(text)))
}

/// A column's value no variant of its enum spells.
#[derive(Debug)]
pub struct UnknownValue(pub String);

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown value '{}'", self.0)
    }
}

impl std::error::Error for UnknownValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_time_is_the_time_its_text_reads_back_as() {
        let time = Timestamp::UNIX_EPOCH + chrono::TimeDelta::nanoseconds(1_999_999_999_999);
        let read_back = chrono::DateTime::parse_from_rfc3339(&time_text(time)).unwrap().to_utc();
        assert_eq!(stored_time(time), read_back);
        assert_eq!(time_text(stored_time(time)), time_text(time));
        assert_ne!(stored_time(time), time);
    }
}
