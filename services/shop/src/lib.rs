//! Runs the store for real: any set of the six services in this process, over tokio
//! sockets, each with its own SQLite file in the data directory.

pub mod openapi;

use contracts::ServiceName;
use platform::auth::Secrets;
use platform::internal::Peers;
use platform::net::Listener;
use platform::real::{os_secret_hex, TokioNet};
use platform::storage::{Blocking, Db, StoreError};
use platform::{Deps, Net};
use registry::StoreConfig;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use tokio::sync::watch;

/// Whether the services record metrics (`shop --metrics on|off`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsSwitch {
    /// Every service records its metrics and serves them at `GET /metrics`.
    #[default]
    On,
    /// Nothing is recorded (`platform::metrics::Metrics::off`) and `GET /metrics` answers
    /// 404; the health endpoints answer as ever. For measuring what metrics cost.
    Off,
}

#[derive(Clone, Debug)]
pub struct ShopConfig {
    pub host: String,
    /// Port of the gateway; the others follow it (see [`ServiceName::port_offset`]).
    /// 0 lets every service pick a free port (only when all run in this process).
    pub base_port: u16,
    /// `None`: every database in memory (gone at exit).
    pub data_dir: Option<PathBuf>,
    pub services: Vec<ServiceName>,
    pub slot_capacity: i64,
    pub password_cost: gateway::PasswordCost,
    /// Stock of every demo product on first start, instead of the catalog's own.
    pub demo_stock: Option<i64>,
    /// Where other services are reached, where not at `host:base_port+offset` (one service
    /// per container: `(Order, "order:8081")`).
    pub peers: Vec<(ServiceName, String)>,
    pub metrics: MetricsSwitch,
}

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("cannot listen for {service} on {addr}: {source}")]
    Listen { service: &'static str, addr: String, source: std::io::Error },
    #[error("{service} database: {source}")]
    Store { service: &'static str, source: StoreError },
    #[error("data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("secrets file {path}: {detail}")]
    Secrets { path: PathBuf, detail: String },
    #[error("base port 0 needs all six services in one process")]
    EphemeralPortsNeedAllServices,
}

/// Opens the service's database: a file in the data directory, or memory. A file's commits
/// wait for their fsync off the async workers (`Blocking::OffWorker`): the shop's runtime is
/// multi-threaded.
pub fn open_db(data_dir: Option<&Path>, service: ServiceName) -> Result<Db, ShopError> {
    let migrations = registry::migrations(service);
    let opened = match data_dir {
        Some(dir) => Db::open_file(&dir.join(format!("{}.sqlite", service.as_str())), &migrations),
        None => Db::open_memory(&migrations),
    };
    let db = opened.map_err(|source| ShopError::Store { service: service.as_str(), source })?;
    Ok(db.with_blocking(Blocking::OffWorker))
}

/// The token secrets: from the environment if set, else from `secrets.json` in the data
/// directory (created on first start), so that separate `shop serve` processes sharing a
/// data directory agree. In memory mode they are random for this run. Fresh secrets come
/// straight from the operating system's generator (256 bits each).
pub fn load_secrets(data_dir: Option<&Path>, from_env: Option<Secrets>) -> Result<Secrets, ShopError> {
    if let Some(secrets) = from_env {
        return Ok(secrets);
    }
    let fresh = || [os_secret_hex(32), os_secret_hex(32)];
    let Some(dir) = data_dir else {
        let [user, service] = fresh();
        return Ok(Secrets { user_token_secret: user.into_bytes(), service_token_secret: service.into_bytes() });
    };
    let path = dir.join("secrets.json");
    let error = |detail: String| ShopError::Secrets { path: path.clone(), detail };
    if !path.exists() {
        let text = serde_json::to_string(&fresh()).map_err(|e| error(e.to_string()))?;
        create_exclusively(dir, &path, text.as_bytes()).map_err(|e| error(e.to_string()))?;
    }
    // Whoever created the file first won; every process reads the winner.
    let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
    let [user, service]: [String; 2] = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    Ok(Secrets { user_token_secret: user.into_bytes(), service_token_secret: service.into_bytes() })
}

/// Creates `path` with `contents`, readable by its owner only (0600), unless it exists: the
/// contents go to a private temporary file first (written and synced), which is then
/// hard-linked to `path` — a link never replaces an existing file, so of two processes
/// racing on an empty directory exactly one wins, and nobody ever sees a partial file.
fn create_exclusively(dir: &Path, path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary =
        dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("file"), os_secret_hex(16)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| match std::fs::hard_link(&temporary, path) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        linked => linked,
    });
    let _ = std::fs::remove_file(&temporary);
    linked
}

pub const DELIVERY_HORIZON_HOURS: i64 = 7 * 24;

impl ShopConfig {
    /// What the services are configured with (`registry::StoreConfig`): the demo catalog's
    /// own stock unless `demo_stock` overrides it, slots a week ahead.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            password_cost: self.password_cost,
            slot_capacity: self.slot_capacity,
            delivery_horizon_hours: DELIVERY_HORIZON_HOURS,
            stock: warehouse::DEMO_CATALOG.iter().map(|e| self.demo_stock.unwrap_or(e.stock)).collect(),
        }
    }
}

type ServiceFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Builds the future that runs one service (`registry::run`) until `shutdown` turns true.
/// With `admin` (the gateway's), it also serves its operator's routes (`/metrics`,
/// `/health/*`) there.
pub fn service_future(
    service: ServiceName,
    deps: Deps,
    listener: Box<dyn Listener>,
    admin: Option<Box<dyn Listener>>,
    config: &StoreConfig,
    shutdown: watch::Receiver<bool>,
) -> ServiceFuture {
    let admin = admin.map(|admin| {
        let env = &deps.env;
        let router = platform::server::ops_router(env, &deps.db);
        let limits = platform::server::SERVER_LIMITS;
        platform::server::serve(admin, router, limits, env.spawner, env.clock.clone(), stopped(shutdown.clone()))
    });
    let running = registry::run(service, deps, config, listener, stopped(shutdown));
    match admin {
        Some(admin) => Box::pin(async move {
            tokio::join!(running, admin);
        }),
        None => running,
    }
}

/// A started shop: where each service listens, and the futures that run them.
pub struct Started {
    pub peers: Peers,
    /// Where the gateway serves `/metrics` and `/health/*`, when it runs here.
    pub gateway_admin: Option<String>,
    pub services: Vec<(ServiceName, ServiceFuture)>,
}

/// Binds every selected service, opens its database and seeds the demo data.
pub async fn start(
    config: &ShopConfig,
    secrets: Secrets,
    shutdown: watch::Receiver<bool>,
) -> Result<Started, ShopError> {
    if config.base_port == 0 && config.services.len() != ServiceName::ALL.len() {
        return Err(ShopError::EphemeralPortsNeedAllServices);
    }
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir).map_err(|source| ShopError::DataDir { path: dir.clone(), source })?;
    }
    let net = TokioNet;
    let mut addresses: Vec<String> = ServiceName::ALL
        .iter()
        .map(|s| {
            format!("{}:{}", config.host, if config.base_port == 0 { 0 } else { config.base_port + s.port_offset() })
        })
        .collect();
    let mut listeners = Vec::new();
    for service in &config.services {
        let index = usize::from(service.port_offset());
        let listener = net.bind(&addresses[index]).await.map_err(|source| ShopError::Listen {
            service: service.as_str(),
            addr: addresses[index].clone(),
            source,
        })?;
        if let Ok(bound) = listener.local_addr() {
            addresses[index] = bound.to_string();
        }
        listeners.push((*service, listener));
    }
    for (service, address) in &config.peers {
        addresses[usize::from(service.port_offset())] = address.clone();
    }
    let mut gateway_admin = None;
    let mut admin_listener = None;
    if config.services.contains(&ServiceName::Gateway) {
        let port = if config.base_port == 0 { 0 } else { config.base_port + ServiceName::GATEWAY_ADMIN_PORT_OFFSET };
        let addr = format!("{}:{port}", config.host);
        let listener = net.bind(&addr).await.map_err(|source| ShopError::Listen {
            service: "gateway admin",
            addr: addr.clone(),
            source,
        })?;
        gateway_admin = Some(listener.local_addr().map_or(addr, |bound| bound.to_string()));
        admin_listener = Some(listener);
    }
    let peers = Peers::new(|service| addresses[service.index()].clone());
    let store_config = config.store_config();
    let mut services = Vec::new();
    for (service, listener) in listeners {
        let mut env = platform::real::real_env();
        if config.metrics == MetricsSwitch::Off {
            env.metrics = platform::metrics::Metrics::off();
        }
        let db = open_db(config.data_dir.as_deref(), service)?.with_metrics(env.metrics.clone(), env.clock.clone());
        registry::seed(service, &db, env.clock.now_utc(), &store_config)
            .map_err(|e| ShopError::Store { service: service.as_str(), source: e.into() })?;
        let deps = Deps { env, db, secrets: secrets.clone(), peers: peers.clone() };
        let admin = if service == ServiceName::Gateway { admin_listener.take() } else { None };
        services.push((service, service_future(service, deps, listener, admin, &store_config, shutdown.clone())));
    }
    Ok(Started { peers, gateway_admin, services })
}
