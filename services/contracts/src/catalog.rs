//! Warehouse catalog and delivery slot bodies.

use crate::ids::ProductId;
use crate::{Money, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    #[schema(value_type = Uuid)]
    pub product_id: ProductId,
    pub name: String,
    pub price: Money,
    pub available: i64,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    #[schema(value_type = String, format = DateTime)]
    pub slot: Timestamp,
    pub capacity: i64,
    pub remaining: i64,
}
