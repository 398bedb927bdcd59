//! The write path: local changes and remote batches, each one transaction.

use crate::db::{Arg, Conn, MAX_PARAMS, dynamic, placeholders};
use crate::{Error, Inner, Store, json, load_clock, now_ms, save_clock};
use renda_replica::{
    ActorId, Author, Change, Envelope, Held, KindId, Materialise, Observed, Op, OpId, OrgCode,
    Record, RecordId,
};
use std::collections::{BTreeSet, HashMap, HashSet};

/// What [`Store::apply_batch`] did with a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Operations applied, held ones this batch released included.
    pub applied: usize,
    pub duplicates: usize,
    /// Operations waiting for an earlier operation of their origin on the same record.
    pub held: usize,
    pub quarantined: usize,
    /// Remote clocks that were too far ahead and were clamped.
    pub clamped: usize,
}

/// An operation refused on receipt, about to be kept aside.
struct Refused {
    reason: String,
    record: Option<RecordId>,
    bytes: Vec<u8>,
}

/// Operations applied in this transaction and the records they changed, in order.
#[derive(Default)]
struct Applied {
    ops: Vec<(Op, Vec<u8>)>,
    changed: Vec<RecordId>,
    changed_set: HashSet<RecordId>,
}

impl Applied {
    fn push(&mut self, op: Op, bytes: Vec<u8>) {
        if self.changed_set.insert(op.record) {
            self.changed.push(op.record);
        }
        self.ops.push((op, bytes));
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
        let inner = &self.inner;
        let _writer = inner.writer.lock().await;
        let now = now_ms();
        let mut tx = inner.backend.begin().await?;
        let mut conn = tx.conn();
        let mut clock = load_clock(&mut conn, inner.max_drift_ms).await?;
        let mut states = load_states(&mut conn, &[record]).await?;
        let mut state = states
            .remove(&record)
            .unwrap_or_else(|| Record::new(record, kind));
        if state.kind() != kind {
            return Err(Error::KindMismatch {
                record,
                expected: kind,
                found: state.kind(),
            });
        }
        let changes = make(&state, inner.actor);
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (last_seq,): (i64,) = conn
            .fetch_optional(
                "SELECT COALESCE(MAX(origin_seq), 0) FROM op_log WHERE origin = $1",
                vec![Arg::Int(inner.actor.0 as i64)],
            )
            .await?
            .unwrap_or((0,));
        let mut seq = last_seq as u64;
        let mut applied = Applied::default();
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
            state.apply(&op)?;
            let bytes = op.encode();
            applied.push(op, bytes);
        }
        let mut states = HashMap::from([(record, state)]);
        persist(inner, &mut conn, &applied, &mut states).await?;
        save_clock(&mut conn, &clock).await?;
        tx.commit().await?;
        tracing::debug!(%record, ops = applied.ops.len(), last_seq = seq, "local write committed");
        Ok(applied.ops.into_iter().map(|(op, _)| op).collect())
    }

    /// Applies a batch of encoded remote operations in one transaction. Each operation is
    /// decoded, validated and passed to `policy` (the authority check); refusals are quarantined
    /// with their reason and the rest goes on. Operations ahead of an earlier one of their
    /// origin on the same record are held (durably) until the gap fills; duplicates change
    /// nothing. `from` names the peer the batch came from, for the quarantine.
    pub async fn apply_batch(
        &self,
        ops: &[Vec<u8>],
        from: Option<&str>,
        policy: &(dyn Fn(&Op) -> Result<(), String> + Sync),
    ) -> Result<BatchReport, Error> {
        let inner = &self.inner;
        let mut report = BatchReport::default();
        let mut refused = Vec::new();
        let mut accepted: Vec<(Op, &[u8])> = Vec::with_capacity(ops.len());
        // Decoding and policy need no database: do them before taking the writer lock.
        for bytes in ops {
            match Op::decode(bytes, &inner.schema) {
                Err(e) => refused.push(Refused {
                    reason: e.to_string(),
                    record: e.record,
                    bytes: bytes.clone(),
                }),
                Ok(op) => {
                    if let Err(reason) = in_storage_range(&op)
                        .and_then(|()| policy(&op).map_err(|r| format!("refused by policy: {r}")))
                    {
                        refused.push(Refused {
                            reason: format!("operation on record {}: {reason}", op.record),
                            record: Some(op.record),
                            bytes: bytes.clone(),
                        });
                    } else {
                        accepted.push((op, bytes));
                    }
                }
            }
        }

        let _writer = inner.writer.lock().await;
        let now = now_ms();
        let mut tx = inner.backend.begin().await?;
        let mut conn = tx.conn();
        let mut clock = load_clock(&mut conn, inner.max_drift_ms).await?;

        let mut ids: Vec<RecordId> = Vec::new();
        let mut seen_ids = HashSet::new();
        for (op, _) in &accepted {
            if seen_ids.insert(op.record) {
                ids.push(op.record);
            }
        }
        let mut states = load_states(&mut conn, &ids).await?;
        let (mut held, mut bytes_of) = load_held(&mut conn, &ids).await?;
        let held_before: HashSet<(RecordId, ActorId, u64)> = held
            .iter()
            .flat_map(|(record, h)| h.keys().map(|(a, s)| (*record, *a, *s)))
            .collect();
        let logged = load_logged(&mut conn, accepted.iter().map(|(op, _)| op.id)).await?;

        let mut applied = Applied::default();
        let mut applied_ids: HashSet<OpId> = HashSet::new();
        for (op, bytes) in accepted {
            if let Observed::Clamped { remote, limit_ms } = clock.observe(op.hlc, now) {
                report.clamped += 1;
                tracing::warn!(origin = %op.id.origin, %remote, limit_ms, "remote clock clamped");
            }
            let state = states
                .entry(op.record)
                .or_insert_with(|| Record::new(op.record, op.kind));
            if let Some(reason) = cannot_apply(state, &op) {
                refused.push(Refused {
                    reason,
                    record: Some(op.record),
                    bytes: bytes.to_vec(),
                });
                continue;
            }
            if logged.contains(&op.id) || applied_ids.contains(&op.id) {
                if state.applied_from(op.id.origin) >= op.record_seq {
                    report.duplicates += 1;
                } else {
                    refused.push(Refused {
                        reason: format!(
                            "operation on record {}: id {}:{} is already logged for another operation",
                            op.record, op.id.origin, op.id.seq
                        ),
                        record: Some(op.record),
                        bytes: bytes.to_vec(),
                    });
                }
                continue;
            }
            let record_held = held.entry(op.record).or_default();
            if record_held.contains_key(&(op.id.origin, op.record_seq)) {
                report.duplicates += 1;
                continue;
            }
            bytes_of.insert(op.id, bytes.to_vec());
            let record = op.record;
            match state.receive(op, record_held) {
                Err(e) => refused.push(Refused {
                    reason: e.to_string(),
                    record: Some(record),
                    bytes: bytes.to_vec(),
                }),
                Ok(r) if r.duplicate => report.duplicates += 1,
                Ok(r) if r.held => report.held += 1,
                Ok(r) => {
                    for op in r.applied {
                        let bytes = bytes_of.remove(&op.id).ok_or_else(|| {
                            Error::Corrupt(format!("no bytes kept for operation {:?}", op.id))
                        })?;
                        applied_ids.insert(op.id);
                        applied.push(op, bytes);
                        report.applied += 1;
                    }
                }
            }
        }

        persist(inner, &mut conn, &applied, &mut states).await?;
        save_held(&mut conn, &held, &held_before, &bytes_of, now).await?;
        report.quarantined = refused.len();
        save_refused(&mut conn, refused, from, now).await?;
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
    if op.id.seq > max || op.record_seq > max || op.hlc.to_u64() > max {
        return Err("sequence or clock is out of the storable range".into());
    }
    Ok(())
}

/// Checks done before [`Record::receive`], so that an operation released from the held set
/// later can never fail half way through a release.
fn cannot_apply(state: &Record, op: &Op) -> Option<String> {
    if state.kind() != op.kind {
        return Some(
            renda_replica::ApplyError::KindMismatch {
                record: op.record,
                record_kind: state.kind().0,
                op_kind: op.kind.0,
            }
            .to_string(),
        );
    }
    if let Change::Put { seen, .. } = &op.change
        && seen.iter().any(|(actor, _)| *actor == op.id.origin)
    {
        return Some(
            renda_replica::ApplyError::SelfInContext {
                record: op.record,
                origin: op.id.origin,
            }
            .to_string(),
        );
    }
    None
}

/// Loads the CRDT state of each existing record among `ids`, in batched SELECTs.
pub(crate) async fn load_states(
    conn: &mut Conn<'_>,
    ids: &[RecordId],
) -> Result<HashMap<RecordId, Record>, Error> {
    let mut states = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_PARAMS) {
        let sql = format!(
            "SELECT state FROM records WHERE id IN ({})",
            placeholders(conn.dialect(), chunk.len(), 1)
        );
        let rows: Vec<(Vec<u8>,)> = conn
            .fetch_all(
                dynamic(sql),
                chunk.iter().map(|id| Arg::Text(id.to_string())).collect(),
            )
            .await?;
        for (bytes,) in rows {
            let record = Record::from_bytes(&bytes).map_err(|e| Error::Corrupt(e.to_string()))?;
            states.insert(record.id(), record);
        }
    }
    Ok(states)
}

type HeldByRecord = HashMap<RecordId, Held>;

async fn load_held(
    conn: &mut Conn<'_>,
    ids: &[RecordId],
) -> Result<(HeldByRecord, HashMap<OpId, Vec<u8>>), Error> {
    let mut held: HeldByRecord = HashMap::new();
    let mut bytes_of = HashMap::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let sql = format!(
            "SELECT bytes FROM held_ops WHERE record_id IN ({})",
            placeholders(conn.dialect(), chunk.len(), 1)
        );
        let rows: Vec<(Vec<u8>,)> = conn
            .fetch_all(
                dynamic(sql),
                chunk.iter().map(|id| Arg::Text(id.to_string())).collect(),
            )
            .await?;
        for (bytes,) in rows {
            let op = Op::decode_unchecked(&bytes)
                .map_err(|e| Error::Corrupt(format!("held operation: {e}")))?;
            held.entry(op.record)
                .or_default()
                .insert((op.id.origin, op.record_seq), op.clone());
            bytes_of.insert(op.id, bytes);
        }
    }
    Ok((held, bytes_of))
}

/// Which of `ids` are already in the op log. Asks for every (origin, sequence) combination of
/// the batch's origins and sequences — index probes on both backends, where a row-value `IN`
/// may scan — and keeps the exact pairs.
async fn load_logged(
    conn: &mut Conn<'_>,
    ids: impl Iterator<Item = OpId>,
) -> Result<HashSet<OpId>, Error> {
    let wanted: HashSet<OpId> = ids.collect();
    let mut logged = HashSet::new();
    let origins: BTreeSet<i64> = wanted.iter().map(|id| id.origin.0 as i64).collect();
    let seqs: BTreeSet<i64> = wanted.iter().map(|id| id.seq as i64).collect();
    let seqs: Vec<i64> = seqs.into_iter().collect();
    for origin in origins {
        for chunk in seqs.chunks(MAX_PARAMS - 1) {
            let list = placeholders(conn.dialect(), chunk.len() + 1, 1);
            let (first, rest) = list.split_once(',').unwrap_or((&list, ""));
            let sql = format!(
                "SELECT origin, origin_seq FROM op_log WHERE origin = {first} \
                 AND origin_seq IN ({rest})"
            );
            let mut args = vec![Arg::Int(origin)];
            args.extend(chunk.iter().map(|s| Arg::Int(*s)));
            let rows: Vec<(i64, i64)> = conn.fetch_all(dynamic(sql), args).await?;
            logged.extend(
                rows.into_iter()
                    .map(|(origin, seq)| OpId {
                        origin: ActorId(origin as u64),
                        seq: seq as u64,
                    })
                    .filter(|id| wanted.contains(id)),
            );
        }
    }
    Ok(logged)
}

/// Appends the applied operations to the op log with new local sequences and rewrites the
/// materialised rows, events and scope of every record they changed.
async fn persist(
    inner: &Inner,
    conn: &mut Conn<'_>,
    applied: &Applied,
    states: &mut HashMap<RecordId, Record>,
) -> Result<(), Error> {
    if applied.ops.is_empty() {
        return Ok(());
    }
    let (max_local,): (i64,) = conn
        .fetch_optional("SELECT COALESCE(MAX(local_seq), 0) FROM op_log", vec![])
        .await?
        .unwrap_or((0,));
    let mut local_seq = max_local;
    let mut last_seq_of: HashMap<RecordId, i64> = HashMap::new();
    let mut log_rows = Vec::with_capacity(applied.ops.len());
    let mut event_rows = Vec::new();
    for (op, bytes) in &applied.ops {
        local_seq += 1;
        last_seq_of.insert(op.record, local_seq);
        let record_id = op.record.to_string();
        log_rows.push(vec![
            Arg::Int(local_seq),
            Arg::Int(op.id.origin.0 as i64),
            Arg::Int(op.id.seq as i64),
            Arg::Text(record_id.clone()),
            Arg::Int(op.record_seq as i64),
            Arg::Int(op.hlc.to_u64() as i64),
            Arg::Int(op.origin_org.get() as i64),
            Arg::Int(op.author.org.get() as i64),
            Arg::Int(i64::from(op.author.number)),
            Arg::Bytes(bytes.clone()),
        ]);
        if let Change::Event { event, payload } = &op.change {
            let event_schema = inner.schema.kind(op.kind).and_then(|k| k.event(*event));
            event_rows.push(vec![
                Arg::Text(record_id),
                Arg::Int(op.id.origin.0 as i64),
                Arg::Int(op.record_seq as i64),
                Arg::Int(op.hlc.to_u64() as i64),
                Arg::Int(i64::from(op.kind.0)),
                Arg::Text(
                    event_schema
                        .map(|e| e.name.clone())
                        .unwrap_or_else(|| event.0.to_string()),
                ),
                Arg::Text(json::payload(event_schema, payload)),
            ]);
        }
    }
    conn.insert_many(
        "INSERT INTO op_log (local_seq, origin, origin_seq, record_id, record_seq, hlc, \
         origin_org, author_org, author_number, bytes)",
        10,
        "",
        log_rows,
    )
    .await?;
    if !event_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO events (record_id, origin, record_seq, hlc, kind, event, payload)",
            7,
            "ON CONFLICT (record_id, origin, record_seq) DO NOTHING",
            event_rows,
        )
        .await?;
    }

    let mut record_rows = Vec::with_capacity(applied.changed.len());
    let mut wanted_scope: Vec<(RecordId, BTreeSet<OrgCode>)> = Vec::new();
    for id in &applied.changed {
        let state = states
            .get(id)
            .ok_or_else(|| Error::Corrupt(format!("changed record {id} has no state")))?;
        let view = state.materialise();
        let kind = inner.schema.kind(state.kind());
        let columns = json::columns(&view, kind);
        let updated = last_seq_of.get(id).copied().unwrap_or(local_seq);
        let mut scope = BTreeSet::new();
        let mut org = view.org;
        while let Some(code) = org {
            scope.insert(code);
            org = code.parent();
        }
        if let Some(audience) = &inner.audience {
            scope.extend(audience(&view));
        }
        if !scope.is_empty() {
            wanted_scope.push((*id, scope));
        }
        record_rows.push(vec![
            Arg::Text(id.to_string()),
            Arg::Int(i64::from(state.kind().0)),
            Arg::OptInt(view.org.map(|o| o.get() as i64)),
            Arg::Bool(view.deleted),
            Arg::Bool(view.has_conflicts()),
            Arg::Text(columns.fields),
            Arg::Text(columns.conflicts),
            Arg::Text(columns.sets),
            Arg::Bytes(state.to_bytes()),
            Arg::Int(updated),
        ]);
    }
    conn.insert_many(
        "INSERT INTO records (id, kind, org_code, deleted, has_conflict, fields, conflicts, \
         sets, state, updated_seq)",
        10,
        "ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, org_code = excluded.org_code, \
         deleted = excluded.deleted, has_conflict = excluded.has_conflict, \
         fields = excluded.fields, conflicts = excluded.conflicts, sets = excluded.sets, \
         state = excluded.state, updated_seq = excluded.updated_seq",
        record_rows,
    )
    .await?;

    // Scope only grows: once a record has gone down to an org unit it keeps going there, so a
    // child learns of a record that moved away instead of keeping a stale copy.
    if !wanted_scope.is_empty() {
        let ids: Vec<RecordId> = wanted_scope.iter().map(|(id, _)| *id).collect();
        let mut existing: HashSet<(String, i64)> = HashSet::new();
        for chunk in ids.chunks(MAX_PARAMS) {
            let sql = format!(
                "SELECT record_id, org_code FROM record_scope WHERE record_id IN ({})",
                placeholders(conn.dialect(), chunk.len(), 1)
            );
            let rows: Vec<(String, i64)> = conn
                .fetch_all(
                    dynamic(sql),
                    chunk.iter().map(|id| Arg::Text(id.to_string())).collect(),
                )
                .await?;
            existing.extend(rows);
        }
        let mut scope_rows = Vec::new();
        for (id, orgs) in wanted_scope {
            let id_text = id.to_string();
            let since = last_seq_of.get(&id).copied().unwrap_or(local_seq);
            for org in orgs {
                let code = org.get() as i64;
                if !existing.contains(&(id_text.clone(), code)) {
                    scope_rows.push(vec![
                        Arg::Int(code),
                        Arg::Text(id_text.clone()),
                        Arg::Int(since),
                    ]);
                }
            }
        }
        if !scope_rows.is_empty() {
            conn.insert_many(
                "INSERT INTO record_scope (org_code, record_id, since_local_seq)",
                3,
                "ON CONFLICT (org_code, record_id) DO NOTHING",
                scope_rows,
            )
            .await?;
        }
    }
    Ok(())
}

/// Writes the changes to the held set: newly held operations in, released ones out.
async fn save_held(
    conn: &mut Conn<'_>,
    held: &HeldByRecord,
    before: &HashSet<(RecordId, ActorId, u64)>,
    bytes_of: &HashMap<OpId, Vec<u8>>,
    now: u64,
) -> Result<(), Error> {
    let mut after = HashSet::new();
    let mut new_rows = Vec::new();
    for (record, ops) in held {
        for ((origin, record_seq), op) in ops {
            let key = (*record, *origin, *record_seq);
            if !before.contains(&key) {
                let bytes = bytes_of.get(&op.id).cloned().ok_or_else(|| {
                    Error::Corrupt(format!("no bytes kept for held operation {:?}", op.id))
                })?;
                new_rows.push(vec![
                    Arg::Text(record.to_string()),
                    Arg::Int(origin.0 as i64),
                    Arg::Int(*record_seq as i64),
                    Arg::Bytes(bytes),
                    Arg::Int(now as i64),
                ]);
            }
            after.insert(key);
        }
    }
    for (record, origin, record_seq) in before.difference(&after) {
        conn.execute(
            "DELETE FROM held_ops WHERE record_id = $1 AND origin = $2 AND record_seq = $3",
            vec![
                Arg::Text(record.to_string()),
                Arg::Int(origin.0 as i64),
                Arg::Int(*record_seq as i64),
            ],
        )
        .await?;
    }
    if !new_rows.is_empty() {
        conn.insert_many(
            "INSERT INTO held_ops (record_id, origin, record_seq, bytes, received_ms)",
            5,
            "ON CONFLICT (record_id, origin, record_seq) DO NOTHING",
            new_rows,
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
                Arg::OptText(r.record.map(|id| id.to_string())),
                Arg::Bytes(r.bytes),
            ]
        })
        .collect();
    conn.insert_many(
        "INSERT INTO quarantine (received_ms, from_peer, reason, record_id, bytes)",
        5,
        "",
        rows,
    )
    .await
}
