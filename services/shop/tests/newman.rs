//! The Postman collection (`postman/`) run by real newman against the real `shop` over
//! loopback: every request's test script must pass, no answer may be a 5xx, and newman's
//! JUnit report lands in `reports/newman-junit.xml` for CI. A copy of the collection with one
//! expectation made wrong shows that newman, and this test's checks, fail when an assertion
//! does.
//!
//! newman comes from npm (`.ci/run` installs it): in CI (CI=true) a missing one fails the
//! test; elsewhere the test says it skipped.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests drive real processes in real time"
)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const COLLECTION: &str = "postman/online-store.postman_collection.json";
const ENVIRONMENT: &str = "postman/local.postman_environment.json";
/// Slot capacity of the test store: the collection fills one slot, order by order.
const SLOT_CAPACITY: u32 = 2;

/// Whether newman is missing; in CI that fails the test.
fn newman_missing() -> bool {
    tool_missing("newman", "npm install -g newman@6")
}

struct Run {
    succeeded: bool,
    output: String,
    junit: Junit,
}

/// What newman's JUnit report says: one `<testcase>` per assertion, a `<failure>` in each
/// that failed.
#[derive(Debug)]
struct Junit {
    tests: usize,
    failures: usize,
    text: String,
}

impl Junit {
    fn read(path: &Path) -> Junit {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(text.contains("<testsuites"), "not a JUnit report: {text}");
        Junit { tests: text.matches("<testcase ").count(), failures: text.matches("<failure ").count(), text }
    }
}

/// `newman run` of `collection` against the shop's gateway, writing its JUnit report to `junit`.
fn newman(shop: &TestShop, collection: &Path, junit: &Path) -> Run {
    let output = Command::new("newman")
        .current_dir(workspace())
        .arg("run")
        .arg(collection)
        .args(["-e", ENVIRONMENT])
        .args(["--env-var", &format!("baseUrl={}", shop.url(0))])
        .args(["--reporters", "cli,junit", "--reporter-junit-export"])
        .arg(junit)
        .args(["--color", "off", "--disable-unicode"])
        // Bounded: a request that hangs 30 s fails, and so does a run over 3 minutes.
        .args(["--timeout-request", "30000", "--timeout", "180000"])
        .output()
        .expect("run newman");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Run { succeeded: output.status.success(), output: text, junit: Junit::read(junit) }
}

/// The collection passes against the real store, twice (each run registers its own
/// shoppers), with no 5xx anywhere; the first run's JUnit report is CI's artifact.
#[test]
fn the_collection_passes_against_the_real_store() {
    if newman_missing() {
        return;
    }
    let shop = TestShop::start_groups(&["gateway,order,billing,warehouse,delivery,notification"], SLOT_CAPACITY);
    let reports = workspace().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    for (run, report) in [(1, reports.join("newman-junit.xml")), (2, shop.data_dir.join("newman-again.xml"))] {
        let outcome = newman(&shop, Path::new(COLLECTION), &report);
        println!("{}", outcome.output);
        assert!(outcome.succeeded, "newman run {run} failed:\n{}", outcome.output);
        // 75 requests, each with at least two assertions of its own and the collection's.
        assert!(outcome.junit.tests >= 300, "run {run}: {} assertions\n{}", outcome.junit.tests, outcome.junit.text);
        assert_eq!(outcome.junit.failures, 0, "run {run}:\n{}", outcome.junit.text);
    }
    assert_eq!(server_errors(&shop), Vec::<String>::new());
}

/// One expectation made wrong in a copy of the collection (a replayed order answers 200;
/// the copy expects 201): newman exits non-zero and the JUnit report names the failure.
#[test]
fn a_wrong_expectation_fails_newman_and_the_report() {
    if newman_missing() {
        return;
    }
    let text = std::fs::read_to_string(workspace().join(COLLECTION)).unwrap();
    let mut collection: Value = serde_json::from_str(&text).unwrap();
    let replay = collection["item"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|folder| folder["item"].as_array_mut().unwrap().iter_mut())
        .find(|request| request["name"] == "Order replayed (same key)")
        .expect("the replay request");
    let script = replay["event"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|event| event["listen"] == "test")
        .expect("its test script");
    let mut changed = 0;
    for line in script["script"]["exec"].as_array_mut().unwrap() {
        let source = line.as_str().unwrap();
        if source.contains("pm.response.to.have.status(200)") {
            *line = Value::String(source.replace("status(200)", "status(201)"));
            changed += 1;
        }
    }
    assert_eq!(changed, 1, "the replay's status assertion");

    let shop = TestShop::start_groups(&["gateway,order,billing,warehouse,delivery,notification"], SLOT_CAPACITY);
    let broken = shop.data_dir.join("broken.postman_collection.json");
    std::fs::write(&broken, serde_json::to_string(&collection).unwrap()).unwrap();
    let outcome = newman(&shop, &broken, &shop.data_dir.join("broken-junit.xml"));
    assert!(!outcome.succeeded, "newman passed a wrong expectation:\n{}", outcome.output);
    assert_eq!(outcome.junit.failures, 1, "{}", outcome.junit.text);
    assert!(outcome.junit.text.contains("Request name: 4 Order / Order replayed (same key)"), "{}", outcome.junit.text);
    assert!(outcome.output.contains("expected response to have status code 201 but got 200"), "{}", outcome.output);
}
