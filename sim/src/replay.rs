//! The one command line that replays a run: a seed of a scenario, or a plan file. The
//! terminal, junit.xml, summary.json and the failure pages all print it from here.

use std::fmt;
use std::path::Path;

/// What `sim run` replays, and whether the build needs the planted bugs.
#[derive(Clone, Copy, Debug)]
pub enum Replay<'a> {
    /// `run --scenario S --seed N` (and `--bug B` when the run planted one).
    Seed { scenario: &'a str, seed: u64, bug: Option<&'a str> },
    /// `run --plan FILE --trace`; the plan names its own bug, the build must plant it.
    Plan { path: &'a Path, planted_bugs: bool },
}

impl fmt::Display for Replay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let planted_bugs = match self {
            Replay::Seed { bug, .. } => bug.is_some(),
            Replay::Plan { planted_bugs, .. } => *planted_bugs,
        };
        let features = if planted_bugs { " --features planted-bugs" } else { "" };
        write!(f, "cargo run --release -p sim{features} -- run")?;
        match self {
            Replay::Seed { scenario, seed, bug } => {
                write!(f, " --scenario {scenario} --seed {seed}")?;
                match bug {
                    Some(bug) => write!(f, " --bug {bug}"),
                    None => Ok(()),
                }
            }
            Replay::Plan { path, .. } => write!(f, " --plan {} --trace", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_plans_replay_with_the_bug_they_need() {
        let seed = |bug| Replay::Seed { scenario: "crash", seed: 7, bug }.to_string();
        assert_eq!(seed(None), "cargo run --release -p sim -- run --scenario crash --seed 7");
        assert_eq!(
            seed(Some("withdraw-twice")),
            "cargo run --release -p sim --features planted-bugs -- run --scenario crash --seed 7 --bug withdraw-twice"
        );
        let plan = |planted_bugs| Replay::Plan { path: Path::new("plans/a.min.json"), planted_bugs }.to_string();
        assert_eq!(plan(false), "cargo run --release -p sim -- run --plan plans/a.min.json --trace");
        assert_eq!(
            plan(true),
            "cargo run --release -p sim --features planted-bugs -- run --plan plans/a.min.json --trace"
        );
    }
}
