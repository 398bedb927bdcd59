//! The domain rules of renda-mesh: org units, deputies, stations, duty activities and points,
//! citizens' opinions, suggestions and motions, livelihood projects and their votes,
//! evaluations, and who may write what.
//!
//! This crate is pure: types validated at the edge (`parse`/`TryFrom`, refusing with an
//! [`Error`] that names the field, in English and Chinese), and deterministic folds that turn a
//! record's immutable workflow events into its status. It does no IO, holds no clock (the
//! caller passes every date and time in), and knows nothing of CRDTs, SQL, the network or
//! gRPC; the replica layer stamps events and the API layer maps errors to status codes.
//!
//! Code map: [`org`] (行政区划代码 and the org tree), [`person`] (deputies, masked ID-card and
//! phone numbers), [`station`] (家站点 and 八有四公开), [`activity`] (发单/接单/签到, duty
//! records, derived points and rankings), [`opinion`] (社情民意 and escalation), [`suggestion`]
//! (议案建议 from submission to closing, deadlines, overdue), [`rates`] (every rate with its
//! definition), [`project`] (民生实事票决 and the tally), [`evaluation`] (述职, 测评, 通报,
//! 工作评议), [`authority`] (who may write what), [`event`] (stamps and the order every fold
//! uses), [`period`] and [`text`] (shared validation).
//!
//! Invariant: every fold sorts its events by [`event::Stamp`] before looking at them, so the
//! same set of events gives the same result on every node; a step that is not allowed where
//! it sorts is kept and flagged, never silently dropped.

pub mod activity;
pub mod authority;
pub mod error;
pub mod evaluation;
pub mod event;
pub mod opinion;
pub mod org;
pub mod period;
pub mod person;
pub mod project;
pub mod rates;
pub mod record;
pub mod report;
pub mod station;
pub mod suggestion;
pub mod text;

pub use error::{Error, Result};
