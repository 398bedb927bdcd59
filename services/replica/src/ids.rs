//! Identifiers minted without a central allocator.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

pub use renda_org::{Level, OrgCode};

/// One replica database. A restored backup or a cloned disk must mint a new one.
///
/// Actors are random 48-bit numbers: small on the wire (7 bytes as a varint) and, with the
/// few thousand replicas a province runs, unlikely to collide (about 1 in 50 million for
/// 10,000 actors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId(pub u64);

impl ActorId {
    /// Largest actor number (48 bits).
    pub const MAX: u64 = (1 << 48) - 1;

    /// Builds an actor from random bits supplied by the caller (the core reads no entropy).
    pub fn from_random(bits: u64) -> Self {
        // Zero is reserved so that a missing actor never looks like a real one.
        ActorId((bits & Self::MAX).max(1))
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

/// A record's id, minted where the record is created (UUIDv7 by convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub Uuid);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of one operation: its origin replica and its place in that replica's log.
///
/// `seq` is gapless per origin: the origin assigns it in the same transaction as the local
/// apply, so a receiver can tell exactly which operations of an origin it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId {
    pub origin: ActorId,
    pub seq: u64,
}

/// The person who made a change: user number `number` registered at org unit `org`.
///
/// Users are numbered by the node of the org unit that creates them (the authority that owns
/// that sequence), so the pair is unique mesh-wide without a central allocator, and it costs a
/// byte or two on the wire. Number 0 is the node itself (system changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Author {
    pub org: OrgCode,
    pub number: u32,
}

impl Author {
    pub fn system(org: OrgCode) -> Self {
        Author { org, number: 0 }
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.org, self.number)
    }
}
