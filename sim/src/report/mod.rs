//! Reports for CI and for people: `junit.xml`, `summary.json`, `coverage.md`, and for each
//! failing seed a self-contained page (Markdown, and HTML that needs no network) with the
//! violation, the shrunk plan, the timeline, and a sequence diagram of the orders involved
//! with the faults marked on it. Nothing here reads a wall clock or writes an absolute
//! path: two sweeps of the same seeds write the same bytes but for `wall_ms`/`runs_per_s`.
//!
//! One module an audience: `junit` (CI), `summary` (dashboards, scripts), `coverage`
//! (people: what the sweep exercised), `failure` (people: a failing run's page) and its
//! `diagram`.

mod coverage;
mod diagram;
mod failure;
mod junit;
mod summary;

pub use coverage::{coverage_markdown, WORKLOAD};
pub use failure::failure_pages;
pub use junit::junit;
pub use summary::{summary, Summary, SUMMARY_SCHEMA};

use crate::run::RunReport;
use crate::shrink::Shrunk;
use crate::sweep::{Outcome, Totals};
use std::io;
use std::path::Path;

/// `text` safe inside XML (and HTML) text and attribute values.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The page of a failing run, relative to the reports directory.
pub fn page_stem(report: &RunReport) -> String {
    let bug = report.plan.bug.as_deref().map(|b| format!("-{b}")).unwrap_or_default();
    format!("failures/{}-seed-{}{bug}", report.scenario, report.seed)
}

/// Writes every report of a sweep into `dir` (created; old failure pages removed).
pub fn write_reports(dir: &Path, outcomes: &[Outcome], wall_ms: f64, shrunk: &[Shrunk]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let failures_dir = dir.join("failures");
    if failures_dir.exists() {
        std::fs::remove_dir_all(&failures_dir)?;
    }
    std::fs::write(dir.join("junit.xml"), junit(outcomes))?;
    let summary = summary(outcomes, wall_ms);
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).expect("serializable") + "\n")?;
    let mut totals = Totals::default();
    for outcome in outcomes {
        totals.add(&outcome.stats);
    }
    std::fs::write(dir.join("coverage.md"), coverage_markdown(&totals))?;
    for report in outcomes.iter().filter_map(|o| o.failure.as_deref()) {
        let found = shrunk.iter().find(|s| s.original.scenario == report.scenario && s.original.seed == report.seed);
        let (md, html) = failure_pages(report, found);
        let stem = page_stem(report);
        std::fs::create_dir_all(&failures_dir)?;
        std::fs::write(dir.join(format!("{stem}.md")), md)?;
        std::fs::write(dir.join(format!("{stem}.html")), html)?;
        if let Some(shrunk) = found {
            let name = stem.trim_start_matches("failures/");
            shrunk.original.write(&dir.join("plans").join(format!("{name}.json")))?;
            shrunk.minimal.write(&dir.join("plans").join(format!("{name}.min.json")))?;
        }
    }
    Ok(())
}
