//! `TestShop`: the real `shop` binary started on loopback for a test, in one or more
//! processes sharing a temporary data directory, and a small HTTP client with a cookie.

#![allow(dead_code, reason = "each test binary uses a different part of the helper")]

use contracts::order::OrderStatus;
use contracts::ProblemType;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

pub const USER_TOKEN_SECRET: &str = "test-user-token-secret";
pub const SERVICE_TOKEN_SECRET: &str = "test-service-token-secret";
pub const ESPRESSO: &str = "00000000-0000-4000-8000-000000000001";
pub const GRINDER: &str = "00000000-0000-4000-8000-000000000002";
pub const JUG: &str = "00000000-0000-4000-8000-000000000003";
pub const TAMPER: &str = "00000000-0000-4000-8000-000000000004";
pub const BEANS: &str = "00000000-0000-4000-8000-000000000005";

static NEXT_BLOCK: AtomicU16 = AtomicU16::new(0);

/// Seven consecutive free loopback ports: the six services and the gateway's admin port.
///
/// Drawn from 20000..32006, below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection of a test running alongside (a client, a Prometheus scrape) can be
/// given one of them between this check and the shop's bind. Another test process may
/// still take one; `start_group_with` then starts again on a fresh block.
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let base = 20_000 + ((std::process::id() as u16).wrapping_mul(37).wrapping_add(block.wrapping_mul(7))) % 12_000;
        let free = (0..7).all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no seven consecutive free ports found");
}

pub struct TestShop {
    pub data_dir: PathBuf,
    pub base_port: u16,
    pub slot_capacity: u32,
    /// `--password-cost`: "low" unless a test needs the real cost.
    pub password_cost: &'static str,
    processes: BTreeMap<String, Child>,
}

impl TestShop {
    /// All six services in one process.
    pub fn start() -> TestShop {
        TestShop::start_groups(&["gateway,order,billing,warehouse,delivery,notification"], 5)
    }

    /// All six services in one process, started with more arguments (e.g. `--metrics off`).
    pub fn start_with(extra: &[&str]) -> TestShop {
        let mut shop = TestShop::start_groups(&[], 5);
        let extra: Vec<String> = extra.iter().map(|arg| arg.to_string()).collect();
        shop.start_group_with("gateway,order,billing,warehouse,delivery,notification", &extra);
        shop
    }

    /// One process per group of comma-separated services.
    pub fn start_groups(groups: &[&str], slot_capacity: u32) -> TestShop {
        let block = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        let data_dir = std::env::temp_dir().join(format!("shop-test-{}-{block}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        let mut shop = TestShop {
            data_dir,
            base_port: free_base_port(),
            slot_capacity,
            password_cost: "low",
            processes: BTreeMap::new(),
        };
        for group in groups {
            shop.start_group(group);
        }
        shop
    }

    /// All six services in one process, with passwords hashed at the standard cost.
    pub fn start_standard_cost() -> TestShop {
        let mut shop = TestShop::start_groups(&[], 5);
        shop.password_cost = "standard";
        shop.start_group("gateway,order,billing,warehouse,delivery,notification");
        shop
    }

    pub fn start_group(&mut self, services: &str) {
        self.start_group_with(services, &[]);
    }

    /// A group started with more arguments (e.g. `--peer order=HOST:PORT`).
    ///
    /// When the first group finds a port taken, the shop moves to a fresh block of ports
    /// and tries again (at most five times); a later group shares the first one's ports.
    pub fn start_group_with(&mut self, services: &str, extra: &[String]) {
        for _ in 0..5 {
            match self.try_start_group(services, extra) {
                Ok(()) => return,
                Err(refusal) if self.processes.is_empty() && refusal.contains("Address already in use") => {
                    self.base_port = free_base_port();
                }
                Err(refusal) => panic!("{refusal}"),
            }
        }
        panic!("shop --services {services} found a port taken on five blocks of ports");
    }

    fn try_start_group(&mut self, services: &str, extra: &[String]) -> Result<(), String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(extra)
            .args(["--base-port", &self.base_port.to_string()])
            .args(["--data-dir", self.data_dir.to_str().unwrap()])
            .args(["--services", services])
            .args(["--slot-capacity", &self.slot_capacity.to_string()])
            .args(["--password-cost", self.password_cost])
            .env("SHOP_USER_TOKEN_SECRET", USER_TOKEN_SECRET)
            .env("SHOP_SERVICE_TOKEN_SECRET", SERVICE_TOKEN_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the shop binary");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        if !line.starts_with("shop ready") {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            let _ = child.wait();
            return Err(format!("shop --services {services} did not start: {line} {stderr}"));
        }
        // Drain stderr so the child never blocks on a full pipe.
        let mut stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        self.processes.insert(services.to_string(), child);
        Ok(())
    }

    /// `kill -9`: the process gets no chance to finish anything.
    pub fn kill(&mut self, services: &str) {
        let mut child = self.processes.remove(services).expect("a running group");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn url(&self, offset: u16) -> String {
        format!("http://127.0.0.1:{}", self.base_port + offset)
    }

    pub fn gateway(&self) -> Client {
        Client::new(&self.url(0))
    }

    /// A registered, logged-in shopper with an account holding `deposit`.
    pub fn shopper(&self, name: &str, deposit: &str) -> Client {
        let mut client = self.gateway();
        client.register_and_login(&format!("{name}@example.com"));
        assert_eq!(client.post("/api/v1/billing/accounts", json!({})).status, 201);
        if deposit != "0" {
            let answer = client.post("/api/v1/billing/deposit", json!({ "amount": deposit }));
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        client
    }
}

impl Drop for TestShop {
    fn drop(&mut self) {
        for child in self.processes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The problem type of an error answer, when it is one the store has.
    pub fn problem_type(&self) -> Option<ProblemType> {
        self.body["type"].as_str().and_then(ProblemType::from_uri)
    }
}

pub struct Client {
    base: String,
    agent: ureq::Agent,
    pub cookie: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client::with_timeout(base, Duration::from_secs(30))
    }

    pub fn with_timeout(base: &str, timeout: Duration) -> Client {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        Client { base: base.to_string(), agent, cookie: None }
    }

    /// Sends a request; any status is an answer. `None` when no answer came in time.
    pub fn try_send(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Option<Answer> {
        let mut request = self.agent.request(method, &format!("{}{}", self.base, path));
        if let Some(cookie) = &self.cookie {
            request = request.set("Cookie", cookie);
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(bytes) => request.set("Content-Type", "application/json").send_bytes(bytes),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(_)) => return None,
        };
        let status = response.status();
        let headers = response.headers_names().into_iter().map(|n| {
            let v = response.header(&n).unwrap_or("").to_string();
            (n.to_ascii_lowercase(), v)
        });
        let headers: BTreeMap<String, String> = headers.collect();
        let text = response.into_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Some(Answer { status, headers, body })
    }

    pub fn send(&self, method: &str, path: &str, body: Option<&[u8]>, headers: &[(&str, &str)]) -> Answer {
        self.try_send(method, path, body, headers).unwrap_or_else(|| panic!("{method} {path}: no answer"))
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body.to_string().as_bytes()), &[])
    }

    pub fn post_keyed(&self, path: &str, key: &str, body: &Value) -> Answer {
        self.send("POST", path, Some(body.to_string().as_bytes()), &[("Idempotency-Key", key)])
    }

    pub fn register_and_login(&mut self, email: &str) -> Value {
        let registered =
            self.post("/auth/register", json!({ "email": email, "password": "correct horse", "firstName": "Test" }));
        assert_eq!(registered.status, 201, "{registered:?}");
        let login = self.post("/auth/login", json!({ "email": email, "password": "correct horse" }));
        assert_eq!(login.status, 200, "{login:?}");
        let set_cookie = login.header("set-cookie").expect("a session cookie");
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/")
        );
        self.cookie = Some(set_cookie.split(';').next().unwrap().to_string());
        registered.body
    }

    pub fn balance(&self) -> String {
        self.get("/api/v1/billing/accounts/me").body["balance"].as_str().unwrap().to_string()
    }

    pub fn available(&self, product: &str) -> i64 {
        self.get(&format!("/api/v1/warehouse/products/{product}")).body["available"].as_i64().unwrap()
    }

    pub fn slot_remaining(&self, slot: &str) -> i64 {
        let slots = self.get("/api/v1/deliveries/slots").body;
        slots.as_array().unwrap().iter().find(|s| s["slot"].as_str().unwrap().starts_with(&slot[..13])).unwrap()
            ["remaining"]
            .as_i64()
            .unwrap()
    }

    pub fn notification_types(&self, order_id: &str) -> Vec<String> {
        let listed = self.get("/api/v1/notifications").body;
        let mut types: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["orderId"] == order_id)
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect();
        types.sort();
        types
    }

    /// Polls until `check` holds or `timeout` passes; returns the last value read.
    pub fn eventually<T: std::fmt::Debug>(
        &self,
        timeout: Duration,
        mut read: impl FnMut(&Client) -> T,
        check: impl Fn(&T) -> bool,
    ) -> T {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let value = read(self);
            if check(&value) || std::time::Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn order_status(&self, order_id: &str) -> Option<OrderStatus> {
        status_in(&self.get(&format!("/api/v1/order/{order_id}")).body)
    }
}

/// A delivery slot `hours` ahead, on the hour, as the contract wants it.
pub fn slot_in(hours: i64) -> String {
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let hour = now.timestamp() / 3600 * 3600 + hours * 3600;
    chrono::DateTime::from_timestamp(hour, 0).unwrap().format("%Y-%m-%dT%H:00:00Z").to_string()
}

pub fn order_body(lines: &[(&str, i64)], slot: &str) -> Value {
    let items: Vec<Value> = lines.iter().map(|(p, q)| json!({ "productId": p, "quantity": q })).collect();
    json!({ "items": items, "deliveryInfo": { "address": "1 Test Street", "preferredTimeSlot": slot }, "description": "test" })
}

/// The workspace's root directory (where `reports/`, `docs/` and `postman/` are).
pub fn workspace() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether the external `tool` is missing (it does not answer `--version`); in CI that fails
/// the test, since `.ci/run` installs it (`install` says how); elsewhere the test says it
/// skipped.
pub fn tool_missing(tool: &str, install: &str) -> bool {
    let found = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if found {
        return false;
    }
    assert!(!in_ci(), "{tool} is missing in CI: .ci/run installs it ({install})");
    eprintln!("SKIPPED: {tool} is not installed here ({install}; CI installs it)");
    true
}

/// Every service's HTTP answers with a 5xx status, as its own metrics count them.
pub fn server_errors(shop: &TestShop) -> Vec<String> {
    let mut errors = Vec::new();
    for offset in 1..=6 {
        let answer = Client::new(&shop.url(offset)).get("/metrics");
        assert_eq!(answer.status, 200, "{answer:?}");
        let Value::String(text) = answer.body else { panic!("metrics are text: {:?}", answer.body) };
        errors.extend(
            text.lines()
                .filter(|l| l.starts_with("http_requests_total{") && l.contains("status=\"5"))
                .filter(|l| !l.ends_with(" 0"))
                .map(|l| format!("{}: {l}", shop.url(offset))),
        );
    }
    errors
}

/// The `status` of an order body, when it is one.
pub fn status_in(order: &Value) -> Option<OrderStatus> {
    OrderStatus::deserialize(&order["status"]).ok()
}
