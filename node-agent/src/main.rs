//! `node-agent`: one program for every level of the mesh. See the library for what it does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use node_agent::certs::{self, Hosts};
use node_agent::{Config, Level, NodeIdentity, OrgCode};

#[derive(Parser)]
#[command(name = "node-agent", version, about = "A renda-mesh node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the city CA and node certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run the node until SIGTERM or ctrl-c.
    Run {
        /// The node's TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create a city CA: writes ca.pem and ca.key (mode 0600) into DIR.
    InitCa {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The city's six-digit code, e.g. 370200.
        #[arg(long)]
        city: OrgCode,
    },
    /// Sign a node certificate: writes <org>.pem, <org>.key (mode 0600) and ca.pem into DIR.
    Issue {
        /// The directory holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        #[arg(long)]
        org: OrgCode,
        #[arg(long, value_parser = parse_level)]
        level: Level,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A DNS name the node is reached at; repeat for several.
        #[arg(long)]
        dns: Vec<String>,
        /// An IP address the node is reached at; repeat for several.
        #[arg(long)]
        ip: Vec<IpAddr>,
    },
}

fn parse_level(text: &str) -> Result<Level, String> {
    text.parse()
        .map_err(|e: node_agent::identity::LevelError| e.to_string())
}

fn main() -> anyhow::Result<()> {
    node_agent::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Certs { command } => run_certs(command),
        Command::Run { config } => {
            let env: HashMap<String, String> = std::env::vars().collect();
            let config = Config::load(&config, &env)?;
            tokio::runtime::Runtime::new()
                .context("cannot start the tokio runtime")?
                .block_on(run(config))
        }
    }
}

fn run_certs(command: CertsCommand) -> anyhow::Result<()> {
    match command {
        CertsCommand::InitCa { out, city } => {
            let (cert, key) = certs::init_ca(&out, &city)?;
            println!("wrote {} and {}", cert.display(), key.display());
        }
        CertsCommand::Issue {
            ca,
            org,
            level,
            out,
            dns,
            ip,
        } => {
            let node = NodeIdentity::new(level, org)?;
            let (cert, key) = certs::issue(&ca, &node, &Hosts { dns, ips: ip }, &out)?;
            println!("wrote {} and {}", cert.display(), key.display());
        }
    }
    Ok(())
}

async fn run(config: Config) -> anyhow::Result<()> {
    let identity = &config.node.identity;
    let mut telemetry = renda_telemetry::Settings::new("node-agent");
    telemetry.otlp_endpoint = config.telemetry.otlp_endpoint.clone();
    telemetry.attributes = vec![
        ("renda.org_code".to_owned(), identity.org_code.to_string()),
        ("renda.level".to_owned(), identity.level.to_string()),
    ];
    let _telemetry = renda_telemetry::init(&telemetry)?;
    tracing::info!(org = %identity.org_code, level = %identity.level, "node-agent starting");

    // The sync, domain and console services are added to these routes as they are written.
    let services = tonic::service::Routes::default();
    node_agent::serve(&config, services, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
