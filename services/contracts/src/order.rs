//! Order bodies, statuses and the idempotency key.

use crate::ids::{OrderId, ProductId, UserId};
use crate::{Money, Timestamp};
use serde::{Deserialize, Serialize};

pub const ITEMS_MAX: usize = 50;
pub const QUANTITY_MAX: i64 = 1000;
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;

#[derive(utoipa::ToSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    New,
    Processing,
    Paid,
    ItemsReserved,
    DeliveryBooked,
    Confirmed,
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::New,
        OrderStatus::Processing,
        OrderStatus::Paid,
        OrderStatus::ItemsReserved,
        OrderStatus::DeliveryBooked,
        OrderStatus::Confirmed,
        OrderStatus::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::Processing => "PROCESSING",
            OrderStatus::Paid => "PAID",
            OrderStatus::ItemsReserved => "ITEMS_RESERVED",
            OrderStatus::DeliveryBooked => "DELIVERY_BOOKED",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Confirmed | OrderStatus::Failed)
    }

    /// Position in the one-way order of statuses; `FAILED` ranks with `CONFIRMED` as final.
    pub fn rank(self) -> u8 {
        match self {
            OrderStatus::New => 0,
            OrderStatus::Processing => 1,
            OrderStatus::Paid => 2,
            OrderStatus::ItemsReserved => 3,
            OrderStatus::DeliveryBooked => 4,
            OrderStatus::Confirmed | OrderStatus::Failed => 5,
        }
    }

    /// Whether a status read after `self` is allowed: never backwards, nothing after final.
    pub fn may_become(self, next: OrderStatus) -> bool {
        if self.is_final() {
            return self == next;
        }
        next.rank() >= self.rank()
    }
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemRequest {
    #[schema(value_type = Uuid)]
    pub product_id: ProductId,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
    /// Ignored: the catalog decides names.
    #[serde(default, skip_serializing)]
    pub name: Option<serde_json::Value>,
    /// Ignored: the catalog decides prices.
    #[serde(default, skip_serializing)]
    pub price: Option<serde_json::Value>,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryInfo {
    #[schema(min_length = 1, max_length = 500)]
    pub address: String,
    /// The start of an hour.
    #[schema(value_type = String, format = DateTime, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00:00(\.0+)?(Z|[+-][0-9]{2}:00)$")]
    pub preferred_time_slot: Timestamp,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<ItemRequest>,
    pub delivery_info: DeliveryInfo,
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    #[schema(value_type = Uuid)]
    pub product_id: ProductId,
    pub name: String,
    pub quantity: i64,
    pub price: Money,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    #[schema(value_type = Uuid)]
    pub id: OrderId,
    pub number: String,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub status: OrderStatus,
    pub price: Money,
    pub items: Vec<OrderItem>,
    pub delivery_info: DeliveryInfo,
    pub description: Option<String>,
    pub error_message: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A parsed `Idempotency-Key`: 1–255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// 1-255 printable ASCII characters (`IdempotencyKey::parse`).
impl utoipa::PartialSchema for IdempotencyKey {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(IDEMPOTENCY_KEY_LENGTH_MAX))
            .pattern(Some("^[ -~]+$"))
            .into()
    }
}

impl utoipa::ToSchema for IdempotencyKey {}

impl IdempotencyKey {
    pub fn parse(text: &str) -> Option<IdempotencyKey> {
        let printable = text.bytes().all(|b| (0x20..=0x7e).contains(&b));
        let length_ok = !text.is_empty() && text.len() <= IDEMPOTENCY_KEY_LENGTH_MAX;
        (printable && length_ok).then(|| IdempotencyKey(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_never_move_backwards() {
        assert!(OrderStatus::New.may_become(OrderStatus::Paid));
        assert!(!OrderStatus::Paid.may_become(OrderStatus::Processing));
        assert!(!OrderStatus::Confirmed.may_become(OrderStatus::Failed));
        assert!(!OrderStatus::Failed.may_become(OrderStatus::Confirmed));
        assert!(OrderStatus::DeliveryBooked.may_become(OrderStatus::Failed));
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(IdempotencyKey::parse("abc-123").is_some());
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse("tab\there").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
    }
}
