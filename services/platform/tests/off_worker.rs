//! `Blocking::OffWorker`: a database file's commit (its fsync) leaves the async worker free
//! for other tasks while it runs; `Blocking::Inline` (the simulation's choice) keeps it. A
//! write's work runs on the worker either way: it is statements, not waits.

#![allow(clippy::disallowed_methods, reason = "a real multi-threaded runtime, spawned on directly")]

use platform::storage::{Blocking, Db, Migration};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

const MIGRATIONS: &[Migration] = &[Migration { version: 1, sql: "CREATE TABLE t (x INTEGER NOT NULL);" }];

/// A fresh database file for one test.
fn database(test: &str) -> (PathBuf, Db) {
    let dir = std::env::temp_dir().join(format!("platform-off-worker-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Db::open_file(&dir.join("db.sqlite"), MIGRATIONS).unwrap();
    (dir, db)
}

/// Spawns a task and waits (bounded) for it to run: whether another task could run on the
/// runtime's only worker meanwhile.
fn another_task_runs(wait: Duration) -> bool {
    let (ran, has_run) = mpsc::channel();
    tokio::spawn(async move {
        let _ = ran.send(());
    });
    has_run.recv_timeout(wait).is_ok()
}

/// On a runtime with one worker, a write whose work (`during_commit` false) or commit
/// (`during_commit` true: a commit hook, which SQLite runs inside `COMMIT`) spawns a task
/// and waits for it. Where the wait is on the worker, the task is queued behind it and
/// cannot run until the wait gives up.
fn task_runs_during(test: &str, blocking: Blocking, during_commit: bool, wait: Duration) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    let (dir, db) = database(test);
    let db = db.with_blocking(blocking);
    let ran = runtime.block_on(async move {
        let write = tokio::spawn(async move {
            let (seen, saw) = mpsc::channel();
            db.write(|c: &Connection| {
                c.execute("INSERT INTO t (x) VALUES (1)", [])?;
                if during_commit {
                    c.commit_hook(Some(move || {
                        let _ = seen.send(another_task_runs(wait));
                        false
                    }));
                } else {
                    seen.send(another_task_runs(wait)).unwrap();
                }
                Ok::<_, rusqlite::Error>(())
            })
            .await
            .unwrap();
            db.write(|c: &Connection| {
                c.commit_hook(None::<fn() -> bool>);
                Ok::<_, rusqlite::Error>(())
            })
            .await
            .unwrap();
            saw.recv().unwrap()
        });
        write.await.unwrap()
    });
    std::fs::remove_dir_all(dir).unwrap();
    ran
}

#[test]
fn off_worker_commits_leave_the_worker_to_other_tasks() {
    assert!(task_runs_during("commit-off", Blocking::OffWorker, true, Duration::from_secs(60)));
}

/// The control: the same commit inline holds the only worker.
#[test]
fn inline_commits_hold_the_worker() {
    assert!(!task_runs_during("commit-inline", Blocking::Inline, true, Duration::from_millis(300)));
}

/// A write's work runs on the worker, off it or not: only the commit waits for the disk.
#[test]
fn a_write_s_work_runs_on_the_worker() {
    assert!(!task_runs_during("work", Blocking::OffWorker, false, Duration::from_millis(300)));
}

/// Off the worker is a no-op where it cannot apply: a current-thread runtime (the
/// simulation's) commits inline instead of panicking.
#[test]
fn off_worker_on_a_current_thread_runtime_runs_inline() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (dir, db) = database("current-thread");
    let db = db.with_blocking(Blocking::OffWorker);
    let count: i64 = runtime
        .block_on(async {
            db.write(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", [])).await?;
            db.read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
        })
        .unwrap();
    assert_eq!(count, 1);
    std::fs::remove_dir_all(dir).unwrap();
}
