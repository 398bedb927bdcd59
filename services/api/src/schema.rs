//! The replica schema, built from the domain's record definitions (`renda_domain::record`).
//!
//! The kinds, their fields, sets and events, and every stable id are declared in the domain,
//! each kind beside its rules; this module only translates them into the replica's types. The
//! ids are stable forever: see `renda_domain::record` for the rules.

use renda_domain::record::{FieldType, KINDS, KindDef, Reach};
use renda_replica::schema::{DefinitionError, KindBuilder};
use renda_replica::{Schema, ValueType};

pub(crate) use renda_domain::record::MAX_LIST;
pub use renda_domain::record::{SCHEMA_VERSION, kind};
pub use renda_domain::station::CHECKLIST_FIELDS;

/// The schema of every record kind of the domain.
pub fn schema() -> Schema {
    // The definition is fixed at compile time; the unit test `schema_builds` proves it.
    build().unwrap_or_else(|e| panic!("the built-in schema is inconsistent: {e}"))
}

/// The replica's type for a domain field type.
pub(crate) const fn value_type(ty: FieldType) -> ValueType {
    match ty {
        FieldType::Text => ValueType::Text,
        FieldType::Int => ValueType::Int,
        FieldType::Bool => ValueType::Bool,
        FieldType::Date => ValueType::Date,
        FieldType::Ref => ValueType::Ref,
        FieldType::Org => ValueType::Org,
    }
}

fn define(def: &KindDef, mut k: KindBuilder) -> KindBuilder {
    for f in def.fields {
        k = k.field(f.id, f.name, value_type(f.ty), f.max_chars);
    }
    for (id, name) in def.sets {
        k = k.set(*id, name);
    }
    for e in def.events {
        let mut payload = vec![(0, "org", ValueType::Org, true)];
        payload.extend(
            e.payload
                .iter()
                .map(|p| (p.id, p.name, value_type(p.ty), p.required)),
        );
        k = k.event(e.id, e.name, &payload);
    }
    match def.reach {
        Reach::Normal => k,
        Reach::LocalOnly => k.local_only(),
        Reach::Broadcast => k.broadcast(),
        Reach::Subtree => k.subtree(),
    }
}

/// Builds the replica schema from the domain's record definitions, reporting a definition
/// mistake instead of panicking.
pub fn build() -> Result<Schema, DefinitionError> {
    KINDS
        .iter()
        .fold(Schema::builder(SCHEMA_VERSION), |b, def| {
            b.kind(def.id, def.name, |k| define(def, k))
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_builds() {
        let schema = build().expect("schema builds");
        assert_eq!(schema.version, SCHEMA_VERSION);
        assert_eq!(schema.kinds().count(), KINDS.len());
        for kind in schema.kinds() {
            for event in &kind.events {
                assert_eq!(
                    event
                        .fields
                        .first()
                        .map(|f| (f.id.0, f.name.as_str(), f.required)),
                    Some((0, "org", true)),
                    "{}.{} must start with the required org field",
                    kind.name,
                    event.name
                );
            }
        }
        let station = schema.kind_named(kind::STATION).expect("station");
        for (name, id) in CHECKLIST_FIELDS {
            let field = station.field_named(name).expect("a checklist field");
            assert_eq!((field.id.0, field.ty), (id, ValueType::Bool), "{name}");
        }
    }
}
