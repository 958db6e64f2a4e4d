//! A failing run's page, for people: the violation, the replay command, the shrunk plan,
//! the sequence diagram of the orders involved and the timeline; Markdown and HTML.

use super::diagram::Diagram;
use super::{escape_xml, page_stem};
use crate::replay::Replay;
use crate::run::RunReport;
use crate::shrink::Shrunk;
use std::fmt::Write as _;
use std::path::Path;

fn plan_section(shrunk: Option<&Shrunk>, stem: &str) -> String {
    let Some(shrunk) = shrunk else {
        return "No shrunk plan: this failure was not shrunk (see `sim shrink`).\n".to_string();
    };
    let plan_file = format!("reports/plans/{}.min.json", stem.trim_start_matches("failures/"));
    let replay = Replay::Plan { path: Path::new(&plan_file), planted_bugs: shrunk.minimal.bug.is_some() };
    format!(
        "Shrunk in {} runs from {} faults, {} shoppers and {} orders to **{} faults, {} shoppers and {} orders**, still violating invariant {}.\n\n\
         Replay the minimal plan: `{replay}`\n\n```json\n{}\n```\n",
        shrunk.runs,
        shrunk.original.faults.len(),
        shrunk.original.shoppers.len(),
        shrunk.original.order_count(),
        shrunk.minimal.faults.len(),
        shrunk.minimal.shoppers.len(),
        shrunk.minimal.order_count(),
        shrunk.invariant,
        serde_json::to_string_pretty(&shrunk.minimal.faults).unwrap_or_default()
    )
}

/// The page of one failing run, in Markdown (Mermaid diagram) and HTML (inline SVG).
pub fn failure_pages(report: &RunReport, shrunk: Option<&Shrunk>) -> (String, String) {
    let stem = page_stem(report);
    let diagram = Diagram::of(report);
    let orders = &diagram.orders;
    let title = format!("Failure: scenario {}, seed {}", report.scenario, report.seed);
    let bug = report.plan.bug.as_deref().map(|b| format!(" with planted bug `{b}`")).unwrap_or_default();
    let mut md = format!(
        "# {title}\n\nScenario `{}`, seed {}{bug}, digest `{}`.\n\n## Violated\n\n",
        report.scenario, report.seed, report.digest
    );
    for violation in &report.violations {
        let _ = writeln!(
            md,
            "- **invariant {} ({})** for {}: {}",
            violation.invariant, violation.name, violation.subject, violation.evidence
        );
    }
    let _ = write!(md, "\nReplay: `{}`\n\n## Shrunk plan\n\n{}", report.replay_command(), plan_section(shrunk, &stem));
    let orders_shown: Vec<String> = orders.iter().map(|o| format!("`{o}`")).collect();
    let _ = write!(
        md,
        "\n## Messages for the orders involved\n\nOrders {}; fault notes are marked FAULT.\n\n```mermaid\n{}```\n",
        orders_shown.join(", "),
        diagram.mermaid()
    );
    let timeline = crate::timeline::merged(report).join("\n");
    let _ = write!(md, "\n## Timeline of faults and requests\n\n```text\n{timeline}\n```\n");

    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} pre{{background:#f5f5f5;padding:1em;overflow-x:auto}} .violation{{color:#a00}} svg{{border:1px solid #ddd;background:#fff}}</style></head><body>\n<h1>{}</h1>\n",
        escape_xml(&title),
        escape_xml(&title)
    );
    let _ = writeln!(
        html,
        "<p>Scenario <code>{}</code>, seed {}{}, digest <code>{}</code>.</p>",
        escape_xml(&report.scenario),
        report.seed,
        escape_xml(&bug.replace('`', "")),
        report.digest
    );
    html.push_str("<h2>Violated</h2><ul>\n");
    for violation in &report.violations {
        let _ = writeln!(
            html,
            "<li class=\"violation\"><b>invariant {} ({})</b> for {}: {}</li>",
            violation.invariant,
            violation.name,
            escape_xml(&violation.subject),
            escape_xml(&violation.evidence)
        );
    }
    let _ = writeln!(html, "</ul><p>Replay: <code>{}</code></p>", escape_xml(&report.replay_command()));
    let _ = writeln!(html, "<h2>Shrunk plan</h2><pre>{}</pre>", escape_xml(&plan_section(shrunk, &stem)));
    let _ = writeln!(
        html,
        "<h2>Messages for the orders involved</h2><p>Orders {}; faults in red.</p>\n{}",
        escape_xml(&orders.join(", ")),
        diagram.svg()
    );
    let _ = writeln!(
        html,
        "<details><summary>Mermaid source</summary><pre>{}</pre></details>",
        escape_xml(&diagram.mermaid())
    );
    let _ =
        writeln!(html, "<h2>Timeline of faults and requests</h2><pre>{}</pre>\n</body></html>", escape_xml(&timeline));
    (md, html)
}
