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

use crate::metrics::{Metrics, ParticipantOutcome, TransactionKind};
use crate::storage_fault::{self, StorageFailure};
use crate::Clock;
use rusqlite::{Connection, Params, Row};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

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

/// Where a transaction runs; chosen by the composition root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Blocking {
    /// On the calling task's thread (the simulation's single-threaded runtime, unit tests).
    #[default]
    Inline,
    /// Off the async workers: the calling worker hands its other tasks to another thread
    /// while the transaction (and its `fsync`) runs (`tokio::task::block_in_place`). Only
    /// on a multi-threaded runtime (the real `shop`); elsewhere it runs inline. A database
    /// file's reads stay on the worker: on their own connection they never wait for a
    /// write or an fsync, and handing the worker over cost more than most reads (shop-bench:
    /// 10% more context switches, 4% more CPU).
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
    /// Members that passed the turn on and wait for the commit's result.
    followers: usize,
    /// Set when the batch must not commit (an injected commit-time fault, a savepoint that
    /// could not be undone): it is rolled back and every member fails with this error.
    doomed: Option<rusqlite::Error>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// Who waits for the connection, in arrival order, and the commit results not yet read.
/// Each waiter sleeps on a condition variable of its own, woken only when the turn is its
/// own or its batch's result is out: waking every waiter at every turn (one shared
/// condition) cost a context switch per waiter per turn, and under 32 concurrent shoppers
/// the store spent more time switching than working.
#[derive(Default)]
struct Turns {
    next_ticket: u64,
    waiting: VecDeque<Waiter>,
    /// Someone holds the connection.
    held: bool,
    /// By batch: its commit's result, until every follower has read it.
    outcomes: BTreeMap<u64, Outcome>,
    /// By batch: the followers waiting for its result.
    awaiting: BTreeMap<u64, Vec<Arc<Condvar>>>,
}

/// One read or write waiting for the connection.
struct Waiter {
    ticket: u64,
    access: Access,
    wake: Arc<Condvar>,
}

impl Turns {
    /// Lets the connection go and wakes the next in line.
    fn release(&mut self) {
        self.held = false;
        if let Some(next) = self.waiting.front() {
            next.wake.notify_one();
        }
    }

    /// Publishes batch `id`'s result and wakes its followers.
    fn publish(&mut self, id: u64, outcome: Outcome) {
        self.outcomes.insert(id, outcome);
        for follower in self.awaiting.remove(&id).unwrap_or_default() {
            follower.notify_one();
        }
    }
}

struct Outcome {
    failure: Option<CommitFailure>,
    unread: usize,
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
    fn turn(&self, access: Access) -> Turn<'_> {
        let mut turns = self.turns();
        let ticket = turns.next_ticket;
        turns.next_ticket += 1;
        let wake = Arc::new(Condvar::new());
        turns.waiting.push_back(Waiter { ticket, access, wake: wake.clone() });
        let mut turns =
            relock(wake.wait_while(turns, |t| t.held || t.waiting.front().map(|w| w.ticket) != Some(ticket)));
        turns.waiting.pop_front();
        turns.held = true;
        drop(turns);
        let mut turn = Turn { shared: self, store: Some(relock(self.store.lock())) };
        // Were it broken, the panic drops the turn: the batch is rolled back, no one hangs.
        assert!(access == Access::Write || turn.store().batch.is_none(), "a read's turn never finds a batch open");
        turn
    }

    /// Waits for the commit of batch `id`, of which the caller is a follower.
    fn outcome(&self, mut turns: MutexGuard<'_, Turns>, id: u64) -> rusqlite::Result<()> {
        let wake = Arc::new(Condvar::new());
        if !turns.outcomes.contains_key(&id) {
            turns.awaiting.entry(id).or_default().push(wake.clone());
        }
        let mut turns = relock(wake.wait_while(turns, |t| !t.outcomes.contains_key(&id)));
        let outcome = turns.outcomes.get_mut(&id).expect("waited for");
        outcome.unread -= 1;
        let failure = outcome.failure.clone();
        if outcome.unread == 0 {
            turns.outcomes.remove(&id);
        }
        failure.map_or(Ok(()), |f| Err(f.error()))
    }
}

/// The connection, held by one read or write at a time. Let go by [`Turn::pass`]; dropped
/// otherwise (a work panicked), it rolls back whatever is open and fails the open batch's
/// other members, so that no one waits for ever.
struct Turn<'a> {
    shared: &'a Shared,
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

    /// Lets the connection go to the next in line, first publishing `outcome` (a closed
    /// batch's result, for its followers); hands back the lock on the turns.
    fn pass(mut self, outcome: Option<(u64, Outcome)>) -> MutexGuard<'a, Turns> {
        let shared = self.shared;
        drop(self.store.take());
        let mut turns = shared.turns();
        if let Some((id, outcome)) = outcome {
            turns.publish(id, outcome);
        }
        turns.release();
        turns
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some(mut store) = self.store.take() else { return };
        if !store.connection.is_autocommit() {
            let _ = store.connection.execute_batch("ROLLBACK");
        }
        let abandoned = store.batch.take().filter(|b| b.followers > 0).map(|batch| {
            let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT);
            let message = Some("a write of the batch panicked; the batch was rolled back".to_string());
            (batch.id, Outcome { failure: Some(CommitFailure { code, message }), unread: batch.followers })
        });
        drop(store);
        let mut turns = self.shared.turns();
        if let Some((id, outcome)) = abandoned {
            turns.publish(id, outcome);
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

    /// This database with its transactions run inline (inside `block_in_place`).
    fn inline(&self) -> Db {
        self.clone().with_blocking(Blocking::Inline)
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
    /// When the simulation armed a storage fault for the running host
    /// (`crate::storage_fault`), the transaction may fail as SQLite's would: busy when it
    /// begins (the work never runs) or an I/O error when it commits (the work ran and is
    /// rolled back, with the rest of its batch). Either way it leaves no effect.
    pub fn write<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        if self.blocking.leaves_worker() {
            let inline = self.inline();
            return tokio::task::block_in_place(move || inline.write(work));
        }
        let started = self.instruments.as_ref().map(|i| i.clock.now());
        let _ = take_pending_outcomes();
        let result = self.write_inline(work);
        let outcomes = take_pending_outcomes();
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

    fn write_inline<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, WriteError<E>> {
        let failure = storage_fault::draw();
        let mut turn = self.shared.turn(Access::Write);
        if failure == Some(StorageFailure::Busy) {
            crate::probe::hit(crate::probe::Probe::StorageFault);
            let _ = self.end_write(turn, false);
            return Err(WriteError::Storage(StorageFailure::Busy.error()));
        }
        let store = turn.store();
        // The first write of a batch runs in the transaction itself: alone in it, it is
        // undone by rolling the transaction back. A later one needs its own savepoint.
        let first = store.batch.is_none();
        let begun = if first {
            store.connection.execute_cached("BEGIN IMMEDIATE", []).map(|_| {
                store.batch = Some(Batch { id: store.next_batch, members: 0, followers: 0, doomed: None });
                store.next_batch += 1;
            })
        } else {
            store.connection.execute_cached("SAVEPOINT member", []).map(drop)
        };
        if let Err(error) = begun {
            let _ = self.end_write(turn, false);
            return Err(WriteError::Storage(error));
        }
        let worked = work(&turn.store().connection);
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
                Err(WriteError::Work(error))
            }
            Ok(value) => {
                if !first {
                    if let Err(release) = store.connection.execute_cached("RELEASE member", []) {
                        if let Err(undo) = undo_member(&store.connection) {
                            batch.doomed.get_or_insert(undo);
                        }
                        let _ = self.end_write(turn, false);
                        return Err(WriteError::Storage(release));
                    }
                }
                batch.members += 1;
                if let Some(failure) = failure {
                    crate::probe::hit(crate::probe::Probe::StorageFault);
                    batch.doomed.get_or_insert(failure.error());
                }
                self.end_write(turn, true).map_err(WriteError::Storage)?;
                Ok(value)
            }
        }
    }

    /// Ends a write's turn: passes the open batch on to the next write in line, or commits
    /// it (rolls it back when doomed). A `member` (its work is in the batch) gets the
    /// commit's result, waiting for it if another write commits; any other gets `Ok`.
    fn end_write(&self, mut turn: Turn<'_>, member: bool) -> rusqlite::Result<()> {
        let write_is_next = turn.write_is_next();
        let store = turn.store();
        let Some(batch) = store.batch.as_mut() else {
            drop(turn.pass(None));
            return Ok(());
        };
        if batch.doomed.is_none() && batch.members < MAX_BATCH && write_is_next {
            let id = batch.id;
            if member {
                batch.followers += 1;
            }
            let turns = turn.pass(None);
            return if member { self.shared.outcome(turns, id) } else { Ok(()) };
        }
        let Batch { id, members, followers, doomed } = store.batch.take().expect("open");
        let result = match doomed {
            Some(error) => Err(error),
            None if members == 0 => store.connection.execute_cached("ROLLBACK", []).map(drop),
            None => store.connection.execute_cached("COMMIT", []).map(drop),
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
        let outcome = (followers > 0)
            .then(|| (id, Outcome { failure: result.as_ref().err().map(CommitFailure::of), unread: followers }));
        drop(turn.pass(outcome));
        if member {
            result
        } else {
            Ok(())
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
            let inline = self.inline();
            return tokio::task::block_in_place(move || inline.read(work));
        }
        let started = self.instruments.as_ref().map(|i| i.clock.now());
        let result = match &self.shared.reader {
            Some(reader) => {
                let reader: MutexGuard<'_, Connection> = relock(reader.lock());
                read_on(&reader, work)
            }
            None => {
                let mut turn = self.shared.turn(Access::Read);
                let connection = &turn.store().connection;
                let changes = connection.total_changes();
                let result = work(connection);
                // What the reader connection's `query_only` refuses, the shared one must too:
                // a read that writes is a bug wherever it runs.
                assert_eq!(turn.store().connection.total_changes(), changes, "a read changed the database");
                drop(turn.pass(None));
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
            let mut turn = template.shared.turn(Access::Read);
            let copied = rusqlite::backup::Backup::new(&turn.store().connection, &mut connection).and_then(|backup| {
                // Every page in one step: nothing else uses either connection meanwhile.
                backup.run_to_completion(std::ffi::c_int::MAX, std::time::Duration::ZERO, None)
            });
            drop(turn.pass(None));
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
        db.write(|tx| tx.execute("INSERT INTO t (x, y) VALUES (1, 2)", [])).unwrap();
        drop(db);
        let db = Db::open_file(&path, MIGRATIONS).unwrap();
        let y: i64 = db.read(|c| c.query_row("SELECT y FROM t", [], |r| r.get(0))).unwrap();
        assert_eq!(y, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failed_work_rolls_back() {
        let db = Db::open_memory(MIGRATIONS).unwrap();
        let result: Result<(), rusqlite::Error> = db.write(|tx| {
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
            let result: Result<(), rusqlite::Error> = db.write(|tx| {
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
        db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", [])).unwrap();
        assert_eq!(count(&db), 1, "disarmed, writes commit again");
        let injected = storage_fault::take();
        assert_eq!(injected.values().sum::<u64>(), 40);
        db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (2)", [])).unwrap();
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
        let rolled_back: Result<(), rusqlite::Error> = db.write(|_| {
            record_participant_outcome(ParticipantOutcome::applied);
            Err(rusqlite::Error::InvalidQuery)
        });
        assert!(rolled_back.is_err());
        assert_eq!(applied(&metrics.encode().unwrap()), None, "a rolled-back outcome is not counted");
        db.write(|tx| {
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
        let error = db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (NULL)", [])).unwrap_err();
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
        template.write(|tx| tx.execute("INSERT INTO t (x, y) VALUES (1, 2)", [])).unwrap();
        let copy = Db::open_memory_copy(&template).unwrap();
        assert_eq!(copy.schema_version().unwrap(), 2);
        let y: i64 = copy.read(|c| c.query_row("SELECT y FROM t", [], |r| r.get(0))).unwrap();
        assert_eq!(y, 2);
        copy.write(|tx| tx.execute("INSERT INTO t (x) VALUES (3)", [])).unwrap();
        assert_eq!((count(&template), count(&copy)), (1, 2), "the copy's writes stay in the copy");
        let again = Db::open_memory_copy(&template).unwrap();
        assert_eq!(count(&again), 1, "a second copy starts from the template, not from the first copy");
        let error = copy.write(|tx| tx.execute("INSERT INTO t (x) VALUES (NULL)", [])).unwrap_err();
        assert!(!is_transient(&error), "the copy keeps the template's constraints: {error}");
    }
}
