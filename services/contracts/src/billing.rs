//! Billing bodies: accounts, deposits, the ledger.

use crate::ids::{AccountId, OrderId, TransactionId, UserId};
use crate::{Money, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[schema(value_type = Uuid)]
    pub account_id: AccountId,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
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
    #[schema(value_type = Uuid)]
    pub transaction_id: TransactionId,
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
    #[schema(value_type = Uuid)]
    pub transaction_id: TransactionId,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub amount: Money,
    #[schema(value_type = Option<Uuid>)]
    pub order_id: Option<OrderId>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}
