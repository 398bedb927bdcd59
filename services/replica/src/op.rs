//! Operations: every change to a record, as it is logged, replicated and applied.

use crate::hlc::Hlc;
use crate::ids::{ActorId, Author, OpId, OrgCode, RecordId};
use crate::schema::{EventKindId, FieldId, KindId, Schema, SetId, check_value};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A causal context: for each actor, the highest per-record sequence the writer had seen.
pub type Seen = Vec<(ActorId, u64)>;

/// One change to one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Writes a scalar field. `seen` is the writer's context of that field's register, minus
    /// the writer's own entry (implied by the operation's dot): the values it replaces.
    Put {
        field: FieldId,
        value: Value,
        seen: Seen,
    },
    /// Adds a member to an add-wins set. `counter` is the origin's add counter on this set,
    /// gapless: `crdts` ignores an add that is not the next of its actor, so a receiver holds
    /// one that arrives early.
    Add {
        set: SetId,
        member: Uuid,
        counter: u64,
    },
    /// Removes a member the writer had seen; `seen` is the set's whole clock at the writer.
    /// A concurrent add (a dot not in `seen`) survives: add wins.
    Remove {
        set: SetId,
        member: Uuid,
        seen: Seen,
    },
    /// Appends an immutable workflow event.
    Event {
        event: EventKindId,
        payload: Vec<(FieldId, Value)>,
    },
}

/// An operation: a change plus everything needed to order, check and audit it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Origin replica and its gapless log sequence.
    pub id: OpId,
    pub record: RecordId,
    pub kind: KindId,
    pub hlc: Hlc,
    /// The org unit of the node where the change was made.
    pub origin_org: OrgCode,
    pub author: Author,
    pub change: Change,
}

/// Why an operation could not be decoded or validated. It always names the record when the
/// bytes got that far, the field when there is one, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct OpError {
    pub record: Option<RecordId>,
    pub kind: Option<String>,
    pub field: Option<String>,
    pub reason: String,
}

impl OpError {
    fn describe(&self) -> String {
        let mut out = String::from("invalid operation");
        if let Some(record) = self.record {
            out.push_str(&format!(" on record {record}"));
        }
        if let Some(kind) = &self.kind {
            out.push_str(&format!(" (kind {kind})"));
        }
        if let Some(field) = &self.field {
            out.push_str(&format!(", field {field}"));
        }
        out.push_str(": ");
        out.push_str(&self.reason);
        out
    }
}

/// Format version of the encoding; bump on any change of layout.
pub const FORMAT_VERSION: u8 = 2;
const CHANGE_PUT: u8 = 1;
const CHANGE_ADD: u8 = 2;
const CHANGE_REMOVE: u8 = 3;
const CHANGE_EVENT: u8 = 4;
/// Hybrid clocks are encoded as milliseconds after 2025-01-01, which keeps them to 6 bytes.
const HLC_EPOCH_MS: u64 = 1_735_689_600_000;
/// Limits that keep a hostile operation from allocating much.
const MAX_SEEN: u64 = 1_024;
const MAX_PAYLOAD_FIELDS: u64 = 256;
const MAX_TEXT_BYTES: u64 = 64 * 1024;

impl Op {
    /// Checks the operation against the schema: known kind, known field, set or event, values
    /// of the right type and length, required event fields present.
    pub fn validate(&self, schema: &Schema) -> Result<(), OpError> {
        let mut err = OpError {
            record: Some(self.record),
            kind: None,
            field: None,
            reason: String::new(),
        };
        let Some(kind) = schema.kind(self.kind) else {
            err.reason = format!("unknown record kind {}", self.kind.0);
            return Err(err);
        };
        err.kind = Some(kind.name.clone());
        match &self.change {
            Change::Put { field, value, .. } => {
                let Some(schema_field) = kind.field(*field) else {
                    err.field = Some(field.0.to_string());
                    err.reason = "unknown field".into();
                    return Err(err);
                };
                if let Err(reason) = check_value(schema_field, value) {
                    err.field = Some(schema_field.name.clone());
                    err.reason = reason;
                    return Err(err);
                }
            }
            Change::Add { set, .. } | Change::Remove { set, .. } => {
                if kind.set(*set).is_none() {
                    err.field = Some(set.0.to_string());
                    err.reason = "unknown set".into();
                    return Err(err);
                }
            }
            Change::Event { event, payload } => {
                let Some(event_schema) = kind.event(*event) else {
                    err.field = Some(format!("event {}", event.0));
                    err.reason = "unknown event kind".into();
                    return Err(err);
                };
                for (field, value) in payload {
                    let Some(schema_field) = event_schema.fields.iter().find(|f| f.id == *field)
                    else {
                        err.field = Some(format!("{}.{}", event_schema.name, field.0));
                        err.reason = "unknown event field".into();
                        return Err(err);
                    };
                    if let Err(reason) = check_value(schema_field, value) {
                        err.field = Some(format!("{}.{}", event_schema.name, schema_field.name));
                        err.reason = reason;
                        return Err(err);
                    }
                }
                for required in event_schema.fields.iter().filter(|f| f.required) {
                    let present = payload
                        .iter()
                        .any(|(id, value)| *id == required.id && *value != Value::Null);
                    if !present {
                        err.field = Some(format!("{}.{}", event_schema.name, required.name));
                        err.reason = "required field is missing".into();
                        return Err(err);
                    }
                }
            }
        }
        Ok(())
    }

    /// Encodes into the compact binary form used in the op log, on the wire and in bundles.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let change_tag = match &self.change {
            Change::Put { .. } => CHANGE_PUT,
            Change::Add { .. } => CHANGE_ADD,
            Change::Remove { .. } => CHANGE_REMOVE,
            Change::Event { .. } => CHANGE_EVENT,
        };
        out.push((FORMAT_VERSION << 4) | change_tag);
        out.extend_from_slice(self.record.0.as_bytes());
        put_varint(out, u64::from(self.kind.0));
        put_varint(out, self.id.origin.0);
        put_varint(out, self.id.seq);
        put_varint(
            out,
            zigzag(self.hlc.physical_ms as i64 - HLC_EPOCH_MS as i64),
        );
        put_varint(out, u64::from(self.hlc.logical));
        put_varint(out, self.origin_org.get());
        // The author is usually registered at the origin's org unit: then only its number.
        let same_org = self.author.org == self.origin_org;
        put_varint(
            out,
            (u64::from(self.author.number) << 1) | u64::from(!same_org),
        );
        if !same_org {
            put_varint(out, self.author.org.get());
        }
        match &self.change {
            Change::Put { field, value, seen } => {
                put_varint(out, u64::from(field.0));
                put_seen(out, seen);
                put_value(out, value);
            }
            Change::Add {
                set,
                member,
                counter,
            } => {
                put_varint(out, u64::from(set.0));
                out.extend_from_slice(member.as_bytes());
                put_varint(out, *counter);
            }
            Change::Remove { set, member, seen } => {
                put_varint(out, u64::from(set.0));
                out.extend_from_slice(member.as_bytes());
                put_seen(out, seen);
            }
            Change::Event { event, payload } => {
                put_varint(out, u64::from(event.0));
                put_varint(out, payload.len() as u64);
                for (field, value) in payload {
                    put_varint(out, u64::from(field.0));
                    put_value(out, value);
                }
            }
        }
    }

    /// Decodes and validates against `schema`. Never panics on any input.
    pub fn decode(bytes: &[u8], schema: &Schema) -> Result<Op, OpError> {
        let op = Self::decode_unchecked(bytes)?;
        op.validate(schema)?;
        Ok(op)
    }

    /// Decodes the structure only, without the schema check.
    pub fn decode_unchecked(bytes: &[u8]) -> Result<Op, OpError> {
        let mut r = Reader {
            bytes,
            pos: 0,
            record: None,
        };
        let header = r.byte("header")?;
        if header >> 4 != FORMAT_VERSION {
            return Err(r.error(format!(
                "format version {} is not supported (this build reads {FORMAT_VERSION})",
                header >> 4
            )));
        }
        let record = RecordId(Uuid::from_bytes(r.array::<16>("record id")?));
        r.record = Some(record);
        let kind = KindId(r.small("kind", u16::MAX.into())? as u16);
        let origin = r.varint("origin actor")?;
        if origin == 0 || origin > ActorId::MAX {
            return Err(r.error(format!("origin actor {origin} is out of range")));
        }
        let seq = r.varint("origin sequence")?;
        if seq == 0 {
            return Err(r.error("sequences start at 1".into()));
        }
        let physical = unzigzag(r.varint("clock")?)
            .checked_add(HLC_EPOCH_MS as i64)
            .filter(|ms| (0..1 << 48).contains(ms))
            .ok_or_else(|| r.error("clock is out of range".into()))?;
        let logical = r.small("clock logical part", u32::MAX.into())? as u32;
        let origin_org = r.org("origin org unit")?;
        let author_word = r.varint("author")?;
        let number = u32::try_from(author_word >> 1)
            .map_err(|_| r.error("author number is out of range".into()))?;
        let author_org = if author_word & 1 == 1 {
            r.org("author org unit")?
        } else {
            origin_org
        };
        let change = match header & 0x0f {
            CHANGE_PUT => {
                let field = FieldId(r.small("field", u16::MAX.into())? as u16);
                let seen = r.seen()?;
                let value = r.value("value")?;
                Change::Put { field, value, seen }
            }
            CHANGE_ADD => {
                let set = SetId(r.small("set", u16::MAX.into())? as u16);
                let member = Uuid::from_bytes(r.array::<16>("member")?);
                let counter = r.varint("add counter")?;
                if counter == 0 {
                    return Err(r.error("add counters start at 1".into()));
                }
                Change::Add {
                    set,
                    member,
                    counter,
                }
            }
            CHANGE_REMOVE => {
                let set = SetId(r.small("set", u16::MAX.into())? as u16);
                let member = Uuid::from_bytes(r.array::<16>("member")?);
                let seen = r.seen()?;
                Change::Remove { set, member, seen }
            }
            CHANGE_EVENT => {
                let event = EventKindId(r.small("event kind", u16::MAX.into())? as u16);
                let count = r.small("event field count", MAX_PAYLOAD_FIELDS)?;
                let mut payload = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let field = FieldId(r.small("event field", u16::MAX.into())? as u16);
                    let value = r.value("event value")?;
                    payload.push((field, value));
                }
                Change::Event { event, payload }
            }
            other => return Err(r.error(format!("unknown change type {other}"))),
        };
        if r.pos != bytes.len() {
            return Err(r.error(format!(
                "{} trailing bytes after the operation",
                bytes.len() - r.pos
            )));
        }
        Ok(Op {
            id: OpId {
                origin: ActorId(origin),
                seq,
            },
            record,
            kind,
            hlc: Hlc::new(physical as u64, logical),
            origin_org,
            author: Author {
                org: author_org,
                number,
            },
            change,
        })
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

fn put_seen(out: &mut Vec<u8>, seen: &Seen) {
    put_varint(out, seen.len() as u64);
    for (actor, counter) in seen {
        put_varint(out, actor.0);
        put_varint(out, *counter);
    }
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0),
        Value::Text(s) => {
            out.push(1);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Int(n) => {
            out.push(2);
            put_varint(out, zigzag(*n));
        }
        Value::Bool(b) => out.push(if *b { 0x13 } else { 0x03 }),
        Value::Date(d) => {
            out.push(4);
            put_varint(out, zigzag(i64::from(*d)));
        }
        Value::Ref(r) => {
            out.push(5);
            out.extend_from_slice(r.0.as_bytes());
        }
        Value::Org(o) => {
            out.push(6);
            put_varint(out, o.get());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    record: Option<RecordId>,
}

impl Reader<'_> {
    fn error(&self, reason: String) -> OpError {
        OpError {
            record: self.record,
            kind: None,
            field: None,
            reason,
        }
    }

    fn truncated(&self, what: &str) -> OpError {
        self.error(format!(
            "truncated at byte {} while reading {what}",
            self.pos
        ))
    }

    fn byte(&mut self, what: &str) -> Result<u8, OpError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| self.truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], OpError> {
        let slice = self
            .bytes
            .get(self.pos..self.pos + N)
            .ok_or_else(|| self.truncated(what))?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn varint(&mut self, what: &str) -> Result<u64, OpError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.error(format!("{what} overflows 64 bits")));
            }
            n |= part << shift;
            if b & 0x80 == 0 {
                // One encoding per number: a trailing zero group is an over-long form, and
                // accepting it would let two byte strings stand for the same operation.
                if b == 0 && shift > 0 {
                    return Err(self.error(format!("{what} is not minimally encoded")));
                }
                return Ok(n);
            }
        }
        Err(self.error(format!("{what} overflows 64 bits")))
    }

    fn small(&mut self, what: &str, max: u64) -> Result<u64, OpError> {
        let n = self.varint(what)?;
        if n > max {
            return Err(self.error(format!("{what} {n} is larger than {max}")));
        }
        Ok(n)
    }

    fn org(&mut self, what: &str) -> Result<OrgCode, OpError> {
        let n = self.varint(what)?;
        OrgCode::new(n).map_err(|e| self.error(format!("{what}: {e}")))
    }

    fn seen(&mut self) -> Result<Seen, OpError> {
        let count = self.small("context size", MAX_SEEN)?;
        let mut seen = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let actor = self.varint("context actor")?;
            let counter = self.varint("context counter")?;
            seen.push((ActorId(actor), counter));
        }
        Ok(seen)
    }

    fn value(&mut self, what: &str) -> Result<Value, OpError> {
        let tag = self.byte(what)?;
        Ok(match tag {
            0 => Value::Null,
            1 => {
                let len = self.small("text length", MAX_TEXT_BYTES)? as usize;
                let slice = self
                    .bytes
                    .get(self.pos..self.pos + len)
                    .ok_or_else(|| self.truncated("text"))?;
                self.pos += len;
                let text = std::str::from_utf8(slice)
                    .map_err(|_| self.error(format!("{what} is not valid UTF-8")))?;
                Value::Text(text.to_string())
            }
            2 => Value::Int(unzigzag(self.varint("integer")?)),
            0x03 => Value::Bool(false),
            0x13 => Value::Bool(true),
            4 => {
                let d = unzigzag(self.varint("date")?);
                Value::Date(
                    i32::try_from(d).map_err(|_| self.error("date is out of range".into()))?,
                )
            }
            5 => Value::Ref(RecordId(Uuid::from_bytes(self.array::<16>("reference")?))),
            6 => Value::Org(self.org("org unit value")?),
            other => return Err(self.error(format!("{what} has unknown type tag {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn sample(change: Change) -> Op {
        Op {
            id: OpId {
                origin: ActorId(0x1234_5678_9abc),
                seq: 70_000,
            },
            record: RecordId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)),
            kind: KindId(1),
            hlc: Hlc::new(1_790_000_000_000, 2),
            origin_org: OrgCode::new(370_202_001).unwrap(),
            author: Author {
                org: OrgCode::new(370_202_001).unwrap(),
                number: 7,
            },
            change,
        }
    }

    #[test]
    fn every_change_round_trips() {
        let schema = testkit::schema();
        let changes = [
            Change::Put {
                field: FieldId(2),
                value: Value::Text("代表之家".into()),
                seen: vec![(ActorId(5), 9)],
            },
            Change::Put {
                field: FieldId(4),
                value: Value::Int(-12_345),
                seen: vec![],
            },
            Change::Put {
                field: FieldId(2),
                value: Value::Null,
                seen: vec![],
            },
            Change::Add {
                set: SetId(1),
                member: Uuid::from_u128(77),
                counter: 4,
            },
            Change::Remove {
                set: SetId(1),
                member: Uuid::from_u128(77),
                seen: vec![(ActorId(1), 1), (ActorId(2), 4)],
            },
            Change::Event {
                event: EventKindId(1),
                payload: vec![(FieldId(1), Value::Text("王丽".into()))],
            },
        ];
        for change in changes {
            let mut op = sample(change);
            let bytes = op.encode();
            assert_eq!(Op::decode(&bytes, &schema).unwrap(), op);
            // An author from another org unit travels with its org.
            op.author.org = OrgCode::new(370_202).unwrap();
            assert_eq!(Op::decode(&op.encode(), &schema).unwrap(), op);
        }
    }

    #[test]
    fn a_single_field_write_is_compact() {
        let op = sample(Change::Put {
            field: FieldId(2),
            value: Value::Text("0123456789abcdef".into()),
            seen: vec![],
        });
        let len = op.encode().len();
        assert!(len <= 64, "a 16-byte field write encodes to {len} bytes");
    }

    #[test]
    fn every_truncation_is_an_error_naming_what_was_being_read() {
        let bytes = sample(Change::Put {
            field: FieldId(2),
            value: Value::Text("abc".into()),
            seen: vec![(ActorId(5), 9)],
        })
        .encode();
        for cut in 0..bytes.len() {
            let err = Op::decode_unchecked(&bytes[..cut]).unwrap_err();
            assert!(err.reason.contains("truncated"), "cut {cut}: {err}");
            if cut > 17 {
                assert!(err.record.is_some(), "cut {cut}: {err}");
            }
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(
            Op::decode_unchecked(&long)
                .unwrap_err()
                .reason
                .contains("trailing")
        );
    }

    #[test]
    fn schema_violations_name_record_field_and_reason() {
        let schema = testkit::schema();
        let wrong_type = sample(Change::Put {
            field: FieldId(4),
            value: Value::Text("many".into()),
            seen: vec![],
        });
        let err = Op::decode(&wrong_type.encode(), &schema).unwrap_err();
        assert_eq!(err.record, Some(wrong_type.record));
        assert_eq!(err.field.as_deref(), Some("count"));
        assert_eq!(err.reason, "expects integer, got text");
        assert!(err.to_string().contains(&wrong_type.record.to_string()));

        let too_long = sample(Change::Put {
            field: FieldId(2),
            value: Value::Text("x".repeat(25)),
            seen: vec![],
        });
        let err = too_long.validate(&schema).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("title"));
        assert!(err.reason.contains("longer than the limit of 24"), "{err}");

        let mut unknown_kind = too_long.clone();
        unknown_kind.kind = KindId(99);
        let err = unknown_kind.validate(&schema).unwrap_err();
        assert_eq!(err.reason, "unknown record kind 99");

        let unknown_field = sample(Change::Put {
            field: FieldId(60),
            value: Value::Null,
            seen: vec![],
        });
        assert_eq!(
            unknown_field.validate(&schema).unwrap_err().reason,
            "unknown field"
        );

        let missing = sample(Change::Event {
            event: EventKindId(1),
            payload: vec![],
        });
        let err = missing.validate(&schema).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("signed.by"));
        assert_eq!(err.reason, "required field is missing");
    }
}

#[cfg(test)]
mod edge_tests {
    use super::*;

    #[test]
    fn extreme_numbers_are_errors_not_panics() {
        // Header, record id, kind 1, actor 1, seq 1, then a clock of u64::MAX.
        let mut bytes = vec![(FORMAT_VERSION << 4) | CHANGE_PUT];
        bytes.extend_from_slice(&[0u8; 16]);
        bytes.extend_from_slice(&[1, 1, 1]);
        put_varint(&mut bytes, u64::MAX);
        let err = Op::decode_unchecked(&bytes).unwrap_err();
        assert_eq!(err.reason, "clock is out of range");
        let mut overlong = vec![(FORMAT_VERSION << 4) | CHANGE_PUT];
        overlong.extend_from_slice(&[0u8; 16]);
        overlong.extend_from_slice(&[0x81, 0x00]);
        let err = Op::decode_unchecked(&overlong).unwrap_err();
        assert_eq!(err.reason, "kind is not minimally encoded");
    }
}
