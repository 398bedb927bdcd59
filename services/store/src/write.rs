//! The write path: local changes and remote batches, each one transaction.
//!
//! Both go through [`Work`]: the parts of records a transaction touches (field registers, sets,
//! held set adds, record rows) are loaded once in batched statements, every operation is
//! applied to the part it touches in memory, and each changed part is written back once with
//! multi-row statements. A field write therefore costs its op log row and one upsert of its
//! field row, however large the record.

use crate::db::{Arg, Conn};
use crate::parts::{RecordRow, id_keys, load_record_rows, load_records, load_registers, load_sets};
use crate::{Error, Inner, Store, json, load_clock, now_ms, save_clock};
use renda_replica::schema::{DELETED, ORG};
use renda_replica::{
    ActorId, Applied, Author, Change, Envelope, FieldId, KindId, Materialise, MemberSet, Observed,
    Op, OpId, OrgCode, Record, RecordId, Register, Schema, SetId, apply_put, apply_set_change,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// The authority check [`Store::apply_batch`] runs on every incoming operation: the operation
/// and the org of its record as this store knows it when the operation applies (`None` for a
/// record it has not seen). `Err(reason)` quarantines the operation.
pub type Policy<'a> = dyn Fn(&Op, Option<OrgCode>) -> Result<(), String> + Sync + 'a;

/// What [`Store::apply_batch`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Operations applied, held ones this batch released included.
    pub applied: usize,
    pub duplicates: usize,
    /// Set adds waiting for an earlier add of their origin on the same set.
    pub held: usize,
    pub quarantined: usize,
    /// Remote clocks that were too far ahead and were clamped.
    pub clamped: usize,
    /// Quarantine entries settled because their operation is now logged from where it belongs.
    pub settled: usize,
}

/// An operation refused on receipt, about to be kept aside.
struct Refused {
    reason: String,
    record: Option<RecordId>,
    /// The operation's id when its bytes decode that far: a later legitimate copy of the same
    /// operation settles the entry.
    id: Option<OpId>,
    bytes: Vec<u8>,
}

/// A record as the transaction sees it.
struct RecordSlot {
    kind: KindId,
    org: Option<OrgCode>,
    /// The org as stored before this transaction (`None` for a new record).
    stored_org: Option<OrgCode>,
    deleted: bool,
    /// A `records` row exists.
    stored: bool,
    /// The org or the soft-delete flag changed: the row is rewritten.
    row_changed: bool,
    org_changed: bool,
    /// A set or the events changed: the audience may have changed.
    parts_changed: bool,
    /// Local sequence of the last operation applied to it in this transaction; 0 if none.
    last_local: i64,
}

impl RecordSlot {
    fn stored(row: RecordRow) -> Self {
        RecordSlot {
            kind: row.kind,
            org: row.org,
            stored_org: row.org,
            deleted: row.deleted,
            stored: true,
            row_changed: false,
            org_changed: false,
            parts_changed: false,
            last_local: 0,
        }
    }

    fn new(kind: KindId) -> Self {
        RecordSlot {
            kind,
            org: None,
            stored_org: None,
            deleted: false,
            stored: false,
            row_changed: false,
            org_changed: false,
            parts_changed: false,
            last_local: 0,
        }
    }
}

/// A part loaded (or created) in this transaction.
#[derive(Default)]
struct Slot<T> {
    part: T,
    /// Local sequence of the last operation that changed it; 0 if unchanged.
    updated: i64,
}

/// A set add waiting for its predecessor.
struct HeldAdd {
    op: Op,
    bytes: Vec<u8>,
    /// It has a `held_ops` row (from an earlier transaction).
    stored: bool,
}

type HeldBySet = HashMap<(RecordId, SetId), BTreeMap<(ActorId, u64), HeldAdd>>;

/// The state of one write transaction.
struct Work<'a> {
    schema: &'a Schema,
    from: Option<&'a str>,
    records: HashMap<RecordId, RecordSlot>,
    registers: HashMap<(RecordId, FieldId), Slot<Register>>,
    sets: HashMap<(RecordId, SetId), Slot<MemberSet>>,
    held: HeldBySet,
    /// Stored held adds released or dropped in this transaction.
    held_gone: Vec<(RecordId, SetId, ActorId, u64)>,
    /// Operation ids in the log: found there before this transaction or applied in it.
    logged: HashSet<OpId>,
    log_rows: Vec<Vec<Arg>>,
    /// Per record, the operations logged in this transaction and the XOR of their id hashes.
    digests: HashMap<RecordId, (i64, u64)>,
    event_rows: Vec<Vec<Arg>>,
    next_local: i64,
    report: BatchReport,
    refused: Vec<Refused>,
}

impl<'a> Work<'a> {
    fn new(schema: &'a Schema, from: Option<&'a str>, last_local: i64) -> Self {
        Work {
            schema,
            from,
            records: HashMap::new(),
            registers: HashMap::new(),
            sets: HashMap::new(),
            held: HashMap::new(),
            held_gone: Vec::new(),
            logged: HashSet::new(),
            log_rows: Vec::new(),
            digests: HashMap::new(),
            event_rows: Vec::new(),
            next_local: last_local,
            report: BatchReport::default(),
            refused: Vec::new(),
        }
    }

    fn refuse(&mut self, op: &Op, bytes: Vec<u8>, reason: String) {
        self.refused.push(Refused {
            reason,
            record: Some(op.record),
            id: Some(op.id),
            bytes,
        });
    }

    /// Applies one decoded, validated operation to the part it touches.
    fn apply(&mut self, op: Op, bytes: Vec<u8>, policy: Option<&Policy<'_>>) {
        if self.logged.contains(&op.id) {
            self.report.duplicates += 1;
            return;
        }
        let slot = self
            .records
            .entry(op.record)
            .or_insert_with(|| RecordSlot::new(op.kind));
        if slot.kind != op.kind {
            let reason = renda_replica::ApplyError::KindMismatch {
                record: op.record,
                record_kind: slot.kind.0,
                op_kind: op.kind.0,
            }
            .to_string();
            return self.refuse(&op, bytes, reason);
        }
        if let Some(policy) = policy
            && let Err(reason) = policy(&op, slot.org)
        {
            let reason = format!(
                "operation on record {}: refused by policy: {reason}",
                op.record
            );
            return self.refuse(&op, bytes, reason);
        }
        match &op.change {
            Change::Put { field, .. } => {
                let field = *field;
                let register = self.registers.entry((op.record, field)).or_default();
                if let Err(e) = apply_put(&mut register.part, &op) {
                    return self.refuse(&op, bytes, e.to_string());
                }
                if field == ORG || field == DELETED {
                    let winner = register.part.view(field).map(|v| v.winner.value);
                    let slot = self
                        .records
                        .get_mut(&op.record)
                        .expect("the record slot was created above");
                    if field == ORG {
                        let org = winner.and_then(|v| v.as_org());
                        if org != slot.org {
                            slot.org = org;
                            slot.org_changed = true;
                            slot.row_changed = true;
                        }
                    } else {
                        let deleted = winner.and_then(|v| v.as_bool()).unwrap_or(false);
                        if deleted != slot.deleted {
                            slot.deleted = deleted;
                            slot.row_changed = true;
                        }
                    }
                }
                let local = self.log(&op, bytes);
                if let Some(register) = self.registers.get_mut(&(op.record, field)) {
                    register.updated = local;
                }
            }
            Change::Add {
                set, counter: c, ..
            } => {
                let key = (op.record, *set);
                let hold = (op.id.origin, *c);
                if self.held.get(&key).is_some_and(|h| h.contains_key(&hold)) {
                    self.report.duplicates += 1;
                    return;
                }
                let members = self.sets.entry(key).or_default();
                match apply_set_change(&mut members.part, &op) {
                    Applied::Duplicate => self.report.duplicates += 1,
                    Applied::Gap { .. } => {
                        self.report.held += 1;
                        self.held.entry(key).or_default().insert(
                            hold,
                            HeldAdd {
                                op,
                                bytes,
                                stored: false,
                            },
                        );
                    }
                    Applied::Applied => {
                        self.set_changed(&op, bytes);
                        self.release(key, hold);
                    }
                }
            }
            Change::Remove { set, .. } => {
                let members = self.sets.entry((op.record, *set)).or_default();
                apply_set_change(&mut members.part, &op);
                self.set_changed(&op, bytes);
            }
            Change::Event { event, payload } => {
                let event_schema = self.schema.kind(op.kind).and_then(|k| k.event(*event));
                self.event_rows.push(vec![
                    Arg::Id(op.record.0),
                    Arg::Int(op.id.origin.0 as i64),
                    Arg::Int(op.id.seq as i64),
                    Arg::Int(op.hlc.to_u64() as i64),
                    Arg::Int(i64::from(op.kind.0)),
                    Arg::Text(
                        event_schema
                            .map(|e| e.name.clone())
                            .unwrap_or_else(|| event.0.to_string()),
                    ),
                    Arg::Text(json::payload(event_schema, payload)),
                ]);
                if let Some(slot) = self.records.get_mut(&op.record) {
                    slot.parts_changed = true;
                }
                self.log(&op, bytes);
            }
        }
    }

    /// Logs a set change that applied and marks the set and the record changed.
    fn set_changed(&mut self, op: &Op, bytes: Vec<u8>) {
        let set = match &op.change {
            Change::Add { set, .. } | Change::Remove { set, .. } => *set,
            _ => return,
        };
        let local = self.log(op, bytes);
        if let Some(members) = self.sets.get_mut(&(op.record, set)) {
            members.updated = local;
        }
        if let Some(slot) = self.records.get_mut(&op.record) {
            slot.parts_changed = true;
        }
    }

    /// Applies the held adds that the add `(origin, counter)` on `key` made ready, in order.
    fn release(&mut self, key: (RecordId, SetId), (origin, mut counter): (ActorId, u64)) {
        loop {
            let Some(ready) = self
                .held
                .get_mut(&key)
                .and_then(|h| h.remove(&(origin, counter + 1)))
            else {
                return;
            };
            if ready.stored {
                self.held_gone.push((key.0, key.1, origin, counter + 1));
            }
            // A held add whose id is already logged is another operation with the same id
            // (logged while this one waited): a duplicate by id, dropped, never a failed batch.
            if self.logged.contains(&ready.op.id) {
                self.report.duplicates += 1;
                return;
            }
            let members = self.sets.entry(key).or_default();
            match apply_set_change(&mut members.part, &ready.op) {
                Applied::Applied => {
                    self.set_changed(&ready.op, ready.bytes);
                    counter += 1;
                }
                _ => {
                    self.report.duplicates += 1;
                    return;
                }
            }
        }
    }

    /// Appends an applied operation to the op log rows with the next local sequence.
    fn log(&mut self, op: &Op, bytes: Vec<u8>) -> i64 {
        self.next_local += 1;
        let local = self.next_local;
        self.logged.insert(op.id);
        self.report.applied += 1;
        if let Some(slot) = self.records.get_mut(&op.record) {
            slot.last_local = local;
        }
        let digest = self.digests.entry(op.record).or_default();
        digest.0 += 1;
        digest.1 ^= crate::digest::op_hash(op.id);
        let local_only = self.schema.kind(op.kind).is_some_and(|k| k.local_only);
        self.log_rows.push(vec![
            Arg::Int(local),
            Arg::Int(op.id.origin.0 as i64),
            Arg::Int(op.id.seq as i64),
            Arg::Id(op.record.0),
            Arg::OptText(self.from.map(str::to_string)),
            Arg::Bool(local_only),
            Arg::Bytes(bytes),
        ]);
        local
    }
}

impl Store {
    /// Makes one local change set (a form save) to one record, in one transaction: `make` sees
    /// the record's current state and this replica's actor and returns the changes; each becomes
    /// an operation with the next origin sequence, is validated (an error names the record, the
    /// field and the reason, and nothing is written) and applied. Returns the operations.
    pub async fn write(
        &self,
        record: RecordId,
        kind: KindId,
        author: Author,
        make: impl FnOnce(&Record, ActorId) -> Vec<Change>,
    ) -> Result<Vec<Op>, Error> {
        self.try_write(record, kind, author, |state, actor| {
            Ok::<_, Error>(make(state, actor))
        })
        .await
    }

    /// [`Store::write`] whose `make` may refuse, having seen the current state (a form saved
    /// against a version that a change at this node has overtaken): nothing is written then.
    pub async fn try_write<E: From<Error>>(
        &self,
        record: RecordId,
        kind: KindId,
        author: Author,
        make: impl FnOnce(&Record, ActorId) -> Result<Vec<Change>, E>,
    ) -> Result<Vec<Op>, E> {
        self.write_unless_refused(record, kind, author, make)
            .await?
    }

    /// The write; the inner result is `make`'s refusal (the transaction is dropped, so
    /// nothing is written), the outer one a storage failure.
    async fn write_unless_refused<E>(
        &self,
        record: RecordId,
        kind: KindId,
        author: Author,
        make: impl FnOnce(&Record, ActorId) -> Result<Vec<Change>, E>,
    ) -> Result<Result<Vec<Op>, E>, Error> {
        let inner = &self.inner;
        let _writer = inner.writer.lock().await;
        let now = now_ms();
        let mut tx = inner.backend.begin().await?;
        let mut conn = tx.conn();
        let mut clock = load_clock(&mut conn, inner.max_drift_ms).await?;
        let row = load_record_rows(&mut conn, &[record])
            .await?
            .remove(&record);
        if let Some(row) = row
            && row.kind != kind
        {
            return Err(Error::KindMismatch {
                record,
                expected: kind,
                found: row.kind,
            });
        }
        let state = match row {
            Some(_) => load_records(&mut conn, &[record])
                .await?
                .remove(&record)
                .unwrap_or_else(|| Record::new(record, kind)),
            None => Record::new(record, kind),
        };
        let changes = match make(&state, inner.actor) {
            Ok(changes) => changes,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if changes.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let (last_seq,): (i64,) = conn
            .fetch_optional(
                "SELECT COALESCE(MAX(origin_seq), 0) FROM op_log WHERE origin = $1",
                vec![Arg::Int(inner.actor.0 as i64)],
            )
            .await?
            .unwrap_or((0,));
        let mut seq = last_seq as u64;
        let mut ops = Vec::with_capacity(changes.len());
        for change in changes {
            seq += 1;
            let envelope = Envelope {
                id: OpId {
                    origin: inner.actor,
                    seq,
                },
                hlc: clock.tick(now),
                origin_org: inner.org,
                author,
            };
            let op = state.local_op(envelope, change);
            op.validate(&inner.schema)?;
            ops.push(op);
        }

        let mut work = Work::new(&inner.schema, None, last_local_seq(&mut conn).await?);
        work.records.insert(
            record,
            row.map_or_else(|| RecordSlot::new(kind), RecordSlot::stored),
        );
        for op in &ops {
            match op.change {
                Change::Put { field, .. } => {
                    if let Some(register) = state.register(field) {
                        work.registers
                            .entry((record, field))
                            .or_insert_with(|| Slot {
                                part: register.clone(),
                                updated: 0,
                            });
                    }
                }
                Change::Add { set, .. } | Change::Remove { set, .. } => {
                    if let Some(members) = state.member_set(set) {
                        work.sets.entry((record, set)).or_insert_with(|| Slot {
                            part: members.clone(),
                            updated: 0,
                        });
                    }
                }
                Change::Event { .. } => {}
            }
        }
        for op in &ops {
            work.apply(op.clone(), op.encode(), None);
        }
        if let Some(refused) = work.refused.pop() {
            return Err(Error::NotApplied {
                record,
                reason: refused.reason,
            });
        }
        if work.report.applied != ops.len() {
            return Err(Error::NotApplied {
                record,
                reason: format!("{} of {} changes applied", work.report.applied, ops.len()),
            });
        }
        persist(inner, &mut conn, work, now).await?;
        save_clock(&mut conn, &clock).await?;
        tx.commit().await?;
        tracing::debug!(%record, ops = ops.len(), last_seq = seq, "local write committed");
        Ok(Ok(ops))
    }

    /// Applies a batch of encoded remote operations in one transaction. Each operation is
    /// decoded and validated (before the writer lock is taken), then passed to `policy` with
    /// the org of its record as this store knows it; refusals are quarantined with their reason
    /// and the rest goes on. A set add ahead of an earlier add of its origin on that set is
    /// held (durably) until the gap fills; duplicates change nothing. `from` names the peer the
    /// batch came from: it is kept with each logged operation (so feeds to that peer can leave
    /// them out) and with each quarantined one.
    pub async fn apply_batch(
        &self,
        ops: &[Vec<u8>],
        from: Option<&str>,
        policy: &Policy<'_>,
    ) -> Result<BatchReport, Error> {
        let inner = &self.inner;
        let mut refused = Vec::new();
        let mut accepted: Vec<(Op, &Vec<u8>)> = Vec::with_capacity(ops.len());
        // Decoding and validation need no database: do them before taking the writer lock.
        for bytes in ops {
            match Op::decode(bytes, &inner.schema) {
                Err(e) => refused.push(Refused {
                    reason: e.to_string(),
                    record: e.record,
                    id: Op::decode_unchecked(bytes).ok().map(|op| op.id),
                    bytes: bytes.clone(),
                }),
                Ok(op) => match in_storage_range(&op) {
                    Err(reason) => refused.push(Refused {
                        reason: format!("operation on record {}: {reason}", op.record),
                        record: Some(op.record),
                        id: Some(op.id),
                        bytes: bytes.clone(),
                    }),
                    Ok(()) => accepted.push((op, bytes)),
                },
            }
        }

        let _writer = inner.writer.lock().await;
        let now = now_ms();
        let mut tx = inner.backend.begin().await?;
        let mut conn = tx.conn();
        let mut clock = load_clock(&mut conn, inner.max_drift_ms).await?;
        let mut work = Work::new(&inner.schema, from, last_local_seq(&mut conn).await?);
        work.refused = refused;
        load_parts(&mut conn, &mut work, &accepted).await?;

        for (op, bytes) in accepted {
            if let Observed::Clamped { remote, limit_ms } = clock.observe(op.hlc, now) {
                work.report.clamped += 1;
                tracing::warn!(origin = %op.id.origin, %remote, limit_ms, "remote clock clamped");
            }
            work.apply(op, bytes.clone(), Some(policy));
        }

        let report = persist(inner, &mut conn, work, now).await?;
        save_clock(&mut conn, &clock).await?;
        tx.commit().await?;
        tracing::debug!(
            peer = from.unwrap_or("-"),
            applied = report.applied,
            duplicates = report.duplicates,
            held = report.held,
            quarantined = report.quarantined,
            clamped = report.clamped,
            "batch committed"
        );
        if report.quarantined > 0 {
            tracing::warn!(
                peer = from.unwrap_or("-"),
                quarantined = report.quarantined,
                "operations quarantined"
            );
        }
        Ok(report)
    }
}

/// Numbers the database stores as signed 64-bit integers must fit.
fn in_storage_range(op: &Op) -> Result<(), String> {
    let max = i64::MAX as u64;
    let counter = match op.change {
        Change::Add { counter, .. } => counter,
        _ => 0,
    };
    if op.id.seq > max || counter > max || op.hlc.to_u64() > max {
        return Err("sequence, counter or clock is out of the storable range".into());
    }
    Ok(())
}

pub(crate) async fn last_local_seq(conn: &mut Conn<'_>) -> Result<i64, Error> {
    let (max,): (i64,) = conn
        .fetch_optional("SELECT COALESCE(MAX(local_seq), 0) FROM op_log", vec![])
        .await?
        .unwrap_or((0,));
    Ok(max)
}

/// Loads what a batch touches: its records' rows, the held adds of the sets it adds to, which
/// of its operation ids (and of those held adds) are logged, and the registers and sets its
/// operations change.
async fn load_parts(
    conn: &mut Conn<'_>,
    work: &mut Work<'_>,
    ops: &[(Op, &Vec<u8>)],
) -> Result<(), Error> {
    let mut ids = Vec::new();
    let mut seen_ids = HashSet::new();
    let mut register_pairs = Vec::new();
    let mut seen_registers = HashSet::new();
    let mut set_pairs = Vec::new();
    let mut seen_sets = HashSet::new();
    let mut adding = Vec::new();
    let mut seen_adding = HashSet::new();
    for (op, _) in ops {
        if seen_ids.insert(op.record) {
            ids.push(op.record);
        }
        match &op.change {
            Change::Put { field, .. } => {
                if seen_registers.insert((op.record, *field)) {
                    register_pairs.push((op.record, *field));
                }
            }
            Change::Add { set, .. } | Change::Remove { set, .. } => {
                if seen_sets.insert((op.record, *set)) {
                    set_pairs.push((op.record, *set));
                }
                if matches!(op.change, Change::Add { .. }) && seen_adding.insert(op.record) {
                    adding.push(op.record);
                }
            }
            Change::Event { .. } => {}
        }
    }
    for (id, row) in load_record_rows(conn, &ids).await? {
        work.records.insert(id, RecordSlot::stored(row));
    }
    let held = load_held(conn, &adding).await?;
    let mut wanted: Vec<OpId> = ops.iter().map(|(op, _)| op.id).collect();
    for adds in held.values() {
        wanted.extend(adds.values().map(|h| h.op.id));
    }
    work.held = held;
    work.logged = load_logged(conn, &wanted).await?;
    // A record without a `records` row has no stored registers or sets (they are written in
    // the transaction that writes its row): only records seen before are probed.
    register_pairs.retain(|(id, _)| work.records.contains_key(id));
    set_pairs.retain(|(id, _)| work.records.contains_key(id));
    for (key, part) in load_registers(conn, &register_pairs).await? {
        work.registers.insert(key, Slot { part, updated: 0 });
    }
    for (key, part) in load_sets(conn, &set_pairs).await? {
        work.sets.insert(key, Slot { part, updated: 0 });
    }
    Ok(())
}

/// The held adds of the sets of `records`.
async fn load_held(conn: &mut Conn<'_>, records: &[RecordId]) -> Result<HeldBySet, Error> {
    let rows: Vec<(Uuid, i64, Vec<u8>)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.record_id, x.counter, x.bytes FROM w CROSS JOIN held_ops x \
             WHERE x.record_id = w.r",
            1,
            &id_keys(records),
        )
        .await?;
    let mut held: HeldBySet = HashMap::new();
    for (id, counter, bytes) in rows {
        let id = RecordId(id);
        let op = Op::decode_unchecked(&bytes)
            .map_err(|e| Error::Corrupt(format!("held operation of record {id}: {e}")))?;
        let Change::Add {
            set, counter: c, ..
        } = op.change
        else {
            return Err(Error::Corrupt(format!(
                "held operation of record {id} is not a set add"
            )));
        };
        if op.record != id || c as i64 != counter {
            return Err(Error::Corrupt(format!(
                "held operation of record {id} does not match its row"
            )));
        }
        held.entry((id, set)).or_default().insert(
            (op.id.origin, c),
            HeldAdd {
                op,
                bytes,
                stored: true,
            },
        );
    }
    Ok(held)
}

/// Which of `ids` are already in the op log. Operations usually arrive in origin order, so
/// only ids at or below the highest logged sequence of their origin are looked up.
async fn load_logged(conn: &mut Conn<'_>, ids: &[OpId]) -> Result<HashSet<OpId>, Error> {
    let mut by_origin: BTreeMap<ActorId, Vec<u64>> = BTreeMap::new();
    for id in ids {
        by_origin.entry(id.origin).or_default().push(id.seq);
    }
    let mut keys = Vec::new();
    for (origin, seqs) in by_origin {
        let (max,): (i64,) = conn
            .fetch_optional(
                "SELECT COALESCE(MAX(origin_seq), 0) FROM op_log WHERE origin = $1",
                vec![Arg::Int(origin.0 as i64)],
            )
            .await?
            .unwrap_or((0,));
        let mut seqs: Vec<u64> = seqs.into_iter().filter(|s| *s as i64 <= max).collect();
        seqs.sort_unstable();
        seqs.dedup();
        keys.extend(
            seqs.into_iter()
                .map(|s| vec![Arg::Int(origin.0 as i64), Arg::Int(s as i64)]),
        );
    }
    let rows: Vec<(i64, i64)> = conn
        .fetch_by_keys(
            "o, s",
            "SELECT x.origin, x.origin_seq FROM w CROSS JOIN op_log x \
             WHERE x.origin = w.o AND x.origin_seq = w.s",
            2,
            &keys,
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(origin, seq)| OpId {
            origin: ActorId(origin as u64),
            seq: seq as u64,
        })
        .collect())
}

/// Writes a transaction's changes back: op log rows, one upsert per changed field and set,
/// event rows, record rows that are new or whose org or deleted flag changed, held adds, the
/// scope of records whose org (or, with an audience, sets or events) changed, and the
/// quarantine.
async fn persist(
    inner: &Inner,
    conn: &mut Conn<'_>,
    work: Work<'_>,
    now: u64,
) -> Result<BatchReport, Error> {
    let Work {
        from,
        records,
        registers,
        sets,
        held,
        held_gone,
        log_rows,
        digests,
        event_rows,
        mut report,
        refused,
        ..
    } = work;
    if !log_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO op_log (local_seq, origin, origin_seq, record_id, from_peer, \
             local_only, bytes)",
            7,
            "",
            log_rows,
        )
        .await?;
    }
    let moves = digests
        .into_iter()
        .map(|(id, delta)| {
            let slot = records.get(&id);
            // Local-only kinds are in no scope digest (they differ between nodes by design).
            let counted = slot.filter(|s| !inner.schema.kind(s.kind).is_some_and(|k| k.local_only));
            crate::digest::Touched {
                id,
                new: slot.is_none_or(|s| !s.stored),
                delta,
                before: counted.and_then(|s| s.stored_org),
                after: counted.and_then(|s| s.org),
            }
        })
        .collect();
    crate::digest::add(conn, moves).await?;

    let mut field_rows = Vec::new();
    for ((id, field), slot) in registers {
        if slot.updated == 0 {
            continue;
        }
        let Some(view) = slot.part.view(field) else {
            continue;
        };
        let kind = records.get(&id).and_then(|r| inner.schema.kind(r.kind));
        let winner = &view.winner;
        let conflicts = json::conflicts(&view);
        field_rows.push(vec![
            Arg::Id(id.0),
            Arg::Int(i64::from(field.0)),
            Arg::Text(json::field_name(kind, field)),
            Arg::Text(json::value(&winner.value).to_string()),
            Arg::Bool(conflicts.is_some()),
            Arg::OptText(conflicts),
            Arg::Int(slot.updated),
            Arg::Bytes(slot.part.to_bytes()),
        ]);
    }
    if !field_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO fields (record_id, field, name, value, has_conflict, conflicts, \
             updated_seq, state)",
            8,
            "ON CONFLICT (record_id, field) DO UPDATE SET value = excluded.value, \
             has_conflict = excluded.has_conflict, conflicts = excluded.conflicts, \
             updated_seq = excluded.updated_seq, state = excluded.state",
            field_rows,
        )
        .await?;
    }

    let mut set_rows = Vec::new();
    for ((id, set), slot) in sets {
        if slot.updated == 0 {
            continue;
        }
        let name = records
            .get(&id)
            .and_then(|r| inner.schema.kind(r.kind))
            .and_then(|k| k.set(set))
            .map(|s| s.name.clone())
            .unwrap_or_else(|| set.0.to_string());
        set_rows.push(vec![
            Arg::Id(id.0),
            Arg::Int(i64::from(set.0)),
            Arg::Text(name),
            Arg::Text(json::members(&slot.part.members())),
            Arg::Bytes(slot.part.to_bytes()),
        ]);
    }
    if !set_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO sets (record_id, set_id, name, members, state)",
            5,
            "ON CONFLICT (record_id, set_id) DO UPDATE SET members = excluded.members, \
             state = excluded.state",
            set_rows,
        )
        .await?;
    }

    if !event_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO events (record_id, origin, origin_seq, hlc, kind, event, payload)",
            7,
            "ON CONFLICT (record_id, origin, origin_seq) DO NOTHING",
            event_rows,
        )
        .await?;
    }

    let mut record_rows = Vec::new();
    let mut rescope = Vec::new();
    for (id, slot) in &records {
        if slot.last_local == 0 {
            continue;
        }
        let new = !slot.stored;
        if new || slot.row_changed {
            record_rows.push(vec![
                Arg::Id(id.0),
                Arg::Int(i64::from(slot.kind.0)),
                Arg::Text(
                    inner
                        .schema
                        .kind(slot.kind)
                        .map(|k| k.name.clone())
                        .unwrap_or_else(|| slot.kind.0.to_string()),
                ),
                Arg::OptInt(slot.org.map(|o| o.get() as i64)),
                Arg::Bool(slot.deleted),
                Arg::Int(slot.last_local),
            ]);
        }
        let audience_may_change = inner.audience.is_some() && (new || slot.parts_changed);
        if slot.org_changed || audience_may_change {
            rescope.push(*id);
        }
    }
    if !record_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO records (id, kind, kind_name, org_code, deleted, updated_seq)",
            6,
            "ON CONFLICT (id) DO UPDATE SET org_code = excluded.org_code, \
             deleted = excluded.deleted, updated_seq = excluded.updated_seq",
            record_rows,
        )
        .await?;
    }
    if !rescope.is_empty() {
        save_scope(inner, conn, &records, &rescope).await?;
    }

    for (record, set, origin, counter) in held_gone {
        conn.execute(
            "DELETE FROM held_ops WHERE record_id = $1 AND set_id = $2 AND origin = $3 \
             AND counter = $4",
            vec![
                Arg::Id(record.0),
                Arg::Int(i64::from(set.0)),
                Arg::Int(origin.0 as i64),
                Arg::Int(counter as i64),
            ],
        )
        .await?;
    }
    let mut held_rows = Vec::new();
    for ((record, set), adds) in held {
        for ((origin, counter), add) in adds {
            if !add.stored {
                held_rows.push(vec![
                    Arg::Id(record.0),
                    Arg::Int(i64::from(set.0)),
                    Arg::Int(origin.0 as i64),
                    Arg::Int(counter as i64),
                    Arg::Bytes(add.bytes),
                    Arg::Int(now as i64),
                ]);
            }
        }
    }
    if !held_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO held_ops (record_id, set_id, origin, counter, bytes, received_ms)",
            6,
            "ON CONFLICT (record_id, set_id, origin, counter) DO NOTHING",
            held_rows,
        )
        .await?;
    }

    report.quarantined = refused.len();
    let logged_any = report.applied > 0;
    let refused_any = !refused.is_empty();
    save_refused(conn, refused, from, now).await?;
    if logged_any || refused_any {
        report.settled = settle_superseded(conn, now).await? as usize;
    }
    Ok(report)
}

/// Marks settled every open quarantine entry whose very operation (same id, same bytes) is in
/// the log: it arrived from where it legitimately comes (a township falling back to the city
/// relayed its county's operation, which the county then sent itself). One statement a batch;
/// with nothing open it reads one empty index range.
async fn settle_superseded(conn: &mut Conn<'_>, now: u64) -> Result<u64, Error> {
    let settled = conn
        .execute(
            "UPDATE quarantine SET settled_ms = $1, settled_note = $2 \
             WHERE settled_ms IS NULL AND origin IS NOT NULL AND EXISTS (\
               SELECT 1 FROM op_log o WHERE o.origin = quarantine.origin \
               AND o.origin_seq = quarantine.origin_seq AND o.bytes = quarantine.bytes)",
            vec![
                Arg::Int(now as i64),
                Arg::Text(crate::read::SUPERSEDED.into()),
            ],
        )
        .await?;
    if settled > 0 {
        tracing::info!(
            settled,
            "quarantine entries settled: their operations arrived from where they belong"
        );
    }
    Ok(settled)
}

/// The `record_scope.org_code` of records every node holds (broadcast kinds).
pub(crate) const EVERY_NODE: i64 = 0;

/// Adds the scope rows `ids` now need: each record's org and that org's ancestors, and its
/// audience. Scope only grows: once a record has gone down to an org unit it keeps going there,
/// so a child learns of a record that moved away instead of keeping a stale copy.
async fn save_scope(
    inner: &Inner,
    conn: &mut Conn<'_>,
    records: &HashMap<RecordId, RecordSlot>,
    ids: &[RecordId],
) -> Result<(), Error> {
    // The audience needs the whole record: rebuilt from its parts, as just written.
    let views = match &inner.audience {
        Some(_) => load_records(conn, ids).await?,
        None => HashMap::new(),
    };
    let existing: Vec<(Uuid, i64, bool)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.record_id, x.org_code, x.subtree FROM w CROSS JOIN record_scope x \
             WHERE x.record_id = w.r",
            1,
            &id_keys(ids),
        )
        .await?;
    let existing: HashSet<(Uuid, i64, bool)> = existing.into_iter().collect();
    let mut rows = Vec::new();
    for id in ids {
        let Some(slot) = records.get(id) else {
            continue;
        };
        let mut scope = BTreeSet::new();
        if inner.schema.kind(slot.kind).is_some_and(|k| k.broadcast) {
            // Reference data: one row for "every node", and no other, so no feed lists it twice.
            if !existing.contains(&(id.0, EVERY_NODE, false)) {
                rows.push(vec![
                    Arg::Int(EVERY_NODE),
                    Arg::Id(id.0),
                    Arg::Int(slot.last_local),
                    Arg::Bool(false),
                ]);
            }
            continue;
        }
        let mut org = slot.org;
        while let Some(code) = org {
            scope.insert(code);
            org = code.parent();
        }
        if let (Some(audience), Some(record)) = (&inner.audience, views.get(id)) {
            scope.extend(audience(&record.materialise()));
        }
        // A subtree kind's own org row addresses everything below it too.
        let subtree = inner.schema.kind(slot.kind).is_some_and(|k| k.subtree);
        for org in scope {
            let code = org.get() as i64;
            let whole = subtree && Some(org) == slot.org;
            if !existing.contains(&(id.0, code, whole)) {
                rows.push(vec![
                    Arg::Int(code),
                    Arg::Id(id.0),
                    Arg::Int(slot.last_local),
                    Arg::Bool(whole),
                ]);
            }
        }
    }
    if !rows.is_empty() {
        // A row that exists without `subtree` (the record was there before its kind became a
        // subtree kind) gains it, from now: the units below get the record's whole history.
        conn.insert_many(
            "INSERT INTO record_scope (org_code, record_id, since_local_seq, subtree)",
            4,
            "ON CONFLICT (org_code, record_id) DO UPDATE SET subtree = TRUE, \
             since_local_seq = excluded.since_local_seq WHERE excluded.subtree",
            rows,
        )
        .await?;
    }
    Ok(())
}

async fn save_refused(
    conn: &mut Conn<'_>,
    refused: Vec<Refused>,
    from: Option<&str>,
    now: u64,
) -> Result<(), Error> {
    if refused.is_empty() {
        return Ok(());
    }
    let rows = refused
        .into_iter()
        .map(|r| {
            vec![
                Arg::Int(now as i64),
                Arg::OptText(from.map(str::to_string)),
                Arg::Text(r.reason),
                Arg::OptId(r.record.map(|id| id.0)),
                Arg::Bytes(r.bytes),
                Arg::OptInt(r.id.map(|id| id.origin.0 as i64)),
                Arg::OptInt(r.id.and_then(|id| i64::try_from(id.seq).ok())),
            ]
        })
        .collect();
    conn.insert_many(
        "INSERT INTO quarantine (received_ms, from_peer, reason, record_id, bytes, origin, \
         origin_seq)",
        7,
        "",
        rows,
    )
    .await
}
