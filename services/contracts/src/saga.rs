//! Saga step bodies: the requests the orchestrator sends and the participants' answer.

use crate::Money;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The original `SagaStepResult`: every participant answers every step with it.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub success: bool,
    pub message: String,
    pub transaction_id: Option<Uuid>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl StepResult {
    pub fn ok(message: &str, transaction_id: Option<Uuid>) -> StepResult {
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
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Money,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveItem {
    pub product_id: Uuid,
    pub quantity: i64,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveRequest {
    pub order_id: Uuid,
    pub items: Vec<ReserveItem>,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BookRequest {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub address: String,
    #[schema(value_type = String, format = DateTime)]
    pub preferred_time_slot: crate::Timestamp,
}
