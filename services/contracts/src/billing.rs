//! Billing bodies: accounts, deposits, the ledger.

use crate::{Money, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub account_id: Uuid,
    pub user_id: Uuid,
    pub balance: Money,
    pub status: String,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DepositRequest {
    #[schema(schema_with = crate::money::amount_input_schema)]
    pub amount: Money,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DepositResponse {
    pub success: bool,
    pub new_balance: Money,
    pub transaction_id: Uuid,
}

#[derive(utoipa::ToSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    Deposit,
    Withdraw,
    Refund,
}

impl TransactionType {
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionType::Deposit => "DEPOSIT",
            TransactionType::Withdraw => "WITHDRAW",
            TransactionType::Refund => "REFUND",
        }
    }

    pub fn parse(text: &str) -> Option<TransactionType> {
        match text {
            "DEPOSIT" => Some(TransactionType::Deposit),
            "WITHDRAW" => Some(TransactionType::Withdraw),
            "REFUND" => Some(TransactionType::Refund),
            _ => None,
        }
    }
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub transaction_id: Uuid,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub amount: Money,
    pub order_id: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}
