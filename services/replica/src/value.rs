//! Field values and their types.

use crate::ids::{OrgCode, RecordId};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The type a schema gives a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueType {
    Text,
    Int,
    Bool,
    /// Days since 1970-01-01.
    Date,
    /// A reference to another record.
    Ref,
    Org,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Text => "text",
            ValueType::Int => "integer",
            ValueType::Bool => "boolean",
            ValueType::Date => "date",
            ValueType::Ref => "record reference",
            ValueType::Org => "org unit code",
        }
    }
}

/// A field value. `Null` clears a field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Date(i32),
    Ref(RecordId),
    Org(OrgCode),
}

impl Value {
    /// The type of a non-null value.
    pub fn value_type(&self) -> Option<ValueType> {
        Some(match self {
            Value::Null => return None,
            Value::Text(_) => ValueType::Text,
            Value::Int(_) => ValueType::Int,
            Value::Bool(_) => ValueType::Bool,
            Value::Date(_) => ValueType::Date,
            Value::Ref(_) => ValueType::Ref,
            Value::Org(_) => ValueType::Org,
        })
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_org(&self) -> Option<OrgCode> {
        match self {
            Value::Org(o) => Some(*o),
            _ => None,
        }
    }

    pub fn as_ref_id(&self) -> Option<RecordId> {
        match self {
            Value::Ref(r) => Some(*r),
            _ => None,
        }
    }

    pub fn reference(id: Uuid) -> Self {
        Value::Ref(RecordId(id))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Text(s) => f.write_str(s),
            Value::Int(n) => n.fmt(f),
            Value::Bool(b) => b.fmt(f),
            Value::Date(d) => d.fmt(f),
            Value::Ref(r) => r.fmt(f),
            Value::Org(o) => o.fmt(f),
        }
    }
}
