//! Identifiers minted without a central allocator.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

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

/// 行政区划代码: 6 digits for a city or county, 9 for a township, 12 for a village.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrgCode(u64);

/// Why a string or number is not an administrative division code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a 6, 9 or 12 digit administrative division code")]
pub struct OrgCodeError {
    pub value: String,
}

impl OrgCode {
    /// Accepts a number whose decimal form has 6, 9 or 12 digits.
    pub fn new(code: u64) -> Result<Self, OrgCodeError> {
        match code {
            100_000..=999_999 | 100_000_000..=999_999_999 | 100_000_000_000..=999_999_999_999 => {
                Ok(OrgCode(code))
            }
            _ => Err(OrgCodeError {
                value: code.to_string(),
            }),
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Number of digits: 6, 9 or 12.
    pub fn digits(self) -> u8 {
        match self.0 {
            0..=999_999 => 6,
            1_000_000..=999_999_999 => 9,
            _ => 12,
        }
    }

    /// The level of the unit, read from the code: a 6-digit code ending in "00" is a city,
    /// any other 6-digit code a county (区/县/县级市), 9 digits a township, 12 a village.
    pub fn level(self) -> Level {
        match self.digits() {
            12 => Level::Village,
            9 => Level::Township,
            _ if self.0.is_multiple_of(100) => Level::City,
            _ => Level::County,
        }
    }

    /// The unit directly above: village → township → county → city; `None` for a city
    /// (6 digits ending in "00") and for anything above.
    pub fn parent(self) -> Option<OrgCode> {
        match self.digits() {
            12 => Some(OrgCode(self.0 / 1000)),
            9 => Some(OrgCode(self.0 / 1000)),
            _ if !self.0.is_multiple_of(100) => Some(OrgCode(self.0 / 100 * 100)),
            _ => None,
        }
    }

    /// Whether `self` is `other` or one of its ancestors in the administrative tree.
    pub fn contains(self, other: OrgCode) -> bool {
        let mut cursor = Some(other);
        while let Some(code) = cursor {
            if code == self {
                return true;
            }
            cursor = code.parent();
        }
        false
    }
}

impl std::str::FromStr for OrgCode {
    type Err = OrgCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || OrgCodeError {
            value: s.to_string(),
        };
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        s.parse::<u64>()
            .map_err(|_| err())
            .and_then(|n| OrgCode::new(n).map_err(|_| err()))
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The level of an org unit in the administrative tree; a node runs at city, county or
/// township level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    City,
    County,
    Township,
    Village,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::County => "county",
            Level::Township => "township",
            Level::Village => "village",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "city" => Ok(Level::City),
            "county" => Ok(Level::County),
            "township" => Ok(Level::Township),
            "village" => Ok(Level::Village),
            other => Err(format!(
                "{other:?} is not a level (city, county, township or village)"
            )),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_codes_walk_up_the_tree() {
        let township = OrgCode::new(370_202_001).unwrap();
        let county = township.parent().unwrap();
        assert_eq!(county.get(), 370_202);
        let city = county.parent().unwrap();
        assert_eq!(city.get(), 370_200);
        assert_eq!(city.parent(), None);
        assert_eq!(township.level(), Level::Township);
        assert_eq!(county.level(), Level::County);
        assert_eq!(city.level(), Level::City);
        assert!(city.contains(township));
        assert!(!township.contains(city));
        let other = OrgCode::new(370_212_001).unwrap();
        assert!(!county.contains(other));
    }

    #[test]
    fn org_codes_refuse_wrong_lengths() {
        for bad in ["37020", "3702020", "37020200a", "", "-370200"] {
            let err = bad.parse::<OrgCode>().unwrap_err();
            assert_eq!(err.value, bad);
        }
        assert!("370202001002".parse::<OrgCode>().is_ok());
    }
}
