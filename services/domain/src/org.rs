//! Org units (行政区划) and the org tree every node holds as reference data.
//!
//! An [`OrgCode`] (from `renda-org`) is the administrative division code: 6 digits for a city
//! (ending in `00`) or a county, 9 digits for a township, 12 for a village. The parent of a unit
//! is derived from its code alone (`370202001` → `370202` → `370200`), so two nodes never
//! disagree on the shape of the tree; the [`OrgTree`] adds names and refuses units whose parent
//! it lacks.

use crate::authority::RecordKind;
use crate::record::{KindDef, Reach, text_field};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, text};

pub use renda_org::{Level, OrgCode};

/// A code refused by `renda-org` is an invalid `org_code`, with the reason in both languages.
impl From<renda_org::Error> for Error {
    fn from(e: renda_org::Error) -> Self {
        let reason_zh = e.reason_zh();
        Error::invalid("org_code", e.to_string(), reason_zh)
    }
}

/// Parses a code a person typed (surrounding whitespace ignored) into a domain error naming the
/// field `org_code`.
pub fn parse(raw: &str) -> Result<OrgCode> {
    Ok(OrgCode::parse(raw)?)
}

/// A named org unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUnit {
    pub code: OrgCode,
    pub name: String,
}

impl OrgUnit {
    pub fn level(&self) -> Level {
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
            if existing.name == existing.code.to_string() {
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
        self.units.insert(code, OrgUnit { code, name });
        Ok(())
    }

    /// Every unit as `(code, name)`: the form an org-unit list is imported in.
    pub fn named_units(&self) -> Vec<(OrgCode, String)> {
        self.units().map(|u| (u.code, u.name.clone())).collect()
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
        self.has(ancestor) && self.has(descendant) && ancestor.contains(*descendant)
    }

    /// The direct children of a unit, in code order.
    pub fn children(&self, code: &OrgCode) -> Vec<&OrgUnit> {
        self.units
            .values()
            .filter(|u| u.code.parent() == Some(*code))
            .collect()
    }

    /// Every unit in the subtree of `code` (itself included), in code order.
    pub fn subtree(&self, code: &OrgCode) -> Vec<&OrgUnit> {
        self.units
            .values()
            .filter(|u| code.contains(u.code))
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

/// The org unit record: reference data every node holds, written by the city for its subtree.
pub const KIND: KindDef = KindDef {
    id: 1,
    name: "org_unit",
    governed_as: RecordKind::OrgUnit,
    fields: &[text_field(2, "name", 50)],
    sets: &[],
    events: &[],
    reach: Reach::Broadcast,
    fingerprints: &[0xe3f7_914d_4013_786d],
};

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
        let city = code("370200");
        tree.add(city, "370200").unwrap();
        tree.add(city, "青岛市").unwrap();
        assert_eq!(tree.get(&city).unwrap().name, "青岛市");
        let e = tree.add(city, "济南市").unwrap_err();
        assert_eq!(e.field(), "org_code", "{e}");
        assert_eq!(tree.get(&city).unwrap().name, "青岛市");
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
            let e = parse(raw).unwrap_err();
            assert_eq!(e.field(), "org_code", "{raw}");
            assert!(!e.reason_zh().is_empty());
        }
        assert!(
            parse("1234567")
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
