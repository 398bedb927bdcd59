//! The library behind the `node-agent` binary: the node's configuration, its certificates (issued
//! here, read by `renda-tls`), and the gRPC server that the node's services are plugged into.
//!
//! It holds no business rules and no replication logic: those live in the `renda-*` service
//! crates, which this crate only wires together.

pub mod certs;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod mesh;
pub mod node;
pub mod server;

pub use config::Config;
