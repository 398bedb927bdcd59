//! The domain rules of renda-mesh: org units, deputies, stations, duty activities and points,
//! citizens' opinions, suggestions and motions, livelihood projects and their votes,
//! evaluations, and who may write what.
//!
//! This crate is pure: types validated at the edge (`parse`/`TryFrom`, refusing with an
//! [`Error`] that names the field, in English and Chinese), and deterministic folds that turn a
//! record's immutable workflow events into its status. It does no IO, holds no clock (the
//! caller passes every date and time in), and knows nothing of CRDTs, SQL, the network or
//! gRPC; the replica layer stamps events and the API layer maps errors to status codes.

pub mod activity;
pub mod error;
pub mod event;
pub mod opinion;
pub mod org;
pub mod period;
pub mod person;
pub mod project;
pub mod rates;
pub mod station;
pub mod suggestion;
pub mod text;

pub use error::{Error, Result};
