//! The gateway binary: loads the config (TOML plus `RENDA_GATEWAY_*` environment overrides) and
//! serves HTTP until Ctrl-C.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "HTTP reports and exports in front of the city node")]
struct Args {
    /// The TOML config file.
    #[arg(long, short)]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    node_agent::install_crypto_provider();
    let args = Args::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = gateway::Config::load(&args.config, &env)?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, city = %config.city_grpc, "gateway listening");
    let app = gateway::App::connect(config)?;
    gateway::run(listener, app, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
