//! The storage seam: one SQLite database per service, with versioned migrations.
//!
//! Transactions are synchronous closures, so no transaction can span an `.await`, and a
//! crash (real or simulated) loses only what was not committed. The simulation keeps each
//! service's [`Db`] outside its host and hands the same one back on restart.

use crate::metrics::{Metrics, ParticipantOutcome, TransactionKind};
use crate::storage_fault::{self, StorageFailure};
use crate::Clock;
use rusqlite::{Connection, Params, Row, TransactionBehavior};
use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many prepared statements a connection keeps for reuse ([`Cached`]): more than any
/// service's store has distinct statements, so a statement is parsed once per connection.
const STATEMENT_CACHE: usize = 64;

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
    /// on a multi-threaded runtime (the real `shop`); elsewhere it runs inline.
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
    connection: Arc<Mutex<Connection>>,
    blocking: Blocking,
    instruments: Option<Instruments>,
}

/// Where an instrumented [`Db`] reports: transaction durations (on the clock seam), busy
/// failures, and the participant outcomes its committed transactions recorded.
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
        Db::with_connection(connection, migrations)
    }

    /// A private in-memory database (tests, simulation).
    pub fn open_memory(migrations: &[Migration]) -> Result<Db, StoreError> {
        Db::with_connection(Connection::open_in_memory()?, migrations)
    }

    fn with_connection(connection: Connection, migrations: &[Migration]) -> Result<Db, StoreError> {
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let db = Db { connection: Arc::new(Mutex::new(connection)), blocking: Blocking::Inline, instruments: None };
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

    /// This database with its transactions run inline (inside `block_in_place`).
    fn inline(&self) -> Db {
        self.clone().with_blocking(Blocking::Inline)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
        let mut previous = 0;
        for migration in migrations {
            if migration.version != previous + 1 {
                return Err(StoreError::MigrationOrder { previous, found: migration.version });
            }
            previous = migration.version;
        }
        let mut connection = self.lock();
        let current: u32 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        for migration in migrations.iter().filter(|m| m.version > current) {
            let apply = |connection: &mut Connection| -> rusqlite::Result<()> {
                let tx = connection.transaction()?;
                tx.execute_batch(migration.sql)?;
                tx.pragma_update(None, "user_version", migration.version)?;
                tx.commit()
            };
            apply(&mut connection).map_err(|source| StoreError::Migration { version: migration.version, source })?;
        }
        Ok(())
    }

    /// Runs `work` inside one immediate (write-locking) transaction; commits on `Ok`.
    ///
    /// When the simulation armed a storage fault for the running host
    /// (`crate::storage_fault`), the transaction may fail as SQLite's would: busy when it
    /// begins (the work never runs) or an I/O error when it commits (the work ran and is
    /// rolled back). Either way it leaves no effect.
    pub fn write<T, E>(&self, work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>) -> Result<T, E>
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

    fn write_inline<T, E>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, WriteError<E>> {
        let failure = storage_fault::draw();
        let mut connection = self.lock();
        if failure == Some(StorageFailure::Busy) {
            crate::probe::hit(crate::probe::Probe::StorageFault);
            return Err(WriteError::Storage(StorageFailure::Busy.error()));
        }
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(WriteError::Storage)?;
        let value = work(&tx).map_err(WriteError::Work)?;
        if let Some(failure) = failure {
            tx.rollback().map_err(WriteError::Storage)?;
            crate::probe::hit(crate::probe::Probe::StorageFault);
            return Err(WriteError::Storage(failure.error()));
        }
        tx.commit().map_err(WriteError::Storage)?;
        Ok(value)
    }

    /// Runs read-only `work` against the database.
    pub fn read<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<rusqlite::Error>,
    {
        if self.blocking.leaves_worker() {
            let inline = self.inline();
            return tokio::task::block_in_place(move || inline.read(work));
        }
        let started = self.instruments.as_ref().map(|i| i.clock.now());
        let result = work(&self.lock());
        if let (Some(instruments), Some(started)) = (&self.instruments, started) {
            if let Some(storage) = instruments.metrics.storage() {
                storage.observe(TransactionKind::read, instruments.clock.now().duration_since(started));
            }
        }
        result
    }
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
            let source = template.lock();
            let backup = rusqlite::backup::Backup::new(&source, &mut connection)?;
            // Every page in one step: nothing else uses either connection meanwhile.
            backup.run_to_completion(std::ffi::c_int::MAX, std::time::Duration::ZERO, None)?;
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
