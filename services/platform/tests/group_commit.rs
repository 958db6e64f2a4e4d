//! Group commit (`platform::storage`, "Group commit"): concurrent writes to one file database
//! share one transaction and one commit, each answers `Ok` only once that commit is durable,
//! a failing write is undone alone, a failed commit fails the whole batch, and a read never
//! waits for a batch nor sees its uncommitted writes.
//!
//! The batches are made deterministic, not hoped for: a first write holds the connection
//! (its work waits) until the others are queued behind it (`Db::waiting`), so they meet in
//! one batch whatever the scheduler does. No assertion depends on time.

use platform::metrics::{Metrics, ParticipantOutcome};
use platform::storage::{record_participant_outcome, Blocking, Db, Migration};
use platform::storage_fault::{self, StorageFailure};
use platform::Clock;
use rusqlite::Connection;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::task::{Context, Waker};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: "CREATE TABLE t (x INTEGER NOT NULL UNIQUE);" },
    Migration {
        version: 2,
        sql: "CREATE TABLE parent (id INTEGER PRIMARY KEY);
              CREATE TABLE child (parent INTEGER NOT NULL
                  REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
    },
];

/// A fresh directory for one test's database file.
fn database(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("platform-group-commit-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db.sqlite")
}

/// Removes a test's database directory (a failed test leaves it, to look at).
fn remove(path: &Path) {
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// The rows of `t`, as a separate connection sees them: committed data only.
fn committed_rows(path: &Path) -> Vec<i64> {
    let connection = Connection::open(path).unwrap();
    let mut statement = connection.prepare("SELECT x FROM t ORDER BY x").unwrap();
    let rows = statement.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The test database at `path`, reporting to metrics of its own (on a clock that stands still).
fn instrumented(path: &Path) -> (Db, Metrics) {
    let metrics = Metrics::new();
    let clock: Arc<dyn Clock> = Arc::new(platform::clock::ManualClock::new(chrono::DateTime::UNIX_EPOCH));
    (Db::open_file(path, MIGRATIONS).unwrap().with_metrics(metrics.clone(), clock), metrics)
}

fn rows(db: &Db) -> Vec<i64> {
    db.read(|c| {
        let mut statement = c.prepare("SELECT x FROM t ORDER BY x")?;
        let rows = statement.query_map([], |r| r.get(0))?;
        rows.collect::<Result<Vec<i64>, rusqlite::Error>>()
    })
    .unwrap()
}

fn insert(c: &Connection, x: i64) -> rusqlite::Result<()> {
    c.execute("INSERT INTO t (x) VALUES (?1)", [x]).map(drop)
}

/// Waits (bounded: a minute, against a hang, never a timing assertion) until `n` writes are
/// queued for `db`'s connection (a file's reads never queue: they have a connection of their own).
fn until_waiting(db: &Db, n: usize) {
    until(db, &format!("{n} queued"), |waiting| waiting >= n);
}

/// Waits (bounded, as above) until the number of writes queued for `db`'s connection is `done`.
#[expect(clippy::disallowed_methods, reason = "a real thread polls other real threads' progress")]
fn until(db: &Db, what: &str, done: impl Fn(usize) -> bool) {
    for _ in 0..60_000 {
        if done(db.waiting()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("never {what} (waiting: {})", db.waiting());
}

type Work<'env> = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'env>;

/// Starts `writes` on their own threads, one after another in a known queue order, behind a
/// `first` write that holds the connection until they are all queued. The write at index
/// `fault.0` runs on a thread with a storage fault armed (seed `fault.1`). Hands back each
/// write's thread, the first's first.
fn batch<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    db: &'env Db,
    first: Work<'env>,
    writes: Vec<Work<'env>>,
    fault: Option<(usize, u64)>,
) -> Vec<ScopedJoinHandle<'scope, rusqlite::Result<()>>> {
    let queued = writes.len();
    let (began, has_begun) = mpsc::channel();
    let mut handles = vec![scope.spawn(move || {
        db.write_blocking(|c| {
            let result = first(c);
            began.send(()).unwrap();
            until_waiting(db, queued);
            result
        })
    })];
    has_begun.recv().expect("the first write holds the connection");
    for (i, write) in writes.into_iter().enumerate() {
        let armed = fault.filter(|f| f.0 == i).map(|f| f.1);
        handles.push(scope.spawn(move || {
            if let Some(seed) = armed {
                storage_fault::enable(billing);
                storage_fault::arm(0, "billing", 1_000, seed);
            }
            db.write_blocking(write)
        }));
        // Queued before the next one starts. Not after the last: the first write sees it
        // queued, and the batch may be done before this thread looks.
        if i + 1 < queued {
            until_waiting(db, i + 1);
        }
    }
    handles
}

fn billing() -> Option<String> {
    Some("billing".to_string())
}

fn results(handles: Vec<ScopedJoinHandle<'_, rusqlite::Result<()>>>) -> Vec<rusqlite::Result<()>> {
    handles.into_iter().map(|h| h.join().expect("no writer panics")).collect()
}

fn inserts<'env>(x: i64) -> Work<'env> {
    Box::new(move |c: &Connection| insert(c, x))
}

/// Inserts `x`, then fails.
fn fails<'env>(x: i64) -> Work<'env> {
    Box::new(move |c: &Connection| {
        insert(c, x)?;
        Err(rusqlite::Error::InvalidQuery)
    })
}

/// (a) Many concurrent writers on a multi-threaded runtime (`Blocking::OffWorker`, as the
/// real store runs): every write answers `Ok`, and every row is there when the file is
/// opened again.
#[test]
#[expect(clippy::disallowed_methods, reason = "a real multi-threaded runtime, spawned on directly")]
fn concurrent_writers_all_commit_and_survive_reopening() {
    const TASKS: i64 = 32;
    const EACH: i64 = 20;
    let path = database("concurrent");
    let db = Db::open_file(&path, MIGRATIONS).unwrap().with_blocking(Blocking::OffWorker);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).build().unwrap();
    let answered = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut ok = 0;
                    for i in 0..EACH {
                        db.write(|c| insert(c, task * EACH + i)).await.expect("every write commits");
                        ok += 1;
                        tokio::task::yield_now().await;
                    }
                    ok
                })
            })
            .collect();
        let mut answered = 0;
        for task in tasks {
            answered += task.await.unwrap();
        }
        answered
    });
    assert_eq!(answered, TASKS * EACH);
    let commits = db.commits();
    assert!(commits >= 1 && commits <= (TASKS * EACH) as u64, "{commits} commits");
    drop(runtime);
    drop(db);
    let reopened = Db::open_file(&path, MIGRATIONS).unwrap();
    assert_eq!(rows(&reopened), (0..TASKS * EACH).collect::<Vec<_>>(), "every acknowledged write is there");
    assert_eq!(committed_rows(&path).len(), (TASKS * EACH) as usize);
    remove(&path);
}

/// (b) Writes queued behind one another are committed together: 8 writes, 1 commit, and the
/// metric shows one commit of 8 writes.
#[test]
fn queued_writes_share_one_commit() {
    let path = database("shared");
    let (db, metrics) = instrumented(&path);
    let before = db.commits();
    let outcome =
        std::thread::scope(|scope| results(batch(scope, &db, inserts(0), (1..8).map(inserts).collect(), None)));
    assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
    assert_eq!(db.commits() - before, 1, "eight queued writes, one commit");
    assert_eq!(committed_rows(&path), (0..8).collect::<Vec<_>>());
    let text = metrics.encode().unwrap();
    assert!(text.contains("storage_commit_batch_size_count 1\n"), "{text}");
    assert!(text.contains("storage_commit_batch_size_sum 8.0\n"), "{text}");
    remove(&path);
}

/// (c) A write whose work fails in a batch is undone alone: the others' rows are committed,
/// its own are not, whether it fails in the middle of the batch, on a failed statement, or
/// last (when it commits the others' writes itself), or first.
#[test]
fn a_failing_write_leaves_the_rest_of_its_batch() {
    let path = database("failing");
    let db = Db::open_file(&path, MIGRATIONS).unwrap();
    let before = db.commits();
    // 1 fails after inserting; the next breaks the UNIQUE constraint (0 is in the batch);
    // 3 succeeds; 4, the last, fails.
    let writes = vec![fails(1), inserts(0), inserts(3), fails(4)];
    let outcome = std::thread::scope(|scope| results(batch(scope, &db, inserts(0), writes, None)));
    let ok: Vec<bool> = outcome.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [true, false, false, true, false], "{outcome:?}");
    let unique = outcome[2].as_ref().unwrap_err();
    assert_eq!(unique.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{unique}");
    assert_eq!(committed_rows(&path), [0, 3], "only the successful writes");
    assert_eq!(db.commits() - before, 1);

    // The first write of a batch fails: undone alone, the next write begins a batch anew.
    let outcome =
        std::thread::scope(|scope| results(batch(scope, &db, fails(10), vec![inserts(11), inserts(12)], None)));
    let ok: Vec<bool> = outcome.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [false, true, true], "{outcome:?}");
    assert_eq!(committed_rows(&path), [0, 3, 11, 12]);
    assert_eq!(db.commits() - before, 2);
    remove(&path);
}

/// (d) A commit that fails fails every write of its batch, none takes effect, and their
/// participant outcomes are not counted: a real failed `COMMIT` (a deferred foreign key one
/// member broke, which only the commit checks), then an I/O error injected at commit time.
#[test]
fn a_failed_commit_fails_the_whole_batch() {
    let path = database("commit-fails");
    let (db, metrics) = instrumented(&path);
    let counted = || metrics.encode().unwrap().contains("participant_operations_total{");
    let member = |x: i64| -> Work<'static> {
        Box::new(move |c: &Connection| {
            record_participant_outcome(ParticipantOutcome::applied);
            insert(c, x)
        })
    };
    let dangling: Work<'static> = Box::new(|c| c.execute("INSERT INTO child (parent) VALUES (99)", []).map(drop));
    let writes = vec![member(1), dangling, member(3)];
    let outcome = std::thread::scope(|scope| results(batch(scope, &db, member(0), writes, None)));
    assert_eq!(outcome.len(), 4);
    for result in &outcome {
        let error = result.as_ref().expect_err("every member fails with the commit");
        assert_eq!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{error}");
    }
    assert_eq!(committed_rows(&path), Vec::<i64>::new(), "no write of the batch took effect");
    assert!(!counted(), "a failed batch's participant outcomes are not counted");
    assert_eq!(db.commits(), 0);

    // The member at index 1 draws an I/O error at commit time: its batch (0, 4 and itself)
    // is rolled back at once and fails; 6, behind it, begins the next batch and commits.
    let seed = (0..).find(|&seed| io_error_first(seed)).unwrap();
    let writes = vec![member(4), member(5), member(6)];
    let outcome = std::thread::scope(|scope| results(batch(scope, &db, member(0), writes, Some((1, seed)))));
    for result in &outcome[..3] {
        let error = result.as_ref().expect_err("every member fails with the injected commit fault");
        assert_eq!(error.sqlite_error_code(), Some(rusqlite::ErrorCode::SystemIoFailure), "{error}");
        assert!(platform::storage::is_transient(error));
    }
    assert!(outcome[3].is_ok(), "{:?}", outcome[3]);
    assert_eq!(committed_rows(&path), [6]);
    assert_eq!(db.commits(), 1);
    let text = metrics.encode().unwrap();
    assert!(text.contains(r#"participant_operations_total{operation="action",outcome="applied"} 1"#), "{text}");
    remove(&path);
}

/// Whether `seed` makes an armed fault's first draw an I/O error (rather than busy).
fn io_error_first(seed: u64) -> bool {
    storage_fault::enable(billing);
    storage_fault::arm(0, "billing", 1_000, seed);
    let drawn = storage_fault::draw();
    storage_fault::take();
    drawn == Some(StorageFailure::IoError)
}

/// (e) A read while a batch is open neither waits for it nor sees its uncommitted rows: it
/// runs on the file's reader connection and sees what a separate connection sees (committed
/// data). A read that waited for the batch would never end here (the batch's work waits
/// for the read): it fails after a minute instead of hanging.
#[test]
fn a_read_never_waits_for_nor_sees_an_open_batch() {
    let path = database("read");
    let db = &Db::open_file(&path, MIGRATIONS).unwrap();
    let path = &path;
    db.write_blocking(|c| insert(c, 7)).unwrap();
    std::thread::scope(|scope| {
        let (began, has_begun) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let first = scope.spawn(move || {
            db.write_blocking(move |c| {
                insert(c, 0)?;
                began.send(()).unwrap();
                released.recv().unwrap();
                Ok::<_, rusqlite::Error>(())
            })
        });
        has_begun.recv().unwrap();
        let (answer, answered) = mpsc::channel();
        scope.spawn(move || answer.send((rows(db), committed_rows(path))).unwrap());
        let (mine, committed) =
            answered.recv_timeout(Duration::from_secs(60)).expect("the read waited for the open batch");
        release.send(()).unwrap();
        first.join().unwrap().unwrap();
        assert_eq!(mine, committed, "the read sees committed data only");
        assert_eq!(mine, [7], "not the open batch's row");
    });
    assert_eq!(rows(db), [0, 7], "the batch, once committed, is read");
    remove(path);
}

/// (f) A read that writes fails on a database file (its reader connection is
/// `query_only`) and leaves nothing; the next read works.
#[test]
fn a_read_that_writes_fails_and_leaves_nothing() {
    let path = database("read-writes");
    let db = Db::open_file(&path, MIGRATIONS).unwrap();
    let wrote = db.read(|c| insert(c, 1));
    assert!(wrote.is_err(), "a write in a read: {wrote:?}");
    assert_eq!(rows(&db), Vec::<i64>::new());
    assert_eq!(committed_rows(&path), Vec::<i64>::new());
    remove(&path);
}

/// (g) A write whose caller gave up (its future dropped: a client gone, a deadline passed)
/// leaves the line, whether its turn had come or not: no one behind it waits for ever, and
/// its work never runs. Its turn comes while it is not looking when the write ahead of it
/// passes the open batch on to it. Given up later, once its work is in a batch another
/// write commits, it commits with that batch all the same. (Unscoped threads, their answers
/// awaited for a bounded time: a hang fails the test instead of hanging it.)
#[test]
#[expect(clippy::disallowed_methods, reason = "real threads that a failed test may leave blocked")]
fn a_write_given_up_leaves_the_line() {
    let answer = |answers: &mpsc::Receiver<rusqlite::Result<()>>, who: &str| {
        answers.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{who} never answered"))
    };
    #[derive(Debug, PartialEq)]
    enum GivenUp {
        Waiting,
        TurnGiven,
        Following,
    }
    for when in [GivenUp::Waiting, GivenUp::TurnGiven, GivenUp::Following] {
        let path = database(&format!("given-up-{when:?}"));
        let db = Db::open_file(&path, MIGRATIONS).unwrap();
        let (began, has_begun) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let (first_answer, first) = mpsc::channel();
        let writer = db.clone();
        std::thread::spawn(move || {
            let _ = first_answer.send(writer.write_blocking(move |c| {
                insert(c, 0)?;
                began.send(()).unwrap();
                released.recv().unwrap();
                Ok::<_, rusqlite::Error>(())
            }));
        });
        has_begun.recv().unwrap();
        // Polled once, never again: it waits in line and is never woken to look.
        let mut given_up = Box::pin(db.write(|c| insert(c, 1)));
        assert!(given_up.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert_eq!(db.waiting(), 1);
        let (last_answer, last) = mpsc::channel();
        let writer = db.clone();
        std::thread::spawn(move || {
            let _ = last_answer.send(writer.write_blocking(|c| insert(c, 2)));
        });
        until_waiting(&db, 2);
        if when == GivenUp::Waiting {
            drop(given_up);
            assert_eq!(db.waiting(), 1, "it left the line");
            release.send(()).unwrap();
        } else {
            release.send(()).unwrap();
            // The first passed its batch on to the write that gave up (it follows now).
            until(&db, "the turn given", |waiting| waiting == 1);
            if when == GivenUp::Following {
                // It looks once more: its work joins the batch, which it passes on in turn,
                // and it waits for the commit (done already, if the write behind it was
                // quicker than this thread: then it is not given up after all).
                let _ = given_up.as_mut().poll(&mut Context::from_waker(Waker::noop()));
            }
            drop(given_up);
        }
        answer(&first, "the first write").expect("the first write commits");
        answer(&last, "the write behind it").expect("the write behind it commits");
        let expected: &[i64] = if when == GivenUp::Following { &[0, 1, 2] } else { &[0, 2] };
        assert_eq!(rows(&db), expected, "given up {when:?}");
        drop(db);
        remove(&path);
    }
}
