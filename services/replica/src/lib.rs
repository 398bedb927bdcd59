//! The replicated-record core of renda-mesh: records as CRDTs, operations, hybrid clocks and
//! the compact operation encoding.
//!
//! This crate is pure. It does no IO, reads no clock and no entropy, and knows nothing of SQL,
//! tokio or the network: callers pass time and random bits in, and persist or send what it
//! hands back. `renda-store` makes it durable; `renda-sync` moves its operations.
//!
//! Each record is its own CRDT ([`Record`]), made of independent parts: each scalar field a
//! multi-value register `crdts::MVReg` ([`Register`]: every replica shows the same winner —
//! highest hybrid clock, then actor — and concurrent losers stay visible as conflicts until a
//! write that saw them); each membership an add-wins `crdts::Orswot` ([`MemberSet`]); workflow
//! steps immutable events in a grow-only `crdts::GSet`; deletion the soft-delete field
//! [`schema::DELETED`].
//! `crdts` is used only behind the [`Replicated`] and [`Materialise`] traits.

pub mod hlc;
pub mod ids;
pub mod op;
pub mod record;
pub mod replica;
pub mod schema;
#[doc(hidden)]
pub mod testkit;
pub mod value;
pub mod version;

pub use hlc::{Clock, Hlc, Observed};
pub use ids::{ActorId, Author, Level, OpId, OrgCode, RecordId};
pub use op::{Change, Op, OpError, Seen};
pub use record::{
    Applied, ApplyError, Envelope, Event, FieldView, Held, HoldKey, MemberSet, Received, Record,
    RecordView, Register, Stamp, Stamped, StateError, apply_put, apply_set_change, hold_key,
};
pub use replica::{Outcome, Replica};
pub use schema::{EventKindId, FieldId, KindId, Schema, SetId};
pub use value::{Value, ValueType};
pub use version::{ChangedHere, Version, VersionError};

/// A replicated data type driven by operations: our narrow waist over `crdts`.
pub trait Replicated {
    type Op;
    type Error;

    /// Applies one operation. Applying the same operation twice changes nothing.
    fn apply_op(&mut self, op: &Self::Op) -> Result<Applied, Self::Error>;

    /// Merges another replica's whole state into this one.
    fn merge(&mut self, other: Self);
}

/// Turns replicated state into the plain view that queries, reports and tests compare.
pub trait Materialise {
    type View;

    fn materialise(&self) -> Self::View;
}
