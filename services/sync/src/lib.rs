//! The replication protocol of renda-mesh: sync sessions between a child node and its parent,
//! the scope of what goes down, the authority check on what comes in, the retry loop with
//! upstream fallback, per-peer sync state, and signed change bundles for sneakernet.
//!
//! It moves encoded operations between `renda-store`s over the `renda.sync.v1` gRPC service;
//! it does not decide what a record means (that is `renda-domain`) nor how TLS certificates
//! are made (that is `node-agent`): the binary hands it ready channels and a way to name the
//! peer behind a request.

pub mod agent;
pub mod authority;
pub mod bundle;
pub mod client;
pub mod server;
pub mod session;
pub mod status;

pub use agent::{Agent, AgentConfig, Handle, Upstream};
pub use authority::{DomainRule, Policy};
pub use server::{Identify, Peer, Replication};
pub use session::child::SessionReport;
pub use status::StatusBook;

/// Version of the replication protocol; a peer speaking another is refused at the handshake.
pub const PROTOCOL_VERSION: u32 = 1;

/// The status code a parent answers a protocol or schema version mismatch with, and nothing
/// else: a child reads the code, never the message, to tell a mismatch from a refusal.
pub(crate) const VERSION_MISMATCH: tonic::Code = tonic::Code::FailedPrecondition;

/// Errors of a sync session or a bundle, as the side that meets them reports them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {peer} failed: {reason}")]
    Connect { peer: String, reason: String },
    /// The peer could not be reached at all (no route, nothing listening, TLS failed).
    #[error("cannot reach {peer}: {reason}")]
    Unreachable { peer: String, reason: String },
    /// The connection broke off in the middle of a session; what was acknowledged stays.
    #[error("the connection to {peer} broke off during the session: {reason}")]
    Dropped { peer: String, reason: String },
    /// The peer answered and refused, by policy or because what was sent was not acceptable.
    #[error("{peer} refused the session: {message}")]
    Refused { peer: String, message: String },
    /// The peer speaks another protocol or schema version (upgrade order: README).
    #[error("{peer} runs another version: {detail}")]
    VersionMismatch { peer: String, detail: String },
    #[error("{peer} answered out of protocol: {reason}")]
    Protocol { peer: String, reason: String },
    #[error("storage failed: {0}")]
    Store(#[from] renda_store::Error),
    #[error("bundle {path}: {reason}")]
    Bundle { path: String, reason: String },
}

/// Milliseconds since the Unix epoch, for sync-state timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
