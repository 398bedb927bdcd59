//! `renda.org.v1`: org units (reference data the city writes for its subtree), the history of
//! any record, and settling a conflict on any field of any record.

use renda_domain::authority::{RecordKind, Step};
use renda_domain::org::{Level, OrgCode};
use renda_proto::org::v1 as pb;
use renda_replica::schema::FieldSchema;
use renda_replica::{Author, RecordId, Value, ValueType, Version};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{ANYONE, CITY, READ, STAFF, ServiceAccess, roles};
use crate::schema::kind;

pub(crate) struct Units(pub Shared);
pub(crate) struct Records(pub Shared);

wire!(Level => pb::Level {
    City <=> City,
    County <=> County,
    Township <=> Township,
    Village <=> Village,
});

fn unit_pb(code: &OrgCode, name: &str) -> pb::OrgUnit {
    pb::OrgUnit {
        code: code.to_string(),
        name: name.to_owned(),
        level: code.level().wire(),
        parent: code.parent().map(|p| p.to_string()).unwrap_or_default(),
    }
}

/// Masks the personal data a history line may hold (a deputy's phone, an ID-card number).
fn masked(change: String, local_only: bool) -> String {
    const PERSONAL: [&str; 2] = ["phone = ", "id_card = "];
    if local_only {
        return "(personal data)".into();
    }
    match PERSONAL.iter().find(|p| change.starts_with(*p)) {
        Some(prefix) => format!("{prefix}\"***\""),
        None => change,
    }
}

/// `CreateOrgUnit` as domain values: the code (the node's own when empty) and the name.
struct NewUnit {
    code: Option<OrgCode>,
    name: String,
}

impl TryFrom<pb::CreateOrgUnitRequest> for NewUnit {
    type Error = Error;

    fn try_from(req: pb::CreateOrgUnitRequest) -> Result<Self> {
        limit("name", &req.name, 200)?;
        Ok(Self {
            code: optional_org("code", &req.code)?,
            name: req.name,
        })
    }
}

/// Writes one org unit (the city's reference data). Checked against the tree with the unit
/// added, so the city can write its own root and each unit needs its parent known first.
async fn create_checked(
    core: &Core,
    caller: &Caller,
    code: OrgCode,
    name: String,
) -> Result<pb::OrgUnit> {
    let name = renda_domain::text::bounded("name", &name, 2, 50).map_err(Error::from)?;
    let mut tree = core.tree().await?.as_ref().clone();
    add_checked(core, caller, &mut tree, &code, &name)?;
    write_unit(core, caller, &code, &name).await?;
    Ok(unit_pb(&code, &name))
}

/// Adds `code` to `tree` if the caller may write it there: its parent known, its code not
/// known under another name, within the caller's authority.
fn add_checked(
    core: &Core,
    caller: &Caller,
    tree: &mut renda_domain::org::OrgTree,
    code: &OrgCode,
    name: &str,
) -> Result<()> {
    tree.add(*code, name).map_err(|e| match e {
        renda_domain::Error::Precondition {
            reason, reason_zh, ..
        } => Error::precondition("code", reason, reason_zh),
        other => Error::Domain(other),
    })?;
    core.authorize_in(caller, RecordKind::OrgUnit, Step::Edit, code, tree)
}

/// Writes the record of a checked unit: one record per code, with an id derived from it, so
/// two creations are one record.
async fn write_unit(core: &Core, caller: &Caller, code: &OrgCode, name: &str) -> Result<()> {
    let id = Uuid::from_u128(u128::from(code.get()));
    core.write(
        caller,
        id,
        kind::ORG_UNIT,
        vec![
            Pending::Put("org", Value::Org(*code)),
            Pending::Put("name", Value::Text(name.to_owned())),
        ],
    )
    .await?;
    Ok(())
}

/// Which role may call each RPC of `renda.org.v1.OrgUnits` (see [`crate::gate`]).
pub(crate) const UNITS_ACCESS: ServiceAccess = ServiceAccess {
    service: pb::org_units_server::SERVICE_NAME,
    rpcs: &[
        ("CreateOrgUnit", roles(CITY)),
        ("ListOrgUnits", roles(ANYONE)),
    ],
};

/// Which role may call each RPC of `renda.org.v1.Records` (see [`crate::gate`]).
pub(crate) const RECORDS_ACCESS: ServiceAccess = ServiceAccess {
    service: pb::records_server::SERVICE_NAME,
    rpcs: &[
        ("History", roles(READ)),
        ("ResolveConflict", roles(STAFF)),
        ("DismissQuarantined", roles(STAFF)),
    ],
};

#[tonic::async_trait]
impl pb::org_units_server::OrgUnits for Units {
    async fn create_org_unit(
        &self,
        req: Request<pb::CreateOrgUnitRequest>,
    ) -> Result<Response<pb::OrgUnit>, Status> {
        let (caller, NewUnit { code, name }) = edge::accept(req)?;
        let code = match code {
            Some(code) => code,
            None => self.0.node_org()?,
        };
        Ok(Response::new(
            create_checked(&self.0, &caller, code, name).await?,
        ))
    }

    async fn list_org_units(
        &self,
        req: Request<pb::ListOrgUnitsRequest>,
    ) -> Result<Response<pb::ListOrgUnitsResponse>, Status> {
        let Under(under) = Under::try_from(req.into_inner())?;
        let tree = self.0.tree().await?;
        let units = match under {
            None => tree.units().map(|u| unit_pb(&u.code, &u.name)).collect(),
            Some(code) => tree
                .subtree(&code)
                .into_iter()
                .map(|u| unit_pb(&u.code, &u.name))
                .collect(),
        };
        Ok(Response::new(pb::ListOrgUnitsResponse { units }))
    }
}

/// Fields no person types, so no person settles them either: the API fills them in itself
/// (the owning org, the soft-delete flag, QR tokens, the masked ID-card number, a user's
/// number and password hash) or keeps them at one node (ID-card numbers).
const NOT_TYPED: &[&str] = &[
    "deleted",
    "org",
    "id_card",
    "id_card_masked",
    "qr_token",
    "password_hash",
    "number",
];

/// Reads a value sent as text in the type the schema gives `field`. Empty clears the field.
fn parse_value(field: &FieldSchema, raw: &str) -> Result<Value> {
    let max = match field.ty {
        ValueType::Text => field.max_chars as usize,
        // The longest other form is a record id (36 characters).
        _ => 64,
    };
    limit("value", raw, max)?;
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(Value::Null);
    }
    let wrong = |what: &str, zh: &str| {
        Error::invalid(
            "value",
            format!(
                "{:?} is not {what}",
                trimmed.chars().take(40).collect::<String>()
            ),
            zh,
        )
    };
    Ok(match field.ty {
        // Text is kept exactly as sent: keeping a value must write that value.
        ValueType::Text => Value::Text(raw.to_owned()),
        ValueType::Int => Value::Int(
            trimmed
                .parse::<i64>()
                .map_err(|_| wrong("an integer", "应为整数"))?,
        ),
        ValueType::Bool => match trimmed {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong("true or false", "应为 true 或 false")),
        },
        ValueType::Date => date_value(parse_day("value", trimmed)?),
        ValueType::Ref => reference(parse_id("value", trimmed)?),
        ValueType::Org => {
            let code = OrgCode::parse(trimmed)
                .map_err(|e| Error::invalid("value", e.to_string(), e.reason_zh()))?;
            Value::Org(code)
        }
    })
}

/// A value in the form [`parse_value`] reads.
fn value_string(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Date(_) => value_date(value).map(day_string).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn no_conflict(field: &str) -> Error {
    Error::precondition(
        "field",
        format!("{field} has no conflicting values (settled already?)"),
        "该字段没有待处理的冲突（可能已被解决，请刷新）",
    )
}

/// `ListOrgUnits`: the subtree root, or the whole tree.
struct Under(Option<OrgCode>);

impl TryFrom<pb::ListOrgUnitsRequest> for Under {
    type Error = Error;

    fn try_from(req: pb::ListOrgUnitsRequest) -> Result<Self> {
        Ok(Self(optional_org("under", &req.under)?))
    }
}

/// `History`: the record.
struct RecordOf(Uuid);

impl TryFrom<pb::HistoryRequest> for RecordOf {
    type Error = Error;

    fn try_from(req: pb::HistoryRequest) -> Result<Self> {
        Ok(Self(parse_id("record_id", &req.record_id)?))
    }
}

/// `ResolveConflict`: the record, the field's schema name and the value as sent (free-form:
/// read in the field's type once the record's kind is known).
struct Settle {
    id: Uuid,
    field: String,
    value: String,
    read: Version,
}

impl TryFrom<pb::ResolveConflictRequest> for Settle {
    type Error = Error;

    fn try_from(req: pb::ResolveConflictRequest) -> Result<Self> {
        let id = parse_id("record_id", &req.record_id)?;
        Ok(Self {
            id,
            field: req.field,
            value: req.value,
            read: edge::read_version(&req.version, id)?,
        })
    }
}

/// Settles the conflict on one field of a record with `raw` (one of the concurrent values, or
/// a new one): one local write whose context is the field as the person `read` it, so it
/// replaces every value they saw on every node that receives it (one that arrived since
/// stays beside it, still a conflict).
pub(crate) async fn resolve_conflict(
    core: &Core,
    caller: &Caller,
    id: Uuid,
    field: &str,
    raw: &str,
    read: &Version,
) -> Result<pb::ResolveConflictResponse> {
    let unknown = || {
        Error::precondition(
            "record_id",
            format!("record {id} is not held at this node"),
            "本节点没有这条记录",
        )
    };
    let record = core
        .store
        .record(RecordId(id))
        .await?
        .filter(|r| !r.deleted)
        .ok_or_else(unknown)?;
    let schema = core.store.schema();
    let kind = schema
        .kind(record.kind)
        .ok_or_else(|| Error::Internal(format!("unknown kind {}", record.kind.0)))?;
    if kind.local_only {
        // Personal data never leaves its node, so it cannot conflict; refuse all the same.
        return Err(Error::precondition(
            "record_id",
            format!(
                "{} records hold personal data and are not edited here",
                kind.name
            ),
            "此类记录含个人信息，不能在此修改",
        ));
    }
    let record_kind = renda_domain::record::governed_as(&kind.name)
        .ok_or_else(|| Error::Internal(format!("no write rule for {}", kind.name)))?;
    core.authorize(caller, record_kind, Step::Edit, &record_org(&record)?)
        .await?;
    let field_schema = kind.field_named(field).ok_or_else(|| {
        Error::precondition(
            "field",
            format!(
                "{} has no field {:?}",
                kind.name,
                field.chars().take(40).collect::<String>()
            ),
            "该记录没有这个字段",
        )
    })?;
    if NOT_TYPED.contains(&field_schema.name.as_str()) {
        return Err(Error::invalid(
            "field",
            format!("{field} is filled in by the system, never typed by a person"),
            "该字段由系统填写，不能手工修改",
        ));
    }
    let value = parse_value(field_schema, raw)?;
    if !record.conflicts.contains_key(&field_schema.name) {
        return Err(no_conflict(field));
    }
    let field_id = field_schema.id;
    if !read.showed_conflict(field_id) {
        return Err(Error::precondition(
            "version",
            format!("{field} showed no conflict when the record was read; read it again"),
            "打开记录时这一项还没有冲突，请重新打开记录后再处理",
        ));
    }
    let read = read.clone();
    let author = Author {
        org: caller.org,
        number: caller.user,
    };
    let written = value.clone();
    let ops = core
        .store
        .try_write(RecordId(id), kind.id, author, move |state, actor| {
            // Settled meanwhile by another write here: nothing to do, and the caller is told.
            let open = state
                .register(field_id)
                .and_then(|r| r.view(field_id))
                .is_some_and(|v| !v.conflicts.is_empty());
            if !open {
                return Ok(Vec::new());
            }
            state
                .settle_against(actor, field_id, written, &read)
                .map(|put| vec![put])
                .map_err(|e| changed_here(kind, e))
        })
        .await?;
    if ops.is_empty() {
        return Err(no_conflict(field));
    }
    tracing::info!(record = %id, kind = %kind.name, field, user = caller.user, org = %caller.org, "conflict resolved");
    Ok(pb::ResolveConflictResponse {
        record_id: id.to_string(),
        field: field_schema.name.clone(),
        value: value_string(&value),
    })
}

/// `DismissQuarantined`: the entry and the person's reason.
struct Dismiss {
    id: i64,
    reason: String,
}

/// Longest reason kept with a dismissed quarantine entry, in characters.
const DISMISS_REASON_MAX: usize = 200;

impl TryFrom<pb::DismissQuarantinedRequest> for Dismiss {
    type Error = Error;

    fn try_from(req: pb::DismissQuarantinedRequest) -> Result<Self> {
        if req.id <= 0 {
            return Err(Error::invalid(
                "id",
                format!("a quarantine entry id is positive, not {}", req.id),
                "隔离记录编号无效",
            ));
        }
        let reason = req.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(Error::invalid(
                "reason",
                "a reason is required to dismiss a quarantined operation",
                "请填写处理理由",
            ));
        }
        if reason.chars().count() > DISMISS_REASON_MAX {
            return Err(Error::invalid(
                "reason",
                format!("at most {DISMISS_REASON_MAX} characters"),
                format!("处理理由不能超过{DISMISS_REASON_MAX}个字"),
            ));
        }
        Ok(Self { id: req.id, reason })
    }
}

/// Settles an open quarantine entry by the person's decision: only this node's own staff
/// (the gate admits offices and clerks; of them, those of this node's unit), who answer for
/// what their node keeps aside.
async fn dismiss_quarantined(
    core: &Core,
    caller: &Caller,
    Dismiss { id, reason }: Dismiss,
) -> Result<pb::DismissQuarantinedResponse> {
    let node = core.store.org();
    if caller.org.to_string() != node.to_string() {
        return Err(Error::forbidden(
            "id",
            format!("only the staff of {node} settle what it quarantined"),
            "只有本节点的工作人员可以处理本节点隔离的操作",
        ));
    }
    let by = format!("{}:{}", caller.org, caller.user);
    if !core.store.dismiss_quarantined(id, &by, &reason).await? {
        return Err(Error::precondition(
            "id",
            format!("no open quarantine entry {id} at this node"),
            "本节点没有这条待处理的隔离记录(可能已被处理)",
        ));
    }
    Ok(pb::DismissQuarantinedResponse { id })
}

#[tonic::async_trait]
impl pb::records_server::Records for Records {
    async fn dismiss_quarantined(
        &self,
        req: Request<pb::DismissQuarantinedRequest>,
    ) -> Result<Response<pb::DismissQuarantinedResponse>, Status> {
        let (caller, dismiss) = edge::accept(req)?;
        Ok(Response::new(
            dismiss_quarantined(&self.0, &caller, dismiss).await?,
        ))
    }

    async fn resolve_conflict(
        &self,
        req: Request<pb::ResolveConflictRequest>,
    ) -> Result<Response<pb::ResolveConflictResponse>, Status> {
        let (
            caller,
            Settle {
                id,
                field,
                value,
                read,
            },
        ) = edge::accept(req)?;
        Ok(Response::new(
            resolve_conflict(&self.0, &caller, id, &field, &value, &read).await?,
        ))
    }

    async fn history(
        &self,
        req: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let core = &self.0;
        let RecordOf(id) = RecordOf::try_from(req.into_inner())?;
        let record = core.get_any("record_id", id).await?;
        let names = crate::people::Directory::load(&core.store, &core.ctx).await?;
        let local_only = core
            .store
            .schema()
            .kind_named(&record.kind_name)
            .is_some_and(|k| k.local_only);
        let entries = core
            .store
            .history(RecordId(id))
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|h| pb::HistoryEntry {
                op: format!("{}:{}", h.op.origin, h.op.seq),
                at_ms: h.at.map(|t| t.timestamp_millis()).unwrap_or_default(),
                hlc: h.hlc.to_string(),
                author: h.author.to_string(),
                origin_org: h.origin_org.to_string(),
                change: masked(h.change, local_only),
                author_name: names.person(&h.author),
                author_unit: names.unit(h.author.org),
            })
            .collect();
        Ok(Response::new(pb::HistoryResponse {
            record_id: id.to_string(),
            kind: record.kind_name,
            entries,
        }))
    }
}

/// Reads an org-unit list (行政区划 codes and names, one unit a line: `code,name`), as a city
/// office exports it: blank lines and lines starting with `#` are skipped, and so is a first
/// line `code,name` (any case). Every line is checked before anything is returned; the error
/// names the file, the line and what is wrong with it.
pub fn parse_units_csv(
    source: &str,
    text: &str,
) -> std::result::Result<Vec<(OrgCode, String)>, String> {
    let mut units = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    let mut first = true;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim().trim_start_matches('\u{feff}');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((code, name)) = trimmed.split_once(',') else {
            return Err(format!(
                "{source} line {line}: expected `code,name`, found no comma"
            ));
        };
        let (code, name) = (code.trim(), name.trim().trim_matches('"').trim());
        if std::mem::take(&mut first) && code.eq_ignore_ascii_case("code") {
            continue;
        }
        let parsed =
            OrgCode::parse(code).map_err(|e| format!("{source} line {line}: code: {e}"))?;
        let name = renda_domain::text::bounded("name", name, 2, 50)
            .map_err(|e| format!("{source} line {line}: name: {e}"))?;
        if let Some(first) = seen.insert(parsed.to_string(), line) {
            return Err(format!(
                "{source} line {line}: code {parsed} is already on line {first}"
            ));
        }
        units.push((parsed, name));
    }
    if units.is_empty() {
        return Err(format!("{source}: no org units in it"));
    }
    Ok(units)
}

/// Writes org units at this node (its administrator's bootstrap: no token, so only code
/// holding the store calls it), parents before children. The whole list is checked against
/// the node's tree first — each unit in this node's subtree, its parent known or in the list,
/// no code already known under another name — and nothing is written if any unit fails.
/// Units whose records hold the same name already are left alone. Returns how many were written.
pub async fn bootstrap_units(
    store: &renda_store::Store,
    ctx: &crate::ApiContext,
    units: &[(OrgCode, String)],
) -> Result<usize> {
    let core = Core {
        store: store.clone(),
        ctx: ctx.clone(),
    };
    let me = core.node_org()?;
    let caller = Caller::system(&me);
    let mut ordered: Vec<&(OrgCode, String)> = units.iter().collect();
    ordered.sort_by_key(|(code, _)| (code.digits(), *code));
    let mut tree = core.tree().await?.as_ref().clone();
    // What is stored already, without the context's base tree: a unit the base names but no
    // record holds yet is written.
    let stored = crate::ApiContext::default().refresh(store).await?;
    let mut todo = Vec::new();
    for (code, name) in ordered {
        if stored.get(code).is_some_and(|u| &u.name == name) {
            continue;
        }
        add_checked(&core, &caller, &mut tree, code, name)?;
        todo.push((code, name));
    }
    // Checked whole above; each write now needs no second look at the tree.
    for (code, name) in &todo {
        write_unit(&core, &caller, code, name).await?;
    }
    tracing::info!(org = %me, written = todo.len(), "org units imported");
    Ok(todo.len())
}

#[cfg(test)]
mod unit_list_tests {
    use super::*;

    #[test]
    fn a_unit_list_reads_with_its_header_comments_and_quotes() {
        let text = "\u{feff}code,name\n# 青岛\n370200,青岛市\n\n370202, \"市南区\" \n";
        let units = parse_units_csv("units.csv", text).unwrap();
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].0.to_string(), "370202");
        assert_eq!(units[1].1, "市南区");
    }

    #[test]
    fn a_bad_line_names_the_file_the_line_and_the_fault() {
        for (text, needle) in [
            ("370200,青岛市\n37020,市南区\n", "units.csv line 2: code"),
            (
                "370200,青岛市\n370202\n",
                "units.csv line 2: expected `code,name`",
            ),
            ("370200,青岛市\n370202,区\n", "units.csv line 2: name"),
            (
                "370200,青岛市\n370200,青岛\n",
                "line 2: code 370200 is already on line 1",
            ),
            ("# nothing\n", "no org units"),
        ] {
            let e = parse_units_csv("units.csv", text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
