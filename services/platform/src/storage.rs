//! The storage seam: one SQLite database per service, with versioned migrations.
//!
//! Transactions are synchronous closures, so no transaction can span an `.await`, and a
//! crash (real or simulated) loses only what was not committed. The simulation keeps each
//! service's [`Db`] outside its host and hands the same one back on restart.
//!
//! **Group commit.** The connection is taken in turns, in arrival order. Writes that wait
//! for it join one open `BEGIN IMMEDIATE` transaction, a batch: the first write runs in the
//! transaction itself, each later one in its own `SAVEPOINT`, so a write whose work fails is
//! undone alone. The write that finds no write next in line (or the batch at [`MAX_BATCH`])
//! commits the batch: one `COMMIT`, one fsync for all of them (`synchronous = FULL` as
//! ever), and every member gets the commit's result. A write answers `Ok` only once the
//! commit holding it is durable; a failed commit fails every write of its batch, none of
//! which took effect. A database file's reads have a connection of their own ([`Db::read`]),
//! so they never wait for a commit and never come between two writes (a read next in line
//! ended the batch: at 16 shoppers, 1.6 writes per commit with reads in the line, 2.5
//! without). In memory a read waits its turn like a write and never finds a batch open, so
//! it never sees uncommitted writes. One thread alone (the simulation, unit tests) never
//! finds a write waiting: each batch is one write, running the statements a lone
//! transaction did.
//!
//! **Waiting as tasks.** [`Db::write`] is async: a write waits for its turn, and a batch's
//! member for the commit, as a task, parked without a thread; the turn is handed to the
//! next in line directly and wakes only it. The work runs on the calling task's thread,
//! and only the `COMMIT` of a database file (its fsync) leaves the async worker. No one
//! holds the turn across an `.await`, so a write that finds the connection free (always,
//! in the simulation) never yields. Parking a thread per waiting write and handing every
//! transaction off its worker cost a store at 16 shoppers 66 context switches and 4.0–4.4 ms
//! of CPU per confirmed order; waiting as tasks, 25–26 and 3.1–3.2 ms (shop-bench).

use crate::metrics::{Metrics, ParticipantOutcome, TransactionKind};
use crate::storage_fault::{self, StorageFailure};
use crate::Clock;
use rusqlite::{Connection, Params, Row};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// How many prepared statements a connection keeps for reuse ([`Cached`]): more than any
/// service's store has distinct statements, so a statement is parsed once per connection.
const STATEMENT_CACHE: usize = 64;

/// The most writes one commit makes durable: the write that fills a batch commits it even
/// when more writes wait (they begin the next one).
pub const MAX_BATCH: usize = 64;

/// `execute` and `query_row` through the connection's statement cache: SQLite parses a
/// statement once per connection instead of once per call (parsing was the largest single
/// cost in a profile of the simulation, ahead of executing). Every store uses these.
pub trait Cached {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn query_row_cached<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, row)
    }
}

/// One schema step: applied once, in order, recorded in `PRAGMA user_version`.
pub struct Migration {
    pub version: u32,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("migration {version} failed: {source}")]
    Migration { version: u32, source: rusqlite::Error },
    #[error("migrations must be numbered 1, 2, 3, … in order; found {found} after {previous}")]
    MigrationOrder { previous: u32, found: u32 },
}

impl StoreError {
    /// Whether the failure is the database's momentary state (see [`is_transient`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Sql(error) if is_transient(error))
    }
}

/// Whether a write may succeed if simply tried again later: the database was busy or locked,
/// or an I/O error struck (the transaction was rolled back and left no effect). A request
/// answers such a failure 503 and a background loop retries it; anything else (a constraint
/// violated, a bad query, an unreadable value) is a bug.
pub fn is_transient(error: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode;
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SystemIoFailure)
    )
}

/// Where a transaction waits for the disk (and, in memory, a read for its turn); chosen by
/// the composition root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Blocking {
    /// On the calling task's thread (the simulation's single-threaded runtime, unit tests).
    #[default]
    Inline,
    /// A database file's commit leaves the async worker while it waits for its fsync: the
    /// calling worker hands its other tasks to another thread meanwhile
    /// (`tokio::task::block_in_place`). Only on a multi-threaded runtime (the real `shop`);
    /// elsewhere it commits inline. A write's work and a file's reads (on their own
    /// connection, never waiting for a write) stay on the worker: handing the worker over
    /// cost more than they do. An in-memory database's read that may wait for its turn
    /// leaves the worker too.
    OffWorker,
}

impl Blocking {
    fn leaves_worker(self) -> bool {
        use tokio::runtime::{Handle, RuntimeFlavor};
        self == Blocking::OffWorker
            && Handle::try_current().is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread)
    }
}

/// A service's database. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
    blocking: Blocking,
    instruments: Option<Instruments>,
}

/// What every clone of a [`Db`] shares: the connection, whose turn it is, and the results
/// of the commits that writes wait for.
struct Shared {
    /// Locked only by the holder of the turn ([`Turn`]), so never waited for.
    store: Mutex<Store>,
    turns: Mutex<Turns>,
    /// Write transactions committed: batches, not writes.
    commits: AtomicU64,
    /// A database file's second connection, for reads alone ([`Db::read`]): they neither
    /// wait for a commit's fsync nor come between two writes that could share one.
    reader: Option<Mutex<Connection>>,
}

/// The connection and the batch open on it, if any.
struct Store {
    connection: Connection,
    batch: Option<Batch>,
    next_batch: u64,
}

/// An open `BEGIN IMMEDIATE` transaction and the writes in it.
struct Batch {
    id: u64,
    /// Writes whose work succeeded and is in the transaction.
    members: usize,
    /// Set when the batch must not commit (an injected commit-time fault, a savepoint that
    /// could not be undone): it is rolled back and every member fails with this error.
    doomed: Option<rusqlite::Error>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Who waits for the connection, in arrival order, and the commits that writes wait for.
/// A waiter is a task (or a thread, [`block_on`]) woken only when the turn is its own or
/// its batch's result is out: no thread is parked per waiting write, and no waiter is woken
/// for someone else's turn.
#[derive(Default)]
struct Turns {
    next_ticket: u64,
    waiting: VecDeque<Waiter>,
    /// The ticket the connection is given to (it may not have taken it up yet).
    holder: Option<u64>,
    /// By batch: the followers waiting for its commit, and its result once out.
    outcomes: BTreeMap<u64, Outcome>,
}

/// One read or write waiting for the connection.
struct Waiter {
    ticket: u64,
    access: Access,
    /// Set once it waited (a waiter that has not yet looked finds its turn when it does).
    waker: Option<Waker>,
}

/// A batch's commit as its followers see it.
#[derive(Default)]
struct Outcome {
    /// `Some` once the batch ended: committed (`None` inside) or not.
    result: Option<Option<CommitFailure>>,
    /// By ticket: the followers that have not read the result yet.
    followers: BTreeMap<u64, Option<Waker>>,
}

impl Turns {
    /// Takes a ticket: the connection is given to it at once when it is free and no one
    /// waits, and otherwise when every earlier ticket has had its turn.
    fn arrive(&mut self, access: Access) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        if self.holder.is_none() && self.waiting.is_empty() {
            self.holder = Some(ticket);
        } else {
            self.waiting.push_back(Waiter { ticket, access, waker: None });
        }
        ticket
    }

    /// Gives the connection to the next in line, if anyone waits.
    fn release(&mut self) {
        self.holder = self.waiting.pop_front().map(|next| {
            if let Some(waker) = next.waker {
                waker.wake();
            }
            next.ticket
        });
    }

    /// Publishes batch `id`'s result and wakes its followers.
    fn publish(&mut self, id: u64, result: Option<CommitFailure>) {
        let Some(outcome) = self.outcomes.get_mut(&id) else { return };
        if outcome.followers.is_empty() {
            self.outcomes.remove(&id);
            return;
        }
        outcome.result = Some(result);
        for waker in outcome.followers.values_mut().filter_map(Option::take) {
            waker.wake();
        }
    }

    /// Lets follower `ticket` of batch `id` go (it read the result, or gave up waiting).
    fn unfollow(&mut self, id: u64, ticket: u64) {
        let Some(outcome) = self.outcomes.get_mut(&id) else { return };
        outcome.followers.remove(&ticket);
        if outcome.followers.is_empty() && outcome.result.is_some() {
            self.outcomes.remove(&id);
        }
    }
}

/// A commit's error, handed to every follower of the batch (a `rusqlite::Error` is not
/// `Clone`; a commit's errors are SQLite's code and message).
#[derive(Clone)]
struct CommitFailure {
    code: rusqlite::ffi::Error,
    message: Option<String>,
}

impl CommitFailure {
    fn of(error: &rusqlite::Error) -> CommitFailure {
        match error {
            rusqlite::Error::SqliteFailure(code, message) => CommitFailure { code: *code, message: message.clone() },
            other => CommitFailure {
                code: rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                message: Some(other.to_string()),
            },
        }
    }

    fn error(&self) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(self.code, self.message.clone())
    }
}

fn relock<T>(result: std::sync::LockResult<T>) -> T {
    result.unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn turns(&self) -> MutexGuard<'_, Turns> {
        relock(self.turns.lock())
    }

    /// Waits for the connection: every earlier arrival has had its turn and let it go.
    /// Ready at once (it never yields) when the connection is free and no one waits, as
    /// always in the simulation.
    async fn turn(&self, access: Access) -> Turn<'_> {
        let ticket = self.turns().arrive(access);
        Arrival { shared: self, ticket, taken: false }.await;
        let mut turn = Turn { shared: self, ticket, store: Some(relock(self.store.lock())) };
        // Were it broken, the panic drops the turn: the batch is rolled back, no one hangs.
        assert!(access == Access::Write || turn.store().batch.is_none(), "a read's turn never finds a batch open");
        turn
    }
}

/// Waiting in line for the connection. Dropped before its turn was taken up (the caller
/// gave up), it leaves the line, or passes the turn on if it was already given.
struct Arrival<'a> {
    shared: &'a Shared,
    ticket: u64,
    taken: bool,
}

impl Future for Arrival<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let mut turns = self.shared.turns();
        if turns.holder == Some(self.ticket) {
            drop(turns);
            self.taken = true;
            return Poll::Ready(());
        }
        let waiter = turns.waiting.iter_mut().find(|w| w.ticket == self.ticket).expect("in line until given the turn");
        waiter.waker = Some(context.waker().clone());
        Poll::Pending
    }
}

impl Drop for Arrival<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut turns = self.shared.turns();
        if turns.holder == Some(self.ticket) {
            turns.release();
        } else {
            turns.waiting.retain(|w| w.ticket != self.ticket);
        }
    }
}

/// A member of a batch that another write commits, waiting for the commit's result.
/// Dropped before it read it (the caller gave up), it stops following; the write commits
/// or fails with its batch all the same.
struct Following<'a> {
    shared: &'a Shared,
    batch: u64,
    ticket: u64,
    read: bool,
}

impl Future for Following<'_> {
    type Output = rusqlite::Result<()>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<rusqlite::Result<()>> {
        let (batch, ticket) = (self.batch, self.ticket);
        let mut turns = self.shared.turns();
        let outcome = turns.outcomes.get_mut(&batch).expect("followed until read");
        let Some(result) = outcome.result.clone() else {
            outcome.followers.insert(ticket, Some(context.waker().clone()));
            return Poll::Pending;
        };
        turns.unfollow(batch, ticket);
        drop(turns);
        self.read = true;
        Poll::Ready(result.map_or(Ok(()), |failure| Err(failure.error())))
    }
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        if !self.read {
            self.shared.turns().unfollow(self.batch, self.ticket);
        }
    }
}

/// Runs `future` to completion on this thread, which sleeps while it waits: a synchronous
/// caller's wait for its turn ([`Db::write_blocking`], an in-memory database's reads).
/// Never waits in the simulation (one thread: the connection is always free).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

/// The connection, held by one read or write at a time, never across an `.await` (its
/// lock is not `Send`, so the compiler checks). Let go by [`Turn::pass`]; dropped
/// otherwise (a work panicked), it rolls back whatever is open and fails the open batch's
/// followers, so that no one waits for ever.
struct Turn<'a> {
    shared: &'a Shared,
    ticket: u64,
    store: Option<MutexGuard<'a, Store>>,
}

impl<'a> Turn<'a> {
    fn store(&mut self) -> &mut Store {
        self.store.as_mut().expect("held until passed")
    }

    /// Whether the next in line is a write (which may join the open batch).
    fn write_is_next(&self) -> bool {
        self.shared.turns().waiting.front().is_some_and(|w| w.access == Access::Write)
    }

    /// Lets the connection go to the next in line: first publishing `ended` (a closed
    /// batch's result, for its followers), or, with `follow`, joining the followers of that
    /// open batch (handing back the wait for its result).
    fn pass(mut self, ended: Option<(u64, Option<CommitFailure>)>, follow: Option<u64>) -> Option<Following<'a>> {
        let (shared, ticket) = (self.shared, self.ticket);
        drop(self.store.take());
        let mut turns = shared.turns();
        if let Some((id, result)) = ended {
            turns.publish(id, result);
        }
        let following = follow.map(|batch| {
            turns.outcomes.entry(batch).or_default().followers.insert(ticket, None);
            Following { shared, batch, ticket, read: false }
        });
        turns.release();
        following
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some(mut store) = self.store.take() else { return };
        if !store.connection.is_autocommit() {
            let _ = store.connection.execute_batch("ROLLBACK");
        }
        let abandoned = store.batch.take().map(|batch| batch.id);
        drop(store);
        let mut turns = self.shared.turns();
        if let Some(id) = abandoned {
            let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT);
            let message = Some("a write of the batch panicked; the batch was rolled back".to_string());
            turns.publish(id, Some(CommitFailure { code, message }));
        }
        turns.release();
    }
}

/// Where an instrumented [`Db`] reports: transaction durations (on the clock seam), busy
/// failures, writes per commit, and the participant outcomes its committed transactions
/// recorded.
#[derive(Clone)]
struct Instruments {
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

thread_local! {
    /// Outcomes recorded by the write transaction running on this thread
    /// ([`record_participant_outcome`]); counted only if it commits.
    static PENDING_OUTCOMES: RefCell<Vec<ParticipantOutcome>> = const { RefCell::new(Vec::new()) };
}

/// Records what a participant's operation record made of a call, from inside a write
/// transaction: the outcome reaches the metrics only when that transaction commits (a
/// rolled-back one never happened).
pub fn record_participant_outcome(outcome: ParticipantOutcome) {
    PENDING_OUTCOMES.with(|pending| pending.borrow_mut().push(outcome));
}

fn take_pending_outcomes() -> Vec<ParticipantOutcome> {
    PENDING_OUTCOMES.with(|pending| std::mem::take(&mut *pending.borrow_mut()))
}

impl Db {
    /// Opens (or creates) a database file; durable (`synchronous = FULL`, WAL journal).
    pub fn open_file(path: &Path, migrations: &[Migration]) -> Result<Db, StoreError> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        let mut db = Db::with_connection(connection, migrations)?;
        // Opened once migrated, so it never sees the schema change.
        let reader = Connection::open(path)?;
        reader.pragma_update(None, "query_only", "ON")?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Arc::get_mut(&mut db.shared).expect("not shared yet").reader = Some(Mutex::new(reader));
        Ok(db)
    }

    /// A private in-memory database (tests, simulation).
    pub fn open_memory(migrations: &[Migration]) -> Result<Db, StoreError> {
        Db::with_connection(Connection::open_in_memory()?, migrations)
    }

    fn with_connection(connection: Connection, migrations: &[Migration]) -> Result<Db, StoreError> {
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let shared = Shared {
            store: Mutex::new(Store { connection, batch: None, next_batch: 0 }),
            turns: Mutex::new(Turns::default()),
            commits: AtomicU64::new(0),
            reader: None,
        };
        let db = Db { shared: Arc::new(shared), blocking: Blocking::Inline, instruments: None };
        db.migrate(migrations)?;
        Ok(db)
    }

    /// The same database, its transactions run as `blocking` says.
    pub fn with_blocking(self, blocking: Blocking) -> Db {
        Db { blocking, ..self }
    }

    /// The same database, reporting to `metrics` (durations measured on `clock`); not
    /// instrumented at all (no clock reads) when `metrics` is off.
    pub fn with_metrics(self, metrics: Metrics, clock: Arc<dyn Clock>) -> Db {
        Db { instruments: metrics.is_on().then_some(Instruments { metrics, clock }), ..self }
    }

    /// The schema version (`PRAGMA user_version`): the last migration applied. Answers only
    /// when the database does.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self.read(|c| c.pragma_query_value(None, "user_version", |row| row.get(0)))?)
    }

    /// How many write transactions this database committed since it was opened: one per
    /// batch, however many writes it held (see the module's "Group commit").
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// How many reads and writes wait for their turn at the connection now.
    pub fn waiting(&self) -> usize {
        self.shared.turns().waiting.len()
    }

    fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
        let mut previous = 0;
        for migration in migrations {
            if migration.version != previous + 1 {
                return Err(StoreError::MigrationOrder { previous, found: migration.version });
            }
            previous = migration.version;
        }
        let mut store = relock(self.shared.store.lock());
        let connection = &mut store.connection;
        let current: u32 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        for migration in migrations.iter().filter(|m| m.version > current) {
            let apply = |connection: &mut Connection| -> rusqlite::Result<()> {
                let tx = connection.transaction()?;
                tx.execute_batch(migration.sql)?;
                tx.pragma_update(None, "user_version", migration.version)?;
                tx.commit()
            };
            apply(connection).map_err(|source| StoreError::Migration { version: migration.version, source })?;
        }
        Ok(())
    }

    /// Runs `work` inside a write transaction; its effects are kept when it answers `Ok`, and
    /// this answers `Ok` once they are committed, durably. Concurrent writes share one
    /// transaction and one commit (the module's "Group commit"): `work` runs in its own
    /// savepoint of it, undone alone when `work` fails; if the commit fails, every write of
    /// the batch fails with its error and none of them took effect.
    ///
    /// It waits for its turn at the connection, and for a batch-mate's commit, as a task:
    /// `work` runs on the calling task's thread, and only a database file's `COMMIT` (its
    /// fsync) leaves the async worker ([`Blocking::OffWorker`]). Where the connection is
    /// free (always in the simulation) it never yields.
    ///
    /// When the simulation armed a storage fault for the running host
    /// (`crate::storage_fault`), the transaction may fail as SQLite's would: busy when it
    /// begins (the work never runs) or an I/O error when it commits (the work ran and is
    /// rolled back, with the rest of its batch). Either way it leaves no effect.
    pub async fn write<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        let started = self.instruments.as_ref().map(|i| i.clock.now());
        let failure = storage_fault::draw();
        let turn = self.shared.turn(Access::Write).await;
        let (written, outcomes) = self.write_in_turn(turn, failure, work);
        let result = match written {
            Ok((value, Some(following))) => following.await.map(|()| value).map_err(WriteError::Storage),
            Ok((value, None)) => Ok(value),
            Err(error) => Err(error),
        };
        if let (Some(instruments), Some(started)) = (&self.instruments, started) {
            if let Some(storage) = instruments.metrics.storage() {
                storage.observe(TransactionKind::write, instruments.clock.now().duration_since(started));
            }
            match &result {
                // `participants()` registers the group: only where outcomes are recorded.
                Ok(_) if !outcomes.is_empty() => {
                    if let Some(participants) = instruments.metrics.participants() {
                        outcomes.into_iter().for_each(|o| participants.record(o));
                    }
                }
                Err(WriteError::Storage(error)) if is_transient(error) => {
                    if let Some(storage) = instruments.metrics.storage() {
                        storage.busy.inc();
                    }
                }
                _ => {}
            }
        }
        result.map_err(WriteError::into_error)
    }

    /// [`Db::write`] for a synchronous caller (setup before serving, tests, tools): this
    /// thread sleeps while the write waits. Not from async code, whose worker it would hold.
    pub fn write_blocking<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        block_on(self.write(work))
    }

    /// A write's part in its turn: begins the batch or a savepoint in it, runs `work`, and
    /// ends the turn ([`Db::end_write`]): the value, with the wait for the batch's commit
    /// when another write commits it. Hands back the participant outcomes `work` recorded,
    /// which count only if it commits.
    fn write_in_turn<'a, T, E>(
        &'a self,
        mut turn: Turn<'a>,
        failure: Option<StorageFailure>,
        work: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> (Written<'a, T, E>, Vec<ParticipantOutcome>) {
        let ended = |error| (Err(error), Vec::new());
        if failure == Some(StorageFailure::Busy) {
            crate::probe::hit(crate::probe::Probe::StorageFault);
            let _ = self.end_write(turn, false);
            return ended(WriteError::Storage(StorageFailure::Busy.error()));
        }
        let store = turn.store();
        // The first write of a batch runs in the transaction itself: alone in it, it is
        // undone by rolling the transaction back. A later one needs its own savepoint.
        let first = store.batch.is_none();
        let begun = if first {
            store.connection.execute_cached("BEGIN IMMEDIATE", []).map(|_| {
                store.batch = Some(Batch { id: store.next_batch, members: 0, doomed: None });
                store.next_batch += 1;
            })
        } else {
            store.connection.execute_cached("SAVEPOINT member", []).map(drop)
        };
        if let Err(error) = begun {
            let _ = self.end_write(turn, false);
            return ended(WriteError::Storage(error));
        }
        let _ = take_pending_outcomes();
        let worked = work(&turn.store().connection);
        let outcomes = take_pending_outcomes();
        let store = turn.store();
        let batch = store.batch.as_mut().expect("opened above, closed only by its writes");
        match worked {
            Err(error) => {
                if first {
                    let _ = store.connection.execute_batch("ROLLBACK");
                    store.batch = None;
                } else if let Err(undo) = undo_member(&store.connection) {
                    batch.doomed.get_or_insert(undo);
                }
                let _ = self.end_write(turn, false);
                ended(WriteError::Work(error))
            }
            Ok(value) => {
                if !first {
                    if let Err(release) = store.connection.execute_cached("RELEASE member", []) {
                        if let Err(undo) = undo_member(&store.connection) {
                            batch.doomed.get_or_insert(undo);
                        }
                        let _ = self.end_write(turn, false);
                        return ended(WriteError::Storage(release));
                    }
                }
                batch.members += 1;
                if let Some(failure) = failure {
                    crate::probe::hit(crate::probe::Probe::StorageFault);
                    batch.doomed.get_or_insert(failure.error());
                }
                (self.end_write(turn, true).map(|following| (value, following)).map_err(WriteError::Storage), outcomes)
            }
        }
    }

    /// Ends a write's turn: passes the open batch on to the next write in line, or commits
    /// it (rolls it back when doomed). A `member` (its work is in the batch) gets the
    /// commit's result, or the wait for it if another write commits; any other gets `Ok`.
    fn end_write<'a>(&'a self, mut turn: Turn<'a>, member: bool) -> rusqlite::Result<Option<Following<'a>>> {
        let write_is_next = turn.write_is_next();
        let store = turn.store();
        let Some(batch) = store.batch.as_mut() else {
            turn.pass(None, None);
            return Ok(None);
        };
        if batch.doomed.is_none() && batch.members < MAX_BATCH && write_is_next {
            let id = batch.id;
            return Ok(turn.pass(None, member.then_some(id)));
        }
        let Batch { id, members, doomed } = store.batch.take().expect("open");
        let result = match doomed {
            Some(error) => Err(error),
            None if members == 0 => store.connection.execute_cached("ROLLBACK", []).map(drop),
            None => self.commit(&store.connection),
        };
        if !store.connection.is_autocommit() {
            let _ = store.connection.execute_batch("ROLLBACK");
        }
        if result.is_ok() && members > 0 {
            self.shared.commits.fetch_add(1, Ordering::Relaxed);
            if let Some(storage) = self.instruments.as_ref().and_then(|i| i.metrics.storage()) {
                storage.commit_batch_size.observe(members as f64);
            }
        }
        turn.pass(Some((id, result.as_ref().err().map(CommitFailure::of))), None);
        if member {
            result.map(|()| None)
        } else {
            Ok(None)
        }
    }

    /// Commits the open batch. A database file's commit waits for its fsync: off the async
    /// worker when [`Blocking::OffWorker`] says so, the worker's other tasks handed to
    /// another thread meanwhile (`block_in_place`). In memory there is nothing to wait for.
    fn commit(&self, connection: &Connection) -> rusqlite::Result<()> {
        let commit = || connection.execute_cached("COMMIT", []).map(drop);
        if self.shared.reader.is_some() && self.blocking.leaves_worker() {
            tokio::task::block_in_place(commit)
        } else {
            commit()
        }
    }

    /// Runs read-only `work` against the database: committed data only. A database file
    /// reads on a connection of its own, in one transaction (a WAL snapshot of the last
    /// commit, which is durable before it is visible), never waiting for the writes and
    /// their fsync; a write in `work` fails there (`query_only`). An in-memory database
    /// (the simulation, tests) has one connection: a read waits its turn like a write, so it
    /// never finds a batch open, and a write in `work` panics.
    pub fn read<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        if self.shared.reader.is_none() && self.blocking.leaves_worker() {
            // It may wait for its turn, the thread asleep: not as a worker.
            let inline = self.clone().with_blocking(Blocking::Inline);
            return tokio::task::block_in_place(move || inline.read(work));
        }
        let started = self.instruments.as_ref().map(|i| i.clock.now());
        let result = match &self.shared.reader {
            Some(reader) => {
                let reader: MutexGuard<'_, Connection> = relock(reader.lock());
                read_on(&reader, work)
            }
            None => {
                let mut turn = block_on(self.shared.turn(Access::Read));
                let connection = &turn.store().connection;
                let changes = connection.total_changes();
                let result = work(connection);
                // What the reader connection's `query_only` refuses, the shared one must too:
                // a read that writes is a bug wherever it runs.
                assert_eq!(turn.store().connection.total_changes(), changes, "a read changed the database");
                turn.pass(None, None);
                result
            }
        };
        if let (Some(instruments), Some(started)) = (&self.instruments, started) {
            if let Some(storage) = instruments.metrics.storage() {
                storage.observe(TransactionKind::read, instruments.clock.now().duration_since(started));
            }
        }
        result
    }
}

/// Runs `work` in a read transaction on a database file's reader connection.
fn read_on<T, E: From<rusqlite::Error>>(
    reader: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    if !reader.is_autocommit() {
        // A read that panicked left its transaction open.
        let _ = reader.execute_batch("ROLLBACK");
    }
    reader.execute_cached("BEGIN", [])?;
    let result = work(reader);
    // Ending a read transaction has nothing to fail on; an error would leave it open,
    // which the next read rolls back.
    let _ = reader.execute_cached("COMMIT", []);
    result
}

/// Undoes a later member's work: back to its savepoint, which is then let go.
fn undo_member(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_cached("ROLLBACK TO member", [])?;
    connection.execute_cached("RELEASE member", []).map(drop)
}

/// A write's turn, done: its value and, when another write commits its batch, the wait for
/// that commit; or why it failed.
type Written<'a, T, E> = Result<(T, Option<Following<'a>>), WriteError<E>>;

/// Why a write failed: the database itself (begin, commit, an injected fault), or the work.
enum WriteError<E> {
    Storage(rusqlite::Error),
    Work(E),
}

impl<E: From<rusqlite::Error>> WriteError<E> {
    fn into_error(self) -> E {
        match self {
            WriteError::Storage(error) => error.into(),
            WriteError::Work(error) => error,
        }
    }
}

/// Copies of an in-memory database (the simulation: a fresh database per run, without
/// running the migrations again each time).
impl Db {
    /// A private in-memory database holding what `template` holds now: its schema, its
    /// `user_version`, its rows, page for page (SQLite's online backup of `main`; temporary
    /// tables and triggers stay behind). Set up like [`Db::open_memory`]'s, and as if it
    /// had been migrated and written the same way: the copy and the template never share
    /// anything afterwards.
    pub fn open_memory_copy(template: &Db) -> Result<Db, StoreError> {
        let mut connection = Connection::open_in_memory()?;
        {
            // The template's turn, as a read's: never with a batch open.
            let mut turn = block_on(template.shared.turn(Access::Read));
            let copied = rusqlite::backup::Backup::new(&turn.store().connection, &mut connection).and_then(|backup| {
                // Every page in one step: nothing else uses either connection meanwhile.
                backup.run_to_completion(std::ffi::c_int::MAX, std::time::Duration::ZERO, None)
            });
            turn.pass(None, None);
            copied?;
        }
        Db::with_connection(connection, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[Migration] = &[
        Migration { version: 1, sql: "CREATE TABLE t (x INTEGER NOT NULL);" },
        Migration { version: 2, sql: "ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 0;" },
    ];

    #[test]
    fn migrations_apply_once_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("platform-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.sqlite");
        let _ = std::fs::remove_file(&path);
        let db = Db::open_file(&path, MIGRATIONS).unwrap();
        db.write_blocking(|tx| tx.execute("INSERT INTO t (x, y) VALUES (1, 2)", [])).unwrap();
        drop(db);
        let db = Db::open_file(&path, MIGRATIONS).unwrap();
        let y: i64 = db.read(|c| c.query_row("SELECT y FROM t", [], |r| r.get(0))).unwrap();
        assert_eq!(y, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_work_rolls_back() {
        let db = Db::open_memory(MIGRATIONS).unwrap();
        let result: Result<(), rusqlite::Error> = db.write_blocking(|tx| {
            tx.execute("INSERT INTO t (x) VALUES (1)", [])?;
            Err(rusqlite::Error::InvalidQuery)
        });
        assert!(result.is_err());
        let count: i64 = db.read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))).unwrap();
        assert_eq!(count, 0);
    }

    fn count(db: &Db) -> i64 {
        db.read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))).unwrap()
    }

    fn platform_host() -> Option<String> {
        Some("billing".to_string())
    }

    #[test]
    fn an_armed_storage_fault_fails_writes_with_no_effect() {
        let db = Db::open_memory(MIGRATIONS).unwrap();
        storage_fault::enable(platform_host);
        storage_fault::arm(0, "billing", 1_000, 11);
        let mut seen = Vec::new();
        let mut ran = 0;
        for _ in 0..40 {
            let result: Result<(), rusqlite::Error> = db.write_blocking(|tx| {
                ran += 1;
                tx.execute("INSERT INTO t (x) VALUES (1)", []).map(drop)
            });
            let error = result.expect_err("every write fails while armed at 1000 per mille");
            assert!(is_transient(&error), "{error}");
            seen.push(error.sqlite_error_code());
            assert!(StoreError::from(error).is_transient());
        }
        assert_eq!(count(&db), 0, "no failed write left an effect");
        assert!(ran > 0 && ran < 40, "the work ran for the commit-time failures only ({ran} of 40)");
        assert!(seen.contains(&Some(rusqlite::ErrorCode::DatabaseBusy)), "{seen:?}");
        assert!(seen.contains(&Some(rusqlite::ErrorCode::SystemIoFailure)), "{seen:?}");
        storage_fault::disarm(0);
        db.write_blocking(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", [])).unwrap();
        assert_eq!(count(&db), 1, "disarmed, writes commit again");
        let injected = storage_fault::take();
        assert_eq!(injected.values().sum::<u64>(), 40);
        db.write_blocking(|tx| tx.execute("INSERT INTO t (x) VALUES (2)", [])).unwrap();
        assert_eq!(count(&db), 2, "never in real mode");
    }

    #[test]
    fn participant_outcomes_count_only_when_their_transaction_commits() {
        let metrics = Metrics::new();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::ManualClock::new(chrono::DateTime::UNIX_EPOCH));
        let db = Db::open_memory(MIGRATIONS).unwrap().with_metrics(metrics.clone(), clock);
        let applied = |text: &str| {
            let line = r#"participant_operations_total{operation="action",outcome="applied"} "#;
            text.lines().find_map(|l| l.strip_prefix(line)).map(|v| v.to_string())
        };
        let rolled_back: Result<(), rusqlite::Error> = db.write_blocking(|_| {
            record_participant_outcome(ParticipantOutcome::applied);
            Err(rusqlite::Error::InvalidQuery)
        });
        assert!(rolled_back.is_err());
        assert_eq!(applied(&metrics.encode().unwrap()), None, "a rolled-back outcome is not counted");
        db.write_blocking(|tx| {
            record_participant_outcome(ParticipantOutcome::applied);
            tx.execute("INSERT INTO t (x) VALUES (1)", []).map(drop)
        })
        .unwrap();
        assert_eq!(applied(&metrics.encode().unwrap()).as_deref(), Some("1"));
        let text = metrics.encode().unwrap();
        assert!(text.contains(r#"storage_transaction_duration_seconds_count{kind="write"} 2"#), "{text}");
    }

    #[test]
    fn a_read_that_writes_panics_in_memory() {
        let db = Db::open_memory(MIGRATIONS).unwrap();
        let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            db.read(|c| c.execute("INSERT INTO t (x) VALUES (1)", []).map(drop))
        }));
        assert!(wrote.is_err(), "a read that writes must panic, as the file's reader refuses it");
        assert_eq!(count(&db), 1, "the connection is free again (the row went in: in memory, reads autocommit)");
    }

    #[test]
    fn a_constraint_violation_is_not_transient() {
        let db = Db::open_memory(MIGRATIONS).unwrap();
        let error = db.write_blocking(|tx| tx.execute("INSERT INTO t (x) VALUES (NULL)", [])).unwrap_err();
        assert!(!is_transient(&error), "{error}");
        assert!(!StoreError::from(error).is_transient());
    }

    #[test]
    fn out_of_order_migrations_are_refused() {
        let bad = [Migration { version: 2, sql: "" }];
        assert!(matches!(Db::open_memory(&bad), Err(StoreError::MigrationOrder { .. })));
    }

    #[test]
    fn a_copy_has_the_template_s_schema_and_rows_and_is_private() {
        let template = Db::open_memory(MIGRATIONS).unwrap();
        template.write_blocking(|tx| tx.execute("INSERT INTO t (x, y) VALUES (1, 2)", [])).unwrap();
        let copy = Db::open_memory_copy(&template).unwrap();
        assert_eq!(copy.schema_version().unwrap(), 2);
        let y: i64 = copy.read(|c| c.query_row("SELECT y FROM t", [], |r| r.get(0))).unwrap();
        assert_eq!(y, 2);
        copy.write_blocking(|tx| tx.execute("INSERT INTO t (x) VALUES (3)", [])).unwrap();
        assert_eq!((count(&template), count(&copy)), (1, 2), "the copy's writes stay in the copy");
        let again = Db::open_memory_copy(&template).unwrap();
        assert_eq!(count(&again), 1, "a second copy starts from the template, not from the first copy");
        let error = copy.write_blocking(|tx| tx.execute("INSERT INTO t (x) VALUES (NULL)", [])).unwrap_err();
        assert!(!is_transient(&error), "the copy keeps the template's constraints: {error}");
    }
}
