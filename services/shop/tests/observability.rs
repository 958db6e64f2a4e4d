//! Observability against real parts: the real `shop` over loopback, its `/metrics` and
//! `/health/*` on every service, the shipped Prometheus configuration and alert rules checked
//! by `promtool`, and a real Prometheus server scraping the store.
//!
//! promtool and prometheus come from Debian's `prometheus` package (`.ci/run` installs it):
//! in CI (CI=true) a missing one fails the test; elsewhere the test says it skipped.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests drive real processes in real time"
)]

mod common;

use common::*;
use contracts::ProblemType;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(20);
const GATEWAY_ADMIN: u16 = 6;
const SERVICES: [(&str, u16); 6] =
    [("gateway", GATEWAY_ADMIN), ("order", 1), ("billing", 2), ("warehouse", 3), ("delivery", 4), ("notification", 5)];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Whether `tool` is missing; in CI that fails the test.
fn prometheus_tool_missing(tool: &str) -> bool {
    tool_missing(tool, "Debian package prometheus")
}

/// One service's `/metrics` text.
fn scrape(shop: &TestShop, offset: u16) -> String {
    let answer = Client::new(&shop.url(offset)).get("/metrics");
    assert_eq!(answer.status, 200, "{answer:?}");
    let content_type = answer.header("content-type").unwrap_or("");
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let Value::String(text) = answer.body else { panic!("metrics are text: {:?}", answer.body) };
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The sum of the samples named `name` whose labels include every one of `labels`;
/// `None` when there is no such sample.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let matches = series_name == name
            && labels.iter().all(|(k, v)| series_labels.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        if matches {
            *total.get_or_insert(0.0) += value.parse::<f64>().expect("a number");
        }
    }
    total
}

fn expect_sample(text: &str, service: &str, name: &str, labels: &[(&str, &str)], expected: f64) {
    let found = sample(text, name, labels);
    assert_eq!(found, Some(expected), "{service}: {name}{labels:?}\n{text}");
}

fn at_least(text: &str, service: &str, name: &str, labels: &[(&str, &str)], minimum: f64) {
    let found = sample(text, name, labels).unwrap_or(0.0);
    assert!(found >= minimum, "{service}: {name}{labels:?} = {found}, expected at least {minimum}\n{text}");
}

/// The README's flow: register, login, account, deposit, an order (201), its replay (200),
/// the same items under a new key (409 duplicate), the first key with another body (422),
/// and a wrong password. Returns the confirmed order's id.
fn curl_flow(shop: &TestShop) -> String {
    let mut wrong = shop.gateway();
    wrong.register_and_login("eve@example.com");
    let refused = wrong.post("/auth/login", json!({ "email": "eve@example.com", "password": "wrong password" }));
    assert_eq!(refused.status, 401, "{refused:?}");
    let ann = shop.shopper("ann", "5000");
    let body = order_body(&[(ESPRESSO, 2)], &slot_in(3));
    let created = ann.post_keyed("/api/v1/order", "order-1", &body);
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(ann.post_keyed("/api/v1/order", "order-1", &body).status, 200);
    assert_eq!(ann.post_keyed("/api/v1/order", "order-2", &body).status, 409);
    let other = order_body(&[(BEANS, 1)], &slot_in(3));
    assert_eq!(ann.post_keyed("/api/v1/order", "order-1", &other).status, 422);
    let order_id = created.body["id"].as_str().unwrap().to_string();
    let types = ann.eventually(SETTLE, |c| c.notification_types(&order_id), |t| t.len() == 2);
    assert_eq!(types, ["ORDER_CONFIRMED", "PAYMENT_DEBITED"]);
    order_id
}

/// Polls `offset`'s `/metrics` until `check` holds (a relay's gauge or counter moves after
/// the answer the client saw); returns the last text.
fn eventually_metrics(shop: &TestShop, offset: u16, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let text = scrape(shop, offset);
        if check(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn health_and_metrics_answer_on_every_service_and_never_through_the_gateway() {
    let shop = TestShop::start();
    let public = shop.gateway();
    for path in ["/metrics", "/health/live", "/health/ready"] {
        let answer = public.get(path);
        assert_eq!(answer.status, 404, "{path} through the gateway: {answer:?}");
        assert_eq!(answer.problem_type(), Some(ProblemType::NotFound));
    }
    for (service, offset) in SERVICES {
        let client = Client::new(&shop.url(offset));
        let live = client.get("/health/live");
        assert_eq!((live.status, &live.body["status"]), (200, &json!("UP")), "{service}: {live:?}");
        let ready = client.get("/health/ready");
        assert_eq!(ready.status, 200, "{service}: {ready:?}");
        assert!(ready.body["schemaVersion"].as_u64().is_some_and(|v| v >= 1), "{service}: {ready:?}");
        let text = scrape(&shop, offset);
        expect_sample(&text, service, "http_requests_total", &[("route", "/health/ready"), ("status", "200")], 1.0);
    }
}

#[test]
fn with_metrics_off_orders_confirm_metrics_answer_404_and_health_answers() {
    let shop = TestShop::start_with(&["--metrics", "off"]);
    // The README's flow: the order is confirmed (its ORDER_CONFIRMED notification arrives).
    curl_flow(&shop);
    assert_eq!(shop.gateway().get("/metrics").status, 404, "never through the gateway");
    for (service, offset) in SERVICES {
        let client = Client::new(&shop.url(offset));
        let metrics = client.get("/metrics");
        assert_eq!(metrics.status, 404, "{service}: /metrics with the metrics off: {metrics:?}");
        assert_eq!(metrics.problem_type(), Some(ProblemType::NotFound), "{service}: {metrics:?}");
        let live = client.get("/health/live");
        assert_eq!((live.status, &live.body["status"]), (200, &json!("UP")), "{service}: {live:?}");
        let ready = client.get("/health/ready");
        assert_eq!((ready.status, &ready.body["status"]), (200, &json!("UP")), "{service}: {ready:?}");
    }
}

#[test]
fn the_curl_flow_moves_every_services_counters() {
    let shop = TestShop::start();
    let order_id = curl_flow(&shop);

    let order = eventually_metrics(&shop, 1, |t| {
        sample(t, "outbox_deliveries_total", &[]).unwrap_or(0.0) >= 1.0
            && sample(t, "sagas_in_flight", &[]) == Some(0.0)
    });
    let s = "order";
    expect_sample(&order, s, "orders_created_total", &[], 1.0);
    expect_sample(&order, s, "orders_confirmed_total", &[], 1.0);
    expect_sample(&order, s, "orders_failed_total", &[], 0.0);
    expect_sample(&order, s, "orders_failed_total", &[("reason", "INSUFFICIENT_FUNDS")], 0.0);
    for outcome in ["created", "replayed", "duplicate", "key_reused"] {
        expect_sample(&order, s, "order_requests_idempotency_total", &[("outcome", outcome)], 1.0);
    }
    for status in ["201", "200", "409", "422"] {
        let labels = [("route", "/api/v1/order"), ("method", "POST"), ("status", status)];
        expect_sample(&order, s, "http_requests_total", &labels, 1.0);
    }
    let order_route = [("route", "/api/v1/order"), ("method", "POST")];
    expect_sample(&order, s, "http_request_duration_seconds_count", &order_route, 4.0);
    for step in ["withdraw", "reserve", "book"] {
        let labels = [("step", step), ("phase", "action")];
        expect_sample(&order, s, "saga_step_duration_seconds_count", &labels, 1.0);
    }
    expect_sample(&order, s, "saga_compensation_rounds_total", &[], 0.0);
    expect_sample(&order, s, "saga_step_duration_seconds_count", &[("phase", "compensation")], 0.0);
    expect_sample(&order, s, "order_requests_idempotency_total", &[("outcome", "in_progress")], 0.0);
    expect_sample(&order, s, "sagas_in_flight", &[], 0.0);
    expect_sample(&order, s, "outbox_delivery_failures_total", &[], 0.0);
    at_least(&order, s, "outbox_deliveries_total", &[], 1.0);

    for (service, offset) in [("billing", 2), ("warehouse", 3), ("delivery", 4)] {
        let text = scrape(&shop, offset);
        let applied = [("operation", "action"), ("outcome", "applied")];
        expect_sample(&text, service, "participant_operations_total", &applied, 1.0);
        expect_sample(&text, service, "participant_operations_total", &[("operation", "cancel")], 0.0);
        expect_sample(&text, service, "participant_operations_total", &[("outcome", "tombstone")], 0.0);
    }
    let billing = eventually_metrics(&shop, 2, |t| sample(t, "outbox_deliveries_total", &[]).unwrap_or(0.0) >= 1.0);
    at_least(&billing, "billing", "outbox_deliveries_total", &[], 1.0);

    let notification = scrape(&shop, 5);
    // The two outboxes (order's, billing's) deliver in batches.
    let intake = [("route", "/api/v1/notifications/events/batch"), ("method", "POST")];
    at_least(&notification, "notification", "http_requests_total", &intake, 2.0);

    let gateway = scrape(&shop, GATEWAY_ADMIN);
    let g = "gateway";
    expect_sample(&gateway, g, "gateway_logins_total", &[("result", "success")], 2.0);
    expect_sample(&gateway, g, "gateway_logins_total", &[("result", "failure")], 1.0);
    expect_sample(&gateway, g, "gateway_active_sessions", &[], 2.0);
    expect_sample(&gateway, g, "gateway_upstream_unavailable_total", &[], 0.0);
    let proxied = [("route", "/api/v1/order"), ("method", "POST")];
    expect_sample(&gateway, g, "http_requests_total", &proxied, 4.0);
    assert!(!gateway.contains("orders_created"), "the gateway's registry is its own\n{gateway}");
    for (service, text) in [("gateway", &gateway), ("order", &order)] {
        assert!(!text.contains("participant_operations"), "{service} is no participant\n{text}");
    }

    for (service, offset) in SERVICES {
        let text = scrape(&shop, offset);
        at_least(&text, service, "storage_transaction_duration_seconds_count", &[("kind", "write")], 1.0);
    }
    assert!(!order_id.is_empty());
}

// ---- the metric names the dashboard and the alerts use ----

/// The PromQL expressions of the shipped dashboard's panels.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy().join("grafana/dashboards/shop.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// The `expr:` values of the shipped alert rules (inline, or a `|` block).
fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut exprs = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else { continue };
        let value = value.trim();
        if value == "|" || value == ">" {
            let block: Vec<&str> = lines[index + 1..]
                .iter()
                .take_while(|next| next.trim().is_empty() || indent(next) > indent(line))
                .map(|next| next.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            exprs.push(value.to_string());
        }
    }
    exprs
}

/// Removes the text between `open` and its matching `close` (kept as a space).
fn without_groups(text: &str, open: char, close: char) -> String {
    let mut depth = 0;
    let mut kept = String::new();
    for c in text.chars() {
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
            kept.push(' ');
        } else if depth == 0 {
            kept.push(c);
        }
    }
    kept
}

/// The metric names a PromQL expression selects: identifiers that are not functions,
/// keywords, label lists (`by (…)`, `without (…)`, `on (…)`, `ignoring (…)`), label
/// matchers (`{…}`), ranges (`[…]`) or strings.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 24] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        // Aggregation operators: `sum by (x) (…)` puts a keyword between name and `(`.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let text = without_groups(&without_groups(&expr.replace('"', "\u{1}"), '{', '}'), '[', ']');
    let text: String = text.split('\u{1}').step_by(2).collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = text.chars().collect();
    let mut names = BTreeSet::new();
    let mut skip_list = false;
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') || (index > 0 && chars[index - 1].is_ascii_digit()) {
            if c == '(' && skip_list {
                while index < chars.len() && chars[index] != ')' {
                    index += 1;
                }
                skip_list = false;
            }
            index += 1;
            continue;
        }
        let start = index;
        while index < chars.len()
            && (chars[index].is_ascii_alphanumeric() || chars[index] == '_' || chars[index] == ':')
        {
            index += 1;
        }
        let word: String = chars[start..index].iter().collect();
        let next = chars[index..].iter().find(|c| !c.is_whitespace());
        if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word.as_str()) {
            skip_list = true;
        } else if next != Some(&'(') && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            names.insert(word);
        }
    }
    names
}

/// Every series name a `/metrics` text exposes or will expose once a label set is used:
/// its samples, and the names its `# TYPE` lines promise (`x_total` of a counter; `x_bucket`,
/// `x_sum`, `x_count` of a histogram).
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
        } else if !line.starts_with('#') {
            names.insert(line.split(['{', ' ']).next().unwrap().to_string());
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let expr = r#"histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{status=~"5.."}[5m]))) > 2"#;
    assert_eq!(metric_names(expr), BTreeSet::from(["http_request_duration_seconds_bucket".to_string()]));
    let expr = "sum without (instance) (rate(a_total[1m])) / on (service) group_left b > 0.5 and c_seconds offset 5m";
    let expected: BTreeSet<String> = ["a_total", "b", "c_seconds"].map(String::from).into();
    assert_eq!(metric_names(expr), expected);
    assert!(alert_exprs().len() >= 5, "{:?}", alert_exprs());
    assert!(alert_exprs().iter().any(|e| e.contains("histogram_quantile")), "the `|` block is read");
}

#[test]
fn every_metric_the_dashboard_and_the_alerts_name_is_exposed_by_the_store() {
    let shop = TestShop::start();
    curl_flow(&shop);
    let mut exposed = BTreeSet::new();
    for (_, offset) in SERVICES {
        exposed.extend(exposed_names(&scrape(&shop, offset)));
    }
    let exprs: Vec<String> = dashboard_exprs().into_iter().chain(alert_exprs()).collect();
    let mut missing = Vec::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        missing
            .extend(names.into_iter().filter(|name| !exposed.contains(name)).map(|name| format!("{name} in {expr}")));
    }
    assert!(missing.is_empty(), "named in deploy/ but not exposed by any service:\n{}", missing.join("\n"));
}

// ---- promtool and a real Prometheus ----

fn promtool(args: &[&str]) {
    let output = Command::new("promtool").args(args).current_dir(deploy()).output().expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    assert!(text.contains("SUCCESS"), "promtool {args:?}:\n{text}");
}

#[test]
fn promtool_accepts_the_config_and_rules_and_passes_the_alert_tests() {
    if prometheus_tool_missing("promtool") {
        return;
    }
    promtool(&["check", "config", "prometheus/prometheus.yml"]);
    promtool(&["check", "rules", "prometheus/alerts.yml"]);
    promtool(&["test", "rules", "prometheus/alerts_test.yml"]);
}

/// A Prometheus server, killed with the test.
struct Prometheus {
    child: Child,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shipped configuration with the test shop's ports and a 1 s scrape interval.
fn test_config(shop: &TestShop) -> String {
    let shipped = std::fs::read_to_string(deploy().join("prometheus/prometheus.yml")).unwrap();
    let mut config = shipped.replace("scrape_interval: 15s", "scrape_interval: 1s");
    for offset in 0..=GATEWAY_ADMIN {
        let port = 8080 + offset;
        config = config.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{}", shop.base_port + offset));
    }
    assert_ne!(config, shipped);
    config
}

/// `query`'s result vector over the server's HTTP API.
fn query(port: u16, query: &str) -> Vec<Value> {
    let url = format!("http://127.0.0.1:{port}/api/v1/query");
    let Ok(response) = ureq::get(&url).query("query", query).call() else { return Vec::new() };
    let body: Value = response.into_json().unwrap_or(Value::Null);
    body["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn scalar(result: &[Value]) -> Option<f64> {
    result.first().and_then(|r| r["value"][1].as_str()).and_then(|v| v.parse().ok())
}

#[test]
fn a_real_prometheus_scrapes_the_store_and_answers_for_its_orders() {
    if prometheus_tool_missing("prometheus") {
        return;
    }
    let shop = TestShop::start();
    let dir = shop.data_dir.with_extension("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("prometheus.yml"), test_config(&shop)).unwrap();
    std::fs::copy(deploy().join("prometheus/alerts.yml"), dir.join("alerts.yml")).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _prometheus = Prometheus { child, dir };
    curl_flow(&shop);

    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut up, mut confirmed) = (None, None);
    while Instant::now() < deadline {
        up = scalar(&query(port, r#"sum(up{job="shop"})"#));
        confirmed = scalar(&query(port, r#"sum(orders_confirmed_total{service="order"})"#));
        if up == Some(6.0) && confirmed == Some(1.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(up, Some(6.0), "all six targets up");
    assert_eq!(confirmed, Some(1.0), "the confirmed order, as Prometheus scraped it");
    let replays = query(port, r#"order_requests_idempotency_total{outcome="replayed"}"#);
    assert_eq!(scalar(&replays), Some(1.0), "{replays:?}");
    let rules = ureq::get(&format!("http://127.0.0.1:{port}/api/v1/rules")).call().unwrap();
    let rules: Value = rules.into_json().unwrap();
    let loaded = rules["data"]["groups"][0]["rules"].as_array().map_or(0, Vec::len);
    assert_eq!(loaded, 5, "the shipped alert rules are loaded: {rules}");
}
