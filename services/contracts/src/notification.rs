//! Notification bodies: the shopper's listing and the internal intake event.

use crate::ids::{NotificationId, OrderId, UserId};
use crate::{Money, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(utoipa::ToSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationType {
    PaymentDebited,
    PaymentRefunded,
    OrderConfirmed,
    OrderFailed,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::PaymentDebited => "PAYMENT_DEBITED",
            NotificationType::PaymentRefunded => "PAYMENT_REFUNDED",
            NotificationType::OrderConfirmed => "ORDER_CONFIRMED",
            NotificationType::OrderFailed => "ORDER_FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationType> {
        match text {
            "PAYMENT_DEBITED" => Some(NotificationType::PaymentDebited),
            "PAYMENT_REFUNDED" => Some(NotificationType::PaymentRefunded),
            "ORDER_CONFIRMED" => Some(NotificationType::OrderConfirmed),
            "ORDER_FAILED" => Some(NotificationType::OrderFailed),
            _ => None,
        }
    }
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[schema(value_type = Uuid)]
    pub id: NotificationId,
    #[serde(rename = "type")]
    pub kind: NotificationType,
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub amount: Option<Money>,
    pub message: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The most events one batch may hold (`POST /api/v1/notifications/events/batch`).
pub const EVENT_BATCH_MAX: usize = 32;

/// The notification service's answer to a batch: how many of its events were new (the rest
/// had been recorded before).
#[derive(utoipa::ToSchema, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordedEvents {
    pub created: usize,
}

/// What billing's outbox relay and the order service post to the notification service.
/// Idempotent on `(orderId, type)`.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationEvent {
    #[serde(rename = "type")]
    pub kind: NotificationType,
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    #[serde(default)]
    pub amount: Option<Money>,
    pub message: String,
    /// When the fact happened on its source's clock: stamped by the outbox with the time of
    /// the transaction that enqueued it (the withdrawal, the refund, the order's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<Timestamp>,
}
