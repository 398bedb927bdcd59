//! Record kinds: which fields, sets and events a record of each kind may carry.
//!
//! Every operation is validated against the schema before it touches a record, so a malformed
//! operation names the record, the field and the reason instead of corrupting state.

use crate::value::{Value, ValueType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Numeric id of a record kind on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KindId(pub u16);
/// Numeric id of a field within a kind (or within an event kind's payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FieldId(pub u16);
/// Numeric id of an add-wins set within a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SetId(pub u16);
/// Numeric id of an event kind within a record kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventKindId(pub u16);

/// Every kind has these two fields: the soft-delete flag and the owning org unit.
pub const DELETED: FieldId = FieldId(0);
pub const ORG: FieldId = FieldId(1);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSchema {
    pub id: FieldId,
    pub name: String,
    pub ty: ValueType,
    /// For text: the most characters allowed.
    pub max_chars: u32,
    /// For event payloads: whether the field must be present and non-null.
    pub required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSchema {
    pub id: SetId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSchema {
    pub id: EventKindId,
    pub name: String,
    pub fields: Vec<FieldSchema>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindSchema {
    pub id: KindId,
    pub name: String,
    pub fields: Vec<FieldSchema>,
    pub sets: Vec<SetSchema>,
    pub events: Vec<EventSchema>,
    /// Records of this kind never leave the node that holds them (personal data such as
    /// ID-card numbers, design.md §4): stores keep their operations out of every sync feed.
    pub local_only: bool,
    /// Records of this kind are reference data every node holds (the org tree): they go down
    /// to every node, whatever their org unit.
    pub broadcast: bool,
    /// Records of this kind go down to every node in their org unit's subtree, not only to the
    /// node of their org unit (users: an account made at a county is valid at each of its
    /// townships, offline ones included).
    pub subtree: bool,
}

impl KindSchema {
    pub fn field(&self, id: FieldId) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.id == id)
    }

    pub fn field_named(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn set(&self, id: SetId) -> Option<&SetSchema> {
        self.sets.iter().find(|s| s.id == id)
    }

    pub fn set_named(&self, name: &str) -> Option<&SetSchema> {
        self.sets.iter().find(|s| s.name == name)
    }

    pub fn event(&self, id: EventKindId) -> Option<&EventSchema> {
        self.events.iter().find(|e| e.id == id)
    }

    pub fn event_named(&self, name: &str) -> Option<&EventSchema> {
        self.events.iter().find(|e| e.name == name)
    }
}

/// All record kinds known to this build, with a version exchanged in the sync handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    pub version: u32,
    kinds: BTreeMap<KindId, KindSchema>,
}

/// A schema definition mistake (duplicate ids or names); found when the program starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema definition error in kind {kind:?}: {reason}")]
pub struct DefinitionError {
    pub kind: String,
    pub reason: String,
}

impl Schema {
    pub fn builder(version: u32) -> SchemaBuilder {
        SchemaBuilder {
            version,
            kinds: Vec::new(),
        }
    }

    pub fn kind(&self, id: KindId) -> Option<&KindSchema> {
        self.kinds.get(&id)
    }

    pub fn kind_named(&self, name: &str) -> Option<&KindSchema> {
        self.kinds.values().find(|k| k.name == name)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &KindSchema> {
        self.kinds.values()
    }
}

pub struct SchemaBuilder {
    version: u32,
    kinds: Vec<KindSchema>,
}

impl SchemaBuilder {
    /// Adds a kind; `deleted` and `org` fields are added to it automatically.
    pub fn kind(
        mut self,
        id: u16,
        name: &str,
        define: impl FnOnce(KindBuilder) -> KindBuilder,
    ) -> Self {
        let base = KindBuilder {
            kind: KindSchema {
                id: KindId(id),
                name: name.to_string(),
                fields: Vec::new(),
                sets: Vec::new(),
                events: Vec::new(),
                local_only: false,
                broadcast: false,
                subtree: false,
            },
        }
        .field(DELETED.0, "deleted", ValueType::Bool, 0)
        .field(ORG.0, "org", ValueType::Org, 0);
        self.kinds.push(define(base).kind);
        self
    }

    pub fn build(self) -> Result<Schema, DefinitionError> {
        let mut kinds = BTreeMap::new();
        for kind in self.kinds {
            let err = |reason: String| DefinitionError {
                kind: kind.name.clone(),
                reason,
            };
            check_unique(kind.fields.iter().map(|f| (f.id.0, f.name.as_str()))).map_err(err)?;
            check_unique(kind.sets.iter().map(|s| (s.id.0, s.name.as_str()))).map_err(err)?;
            check_unique(kind.events.iter().map(|e| (e.id.0, e.name.as_str()))).map_err(err)?;
            for event in &kind.events {
                check_unique(event.fields.iter().map(|f| (f.id.0, f.name.as_str())))
                    .map_err(|r| err(format!("event {}: {r}", event.name)))?;
            }
            if kinds.values().any(|k: &KindSchema| k.name == kind.name) {
                return Err(err("kind name used twice".into()));
            }
            if kinds.insert(kind.id, kind.clone()).is_some() {
                return Err(err(format!("kind id {} used twice", kind.id.0)));
            }
        }
        Ok(Schema {
            version: self.version,
            kinds,
        })
    }
}

fn check_unique<'a>(items: impl Iterator<Item = (u16, &'a str)>) -> Result<(), String> {
    let mut ids = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    for (id, name) in items {
        if !ids.insert(id) {
            return Err(format!("id {id} used twice"));
        }
        if !names.insert(name) {
            return Err(format!("name {name:?} used twice"));
        }
    }
    Ok(())
}

pub struct KindBuilder {
    kind: KindSchema,
}

impl KindBuilder {
    /// A scalar field; `max_chars` applies to text (0 means the default of 2,000).
    pub fn field(mut self, id: u16, name: &str, ty: ValueType, max_chars: u32) -> Self {
        self.kind.fields.push(FieldSchema {
            id: FieldId(id),
            name: name.to_string(),
            ty,
            max_chars: if max_chars == 0 { 2_000 } else { max_chars },
            required: false,
        });
        self
    }

    pub fn text(self, id: u16, name: &str, max_chars: u32) -> Self {
        self.field(id, name, ValueType::Text, max_chars)
    }

    /// Marks the kind as never replicated (see [`KindSchema::local_only`]).
    pub fn local_only(mut self) -> Self {
        self.kind.local_only = true;
        self
    }

    /// Marks the kind as reference data for every node (see [`KindSchema::broadcast`]).
    pub fn broadcast(mut self) -> Self {
        self.kind.broadcast = true;
        self
    }

    /// Marks the kind as going down to its org unit's whole subtree (see
    /// [`KindSchema::subtree`]).
    pub fn subtree(mut self) -> Self {
        self.kind.subtree = true;
        self
    }

    pub fn set(mut self, id: u16, name: &str) -> Self {
        self.kind.sets.push(SetSchema {
            id: SetId(id),
            name: name.to_string(),
        });
        self
    }

    /// An event kind; `fields` lists (id, name, type, required).
    pub fn event(mut self, id: u16, name: &str, fields: &[(u16, &str, ValueType, bool)]) -> Self {
        self.kind.events.push(EventSchema {
            id: EventKindId(id),
            name: name.to_string(),
            fields: fields
                .iter()
                .map(|&(id, name, ty, required)| FieldSchema {
                    id: FieldId(id),
                    name: name.to_string(),
                    ty,
                    max_chars: 2_000,
                    required,
                })
                .collect(),
        });
        self
    }
}

/// Checks one value against its field: type and length. `Null` is always allowed for scalar
/// fields (it clears them); required event fields are checked by the caller.
pub(crate) fn check_value(field: &FieldSchema, value: &Value) -> Result<(), String> {
    match value.value_type() {
        None => Ok(()),
        Some(ty) if ty != field.ty => {
            Err(format!("expects {}, got {}", field.ty.name(), ty.name()))
        }
        Some(_) => match value {
            Value::Text(s) => {
                let chars = s.chars().count();
                if chars > field.max_chars as usize {
                    Err(format!(
                        "text of {chars} characters is longer than the limit of {}",
                        field.max_chars
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        },
    }
}
