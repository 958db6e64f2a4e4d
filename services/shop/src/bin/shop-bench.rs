//! The store's benchmark (not a test): the real store on loopback, concurrent shoppers
//! placing orders through the gateway, twice in the same run — metrics on, then metrics off
//! (`shop --metrics off`), each a fresh store in a fresh data directory — against a bare
//! hyper echo server driven the same way (keep-alive, and a fresh connection per request) as
//! the ceiling, and against the disk under the data directory: how many durable syncs
//! (`fdatasync`, what a `synchronous = FULL` commit pays) it completes per second, from one
//! file and from six at once (a database per service). Prints confirmed orders per second
//! and p50/p99 latency for each, the commits the timed orders paid, the CPU time and context
//! switches per confirmed order (`getrusage`, the whole process: steadier than throughput on
//! a shared machine, for comparing builds), and the ratios metrics on / metrics off, store /
//! echo and store commits / disk syncs, and what issue 14's goal (1,000 confirmed orders/s)
//! asks of the CPU per order and the mean latency ([`GoalBounds`]). Every shopper signs up
//! (two Argon2id hashes each, retried on the gateway's 503 over its cap of concurrent hashes)
//! before the clock starts: only orders are timed.
//!
//! `cargo run --release -p shop --bin shop-bench -- --shoppers 16 --orders 50`

use bytes::Bytes;
use clap::Parser;
use contracts::order::OrderStatus;
use contracts::{ProductId, ServiceName};
use http::{header, HeaderName, Method};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use platform::client::{HttpClient, OutboundRequest, RetryPolicy, SERVICE_POOL};
use platform::real::{real_env, TokioNet};
use platform::Net;
use serde::Deserialize;
use serde_json::{json, Value};
use shop::{load_secrets, start, MetricsSwitch, ShopConfig};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Parser, Debug)]
struct Cli {
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 16)]
    shoppers: u32,
    /// Orders each shopper places.
    #[arg(long, default_value_t = 50)]
    orders: u32,
}

const CALL_TIMEOUT_MS: u64 = 30_000;

struct Latencies(Vec<f64>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> f64 {
        self.0.sort_by(|a, b| a.total_cmp(b));
        let index = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(index).copied().unwrap_or(0.0)
    }

    fn mean(&self) -> f64 {
        self.0.iter().sum::<f64>() / self.0.len().max(1) as f64
    }
}

/// Issue 14's goal for the real store: confirmed orders per second on this machine.
const GOAL_ORDERS_PER_S: f64 = 1_000.0;

/// What the goal asks of one store run, from its own figures. Throughput is bounded twice:
/// by the CPU (the cores over the CPU time a confirmed order costs, the shoppers' included)
/// and by the latency (each shopper waits for its answer before its next order, so
/// shoppers / mean latency: Little's law).
struct GoalBounds {
    cpu_ceiling_per_s: f64,
    latency_ceiling_per_s: f64,
    /// The most a confirmed order may cost in CPU, and take on average, for the goal.
    cpu_budget_ms: f64,
    latency_budget_ms: f64,
}

impl GoalBounds {
    fn new(cores: f64, cpu_ms_per_order: f64, shoppers: f64, mean_latency_ms: f64) -> GoalBounds {
        GoalBounds {
            cpu_ceiling_per_s: cores * 1000.0 / cpu_ms_per_order,
            latency_ceiling_per_s: shoppers * 1000.0 / mean_latency_ms,
            cpu_budget_ms: cores * 1000.0 / GOAL_ORDERS_PER_S,
            latency_budget_ms: shoppers * 1000.0 / GOAL_ORDERS_PER_S,
        }
    }
}

#[expect(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark measures wall time")]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

fn request(method: Method, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> OutboundRequest {
    let mut request = OutboundRequest::new(method, path);
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(HeaderName::from_bytes(name.as_bytes()).expect("valid name"), value);
    }
    request
}

fn answer(reply: platform::client::Reply) -> (u16, Value, Option<String>) {
    let cookie = reply
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or("").to_string());
    (reply.status.as_u16(), serde_json::from_slice(&reply.body).unwrap_or(Value::Null), cookie)
}

async fn call(
    http: &HttpClient,
    addr: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> (u16, Value, Option<String>) {
    let request = request(method, path, body, headers);
    answer(http.send(addr, &request, RetryPolicy::once(CALL_TIMEOUT_MS)).await.expect("the store answers"))
}

/// Sign-up calls that hash a password: the gateway answers 503 over its cap of concurrent
/// hashes (no effect), so they are sent again after a pause, at most this many times.
const HASHING_ATTEMPTS_MAX: u32 = 200;
const HASHING_PAUSE: Duration = Duration::from_millis(100);

#[expect(clippy::disallowed_methods, reason = "the benchmark's client pauses in real time")]
async fn pause(duration: Duration) {
    tokio::time::sleep(duration).await;
}

async fn call_hashing(http: &HttpClient, addr: &str, path: &str, body: &Value) -> (u16, Value, Option<String>) {
    let request = request(Method::POST, path, Some(body), &[]);
    for _ in 0..HASHING_ATTEMPTS_MAX {
        match http.send(addr, &request, RetryPolicy::once(CALL_TIMEOUT_MS)).await {
            Err(platform::client::CallError::Status { status: 503, .. }) => pause(HASHING_PAUSE).await,
            reply => return answer(reply.expect("the store answers")),
        }
    }
    panic!("{path}: 503 (too many password checks) {HASHING_ATTEMPTS_MAX} times");
}

/// One shopper's sign-up: register, login, account, deposit; returns the session cookie.
async fn sign_up(http: HttpClient, gateway: String, index: u32) -> String {
    let credentials = json!({"email": format!("bench{index}@example.com"), "password": "bench password"});
    call_hashing(&http, &gateway, "/auth/register", &credentials).await;
    let (_, _, cookie) = call_hashing(&http, &gateway, "/auth/login", &credentials).await;
    let cookie = cookie.expect("a session cookie");
    let session = [("cookie", cookie.as_str())];
    call(&http, &gateway, Method::POST, "/api/v1/billing/accounts", None, &session).await;
    call(&http, &gateway, Method::POST, "/api/v1/billing/deposit", Some(&json!({"amount": "1000000000"})), &session)
        .await;
    cookie
}

/// The product every benchmark order asks for: the demo catalog's milk jug (stock 100).
const BENCH_PRODUCT: ProductId = warehouse::DEMO_CATALOG[2].id;

/// One signed-up shopper places `orders` orders; returns (latencies ms, confirmed).
async fn place_orders(http: HttpClient, gateway: String, index: u32, cookie: String, orders: u32) -> (Vec<f64>, u32) {
    let slot = chrono::DateTime::from_timestamp(platform_now_s() / 3600 * 3600 + 7200, 0)
        .expect("valid")
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let mut latencies = Vec::new();
    let mut confirmed = 0;
    for number in 0..orders {
        // A distinct quantity per order, so that no order is "similar" to another.
        let body = json!({"items": [{"productId": BENCH_PRODUCT, "quantity": number + 1}],
                          "deliveryInfo": {"address": "1 Bench Road", "preferredTimeSlot": slot}});
        let key = format!("bench-{index}-{number}");
        let started = now();
        let (status, answer, _) = call(
            &http,
            &gateway,
            Method::POST,
            "/api/v1/order",
            Some(&body),
            &[("cookie", cookie.as_str()), ("idempotency-key", &key)],
        )
        .await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if status == 201 && OrderStatus::deserialize(&answer["status"]).ok() == Some(OrderStatus::Confirmed) {
            confirmed += 1;
        }
    }
    (latencies, confirmed)
}

#[expect(clippy::disallowed_types, clippy::disallowed_methods, reason = "a benchmark reads the wall clock")]
fn platform_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The ceiling: a bare hyper server that echoes the body, driven with the same client.
async fn echo_server() -> String {
    let mut listener = TokioNet.bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound").to_string();
    platform::Spawner::Runtime.spawn(async move {
        loop {
            let Ok((io, _)) = listener.accept().await else { continue };
            platform::Spawner::Runtime.spawn(async move {
                let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt;
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service).await;
            });
        }
    });
    addr
}

async fn echo_client(http: HttpClient, addr: String, requests: u32) -> Vec<f64> {
    let mut latencies = Vec::new();
    for number in 0..requests {
        let body = json!({"items": [{"productId": BENCH_PRODUCT, "quantity": number + 1}]});
        let request = OutboundRequest::new(Method::POST, "/echo").json(&body);
        let started = now();
        let reply = http.send(&addr, &request, RetryPolicy::once(CALL_TIMEOUT_MS)).await.expect("echo answers");
        assert_eq!(reply.body, Bytes::from(body.to_string()));
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies
}

/// What one store run measured: confirmed orders, the seconds the orders took, latencies.
struct StoreRun {
    confirmed: u32,
    seconds: f64,
    latencies: Latencies,
    /// Writes and commits over the run, sign-up included (metrics on only).
    batching: Option<(f64, f64)>,
    /// Each database's writes during the timed orders alone (metrics on only).
    timed_storage: Vec<(ServiceName, Storage)>,
    /// What the whole process (store and shoppers) used during the timed orders.
    usage: Usage,
}

/// CPU time and context switches of this process (`getrusage`), summed over its threads.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu_s: f64,
    kernel_s: f64,
    switches: f64,
}

impl Usage {
    fn now() -> Usage {
        // SAFETY: getrusage writes the struct it is given and reads nothing else.
        let usage = unsafe {
            let mut usage = std::mem::zeroed::<libc::rusage>();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
                return Usage::default();
            }
            usage
        };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let kernel_s = seconds(usage.ru_stime);
        Usage {
            cpu_s: seconds(usage.ru_utime) + kernel_s,
            kernel_s,
            switches: (usage.ru_nvcsw + usage.ru_nivcsw) as f64,
        }
    }

    fn since(self, before: Usage) -> Usage {
        Usage {
            cpu_s: self.cpu_s - before.cpu_s,
            kernel_s: self.kernel_s - before.kernel_s,
            switches: self.switches - before.switches,
        }
    }
}

impl StoreRun {
    fn per_second(&self) -> f64 {
        f64::from(self.confirmed) / self.seconds
    }
}

/// How long a stopped store may take to finish its services before the next run starts.
const STOP_WAIT: Duration = Duration::from_secs(10);

#[expect(clippy::disallowed_methods, reason = "the benchmark bounds the store's stop in real time")]
async fn within_stop_wait<F: std::future::Future>(future: F) -> Option<F::Output> {
    tokio::time::timeout(STOP_WAIT, future).await.ok()
}

/// A fresh store (its own data directory) with `metrics`, driven by `cli.shoppers`
/// concurrent shoppers placing `cli.orders` orders each; stopped before it returns.
async fn run_store(cli: &Cli, metrics: MetricsSwitch) -> StoreRun {
    let data_dir = std::env::temp_dir().join(format!("shop-bench-{}-{metrics:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let config = ShopConfig {
        host: "127.0.0.1".to_string(),
        base_port: 0,
        data_dir: Some(data_dir.clone()),
        services: ServiceName::ALL.to_vec(),
        slot_capacity: 1_000_000,
        password_cost: gateway::PASSWORD_COST_STANDARD,
        demo_stock: Some(1_000_000_000),
        peers: Vec::new(),
        metrics,
    };
    std::fs::create_dir_all(&data_dir).expect("a data directory");
    let secrets = load_secrets(Some(&data_dir), None).expect("secrets");
    let (stop, shutdown) = watch::channel(false);
    let started = start(&config, secrets, shutdown).await.expect("the store starts");
    let gateway = started.peers.address(ServiceName::Gateway).to_string();
    let mut services = tokio::task::JoinSet::new();
    for (_, future) in started.services {
        platform::Spawner::Runtime.spawn_into(&mut services, future);
    }

    let mut signing_up = tokio::task::JoinSet::new();
    for index in 0..cli.shoppers {
        let task = sign_up(HttpClient::new(real_env()), gateway.clone(), index);
        platform::Spawner::Runtime.spawn_into(&mut signing_up, async move { (index, task.await) });
    }
    let mut cookies = Vec::new();
    while let Some(done) = signing_up.join_next().await {
        cookies.push(done.expect("a shopper signed up"));
    }
    let before = if metrics == MetricsSwitch::On { Some(storage(&started.peers).await) } else { None };
    let clock = now();
    let usage_before = Usage::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, cookie) in cookies {
        // A shopper keeps its connection to the gateway alive, as a browser does.
        let task =
            place_orders(HttpClient::keep_alive(real_env(), SERVICE_POOL), gateway.clone(), index, cookie, cli.orders);
        platform::Spawner::Runtime.spawn_into(&mut tasks, task);
    }
    let mut latencies = Latencies(Vec::new());
    let mut confirmed = 0;
    while let Some(done) = tasks.join_next().await {
        let (shopper_latencies, count) = done.expect("a shopper finished");
        latencies.0.extend(shopper_latencies);
        confirmed += count;
    }
    let seconds = clock.elapsed().as_secs_f64();
    let usage = Usage::now().since(usage_before);
    let after = if metrics == MetricsSwitch::On { Some(storage(&started.peers).await) } else { None };
    let batching = after.as_ref().map(|after| {
        let total = Storage::total(after);
        (total.writes, total.commits)
    });
    let timed_storage: Vec<(ServiceName, Storage)> = match (&before, &after) {
        (Some(before), Some(after)) => {
            before.iter().zip(after).map(|((service, before), (_, after))| (*service, after.since(before))).collect()
        }
        _ => Vec::new(),
    };

    let _ = stop.send(true);
    let stopped = within_stop_wait(async { while services.join_next().await.is_some() {} }).await;
    if stopped.is_none() {
        eprintln!("shop-bench: the metrics-{metrics:?} store did not stop within {STOP_WAIT:?}; aborting it");
        services.abort_all();
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    StoreRun { confirmed, seconds, latencies, batching, timed_storage, usage }
}

/// One database's writes so far, from its service's own metrics: writes and commits
/// (`storage_commit_batch_size`, group commit) and the seconds its writes took, each from
/// its call to its answer (the wait for its turn and for its commit included).
#[derive(Clone, Copy, Default)]
struct Storage {
    writes: f64,
    commits: f64,
    write_seconds: f64,
}

impl Storage {
    fn since(self, before: &Storage) -> Storage {
        Storage {
            writes: self.writes - before.writes,
            commits: self.commits - before.commits,
            write_seconds: self.write_seconds - before.write_seconds,
        }
    }

    fn total(each: &[(ServiceName, Storage)]) -> Storage {
        each.iter().fold(Storage::default(), |sum, (_, s)| Storage {
            writes: sum.writes + s.writes,
            commits: sum.commits + s.commits,
            write_seconds: sum.write_seconds + s.write_seconds,
        })
    }
}

/// Each database's writes so far (see [`Storage`]), for the services behind the gateway.
async fn storage(peers: &platform::internal::Peers) -> Vec<(ServiceName, Storage)> {
    let http = HttpClient::new(real_env());
    let mut each = Vec::new();
    for service in ServiceName::ALL.into_iter().filter(|s| *s != ServiceName::Gateway) {
        let request = request(Method::GET, "/metrics", None, &[]);
        let reply = http.send(peers.address(service), &request, RetryPolicy::once(CALL_TIMEOUT_MS)).await;
        let text = String::from_utf8_lossy(&reply.expect("the service answers /metrics").body).into_owned();
        let value =
            |name: &str| -> f64 { text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0) };
        let storage = Storage {
            writes: value("storage_commit_batch_size_sum "),
            commits: value("storage_commit_batch_size_count "),
            write_seconds: value(r#"storage_transaction_duration_seconds_sum{kind="write"} "#),
        };
        each.push((service, storage));
    }
    each
}

/// The echo server driven as the store is: one client per shopper, `orders` requests each,
/// on keep-alive connections or a fresh one per request. Latencies and elapsed seconds.
async fn run_echo(cli: &Cli, echo: &str, keep_alive: bool) -> (Latencies, f64) {
    let clock = now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cli.shoppers {
        let client =
            if keep_alive { HttpClient::keep_alive(real_env(), SERVICE_POOL) } else { HttpClient::new(real_env()) };
        platform::Spawner::Runtime.spawn_into(&mut tasks, echo_client(client, echo.to_string(), cli.orders));
    }
    let mut latencies = Latencies(Vec::new());
    while let Some(done) = tasks.join_next().await {
        latencies.0.extend(done.expect("an echo client finished"));
    }
    (latencies, clock.elapsed().as_secs_f64())
}

/// Durable syncs each file of the disk measurement pays (4 KiB appended, then `fdatasync`).
const DISK_SYNCS_PER_FILE: u32 = 250;

/// The disk's ceiling for durable commits: `files` files in a fresh directory beside the
/// store's, each on its own thread appending 4 KiB and syncing it (`fdatasync`, as SQLite's
/// `synchronous = FULL` does on every commit) `DISK_SYNCS_PER_FILE` times, all at once.
/// Returns syncs per second over all files.
fn disk_syncs_per_second(files: u32) -> f64 {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("shop-bench-{}-disk", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the disk measurement");
    let clock = now();
    std::thread::scope(|scope| {
        for index in 0..files {
            let path = dir.join(format!("sync-{index}"));
            scope.spawn(move || {
                let mut file = std::fs::File::create(&path).expect("a file for the disk measurement");
                let page = [0x5a_u8; 4096];
                for _ in 0..DISK_SYNCS_PER_FILE {
                    file.write_all(&page).expect("a write");
                    file.sync_data().expect("fdatasync");
                }
            });
        }
    });
    let seconds = clock.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    f64::from(files * DISK_SYNCS_PER_FILE) / seconds
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let total = cli.shoppers * cli.orders;
    let one_file = disk_syncs_per_second(1);
    let six_files = disk_syncs_per_second(6);
    let mut on = run_store(&cli, MetricsSwitch::On).await;
    let mut off = run_store(&cli, MetricsSwitch::Off).await;

    let echo = echo_server().await;
    let (mut fresh, fresh_s) = run_echo(&cli, &echo, false).await;
    let (mut bare, echo_s) = run_echo(&cli, &echo, true).await;
    let echo_per_second = f64::from(total) / echo_s;

    println!("{} shoppers x {} orders = {total} orders per store run (sign-up not timed)", cli.shoppers, cli.orders);
    for (name, run) in [("store, metrics on ", &mut on), ("store, metrics off", &mut off)] {
        println!(
            "{name}: {} confirmed in {:.2} s = {:.0} confirmed orders/s, p50 {:.1} ms, p99 {:.1} ms",
            run.confirmed,
            run.seconds,
            run.per_second(),
            run.latencies.percentile(0.5),
            run.latencies.percentile(0.99)
        );
    }
    for (name, run) in [("store, metrics on ", &on), ("store, metrics off", &off)] {
        let per_order = f64::from(run.confirmed.max(1));
        println!(
            "{name}: per confirmed order {:.2} ms CPU ({:.0}% in the kernel), {:.1} context switches; {:.2} cores busy (the whole process, shoppers included)",
            run.usage.cpu_s * 1000.0 / per_order,
            run.usage.kernel_s * 100.0 / run.usage.cpu_s.max(f64::MIN_POSITIVE),
            run.usage.switches / per_order,
            run.usage.cpu_s / run.seconds
        );
    }
    if let Some((writes, commits)) = on.batching {
        println!(
            "store, metrics on : {writes:.0} writes in {commits:.0} commits = {:.2} writes per commit (group commit; sign-up included)",
            writes / commits.max(1.0)
        );
    }
    println!(
        "disk under the data directory: {one_file:.0} syncs/s from one file, {six_files:.0} syncs/s from six at once"
    );
    if !on.timed_storage.is_empty() {
        let timed = Storage::total(&on.timed_storage).commits;
        println!(
            "store, metrics on : {timed:.0} commits for the timed orders = {:.2} per confirmed order, {:.0} commits/s = {:.2} of the disk's six-file syncs/s",
            timed / f64::from(on.confirmed.max(1)),
            timed / on.seconds,
            timed / on.seconds / six_files
        );
    }
    for (service, timed) in &on.timed_storage {
        println!(
            "store, metrics on : {:<13} {:.2} writes per confirmed order, {:.2} ms each (its turn and its commit included), {:.2} writes per commit",
            format!("{}:", service.as_str()),
            timed.writes / f64::from(on.confirmed.max(1)),
            timed.write_seconds * 1000.0 / timed.writes.max(1.0),
            timed.writes / timed.commits.max(1.0)
        );
    }
    println!(
        "bare hyper echo, a fresh connection per request: {total} requests in {fresh_s:.2} s = {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
        f64::from(total) / fresh_s,
        fresh.percentile(0.5),
        fresh.percentile(0.99)
    );
    println!(
        "bare hyper echo, keep-alive: {total} requests in {echo_s:.2} s = {echo_per_second:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
        bare.percentile(0.5),
        bare.percentile(0.99)
    );
    println!(
        "metrics on / off: throughput {:.3}, p50 {:.3}, p99 {:.3}",
        on.per_second() / off.per_second(),
        on.latencies.percentile(0.5) / off.latencies.percentile(0.5),
        on.latencies.percentile(0.99) / off.latencies.percentile(0.99)
    );
    println!("store throughput (metrics on) / keep-alive echo ceiling: {:.3}", on.per_second() / echo_per_second);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu_ms = on.usage.cpu_s * 1000.0 / f64::from(on.confirmed.max(1));
    let mean_ms = on.latencies.mean();
    let bounds = GoalBounds::new(cores, cpu_ms, f64::from(cli.shoppers), mean_ms);
    println!(
        "store, metrics on : bounds: {cores:.0} cores / {cpu_ms:.2} ms CPU per order = {:.0} orders/s at most; \
         {} shoppers / {mean_ms:.1} ms mean latency = {:.0} orders/s",
        bounds.cpu_ceiling_per_s, cli.shoppers, bounds.latency_ceiling_per_s
    );
    println!(
        "goal {GOAL_ORDERS_PER_S:.0} orders/s: at most {:.2} ms CPU per order ({:.2}x now) and {:.1} ms mean latency ({:.2}x now)",
        bounds.cpu_budget_ms,
        bounds.cpu_budget_ms / cpu_ms,
        bounds.latency_budget_ms,
        bounds.latency_budget_ms / mean_ms
    );
}

#[cfg(test)]
mod tests {
    use super::GoalBounds;

    #[test]
    fn the_goal_bounds_follow_from_cpu_and_latency() {
        // 2 cores, 2.5 ms of CPU per order: 800 orders/s at most; 16 shoppers waiting 25 ms
        // on average: 640 orders/s. The goal needs 2 ms of CPU and 16 ms of latency.
        let bounds = GoalBounds::new(2.0, 2.5, 16.0, 25.0);
        assert_eq!(bounds.cpu_ceiling_per_s, 800.0);
        assert_eq!(bounds.latency_ceiling_per_s, 640.0);
        assert_eq!(bounds.cpu_budget_ms, 2.0);
        assert_eq!(bounds.latency_budget_ms, 16.0);
    }
}
