//! Administrative division codes (行政区划代码) and the levels they name: the one `OrgCode` and
//! the one `Level` of the mesh.
//!
//! A code is 6 digits for a city (ending in `00`) or a county (区/县/县级市), 9 digits for a
//! township (乡/镇/街道), 12 for a village (村/社区). A unit's parent, level and subtree are read
//! from its code alone (`370202001` → `370202` → `370200`), so two nodes never disagree on the
//! shape of the tree. An `OrgCode` is a validated number (`Copy`, eight bytes), the compact form
//! the operation codec writes as a varint and the store keeps in integer columns; people,
//! certificates and configs see its decimal text.
//!
//! This crate is pure (no IO, no names of units, no org tree — that is `renda-domain`'s
//! `OrgTree`); it knows only what the digits say.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text or number is not an administrative division code, or a text not a level.
///
/// Every variant carries the value as it was given, so a message can name it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{value:?} is not an administrative division code: it must contain digits only")]
    NotDigits { value: String },
    #[error(
        "{value:?} is not an administrative division code: it must have 6, 9 or 12 digits, got {digits}"
    )]
    Length { value: String, digits: usize },
    #[error("{value:?} has no valid province prefix")]
    NoProvince { value: String },
    #[error("{value:?} is a province code; the mesh serves city level and below")]
    Province { value: String },
    #[error("{value:?} has a part ending in 000, which names no township or village")]
    EndsIn000 { value: String },
    #[error("{value:?} is not a level (city, county, township or village)")]
    Level { value: String },
}

impl Error {
    /// The value that was refused, as given.
    pub fn value(&self) -> &str {
        match self {
            Error::NotDigits { value }
            | Error::Length { value, .. }
            | Error::NoProvince { value }
            | Error::Province { value }
            | Error::EndsIn000 { value }
            | Error::Level { value } => value,
        }
    }

    /// The reason in Chinese, for people.
    pub fn reason_zh(&self) -> String {
        match self {
            Error::NotDigits { .. } => "行政区划代码只能包含数字".to_owned(),
            Error::Length { digits, .. } => {
                format!("行政区划代码须为6位、9位或12位，实际为{digits}位")
            }
            Error::NoProvince { value } => format!("{value} 的省级前缀无效"),
            Error::Province { value } => format!("{value} 为省级代码，本系统只服务市级及以下"),
            Error::EndsIn000 { value } => {
                format!("{value} 以000结尾，不是有效的乡镇或村级代码")
            }
            Error::Level { value } => {
                format!("{value} 不是有效的层级（city、county、township 或 village）")
            }
        }
    }
}

/// A validated 行政区划代码.
///
/// Valid codes are exactly: 6 digits not starting with `0` and not ending in `0000` (a province);
/// 9 digits whose first 6 are valid and that do not end in `000`; 12 digits whose first 9 are
/// valid and that do not end in `000`. A township may sit directly under a city that has no
/// counties (不设区的市, e.g. 东莞 `441900003`), so a 9-digit code may extend a city code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgCode(u64);

impl OrgCode {
    /// Accepts a number whose decimal form is a valid code (see the type's rules).
    pub fn new(code: u64) -> Result<Self, Error> {
        let digits = match code {
            100_000..=999_999 => 6,
            100_000_000..=999_999_999 => 9,
            100_000_000_000..=999_999_999_999 => 12,
            _ => {
                let value = code.to_string();
                let digits = value.len();
                return Err(Error::Length { value, digits });
            }
        };
        let county = code / 10u64.pow(digits - 6);
        if county.is_multiple_of(10_000) {
            return Err(Error::Province {
                value: code.to_string(),
            });
        }
        let township_ends_000 = digits >= 9 && (code / 10u64.pow(digits - 9)).is_multiple_of(1000);
        let village_ends_000 = digits == 12 && code.is_multiple_of(1000);
        if township_ends_000 || village_ends_000 {
            return Err(Error::EndsIn000 {
                value: code.to_string(),
            });
        }
        Ok(OrgCode(code))
    }

    /// Parses a code typed or pasted by a person: surrounding whitespace is ignored. Codes from
    /// machines (configs, certificates, the wire) go through the exact [`FromStr`].
    pub fn parse(raw: &str) -> Result<Self, Error> {
        raw.trim().parse()
    }

    /// The code as a number: the form the operation codec and integer columns hold.
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

    /// The level of the unit, read from the code: a 6-digit code ending in `00` is a city,
    /// any other 6-digit code a county, 9 digits a township, 12 a village.
    pub fn level(self) -> Level {
        match self.digits() {
            12 => Level::Village,
            9 => Level::Township,
            _ if self.0.is_multiple_of(100) => Level::City,
            _ => Level::County,
        }
    }

    /// The unit directly above: village → township → county (or a city without counties) →
    /// city; `None` for a city.
    pub fn parent(self) -> Option<OrgCode> {
        match self.level() {
            Level::Village | Level::Township => Some(OrgCode(self.0 / 1000)),
            Level::County => Some(OrgCode(self.0 / 100 * 100)),
            Level::City => None,
        }
    }

    /// All ancestors, nearest first.
    pub fn ancestors(self) -> Vec<OrgCode> {
        std::iter::successors(self.parent(), |code| code.parent()).collect()
    }

    /// The city (prefecture) this code lies in, e.g. `370200` for `370202001`.
    pub fn city(self) -> OrgCode {
        let county = self.0 / 10u64.pow(u32::from(self.digits()) - 6);
        OrgCode(county / 100 * 100)
    }

    /// The unit whose node holds this unit's records: itself, or for a village its township.
    pub fn node_unit(self) -> OrgCode {
        match self.level() {
            Level::Village => OrgCode(self.0 / 1000),
            _ => self,
        }
    }

    /// Whether `self` is `other` or one of its ancestors in the administrative tree.
    pub fn contains(self, other: OrgCode) -> bool {
        std::iter::successors(Some(other), |code| code.parent()).any(|code| code == self)
    }

    /// The numeric ranges (inclusive) holding the codes of `self` and every unit below it.
    ///
    /// They are contiguous by construction of the codes: a county's townships are its code
    /// followed by three digits, a city's counties its first four digits followed by two. The
    /// ranges may hold numbers that are not valid codes, never a valid code outside the
    /// subtree, so a column of valid codes filtered by them is exactly the subtree.
    pub fn subtree_ranges(self) -> Vec<(u64, u64)> {
        let o = self.0;
        match self.level() {
            Level::Village => vec![(o, o)],
            Level::Township => vec![(o, o), (o * 1000, o * 1000 + 999)],
            Level::County => vec![
                (o, o),
                (o * 1000, o * 1000 + 999),
                (o * 1_000_000, o * 1_000_000 + 999_999),
            ],
            Level::City => vec![
                (o, o + 99),
                (o * 1000, (o + 99) * 1000 + 999),
                (o * 1_000_000, (o + 99) * 1_000_000 + 999_999),
            ],
        }
    }
}

impl FromStr for OrgCode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::NotDigits {
                value: s.to_owned(),
            });
        }
        if !matches!(s.len(), 6 | 9 | 12) {
            return Err(Error::Length {
                value: s.to_owned(),
                digits: s.len(),
            });
        }
        if s.starts_with('0') {
            return Err(Error::NoProvince {
                value: s.to_owned(),
            });
        }
        let n = s.parse::<u64>().map_err(|_| Error::Length {
            value: s.to_owned(),
            digits: s.len(),
        })?;
        OrgCode::new(n)
    }
}

impl TryFrom<u64> for OrgCode {
    type Error = Error;
    fn try_from(code: u64) -> Result<Self, Error> {
        OrgCode::new(code)
    }
}

impl TryFrom<&str> for OrgCode {
    type Error = Error;
    fn try_from(raw: &str) -> Result<Self, Error> {
        raw.parse()
    }
}

impl TryFrom<String> for OrgCode {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self, Error> {
        raw.parse()
    }
}

impl From<OrgCode> for u64 {
    fn from(code: OrgCode) -> u64 {
        code.0
    }
}

impl From<OrgCode> for String {
    fn from(code: OrgCode) -> String {
        code.to_string()
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Text (`"370202"`) in human-readable formats (JSON, TOML); in binary formats (postcard, the
/// stored register states) a newtype around the number, byte for byte what a derived
/// `Serialize` on `struct OrgCode(u64)` wrote, so stored states stay readable.
impl Serialize for OrgCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_newtype_struct("OrgCode", &self.0)
        }
    }
}

impl<'de> Deserialize<'de> for OrgCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrgCode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an administrative division code")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OrgCode, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OrgCode, E> {
                OrgCode::new(v).map_err(E::custom)
            }

            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<OrgCode, D::Error> {
                let n = u64::deserialize(d)?;
                OrgCode::new(n).map_err(serde::de::Error::custom)
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Visitor)
        } else {
            deserializer.deserialize_newtype_struct("OrgCode", Visitor)
        }
    }
}

/// The level of an org unit. The mesh runs nodes at city, county and township level; villages
/// are units inside a township's node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    City,
    County,
    Township,
    Village,
}

impl Level {
    /// The lowercase name used in config files, certificates and the wire protocol.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::County => "county",
            Level::Township => "township",
            Level::Village => "village",
        }
    }

    /// The Chinese label shown to people.
    pub const fn label_zh(self) -> &'static str {
        match self {
            Level::City => "市",
            Level::County => "区(市)、县",
            Level::Township => "乡、镇、街道",
            Level::Village => "村、社区",
        }
    }

    /// Whether a node of the mesh can run at this level.
    pub const fn runs_node(self) -> bool {
        !matches!(self, Level::Village)
    }
}

impl FromStr for Level {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "city" => Ok(Level::City),
            "county" => Ok(Level::County),
            "township" => Ok(Level::Township),
            "village" => Ok(Level::Village),
            other => Err(Error::Level {
                value: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> OrgCode {
        raw.parse()
            .unwrap_or_else(|e| panic!("test code {raw}: {e}"))
    }

    #[test]
    fn codes_walk_up_the_tree() {
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
        assert!(!county.contains(code("370212001")));
        let village = code("370202001002");
        assert_eq!(village.level(), Level::Village);
        assert_eq!(
            village.ancestors(),
            vec![code("370202001"), code("370202"), code("370200")]
        );
        assert_eq!(village.node_unit(), code("370202001"));
        assert_eq!(village.city(), city);
        assert_eq!(city.city(), city);
    }

    #[test]
    fn township_under_a_city_without_counties() {
        assert_eq!(code("441900003").parent(), Some(code("441900")));
    }

    #[test]
    fn refuses_malformed_codes_naming_the_value() {
        for bad in [
            "37020",
            "3702020",
            "37020200a",
            "",
            "-370200",
            " 370200",
            "370000",
            "037020",
            "370202000",
            "370000001",
            "370202001000",
            "370202000001",
            "1234567",
        ] {
            let err = bad.parse::<OrgCode>().unwrap_err();
            assert_eq!(err.value(), bad, "{err}");
            assert!(!err.reason_zh().is_empty());
        }
        assert!(
            "1234567"
                .parse::<OrgCode>()
                .unwrap_err()
                .to_string()
                .contains("6, 9 or 12")
        );
        for bad in [0, 37_020, 370_000, 370_202_000, 1_000_000_000_000] {
            assert!(OrgCode::new(bad).is_err(), "{bad}");
        }
        assert_eq!(OrgCode::parse(" 370202 \n"), Ok(code("370202")));
    }

    #[test]
    fn text_and_number_agree() {
        for raw in ["370200", "370202", "370202001", "370202001002", "441900003"] {
            let c = code(raw);
            assert_eq!(c.to_string(), raw);
            assert_eq!(OrgCode::new(c.get()), Ok(c));
        }
    }

    #[test]
    fn subtree_ranges_agree_with_containment() {
        let codes = [
            370_200,
            370_202,
            370_212,
            370_300,
            370_202_001,
            370_202_999,
            370_212_001,
            370_202_001_001,
            370_299_999_999,
            370_300_001,
            441_900_003,
        ];
        for outer in codes {
            let outer = OrgCode::new(outer).unwrap();
            for inner in codes {
                let inner = OrgCode::new(inner).unwrap();
                let in_range = outer
                    .subtree_ranges()
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&inner.get()));
                assert_eq!(in_range, outer.contains(inner), "{outer} vs {inner}");
            }
        }
    }

    #[test]
    fn serde_is_text_for_people_and_the_old_newtype_in_binary() {
        let c = code("370202001");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"370202001\"");
        assert_eq!(serde_json::from_str::<OrgCode>("\"370202001\"").unwrap(), c);
        assert!(serde_json::from_str::<OrgCode>("\"12\"").is_err());

        // What `#[derive(Serialize)] struct OrgCode(u64)` wrote into stored states.
        #[derive(Serialize)]
        struct Old(u64);
        let old = postcard::to_stdvec(&Old(370_202_001)).unwrap();
        assert_eq!(postcard::to_stdvec(&c).unwrap(), old);
        assert_eq!(postcard::from_bytes::<OrgCode>(&old).unwrap(), c);
        let bad = postcard::to_stdvec(&Old(370_000)).unwrap();
        assert!(postcard::from_bytes::<OrgCode>(&bad).is_err());
    }

    #[test]
    fn levels_round_trip() {
        for level in [Level::City, Level::County, Level::Township, Level::Village] {
            assert_eq!(level.as_str().parse::<Level>(), Ok(level));
        }
        assert!(matches!(
            "province".parse::<Level>(),
            Err(Error::Level { .. })
        ));
        assert!(!Level::Village.runs_node());
    }
}
