//! Saga step bodies: the requests the orchestrator sends and the participants' answer.

use crate::ids::{OrderId, ProductId, TransactionId, UserId};
use crate::Money;
use serde::{Deserialize, Serialize};

/// The original `SagaStepResult`: every participant answers every step with it.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub success: bool,
    pub message: String,
    #[schema(value_type = Option<Uuid>)]
    pub transaction_id: Option<TransactionId>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl StepResult {
    pub fn ok(message: &str, transaction_id: Option<TransactionId>) -> StepResult {
        StepResult { success: true, message: message.to_string(), transaction_id, data: serde_json::Value::Null }
    }

    pub fn refused(message: &str) -> StepResult {
        StepResult { success: false, message: message.to_string(), transaction_id: None, data: serde_json::Value::Null }
    }
}

/// Business reasons a step is refused; they become the order's `errorMessage`.
pub mod reason {
    pub const INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";
    pub const NO_ACCOUNT: &str = "NO_ACCOUNT";
    pub const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
    pub const NO_DELIVERY_SLOT: &str = "NO_DELIVERY_SLOT";
    /// The action arrived after its cancel: refused, nothing done.
    pub const CANCELLED: &str = "CANCELLED";
    /// A participant stayed unreachable for the whole retry budget of an action.
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WithdrawRequest {
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub amount: Money,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveItem {
    #[schema(value_type = Uuid)]
    pub product_id: ProductId,
    pub quantity: i64,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveRequest {
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    pub items: Vec<ReserveItem>,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookRequest {
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub address: String,
    #[schema(value_type = String, format = DateTime)]
    pub preferred_time_slot: crate::Timestamp,
}
