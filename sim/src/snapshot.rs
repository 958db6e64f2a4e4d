//! One typed read of every service's database at the end of a run. The checks, the stats,
//! the digest, the ledger lines and the coverage are pure functions of (history, snapshot);
//! nothing after the read touches a database. A value the schema allows but the code
//! should never write (an unknown status, a malformed id) is kept as `unreadable`, which
//! the checks report, rather than defaulted.

use crate::cluster::Cluster;
use contracts::billing::TransactionType;
use contracts::notification::NotificationType;
use contracts::order::OrderStatus;
use contracts::{AccountId, Id, NotificationId, OrderId, ProductId, ServiceName, Timestamp, TransactionId, UserId};
use order::saga::{parse_step, step_text, Event, Phase, Step};
use platform::operations::OperationState;
use platform::storage::Cached;
use platform::storage::Db;
use rusqlite::{Connection, Row};
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;

/// The services with a transactional outbox.
pub const OUTBOX_SERVICES: [ServiceName; 2] = [ServiceName::Billing, ServiceName::Order];

/// A participant of the saga, as the snapshot names its operation records.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    Billing,
    Warehouse,
    Delivery,
}

impl Participant {
    pub const ALL: [Participant; 3] = [Participant::Billing, Participant::Warehouse, Participant::Delivery];

    pub fn service(self) -> ServiceName {
        self.step().participant()
    }

    /// The participant that takes `step`.
    pub fn of(step: Step) -> Participant {
        match step {
            Step::Withdraw => Participant::Billing,
            Step::Reserve => Participant::Warehouse,
            Step::Book => Participant::Delivery,
        }
    }

    /// The participant that takes the saga log's `step` (the last one for a step the saga
    /// does not know).
    pub fn taking(step: &str) -> Participant {
        Step::parse(step).map_or(Participant::Delivery, Participant::of)
    }

    /// The saga step this participant takes.
    pub fn step(self) -> Step {
        match self {
            Participant::Billing => Step::Withdraw,
            Participant::Warehouse => Step::Reserve,
            Participant::Delivery => Step::Book,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OrderRow {
    pub id: OrderId,
    pub number: String,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub price_cents: i64,
    pub error_message: Option<String>,
    pub slot: Timestamp,
    /// On the order service's clock.
    pub created_at: Timestamp,
    /// Product → quantity, lines of one product added up.
    pub items: BTreeMap<ProductId, i64>,
    /// The trace its saga's calls carry (the request that created it started it).
    pub trace_id: Option<String>,
}

impl OrderRow {
    /// The similar-order signature, computed here from the lines (not read from the
    /// service's own `items_signature` column, which a bug could get wrong).
    pub fn signature(&self) -> &BTreeMap<ProductId, i64> {
        &self.items
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct KeyRow {
    pub user_id: UserId,
    pub key: String,
    /// `false`: the key made `order_id`; `true`: it was answered as a duplicate of it.
    pub duplicate: bool,
    pub order_id: OrderId,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SagaRow {
    pub order_id: OrderId,
    /// `None`: the saga as a whole (`saga` in the log).
    #[serde(serialize_with = "serialize_step")]
    pub step: Option<Step>,
    pub phase: Phase,
    pub event: Event,
    pub detail: String,
    /// On the order service's clock.
    pub at: Timestamp,
}

fn serialize_step<S: serde::Serializer>(step: &Option<Step>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(step_text(*step))
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AccountRow {
    pub id: AccountId,
    pub user_id: UserId,
    pub balance_cents: i64,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LedgerRow {
    pub seq: i64,
    pub id: TransactionId,
    pub account_id: AccountId,
    pub kind: TransactionType,
    pub amount_cents: i64,
    pub order_id: Option<OrderId>,
    /// On billing's clock.
    pub created_at: Timestamp,
}

impl LedgerRow {
    /// What the line does to its account's balance.
    pub fn effect_cents(&self) -> i64 {
        match self.kind {
            TransactionType::Withdraw => -self.amount_cents,
            TransactionType::Deposit | TransactionType::Refund => self.amount_cents,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DepositKeyRow {
    pub user_id: UserId,
    pub key: String,
    pub amount_cents: i64,
    pub transaction_id: TransactionId,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StockRow {
    pub product_id: ProductId,
    pub total: i64,
    pub reserved: i64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StockReservationRow {
    pub order_id: OrderId,
    pub product_id: ProductId,
    pub quantity: i64,
    /// `RESERVED` (else `RELEASED`).
    pub held: bool,
    /// On the warehouse's clock.
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SlotRow {
    pub slot: Timestamp,
    pub capacity: i64,
    pub booked: i64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BookingRow {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub slot: Timestamp,
    /// `BOOKED` (else `CANCELLED`).
    pub held: bool,
    /// On delivery's clock.
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NotificationRow {
    pub id: NotificationId,
    pub user_id: UserId,
    pub order_id: OrderId,
    pub kind: NotificationType,
    pub amount_cents: Option<i64>,
    /// When the notification service stored it, on its clock (not the event's own time).
    pub created_at: Timestamp,
    /// The event's own time, as the source's outbox stamped it: the time of the transaction
    /// that recorded the fact, on the source's clock (what the listing shows as `createdAt`).
    pub occurred_at: Option<Timestamp>,
}

/// One write that changed an order's status, seen by a trigger the harness adds to the
/// order service's database ([`watch_status_moves`]): every move, not only the ones a read
/// happened to see.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct StatusMove {
    pub order_id: OrderId,
    pub before: OrderStatus,
    pub after: OrderStatus,
}

/// Adds to the order service's database a temporary table and trigger (on the harness's
/// connection only; nothing of the service's schema changes) recording every change of an
/// order's status, read into [`Snapshot::status_moves`]. A write rolled back takes its
/// record with it.
pub fn watch_status_moves(db: &Db) -> rusqlite::Result<()> {
    db.read(|c| {
        c.execute_batch(
            "CREATE TEMP TABLE sim_status_moves (
                 seq INTEGER PRIMARY KEY, order_id TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL);
             CREATE TEMP TRIGGER sim_status_move AFTER UPDATE OF status ON main.orders
                 WHEN NEW.status IS NOT OLD.status
             BEGIN
                 INSERT INTO sim_status_moves (order_id, before, after) VALUES (NEW.id, OLD.status, NEW.status);
             END;",
        )
    })
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct OperationRow {
    pub state: OperationState,
    pub message: String,
    /// When the action (or a first cancel) was decided, on the participant's clock.
    pub created_at: Timestamp,
    /// When the state last changed (an undo: the release time).
    pub updated_at: Timestamp,
    /// The trace of the saga call that created the record.
    pub trace_id: Option<String>,
    /// How many times the action, and the cancel, came again after the first.
    pub action_repeats: i64,
    pub cancel_repeats: i64,
}

/// Every service's state at the end of a run (or, for [`Snapshot::levels`], the balances,
/// stock and slot counters the "always" checks read while it runs).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    /// Gateway: user id by email.
    pub users: BTreeMap<String, UserId>,
    pub orders: Vec<OrderRow>,
    pub keys: Vec<KeyRow>,
    pub saga_log: Vec<SagaRow>,
    /// Events not yet delivered, by service (billing, order).
    pub outbox: BTreeMap<ServiceName, u64>,
    pub accounts: Vec<AccountRow>,
    pub ledger: Vec<LedgerRow>,
    pub deposit_keys: Vec<DepositKeyRow>,
    pub stocks: Vec<StockRow>,
    pub stock_reservations: Vec<StockReservationRow>,
    pub slots: Vec<SlotRow>,
    pub bookings: Vec<BookingRow>,
    pub notifications: Vec<NotificationRow>,
    /// Each participant's operation records, by order.
    pub operations: BTreeMap<Participant, BTreeMap<OrderId, OperationRow>>,
    /// Total stock of each product when the run began.
    pub initial_stock: BTreeMap<ProductId, i64>,
    /// Every change of an order's status, in the order written. Not part of the digest
    /// (the statuses it ends in are).
    #[serde(skip)]
    pub status_moves: Vec<StatusMove>,
    /// Values the code should never have written: "service.table: what".
    pub unreadable: Vec<String>,
    /// The services' own metrics at the end of the run (check 15); `None` in a snapshot not
    /// read from a cluster. Not part of the digest: the figures follow from the run.
    #[serde(skip)]
    pub figures: Option<crate::figures::Figures>,
}

/// Reads rows, keeping the ones that parse and naming the ones that do not.
struct Reader<'a> {
    unreadable: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn rows<T>(&mut self, db: &Db, place: &str, sql: &str, map: impl Fn(&Row<'_>) -> Result<T, String>) -> Vec<T> {
        let raw: Vec<Result<T, String>> = db
            .read(|c: &Connection| {
                let mut statement = c.prepare_cached(sql)?;
                let rows = statement.query_map([], |row| Ok(map(row)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|error| vec![Err(format!("cannot read: {error}"))]);
        let mut kept = Vec::with_capacity(raw.len());
        for row in raw {
            match row {
                Ok(row) => kept.push(row),
                Err(what) => self.unreadable.push(format!("{place}: {what}")),
            }
        }
        kept
    }
}

fn text(row: &Row<'_>, index: usize) -> Result<String, String> {
    row.get::<_, String>(index).map_err(|e| format!("column {index}: {e}"))
}

fn optional_text(row: &Row<'_>, index: usize) -> Result<Option<String>, String> {
    row.get::<_, Option<String>>(index).map_err(|e| format!("column {index}: {e}"))
}

fn int(row: &Row<'_>, index: usize) -> Result<i64, String> {
    row.get::<_, i64>(index).map_err(|e| format!("column {index}: {e}"))
}

/// A typed id (`contracts::ids`): text that is not a UUID is unreadable.
fn id<T: Id>(row: &Row<'_>, index: usize) -> Result<T, String> {
    let text = text(row, index)?;
    text.parse().map_err(|_| format!("'{text}' is not a uuid"))
}

fn optional_id<T: Id>(row: &Row<'_>, index: usize) -> Result<Option<T>, String> {
    optional_text(row, index)?.map(|t| t.parse().map_err(|_| format!("'{t}' is not a uuid"))).transpose()
}

fn time(row: &Row<'_>, index: usize) -> Result<Timestamp, String> {
    let text = text(row, index)?;
    chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.to_utc()).map_err(|_| format!("'{text}' is not a time"))
}

fn optional_time(row: &Row<'_>, index: usize) -> Result<Option<Timestamp>, String> {
    optional_text(row, index)?
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t).map(|t| t.to_utc()).map_err(|_| format!("'{t}' is not a time"))
        })
        .transpose()
}

fn parsed<T>(row: &Row<'_>, index: usize, parse: impl Fn(&str) -> Option<T>) -> Result<T, String> {
    let text = text(row, index)?;
    parse(&text).ok_or_else(|| format!("unknown value '{text}'"))
}

impl Snapshot {
    /// Reads every service's database.
    pub fn take(cluster: &Cluster) -> Snapshot {
        let mut snapshot = Snapshot::levels(cluster);
        snapshot.initial_stock = cluster.initial_stock.clone();
        let mut unreadable = std::mem::take(&mut snapshot.unreadable);
        let mut reader = Reader { unreadable: &mut unreadable };
        let db = |service: ServiceName| &cluster.dbs[&service];
        snapshot.users = reader
            .rows(db(ServiceName::Gateway), "gateway.users", "SELECT email, id FROM users ORDER BY email", |r| {
                Ok((text(r, 0)?, id(r, 1)?))
            })
            .into_iter()
            .collect();
        snapshot.orders = read_orders(&mut reader, db(ServiceName::Order));
        snapshot.status_moves = reader.rows(
            db(ServiceName::Order),
            "order.sim_status_moves",
            "SELECT order_id, before, after FROM sim_status_moves ORDER BY seq",
            |r| {
                Ok(StatusMove {
                    order_id: id(r, 0)?,
                    before: parsed(r, 1, OrderStatus::parse)?,
                    after: parsed(r, 2, OrderStatus::parse)?,
                })
            },
        );
        snapshot.figures = Some(crate::figures::Figures::read(cluster, &snapshot));
        snapshot.keys = reader.rows(
            db(ServiceName::Order),
            "order.idempotency_keys",
            "SELECT user_id, key, outcome, order_id FROM idempotency_keys ORDER BY user_id, key",
            |r| {
                let duplicate = parsed(r, 2, |o| match o {
                    "ORDER" => Some(false),
                    "DUPLICATE" => Some(true),
                    _ => None,
                })?;
                Ok(KeyRow { user_id: id(r, 0)?, key: text(r, 1)?, duplicate, order_id: id(r, 3)? })
            },
        );
        snapshot.saga_log = reader.rows(
            db(ServiceName::Order),
            "order.saga_log",
            "SELECT order_id, step, phase, event, detail, at FROM saga_log ORDER BY seq",
            |r| {
                Ok(SagaRow {
                    order_id: id(r, 0)?,
                    step: parsed(r, 1, parse_step)?,
                    phase: parsed(r, 2, Phase::parse)?,
                    event: parsed(r, 3, Event::parse)?,
                    detail: text(r, 4)?,
                    at: time(r, 5)?,
                })
            },
        );
        for service in OUTBOX_SERVICES {
            let pending = reader.rows(db(service), "outbox", "SELECT COUNT(*) FROM outbox", |r| int(r, 0));
            snapshot.outbox.insert(service, pending.first().copied().unwrap_or(0) as u64);
        }
        snapshot.ledger = reader.rows(
            db(ServiceName::Billing),
            "billing.transactions",
            "SELECT seq, id, account_id, type, amount_cents, order_id, created_at FROM transactions ORDER BY seq",
            |r| {
                Ok(LedgerRow {
                    seq: int(r, 0)?,
                    id: id(r, 1)?,
                    account_id: id(r, 2)?,
                    kind: parsed(r, 3, TransactionType::parse)?,
                    amount_cents: int(r, 4)?,
                    order_id: optional_id(r, 5)?,
                    created_at: time(r, 6)?,
                })
            },
        );
        snapshot.deposit_keys = reader.rows(
            db(ServiceName::Billing),
            "billing.deposit_keys",
            "SELECT user_id, key, amount_cents, transaction_id FROM deposit_keys ORDER BY user_id, key",
            |r| {
                Ok(DepositKeyRow {
                    user_id: id(r, 0)?,
                    key: text(r, 1)?,
                    amount_cents: int(r, 2)?,
                    transaction_id: id(r, 3)?,
                })
            },
        );
        snapshot.stock_reservations = reader.rows(
            db(ServiceName::Warehouse),
            "warehouse.stock_reservations",
            "SELECT order_id, product_id, quantity, status, created_at FROM stock_reservations ORDER BY order_id, product_id",
            |r| {
                Ok(StockReservationRow {
                    order_id: id(r, 0)?,
                    product_id: id(r, 1)?,
                    quantity: int(r, 2)?,
                    held: parsed(r, 3, |s| held(s, "RESERVED", "RELEASED"))?,
                    created_at: time(r, 4)?,
                })
            },
        );
        snapshot.bookings = reader.rows(
            db(ServiceName::Delivery),
            "delivery.delivery_reservations",
            "SELECT order_id, user_id, slot, status, created_at FROM delivery_reservations ORDER BY order_id",
            |r| {
                Ok(BookingRow {
                    order_id: id(r, 0)?,
                    user_id: id(r, 1)?,
                    slot: time(r, 2)?,
                    held: parsed(r, 3, |s| held(s, "BOOKED", "CANCELLED"))?,
                    created_at: time(r, 4)?,
                })
            },
        );
        snapshot.notifications = reader.rows(
            db(ServiceName::Notification),
            "notification.notifications",
            "SELECT user_id, order_id, type, amount_cents, id, created_at, occurred_at FROM notifications ORDER BY seq",
            |r| {
                Ok(NotificationRow {
                    id: id(r, 4)?,
                    user_id: id(r, 0)?,
                    order_id: id(r, 1)?,
                    kind: parsed(r, 2, NotificationType::parse)?,
                    amount_cents: r.get::<_, Option<i64>>(3).map_err(|e| e.to_string())?,
                    created_at: time(r, 5)?,
                    occurred_at: optional_time(r, 6)?,
                })
            },
        );
        for participant in Participant::ALL {
            let place = format!("{}.operations", participant.service());
            let rows = reader.rows(
                db(participant.service()),
                &place,
                "SELECT order_id, state, message, created_at, updated_at, trace_id, action_repeats, cancel_repeats
                 FROM operations ORDER BY order_id",
                |r| {
                    let row = OperationRow {
                        state: parsed(r, 1, OperationState::parse)?,
                        message: text(r, 2)?,
                        created_at: time(r, 3)?,
                        updated_at: time(r, 4)?,
                        trace_id: optional_text(r, 5)?,
                        action_repeats: int(r, 6)?,
                        cancel_repeats: int(r, 7)?,
                    };
                    Ok((id(r, 0)?, row))
                },
            );
            snapshot.operations.insert(participant, rows.into_iter().collect());
        }
        snapshot.unreadable = unreadable;
        snapshot
    }

    /// Only the balances, stock and slot counters: what the "always" checks read while the
    /// run goes on.
    pub fn levels(cluster: &Cluster) -> Snapshot {
        let mut unreadable = Vec::new();
        let mut reader = Reader { unreadable: &mut unreadable };
        let accounts = reader.rows(
            &cluster.dbs[&ServiceName::Billing],
            "billing.accounts",
            "SELECT id, user_id, balance_cents, created_at FROM accounts ORDER BY user_id",
            |r| {
                Ok(AccountRow { id: id(r, 0)?, user_id: id(r, 1)?, balance_cents: int(r, 2)?, created_at: time(r, 3)? })
            },
        );
        let stocks = reader.rows(
            &cluster.dbs[&ServiceName::Warehouse],
            "warehouse.stocks",
            "SELECT product_id, total_quantity, reserved_quantity FROM stocks ORDER BY product_id",
            |r| Ok(StockRow { product_id: id(r, 0)?, total: int(r, 1)?, reserved: int(r, 2)? }),
        );
        let slots = reader.rows(
            &cluster.dbs[&ServiceName::Delivery],
            "delivery.delivery_slots",
            "SELECT slot, capacity, booked FROM delivery_slots ORDER BY slot",
            |r| Ok(SlotRow { slot: time(r, 0)?, capacity: int(r, 1)?, booked: int(r, 2)? }),
        );
        Snapshot { accounts, stocks, slots, unreadable, ..Snapshot::default() }
    }

    /// Whether every order is final and both outboxes are empty (the liveness phase's end).
    pub fn settled(cluster: &Cluster) -> bool {
        let unfinished: i64 = cluster.dbs[&ServiceName::Order]
            .read(|c| {
                c.query_row_cached(
                    "SELECT COUNT(*) FROM orders WHERE status NOT IN (?1, ?2)",
                    order::store::FINAL,
                    |r| r.get(0),
                )
            })
            .unwrap_or(1);
        let outbox = |service: &ServiceName| -> i64 {
            cluster.dbs[service]
                .read(|c| c.query_row_cached("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)))
                .unwrap_or(1)
        };
        unfinished == 0 && OUTBOX_SERVICES.iter().all(|service| outbox(service) == 0)
    }

    pub fn order(&self, order_id: OrderId) -> Option<&OrderRow> {
        self.orders.iter().find(|o| o.id == order_id)
    }

    pub fn account_of(&self, user_id: UserId) -> Option<&AccountRow> {
        self.accounts.iter().find(|a| a.user_id == user_id)
    }

    /// The user an account belongs to.
    pub fn owner_of(&self, account_id: AccountId) -> Option<UserId> {
        self.accounts.iter().find(|a| a.id == account_id).map(|a| a.user_id)
    }

    /// A digest of everything the snapshot holds.
    pub fn digest(&self, hasher: &mut Sha256) {
        serde_json::to_writer(hasher, self).expect("snapshots serialize");
    }
}

fn held(text: &str, live: &str, gone: &str) -> Option<bool> {
    if text == live {
        Some(true)
    } else if text == gone {
        Some(false)
    } else {
        None
    }
}

fn read_orders(reader: &mut Reader<'_>, db: &Db) -> Vec<OrderRow> {
    let mut orders = reader.rows(
        db,
        "order.orders",
        "SELECT id, number, user_id, status, price_cents, error_message, preferred_time_slot, created_at, trace_id
         FROM orders ORDER BY seq",
        |r| {
            Ok(OrderRow {
                id: id(r, 0)?,
                number: text(r, 1)?,
                user_id: id(r, 2)?,
                status: parsed(r, 3, OrderStatus::parse)?,
                price_cents: int(r, 4)?,
                error_message: optional_text(r, 5)?,
                slot: time(r, 6)?,
                created_at: time(r, 7)?,
                items: BTreeMap::new(),
                trace_id: optional_text(r, 8)?,
            })
        },
    );
    let lines = reader.rows(
        db,
        "order.order_items",
        "SELECT order_id, product_id, quantity FROM order_items ORDER BY id",
        |r| Ok((id(r, 0)?, id(r, 1)?, int(r, 2)?)),
    );
    let index: BTreeMap<OrderId, usize> = orders.iter().enumerate().map(|(i, o)| (o.id, i)).collect();
    for (order_id, product, quantity) in lines {
        match index.get(&order_id) {
            Some(i) => *orders[*i].items.entry(product).or_default() += quantity,
            None => reader.unreadable.push(format!("order.order_items: a line of unknown order {order_id}")),
        }
    }
    orders
}
