//! Loading the stored parts of records: record rows, field registers, sets and events, in
//! batched statements, and whole records rebuilt from them.

use crate::Error;
use crate::db::{Arg, Conn};
use renda_replica::{
    Event, FieldId, KindId, MemberSet, Op, OrgCode, Record, RecordId, Register, SetId, Stamp,
};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// What the `records` table says of a record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordRow {
    pub kind: KindId,
    pub org: Option<OrgCode>,
    pub deleted: bool,
}

pub(crate) fn id_keys(ids: &[RecordId]) -> Vec<Vec<Arg>> {
    ids.iter().map(|id| vec![Arg::Id(id.0)]).collect()
}

fn kind_of(n: i64) -> Result<KindId, Error> {
    u16::try_from(n)
        .map(KindId)
        .map_err(|_| Error::Corrupt(format!("stored kind {n}")))
}

fn org_of(n: Option<i64>) -> Result<Option<OrgCode>, Error> {
    n.map(|n| {
        u64::try_from(n)
            .ok()
            .and_then(|n| OrgCode::new(n).ok())
            .ok_or_else(|| Error::Corrupt(format!("stored org code {n}")))
    })
    .transpose()
}

fn small(n: i64, what: &str) -> Result<u16, Error> {
    u16::try_from(n).map_err(|_| Error::Corrupt(format!("stored {what} {n}")))
}

/// The `records` rows of `ids` that exist.
pub(crate) async fn load_record_rows(
    conn: &mut Conn<'_>,
    ids: &[RecordId],
) -> Result<HashMap<RecordId, RecordRow>, Error> {
    let rows: Vec<(Uuid, i64, Option<i64>, bool)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.id, x.kind, x.org_code, x.deleted FROM w CROSS JOIN records x \
             WHERE x.id = w.r",
            1,
            &id_keys(ids),
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for (id, kind, org, deleted) in rows {
        out.insert(
            RecordId(id),
            RecordRow {
                kind: kind_of(kind)?,
                org: org_of(org)?,
                deleted,
            },
        );
    }
    Ok(out)
}

/// The stored registers of the given (record, field) pairs.
pub(crate) async fn load_registers(
    conn: &mut Conn<'_>,
    pairs: &[(RecordId, FieldId)],
) -> Result<HashMap<(RecordId, FieldId), Register>, Error> {
    let keys: Vec<Vec<Arg>> = pairs
        .iter()
        .map(|(id, f)| vec![Arg::Id(id.0), Arg::Int(i64::from(f.0))])
        .collect();
    let rows: Vec<(Uuid, i64, Vec<u8>)> = conn
        .fetch_by_keys(
            "r, f",
            "SELECT x.record_id, x.field, x.state FROM w CROSS JOIN fields x \
             WHERE x.record_id = w.r AND x.field = w.f",
            2,
            &keys,
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for (id, field, state) in rows {
        let id = RecordId(id);
        let field = FieldId(small(field, "field")?);
        let register = Register::from_bytes(&state)
            .map_err(|e| Error::Corrupt(format!("record {id} field {}: {e}", field.0)))?;
        out.insert((id, field), register);
    }
    Ok(out)
}

/// The stored sets of the given (record, set) pairs.
pub(crate) async fn load_sets(
    conn: &mut Conn<'_>,
    pairs: &[(RecordId, SetId)],
) -> Result<HashMap<(RecordId, SetId), MemberSet>, Error> {
    let keys: Vec<Vec<Arg>> = pairs
        .iter()
        .map(|(id, s)| vec![Arg::Id(id.0), Arg::Int(i64::from(s.0))])
        .collect();
    let rows: Vec<(Uuid, i64, Vec<u8>)> = conn
        .fetch_by_keys(
            "r, s",
            "SELECT x.record_id, x.set_id, x.state FROM w CROSS JOIN sets x \
             WHERE x.record_id = w.r AND x.set_id = w.s",
            2,
            &keys,
        )
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for (id, set, state) in rows {
        let id = RecordId(id);
        let set = SetId(small(set, "set")?);
        let members = MemberSet::from_bytes(&state)
            .map_err(|e| Error::Corrupt(format!("record {id} set {}: {e}", set.0)))?;
        out.insert((id, set), members);
    }
    Ok(out)
}

/// Every part of each existing record among `ids`, rebuilt into whole records.
pub(crate) async fn load_records(
    conn: &mut Conn<'_>,
    ids: &[RecordId],
) -> Result<HashMap<RecordId, Record>, Error> {
    let rows = load_record_rows(conn, ids).await?;
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let existing: Vec<RecordId> = ids
        .iter()
        .filter(|id| rows.contains_key(id))
        .copied()
        .collect();
    let keys = id_keys(&existing);
    let field_rows: Vec<(Uuid, i64, Vec<u8>)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.record_id, x.field, x.state FROM w CROSS JOIN fields x \
             WHERE x.record_id = w.r",
            1,
            &keys,
        )
        .await?;
    let set_rows: Vec<(Uuid, i64, Vec<u8>)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.record_id, x.set_id, x.state FROM w CROSS JOIN sets x \
             WHERE x.record_id = w.r",
            1,
            &keys,
        )
        .await?;
    // An event's typed payload is its operation: the log keeps it, the events table only the
    // JSON form for reports.
    let event_rows: Vec<(Uuid, Vec<u8>)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.record_id, o.bytes FROM w CROSS JOIN events x \
             JOIN op_log o ON o.origin = x.origin AND o.origin_seq = x.origin_seq \
             WHERE x.record_id = w.r",
            1,
            &keys,
        )
        .await?;
    type Parts = (
        BTreeMap<FieldId, Register>,
        BTreeMap<SetId, MemberSet>,
        Vec<Event>,
    );
    let mut parts: HashMap<RecordId, Parts> = HashMap::with_capacity(existing.len());
    for (id, field, state) in field_rows {
        let id = RecordId(id);
        let field = FieldId(small(field, "field")?);
        let register = Register::from_bytes(&state)
            .map_err(|e| Error::Corrupt(format!("record {id} field {}: {e}", field.0)))?;
        parts.entry(id).or_default().0.insert(field, register);
    }
    for (id, set, state) in set_rows {
        let id = RecordId(id);
        let set = SetId(small(set, "set")?);
        let members = MemberSet::from_bytes(&state)
            .map_err(|e| Error::Corrupt(format!("record {id} set {}: {e}", set.0)))?;
        parts.entry(id).or_default().1.insert(set, members);
    }
    for (id, bytes) in event_rows {
        let id = RecordId(id);
        parts.entry(id).or_default().2.push(event_of(&bytes)?);
    }
    let mut out = HashMap::with_capacity(existing.len());
    for id in existing {
        let kind = rows[&id].kind;
        let (fields, sets, events) = parts.remove(&id).unwrap_or_default();
        out.insert(id, Record::from_parts(id, kind, fields, sets, events));
    }
    Ok(out)
}

/// The event an event operation appended.
pub(crate) fn event_of(bytes: &[u8]) -> Result<Event, Error> {
    let op = Op::decode_unchecked(bytes)
        .map_err(|e| Error::Corrupt(format!("logged event operation: {e}")))?;
    let stamp = Stamp::of(&op);
    match op.change {
        renda_replica::Change::Event { event, payload } => Ok(Event {
            stamp,
            kind: event,
            payload,
        }),
        _ => Err(Error::Corrupt(format!(
            "event row of record {} points at an operation that is not an event",
            op.record
        ))),
    }
}
