//! Typed ids: one newtype per kind of id, so that an order id cannot be passed where a user
//! id is expected. Each is a UUID underneath and spells as one everywhere: on the wire (serde
//! transparent), in a path (`Path<OrderId>`), in the OpenAPI documents (a string of format
//! `uuid`, as a field declares with `#[schema(value_type = Uuid)]`), in the database (the
//! hyphenated text, with the `sql` feature) and in `Display`/`Debug`.
//!
//! Swapping two kinds does not compile:
//!
//! ```compile_fail,E0308
//! use contracts::ids::{OrderId, UserId};
//! fn orders_of(user_id: UserId) -> Vec<OrderId> { vec![] }
//! let order_id = OrderId::from_u128(7);
//! orders_of(order_id);
//! ```
//!
//! while the same call with a `UserId` does:
//!
//! ```
//! use contracts::ids::{OrderId, UserId};
//! fn orders_of(_user_id: UserId) -> Vec<OrderId> { vec![] }
//! assert!(orders_of(UserId::from_u128(7)).is_empty());
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// What every typed id offers: built from the UUID the `Ids` seam draws, read back as one.
pub trait Id: Copy + Ord + fmt::Display + FromStr<Err = uuid::Error> {
    fn from_uuid(uuid: Uuid) -> Self;
    fn uuid(self) -> Uuid;
}

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> $name {
                $name(uuid)
            }

            /// A fixed id (demo data, tests).
            pub const fn from_u128(value: u128) -> $name {
                $name(Uuid::from_u128(value))
            }

            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Id for $name {
            fn from_uuid(uuid: Uuid) -> $name {
                $name(uuid)
            }

            fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        /// As the UUID's: the id reads the same in a log line whatever its kind.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(text: &str) -> Result<$name, uuid::Error> {
                Uuid::parse_str(text).map($name)
            }
        }

        /// The schema of a UUID (a string of format `uuid`), as a field of this type declares
        /// with `#[schema(value_type = Uuid)]`.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                uuid_schema()
            }
        }

        impl utoipa::ToSchema for $name {}

        /// Stored as the UUID's hyphenated text, as it always was.
        #[cfg(feature = "sql")]
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.0.to_string()))
            }
        }

        /// Text that is not a UUID is a conversion error (the request fails as a storage
        /// failure), never a default.
        #[cfg(feature = "sql")]
        impl rusqlite::types::FromSql for $name {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<$name> {
                let text = value.as_str()?;
                Uuid::parse_str(text).map($name).map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    )*};
}

ids! {
    /// An order (the order service's, and the saga's: a saga is keyed by its order).
    OrderId;
    /// A registered user (the gateway's; the `sub` of a user token).
    UserId;
    /// A user's billing account.
    AccountId;
    /// A product of the warehouse's catalog.
    ProductId;
    /// A participant's record of a step or a payment: billing's ledger transactions
    /// (deposits, withdrawals, refunds) and delivery's booking reservation.
    TransactionId;
    /// A notification the notification service stored.
    NotificationId;
}

fn uuid_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "00000000-0000-4000-8000-000000000007";

    #[test]
    fn an_id_spells_as_its_uuid_on_the_wire_in_text_and_in_debug() {
        let id = OrderId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0007);
        let uuid = id.uuid();
        assert_eq!(serde_json::to_string(&id).unwrap(), serde_json::to_string(&uuid).unwrap());
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{TEXT}\""));
        assert_eq!(serde_json::from_str::<OrderId>(&format!("\"{TEXT}\"")).unwrap(), id);
        assert_eq!(id.to_string(), TEXT);
        assert_eq!(format!("{id:?}"), format!("{uuid:?}"));
        assert_eq!(TEXT.parse::<OrderId>().unwrap(), id);
        assert!("not-a-uuid".parse::<OrderId>().is_err());
        assert!(serde_json::from_str::<UserId>("\"7\"").is_err());
        let map: std::collections::BTreeMap<ProductId, i64> = [(ProductId::from_uuid(uuid), 1)].into();
        assert_eq!(serde_json::to_string(&map).unwrap(), format!("{{\"{TEXT}\":1}}"));
    }

    #[test]
    fn an_id_has_the_schema_of_a_uuid() {
        let schema = serde_json::to_value(<AccountId as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(schema, serde_json::json!({"type": "string", "format": "uuid"}));
    }

    #[cfg(feature = "sql")]
    #[test]
    fn an_id_is_stored_as_its_text_and_read_back() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let id = TransactionId::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0007);
        let text: String = connection.query_row("SELECT ?1", [id], |row| row.get(0)).unwrap();
        assert_eq!(text, TEXT);
        let back: TransactionId = connection.query_row("SELECT ?1", [TEXT], |row| row.get(0)).unwrap();
        assert_eq!(back, id);
        let none: Option<TransactionId> = connection.query_row("SELECT NULL", [], |row| row.get(0)).unwrap();
        assert_eq!(none, None);
        let bad = connection.query_row("SELECT 'x'", [], |row| row.get::<_, TransactionId>(0));
        assert!(matches!(bad, Err(rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, _))));
    }
}
