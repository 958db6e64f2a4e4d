//! The history: every request a shopper made and the answer it saw, with simulated time.

use serde::Serialize;
use std::cell::RefCell;
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
    pub problem: Option<String>,
    pub order_id: Option<Uuid>,
    pub order_status: Option<String>,
    /// Deposits: the amount in cents. Peeks: the owner's shopper index.
    pub amount_cents: Option<i64>,
}

pub type History = Rc<RefCell<Vec<Event>>>;

impl Event {
    /// One line of the timeline.
    pub fn line(&self) -> String {
        let status = self.status.map_or("no answer".to_string(), |s| s.to_string());
        let mut line = format!("{:>7} ms shopper-{} {:?} -> {status}", self.at_ms, self.shopper, self.action);
        if let Some(key) = &self.key {
            line.push_str(&format!(" key={key}"));
        }
        if let Some(order) = self.order_id {
            line.push_str(&format!(" order={order}"));
        }
        if let Some(status) = &self.order_status {
            line.push_str(&format!(" status={status}"));
        }
        if let Some(problem) = &self.problem {
            line.push_str(&format!(" problem={problem}"));
        }
        line
    }
}
