//! `sim merge`: a sharded sweep's shards back into the unsharded sweep's reports.

use super::sweep::Finish;
use super::{parse_bug, Verdict};
use crate::shard::{check, merge, ShardRecord};
use std::path::PathBuf;

pub fn run(dirs: &[PathBuf], finish: &Finish) -> Verdict {
    let records =
        dirs.iter().map(|dir| ShardRecord::read(dir)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let runs = check(&records).map_err(|e| e.to_string())?;
    let failing = runs.iter().filter(|r| r.failed).count();
    let first = &records[0];
    let bug = parse_bug(first.sweep.bug.as_deref())?;
    println!(
        "merging {} shards of {} runs ({} scenarios from seed {}); re-running {failing} failing seeds",
        records.len(),
        first.sweep.jobs,
        first.sweep.scenarios.len(),
        first.sweep.from
    );
    let merged = merge(&records, bug).map_err(|e| e.to_string())?;
    finish.run(&merged.outcomes, merged.wall_ms)
}
