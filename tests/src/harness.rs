//! The `main` of a multi-process test binary: a node process when started with
//! [`NODE_ENV`](crate::cluster::NODE_ENV) set, otherwise the runner of its scenarios (those named
//! on the command line, or all), exiting non-zero if any fails.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

/// One scenario: its name and how to start it.
pub type Scenario = (
    &'static str,
    fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>>>>,
);

pub fn main(scenarios: &[Scenario]) -> ExitCode {
    if let Ok(config) = std::env::var(crate::cluster::NODE_ENV) {
        return match crate::cluster::run_node(std::path::Path::new(&config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("node process failed: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    node_agent::install_crypto_provider();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = 0;
    let mut ran = 0;
    for (name, scenario) in scenarios {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        match runtime.block_on(scenario()) {
            Ok(()) => println!("test {name} ... ok"),
            Err(error) => {
                failed += 1;
                println!("test {name} ... FAILED\n{error:#}");
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        ran - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
