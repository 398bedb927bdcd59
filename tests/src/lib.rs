//! End-to-end tests of renda-mesh: real node processes on loopback with mutual TLS, links cut
//! and healed by a proxy the test controls, processes killed with SIGKILL and restarted.
//! The tests live in `tests/`; this library holds what they share: the harness of the
//! multi-process binaries, the cluster of node processes, the proxy, the org units the
//! scenarios use, and the one way to wait for something.

pub mod cluster;
pub mod harness;
pub mod orgs;
pub mod proxy;
pub mod wait;
