//! `shop`: runs the whole store (or one service of it) for real on this machine.

use clap::{Parser, Subcommand};
use contracts::ServiceName;
use platform::auth::Secrets;
use shop::{load_secrets, start, MetricsSwitch, ShopConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(name = "shop", about = "The online store: six services, each with its own SQLite database.")]
struct Cli {
    /// Address every service listens on.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Gateway port; order, billing, warehouse, delivery and notification take the next five.
    #[arg(long, default_value_t = 8080, global = true)]
    base_port: u16,
    /// Directory of the services' SQLite files (and the token secrets).
    #[arg(long, default_value = "data", global = true)]
    data_dir: PathBuf,
    /// Keep every database in memory instead (nothing survives a restart).
    #[arg(long, global = true)]
    memory: bool,
    /// Capacity of each hourly delivery slot created from now on.
    #[arg(long, default_value_t = 5, global = true)]
    slot_capacity: i64,
    /// Argon2id cost of password hashes: standard (OWASP baseline) or low (tests only).
    #[arg(long, default_value = "standard", global = true, value_parser = ["standard", "low"])]
    password_cost: String,
    /// Stock of every demo product when the catalog is first created.
    #[arg(long, global = true)]
    demo_stock: Option<i64>,
    /// Services to run in this process (comma-separated); default all six.
    #[arg(long, value_delimiter = ',', global = true)]
    services: Vec<String>,
    /// Where another service is reached, as SERVICE=HOST:PORT (comma-separated or repeated),
    /// when it runs elsewhere, e.g. `--peer order=order:8081` in a container.
    #[arg(long = "peer", value_delimiter = ',', global = true, value_parser = parse_peer)]
    peers: Vec<(ServiceName, String)>,
    /// Record metrics: on (each service serves them at GET /metrics) or off (nothing is
    /// recorded and GET /metrics answers 404; /health/* answer either way).
    #[arg(long, value_enum, default_value_t = MetricsSwitch::On, global = true)]
    metrics: MetricsSwitch,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a single service in this process (one service per container).
    Serve {
        /// gateway, order, billing, warehouse, delivery or notification
        service: String,
    },
    /// Write the OpenAPI documents (public and internal), generated from the code, and exit.
    Openapi {
        /// Directory of the documents.
        #[arg(long, default_value = "docs/openapi")]
        out: PathBuf,
    },
}

fn parse_peer(text: &str) -> Result<(ServiceName, String), String> {
    let (name, address) = text.split_once('=').ok_or_else(|| format!("expected SERVICE=HOST:PORT, got '{text}'"))?;
    let service = ServiceName::parse(name.trim()).ok_or_else(|| format!("unknown service '{name}'"))?;
    match address.trim().rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok((service, address.trim().into())),
        _ => Err(format!("expected HOST:PORT for {name}, got '{address}'")),
    }
}

fn parse_services(names: &[String]) -> Result<Vec<ServiceName>, String> {
    if names.is_empty() {
        return Ok(ServiceName::ALL.to_vec());
    }
    let mut services = Vec::new();
    for name in names {
        let service = ServiceName::parse(name.trim()).ok_or_else(|| {
            format!("unknown service '{name}': expected gateway, order, billing, warehouse, delivery or notification")
        })?;
        if !services.contains(&service) {
            services.push(service);
        }
    }
    Ok(services)
}

#[expect(clippy::disallowed_methods, reason = "the binary reads its configuration from the environment")]
fn secrets_from_env() -> Option<Secrets> {
    let user = std::env::var("SHOP_USER_TOKEN_SECRET").ok()?;
    let service = std::env::var("SHOP_SERVICE_TOKEN_SECRET").ok()?;
    Some(Secrets { user_token_secret: user.into_bytes(), service_token_secret: service.into_bytes() })
}

fn write_openapi(out: &std::path::Path) -> ExitCode {
    let written = std::fs::create_dir_all(out).and_then(|()| {
        for document in shop::openapi::documents() {
            std::fs::write(out.join(&document.file), shop::openapi::to_text(&document.openapi))?;
            println!("wrote {}", out.join(&document.file).display());
        }
        Ok(())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop: cannot write the OpenAPI documents to {}: {error}", out.display());
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let names = match &cli.command {
        Some(Command::Serve { service }) => vec![service.clone()],
        Some(Command::Openapi { out }) => return write_openapi(out),
        None => cli.services.clone(),
    };
    let services = match parse_services(&names) {
        Ok(services) => services,
        Err(message) => {
            eprintln!("shop: {message}");
            return ExitCode::from(2);
        }
    };
    let data_dir = (!cli.memory).then(|| cli.data_dir.clone());
    let config = ShopConfig {
        host: cli.host,
        base_port: cli.base_port,
        data_dir,
        services,
        slot_capacity: cli.slot_capacity,
        demo_stock: cli.demo_stock,
        peers: cli.peers,
        metrics: cli.metrics,
        password_cost: if cli.password_cost == "low" {
            gateway::PASSWORD_COST_LOW
        } else {
            gateway::PASSWORD_COST_STANDARD
        },
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ShopConfig) -> Result<(), shop::ShopError> {
    if let Some(dir) = &config.data_dir {
        std::fs::create_dir_all(dir).map_err(|source| shop::ShopError::DataDir { path: dir.clone(), source })?;
    }
    let secrets = load_secrets(config.data_dir.as_deref(), secrets_from_env())?;
    let (stop, shutdown) = watch::channel(false);
    let started = start(&config, secrets, shutdown).await?;
    let peers = &started.peers;
    let listening: Vec<String> = started
        .services
        .iter()
        .map(|(service, _)| format!("{service}={}", peers.address(*service)))
        .chain(started.gateway_admin.iter().map(|addr| format!("gateway-admin={addr}")))
        .collect();
    match &config.data_dir {
        Some(dir) => tracing::info!(data_dir = %dir.display(), "databases on disk"),
        None => tracing::info!("databases in memory"),
    }
    println!("shop ready: {}", listening.join(" "));
    let mut tasks = tokio::task::JoinSet::new();
    for (_, future) in started.services {
        platform::Spawner::Runtime.spawn_into(&mut tasks, future);
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
        _ = tasks.join_next() => tracing::warn!("a service stopped; shutting down"),
    }
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped; data kept");
    Ok(())
}
