//! Sweeps on many machines. `sim sweep --shard I/N` runs the runs of the sweep whose index
//! in the sweep's job list (scenarios in order, then seeds) is `I-1` modulo `N`, so the N
//! shards are disjoint and their union is exactly the unsharded sweep; each shard writes
//! `shard.json` (what it ran and every run's verdict and stats) beside its reports.
//! `sim merge DIR...` checks that the shards belong to one sweep and cover it exactly, puts
//! the runs back in job order and rebuilds the sweep's outcomes, re-running only the
//! failing seeds for their full reports (the digest must match the shard's), so the merged
//! `junit.xml`, `summary.json` and `coverage.md` are what the unsharded sweep writes, apart
//! from `wall_ms` and `runs_per_s`.

use crate::run::{run, Stats};
use crate::scenario::load_named;
use crate::sweep::Outcome;
use platform::bugs::Bug;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Bumped when a field of `shard.json` changes meaning or goes away.
pub const SHARD_SCHEMA: u32 = 1;

/// The file a sharded sweep writes beside its reports.
pub const SHARD_FILE: &str = "shard.json";

/// Shard `index` of `count`, counted from 1 (`2/3` is the second of three).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardSpecError {
    #[error("shard must be I/N with whole numbers, e.g. 2/3 (the second of three), not '{0}'")]
    Form(String),
    #[error("shard count must be at least 1, not {0}")]
    NoShards(u32),
    #[error("shard index {index} is outside 1..={count} (shards count from 1)")]
    OutOfRange { index: u32, count: u32 },
}

impl FromStr for ShardSpec {
    type Err = ShardSpecError;

    fn from_str(text: &str) -> Result<ShardSpec, ShardSpecError> {
        let form = || ShardSpecError::Form(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(form)?;
        let index: u32 = index.trim().parse().map_err(|_| form())?;
        let count: u32 = count.trim().parse().map_err(|_| form())?;
        if count == 0 {
            return Err(ShardSpecError::NoShards(count));
        }
        if index == 0 || index > count {
            return Err(ShardSpecError::OutOfRange { index, count });
        }
        Ok(ShardSpec { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for ShardSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ShardSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ShardSpec, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl ShardSpec {
    /// Whether the job at `index` of the sweep's job list belongs to this shard.
    pub fn owns(&self, index: usize) -> bool {
        index % self.count as usize == (self.index - 1) as usize
    }
}

/// What identifies a sweep: every shard of one sweep must agree on all of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepKey {
    /// The scenarios, in the sweep's order.
    pub scenarios: Vec<String>,
    pub from: u64,
    /// Seeds per scenario, if given (else each scenario's own).
    pub seeds: Option<u64>,
    pub check_determinism: bool,
    pub bug: Option<String>,
    /// Runs of the whole (unsharded) sweep.
    pub jobs: usize,
}

/// One run of a shard, as `shard.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Position in the whole sweep's job list.
    pub index: usize,
    pub scenario: String,
    pub seed: u64,
    pub digest: String,
    pub failed: bool,
    pub nondeterministic: Option<(String, String)>,
    pub rechecked: bool,
    pub stats: Stats,
    pub exercises: Vec<String>,
    pub scenario_seeds: u64,
}

/// `shard.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub schema: u32,
    pub shard: ShardSpec,
    pub sweep: SweepKey,
    pub wall_ms: f64,
    pub runs: Vec<RunRecord>,
}

impl ShardRecord {
    /// The record of a shard's outcomes; `indexes[i]` is the job index of `outcomes[i]`.
    pub fn new(shard: ShardSpec, sweep: SweepKey, wall_ms: f64, indexes: &[usize], outcomes: &[Outcome]) -> Self {
        let runs = indexes
            .iter()
            .zip(outcomes)
            .map(|(&index, o)| RunRecord {
                index,
                scenario: o.scenario.clone(),
                seed: o.seed,
                digest: o.digest.clone(),
                failed: o.failure.is_some(),
                nondeterministic: o.nondeterministic.clone(),
                rechecked: o.rechecked,
                stats: o.stats.clone(),
                exercises: o.exercises.clone(),
                scenario_seeds: o.scenario_seeds,
            })
            .collect();
        ShardRecord { schema: SHARD_SCHEMA, shard, sweep, wall_ms, runs }
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(self).expect("serializable") + "\n";
        std::fs::write(dir.join(SHARD_FILE), text)
    }

    pub fn read(dir: &Path) -> Result<ShardRecord, MergeError> {
        let path = dir.join(SHARD_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| MergeError::Read(shown.clone(), e.to_string()))?;
        let record: ShardRecord = serde_json::from_str(&text).map_err(|e| MergeError::Read(shown, e.to_string()))?;
        if record.schema != SHARD_SCHEMA {
            return Err(MergeError::Schema(record.schema));
        }
        Ok(record)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: give the reports directories of the shards")]
    Empty,
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("shard.json schema {0}, this sim reads schema {SHARD_SCHEMA}")]
    Schema(u32),
    #[error("shard {0} belongs to another sweep than shard {1} (scenarios, seeds, bug or determinism check differ)")]
    OtherSweep(ShardSpec, ShardSpec),
    #[error("shard {0} was cut into another number of shards than shard {1}")]
    OtherCount(ShardSpec, ShardSpec),
    #[error("shard {0} given twice")]
    Duplicate(ShardSpec),
    #[error("missing shards {missing:?} of {count}")]
    Missing { missing: Vec<u32>, count: u32 },
    #[error("shard {shard} has run {index} ({scenario} seed {seed}), which is not its share of the sweep")]
    NotItsRun { shard: ShardSpec, index: usize, scenario: String, seed: u64 },
    #[error("the shards hold {got} runs with indexes other than 0..{jobs} of the sweep, or lack some")]
    Coverage { got: usize, jobs: usize },
    #[error("{0}")]
    Rerun(String),
}

/// The merged sweep: its outcomes in job order, and the longest shard's wall time.
pub struct Merged {
    pub sweep: SweepKey,
    pub outcomes: Vec<Outcome>,
    pub wall_ms: f64,
}

/// Checks that the shards are one sweep cut into all of its shares, without checking the
/// failing runs: the outcomes come back in job order, each failure still to re-run.
pub fn check(records: &[ShardRecord]) -> Result<Vec<&RunRecord>, MergeError> {
    let first = records.first().ok_or(MergeError::Empty)?;
    let count = first.shard.count;
    let mut seen = vec![false; count as usize];
    for record in records {
        if record.shard.count != count {
            return Err(MergeError::OtherCount(record.shard, first.shard));
        }
        if record.sweep != first.sweep {
            return Err(MergeError::OtherSweep(record.shard, first.shard));
        }
        let slot = &mut seen[(record.shard.index - 1) as usize];
        if *slot {
            return Err(MergeError::Duplicate(record.shard));
        }
        *slot = true;
        if let Some(run) = record.runs.iter().find(|r| !record.shard.owns(r.index)) {
            return Err(MergeError::NotItsRun {
                shard: record.shard,
                index: run.index,
                scenario: run.scenario.clone(),
                seed: run.seed,
            });
        }
    }
    let missing: Vec<u32> = (1..=count).filter(|i| !seen[(*i - 1) as usize]).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    let mut runs: Vec<&RunRecord> = records.iter().flat_map(|r| &r.runs).collect();
    runs.sort_by_key(|r| r.index);
    let jobs = first.sweep.jobs;
    if runs.len() != jobs || runs.iter().enumerate().any(|(i, r)| r.index != i) {
        return Err(MergeError::Coverage { got: runs.len(), jobs });
    }
    Ok(runs)
}

/// Merges the shards into the unsharded sweep's outcomes. A failing run is run again for
/// its full report (pages, violations): the same seed must give the digest the shard
/// recorded, or the merge is refused (a different build or scenario files).
pub fn merge(records: &[ShardRecord], bug: Option<Bug>) -> Result<Merged, MergeError> {
    let runs = check(records)?;
    let mut outcomes = Vec::with_capacity(runs.len());
    for record in runs {
        let failure = if record.failed {
            let scenario = load_named(&record.scenario).map_err(|e| MergeError::Rerun(e.to_string()))?;
            let report = run(&scenario, record.seed, bug);
            let known = match &record.nondeterministic {
                Some((first, second)) => report.digest == *first || report.digest == *second,
                None => report.digest == record.digest,
            };
            if !known || report.passed() {
                return Err(MergeError::Rerun(format!(
                    "scenario {} seed {} failed in its shard with digest {}, but here gives digest {} ({}): merge with the build and scenario files the shards used",
                    record.scenario,
                    record.seed,
                    record.digest,
                    report.digest,
                    if report.passed() { "passing" } else { "failing" }
                )));
            }
            Some(Box::new(report))
        } else {
            None
        };
        outcomes.push(Outcome {
            scenario: record.scenario.clone(),
            seed: record.seed,
            digest: record.digest.clone(),
            failure,
            nondeterministic: record.nondeterministic.clone(),
            rechecked: record.rechecked,
            stats: record.stats.clone(),
            exercises: record.exercises.clone(),
            scenario_seeds: record.scenario_seeds,
        });
    }
    let wall_ms = records.iter().map(|r| r.wall_ms).fold(0.0, f64::max);
    Ok(Merged { sweep: records[0].sweep.clone(), outcomes, wall_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_or_say_why_not() {
        assert_eq!("2/3".parse(), Ok(ShardSpec { index: 2, count: 3 }));
        assert_eq!("1/1".parse(), Ok(ShardSpec { index: 1, count: 1 }));
        assert_eq!("0/0".parse::<ShardSpec>(), Err(ShardSpecError::NoShards(0)));
        assert_eq!("3/2".parse::<ShardSpec>(), Err(ShardSpecError::OutOfRange { index: 3, count: 2 }));
        assert_eq!("0/2".parse::<ShardSpec>(), Err(ShardSpecError::OutOfRange { index: 0, count: 2 }));
        assert_eq!("x".parse::<ShardSpec>(), Err(ShardSpecError::Form("x".into())));
        assert_eq!("1/-2".parse::<ShardSpec>(), Err(ShardSpecError::Form("1/-2".into())));
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_job() {
        for count in 1..=7u32 {
            for job in 0..50 {
                let owners = (1..=count).filter(|&index| ShardSpec { index, count }.owns(job)).count();
                assert_eq!(owners, 1, "job {job} of {count} shards");
            }
        }
    }
}
