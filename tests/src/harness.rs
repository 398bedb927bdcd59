//! The `main` of a multi-process test binary (`harness = false`): a node process when started
//! with [`NODE_ENV`](crate::cluster::NODE_ENV) set, otherwise a libtest-compatible runner of
//! its scenarios (through `libtest-mimic`), so `cargo test`, `cargo nextest` and IDEs can list,
//! filter and run them with the standard flags: `--list [--format terse] [--ignored]`,
//! positional filters, `--exact`, `--skip`, `--test-threads N`, `--nocapture`, `-q`.
//!
//! Scenarios may run in parallel: each starts its own nodes on ports the operating system
//! picks (`127.0.0.1:0`, read back from the node, see [`crate::cluster`]) with its own
//! temporary directory, and runs on its own tokio runtime.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

/// A scenario's body: an async function returning what failed.
pub type Body = fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;

/// One scenario: its name (the test's name for filters and `--exact`) and its body.
pub struct Scenario {
    pub name: &'static str,
    pub body: Body,
}

/// `scenarios![f, g]`: one [`Scenario`] per async function, named as the function.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        vec![$($crate::harness::Scenario {
            name: stringify!($name),
            body: || Box::pin($name()),
        }),*]
    };
}

pub fn main(scenarios: Vec<Scenario>) -> ExitCode {
    if let Ok(config) = std::env::var(crate::cluster::NODE_ENV) {
        return match crate::cluster::run_node(std::path::Path::new(&config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("node process failed: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    renda_tls::install_crypto_provider();
    let mut args = libtest_mimic::Arguments::from_args();
    // libtest reads RUST_TEST_THREADS when `--test-threads` is not given; libtest-mimic does not.
    if args.test_threads.is_none() {
        args.test_threads = std::env::var("RUST_TEST_THREADS")
            .ok()
            .and_then(|n| n.parse().ok());
    }
    let trials = scenarios
        .into_iter()
        .map(|Scenario { name, body }| libtest_mimic::Trial::test(name, move || run(body)))
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// Runs one scenario on a runtime of its own; the scenario's error, with its causes, is the
/// failure message.
fn run(body: Body) -> Result<(), libtest_mimic::Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime
        .block_on(body())
        .map_err(|error| format!("{error:#}").into())
}
