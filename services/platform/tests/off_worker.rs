//! `Blocking::OffWorker`: a transaction leaves its async worker free for other tasks while it
//! runs; `Blocking::Inline` (the simulation's choice) keeps it.

#![allow(clippy::disallowed_methods, reason = "a real multi-threaded runtime, spawned on directly")]

use platform::storage::{Blocking, Db, Migration};
use std::sync::mpsc;
use std::time::Duration;

const MIGRATIONS: &[Migration] = &[Migration { version: 1, sql: "CREATE TABLE t (x INTEGER NOT NULL);" }];

/// On a runtime with one worker, a transaction spawns a task and waits (bounded) for it to
/// run. Inline, the task is queued behind the transaction on the only worker and cannot run
/// until the wait gives up; off the worker, it runs while the transaction waits.
fn task_runs_during_a_transaction(blocking: Blocking, wait: Duration) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let db = Db::open_memory(MIGRATIONS).unwrap().with_blocking(blocking);
    runtime.block_on(async move {
        let transaction = tokio::spawn(async move {
            db.write(|tx| {
                let (ran, has_run) = mpsc::channel();
                tokio::spawn(async move { ran.send(()).unwrap() });
                let other_task_ran = has_run.recv_timeout(wait).is_ok();
                tx.execute("INSERT INTO t (x) VALUES (1)", [])?;
                Ok::<_, rusqlite::Error>(other_task_ran)
            })
        });
        transaction.await.unwrap().unwrap()
    })
}

#[test]
fn off_worker_transactions_leave_the_worker_to_other_tasks() {
    assert!(task_runs_during_a_transaction(Blocking::OffWorker, Duration::from_secs(60)));
}

/// The control: the same transaction inline holds the only worker.
#[test]
fn inline_transactions_hold_the_worker() {
    assert!(!task_runs_during_a_transaction(Blocking::Inline, Duration::from_millis(300)));
}

/// Off the worker is a no-op where it cannot apply: a current-thread runtime (the
/// simulation's) runs the transaction inline instead of panicking.
#[test]
fn off_worker_on_a_current_thread_runtime_runs_inline() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let db = Db::open_memory(MIGRATIONS).unwrap().with_blocking(Blocking::OffWorker);
    let count: i64 = runtime
        .block_on(async {
            db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", []))?;
            db.read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
        })
        .unwrap();
    assert_eq!(count, 1);
}
