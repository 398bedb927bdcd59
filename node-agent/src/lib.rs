//! The library behind the `node-agent` binary: the node's configuration, its certificates, mutual
//! TLS between nodes with the peer identity they carry, and the gRPC server that the node's
//! services are plugged into.
//!
//! It holds no business rules and no replication logic: those live in the `renda-*` service
//! crates, which this crate only wires together.

pub mod certs;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod identity;
pub mod mesh;
pub mod node;
pub mod server;
pub mod tls;

pub use config::Config;
pub use identity::{Level, NodeIdentity, OrgCode};

/// Installs ring as the process-wide rustls crypto provider. Call once at the start of `main`
/// and of every test binary that uses TLS; calling again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
