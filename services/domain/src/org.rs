//! Org units (行政区划) and the org tree every node holds as reference data.
//!
//! An [`OrgCode`] is the administrative division code: 6 digits for a city (ending in `00`) or
//! a county, 9 digits for a township, 12 for a village. The parent of a unit is derived from
//! its code alone (`370202001` → `370202` → `370200`), so two nodes never disagree on the
//! shape of the tree; the [`OrgTree`] adds names and refuses units whose parent it lacks.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, text};

/// Level of an org unit. The mesh runs nodes at city, county and township level; villages are
/// units inside a township's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrgLevel {
    City,
    County,
    Township,
    Village,
}

impl OrgLevel {
    /// The Chinese label shown to people.
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::City => "市",
            Self::County => "区(市)、县",
            Self::Township => "乡、镇、街道",
            Self::Village => "村、社区",
        }
    }

    /// Whether a node of the mesh can run at this level.
    pub const fn runs_node(self) -> bool {
        !matches!(self, Self::Village)
    }
}

/// A validated 行政区划代码.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgCode(String);

impl OrgCode {
    /// Parses and validates a code.
    pub fn parse(raw: &str) -> Result<Self> {
        let code = raw.trim();
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                "org_code",
                "must contain digits only",
                "行政区划代码只能包含数字",
            ));
        }
        match code.len() {
            6 => {
                if code.ends_with("0000") {
                    return Err(Error::invalid(
                        "org_code",
                        format!("{code} is a province code; the mesh serves city level and below"),
                        format!("{code} 为省级代码，本系统只服务市级及以下"),
                    ));
                }
                if code.starts_with('0') {
                    return Err(Error::invalid(
                        "org_code",
                        format!("{code} has no valid province prefix"),
                        format!("{code} 的省级前缀无效"),
                    ));
                }
            }
            9 | 12 => {
                if code.ends_with("000") {
                    return Err(Error::invalid(
                        "org_code",
                        format!("{code} ends in 000, which names no township or village"),
                        format!("{code} 以000结尾，不是有效的乡镇或村级代码"),
                    ));
                }
                // The prefix must itself be a valid county (or township) code.
                Self::parse(&code[..code.len() - 3])?;
                // A township may sit directly under a city that has no counties
                // (不设区的市, e.g. 东莞 441900003), so a city prefix is accepted.
            }
            n => {
                return Err(Error::invalid(
                    "org_code",
                    format!("must have 6, 9 or 12 digits, got {n}"),
                    format!("行政区划代码须为6位、9位或12位，实际为{n}位"),
                ));
            }
        }
        Ok(Self(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The level, from the code's length and shape.
    pub fn level(&self) -> OrgLevel {
        match self.0.len() {
            6 if self.0.ends_with("00") => OrgLevel::City,
            6 => OrgLevel::County,
            9 => OrgLevel::Township,
            _ => OrgLevel::Village,
        }
    }

    /// The parent unit derived from the code; a city has none.
    pub fn parent(&self) -> Option<Self> {
        match self.level() {
            OrgLevel::City => None,
            OrgLevel::County => Some(Self(format!("{}00", &self.0[..4]))),
            OrgLevel::Township | OrgLevel::Village => {
                Some(Self(self.0[..self.0.len() - 3].to_owned()))
            }
        }
    }

    /// All ancestors, nearest first.
    pub fn ancestors(&self) -> Vec<Self> {
        let mut out = Vec::new();
        let mut current = self.parent();
        while let Some(code) = current {
            current = code.parent();
            out.push(code);
        }
        out
    }

    /// Whether `self` is `other` or one of its ancestors, by code alone.
    pub fn is_same_or_ancestor_of(&self, other: &Self) -> bool {
        self == other || other.ancestors().contains(self)
    }

    /// The unit whose node holds this unit's records: itself, or for a village its township.
    pub fn node_unit(&self) -> Self {
        match self.level() {
            OrgLevel::Village => self.parent().unwrap_or_else(|| self.clone()),
            _ => self.clone(),
        }
    }
}

impl TryFrom<String> for OrgCode {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl TryFrom<&str> for OrgCode {
    type Error = Error;
    fn try_from(raw: &str) -> Result<Self> {
        Self::parse(raw)
    }
}

impl From<OrgCode> for String {
    fn from(code: OrgCode) -> Self {
        code.0
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A named org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnit {
    pub code: OrgCode,
    pub name: String,
}

impl OrgUnit {
    pub fn level(&self) -> OrgLevel {
        self.code.level()
    }
}

/// The org tree: reference data, the same on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgTree {
    units: BTreeMap<OrgCode, OrgUnit>,
}

impl OrgTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a unit. A city is a root; every other unit needs its parent in the tree already.
    /// Adding the same code with the same name again changes nothing. A unit known only by its
    /// code (named by it, as a node knows its own unit and ancestors before their records
    /// arrive) takes the name it is added with.
    pub fn add(&mut self, code: OrgCode, name: &str) -> Result<()> {
        let name = text::bounded("name", name, 2, 50)?;
        if let Some(existing) = self.units.get_mut(&code) {
            if existing.name == name {
                return Ok(());
            }
            if existing.name == existing.code.as_str() {
                existing.name = name;
                return Ok(());
            }
            return Err(Error::precondition(
                "org_code",
                format!("{code} is already in the tree under another name"),
                format!("{code} 已以其他名称存在"),
            ));
        }
        if let Some(parent) = code.parent()
            && !self.units.contains_key(&parent)
        {
            return Err(Error::precondition(
                "org_code",
                format!("parent {parent} of {code} is not in the tree"),
                format!("{code} 的上级单位 {parent} 不在组织树中"),
            ));
        }
        self.units.insert(code.clone(), OrgUnit { code, name });
        Ok(())
    }

    /// Every unit as `(code, name)`: the form an org-unit list is imported in.
    pub fn named_units(&self) -> Vec<(OrgCode, String)> {
        self.units()
            .map(|u| (u.code.clone(), u.name.clone()))
            .collect()
    }

    pub fn get(&self, code: &OrgCode) -> Option<&OrgUnit> {
        self.units.get(code)
    }

    pub fn has(&self, code: &OrgCode) -> bool {
        self.units.contains_key(code)
    }

    /// Looks a unit up, refusing an unknown code with the field name given.
    pub fn require(&self, field: &str, code: &OrgCode) -> Result<&OrgUnit> {
        self.units.get(code).ok_or_else(|| {
            Error::invalid(
                field,
                format!("org unit {code} is not in the tree"),
                format!("组织单位 {code} 不在组织树中"),
            )
        })
    }

    /// Whether `descendant` is `ancestor` or lies below it; both must be in the tree.
    pub fn contains(&self, ancestor: &OrgCode, descendant: &OrgCode) -> bool {
        self.has(ancestor) && self.has(descendant) && ancestor.is_same_or_ancestor_of(descendant)
    }

    /// The direct children of a unit, in code order.
    pub fn children(&self, code: &OrgCode) -> Vec<&OrgUnit> {
        self.units
            .values()
            .filter(|u| u.code.parent().as_ref() == Some(code))
            .collect()
    }

    /// Every unit in the subtree of `code` (itself included), in code order.
    pub fn subtree(&self, code: &OrgCode) -> Vec<&OrgUnit> {
        self.units
            .values()
            .filter(|u| code.is_same_or_ancestor_of(&u.code))
            .collect()
    }

    pub fn units(&self) -> impl Iterator<Item = &OrgUnit> {
        self.units.values()
    }

    /// A small tree for demos and tests: 青岛市 with two districts of two streets each.
    pub fn demo() -> Self {
        const UNITS: [(&str, &str); 7] = [
            ("370200", "青岛市"),
            ("370202", "市南区"),
            ("370202001", "八大峡街道"),
            ("370202002", "云南路街道"),
            ("370212", "崂山区"),
            ("370212001", "沙子口街道"),
            ("370212002", "王哥庄街道"),
        ];
        let mut tree = Self::new();
        for (code, name) in UNITS {
            // The table above is ordered parents first and every code is valid.
            if let Ok(code) = OrgCode::parse(code) {
                let _ = tree.add(code, name);
            }
        }
        tree
    }
}

#[cfg(test)]
pub(crate) fn code(raw: &str) -> OrgCode {
    OrgCode::parse(raw).unwrap_or_else(|e| panic!("test code {raw}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_known_by_its_code_takes_its_name_once() {
        let mut tree = OrgTree::new();
        let city = OrgCode::parse("370200").unwrap();
        tree.add(city.clone(), "370200").unwrap();
        tree.add(city.clone(), "青岛市").unwrap();
        assert_eq!(tree.get(&city).unwrap().name, "青岛市");
        let e = tree.add(city.clone(), "济南市").unwrap_err();
        assert_eq!(e.field(), "org_code", "{e}");
        assert_eq!(tree.get(&city).unwrap().name, "青岛市");
    }

    #[test]
    fn levels_from_code_shape() {
        assert_eq!(code("370200").level(), OrgLevel::City);
        assert_eq!(code("370202").level(), OrgLevel::County);
        assert_eq!(code("370202001").level(), OrgLevel::Township);
        assert_eq!(code("370202001001").level(), OrgLevel::Village);
    }

    #[test]
    fn township_under_a_city_without_counties() {
        assert_eq!(code("441900003").parent(), Some(code("441900")));
    }

    #[test]
    fn parent_chain() {
        let village = code("370202001002");
        assert_eq!(village.parent(), Some(code("370202001")));
        assert_eq!(code("370202001").parent(), Some(code("370202")));
        assert_eq!(code("370202").parent(), Some(code("370200")));
        assert_eq!(code("370200").parent(), None);
        assert_eq!(
            village.ancestors(),
            vec![code("370202001"), code("370202"), code("370200")]
        );
        assert_eq!(village.node_unit(), code("370202001"));
    }

    #[test]
    fn refuses_malformed_codes_naming_the_field() {
        for raw in [
            "37020",
            "37020a",
            "370000",
            "370202000",
            "370000001",
            "1234567",
        ] {
            let e = OrgCode::parse(raw).unwrap_err();
            assert_eq!(e.field(), "org_code", "{raw}");
            assert!(!e.reason_zh().is_empty());
        }
        assert!(
            OrgCode::parse("1234567")
                .unwrap_err()
                .reason()
                .contains("6, 9 or 12")
        );
    }

    #[test]
    fn serde_goes_through_validation() {
        let ok: std::result::Result<OrgCode, _> =
            serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                serde::de::value::Error,
            >::new("370212"));
        assert!(ok.is_ok());
        let bad: std::result::Result<OrgCode, _> =
            serde::Deserialize::deserialize(serde::de::value::StrDeserializer::<
                serde::de::value::Error,
            >::new("12"));
        assert!(bad.is_err());
    }

    #[test]
    fn demo_tree_shape() {
        let tree = OrgTree::demo();
        assert_eq!(tree.units().count(), 7);
        let city = code("370200");
        let names: Vec<&str> = tree
            .children(&city)
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(names, vec!["市南区", "崂山区"]);
        assert_eq!(tree.children(&code("370212")).len(), 2);
        assert!(tree.contains(&city, &code("370212002")));
        assert!(tree.contains(&code("370202"), &code("370202001")));
        assert!(!tree.contains(&code("370202"), &code("370212001")));
        assert!(!tree.contains(&code("370202001"), &code("370202")));
        assert_eq!(tree.subtree(&code("370202")).len(), 3);
    }

    #[test]
    fn refuses_unknown_parent_and_renames() {
        let mut tree = OrgTree::demo();
        let e = tree.add(code("370203001"), "某街道").unwrap_err();
        assert_eq!(e.field(), "org_code");
        assert!(e.reason().contains("370203"));
        let e = tree.add(code("370202"), "改名区").unwrap_err();
        assert!(matches!(e, Error::Precondition { .. }));
        assert!(tree.add(code("370202"), "市南区").is_ok());
        let e = tree
            .add(code("370202003"), "长".repeat(51).as_str())
            .unwrap_err();
        assert_eq!(e.field(), "name");
    }
}
