//! Record kinds as the domain declares them: fields, sets, events, each event's payload and the
//! authority step it takes, in one definition per kind.
//!
//! Each kind module holds its [`KindDef`] beside the rules it feeds (`suggestion::KIND` next to
//! `suggestion::Event` and its fold), and every event enum implements [`RecordEvent`], the one
//! mapping between a domain event and its stored payload. Everything else reads these: the API
//! builds the replica schema from [`KINDS`], writes an event with the step its definition names,
//! and reads stored events back with [`RecordEvent::decode`]; replication's authority check takes
//! an incoming operation's step from [`step_of`]. Adding a step means adding a variant to the
//! kind's event enum, an [`EventDef`] to its `KIND`, and the handler that takes it.
//!
//! **Every id here is stable forever.** Kind, field, set and event ids are what the op log, the
//! wire and every node's database hold; names are only for people and JSON columns. A field may
//! be added with a new id, never renumbered, retyped or reused; a retired id stays reserved.
//! Every change to a kind's definition appends its new fingerprint to the kind's
//! `fingerprints` (a test says which value when the last one no longer matches); that moves
//! [`SCHEMA_VERSION`], so the sync handshake refuses a peer that cannot read what we write.
//!
//! Every kind has field 0 `deleted` and field 1 `org` (the owning org unit), added by the
//! replica layer. Every event has payload field 0 `org`, the org unit the step is taken for,
//! which the write rules check the operation's origin against; definitions list the fields
//! after it. Statuses are never fields: they are folds of the events.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::authority::{RecordKind, Step};
use crate::org::OrgCode;

/// Version of the schema, exchanged in the sync handshake: the version before kinds kept their
/// own history, plus one for every revision of any kind since (see [`KindDef::fingerprints`]).
pub const SCHEMA_VERSION: u32 = 4 + revisions(&KINDS);

const fn revisions(kinds: &[&KindDef]) -> u32 {
    let mut total = 0;
    let mut i = 0;
    while i < kinds.len() {
        total += kinds[i].fingerprints.len() as u32 - 1;
        i += 1;
    }
    total
}

/// The type of a field or payload value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Int,
    Bool,
    Date,
    /// A record id.
    Ref,
    Org,
}

/// A stored field: id, name, type, and for text the most characters (0: the default 2,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub id: u16,
    pub name: &'static str,
    pub ty: FieldType,
    pub max_chars: u32,
}

/// A text field of at most `max_chars` characters.
pub const fn text_field(id: u16, name: &'static str, max_chars: u32) -> FieldDef {
    FieldDef {
        id,
        name,
        ty: FieldType::Text,
        max_chars,
    }
}

/// A field of another type.
pub const fn field(id: u16, name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef {
        id,
        name,
        ty,
        max_chars: 0,
    }
}

/// A payload field of an event: id, name, type and whether it must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadDef {
    pub id: u16,
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

/// A required payload field.
pub const fn required(id: u16, name: &'static str, ty: FieldType) -> PayloadDef {
    PayloadDef {
        id,
        name,
        ty,
        required: true,
    }
}

/// An optional payload field.
pub const fn optional(id: u16, name: &'static str, ty: FieldType) -> PayloadDef {
    PayloadDef {
        id,
        name,
        ty,
        required: false,
    }
}

/// One workflow event of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDef {
    pub id: u16,
    pub name: &'static str,
    /// The authority step an event of this kind takes: the API checks the writer against it
    /// before writing, and every receiving node checks the operation's origin against it.
    pub step: Step,
    /// The payload after field 0 `org`.
    pub payload: &'static [PayloadDef],
}

/// Where a kind's records go beyond their org unit and its ancestors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Up the tree, and down to the org units its events name.
    Normal,
    /// Never leaves the node that holds it (personal data, design.md §4).
    LocalOnly,
    /// Reference data every node holds.
    Broadcast,
    /// Down to every node below its org unit too (accounts valid throughout a subtree).
    Subtree,
}

/// One record kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindDef {
    pub id: u16,
    pub name: &'static str,
    /// The write rules that govern it.
    pub governed_as: RecordKind,
    pub fields: &'static [FieldDef],
    pub sets: &'static [(u16, &'static str)],
    pub events: &'static [EventDef],
    pub reach: Reach,
    /// The [`KindDef::fingerprint`] of every revision of this definition, oldest first; the
    /// last is the definition as it is. A change appends one, and each appended one is a new
    /// [`SCHEMA_VERSION`]. Never empty.
    pub fingerprints: &'static [u64],
}

impl KindDef {
    pub fn event(&self, name: &str) -> Option<&'static EventDef> {
        self.events.iter().find(|e| e.name == name)
    }

    /// A hash of everything of the definition that the op log, the wire and the stored data
    /// depend on: ids, names, types, steps and reach (FNV-1a, stable across builds).
    pub fn fingerprint(&self) -> u64 {
        let mut text = format!(
            "{}:{}:{:?}:{:?}",
            self.id, self.name, self.governed_as, self.reach
        );
        for f in self.fields {
            text.push_str(&format!("|f{}:{}:{:?}:{}", f.id, f.name, f.ty, f.max_chars));
        }
        for (id, name) in self.sets {
            text.push_str(&format!("|s{id}:{name}"));
        }
        for e in self.events {
            text.push_str(&format!("|e{}:{}:{:?}", e.id, e.name, e.step));
            for p in e.payload {
                text.push_str(&format!(",{}:{}:{:?}:{}", p.id, p.name, p.ty, p.required));
            }
        }
        text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }
}

/// Record kind names (ids in [`KINDS`]).
pub mod kind {
    pub const ORG_UNIT: &str = crate::org::KIND.name;
    pub const DEPUTY: &str = crate::person::KIND.name;
    /// Local-only: the ID-card number of a deputy, kept at the node that owns the deputy.
    pub const DEPUTY_IDENTITY: &str = crate::person::IDENTITY.name;
    pub const DEPUTY_GROUP: &str = crate::person::GROUP.name;
    pub const STATION: &str = crate::station::KIND.name;
    pub const ACTIVITY: &str = crate::activity::KIND.name;
    pub const OPINION: &str = crate::opinion::KIND.name;
    pub const HANDLING_UNIT: &str = crate::suggestion::HANDLING_UNIT.name;
    pub const SUGGESTION: &str = crate::suggestion::KIND.name;
    pub const CONGRESS_SESSION: &str = crate::project::SESSION.name;
    pub const PROJECT: &str = crate::project::KIND.name;
    pub const REPORT_BACK: &str = crate::evaluation::REPORT_BACK.name;
    pub const EVALUATION: &str = crate::evaluation::KIND.name;
    pub const APPRAISAL: &str = crate::evaluation::APPRAISAL.name;
    /// A person who logs in (gateway, consoles); only the PHC password hash is stored.
    pub const USER: &str = crate::person::USER.name;
}

/// Every record kind of the domain, by id.
pub const KINDS: [&KindDef; 15] = [
    &crate::org::KIND,
    &crate::person::KIND,
    &crate::person::IDENTITY,
    &crate::person::GROUP,
    &crate::station::KIND,
    &crate::activity::KIND,
    &crate::opinion::KIND,
    &crate::suggestion::HANDLING_UNIT,
    &crate::suggestion::KIND,
    &crate::project::SESSION,
    &crate::project::KIND,
    &crate::evaluation::REPORT_BACK,
    &crate::evaluation::KIND,
    &crate::evaluation::APPRAISAL,
    &crate::person::USER,
];

/// The definition of the kind named `name`.
pub fn kind_named(name: &str) -> Option<&'static KindDef> {
    KINDS.iter().copied().find(|k| k.name == name)
}

/// The write rules that govern records of the kind named `kind`.
pub fn governed_as(kind: &str) -> Option<RecordKind> {
    kind_named(kind).map(|k| k.governed_as)
}

/// The authority step the event `event` of the kind `kind` takes.
pub fn step_of(kind: &str, event: &str) -> Option<Step> {
    kind_named(kind)?.event(event).map(|e| e.step)
}

/// A payload value as the domain reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    Date(NaiveDate),
    Ref(Uuid),
    Org(OrgCode),
}

/// A stored event's payload by field name, as read back (field 0 `org` included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload(pub BTreeMap<String, Value>);

impl Payload {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// The text, or empty when absent (optional text fields).
    pub fn text_or_empty(&self, name: &str) -> String {
        self.text(name).unwrap_or_default().to_owned()
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.0.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.0.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn date(&self, name: &str) -> Option<NaiveDate> {
        match self.0.get(name) {
            Some(Value::Date(d)) => Some(*d),
            _ => None,
        }
    }

    pub fn id(&self, name: &str) -> Option<Uuid> {
        match self.0.get(name) {
            Some(Value::Ref(id)) => Some(*id),
            _ => None,
        }
    }

    pub fn org(&self, name: &str) -> Option<OrgCode> {
        match self.0.get(name) {
            Some(Value::Org(o)) => Some(*o),
            _ => None,
        }
    }

    /// The ids of a comma-separated id-list text field ([`id_list`]); malformed entries skipped.
    pub fn ids(&self, name: &str) -> Vec<Uuid> {
        parse_id_list(self.text(name).unwrap_or_default())
    }
}

/// A domain event that is stored as one event of a record kind.
///
/// `encode` and `decode` are inverse on every event a fold can see: a stored event this build
/// cannot read (from a newer schema, or malformed) decodes to `None` and is left out of folds.
pub trait RecordEvent: Sized {
    /// The kind whose events these are.
    const KIND: &'static KindDef;

    /// The event's name in `KIND.events`.
    fn name(&self) -> &'static str;

    /// The payload fields by name, without field 0 `org` (the writer adds it).
    fn encode(&self) -> Vec<(&'static str, Value)>;

    /// Reads a stored event back.
    fn decode(name: &str, payload: &Payload) -> Option<Self>;

    /// The event's definition.
    fn definition(&self) -> &'static EventDef {
        Self::KIND
            .event(self.name())
            .unwrap_or_else(|| panic!("{}.{} is not defined", Self::KIND.name, self.name()))
    }

    /// The authority step the event takes.
    fn step(&self) -> Step {
        self.definition().step
    }
}

/// A closed vocabulary stored as text: each value and its stored code, which never changes.
pub trait Coded: Copy + PartialEq + 'static {
    const CODES: &'static [(Self, &'static str)];

    /// The stored code.
    fn code(self) -> &'static str {
        Self::CODES
            .iter()
            .find(|(v, _)| *v == self)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    /// The value stored as `code`.
    fn from_code(code: &str) -> Option<Self> {
        Self::CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(v, _)| *v)
    }
}

/// The comma-separated form of an id list in one text field.
pub fn id_list(ids: impl IntoIterator<Item = Uuid>) -> String {
    ids.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads an id list written by [`id_list`]; malformed entries are skipped.
pub fn parse_id_list(text: &str) -> Vec<Uuid> {
    text.split(',')
        .filter_map(|s| Uuid::parse_str(s.trim()).ok())
        .collect()
}

/// Characters of an id-list text field: room for [`MAX_LIST`] ids.
pub const ID_LIST_CHARS: u32 = 500 * 37;

/// Most ids an id-list field holds.
pub const MAX_LIST: usize = (ID_LIST_CHARS / 37) as usize;

#[cfg(test)]
mod tests {
    use super::*;

    /// A definition that changed without a new entry in its `fingerprints` would let two
    /// builds that store different things call themselves the same schema version.
    #[test]
    fn every_definition_change_is_a_new_schema_version() {
        let mut stale = Vec::new();
        for k in KINDS {
            let now = k.fingerprint();
            match k.fingerprints.last() {
                Some(last) if *last == now => {}
                _ => stale.push(format!(
                    "{}: append {now:#018x} to its `fingerprints` (a new schema version)",
                    k.name
                )),
            }
            let mut seen = std::collections::BTreeSet::new();
            assert!(
                k.fingerprints.iter().all(|f| seen.insert(*f)),
                "{}: a fingerprint listed twice (a definition put back as it was is still a \
                 new revision)",
                k.name
            );
        }
        assert!(
            stale.is_empty(),
            "changed definitions:\n{}",
            stale.join("\n")
        );
        assert_eq!(SCHEMA_VERSION, 4 + revisions(&KINDS));
    }

    #[test]
    fn ids_and_names_are_unique_and_stable() {
        // These numbers are in every database and on the wire; this test fails on a renumbering.
        let ids: Vec<(u16, &str)> = KINDS.iter().map(|k| (k.id, k.name)).collect();
        assert_eq!(
            ids,
            vec![
                (1, "org_unit"),
                (2, "deputy"),
                (3, "deputy_identity"),
                (4, "deputy_group"),
                (5, "station"),
                (6, "activity"),
                (7, "opinion"),
                (8, "handling_unit"),
                (9, "suggestion"),
                (10, "congress_session"),
                (11, "project"),
                (12, "report_back"),
                (13, "evaluation"),
                (14, "appraisal"),
                (15, "user"),
            ]
        );
        for k in KINDS {
            let mut events: Vec<u16> = k.events.iter().map(|e| e.id).collect();
            events.sort_unstable();
            events.dedup();
            assert_eq!(events.len(), k.events.len(), "{}: event ids", k.name);
            for e in k.events {
                assert!(
                    e.payload.iter().all(|p| p.id != 0 && p.name != "org"),
                    "{}.{}: field 0 org is implicit",
                    k.name,
                    e.name
                );
            }
        }
        assert_eq!(
            kind_named("activity")
                .and_then(|k| k.event("checked_in"))
                .map(|e| e.id),
            Some(3)
        );
        assert_eq!(
            kind_named("suggestion")
                .and_then(|k| k.event("replied"))
                .map(|e| e.id),
            Some(12)
        );
    }
}
