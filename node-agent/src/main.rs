//! `node-agent`: one program for every level of the mesh. See the library for what it does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use node_agent::Config;
use node_agent::certs::{self, Hosts};
use renda_tls::{Level, NodeIdentity, OrgCode};

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
    /// Show the sync state of a running node and of every node below it.
    Status {
        #[arg(long)]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Carry changes on removable media when a node has no link at all.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Org units: the city's reference data (行政区划).
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Users of the consoles and the gateway.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run a demo mesh on loopback: one city, two counties, four townships, real mutual TLS,
    /// SQLite files in a temporary folder. Takes a township offline, edits the same records
    /// there and at its county, brings it back, and prints what converged.
    Demo {
        /// Keep the demo's folder (certificates, databases) here instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Write the operations the node `--to` lacks into FILE, signed with this node's key.
    /// `--to` is this node's parent (everything not yet acknowledged) or a unit below it (its
    /// scope since the last bundle; `--full` for all of it).
    Export {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        to: renda_replica::OrgCode,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        full: bool,
    },
    /// Verify a bundle completely, then apply it with the same checks as a live sync.
    Import {
        #[arg(long)]
        config: PathBuf,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Write the units of a `code,name` list (UTF-8, one unit a line) at this node; they go
    /// down to every node. Checked whole first: one bad line and nothing is written.
    Import {
        #[arg(long)]
        config: PathBuf,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Make a user at this node: the first administrator of a deployment. The password comes
    /// from RENDA_NEW_USER_PASSWORD or the first line of standard input.
    Add {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        login: String,
        /// city_office, county_office, township_clerk or read_only.
        #[arg(long)]
        role: String,
        /// The user's org unit (this node's unit or below); this node's unit if absent.
        #[arg(long)]
        org: Option<String>,
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
    /// Sign the city gateway's client certificate (`renda://gateway/<city>`, accepted by nodes
    /// for reports and log-in only): writes gateway-<city>.pem, .key (mode 0600) and ca.pem.
    IssueGateway {
        /// The directory holding ca.pem and ca.key.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn parse_level(text: &str) -> Result<Level, String> {
    text.parse().map_err(|e: renda_org::Error| e.to_string())
}

/// An operator sees one line saying what failed; the chain with a backtrace only on request
/// (`RENDA_ERROR_DETAIL=1`), whatever `RUST_BACKTRACE` says.
fn main() -> std::process::ExitCode {
    match run_command() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if std::env::var_os("RENDA_ERROR_DETAIL").is_some_and(|v| v == "1") {
                eprintln!("{e:?}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command() -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = || tokio::runtime::Runtime::new().context("cannot start the tokio runtime");
    let load = |path: &PathBuf| -> anyhow::Result<Config> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Ok(Config::load(path, &env)?)
    };
    match cli.command {
        Command::Certs { command } => run_certs(command),
        Command::Run { config } => {
            let config = load(&config)?;
            runtime()?.block_on(run(config))
        }
        Command::Status { config, json } => {
            let config = load(&config)?;
            runtime()?.block_on(node_agent::cli::status(&config, json))
        }
        Command::Bundle { command } => match command {
            BundleCommand::Export {
                config,
                to,
                out,
                full,
            } => {
                let config = load(&config)?;
                runtime()?.block_on(node_agent::cli::bundle_export(&config, to, &out, full))
            }
            BundleCommand::Import { config, file } => {
                let config = load(&config)?;
                runtime()?.block_on(node_agent::cli::bundle_import(&config, &file))
            }
        },
        Command::Org {
            command: OrgCommand::Import { config, file },
        } => {
            let config = load(&config)?;
            runtime()?.block_on(node_agent::cli::org_import(&config, &file))
        }
        Command::User {
            command:
                UserCommand::Add {
                    config,
                    login,
                    role,
                    org,
                },
        } => {
            let config = load(&config)?;
            runtime()?.block_on(node_agent::cli::user_add(
                &config,
                &login,
                &role,
                org.as_deref(),
            ))
        }
        Command::Demo { keep } => runtime()?.block_on(node_agent::demo::run(keep)),
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
        CertsCommand::IssueGateway { ca, out } => {
            let (cert, key) = certs::issue_gateway(&ca, &out)?;
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

    let (node, task) = node_agent::node::start(
        &config,
        node_agent::domain::deputy_work(),
        shutdown_signal(),
    )
    .await?;
    tracing::info!(grpc = %node.grpc_addr, actor = %node.store.actor(), "node-agent serving");
    task.await.context("the server task failed")??;
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
