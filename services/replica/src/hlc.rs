//! A hybrid logical clock (Kulkarni et al.) with remote times clamped.
//!
//! The core never reads the wall clock: callers pass the current physical time in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A hybrid logical clock reading: physical milliseconds since the Unix epoch and a logical
/// counter that orders events within one millisecond. Ordered by (physical, logical).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Hlc {
    pub physical_ms: u64,
    pub logical: u32,
}

impl Hlc {
    pub const ZERO: Hlc = Hlc {
        physical_ms: 0,
        logical: 0,
    };

    pub fn new(physical_ms: u64, logical: u32) -> Self {
        Hlc {
            physical_ms,
            logical,
        }
    }

    /// Packs the reading into one ordered integer (48 bits of milliseconds, 16 logical bits),
    /// for storage columns that sort like the clock.
    pub fn to_u64(self) -> u64 {
        (self.physical_ms << 16) | u64::from(self.logical.min(u32::from(u16::MAX)))
    }

    pub fn from_u64(packed: u64) -> Self {
        Hlc {
            physical_ms: packed >> 16,
            logical: (packed & 0xffff) as u32,
        }
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

/// What [`Clock::observe`] did with a remote reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The remote reading was within the allowed drift and was merged.
    Merged,
    /// The remote reading was more than the allowed drift ahead of local time; the local clock
    /// advanced only to the drift limit.
    Clamped { remote: Hlc, limit_ms: u64 },
}

/// The clock of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    last: Hlc,
    max_drift_ms: u64,
}

impl Clock {
    /// Default tolerated drift: five minutes. A node whose clock is further ahead cannot drag
    /// the clocks of the nodes it syncs with into its future.
    pub const DEFAULT_MAX_DRIFT_MS: u64 = 5 * 60 * 1000;

    pub fn new(last: Hlc, max_drift_ms: u64) -> Self {
        Clock { last, max_drift_ms }
    }

    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A reading for a local event at physical time `now_ms`, strictly after every reading
    /// this clock has issued or observed.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        self.last = if now_ms > self.last.physical_ms {
            Hlc::new(now_ms, 0)
        } else {
            Hlc::new(self.last.physical_ms, self.last.logical.saturating_add(1))
        };
        self.last
    }

    /// Merges a remote reading, so later local events order after it. A remote reading more
    /// than `max_drift_ms` ahead of `now_ms` is clamped to that limit: the local clock does not
    /// follow a wrong clock into the future, and the caller is told so it can log and count it.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Observed {
        let limit_ms = now_ms.saturating_add(self.max_drift_ms);
        let (effective, outcome) = if remote.physical_ms > limit_ms {
            (
                Hlc::new(limit_ms, 0),
                Observed::Clamped { remote, limit_ms },
            )
        } else {
            (remote, Observed::Merged)
        };
        if effective > self.last {
            self.last = effective;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_time_stands_still_or_goes_back() {
        let mut clock = Clock::new(Hlc::ZERO, Clock::DEFAULT_MAX_DRIFT_MS);
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(900);
        assert!(a < b && b < c, "{a} {b} {c}");
        let d = clock.tick(2_000);
        assert_eq!(d, Hlc::new(2_000, 0));
    }

    #[test]
    fn a_remote_reading_within_drift_is_merged() {
        let mut clock = Clock::new(Hlc::ZERO, 10_000);
        assert_eq!(clock.observe(Hlc::new(5_000, 3), 1_000), Observed::Merged);
        assert!(clock.tick(1_000) > Hlc::new(5_000, 3));
    }

    #[test]
    fn a_clock_far_in_the_future_is_clamped() {
        let mut clock = Clock::new(Hlc::ZERO, 10_000);
        let year_ahead = Hlc::new(1_000 + 365 * 24 * 3600 * 1000, 0);
        let outcome = clock.observe(year_ahead, 1_000);
        assert_eq!(
            outcome,
            Observed::Clamped {
                remote: year_ahead,
                limit_ms: 11_000
            }
        );
        let next = clock.tick(1_000);
        assert!(
            next < year_ahead,
            "local clock followed the wrong clock: {next}"
        );
        assert!(next.physical_ms <= 11_000);
    }

    #[test]
    fn packing_preserves_order() {
        let a = Hlc::new(1_700_000_000_000, 5);
        let b = Hlc::new(1_700_000_000_000, 6);
        let c = Hlc::new(1_700_000_000_001, 0);
        assert!(a.to_u64() < b.to_u64() && b.to_u64() < c.to_u64());
        assert_eq!(Hlc::from_u64(a.to_u64()), a);
    }
}
