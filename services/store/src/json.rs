//! The JSON columns of the materialised `fields`, `sets` and `events` tables, for SQL reports,
//! and the record-level JSON a [`crate::StoredRecord`] carries.

use chrono::{DateTime, NaiveDate, Utc};
use renda_replica::schema::KindSchema;
use renda_replica::{FieldId, FieldView, Hlc, RecordView, Stamped, Value};
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

/// Text → string, int → number, bool, date → "YYYY-MM-DD", ref → uuid string, org → code string.
pub(crate) fn value(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Text(s) => Json::String(s.clone()),
        Value::Int(n) => json!(n),
        Value::Bool(b) => Json::Bool(*b),
        Value::Date(days) => date(*days).map_or(Json::Null, Json::String),
        Value::Ref(r) => Json::String(r.to_string()),
        Value::Org(o) => Json::String(o.to_string()),
    }
}

/// Days since 1970-01-01 as an ISO date; `None` outside chrono's range.
pub(crate) fn date(days: i32) -> Option<String> {
    const CE_TO_UNIX_DAYS: i32 = 719_163;
    days.checked_add(CE_TO_UNIX_DAYS)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// The wall-clock time of a hybrid clock reading.
pub fn hlc_time(hlc: Hlc) -> Option<DateTime<Utc>> {
    i64::try_from(hlc.physical_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
}

pub(crate) fn field_name(kind: Option<&KindSchema>, field: FieldId) -> String {
    kind.and_then(|k| k.field(field))
        .map(|f| f.name.clone())
        .unwrap_or_else(|| field.0.to_string())
}

fn stamped(s: &Stamped) -> Json {
    json!({
        "value": value(&s.value),
        "at": hlc_time(s.stamp.hlc).map(|t| t.to_rfc3339()),
        "hlc": s.stamp.hlc.to_string(),
        "org": s.stamp.org.to_string(),
        "author": s.stamp.author.to_string(),
        "op": format!("{}:{}", s.stamp.op.origin, s.stamp.op.seq),
    })
}

/// A field's concurrent values, winner first, each with when, where and who; `None` while the
/// field has no conflict.
pub(crate) fn conflicts(field: &FieldView) -> Option<String> {
    if field.conflicts.is_empty() {
        return None;
    }
    let all: Vec<Json> = std::iter::once(&field.winner)
        .chain(&field.conflicts)
        .map(stamped)
        .collect();
    Some(Json::Array(all).to_string())
}

/// A set's members as a JSON array of UUID strings.
pub(crate) fn members(members: &[Uuid]) -> String {
    Json::Array(
        members
            .iter()
            .map(|m| Json::String(m.to_string()))
            .collect(),
    )
    .to_string()
}

/// The three JSON documents of a whole record: fields (winner values by name), conflicts (for
/// each conflicting field, every concurrent value with when, where and who; winner first) and
/// sets (members by set name).
pub(crate) struct Columns {
    pub fields: String,
    pub conflicts: String,
    pub sets: String,
}

pub(crate) fn columns(view: &RecordView, kind: Option<&KindSchema>) -> Columns {
    let mut fields = Map::new();
    let mut conflicts = Map::new();
    for f in &view.fields {
        let name = field_name(kind, f.field);
        fields.insert(name.clone(), value(&f.winner.value));
        if !f.conflicts.is_empty() {
            let all: Vec<Json> = std::iter::once(&f.winner)
                .chain(&f.conflicts)
                .map(stamped)
                .collect();
            conflicts.insert(name, Json::Array(all));
        }
    }
    let mut sets = Map::new();
    for (id, members) in &view.sets {
        let name = kind
            .and_then(|k| k.set(*id))
            .map(|s| s.name.clone())
            .unwrap_or_else(|| id.0.to_string());
        sets.insert(
            name,
            Json::Array(
                members
                    .iter()
                    .map(|m| Json::String(m.to_string()))
                    .collect(),
            ),
        );
    }
    Columns {
        fields: Json::Object(fields).to_string(),
        conflicts: Json::Object(conflicts).to_string(),
        sets: Json::Object(sets).to_string(),
    }
}

/// An event payload as a JSON object keyed by payload field name.
pub(crate) fn payload(
    event: Option<&renda_replica::schema::EventSchema>,
    payload: &[(FieldId, Value)],
) -> String {
    let mut out = Map::new();
    for (id, v) in payload {
        let name = event
            .and_then(|e| e.fields.iter().find(|f| f.id == *id))
            .map(|f| f.name.clone())
            .unwrap_or_else(|| id.0.to_string());
        out.insert(name, value(v));
    }
    Json::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso_and_out_of_range_dates_are_null() {
        assert_eq!(date(0).as_deref(), Some("1970-01-01"));
        assert_eq!(date(20_000).as_deref(), Some("2024-10-04"));
        assert_eq!(value(&Value::Date(i32::MAX)), Json::Null);
    }
}
