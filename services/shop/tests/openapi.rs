//! The OpenAPI documents: the checked-in files under `docs/openapi/` are what the code
//! generates (`shop::openapi`), the documents cover the routes the contract names, and the
//! real store serves the public one and answers on every documented route.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests drive real processes in real time"
)]

mod common;

use common::{Client, TestShop};
use serde_json::Value;
use shop::openapi::{documents, public, routes, to_text};
use std::path::{Path, PathBuf};
use std::process::Command;

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi")
}

/// Where two JSON documents differ, as JSON pointers: a member only in one of them, or a
/// value that differs.
fn drift(checked_in: &Value, generated: &Value) -> Vec<String> {
    fn walk(pointer: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, value) in a {
                    let here = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                    match b.get(key) {
                        Some(other) => walk(&here, value, other, out),
                        None => out.push(format!("{here}: checked in, no longer generated")),
                    }
                }
                for key in b.keys().filter(|k| !a.contains_key(*k)) {
                    out.push(format!(
                        "{pointer}/{}: generated, not checked in",
                        key.replace('~', "~0").replace('/', "~1")
                    ));
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (index, (x, y)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{pointer}/{index}"), x, y, out);
                }
            }
            _ if a == b => {}
            _ => out.push(format!("{pointer}: {a} checked in, {b} generated")),
        }
    }
    let mut out = Vec::new();
    walk("", checked_in, generated, &mut out);
    out
}

/// The drift of one checked-in file against a generated document: empty when they agree,
/// else what differs (as JSON pointers) and how to regenerate.
fn file_drift(file: &str, generated: &str) -> Vec<String> {
    let path = docs_dir().join(file);
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in == generated {
        return Vec::new();
    }
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    let mut found = drift(&parse(&checked_in), &parse(generated));
    if found.is_empty() {
        found.push("the same JSON, spelt differently".to_string());
    }
    found.push(format!("{} is not what the code generates: run `cargo run -p shop -- openapi`", path.display()));
    found
}

#[test]
fn the_checked_in_documents_are_what_the_code_generates() {
    let mut drifted = Vec::new();
    for document in documents() {
        drifted.extend(file_drift(&document.file, &to_text(&document.openapi)));
    }
    assert!(drifted.is_empty(), "OpenAPI drift:\n{}", drifted.join("\n"));
    let mut files: Vec<String> = std::fs::read_dir(docs_dir())
        .expect("docs/openapi exists")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = documents().into_iter().map(|d| d.file).collect();
    expected.sort();
    assert_eq!(files, expected, "docs/openapi holds exactly the generated documents");
}

/// A contract break as a code change would make it, `Order.errorMessage` renamed to
/// `error` (what `#[serde(rename = "error")]` on the field does to the generated document),
/// is caught by the same check as above, which names the field.
#[test]
fn a_renamed_field_is_drift() {
    let mut generated: Value = serde_json::from_str(&to_text(&public())).expect("the generated document is JSON");
    let order = &mut generated["components"]["schemas"]["Order"];
    let properties = order["properties"].as_object_mut().expect("Order has properties");
    let field = properties.remove("errorMessage").expect("Order has errorMessage");
    properties.insert("error".to_string(), field);
    let broken = serde_json::to_string_pretty(&generated).expect("serializes") + "\n";
    let found = file_drift("public.json", &broken);
    assert!(
        found.iter().any(|d| d.starts_with("/components/schemas/Order/properties/errorMessage: checked in"))
            && found.iter().any(|d| d.starts_with("/components/schemas/Order/properties/error: generated")),
        "the rename is not reported: {found:?}"
    );
    assert!(file_drift("public.json", &to_text(&public())).is_empty(), "the unbroken document agrees");
}

#[test]
fn the_public_document_has_the_contract_routes_and_nothing_internal() {
    let doc = public();
    let documented = routes(&doc);
    let mut expected: Vec<(String, String)> = gateway::PUBLIC_ROUTES
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .chain(
            ["/auth/register", "/auth/login", "/auth/", "/auth/logout"]
                .iter()
                .map(|path| ("POST".to_string(), path.to_string())),
        )
        .chain([("GET".to_string(), "/auth/profile/me".to_string()), ("GET".to_string(), "/openapi.json".to_string())])
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    let text = to_text(&doc);
    for internal in ["/withdraw", "/reserve", "/events", "serviceToken", "userToken", "StepResult"] {
        assert!(!text.contains(internal), "the public document names {internal}");
    }
    assert!(text.contains("\"openapi\": \"3.1.0\""), "OpenAPI 3.1");
}

/// Every error a route documents is a problem+json body, and every route that needs a
/// session documents its 401.
#[test]
fn every_error_is_documented_as_problem_json() {
    for document in documents() {
        let doc: Value = serde_json::from_str(&to_text(&document.openapi)).expect("JSON");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let responses = operation["responses"].as_object().expect("responses");
                for (status, response) in responses {
                    let content = response["content"].as_object();
                    if status.starts_with('4') || status.starts_with('5') {
                        let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
                        assert_eq!(
                            types,
                            vec!["application/problem+json"],
                            "{}: {method} {path} {status}",
                            document.file
                        );
                    }
                }
                let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
                assert!(!secured || responses.contains_key("401"), "{}: {method} {path} has no 401", document.file);
            }
        }
    }
}

/// The internal endpoints docs/API.md lists are in their services' documents.
#[test]
fn the_internal_documents_have_the_internal_endpoints_the_docs_list() {
    let notes =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md")).expect("docs/API.md");
    let section = notes.split("## Internal endpoints").nth(1).expect("docs/API.md has the internal endpoints");
    let listed: Vec<(String, String)> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .filter_map(|call| call.split_once(' ').map(|(m, p)| (m.to_string(), p.replace("{orderId}", "{order_id}"))))
        .collect();
    assert!(listed.len() >= 7, "the table was read: {listed:?}");
    let documented: Vec<(String, String)> =
        documents().iter().filter(|d| d.file != "public.json").flat_map(|d| routes(&d.openapi)).collect();
    for route in &listed {
        assert!(documented.contains(route), "{route:?} is in docs/API.md but in no internal document");
    }
}

/// The real store serves the checked-in public document, and answers every route of every
/// document on its port (nothing documented is an unknown route).
#[test]
fn the_real_store_serves_the_document_and_every_documented_route() {
    let shop = TestShop::start();
    let answer = Client::new(&shop.url(0)).get("/openapi.json");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let checked_in = std::fs::read_to_string(docs_dir().join("public.json")).expect("public.json");
    let checked_in: Value = serde_json::from_str(&checked_in).expect("public.json is JSON");
    assert_eq!(answer.body, checked_in, "the gateway serves docs/openapi/public.json");
    // Behind the gateway every /api route needs a session (an unknown one answers 401 too).
    let mut gateway = shop.gateway();
    gateway.register_and_login("openapi@example.com");
    for document in documents() {
        let offset = document.service.port_offset();
        let client = if offset == 0 { &gateway } else { &Client::new(&shop.url(offset)) };
        for (method, path) in routes(&document.openapi) {
            let path = path.replace("{order_id}", common::ESPRESSO).replace("{product_id}", common::ESPRESSO);
            let answer = client.send(&method, &path, Some(b"{}"), &[("content-type", "application/json")]);
            let unknown = answer.status == 404 && answer.body["detail"] == "no such route";
            assert!(answer.status < 500 && !unknown, "{}: {method} {path} answered {answer:?}", document.file);
        }
    }
}

/// Every operation has an id of its own within its document, and every response link names
/// one of them (spelt `operationId`, as tools read it).
#[test]
fn operation_ids_are_unique_and_links_name_real_operations() {
    for document in documents() {
        let doc: Value = serde_json::from_str(&to_text(&document.openapi)).expect("JSON");
        let mut ids = Vec::new();
        let mut targets = Vec::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for operation in item.as_object().expect("a path item").values() {
                ids.push(operation["operationId"].as_str().expect("an operationId").to_string());
                for response in operation["responses"].as_object().expect("responses").values() {
                    for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                        targets.push(link["operationId"].as_str().expect("a link names its operationId").to_string());
                    }
                }
            }
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{}: operation ids repeat: {ids:?}", document.file);
        for target in targets {
            assert!(ids.contains(&target), "{}: a link names {target}, no operation of the document", document.file);
        }
    }
    let public: Value = serde_json::from_str(&to_text(&public())).expect("JSON");
    let created = &public["paths"]["/api/v1/order"]["post"]["responses"]["201"]["links"]["getOrder"];
    assert_eq!(created["parameters"]["order_id"], "$response.body#/id", "an order leads to reading it");
}

/// What one schemathesis run did.
struct SchemathesisRun {
    succeeded: bool,
    output: String,
    /// `<testcase>`s in its JUnit report, and how many of them failed or erred.
    tests: usize,
    failures: usize,
}

/// `st run` of `location` (the served document, or a file with `--url`) against the shop's
/// gateway as a logged-in user with an account and money, writing its JUnit report to
/// `junit`. Bounded: 30 s a request, at most `max_examples` cases an operation, one worker.
fn schemathesis(shop: &TestShop, location: &str, extra: &[&str], max_examples: u32, junit: &Path) -> SchemathesisRun {
    let mut shopper = shop.gateway();
    shopper.register_and_login(&format!("schemathesis-{}@example.com", junit.file_stem().unwrap().to_string_lossy()));
    assert_eq!(shopper.post("/api/v1/billing/accounts", serde_json::json!({})).status, 201);
    let deposit = shopper.post("/api/v1/billing/deposit", serde_json::json!({"amount": "1000000"}));
    assert_eq!(deposit.status, 200, "{deposit:?}");
    let session = shopper.cookie.as_deref().and_then(|c| c.strip_prefix("session=")).expect("a session").to_string();
    let output = Command::new("st")
        .current_dir(common::workspace())
        .args(["--config-file", "schemathesis.toml", "run", location])
        .args(extra)
        // Logging out would end the session the run works with.
        .args(["--exclude-path", "/auth/logout", "--seed", "1", "--workers", "1", "--generation-database", "none"])
        .args(["--max-examples", &max_examples.to_string(), "--request-timeout", "30"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(junit)
        .env("SHOP_SESSION", session)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let output = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
        + &format!("\nexit: {}", output.status);
    let report = std::fs::read_to_string(junit).unwrap_or_default();
    SchemathesisRun {
        succeeded: output.ends_with("exit: exit status: 0"),
        tests: report.matches("<testcase ").count(),
        failures: report.matches("<failure").count() + report.matches("<error").count(),
        output,
    }
}

fn schemathesis_missing() -> bool {
    common::tool_missing("st", "python3 -m pip install schemathesis")
}

/// schemathesis (PyPI) against the real store through the gateway, from the document the
/// gateway serves: examples, coverage, fuzzing and stateful runs along the document's links,
/// every answer checked against the document (status, content type, headers, body schema),
/// hostile input refused, and no 5xx, as the services' own metrics confirm. Its JUnit report
/// goes to `reports/schemathesis-junit.xml`.
#[test]
fn schemathesis_finds_nothing_against_the_real_store() {
    if schemathesis_missing() {
        return;
    }
    let shop = TestShop::start();
    let reports = common::workspace().join("reports");
    std::fs::create_dir_all(&reports).expect("reports/");
    let location = format!("{}/openapi.json", shop.url(0));
    let run = schemathesis(&shop, &location, &[], 25, &reports.join("schemathesis-junit.xml"));
    assert!(run.succeeded && run.failures == 0, "schemathesis found failures:\n{}", run.output);
    assert!(run.tests >= 15, "every public operation was tested: {} test cases\n{}", run.tests, run.output);
    assert_eq!(common::server_errors(&shop), Vec::<String>::new(), "no 5xx anywhere");
}

/// The same run fails when the store does not keep the document: here a document that says
/// a product's `available` is a string, which the store's answers are not.
#[test]
fn schemathesis_fails_when_the_answers_break_the_document() {
    if schemathesis_missing() {
        return;
    }
    let shop = TestShop::start();
    let mut document: Value = serde_json::from_str(&to_text(&public())).expect("JSON");
    document["components"]["schemas"]["Product"]["properties"]["available"] = serde_json::json!({"type": "string"});
    let dir = std::env::temp_dir().join(format!("schemathesis-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let broken = dir.join("public.json");
    std::fs::write(&broken, serde_json::to_string(&document).expect("JSON")).expect("write the broken document");
    let extra = ["--url", &shop.url(0), "--include-path-regex", "^/api/v1/warehouse/products"];
    let run = schemathesis(&shop, broken.to_str().expect("a UTF-8 path"), &extra, 5, &dir.join("junit.xml"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!run.succeeded, "schemathesis passed a document the answers break:\n{}", run.output);
    assert!(run.failures >= 1, "the JUnit report shows the failure:\n{}", run.output);
    assert!(run.output.contains("Response violates schema"), "{}", run.output);
}
