//! `junit.xml`, for CI: one suite per scenario, one case per seed, and a failing case for a
//! scenario whose declared probes no seed hit.

use super::{escape_xml, page_stem};
use crate::sweep::{probe_gaps, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// One suite per scenario, one case per seed; a failure carries invariant, evidence and
/// the replay command. `time` is simulated seconds, so the file is reproducible.
pub fn junit(outcomes: &[Outcome]) -> String {
    let gaps: Vec<_> = probe_gaps(outcomes).into_iter().filter(|g| g.enforced).collect();
    let mut suites: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        suites.entry(outcome.scenario.as_str()).or_default().push(outcome);
    }
    let failed = Outcome::failed;
    // A scenario whose declared probes were not all hit gets one more, failing, case.
    let gap_suites: BTreeSet<&str> = gaps.iter().map(|g| g.scenario.as_str()).collect();
    let total_failed = outcomes.iter().filter(|o| failed(o)).count() + gap_suites.len();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let tests = outcomes.len() + gap_suites.len();
    let _ = writeln!(xml, "<testsuites name=\"sim\" tests=\"{tests}\" failures=\"{total_failed}\">");
    for (scenario, cases) in suites {
        let scenario_gaps: Vec<_> = gaps.iter().filter(|g| g.scenario == scenario).collect();
        let extra = usize::from(!scenario_gaps.is_empty());
        let failures = cases.iter().filter(|o| failed(o)).count() + extra;
        let seconds: f64 = cases.iter().map(|o| o.stats.simulated_ms as f64 / 1000.0).sum();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{seconds:.3}\">",
            escape_xml(scenario),
            cases.len() + extra
        );
        for case in cases {
            let name = format!("seed {}", case.seed);
            let time = case.stats.simulated_ms as f64 / 1000.0;
            let _ = write!(
                xml,
                "    <testcase classname=\"sim.{}\" name=\"{name}\" time=\"{time:.3}\"",
                escape_xml(scenario)
            );
            let mut body = String::new();
            if let Some(report) = &case.failure {
                let first = &report.violations[0];
                let mut text = String::new();
                for violation in &report.violations {
                    let _ = writeln!(text, "{violation}");
                }
                let _ = writeln!(text, "replay: {}", report.replay_command());
                let _ = writeln!(text, "report: {}.md", page_stem(report));
                let message = format!("invariant {} ({}) violated for {}", first.invariant, first.name, first.subject);
                let _ = writeln!(
                    body,
                    "      <failure message=\"{}\" type=\"invariant-{}\">{}</failure>",
                    escape_xml(&message),
                    first.invariant,
                    escape_xml(&text)
                );
            }
            if let Some((first, second)) = &case.nondeterministic {
                let message = format!("nondeterministic: digests {first} and {second}");
                let _ = writeln!(body, "      <failure message=\"{message}\" type=\"determinism\"/>");
            }
            if body.is_empty() {
                xml.push_str("/>\n");
            } else {
                let _ = write!(xml, ">\n{body}    </testcase>\n");
            }
        }
        if !scenario_gaps.is_empty() {
            let probes: Vec<&str> = scenario_gaps.iter().map(|g| g.probe.as_str()).collect();
            let message = format!("declared probes never hit: {}", probes.join(", "));
            let mut text = String::new();
            for gap in &scenario_gaps {
                let _ = writeln!(text, "{gap}");
            }
            let _ = write!(
                xml,
                "    <testcase classname=\"sim.{0}\" name=\"probes\" time=\"0.000\">\n      <failure message=\"{1}\" type=\"coverage\">{2}</failure>\n    </testcase>\n",
                escape_xml(scenario),
                escape_xml(&message),
                escape_xml(&text)
            );
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}
