//! Money: a decimal with at most two places, carried internally as whole cents.

use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The largest amount the contract accepts, in cents (`1000000000.00`).
pub const MONEY_MAX_CENTS: i64 = 100_000_000_000;

/// The longest amount text read at all (longer is refused as not a number); far beyond any
/// exact spelling of a valid amount, so that no length check decides a valid one.
const MONEY_TEXT_MAX_BYTES: usize = 1_000;

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

    /// Parses a decimal exactly from its text: `[+-]digits[.digits][(e|E)[+-]digits]`, nothing
    /// else (no `_`, no `inf`), with no rounding at any length. The value may have at most two
    /// places, whatever the spelling (`12.500` is `12.50`; `1.2345e2` is `123.45`; `1.005` and
    /// `10.0000000000000001` are refused).
    fn parse_any(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        if text.len() > MONEY_TEXT_MAX_BYTES {
            return Err(MoneyError::NotANumber);
        }
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (whole, fraction) = match mantissa.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (mantissa, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || (mantissa.contains('.') && fraction.is_empty())
            || !all_digits(fraction)
        {
            return Err(MoneyError::NotANumber);
        }
        // The exponent, saturated: any magnitude beyond the digits' length decides the same way.
        let exponent: i64 = match exponent {
            None => 0,
            Some(exponent) => {
                let (sign, digits) = match exponent.as_bytes().first() {
                    Some(b'-') => (-1, &exponent[1..]),
                    Some(b'+') => (1, &exponent[1..]),
                    _ => (1, exponent),
                };
                if digits.is_empty() || !all_digits(digits) {
                    return Err(MoneyError::NotANumber);
                }
                let magnitude = digits.trim_start_matches('0');
                let magnitude: i64 = if magnitude.len() > 6 { 1_000_000 } else { magnitude.parse().unwrap_or(0) };
                sign * magnitude
            }
        };
        // value = significand × 10^(-places)
        let significand = format!("{whole}{fraction}");
        let significand = significand.trim_start_matches('0');
        let mut places = fraction.len() as i64 - exponent;
        let mut significand = significand.as_bytes();
        while places > 0 && significand.last() == Some(&b'0') {
            significand = &significand[..significand.len() - 1];
            places -= 1;
        }
        if significand.is_empty() {
            return Ok(Money::ZERO);
        }
        if places > 2 {
            return Err(MoneyError::TooManyPlaces);
        }
        // cents = significand × 10^(2 - places); 2 - places ≥ 0 here.
        let shift = 2 - places;
        if significand.len() as i64 + shift > 18 {
            return Err(MoneyError::TooLarge);
        }
        let mut cents: i64 = 0;
        for digit in significand {
            cents = cents * 10 + i64::from(digit - b'0');
        }
        for _ in 0..shift {
            cents *= 10;
        }
        Ok(Money { cents: if negative { -cents } else { cents } })
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

/// On the wire an amount is a string with exactly two places (`"12.50"`).
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^-?[0-9]+\.[0-9]{2}$"))
            .description(Some("An amount with exactly two places, as a string."))
            .examples(["12.50"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

/// A request amount (`Money::parse_positive`): a JSON number or a string, positive, at most
/// two places, at most `1000000000.00`.
pub fn amount_input_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0))
        .maximum(Some(1_000_000_000))
        .multiple_of(Some(0.01));
    let text = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^\+?0*([1-9][0-9]{0,8}(\.[0-9]{1,2})?|1000000000(\.00?)?|0\.(0[1-9]|[1-9][0-9]?))$"));
    OneOfBuilder::new()
        .item(number)
        .item(text)
        .description(Some("A positive amount with at most two places, as a number or a string; at most 1000000000.00."))
        .into()
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts a JSON number (`5000`, `12.5`) or a string (`"12.50"`); any sign or size, so that
/// the handler can answer range errors precisely. Places beyond two are refused here.
///
/// A number is read from its own text (through `serde_json`'s `RawValue`), never through
/// `f64`, which would round `10.0000000000000001` to `10.0`. So `Money` deserializes from
/// `serde_json` only (`from_slice`, `from_str`, `from_value`), which is the only wire format.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let amount = if text.starts_with('"') {
            let decoded: String = serde_json::from_str(text).map_err(de::Error::custom)?;
            Money::parse_any(&decoded)
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Money::parse_any(text)
        } else {
            return Err(de::Error::invalid_type(
                de::Unexpected::Other(text),
                &"a decimal amount as a number or a string",
            ));
        };
        amount.map_err(de::Error::custom)
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

    /// More than two places is refused whatever the spelling; the same value spelt otherwise
    /// is read exactly.
    #[test]
    fn places_are_counted_exactly_whatever_the_spelling() {
        let refused = [
            // a JSON number that f64 rounds to 10.0
            "10.0000000000000001",
            "\"10.0000000000000001\"",
            // 29 places: Decimal::from_str rounds beyond 28
            "1.00000000000000000000000000001",
            "\"1.00000000000000000000000000001\"",
            // exponents that leave three places
            "1.2345e1",
            "\"1005e-3\"",
            "1e-3",
            // digit separators and other spellings that are not decimal numbers
            "\"1_000\"",
            "\"1_0.00\"",
            "\"12,50\"",
            "\"0x10\"",
            "\"inf\"",
            "\"NaN\"",
            "\".5\"",
            "\"5.\"",
            "\"1e\"",
            "\"\"",
            "true",
            "[1]",
        ];
        for json in refused {
            let parsed: Result<Money, _> = serde_json::from_str(json);
            assert!(parsed.is_err(), "{json} should be refused, got {parsed:?}");
        }
        let accepted = [
            ("12.500", 1_250),
            ("\"12.5000000000000000000000000000000000\"", 1_250),
            ("1.2345e4", 1_234_500),
            ("1234.5E-1", 12_345),
            ("\"1005e-2\"", 1_005),
            ("0.10e1", 100),
            ("-3.5", -350),
            ("0e-99999999999", 0),
        ];
        for (json, cents) in accepted {
            let parsed: Money = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(parsed.cents(), cents, "{json}");
        }
        // As a field of a body and from a parsed value (how the simulation reads answers).
        #[derive(serde::Deserialize, Debug)]
        struct Body {
            amount: Option<Money>,
        }
        assert!(serde_json::from_str::<Body>(r#"{"amount": 10.0000000000000001}"#).is_err());
        assert_eq!(serde_json::from_str::<Body>(r#"{"amount": null}"#).unwrap().amount, None);
        let value = serde_json::json!({"amount": "12.50"});
        assert_eq!(serde_json::from_value::<Body>(value).unwrap().amount, Some(Money::from_cents(1_250)));
    }

    #[test]
    fn sizes_beyond_an_i64_of_cents_are_too_large_not_wrapped() {
        assert_eq!(Money::parse_any("1e999999999999"), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse_any("92233720368547758.07"), Err(MoneyError::TooLarge));
        assert_eq!(Money::parse_any("1e-999999999999"), Err(MoneyError::TooManyPlaces));
        assert_eq!(Money::parse_positive("1e9").unwrap().cents(), MONEY_MAX_CENTS);
        assert_eq!(Money::parse_positive("1.000000000001e9"), Err(MoneyError::TooManyPlaces));
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
