//! What a person read of a record, so that a form saved later is written against it.
//!
//! A form shows a record at one moment and is saved minutes or days later, after other nodes'
//! edits may have arrived. A [`Version`] taken when the record was read holds, per field, the
//! register's clock then and a digest of the value shown; per set, the set's clock then. A
//! save built with [`Record::put_against`] and [`Record::remove_against`]:
//! - writes nothing for a field the person left as they read it, whatever it holds now (an
//!   edit that arrived meanwhile stands), nor a value the field holds now;
//! - writes a changed field with the clock read, so it replaces exactly the values the person
//!   saw: a value written elsewhere meanwhile is concurrent with it and stays beside it, a
//!   conflict for a person to settle;
//! - refuses a field that someone changed *at this node* since the read (a write of the same
//!   origin always follows the origin's earlier ones, so it cannot be made concurrent with
//!   them): the person reloads the form and sees that change.
//!
//! The token is opaque to clients: `v1` bytes (record id, fields, sets) in hexadecimal.

use crate::ids::{ActorId, RecordId};
use crate::op::{Change, Seen};
use crate::record::Record;
use crate::schema::{FieldId, SetId};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

const FORMAT: u8 = 1;

/// A record as read: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    record: RecordId,
    /// Per field present then: its register's whole clock and, when it showed one value
    /// without conflicts, that value's digest.
    fields: BTreeMap<FieldId, (Seen, Option<u64>)>,
    /// Per set present then: its clock and its members (the random low half of each id,
    /// sorted).
    sets: BTreeMap<SetId, (Seen, Vec<u64>)>,
}

/// A version token that does not read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("is not a record version ({0}); send back the version of the record as read")]
    Malformed(&'static str),
    #[error("is the version of record {found}, not of {expected}")]
    OtherRecord { expected: RecordId, found: RecordId },
}

/// A field changed at this node after the version was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("field {} was changed at this node after the form was read", field.0)]
pub struct ChangedHere {
    pub field: FieldId,
}

impl Version {
    /// The version of a record read with nothing in it.
    pub fn empty(record: RecordId) -> Version {
        Version {
            record,
            fields: BTreeMap::new(),
            sets: BTreeMap::new(),
        }
    }

    pub fn record(&self) -> RecordId {
        self.record
    }

    /// Whether `member` was in `set` when the person read the record.
    pub fn had_member(&self, set: SetId, member: Uuid) -> bool {
        self.sets
            .get(&set)
            .is_some_and(|(_, members)| members.binary_search(&low_half(member)).is_ok())
    }

    /// Whether `field` showed concurrent values when the person read the record.
    pub fn showed_conflict(&self, field: FieldId) -> bool {
        self.fields
            .get(&field)
            .is_some_and(|(_, shown)| shown.is_none())
    }

    /// The token a client sends back.
    pub fn encode(&self) -> String {
        // Serialising maps, vectors and integers into a Vec cannot fail.
        let body = postcard::to_stdvec(self).expect("a version serialises into memory");
        let mut out = String::with_capacity(2 + 2 * body.len());
        for b in std::iter::once(FORMAT).chain(body) {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Reads a token for record `expected`.
    pub fn decode(token: &str, expected: RecordId) -> Result<Version, VersionError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(VersionError::Malformed("empty"));
        }
        if !token.len().is_multiple_of(2) || token.len() > 64 * 1024 {
            return Err(VersionError::Malformed("wrong length"));
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| {
                token
                    .get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or(VersionError::Malformed("not hexadecimal"))?;
        let (format, body) = bytes
            .split_first()
            .ok_or(VersionError::Malformed("empty"))?;
        if *format != FORMAT {
            return Err(VersionError::Malformed("unknown format"));
        }
        let version: Version =
            postcard::from_bytes(body).map_err(|_| VersionError::Malformed("damaged"))?;
        if version.record != expected {
            return Err(VersionError::OtherRecord {
                expected,
                found: version.record,
            });
        }
        Ok(version)
    }
}

/// The digest a version keeps of a value shown (FNV-1a over its encoding).
fn digest(value: &Value) -> u64 {
    // Serialising a value into a Vec cannot fail.
    let bytes = postcard::to_stdvec(value).expect("a value serialises into memory");
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The random low 64 bits of an id (a UUIDv7's high bits are its creation time).
fn low_half(id: Uuid) -> u64 {
    id.as_u64_pair().1
}

fn covers(clock: &Seen, actor: ActorId, counter: u64) -> bool {
    clock.iter().any(|&(a, c)| a == actor && c >= counter)
}

impl Record {
    /// What a person reading this record now sees of it.
    pub fn version(&self) -> Version {
        let fields = self
            .fields_iter()
            .map(|(field, register)| {
                let shown = register
                    .view(*field)
                    .filter(|v| v.conflicts.is_empty())
                    .map(|v| digest(&v.winner.value));
                (*field, (register.clock(), shown))
            })
            .collect();
        let sets = self
            .sets_iter()
            .map(|(set, members)| {
                let mut read: Vec<u64> = members.members().into_iter().map(low_half).collect();
                read.sort_unstable();
                (*set, (members.seen(), read))
            })
            .collect();
        Version {
            record: self.id(),
            fields,
            sets,
        }
    }

    /// A form's write of `value` to `field` by `actor`, against what the person read: `None`
    /// when the person left the field as read, or when `value` is one the field holds now (a
    /// form filled from the record as it is echoes it; settling concurrent values is
    /// [`Record::put`] with the person's choice, not a form save).
    pub fn put_against(
        &self,
        actor: ActorId,
        field: FieldId,
        value: Value,
        read: &Version,
    ) -> Result<Option<Change>, ChangedHere> {
        let untouched = match read.fields.get(&field) {
            Some((_, Some(shown))) => *shown == digest(&value),
            Some((_, None)) => false,
            // Absent when read: nothing shown, so an empty value leaves it as read.
            None => value == Value::Null,
        };
        let holds = self
            .register(field)
            .is_some_and(|r| r.values().any(|v| v == value));
        if untouched || holds {
            return Ok(None);
        }
        self.settle_against(actor, field, value, read).map(Some)
    }

    /// A write of `value` to `field` by `actor` that replaces exactly the values the person
    /// read (a person's choice among concurrent values, or a form's changed field): a value
    /// written elsewhere since stays beside it. Refused when someone changed the field at
    /// this node since the read.
    pub fn settle_against(
        &self,
        actor: ActorId,
        field: FieldId,
        value: Value,
        read: &Version,
    ) -> Result<Change, ChangedHere> {
        let clock = read
            .fields
            .get(&field)
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        let changed_here = self.register(field).is_some_and(|r| {
            r.dots()
                .any(|d| d.origin == actor && !covers(&clock, actor, d.seq))
        });
        if changed_here {
            return Err(ChangedHere { field });
        }
        let seen = clock.into_iter().filter(|(a, _)| *a != actor).collect();
        Ok(Change::Put { field, value, seen })
    }

    /// A form's removal of `member` from `set`, against what the person read: it removes the
    /// adds the person saw; one made meanwhile elsewhere survives (add wins).
    pub fn remove_against(&self, set: SetId, member: Uuid, read: &Version) -> Change {
        let seen = read
            .sets
            .get(&set)
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        Change::Remove { set, member, seen }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Author, OrgCode};
    use crate::replica::Replica;
    use crate::schema::KindId;
    use crate::testkit;
    use std::sync::Arc;

    const NOTE: KindId = KindId(1);
    const TITLE: FieldId = FieldId(2);
    const BODY: FieldId = FieldId(3);
    const MEMBERS: SetId = SetId(1);

    fn pair() -> (Replica, Replica) {
        let schema = Arc::new(testkit::schema());
        let org = |c| OrgCode::new(c).expect("a valid test org code");
        (
            Replica::new(ActorId(1), org(370_202), schema.clone()),
            Replica::new(ActorId(2), org(370_202_001), schema),
        )
    }

    fn exchange(a: &mut Replica, b: &mut Replica) {
        let (from_a, from_b) = (a.log().to_vec(), b.log().to_vec());
        for op in from_a {
            b.receive(op, 10_000);
        }
        for op in from_b {
            a.receive(op, 10_000);
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// The form `values` saved at `node` against `read`: the changes it makes, written.
    fn save(node: &mut Replica, id: RecordId, read: &Version, values: &[(FieldId, Value)]) {
        let actor = node.actor();
        let record = node.record(id).expect("the record is here").clone();
        for (field, value) in values {
            let change = record
                .put_against(actor, *field, value.clone(), read)
                .expect("nothing changed here since the read");
            if let Some(change) = change {
                node.local(id, NOTE, Author::system(node.org()), 20_000, |_| change)
                    .expect("the change fits the schema");
            }
        }
    }

    fn shown(node: &Replica, id: RecordId, field: FieldId) -> (Value, Vec<Value>) {
        let view = node
            .record(id)
            .and_then(|r| r.register(field))
            .and_then(|r| r.view(field))
            .expect("the field has a value");
        (
            view.winner.value,
            view.conflicts.into_iter().map(|c| c.value).collect(),
        )
    }

    /// Both nodes hold a note titled and described; `a` then reads it.
    fn read_note() -> (Replica, Replica, RecordId, Version) {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::now_v7());
        b.put(id, NOTE, TITLE, text("旧标题"), 1_000).expect("put");
        b.put(id, NOTE, BODY, text("旧内容"), 1_000).expect("put");
        exchange(&mut a, &mut b);
        let read = a.record(id).expect("synced").version();
        (a, b, id, read)
    }

    #[test]
    fn a_stale_form_keeps_an_edit_it_did_not_touch() {
        let (mut a, mut b, id, read) = read_note();
        b.put(id, NOTE, TITLE, text("乡镇改的标题"), 2_000)
            .expect("put");
        exchange(&mut a, &mut b);
        // The form shows the old title and the person changed only the body.
        save(
            &mut a,
            id,
            &read,
            &[(TITLE, text("旧标题")), (BODY, text("区里改的内容"))],
        );
        exchange(&mut a, &mut b);
        for node in [&a, &b] {
            assert_eq!(shown(node, id, TITLE), (text("乡镇改的标题"), vec![]));
            assert_eq!(shown(node, id, BODY), (text("区里改的内容"), vec![]));
        }
    }

    #[test]
    fn a_stale_form_that_changed_the_same_field_shows_a_conflict() {
        let (mut a, mut b, id, read) = read_note();
        b.put(id, NOTE, TITLE, text("乡镇改的标题"), 2_000)
            .expect("put");
        exchange(&mut a, &mut b);
        save(&mut a, id, &read, &[(TITLE, text("区里改的标题"))]);
        exchange(&mut a, &mut b);
        for node in [&a, &b] {
            let (winner, others) = shown(node, id, TITLE);
            let mut values = [vec![winner], others].concat();
            values.sort_by_key(|v| format!("{v:?}"));
            assert_eq!(values, vec![text("乡镇改的标题"), text("区里改的标题")]);
        }
        // A form filled from the record as it is now echoes a value it holds: the conflict
        // stays for a person to settle.
        let read = a.record(id).expect("here").version();
        let winner = shown(&a, id, TITLE).0;
        save(&mut a, id, &read, &[(TITLE, winner)]);
        assert_eq!(shown(&a, id, TITLE).1.len(), 1);
        // A person's choice, or a new value typed in a form read now, replaces both.
        save(&mut a, id, &read, &[(TITLE, text("商定的标题"))]);
        exchange(&mut a, &mut b);
        assert_eq!(shown(&b, id, TITLE), (text("商定的标题"), vec![]));
    }

    #[test]
    fn a_form_read_before_an_edit_at_the_same_node_is_refused_for_that_field() {
        let (mut a, _b, id, read) = read_note();
        a.put(id, NOTE, TITLE, text("同事刚改的标题"), 2_000)
            .expect("put");
        let record = a.record(id).expect("here");
        assert_eq!(
            record.put_against(a.actor(), TITLE, text("我的标题"), &read),
            Err(ChangedHere { field: TITLE })
        );
        // A field the colleague did not touch can still be saved.
        assert!(matches!(
            record.put_against(a.actor(), BODY, text("我的内容"), &read),
            Ok(Some(Change::Put { .. }))
        ));
    }

    #[test]
    fn a_fresh_form_replaces_what_it_read_and_an_unchanged_one_writes_nothing() {
        let (mut a, mut b, id, read) = read_note();
        let record = a.record(id).expect("here").clone();
        assert_eq!(
            record.put_against(a.actor(), TITLE, text("旧标题"), &read),
            Ok(None)
        );
        assert_eq!(
            record.put_against(a.actor(), FieldId(4), Value::Null, &read),
            Ok(None),
            "a field absent when read and sent empty is left as read"
        );
        save(&mut a, id, &read, &[(TITLE, text("新标题"))]);
        exchange(&mut a, &mut b);
        assert_eq!(shown(&b, id, TITLE), (text("新标题"), vec![]));
    }

    #[test]
    fn removing_a_member_as_read_keeps_an_add_made_meanwhile() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::now_v7());
        let (seen, later) = (Uuid::now_v7(), Uuid::now_v7());
        b.add(id, NOTE, MEMBERS, seen, 1_000).expect("add");
        exchange(&mut a, &mut b);
        let record = a.record(id).expect("synced").clone();
        let read = record.version();
        assert!(read.had_member(MEMBERS, seen));
        // Meanwhile the township adds the member again, and another one.
        b.add(id, NOTE, MEMBERS, seen, 2_000).expect("add");
        b.add(id, NOTE, MEMBERS, later, 2_000).expect("add");
        exchange(&mut a, &mut b);
        let record = a.record(id).expect("here").clone();
        assert!(!read.had_member(MEMBERS, later));
        let change = record.remove_against(MEMBERS, seen, &read);
        a.local(id, NOTE, Author::system(a.org()), 3_000, |_| change)
            .expect("remove");
        exchange(&mut a, &mut b);
        for node in [&a, &b] {
            let members = node
                .record(id)
                .and_then(|r| r.member_set(MEMBERS))
                .map(|s| s.members())
                .unwrap_or_default();
            assert!(members.contains(&seen), "the add made meanwhile wins");
            assert!(members.contains(&later));
        }
    }

    #[test]
    fn a_token_reads_back_only_for_its_record_and_garbage_is_refused() {
        let (a, _b, id, read) = read_note();
        let token = read.encode();
        assert_eq!(Version::decode(&token, id), Ok(read));
        let other = RecordId(Uuid::now_v7());
        assert!(matches!(
            Version::decode(&token, other),
            Err(VersionError::OtherRecord { .. })
        ));
        for bad in [
            "",
            "zz",
            "0",
            "02ab",
            &token[..token.len() - 2],
            "01ffffffff",
        ] {
            assert!(
                matches!(Version::decode(bad, id), Err(VersionError::Malformed(_))),
                "{bad:?} is refused"
            );
        }
        drop(a);
    }
}
