//! The history: every request a shopper made and the answer it saw, with simulated time,
//! and what the answer said in the contract's terms (the order it carried, the deposit it
//! acknowledged), so the checks can hold each answer to the contract.

use contracts::billing::TransactionType;
use contracts::catalog::Slot;
use contracts::notification::NotificationType;
use contracts::order::{Order, OrderStatus};
use contracts::{
    NotificationId, OrderId, ProblemKind, ProblemType, ProductId, ServiceName, Timestamp, TransactionId, UserId,
};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Register,
    Login,
    OpenAccount,
    Deposit,
    PlaceOrder,
    PollOrder,
    ListOrders,
    /// A read of another shopper's order.
    Peek,
    /// A call without a session.
    Anonymous,
    /// The shopper's own account (before its final order).
    ReadAccount,
    /// The catalog (before its final order).
    ReadCatalog,
    /// The shopper gave up on a step after its last attempt (`about` names the step).
    GaveUp,
    /// An order key the shopper already used, repeated with another body: 422 key-reused.
    ReuseKey,
    /// A deposit key the shopper already used, repeated with another amount: 422 key-reused.
    ReuseDepositKey,
    /// An internal (service-to-service) route tried through the gateway: 404.
    Internal,
    /// A call with a forged session cookie: 401.
    Forged,
    /// The shopper's own transactions (`listed` holds the order ids they name, `entries`
    /// the transactions).
    ReadTransactions,
    /// The shopper's own notifications (`listed` holds the order ids they name, `entries`
    /// the notifications).
    ReadNotifications,
    /// The delivery slots (`slots` holds them).
    ReadSlots,
    /// One product of the catalog, by id (`product` holds the id asked and what came back).
    ReadProduct,
    /// `POST /auth/logout` of the session the event names.
    Logout,
    /// A call with a session cookie after its logout was answered: 401 on every route.
    LoggedOut,
    /// An order body exactly at one of the contract's limits, of products nobody sells: valid,
    /// so 400 unknown-product (never invalid-order).
    AtLimit,
    /// An order body just past one of the contract's limits: 400 invalid-order.
    PastLimit,
}

impl Action {
    /// The service that answers this request behind the gateway with the gateway's user
    /// token (`None`: the gateway answers it itself, or the call carries no valid session).
    pub fn service(self) -> Option<ServiceName> {
        match self {
            Action::PlaceOrder
            | Action::PollOrder
            | Action::ListOrders
            | Action::Peek
            | Action::ReuseKey
            | Action::AtLimit
            | Action::PastLimit => Some(ServiceName::Order),
            Action::OpenAccount
            | Action::Deposit
            | Action::ReadAccount
            | Action::ReuseDepositKey
            | Action::ReadTransactions => Some(ServiceName::Billing),
            Action::ReadCatalog | Action::ReadProduct => Some(ServiceName::Warehouse),
            Action::ReadNotifications => Some(ServiceName::Notification),
            Action::ReadSlots => Some(ServiceName::Delivery),
            Action::Register
            | Action::Login
            | Action::Anonymous
            | Action::GaveUp
            | Action::Internal
            | Action::Forged
            | Action::Logout
            | Action::LoggedOut => None,
        }
    }

    /// The adversarial workload behaviour this request exercises, as counted in
    /// `Stats::workload` (the similar orders sent at once are marked on their events).
    pub fn behaviour(self) -> Option<&'static str> {
        match self {
            Action::ReuseKey => Some("order_key_reused"),
            Action::ReuseDepositKey => Some("deposit_key_reused"),
            Action::Internal => Some("internal_route"),
            Action::Forged => Some("forged_cookie"),
            Action::ReadTransactions => Some("transactions_read"),
            Action::ReadNotifications => Some("notifications_read"),
            Action::LoggedOut => Some("logged_out_cookie"),
            Action::Peek => Some("peek_other_order"),
            Action::Anonymous => Some("no_session"),
            Action::AtLimit => Some("order_body_at_limit"),
            Action::PastLimit => Some("order_body_past_limit"),
            _ => None,
        }
    }
}

/// A product read by id: the id asked for, and what a 200 answer carried.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SeenProduct {
    pub asked: ProductId,
    /// `(id, name, price in cents, available)` of the answer.
    pub answered: Option<(ProductId, String, i64, i64)>,
}

/// An order as an answer carried it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SeenOrder {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub price_cents: i64,
    /// Product → quantity.
    pub items: BTreeMap<ProductId, i64>,
    pub slot: Timestamp,
    pub error_message: Option<String>,
}

impl SeenOrder {
    pub fn from_order(order: &Order) -> SeenOrder {
        let mut items = BTreeMap::new();
        for item in &order.items {
            *items.entry(item.product_id).or_default() += item.quantity;
        }
        SeenOrder {
            id: order.id,
            user_id: order.user_id,
            status: order.status,
            price_cents: order.price.cents(),
            items,
            slot: order.delivery_info.preferred_time_slot,
            error_message: order.error_message.clone(),
        }
    }
}

/// One entry of a listing answer (the shopper's orders, transactions or notifications), as
/// the answer said it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Listed {
    Order { id: OrderId, user_id: UserId },
    Transaction { id: TransactionId, kind: TransactionType, amount_cents: i64, order_id: Option<OrderId> },
    Notification { id: NotificationId, kind: NotificationType, order_id: OrderId, amount_cents: Option<i64> },
}

impl Listed {
    /// The entry's id, whatever its kind (an order's, a transaction's, a notification's).
    pub fn id(&self) -> Uuid {
        match self {
            Listed::Order { id, .. } => id.uuid(),
            Listed::Transaction { id, .. } => id.uuid(),
            Listed::Notification { id, .. } => id.uuid(),
        }
    }
}

/// What a `PlaceOrder` asked for.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AskedOrder {
    /// Product → quantity.
    pub items: BTreeMap<ProductId, i64>,
    pub slot: Timestamp,
    /// The shopper's last order, placed after healing: it must confirm.
    pub last: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Event {
    /// When the answer came (or the shopper stopped waiting).
    pub at_ms: u64,
    /// When the request went out.
    pub sent_ms: u64,
    pub shopper: u32,
    pub action: Action,
    pub key: Option<String>,
    /// `None`: no answer within the shopper's deadline.
    pub status: Option<u16>,
    /// The problem type of an error answer.
    pub problem: Option<ProblemKind>,
    pub order_id: Option<OrderId>,
    pub order_status: Option<OrderStatus>,
    /// Deposits: the amount in cents. Peeks: the owner's shopper index.
    pub amount_cents: Option<i64>,
    /// The order the answer carried (its body, or a problem's `order` member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<SeenOrder>,
    /// What an order request asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<AskedOrder>,
    /// A deposit's acknowledged transaction; an account read's balance is in `balance_cents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_cents: Option<i64>,
    /// The order ids a list answer held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<Vec<OrderId>>,
    /// The entries a 2xx listing answer held (`ListOrders`, `ReadTransactions`,
    /// `ReadNotifications`), in the answer's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<Listed>>,
    /// `ReadProduct`: the product asked for, and the one a 200 answer carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<SeenProduct>,
    /// The slots a 200 `ReadSlots` answer held, in the answer's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<Slot>>,
    /// `GaveUp`: the step given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<Action>,
    /// The shopper stopped waiting for this answer on purpose and dropped the connection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abandoned: bool,
    /// A success answer whose body did not have the contract's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
    /// One of two similar orders (same items and slot, two keys) sent at once, or a deposit
    /// sent at the same moment as an order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub at_once: bool,
    /// The session the call carried: the shopper's logins numbered from 1 (`None`: no
    /// session, a forged one, or a call that needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    /// The workload behaviours (`report::WORKLOAD` names) this request exercises, beyond
    /// what its action says (`Action::behaviour`): a double submit's twins, a similar
    /// order, a late retry, a second login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub behaviours: Vec<&'static str>,
}

impl Event {
    /// An event with only the fields every event has.
    pub fn new(shopper: u32, action: Action, sent_ms: u64, at_ms: u64) -> Event {
        Event {
            at_ms,
            sent_ms,
            shopper,
            action,
            key: None,
            status: None,
            problem: None,
            order_id: None,
            order_status: None,
            amount_cents: None,
            order: None,
            asked: None,
            transaction_id: None,
            balance_cents: None,
            listed: None,
            entries: None,
            slots: None,
            product: None,
            about: None,
            abandoned: false,
            malformed: None,
            at_once: false,
            session: None,
            behaviours: Vec::new(),
        }
    }
}

pub type History = Rc<RefCell<Vec<Event>>>;

impl Event {
    /// The answer's problem type, when it is one the store has.
    pub fn problem_type(&self) -> Option<ProblemType> {
        self.problem.as_ref().and_then(ProblemKind::known)
    }

    /// The answer's problem type as it came, for evidence.
    pub fn problem_text(&self) -> Option<&str> {
        self.problem.as_ref().map(ProblemKind::as_str)
    }

    /// One line of the timeline.
    pub fn line(&self) -> String {
        let status = self.status.map_or("no answer".to_string(), |s| s.to_string());
        let mut line = format!("{:>7} ms shopper-{} {:?} -> {status}", self.at_ms, self.shopper, self.action);
        if let Some(about) = self.about {
            line.push_str(&format!(" step={about:?}"));
        }
        if let Some(key) = &self.key {
            line.push_str(&format!(" key={key}"));
        }
        if let Some(order) = self.order_id {
            line.push_str(&format!(" order={order}"));
        }
        if let Some(status) = self.order_status {
            line.push_str(&format!(" status={}", status.as_str()));
        }
        if let Some(problem) = &self.problem {
            line.push_str(&format!(" problem={problem}"));
        }
        if let Some(session) = self.session {
            line.push_str(&format!(" session={session}"));
        }
        if self.abandoned {
            line.push_str(" abandoned");
        }
        if let Some(what) = &self.malformed {
            line.push_str(&format!(" malformed={what}"));
        }
        line
    }
}
