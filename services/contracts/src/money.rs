//! Money: a decimal with at most two places, carried internally as whole cents.

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The largest amount the contract accepts, in cents (`1000000000.00`).
pub const MONEY_MAX_CENTS: i64 = 100_000_000_000;

/// An amount of money in cents. Always `0 ..= MONEY_MAX_CENTS * 1000` in stored state;
/// request amounts are checked with [`Money::parse_positive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money {
    cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoneyError {
    NotANumber,
    TooManyPlaces,
    NotPositive,
    TooLarge,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            MoneyError::NotANumber => "amount must be a decimal number",
            MoneyError::TooManyPlaces => "amount must have at most 2 decimal places",
            MoneyError::NotPositive => "amount must be greater than zero",
            MoneyError::TooLarge => "amount must not exceed 1000000000.00",
        };
        f.write_str(text)
    }
}

impl Money {
    pub const ZERO: Money = Money { cents: 0 };

    pub fn from_cents(cents: i64) -> Money {
        Money { cents }
    }

    pub fn cents(self) -> i64 {
        self.cents
    }

    /// Parses a request amount: positive, at most 2 places, at most `1000000000.00`.
    pub fn parse_positive(text: &str) -> Result<Money, MoneyError> {
        let money = Money::parse_any(text)?;
        if money.cents <= 0 {
            return Err(MoneyError::NotPositive);
        }
        if money.cents > MONEY_MAX_CENTS {
            return Err(MoneyError::TooLarge);
        }
        Ok(money)
    }

    fn parse_any(text: &str) -> Result<Money, MoneyError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(MoneyError::NotANumber);
        }
        let decimal = Decimal::from_str(trimmed)
            .or_else(|_| Decimal::from_scientific(trimmed))
            .map_err(|_| MoneyError::NotANumber)?;
        let normalized = decimal.normalize();
        if normalized.scale() > 2 {
            return Err(MoneyError::TooManyPlaces);
        }
        let cents =
            (normalized * Decimal::from(100)).trunc().to_string().parse::<i64>().map_err(|_| MoneyError::TooLarge)?;
        Ok(Money { cents })
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.cents.checked_add(other.cents).map(Money::from_cents)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.cents.checked_sub(other.cents).map(Money::from_cents)
    }

    pub fn checked_mul(self, quantity: i64) -> Option<Money> {
        self.cents.checked_mul(quantity).map(Money::from_cents)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.cents < 0 { "-" } else { "" };
        let abs = self.cents.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts a JSON number (`5000`, `12.5`) or a string (`"12.50"`); any sign or size, so that
/// the handler can answer range errors precisely. Places beyond two are refused here.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        struct MoneyVisitor;
        impl Visitor<'_> for MoneyVisitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount as a number or a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
                Money::parse_any(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
                Money::parse_any(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
                Money::parse_any(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
                if !v.is_finite() {
                    return Err(E::custom(MoneyError::NotANumber));
                }
                Money::parse_any(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(MoneyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_strings() {
        let cases = [
            ("5000", Ok(500_000)),
            ("12.5", Ok(1_250)),
            ("\"12.50\"", Ok(1_250)),
            ("12.345", Err(())),
            ("\"abc\"", Err(())),
            ("1e2", Ok(10_000)),
        ];
        for (json, expected) in cases {
            let parsed: Result<Money, _> = serde_json::from_str(json);
            match expected {
                Ok(cents) => assert_eq!(parsed.unwrap().cents(), cents, "{json}"),
                Err(()) => assert!(parsed.is_err(), "{json} should fail"),
            }
        }
    }

    #[test]
    fn positive_range_is_enforced() {
        assert_eq!(Money::parse_positive("0"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_positive("-1"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_positive("1000000000.01"), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse_positive("1000000000.00").unwrap().cents(), MONEY_MAX_CENTS);
    }

    #[test]
    fn displays_two_places() {
        assert_eq!(Money::from_cents(500_000).to_string(), "5000.00");
        assert_eq!(Money::from_cents(5).to_string(), "0.05");
        assert_eq!(serde_json::to_string(&Money::from_cents(1_250)).unwrap(), "\"12.50\"");
    }
}
