//! The gateway binary: loads the config (TOML plus `RENDA_GATEWAY_*` environment overrides) and
//! serves HTTP until SIGTERM (systemd's stop) or Ctrl-C, then drains the requests under way.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(about = "HTTP reports and exports in front of the city node")]
struct Args {
    /// The TOML config file.
    #[arg(long, short)]
    config: PathBuf,
}

/// An operator sees one line saying what failed; the chain with a backtrace only on request
/// (`RENDA_ERROR_DETAIL=1`), whatever `RUST_BACKTRACE` says.
fn main() -> ExitCode {
    let run =
        || -> anyhow::Result<()> { tokio::runtime::Runtime::new()?.block_on(serve(Args::parse())) };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if std::env::var_os("RENDA_ERROR_DETAIL").is_some_and(|v| v == "1") {
                eprintln!("{e:?}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    renda_tls::install_crypto_provider();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = gateway::Config::load(&args.config, &env)?;
    // The one place that installs tracing: no colour codes unless stdout is a terminal, OTLP
    // export when configured.
    let mut settings = renda_telemetry::Settings::new("gateway");
    settings.otlp_endpoint = config.otlp_endpoint.clone();
    let _telemetry = renda_telemetry::init(&settings)?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, city = %config.city_grpc, "gateway listening");
    let app = gateway::App::connect(config)?;
    gateway::run(listener, app, stop_signal()).await?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the gateway");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => tracing::info!("SIGTERM: draining requests under way"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: draining requests under way"),
    }
}
