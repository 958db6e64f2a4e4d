//! Sweeps on many machines: `sim sweep --shard I/N` cuts a sweep into disjoint shares whose
//! union is the sweep, and `sim merge` turns the shards' reports into the unsharded
//! sweep's, byte for byte but for the wall-time fields; a failing seed is re-run by the
//! merge for its page and must give the digest its shard recorded.

#![allow(clippy::disallowed_methods, reason = "tests run the sim binary and read files")]

use platform::bugs::Bug;
use sim::report::{coverage_markdown, junit, summary, Summary};
use sim::scenario::load_named;
use sim::shard::{merge, MergeError, ShardRecord, ShardSpec, SweepKey};
use sim::sweep::{sweep, Job, Outcome, Totals};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SIM: &str = env!("CARGO_BIN_EXE_sim");

fn sim(args: &[&str]) -> Output {
    Command::new(SIM).args(args).output().expect("the sim binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sim-shards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// summary.json without its wall-time fields.
fn summary_without_wall(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let object = value.as_object_mut().unwrap();
    assert!(object.remove("wall_ms").is_some() && object.remove("runs_per_s").is_some(), "{text}");
    value
}

const SWEEP: [&str; 7] = ["sweep", "--scenario", "happy-path,duplicate", "--seeds", "4", "--jobs", "1"];

#[test]
fn three_shards_merged_write_the_unsharded_reports() {
    let dir = scratch("cli");
    let reports = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let whole = sim(&[&SWEEP[..], &["--reports", &reports("whole")]].concat());
    assert!(whole.status.success(), "{}", text(&whole));
    for index in 1..=3 {
        let shard = format!("{index}/3");
        let out = sim(&[&SWEEP[..], &["--shard", &shard, "--reports", &reports(&format!("shard{index}"))]].concat());
        assert!(out.status.success(), "{}", text(&out));
    }

    // The shards are disjoint and their union is the sweep: 2 scenarios × 4 seeds.
    let records: Vec<ShardRecord> =
        (1..=3).map(|i| ShardRecord::read(&dir.join(format!("shard{i}"))).unwrap()).collect();
    let mut ran: Vec<(String, u64)> =
        records.iter().flat_map(|r| r.runs.iter().map(|run| (run.scenario.clone(), run.seed))).collect();
    assert_eq!(records.iter().map(|r| r.runs.len()).collect::<Vec<_>>(), vec![3, 3, 2]);
    ran.sort();
    let mut expected: Vec<(String, u64)> =
        ["duplicate", "happy-path"].iter().flat_map(|s| (0..4).map(move |seed| (s.to_string(), seed))).collect();
    expected.sort();
    assert_eq!(ran, expected);

    let mut args = vec!["merge".to_string(), "--reports".into(), reports("merged")];
    args.extend((1..=3).map(|i| reports(&format!("shard{i}"))));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let merged = sim(&args);
    assert!(merged.status.success(), "{}", text(&merged));
    assert!(text(&merged).contains("8 passed, 0 failed"), "{}", text(&merged));
    for file in ["junit.xml", "coverage.md"] {
        let (a, b) = (dir.join("whole").join(file), dir.join("merged").join(file));
        assert_eq!(std::fs::read_to_string(a).unwrap(), std::fs::read_to_string(b).unwrap(), "{file}");
    }
    assert_eq!(summary_without_wall(&dir.join("whole")), summary_without_wall(&dir.join("merged")));
    // A shard's own summary is not the sweep's: the comparison above can tell them apart.
    assert_ne!(summary_without_wall(&dir.join("whole")), summary_without_wall(&dir.join("shard1")));

    // Shards missing, repeated, or of another sweep are refused, saying which.
    let refused = sim(&["merge", "--reports", &reports("bad"), &reports("shard1"), &reports("shard3")]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused).contains("missing shards [2] of 3"), "{}", text(&refused));
    let refused =
        sim(&["merge", "--reports", &reports("bad"), &reports("shard1"), &reports("shard1"), &reports("shard2")]);
    assert!(text(&refused).contains("shard 1/3 given twice"), "{}", text(&refused));
    let other = sim(&[
        "sweep",
        "--scenario",
        "happy-path",
        "--seeds",
        "2",
        "--jobs",
        "1",
        "--shard",
        "2/3",
        "--reports",
        &reports("other"),
    ]);
    assert!(other.status.success(), "{}", text(&other));
    let refused =
        sim(&["merge", "--reports", &reports("bad"), &reports("shard1"), &reports("other"), &reports("shard3")]);
    assert!(text(&refused).contains("belongs to another sweep"), "{}", text(&refused));
    assert!(!dir.join("bad").exists(), "a refused merge writes nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_shard_spec_is_a_clear_error() {
    for (spec, says) in [
        ("0/0", "shard count must be at least 1"),
        ("3/2", "shard index 3 is outside 1..=2"),
        ("0/2", "shard index 0 is outside 1..=2"),
        ("x", "shard must be I/N"),
        ("1/", "shard must be I/N"),
    ] {
        let out =
            sim(&["sweep", "--scenario", "happy-path", "--seeds", "1", "--shard", spec, "--reports", "/nonexistent"]);
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", text(&out));
        assert!(text(&out).contains(says), "{spec}: {}", text(&out));
    }
}

/// The unsharded sweep's reports of these outcomes, wall time 0.
fn reports_of(outcomes: &[Outcome]) -> (String, Summary, String) {
    let mut totals = Totals::default();
    for outcome in outcomes {
        totals.add(&outcome.stats);
    }
    (junit(outcomes), summary(outcomes, 0.0), coverage_markdown(&totals))
}

#[test]
fn failing_seeds_merge_into_the_same_reports_and_a_wrong_digest_is_refused() {
    let bug = Some(Bug::WithdrawTwice);
    let scenario = load_named("duplicate").unwrap();
    let jobs: Vec<Job> = (11..15).map(|seed| Job { scenario: scenario.clone(), seed, recheck: false, bug }).collect();
    let whole = sweep(&jobs, 2, &|_| {});
    assert!(whole.iter().any(|o| o.failure.is_some()), "the planted bug should fail a seed of 11..15");
    let key = SweepKey {
        scenarios: vec!["duplicate".into()],
        from: 11,
        seeds: Some(4),
        check_determinism: false,
        bug: Some(Bug::WithdrawTwice.name().into()),
        jobs: jobs.len(),
    };
    let records: Vec<ShardRecord> = (1..=3)
        .map(|index| {
            let shard = ShardSpec { index, count: 3 };
            let indexes: Vec<usize> = (0..jobs.len()).filter(|&i| shard.owns(i)).collect();
            let mine: Vec<Job> = indexes.iter().map(|&i| jobs[i].clone()).collect();
            ShardRecord::new(shard, key.clone(), 1.0, &indexes, &sweep(&mine, 1, &|_| {}))
        })
        .collect();
    // Shards in any order.
    let shuffled = vec![records[2].clone(), records[0].clone(), records[1].clone()];
    let merged = merge(&shuffled, bug).unwrap();
    assert_eq!(reports_of(&merged.outcomes), reports_of(&whole));
    assert!(reports_of(&merged.outcomes).0.contains("<failure message=\"invariant"));

    // A failing run whose digest the merge cannot reproduce (another build) is refused.
    let mut tampered = records.clone();
    let run = tampered.iter_mut().flat_map(|r| r.runs.iter_mut()).find(|r| r.failed).unwrap();
    run.digest = "0".repeat(64);
    assert!(matches!(merge(&tampered, bug), Err(MergeError::Rerun(_))));
    // A run moved to a shard it does not belong to is refused.
    let mut moved = records.clone();
    let run = moved[0].runs.pop().unwrap();
    moved[1].runs.push(run);
    assert!(matches!(merge(&moved, bug), Err(MergeError::NotItsRun { .. })));
    // A run dropped from its shard leaves the sweep uncovered.
    let mut dropped = records;
    dropped[2].runs.clear();
    assert!(matches!(merge(&dropped, bug), Err(MergeError::Coverage { got: 3, jobs: 4 })));
}
