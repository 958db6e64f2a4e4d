//! The reports of a failing sweep (a planted bug): a JUnit file that a JUnit parser accepts
//! with the failure in it, a summary, and a failure page whose diagram renders and shows the
//! fault — looked at in a headless browser as a person would. Two sweeps of the same seeds
//! write the same bytes.

#![allow(clippy::disallowed_methods, reason = "tests read CI and run external checkers")]

use platform::bugs::Bug;
use sim::report::write_reports;
use sim::scenario::load_named;
use sim::shrink::shrink;
use sim::sweep::{sweep, Job, Outcome};
use std::path::{Path, PathBuf};
use std::process::Command;

fn failing_sweep() -> Vec<Outcome> {
    let scenario = load_named("duplicate").unwrap();
    let jobs: Vec<Job> = (11..15)
        .map(|seed| Job { scenario: scenario.clone(), seed, recheck: seed == 11, bug: Some(Bug::WithdrawTwice) })
        .collect();
    let outcomes = sweep(&jobs, 2, &|_| {});
    assert!(outcomes.iter().any(|o| o.failure.is_some()), "the planted bug should fail a seed of 11..15");
    outcomes
}

fn write(outcomes: &[Outcome], name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sim-reports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = outcomes.iter().find_map(|o| o.failure.as_deref()).unwrap();
    let scenario = load_named(&first.scenario).unwrap();
    let shrunk: Vec<_> = shrink(&scenario, &first.plan, 30).into_iter().collect();
    write_reports(&dir, outcomes, 0.0, &shrunk).unwrap();
    dir
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A tool that CI installs; elsewhere its absence skips that check, loudly.
fn tool_missing(what: &str) -> bool {
    assert!(!in_ci(), "{what} is missing in CI: .ci/run installs it");
    eprintln!("SKIPPED: {what} is not installed here (CI installs it)");
    true
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for sub in ["", "failures", "plans"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        for entry in entries.flatten().filter(|e| e.path().is_file()) {
            found
                .push((format!("{sub}/{}", entry.file_name().to_string_lossy()), std::fs::read(entry.path()).unwrap()));
        }
    }
    found.sort();
    found
}

#[test]
fn a_failing_sweep_writes_reports_that_ci_and_people_can_read() {
    let outcomes = failing_sweep();
    let dir = write(&outcomes, "a");

    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<failure message=\"invariant"), "{junit}");
    assert!(junit.contains("replay: cargo run --release -p sim --features planted-bugs"));
    let parsed = Command::new("python3")
        .args(["-c", "import sys, junitparser\nxml = junitparser.JUnitXml.fromfile(sys.argv[1])\nfailures = [c for s in xml for c in s if c.result]\nprint(len(failures), sum(s.tests for s in xml))", dir.join("junit.xml").to_str().unwrap()])
        .output();
    match parsed {
        Ok(output) if output.status.success() => {
            let text = String::from_utf8_lossy(&output.stdout);
            let counts: Vec<usize> = text.split_whitespace().map(|n| n.parse().unwrap()).collect();
            let expected = outcomes.iter().filter(|o| o.failure.is_some()).count();
            assert_eq!(counts, vec![expected, outcomes.len()], "junitparser read: {text}");
        }
        _ => {
            let _ = tool_missing("python3 with junitparser");
        }
    }

    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["schema"], 1);
    assert_eq!(summary["runs"], outcomes.len());
    assert_eq!(summary["determinism_checks"], 1);
    assert!(summary["failed"].as_u64().unwrap() >= 1);
    assert!(summary["faults"]["duplicate"].as_u64().unwrap() >= 1);
    let page = summary["failures"][0]["page"].as_str().unwrap();
    let markdown = std::fs::read_to_string(dir.join(page)).unwrap();
    assert!(markdown.contains("```mermaid\nsequenceDiagram"), "{markdown}");
    // Which kind depends on the seed that fails first: duplicates sent at once or late.
    assert!(
        markdown.contains("FAULT duplicates") || markdown.contains("FAULT late duplicates"),
        "the diagram marks the fault that caused the violation"
    );
    assert!(markdown.contains("ledger WITHDRAW"), "the diagram shows the double debit");
    assert!(markdown.contains("## Shrunk plan") && markdown.contains("--plan reports/plans/"));
    let coverage = std::fs::read_to_string(dir.join("coverage.md")).unwrap();
    assert!(coverage.contains("| withdraw ACTION SUCCEEDED |"), "{coverage}");

    look_at_the_page(&dir.join(page.replace(".md", ".html")));
}

fn chromium() -> Command {
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]);
    command
}

/// Opens the HTML page in headless Chromium: the DOM has the diagram with the fault, and
/// the screenshot is a real picture, not a blank page.
fn look_at_the_page(html: &Path) {
    let profile = std::env::temp_dir().join(format!("sim-chromium-{}", std::process::id()));
    let url = format!("file://{}", html.display());
    let dom = chromium().arg(format!("--user-data-dir={}", profile.display())).args(["--dump-dom", &url]).output();
    let Some(dom) = dom.ok().filter(|o| o.status.success()) else {
        let _ = tool_missing("chromium");
        return;
    };
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<svg") && dom.contains("class=\"fault\""), "the rendered page has no diagram with a fault");
    assert!(dom.contains("FAULT duplicates") || dom.contains("FAULT late duplicates"));
    let png = html.with_extension("png");
    let shot = chromium()
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1200,1600", &format!("--screenshot={}", png.display()), &url])
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000, "a {} byte screenshot is no page", bytes.len());
    let _ = std::fs::remove_dir_all(profile);
}

#[test]
fn the_same_seeds_write_the_same_bytes() {
    let first = files(&write(&failing_sweep(), "b"));
    let second = files(&write(&failing_sweep(), "c"));
    assert!(first.len() >= 6, "{:?}", first.iter().map(|f| &f.0).collect::<Vec<_>>());
    for ((name, a), (other, b)) in first.iter().zip(&second) {
        assert_eq!(name, other);
        assert!(a == b, "{name} differs between two sweeps of the same seeds");
        assert!(!String::from_utf8_lossy(a).contains("/tmp/"), "{name} holds an absolute path");
    }
    assert_eq!(first.len(), second.len());
}
