//! The workspace's dependency rules (ARCHITECTURE.md), checked from `cargo metadata`:
//! contracts depends on no workspace crate; platform only on contracts; a service only on
//! contracts and platform; the registry on those and the services; only the simulation
//! depends on turmoil.

use contracts::ServiceName;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// The service crates: one per service, named as the service.
fn services() -> Vec<&'static str> {
    ServiceName::ALL.iter().map(|s| s.as_str()).collect()
}

/// Every workspace package with the names of all its dependencies (any kind).
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps =
                package["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string());
            (package["name"].as_str().unwrap().to_string(), deps.collect())
        })
        .collect()
}

fn violations(packages: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let workspace: BTreeSet<String> = packages.keys().cloned().collect();
    let mut found = Vec::new();
    for (name, deps) in packages {
        let internal: BTreeSet<&str> = deps.iter().filter(|d| workspace.contains(*d)).map(String::as_str).collect();
        let allowed: Vec<&str> = match name.as_str() {
            "contracts" => vec![],
            "platform" => vec!["contracts"],
            service if ServiceName::parse(service).is_some() => vec!["contracts", "platform"],
            "registry" => ["contracts", "platform"].into_iter().chain(services()).collect(),
            _ => continue,
        };
        for dep in internal.iter().filter(|d| !allowed.contains(d)) {
            found.push(format!("{name} must not depend on {dep}"));
        }
    }
    for (name, deps) in packages {
        if deps.contains("turmoil") && name != "sim" {
            found.push(format!("{name} must not depend on turmoil: only sim may"));
        }
    }
    found
}

#[test]
fn the_workspace_keeps_its_dependency_rules() {
    let packages = workspace_dependencies();
    for expected in ["contracts", "platform", "registry", "shop"].into_iter().chain(services()) {
        assert!(packages.contains_key(expected), "{expected} is missing from the workspace");
    }
    assert_eq!(violations(&packages), Vec::<String>::new());
}

#[test]
fn the_rules_catch_a_service_depending_on_another() {
    let mut packages = workspace_dependencies();
    packages.get_mut("order").unwrap().insert("billing".to_string());
    packages.get_mut("platform").unwrap().insert("turmoil".to_string());
    packages.get_mut("registry").unwrap().insert("shop".to_string());
    let found = violations(&packages);
    assert!(found.contains(&"order must not depend on billing".to_string()), "{found:?}");
    assert!(found.contains(&"registry must not depend on shop".to_string()), "{found:?}");
    assert!(found.iter().any(|v| v.starts_with("platform must not depend on turmoil")), "{found:?}");
}
