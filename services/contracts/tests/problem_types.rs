//! docs/API.md names exactly the problem types the store answers with: `ProblemType`.

use contracts::ProblemType;
use std::collections::BTreeSet;

fn api_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `/problems/<name>` the text names (a bare `/problems/` names none).
fn named(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in doc.match_indices("/problems/") {
        let rest = &doc[at + "/problems/".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '-').collect();
        let name = name.trim_end_matches('-');
        if !name.is_empty() {
            names.insert(format!("/problems/{name}"));
        }
    }
    names
}

/// (types the doc does not name, names the doc gives that are no type).
fn disagreement(doc: &str) -> (Vec<&'static str>, Vec<String>) {
    let named = named(doc);
    let known: BTreeSet<&str> = ProblemType::ALL.iter().map(|t| t.uri()).collect();
    let missing = known.iter().copied().filter(|uri| !named.contains(*uri)).collect();
    let unknown = named.into_iter().filter(|name| !known.contains(name.as_str())).collect();
    (missing, unknown)
}

#[test]
fn the_api_doc_names_exactly_the_problem_types() {
    let (missing, unknown) = disagreement(&api_doc());
    assert!(missing.is_empty(), "ProblemType has types docs/API.md does not name: {missing:?}");
    assert!(unknown.is_empty(), "docs/API.md names problem types ProblemType does not have: {unknown:?}");
}

#[test]
fn a_type_left_out_of_the_doc_or_one_the_code_lacks_is_found() {
    let doc = api_doc();
    let without = doc.replace("/problems/invalid-message", "/problems/");
    assert_eq!(disagreement(&without), (vec!["/problems/invalid-message"], vec![]));
    let with_extra = format!("{doc}\n400 `/problems/out-of-credit`\n");
    assert_eq!(disagreement(&with_extra), (vec![], vec!["/problems/out-of-credit".to_string()]));
}
