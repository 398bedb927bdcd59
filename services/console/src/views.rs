//! The console's own read endpoints (sync state, conflicts, quarantine, a record with its
//! history), conflict resolution through `Records.ResolveConflict`, and the edit form of
//! deputies and stations, which writes through their update calls.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use renda_replica::{RecordId, Value};
use renda_store::StoredRecord;
use serde_json::{Value as Json_, json};
use tonic::Code;
use uuid::Uuid;

use renda_api::people::Directory;

use crate::rpc::{Refusal, caller_metadata};
use crate::session::Session;
use crate::{Shared, require};

type AppState = Arc<Shared>;

/// Fields never shown in the console, whatever the record.
const HIDDEN_FIELDS: &[&str] = &["password_hash", "id_card"];
/// Kinds never shown in the console.
const HIDDEN_KINDS: &[&str] = &["user", "deputy_identity"];

fn storage_refusal(e: renda_store::Error) -> Refusal {
    tracing::error!(error = %e, "console read from the store failed");
    Refusal::new(Code::Internal, "", "读取数据失败，请稍后再试")
}

/// The names of this node's users and org units, to say who wrote what.
async fn directory(shared: &Shared) -> Result<Directory, Refusal> {
    Directory::load(&shared.state.store, &shared.state.api)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "reading user and unit names failed");
            Refusal::new(Code::Internal, "", "读取数据失败，请稍后再试")
        })
}

fn respond(result: Result<Json_, Refusal>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r.into_response(),
    }
}

/// This node's sync state, and for a county or city every township (and county) below it.
pub async fn status(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    respond(status_json(&shared, &headers).await)
}

async fn status_json(shared: &Shared, headers: &HeaderMap) -> Result<Json_, Refusal> {
    let session = require(shared, headers)?;
    let local = shared.state.status.local().await.map_err(storage_refusal)?;
    let below = shared.state.status.below();
    let names = org_names(shared).await;
    let now = crate::now_ms();
    // The link actually in use (the parent last synced with), not a fallback never used.
    let parent = renda_sync::status::link_in_use(&local.peers);
    let offline = shared.state.sync.as_ref().map(|s| s.is_offline());
    // What this node wrote since its last push counts now, not at the last session: a clerk
    // working offline sees the backlog grow.
    let pending_up = match parent {
        Some(p) => shared
            .state
            .store
            .pending_push(&p.peer_org_code)
            .await
            .unwrap_or(p.ops_pending_to_peer),
        None => 0,
    };
    let own = json!({
        "org_code": local.org_code,
        "name": names.get(&local.org_code).cloned().unwrap_or_default(),
        "level": local.level,
        "offline": offline,
        "online": parent.is_some_and(|p| p.online) && offline != Some(true),
        "last_sync_ms": parent.map_or(0, |p| p.last_success_unix_ms),
        "pending_up": pending_up,
        "pending_down": parent.map_or(0, |p| p.ops_pending_from_peer),
        "last_error": parent.map(|p| p.last_error.clone()).unwrap_or_default(),
        "last_error_ms": parent.map_or(0, |p| p.last_error_unix_ms),
        "log_ops": local.log_ops,
        "held_ops": local.held_ops,
        "quarantined_ops": local.quarantined_ops,
    });
    // Every org unit below that runs a node, known from the tree, from the reports that
    // reached us, or from a peer link: a township that never synced still shows.
    let mut orgs: BTreeMap<String, ()> = BTreeMap::new();
    for code in names.keys() {
        if let Ok(org) = code.parse::<renda_replica::OrgCode>()
            && org != shared.node
            && shared.node.contains(org)
            && org.level() != renda_replica::Level::Village
        {
            orgs.insert(code.clone(), ());
        }
    }
    for report in &below {
        orgs.insert(report.org_code.clone(), ());
    }
    let mut nodes = Vec::new();
    for code in orgs.keys() {
        if !session.may_see(code) {
            continue;
        }
        let report = below.iter().find(|r| &r.org_code == code);
        let up = report.and_then(|r| renda_sync::status::link_in_use(&r.peers));
        let link = local.peers.iter().find(|p| &p.peer_org_code == code);
        let reported = report.map_or(0, |r| r.reported_unix_ms);
        let last_sync = up
            .map_or(0, |p| p.last_success_unix_ms)
            .max(link.map_or(0, |p| p.last_success_unix_ms.max(p.last_bundle_unix_ms)));
        // Online: a child linked here called within a few of its own sync intervals (its link
        // says so); a node further down, when its report says its link was online and the
        // report is recent for its interval and the intervals of the nodes relaying it.
        let online = match link {
            Some(link) => link.online,
            None => report.is_some_and(|r| {
                let relay: i64 = below
                    .iter()
                    .filter(|b| {
                        b.org_code.parse::<renda_replica::OrgCode>().is_ok_and(|o| {
                            o != shared.node
                                && shared.node.contains(o)
                                && code.parse().is_ok_and(|c| o != c && o.contains(c))
                        })
                    })
                    .map(|b| {
                        renda_sync::status::ONLINE_ROUNDS
                            .saturating_mul(i64::try_from(b.sync_interval_ms).unwrap_or(0))
                    })
                    .sum();
                renda_sync::status::reported_online(r, now, relay)
            }),
        };
        nodes.push(json!({
            "org_code": code,
            "name": names.get(code).cloned().unwrap_or_default(),
            "level": code.parse::<renda_replica::OrgCode>().map(|o| o.level().as_str()).unwrap_or(""),
            "online": online,
            "reported_ms": reported,
            "last_sync_ms": last_sync,
            "pending_up": up.map_or(0, |p| p.ops_pending_to_peer),
            "pending_down": link.map_or(0, |p| p.ops_pending_to_peer),
            "last_error": up.map(|p| p.last_error.clone()).filter(|e| !e.is_empty())
                .or_else(|| link.map(|p| p.last_error.clone())).unwrap_or_default(),
            "last_error_ms": up.map_or(0, |p| p.last_error_unix_ms).max(link.map_or(0, |p| p.last_error_unix_ms)),
            "held_ops": report.map_or(0, |r| r.held_ops),
            "quarantined_ops": report.map_or(0, |r| r.quarantined_ops),
        }));
    }
    Ok(json!({"node": own, "below": nodes, "now_ms": now}))
}

/// Names of the org units this node knows, by code: the org tree is reference data every
/// node holds, read from the store as the services read it.
async fn org_names(shared: &Shared) -> BTreeMap<String, String> {
    match shared.state.api.refresh(&shared.state.store).await {
        Ok(tree) => tree
            .units()
            .map(|u| (u.code.to_string(), u.name.clone()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "console could not read the org tree");
            BTreeMap::new()
        }
    }
}

/// A stored value as JSON: dates as YYYY-MM-DD, references and org units as strings.
fn value_json(value: &Value) -> Json_ {
    match value {
        Value::Null => Json_::Null,
        Value::Text(s) => json!(s),
        Value::Int(n) => json!(n),
        Value::Bool(b) => json!(b),
        Value::Date(days) => {
            let day = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|d| d.checked_add_signed(chrono::Duration::days(i64::from(*days))));
            json!(day.map(|d| d.to_string()).unwrap_or_default())
        }
        Value::Ref(id) => json!(id.to_string()),
        Value::Org(org) => json!(org.to_string()),
    }
}

fn shown_value(field: &str, value: &Value) -> Json_ {
    if field == "phone"
        && let Value::Text(p) = value
    {
        return json!(mask_phone(p));
    }
    value_json(value)
}

fn mask_phone(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

fn record_org(r: &StoredRecord) -> String {
    r.org.map(|o| o.to_string()).unwrap_or_default()
}

fn title_of(r: &StoredRecord) -> String {
    ["name", "title", "content", "login"]
        .iter()
        .find_map(|f| match r.fields.get(*f) {
            Some(Value::Text(s)) if !s.is_empty() => Some(s.chars().take(40).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A stored value in the form `Records.ResolveConflict` reads.
fn raw_value(value: &Value) -> String {
    match value_json(value) {
        Json_::String(s) => s,
        Json_::Null => String::new(),
        other => other.to_string(),
    }
}

/// The type of a field as the console's new-value input offers it.
fn field_type(shared: &Shared, r: &StoredRecord, field: &str) -> &'static str {
    use renda_replica::ValueType as T;
    let ty = shared
        .state
        .store
        .schema()
        .kind(r.kind)
        .and_then(|k| k.field_named(field))
        .map(|f| f.ty);
    match ty {
        Some(T::Int) => "integer",
        Some(T::Bool) => "boolean",
        Some(T::Date) => "date",
        Some(T::Ref) => "record",
        Some(T::Org) => "org",
        Some(T::Text) | None => "text",
    }
}

/// Every conflicting field with its values (the winner first), where, when and by whom each
/// was written, and the form to keep it in (`raw`; `null` for a masked phone number, which is
/// never sent to the browser, so only a new value settles it).
fn conflicts_of(shared: &Shared, names: &Directory, r: &StoredRecord) -> Vec<Json_> {
    r.conflicts
        .iter()
        .filter(|(field, _)| !HIDDEN_FIELDS.contains(&field.as_str()))
        .map(|(field, c)| {
            let values: Vec<Json_> = c
                .values
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "value": shown_value(field, &s.value),
                        "raw": if field == "phone" { Json_::Null } else { json!(raw_value(&s.value)) },
                        "winner": i == 0,
                        "at_ms": s.stamp.hlc.physical_ms,
                        "org": s.stamp.org.to_string(),
                        "author": format!("{}（{}）", names.person(&s.stamp.author), names.unit(s.stamp.author.org)),
                    })
                })
                .collect();
            json!({"field": field, "type": field_type(shared, r, field), "values": values})
        })
        .collect()
}

/// Records with fields whose concurrent values wait for a person.
pub async fn conflicts(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    respond(conflicts_json(&shared, &headers).await)
}

async fn conflicts_json(shared: &Shared, headers: &HeaderMap) -> Result<Json_, Refusal> {
    let session = require(shared, headers)?;
    let records = shared
        .state
        .store
        .conflicts(200)
        .await
        .map_err(storage_refusal)?;
    let names = directory(shared).await?;
    let list: Vec<Json_> = records
        .iter()
        .filter(|r| !HIDDEN_KINDS.contains(&r.kind_name.as_str()))
        .filter(|r| session.may_see(&record_org(r)))
        .map(|r| {
            json!({
                "id": r.id.to_string(),
                "kind": r.kind_name,
                "org": record_org(r),
                "title": title_of(r),
                "fields": conflicts_of(shared, &names, r),
                "version": r.version.encode(),
            })
        })
        .collect();
    Ok(json!({"conflicts": list}))
}

/// Operations kept aside on receipt, with their reasons.
pub async fn quarantine(State(shared): State<AppState>, headers: HeaderMap) -> Response {
    respond(quarantine_json(&shared, &headers).await)
}

async fn quarantine_json(shared: &Shared, headers: &HeaderMap) -> Result<Json_, Refusal> {
    let session = require(shared, headers)?;
    let store = &shared.state.store;
    let open = store.quarantine(200).await.map_err(storage_refusal)?;
    let settled = store
        .quarantine_settled(50)
        .await
        .map_err(storage_refusal)?;
    let seen = |q: &&renda_store::Quarantined| {
        session.sees_whole_node() || q.from.as_deref().is_some_and(|f| session.may_see(f))
    };
    let entry = |q: &renda_store::Quarantined| {
        let mut row = json!({
            "id": q.id,
            "received_ms": q.received_at.map_or(0, |t| t.timestamp_millis()),
            "from": q.from.clone().unwrap_or_default(),
            "reason": q.reason,
            "record_id": q.record.map(|r| r.to_string()).unwrap_or_default(),
            "bytes": q.bytes.len(),
        });
        if let (Some(how), Some(map)) = (&q.settled, row.as_object_mut()) {
            map.insert(
                "settled".into(),
                json!({
                    "at_ms": how.at.map_or(0, |t| t.timestamp_millis()),
                    "superseded": how.superseded,
                    "note": how.note,
                    "by": how.by,
                }),
            );
        }
        row
    };
    Ok(json!({
        "quarantine": open.iter().filter(seen).map(entry).collect::<Vec<_>>(),
        "settled": settled.iter().filter(seen).map(entry).collect::<Vec<_>>(),
    }))
}

/// One record: its fields (personal data masked), conflicts, and history.
pub async fn record(
    State(shared): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(record_json(&shared, &headers, &id).await)
}

async fn load(shared: &Shared, session: &Session, id: &str) -> Result<StoredRecord, Refusal> {
    let uuid = Uuid::parse_str(id.trim())
        .map_err(|_| Refusal::new(Code::InvalidArgument, "id", "记录编号格式错误"))?;
    let r = shared
        .state
        .store
        .record(RecordId(uuid))
        .await
        .map_err(storage_refusal)?
        .filter(|r| !HIDDEN_KINDS.contains(&r.kind_name.as_str()))
        .ok_or_else(|| Refusal::new(Code::NotFound, "id", "记录不存在"))?;
    let org = record_org(&r);
    let above = session
        .org()
        .to_string()
        .parse::<renda_replica::OrgCode>()
        .ok()
        .zip(r.org)
        .is_some_and(|(user, org)| org.contains(user));
    if !session.may_see(&org) && !above {
        return Err(Refusal::new(
            Code::PermissionDenied,
            "id",
            "只能查看本级及下级单位的数据",
        ));
    }
    Ok(r)
}

async fn record_json(shared: &Shared, headers: &HeaderMap, id: &str) -> Result<Json_, Refusal> {
    let session = require(shared, headers)?;
    let r = load(shared, &session, id).await?;
    let names = directory(shared).await?;
    let fields: serde_json::Map<String, Json_> = r
        .fields
        .iter()
        .filter(|(k, _)| !HIDDEN_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), shown_value(k, v)))
        .collect();
    let sets: serde_json::Map<String, Json_> = r
        .sets
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(v.iter().map(Uuid::to_string).collect::<Vec<_>>()),
            )
        })
        .collect();
    let mut client = renda_proto::org::v1::records_client::RecordsClient::new(shared.rpc.channel());
    let mut request = tonic::Request::new(renda_proto::org::v1::HistoryRequest {
        record_id: r.id.to_string(),
    });
    caller_metadata(&session, request.metadata_mut());
    let history = client
        .history(request)
        .await
        .map_err(|s| Refusal::from_status(&s))?
        .into_inner();
    let entries: Vec<Json_> = history
        .entries
        .iter()
        .map(|e| {
            json!({
                "op": e.op,
                "at_ms": e.at_ms,
                "author": format!("{}（{}）", e.author_name, e.author_unit),
                "origin_org": e.origin_org,
                "change": e.change,
            })
        })
        .collect();
    Ok(json!({
        "id": r.id.to_string(),
        "kind": r.kind_name,
        "org": record_org(&r),
        "title": title_of(&r),
        "deleted": r.deleted,
        "fields": fields,
        "sets": sets,
        "events": r.events.len(),
        "conflicts": conflicts_of(shared, &names, &r),
        "history": entries,
        "version": r.version.encode(),
    }))
}

#[derive(serde::Deserialize)]
pub struct Resolution {
    id: String,
    field: String,
    /// The chosen value in the form `Records.ResolveConflict` reads (the `raw` of a conflict's
    /// value, or what the clerk typed).
    #[serde(default)]
    value: Json_,
    /// The record's `version` as the page read it.
    #[serde(default)]
    version: String,
}

/// Keeps one value of a conflicting field, or a new one, through `Records.ResolveConflict`:
/// one write that saw every concurrent value, so it replaces them all, whatever the kind.
pub async fn resolve(
    State(shared): State<AppState>,
    headers: HeaderMap,
    Json(resolution): Json<Resolution>,
) -> Response {
    respond(resolve_json(&shared, &headers, resolution).await)
}

async fn resolve_json(
    shared: &Shared,
    headers: &HeaderMap,
    resolution: Resolution,
) -> Result<Json_, Refusal> {
    let session = require(shared, headers)?;
    let r = load(shared, &session, &resolution.id).await?;
    let value = match resolution.value {
        Json_::String(s) => s,
        Json_::Null => String::new(),
        other => other.to_string(),
    };
    let mut client = renda_proto::org::v1::records_client::RecordsClient::new(shared.rpc.channel());
    let mut request = tonic::Request::new(renda_proto::org::v1::ResolveConflictRequest {
        record_id: r.id.to_string(),
        field: resolution.field.clone(),
        value,
        version: resolution.version,
    });
    caller_metadata(&session, request.metadata_mut());
    client
        .resolve_conflict(request)
        .await
        .map_err(|s| Refusal::from_status(&s))?;
    record_json(shared, headers, &r.id.to_string()).await
}

type Changes = serde_json::Map<String, Json_>;

fn text_field(r: &StoredRecord, name: &str, changes: &Changes) -> String {
    if let Some(value) = changes.get(name) {
        return match value {
            Json_::String(s) => s.clone(),
            Json_::Null => String::new(),
            other => other.to_string(),
        };
    }
    match r.fields.get(name) {
        Some(Value::Text(s)) => s.clone(),
        _ => String::new(),
    }
}

#[derive(serde::Deserialize)]
pub struct Edit {
    #[serde(default)]
    fields: Changes,
    /// The record's `version` as the form read it: the save is written against it.
    #[serde(default)]
    version: String,
}

/// Changes some fields of a deputy or station; the others keep the values the record shows.
pub async fn edit(
    State(shared): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(edit): Json<Edit>,
) -> Response {
    respond(edit_json(&shared, &headers, &id, edit).await)
}

async fn edit_json(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
    edit: Edit,
) -> Result<Json_, Refusal> {
    let session = require(shared, headers)?;
    let r = load(shared, &session, id).await?;
    update(shared, &session, &r, &edit.fields, &edit.version).await?;
    record_json(shared, headers, &r.id.to_string()).await
}

/// One update through the API with every field as the record shows it now, except `changes`,
/// against `version`, the record as the form read it (so a field the person left stays as it
/// is now, whatever arrived since the form was opened).
async fn update(
    shared: &Shared,
    session: &Session,
    r: &StoredRecord,
    chosen: &Changes,
    version: &str,
) -> Result<(), Refusal> {
    let session = session.clone();
    let id = r.id.to_string();
    match r.kind_name.as_str() {
        "deputy" => {
            use renda_proto::deputy::v1 as pb;
            let term = if let Some(term) = chosen.get("term") {
                term.as_u64()
                    .or_else(|| term.as_str().and_then(|s| s.trim().parse().ok()))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| Refusal::new(Code::InvalidArgument, "term", "届次须为正整数"))?
            } else {
                match r.fields.get("term") {
                    Some(Value::Int(n)) => u32::try_from(*n).unwrap_or(0),
                    _ => 0,
                }
            };
            // Stored codes (`township`, `male`, `serving`) as the proto enums' values; a code
            // this build does not know goes as unspecified, which the API refuses or defaults.
            let wire = |prefix: &str, code: &str| {
                let name = format!("{prefix}{}", code.trim().to_ascii_uppercase());
                (name, code.trim().is_empty())
            };
            let levels = text_field(r, "levels", chosen);
            let fields = pb::DeputyFields {
                name: text_field(r, "name", chosen),
                levels: levels
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (name, _) = wire("DEPUTY_LEVEL_", l);
                        pb::DeputyLevel::from_str_name(&name).map_or(0, i32::from)
                    })
                    .collect(),
                constituency: text_field(r, "constituency", chosen),
                term,
                gender: match wire("GENDER_", &text_field(r, "gender", chosen)) {
                    (_, true) => 0,
                    (name, false) => pb::Gender::from_str_name(&name).map_or(0, i32::from),
                },
                ethnicity: text_field(r, "ethnicity", chosen),
                sector: text_field(r, "sector", chosen),
                phone: text_field(r, "phone", chosen),
                id_card: String::new(),
                status: match wire("DEPUTY_STATUS_", &text_field(r, "status", chosen)) {
                    (_, true) => 0,
                    (name, false) => pb::DeputyStatus::from_str_name(&name).map_or(0, i32::from),
                },
            };
            let mut client = pb::deputies_client::DeputiesClient::new(shared.rpc.channel());
            let mut request = tonic::Request::new(pb::UpdateDeputyRequest {
                id: id.clone(),
                fields: Some(fields),
                version: version.to_owned(),
            });
            caller_metadata(&session, request.metadata_mut());
            client
                .update_deputy(request)
                .await
                .map_err(|s| Refusal::from_status(&s))?;
        }
        "station" => {
            use renda_proto::station::v1 as pb;
            let checklist = renda_api::schema::CHECKLIST_FIELDS
                .iter()
                .filter(|(name, _)| {
                    if let Some(value) = chosen.get(*name) {
                        value.as_bool().unwrap_or(false)
                    } else {
                        matches!(r.fields.get(*name), Some(Value::Bool(true)))
                    }
                })
                .filter_map(|(name, _)| {
                    pb::ChecklistItem::from_str_name(&format!(
                        "CHECKLIST_ITEM_{}",
                        name.to_uppercase()
                    ))
                })
                .map(i32::from)
                .collect();
            // The record holds the kind's stored code ("home"); the request its enum, named
            // after the code. An unknown code is sent as unspecified, which the API refuses.
            let kind = pb::StationKind::from_str_name(&format!(
                "STATION_KIND_{}",
                text_field(r, "kind", chosen).trim().to_uppercase()
            ))
            .map_or(0, i32::from);
            let mut client = pb::stations_client::StationsClient::new(shared.rpc.channel());
            let mut request = tonic::Request::new(pb::UpdateStationRequest {
                id: id.clone(),
                name: text_field(r, "name", chosen),
                kind,
                address: text_field(r, "address", chosen),
                checklist,
                version: version.to_owned(),
            });
            caller_metadata(&session, request.metadata_mut());
            client
                .update_station(request)
                .await
                .map_err(|s| Refusal::from_status(&s))?;
        }
        _ => {
            return Err(Refusal::new(
                Code::FailedPrecondition,
                "",
                "此类记录请在其业务页面修改",
            ));
        }
    }
    Ok(())
}
