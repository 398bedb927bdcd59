//! Stamped workflow events and the order every fold sees them in.
//!
//! A workflow step is an immutable event stamped by the replica layer with a hybrid logical
//! clock, the origin actor and the origin's sequence number. Every fold in this crate sorts by
//! that stamp first, so the same set of events gives the same result on every node whatever
//! order they arrived in. The same operation delivered twice carries the same stamp and is
//! seen once.

use serde::{Deserialize, Serialize};

/// Where an event sits in the merged history: `(clock, actor, seq)`, compared in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// Hybrid logical clock of the origin when the event was made.
    pub clock: u64,
    /// The origin replica.
    pub actor: u64,
    /// Gapless sequence number at the origin.
    pub seq: u64,
}

impl Stamp {
    pub const fn new(clock: u64, actor: u64, seq: u64) -> Self {
        Self { clock, actor, seq }
    }
}

/// An event with its stamp.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamped<E> {
    pub stamp: Stamp,
    pub event: E,
}

impl<E> Stamped<E> {
    pub const fn new(stamp: Stamp, event: E) -> Self {
        Self { stamp, event }
    }
}

/// An event a fold kept in the history but did not apply, and why. Flagged events are shown
/// to people as conflicts to resolve; they are never dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Flag {
    pub stamp: Stamp,
    pub reason: String,
    pub reason_zh: String,
}

impl Flag {
    pub fn new(stamp: Stamp, reason: impl Into<String>, reason_zh: impl Into<String>) -> Self {
        Self {
            stamp,
            reason: reason.into(),
            reason_zh: reason_zh.into(),
        }
    }
}

/// The events sorted by stamp, each stamp once.
///
/// Two different events can only share a stamp in a corrupted log; the smaller event is kept
/// so that even then every node picks the same one.
pub fn in_order<E: Ord>(events: &[Stamped<E>]) -> Vec<&Stamped<E>> {
    let mut sorted: Vec<&Stamped<E>> = events.iter().collect();
    sorted.sort();
    sorted.dedup_by(|later, earlier| later.stamp == earlier.stamp);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_clock_then_actor_then_seq_and_drops_redeliveries() {
        let a = Stamped::new(Stamp::new(2, 1, 1), 'a');
        let b = Stamped::new(Stamp::new(1, 9, 9), 'b');
        let c = Stamped::new(Stamp::new(2, 0, 5), 'c');
        let events = vec![a.clone(), b.clone(), c.clone(), a.clone()];
        let order: Vec<char> = in_order(&events).iter().map(|s| s.event).collect();
        assert_eq!(order, vec!['b', 'c', 'a']);
    }
}
