//! The `sim` commands, one module each; `main.rs` parses the command line and calls one.
//! A command answers `Ok(true)` (passed), `Ok(false)` (failed) or `Err(message)` (could not
//! run: a bad argument, a file it could not read or write).

pub mod bench;
pub mod catalog;
pub mod merge;
pub mod run;
pub mod shrink;
pub mod sweep;

use crate::scenario::{load_all, load_named, Scenario};
use platform::bugs::Bug;

/// What a command answers: passed, failed, or why it could not run.
pub type Verdict = Result<bool, String>;

/// The planted bug named on the command line, checked to be plantable in this build.
pub fn parse_bug(name: Option<&str>) -> Result<Option<Bug>, String> {
    let Some(name) = name else { return Ok(None) };
    let bug = Bug::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        format!("no planted bug named '{name}'; known: {}", known.join(", "))
    })?;
    if !platform::bugs::plant(Some(bug)) {
        return Err("this sim was built without planted bugs: run it with `--features planted-bugs`".into());
    }
    platform::bugs::plant(None);
    Ok(Some(bug))
}

/// The named scenarios, or every file in scenarios/ when none is named.
fn scenarios(names: &[String]) -> Result<Vec<Scenario>, String> {
    if names.is_empty() {
        return load_all().map_err(|e| e.to_string());
    }
    names.iter().map(|n| load_named(n).map_err(|e| e.to_string())).collect()
}

/// A scenario by name, its error a message.
fn scenario(name: &str) -> Result<Scenario, String> {
    load_named(name).map_err(|e| e.to_string())
}
