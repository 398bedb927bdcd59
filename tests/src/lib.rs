//! End-to-end tests of renda-mesh: real node processes on loopback with mutual TLS, links cut
//! and healed by a proxy the test controls, processes killed with SIGKILL and restarted.
//! The tests live in `tests/`; this library holds their harness.

pub mod cluster;
pub mod harness;
pub mod proxy;
