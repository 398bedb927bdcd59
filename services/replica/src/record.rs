//! One record as its own CRDT: each scalar field a multi-value register (`crdts::MVReg`), each
//! membership set an add-wins `crdts::Orswot`, and the workflow events a grow-only
//! `crdts::GSet`. The parts are independent CRDTs, so the store can load and persist only the
//! part an operation touches.

use crate::hlc::Hlc;
use crate::ids::{ActorId, Author, OpId, OrgCode, RecordId};
use crate::op::{Change, Op, Seen};
use crate::schema::{DELETED, EventKindId, FieldId, KindId, ORG, SetId};
use crate::value::Value;
use crate::{Materialise, Replicated};
use crdts::{CmRDT, CvRDT, Dot, GSet, MVReg, Orswot, VClock, mvreg, orswot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Who wrote a value or an event, where and when.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub hlc: Hlc,
    pub op: OpId,
    pub author: Author,
    pub org: OrgCode,
}

impl Stamp {
    pub fn of(op: &Op) -> Self {
        Stamp {
            hlc: op.hlc,
            op: op.id,
            author: op.author,
            org: op.origin_org,
        }
    }

    /// The deterministic order among concurrent values: highest clock, then actor, then
    /// sequence.
    fn rank(&self) -> (Hlc, ActorId, u64) {
        (self.hlc, self.op.origin, self.op.seq)
    }
}

/// A value as it sits in a register, with its stamp.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamped {
    pub stamp: Stamp,
    pub value: Value,
}

/// An immutable workflow event. Ordered by clock, then origin, then sequence: the order in
/// which every replica folds them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    pub stamp: Stamp,
    pub kind: EventKindId,
    pub payload: Vec<(FieldId, Value)>,
}

impl Event {
    pub fn get(&self, field: FieldId) -> Option<&Value> {
        self.payload
            .iter()
            .find(|(id, _)| *id == field)
            .map(|(_, value)| value)
    }
}

/// The materialised state of a field: the value every replica shows, and the concurrent
/// values that lost (a conflict waiting for a person while not empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldView {
    pub field: FieldId,
    pub winner: Stamped,
    pub conflicts: Vec<Stamped>,
}

/// One scalar field: a multi-value register. Writes commute — a write's clock says which
/// values it replaces — so registers need no delivery order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Register(MVReg<Stamped, ActorId>);

impl Register {
    /// The context a write by `actor` carries: every value it sees now, minus its own entry,
    /// which the write's dot implies.
    pub fn seen_by(&self, actor: ActorId) -> Seen {
        self.0
            .read_ctx()
            .add_clock
            .into_iter()
            .filter(|d| d.actor != actor)
            .map(|d| (d.actor, d.counter))
            .collect()
    }

    /// The register's whole clock, its own writers' entries included.
    pub fn clock(&self) -> Seen {
        self.0
            .read_ctx()
            .add_clock
            .into_iter()
            .map(|d| (d.actor, d.counter))
            .collect()
    }

    /// The values it holds now, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = Value> {
        self.0.read().val.into_iter().map(|v| v.value)
    }

    /// The operations whose values it holds now.
    pub fn dots(&self) -> impl Iterator<Item = OpId> {
        self.0.read().val.into_iter().map(|v| v.stamp.op)
    }

    /// Applies a write: its dot is (origin, origin sequence), its clock that dot plus `seen`.
    fn put(&mut self, op: &Op, value: &Value, seen: &Seen) {
        let mut clock: VClock<ActorId> = seen.iter().map(|&(a, c)| Dot::new(a, c)).collect();
        clock.apply(Dot::new(op.id.origin, op.id.seq));
        self.0.apply(mvreg::Op::Put {
            clock,
            val: Stamped {
                stamp: Stamp::of(op),
                value: value.clone(),
            },
        });
    }

    /// The winner and the conflicting values, in the same order on every replica (`MVReg`
    /// itself returns them in arrival order). Concurrent writes of the *same* value are no
    /// conflict for a person: only values that differ from the winner's are listed.
    pub fn view(&self, field: FieldId) -> Option<FieldView> {
        let mut values = self.0.read().val;
        values.sort_by_key(|v| std::cmp::Reverse(v.stamp.rank()));
        let mut values = values.into_iter();
        let winner = values.next()?;
        let mut conflicts: Vec<Stamped> = Vec::new();
        for value in values {
            if value.value != winner.value && conflicts.iter().all(|c| c.value != value.value) {
                conflicts.push(value);
            }
        }
        Some(FieldView {
            field,
            winner,
            conflicts,
        })
    }

    pub fn merge(&mut self, other: Register) {
        self.0.merge(other.0);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain vectors and integers into a Vec cannot fail.
        postcard::to_stdvec(self).expect("register state serialises into memory")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        postcard::from_bytes(bytes).map_err(|e| StateError {
            reason: e.to_string(),
        })
    }
}

/// One membership set: add-wins. `crdts` silently ignores an add whose dot is not the next
/// of its actor, so adds carry a per-(set, actor) counter and one that arrives early is held.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MemberSet(Orswot<Uuid, ActorId>);

impl MemberSet {
    /// The counter the next add by `actor` carries.
    pub fn next_add(&self, actor: ActorId) -> u64 {
        self.0.clock().get(&actor) + 1
    }

    /// The set's whole clock: what a remove made now has seen.
    pub fn seen(&self) -> Seen {
        self.0
            .clock()
            .into_iter()
            .map(|d| (d.actor, d.counter))
            .collect()
    }

    fn add(&mut self, origin: ActorId, member: Uuid, counter: u64) -> Applied {
        let have = self.0.clock().get(&origin);
        if counter <= have {
            return Applied::Duplicate;
        }
        if counter != have + 1 {
            return Applied::Gap { expected: have + 1 };
        }
        self.0.apply(orswot::Op::Add {
            dot: Dot::new(origin, counter),
            members: vec![member],
        });
        Applied::Applied
    }

    /// A remove carries no dot of its own: it removes the adds its clock covers, and is kept
    /// aside (deferred) inside the set until the adds it covers have arrived.
    fn remove(&mut self, member: Uuid, seen: &Seen) {
        let clock: VClock<ActorId> = seen.iter().map(|&(a, c)| Dot::new(a, c)).collect();
        self.0.apply(orswot::Op::Rm {
            clock,
            members: vec![member],
        });
    }

    /// The members, sorted.
    pub fn members(&self) -> Vec<Uuid> {
        let mut members: Vec<Uuid> = self.0.read().val.into_iter().collect();
        members.sort();
        members
    }

    pub fn merge(&mut self, other: MemberSet) {
        self.0.merge(other.0);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain maps, vectors and integers into a Vec cannot fail.
        postcard::to_stdvec(self).expect("set state serialises into memory")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        postcard::from_bytes(bytes).map_err(|e| StateError {
            reason: e.to_string(),
        })
    }
}

/// The replicated state of one record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    id: RecordId,
    kind: KindId,
    fields: BTreeMap<FieldId, Register>,
    sets: BTreeMap<SetId, MemberSet>,
    events: GSet<Event>,
}

/// What happened to an operation given to [`Record::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Already applied: applying an operation twice changes nothing.
    Duplicate,
    /// A set add whose predecessor from the same origin on the same set is missing: hold it.
    Gap {
        expected: u64,
    },
}

/// An operation that cannot apply to this record at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("record {record} is of kind {record_kind}, the operation says kind {op_kind}")]
    KindMismatch {
        record: RecordId,
        record_kind: u16,
        op_kind: u16,
    },
    #[error("operation for record {op_record} given to record {record}")]
    WrongRecord {
        record: RecordId,
        op_record: RecordId,
    },
    #[error("record {record}: a field write's context names its own origin {origin}")]
    SelfInContext { record: RecordId, origin: ActorId },
}

/// Where a held operation waits: the set, the origin and the add counter it carries.
pub type HoldKey = (SetId, ActorId, u64);

/// Operations of one record waiting for an earlier add of the same origin on the same set.
pub type Held = BTreeMap<HoldKey, Op>;

/// The hold key of an operation that can be held (a set add).
pub fn hold_key(op: &Op) -> Option<HoldKey> {
    match op.change {
        Change::Add { set, counter, .. } => Some((set, op.id.origin, counter)),
        _ => None,
    }
}

/// What [`Record::receive`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Operations applied, in order: the received one and any held ones it unblocked.
    pub applied: Vec<Op>,
    pub duplicate: bool,
    pub held: bool,
}

/// The materialised state of a record, identical on every replica that applied the same ops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordView {
    pub id: RecordId,
    pub kind: KindId,
    pub deleted: bool,
    pub org: Option<OrgCode>,
    pub fields: Vec<FieldView>,
    pub sets: BTreeMap<SetId, Vec<Uuid>>,
    pub events: Vec<Event>,
}

impl RecordView {
    pub fn field(&self, id: FieldId) -> Option<&FieldView> {
        self.fields.iter().find(|f| f.field == id)
    }

    pub fn value(&self, id: FieldId) -> Option<&Value> {
        self.field(id).map(|f| &f.winner.value)
    }

    pub fn has_conflicts(&self) -> bool {
        self.fields.iter().any(|f| !f.conflicts.is_empty())
    }
}

/// The envelope of a local change.
#[derive(Clone, Copy, Debug)]
pub struct Envelope {
    pub id: OpId,
    pub hlc: Hlc,
    pub origin_org: OrgCode,
    pub author: Author,
}

impl Record {
    pub fn new(id: RecordId, kind: KindId) -> Self {
        Record {
            id,
            kind,
            fields: BTreeMap::new(),
            sets: BTreeMap::new(),
            events: GSet::new(),
        }
    }

    pub fn id(&self) -> RecordId {
        self.id
    }

    pub fn kind(&self) -> KindId {
        self.kind
    }

    pub fn register(&self, field: FieldId) -> Option<&Register> {
        self.fields.get(&field)
    }

    pub fn member_set(&self, set: SetId) -> Option<&MemberSet> {
        self.sets.get(&set)
    }

    pub(crate) fn fields_iter(&self) -> impl Iterator<Item = (&FieldId, &Register)> {
        self.fields.iter()
    }

    pub(crate) fn sets_iter(&self) -> impl Iterator<Item = (&SetId, &MemberSet)> {
        self.sets.iter()
    }

    /// Builds the operation for a local change; apply it with [`Record::apply`] in the same
    /// transaction that logs it.
    pub fn local_op(&self, envelope: Envelope, change: Change) -> Op {
        Op {
            id: envelope.id,
            record: self.id,
            kind: self.kind,
            hlc: envelope.hlc,
            origin_org: envelope.origin_org,
            author: envelope.author,
            change,
        }
    }

    /// A field write by `actor` that replaces every value it sees now, conflicts included.
    pub fn put(&self, actor: ActorId, field: FieldId, value: Value) -> Change {
        let seen = self
            .fields
            .get(&field)
            .map(|r| r.seen_by(actor))
            .unwrap_or_default();
        Change::Put { field, value, seen }
    }

    pub fn add(&self, actor: ActorId, set: SetId, member: Uuid) -> Change {
        let counter = self.sets.get(&set).map_or(1, |s| s.next_add(actor));
        Change::Add {
            set,
            member,
            counter,
        }
    }

    /// A remove of what this replica sees of `member` now; a concurrent add elsewhere survives.
    pub fn remove(&self, set: SetId, member: Uuid) -> Change {
        let seen = self.sets.get(&set).map(|s| s.seen()).unwrap_or_default();
        Change::Remove { set, member, seen }
    }

    pub fn event(&self, event: EventKindId, payload: Vec<(FieldId, Value)>) -> Change {
        Change::Event { event, payload }
    }

    /// Applies `op`. Field writes, removes and events commute and apply at once; a set add
    /// applies only when it is the next add of its origin on that set.
    pub fn apply(&mut self, op: &Op) -> Result<Applied, ApplyError> {
        if op.record != self.id {
            return Err(ApplyError::WrongRecord {
                record: self.id,
                op_record: op.record,
            });
        }
        if op.kind != self.kind {
            return Err(ApplyError::KindMismatch {
                record: self.id,
                record_kind: self.kind.0,
                op_kind: op.kind.0,
            });
        }
        apply_change(self, op)
    }

    /// Applies `op`, holding a set add in `held` if an earlier add of its origin is missing,
    /// and applying the held adds it unblocks.
    pub fn receive(&mut self, op: Op, held: &mut Held) -> Result<Received, ApplyError> {
        let mut received = Received::default();
        match self.apply(&op)? {
            Applied::Duplicate => received.duplicate = true,
            Applied::Gap { .. } => {
                received.held = true;
                if let Some(key) = hold_key(&op) {
                    held.insert(key, op);
                }
            }
            Applied::Applied => {
                let next = hold_key(&op);
                received.applied.push(op);
                if let Some((set, origin, mut counter)) = next {
                    while let Some(ready) = held.remove(&(set, origin, counter + 1)) {
                        self.apply(&ready)?;
                        received.applied.push(ready);
                        counter += 1;
                    }
                }
            }
        }
        Ok(received)
    }

    fn view_fields(&self) -> Vec<FieldView> {
        self.fields
            .iter()
            .filter_map(|(field, register)| register.view(*field))
            .collect()
    }
}

/// Applies one change to the part of `record` it touches.
fn apply_change(record: &mut Record, op: &Op) -> Result<Applied, ApplyError> {
    Ok(match &op.change {
        Change::Put { field, value, seen } => {
            if seen.iter().any(|(actor, _)| *actor == op.id.origin) {
                return Err(ApplyError::SelfInContext {
                    record: record.id,
                    origin: op.id.origin,
                });
            }
            record
                .fields
                .entry(*field)
                .or_default()
                .put(op, value, seen);
            Applied::Applied
        }
        Change::Add {
            set,
            member,
            counter,
        } => record
            .sets
            .entry(*set)
            .or_default()
            .add(op.id.origin, *member, *counter),
        Change::Remove { set, member, seen } => {
            record.sets.entry(*set).or_default().remove(*member, seen);
            Applied::Applied
        }
        Change::Event { event, payload } => {
            let event = Event {
                stamp: Stamp::of(op),
                kind: *event,
                payload: payload.clone(),
            };
            if record.events.contains(&event) {
                Applied::Duplicate
            } else {
                record.events.insert(event);
                Applied::Applied
            }
        }
    })
}

impl Replicated for Record {
    type Op = Op;
    type Error = ApplyError;

    fn apply_op(&mut self, op: &Op) -> Result<Applied, ApplyError> {
        self.apply(op)
    }

    fn merge(&mut self, other: Self) {
        for (id, register) in other.fields {
            self.fields.entry(id).or_default().merge(register);
        }
        for (id, set) in other.sets {
            self.sets.entry(id).or_default().merge(set);
        }
        self.events.merge(other.events);
    }
}

impl Materialise for Record {
    type View = RecordView;

    fn materialise(&self) -> RecordView {
        let fields = self.view_fields();
        let deleted = fields
            .iter()
            .find(|f| f.field == DELETED)
            .and_then(|f| f.winner.value.as_bool())
            .unwrap_or(false);
        let org = fields
            .iter()
            .find(|f| f.field == ORG)
            .and_then(|f| f.winner.value.as_org());
        let sets = self
            .sets
            .iter()
            .map(|(id, set)| (*id, set.members()))
            .filter(|(_, members)| !members.is_empty())
            .collect();
        RecordView {
            id: self.id,
            kind: self.kind,
            deleted,
            org,
            fields,
            sets,
            events: self.events.read().into_iter().collect(),
        }
    }
}

/// Encoding of a record's whole state: `postcard`, a compact binary format. (JSON cannot
/// carry the deferred removes of a set, whose keys are clocks.)
impl Record {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain maps, vectors and integers into a Vec cannot fail.
        postcard::to_stdvec(self).expect("record state serialises into memory")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        postcard::from_bytes(bytes).map_err(|e| StateError {
            reason: e.to_string(),
        })
    }

    /// Rebuilds a record from its parts as a store keeps them.
    pub fn from_parts(
        id: RecordId,
        kind: KindId,
        fields: BTreeMap<FieldId, Register>,
        sets: BTreeMap<SetId, MemberSet>,
        events: impl IntoIterator<Item = Event>,
    ) -> Self {
        let mut set = GSet::new();
        for event in events {
            set.insert(event);
        }
        Record {
            id,
            kind,
            fields,
            sets,
            events: set,
        }
    }
}

/// A stored state that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored record state is unreadable: {reason}")]
pub struct StateError {
    pub reason: String,
}

/// Applies `op` to a single register, as a store that keeps registers apart does. Returns
/// `Err` for a context that names the writer itself.
pub fn apply_put(register: &mut Register, op: &Op) -> Result<(), ApplyError> {
    if let Change::Put { value, seen, .. } = &op.change {
        if seen.iter().any(|(actor, _)| *actor == op.id.origin) {
            return Err(ApplyError::SelfInContext {
                record: op.record,
                origin: op.id.origin,
            });
        }
        register.put(op, value, seen);
    }
    Ok(())
}

/// Applies a set change to a single set, as a store that keeps sets apart does.
pub fn apply_set_change(set: &mut MemberSet, op: &Op) -> Applied {
    match &op.change {
        Change::Add {
            member, counter, ..
        } => set.add(op.id.origin, *member, *counter),
        Change::Remove { member, seen, .. } => {
            set.remove(*member, seen);
            Applied::Applied
        }
        _ => Applied::Applied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::{Outcome, Replica};
    use crate::schema::{FieldId, KindId, SetId};
    use crate::testkit;
    use std::sync::Arc;

    const NOTE: KindId = KindId(1);
    const TITLE: FieldId = FieldId(2);
    const MEMBERS: SetId = SetId(1);

    fn org(code: u64) -> OrgCode {
        OrgCode::new(code).unwrap()
    }

    fn pair() -> (Replica, Replica) {
        let schema = Arc::new(testkit::schema());
        (
            Replica::new(ActorId(1), org(370_202_001), schema.clone()),
            Replica::new(ActorId(2), org(370_202), schema),
        )
    }

    fn exchange(a: &mut Replica, b: &mut Replica, now: u64) {
        let from_a: Vec<Op> = a.log().to_vec();
        let from_b: Vec<Op> = b.log().to_vec();
        for op in from_a {
            b.receive(op, now);
        }
        for op in from_b {
            a.receive(op, now);
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    #[test]
    fn the_same_field_edited_on_two_replicas_shows_the_same_conflict_on_both() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(7));
        a.put(id, NOTE, TITLE, text("base"), 1_000).unwrap();
        exchange(&mut a, &mut b, 1_000);
        a.put(id, NOTE, TITLE, text("from township"), 2_000)
            .unwrap();
        b.put(id, NOTE, TITLE, text("from county"), 2_500).unwrap();
        exchange(&mut a, &mut b, 3_000);

        let (va, vb) = (a.view(id).unwrap(), b.view(id).unwrap());
        assert_eq!(va, vb);
        let field = va.field(TITLE).unwrap();
        assert_eq!(
            field.winner.value,
            text("from county"),
            "highest clock wins"
        );
        assert_eq!(field.conflicts.len(), 1);
        assert_eq!(field.conflicts[0].value, text("from township"));
        assert_eq!(field.conflicts[0].stamp.org, org(370_202_001));
    }

    #[test]
    fn a_later_write_that_saw_both_values_resolves_the_conflict_everywhere() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(8));
        a.put(id, NOTE, TITLE, text("one"), 1_000).unwrap();
        b.put(id, NOTE, TITLE, text("two"), 1_000).unwrap();
        exchange(&mut a, &mut b, 1_000);
        assert!(a.view(id).unwrap().has_conflicts());

        // A person at replica A resolves it with an older clock than B's value: the write saw
        // both values, so it replaces both regardless of clocks.
        a.put(id, NOTE, TITLE, text("agreed"), 500).unwrap();
        exchange(&mut a, &mut b, 2_000);
        for replica in [&a, &b] {
            let view = replica.view(id).unwrap();
            let field = view.field(TITLE).unwrap();
            assert_eq!(field.winner.value, text("agreed"));
            assert!(field.conflicts.is_empty(), "{:?}", field.conflicts);
        }
    }

    #[test]
    fn a_remove_concurrent_with_an_add_keeps_the_member() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(9));
        let deputy = Uuid::from_u128(42);
        let author = Author::system(org(370_202_001));
        a.add(id, NOTE, MEMBERS, deputy, 1_000).unwrap();
        exchange(&mut a, &mut b, 1_000);
        // A removes what it saw; B concurrently adds the same deputy again.
        a.local(id, NOTE, author, 2_000, |r| r.remove(MEMBERS, deputy))
            .unwrap();
        b.add(id, NOTE, MEMBERS, deputy, 2_000).unwrap();
        exchange(&mut a, &mut b, 3_000);
        for replica in [&a, &b] {
            let view = replica.view(id).unwrap();
            assert_eq!(view.sets.get(&MEMBERS), Some(&vec![deputy]), "add wins");
        }
        // A remove that has seen every add does remove.
        a.local(id, NOTE, author, 4_000, |r| r.remove(MEMBERS, deputy))
            .unwrap();
        exchange(&mut a, &mut b, 5_000);
        assert_eq!(a.view(id).unwrap().sets.get(&MEMBERS), None);
        assert_eq!(b.view(id).unwrap().sets.get(&MEMBERS), None);
    }

    #[test]
    fn a_remove_that_arrives_before_the_add_it_covers_still_removes() {
        let schema = Arc::new(testkit::schema());
        let mut a = Replica::new(ActorId(1), org(370_202_001), schema.clone());
        let mut b = Replica::new(ActorId(2), org(370_202_002), schema.clone());
        let mut c = Replica::new(ActorId(3), org(370_202), schema);
        let id = RecordId(Uuid::from_u128(10));
        let deputy = Uuid::from_u128(43);
        let author = Author::system(org(370_202_001));
        let add = a.add(id, NOTE, MEMBERS, deputy, 1_000).unwrap();
        b.receive(add.clone(), 1_000);
        let rm = b
            .local(id, NOTE, author, 2_000, |r| r.remove(MEMBERS, deputy))
            .unwrap();
        // C gets B's remove first: the set defers it and applies it when the add arrives.
        assert_eq!(c.receive(rm, 3_000), Outcome::Applied(1));
        assert_eq!(c.receive(add, 3_000), Outcome::Applied(1));
        assert_eq!(c.view(id).unwrap().sets.get(&MEMBERS), None);
        assert_eq!(c.view(id).unwrap(), b.view(id).unwrap());
    }

    #[test]
    fn a_set_add_ahead_of_its_predecessor_is_held_then_applied() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(11));
        let first = a.add(id, NOTE, MEMBERS, Uuid::from_u128(1), 1_000).unwrap();
        let second = a.add(id, NOTE, MEMBERS, Uuid::from_u128(2), 2_000).unwrap();
        assert_eq!(b.receive(second.clone(), 3_000), Outcome::Held);
        assert_eq!(b.held_count(), 1);
        assert_eq!(b.receive(first.clone(), 3_000), Outcome::Applied(2));
        assert_eq!(b.held_count(), 0);
        assert_eq!(b.receive(second, 3_000), Outcome::Duplicate);
        assert_eq!(b.receive(first, 3_000), Outcome::Duplicate);
        assert_eq!(b.view(id), a.view(id));
        assert_eq!(b.view(id).unwrap().sets[&MEMBERS].len(), 2);
    }

    #[test]
    fn field_writes_commute_so_a_late_one_is_not_lost_or_held() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(15));
        let first = a.put(id, NOTE, TITLE, text("first"), 1_000).unwrap();
        let other = a.put(id, NOTE, FieldId(3), text("body"), 1_500).unwrap();
        let second = a.put(id, NOTE, TITLE, text("second"), 2_000).unwrap();
        assert_eq!(b.receive(second, 3_000), Outcome::Applied(1));
        assert_eq!(b.receive(other, 3_000), Outcome::Applied(1));
        // The late first write is logged (history keeps it) but the second, which saw it, wins.
        assert_eq!(b.receive(first, 3_000), Outcome::Applied(1));
        assert_eq!(b.log().len(), 3);
        assert_eq!(b.view(id), a.view(id));
        assert_eq!(b.view(id).unwrap().value(TITLE), Some(&text("second")));
    }

    #[test]
    fn the_same_value_written_concurrently_is_no_conflict() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(16));
        a.put(id, NOTE, TITLE, text("same"), 1_000).unwrap();
        b.put(id, NOTE, TITLE, text("same"), 1_000).unwrap();
        exchange(&mut a, &mut b, 2_000);
        assert!(!a.view(id).unwrap().has_conflicts());
        assert_eq!(a.view(id), b.view(id));
    }

    #[test]
    fn soft_delete_is_a_field_and_can_be_undone() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(12));
        a.put(id, NOTE, TITLE, text("x"), 1_000).unwrap();
        a.put(id, NOTE, crate::schema::DELETED, Value::Bool(true), 2_000)
            .unwrap();
        exchange(&mut a, &mut b, 3_000);
        assert!(b.view(id).unwrap().deleted);
        b.put(id, NOTE, crate::schema::DELETED, Value::Bool(false), 4_000)
            .unwrap();
        exchange(&mut a, &mut b, 5_000);
        assert!(!a.view(id).unwrap().deleted);
    }

    #[test]
    fn a_clock_far_in_the_future_does_not_drag_the_receiver() {
        let (mut a, mut b) = pair();
        let id = RecordId(Uuid::from_u128(13));
        let year = 365 * 24 * 3600 * 1000;
        a.put(id, NOTE, TITLE, text("wrong clock"), 1_000 + year)
            .unwrap();
        exchange(&mut a, &mut b, 1_000);
        assert_eq!(b.clamped(), 1);
        let op = b.put(id, NOTE, TITLE, text("fixed"), 2_000).unwrap();
        assert!(op.hlc.physical_ms <= 2_000 + crate::Clock::DEFAULT_MAX_DRIFT_MS);
        // The later write saw the future value, so it still replaces it.
        exchange(&mut a, &mut b, 3_000);
        assert_eq!(a.view(id).unwrap().value(TITLE), Some(&text("fixed")));
        assert_eq!(a.view(id), b.view(id));
    }

    #[test]
    fn state_survives_its_binary_encoding_including_deferred_removes() {
        let schema = Arc::new(testkit::schema());
        let mut a = Replica::new(ActorId(1), org(370_202_001), schema.clone());
        let mut c = Replica::new(ActorId(3), org(370_202), schema);
        let id = RecordId(Uuid::from_u128(14));
        let author = Author::system(org(370_202_001));
        let add = a.add(id, NOTE, MEMBERS, Uuid::from_u128(1), 1).unwrap();
        let rm = a
            .local(id, NOTE, author, 2, |r| {
                r.remove(MEMBERS, Uuid::from_u128(1))
            })
            .unwrap();
        // Deliver the remove of another origin first so C holds a deferred remove.
        let mut rm_other = rm.clone();
        rm_other.id.origin = ActorId(9);
        c.receive(rm_other, 3);
        let state = c.record(id).unwrap();
        let restored = Record::from_bytes(&state.to_bytes()).unwrap();
        assert_eq!(restored.materialise(), state.materialise());
        let mut restored = restored;
        let mut held = Held::new();
        restored.receive(add, &mut held).unwrap();
        assert_eq!(
            restored.materialise().sets.get(&MEMBERS),
            None,
            "deferred remove kept"
        );
        assert!(Record::from_bytes(&[0xff, 0x01]).is_err());
    }
}
