//! `sim catalog`: hunt every planted bug and print the README's table; fails when a bug
//! escapes its targeted scenario.

use super::{parse_bug, Verdict};
use crate::catalog::{hunt_all, TABLE_HEADER};
use platform::bugs::Bug;

pub fn run(targeted_seeds: u64, swarm_seeds: u64, only: &[String]) -> Verdict {
    parse_bug(Some(Bug::ALL[0].name()))?;
    let mut bugs = Vec::new();
    for name in only {
        bugs.extend(parse_bug(Some(name))?);
    }
    let rows = hunt_all(&bugs, targeted_seeds, swarm_seeds).map_err(|e| e.to_string())?;
    println!("{TABLE_HEADER}");
    for row in &rows {
        println!("{}", row.markdown());
    }
    Ok(rows.iter().all(|row| row.caught()))
}
