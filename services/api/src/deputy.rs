//! `renda.deputy.v1.Deputies`: deputies, their pledges and visits, and deputy groups.
//!
//! The ID-card number is validated (checksum, birth date) and kept in a `deputy_identity`
//! record, a local-only kind that never leaves the node that owns the deputy; the deputy record
//! holds only its masked form, and no call returns the number itself.
//!
//! A deputy's pairing with voter households (联系选民、结对) is a `voter_link` event on the
//! deputy record: the latest by stamp is the current link, earlier ones stay as history, and
//! the visits on or after its `since` date give the households visited against it.

use std::collections::BTreeSet;

use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::Stamped;
use renda_domain::org::OrgCode;
use renda_domain::person::{
    Deputy, DeputyDraft, DeputyLevel, DeputyStatus, Event, Gender, Phone, levels_code,
    levels_from_code,
};
use renda_domain::record::{Coded, RecordEvent};
use renda_proto::deputy::v1 as pb;
use renda_replica::{Value, Version};
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{DEPUTY, READ, STAFF, ServiceAccess, roles};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

wire!(DeputyLevel => pb::DeputyLevel {
    National <=> National,
    Provincial <=> Provincial,
    City <=> City,
    County <=> County,
    Township <=> Township,
});

wire!(Gender => pb::Gender { Male <=> Male, Female <=> Female });

wire!(DeputyStatus => pb::DeputyStatus {
    Serving <=> Serving,
    Terminated <=> Terminated,
});

/// The identity record of a deputy: a stable id derived from the deputy's, so every write
/// goes to the same record.
fn identity_id(deputy: Uuid) -> Uuid {
    Uuid::from_u128(deputy.as_u128() ^ 0x1d_c4_7d)
}

/// A deputy's fields as entered, with their vocabularies read; the domain validates the rest.
struct DeputyInput(DeputyDraft);

impl TryFrom<pb::DeputyFields> for DeputyInput {
    type Error = Error;
    fn try_from(fields: pb::DeputyFields) -> Result<Self> {
        for (field, value, max) in [
            ("name", &fields.name, 100),
            ("constituency", &fields.constituency, 400),
            ("ethnicity", &fields.ethnicity, 100),
            ("sector", &fields.sector, 400),
            ("phone", &fields.phone, 40),
            ("id_card", &fields.id_card, 40),
        ] {
            limit(field, value, max)?;
        }
        if fields.levels.len() > 5 {
            return Err(Error::invalid(
                "levels",
                "at most 5 levels",
                "代表层级最多5个",
            ));
        }
        Ok(Self(DeputyDraft {
            id: None,
            name: fields.name,
            levels: fields
                .levels
                .iter()
                .map(|l| {
                    edge::one_of(
                        "levels",
                        *l,
                        "national, provincial, city, county or township",
                        "代表层级无效",
                    )
                })
                .collect::<Result<_>>()?,
            org: String::new(),
            constituency: fields.constituency,
            term: fields.term,
            gender: edge::optional_one_of(
                "gender",
                fields.gender,
                "male or female",
                "性别须为男或女",
            )?,
            ethnicity: fields.ethnicity,
            occupation: fields.sector,
            phone: Some(fields.phone),
            id_card_number: Some(fields.id_card),
            status: edge::optional_one_of(
                "status",
                fields.status,
                "serving or terminated",
                "状态须为在任或终止",
            )?,
        }))
    }
}

struct CreateDeputy {
    org: Option<OrgCode>,
    fields: DeputyInput,
}

impl TryFrom<pb::CreateDeputyRequest> for CreateDeputy {
    type Error = Error;
    fn try_from(r: pb::CreateDeputyRequest) -> Result<Self> {
        let org = if r.org.trim().is_empty() {
            None
        } else {
            Some(
                OrgCode::parse(&r.org)
                    .map_err(|e| Error::invalid("org", e.to_string(), e.reason_zh()))?,
            )
        };
        Ok(Self {
            org,
            fields: r.fields.unwrap_or_default().try_into()?,
        })
    }
}

struct UpdateDeputy {
    id: Uuid,
    /// As sent; read only for the fields named (all of them when `changed` is `None`), once
    /// merged with the stored record.
    fields: pb::DeputyFields,
    /// The fields a `PatchDeputy` names; `None` for an `UpdateDeputy` (every field).
    changed: Option<BTreeSet<pb::DeputyField>>,
    read: Version,
}

impl TryFrom<pb::UpdateDeputyRequest> for UpdateDeputy {
    type Error = Error;
    fn try_from(r: pb::UpdateDeputyRequest) -> Result<Self> {
        let id = parse_id("id", &r.id)?;
        Ok(Self {
            id,
            fields: r.fields.unwrap_or_default(),
            changed: None,
            read: edge::read_version(&r.version, id)?,
        })
    }
}

impl TryFrom<pb::PatchDeputyRequest> for UpdateDeputy {
    type Error = Error;
    fn try_from(r: pb::PatchDeputyRequest) -> Result<Self> {
        let id = parse_id("id", &r.id)?;
        if r.changed.len() > 20 {
            return Err(Error::invalid(
                "changed",
                "at most 20 entries",
                "修改字段列表过长",
            ));
        }
        let changed = r
            .changed
            .iter()
            .map(|raw| match pb::DeputyField::try_from(*raw) {
                Ok(f) if f != pb::DeputyField::Unspecified => Ok(f),
                _ => Err(Error::invalid(
                    "changed",
                    format!("unknown deputy field {raw}"),
                    format!("修改字段{raw}无效"),
                )),
            })
            .collect::<Result<BTreeSet<_>>>()?;
        if changed.is_empty() {
            return Err(Error::invalid(
                "changed",
                "name at least one field the update changes",
                "请指明要修改的字段",
            ));
        }
        Ok(Self {
            id,
            fields: r.fields.unwrap_or_default(),
            changed: Some(changed),
            read: edge::read_version(&r.version, id)?,
        })
    }
}

/// The deputy record's stored fields each [`pb::DeputyField`] writes.
fn stored_names(field: pb::DeputyField) -> &'static [&'static str] {
    use pb::DeputyField as F;
    match field {
        F::Unspecified => &[],
        F::Name => &["name"],
        F::Levels => &["levels"],
        F::Constituency => &["constituency"],
        F::Term => &["term"],
        F::Gender => &["gender"],
        F::Ethnicity => &["ethnicity"],
        F::Sector => &["sector"],
        F::Phone => &["phone"],
        F::IdCard => &["id_card_masked"],
        F::Status => &["status"],
    }
}

/// The deputy as it would be after an update: each field named (every field, when none is)
/// from the request, the others as stored. A phone or ID-card number sent exactly as the
/// masked form shown stands for the one on file.
fn merged(
    r: &StoredRecord,
    sent: pb::DeputyFields,
    cmd: &Option<BTreeSet<pb::DeputyField>>,
) -> pb::DeputyFields {
    use pb::DeputyField as F;
    let named = |f: F| cmd.as_ref().is_none_or(|c| c.contains(&f));
    let phone_on_file = text(r, "phone");
    let id_card_masked = text(r, "id_card_masked");
    let mut out = pb::DeputyFields {
        name: if named(F::Name) {
            sent.name
        } else {
            text(r, "name")
        },
        levels: if named(F::Levels) {
            sent.levels
        } else {
            levels_from_code(&text(r, "levels"))
                .into_iter()
                .map(Wire::wire)
                .collect()
        },
        constituency: if named(F::Constituency) {
            sent.constituency
        } else {
            text(r, "constituency")
        },
        term: if named(F::Term) {
            sent.term
        } else {
            u32::try_from(int(r, "term")).unwrap_or_default()
        },
        gender: if named(F::Gender) {
            sent.gender
        } else {
            Gender::from_code(&text(r, "gender")).map_or(0, Wire::wire)
        },
        ethnicity: if named(F::Ethnicity) {
            sent.ethnicity
        } else {
            text(r, "ethnicity")
        },
        sector: if named(F::Sector) {
            sent.sector
        } else {
            text(r, "sector")
        },
        phone: if named(F::Phone) {
            sent.phone
        } else {
            phone_on_file.clone()
        },
        // The number itself is not on the deputy record: unnamed, it is not rewritten.
        id_card: if named(F::IdCard) {
            sent.id_card
        } else {
            String::new()
        },
        status: if named(F::Status) {
            sent.status
        } else {
            DeputyStatus::from_code(&text(r, "status")).map_or(0, Wire::wire)
        },
    };
    let shown = Phone::parse(&phone_on_file).map(|p| p.masked()).ok();
    if shown.is_some_and(|m| m == out.phone.trim()) {
        out.phone = phone_on_file;
    }
    if !id_card_masked.is_empty() && out.id_card.trim() == id_card_masked {
        out.id_card = String::new();
    }
    out
}

/// A step on one deputy's record.
struct DeputyStep {
    deputy: Uuid,
    event: Event,
}

impl TryFrom<pb::RecordPledgeRequest> for DeputyStep {
    type Error = Error;
    fn try_from(r: pb::RecordPledgeRequest) -> Result<Self> {
        let text = renda_domain::text::bounded("text", &r.text, 2, 2000).map_err(Error::from)?;
        Ok(Self {
            event: Event::Pledge {
                text,
                on: edge::day("on", r.on)?,
            },
            deputy: parse_id("deputy_id", &r.deputy_id)?,
        })
    }
}

impl TryFrom<pb::RecordVisitRequest> for DeputyStep {
    type Error = Error;
    fn try_from(r: pb::RecordVisitRequest) -> Result<Self> {
        let deputy = parse_id("deputy_id", &r.deputy_id)?;
        if r.households > 10_000 {
            return Err(Error::invalid(
                "households",
                "at most 10000",
                "走访户数不得超过10000",
            ));
        }
        let note =
            renda_domain::text::optional("note", Some(&r.note), 2000).map_err(Error::from)?;
        Ok(Self {
            deputy,
            event: Event::Visit {
                households: r.households,
                note,
                on: edge::day("on", r.on)?,
            },
        })
    }
}

impl TryFrom<pb::LinkVotersRequest> for DeputyStep {
    type Error = Error;
    fn try_from(r: pb::LinkVotersRequest) -> Result<Self> {
        if !(1..=MAX_LINKED_HOUSEHOLDS).contains(&r.households) {
            return Err(Error::invalid(
                "households",
                format!("must be 1 to {MAX_LINKED_HOUSEHOLDS}, got {}", r.households),
                format!(
                    "结对户数须为1至{MAX_LINKED_HOUSEHOLDS}户，实际为{}户",
                    r.households
                ),
            ));
        }
        let area =
            renda_domain::text::bounded("area", &r.area, 1, MAX_AREA_CHARS).map_err(Error::from)?;
        // The pairing's first day decides which visits count against it: required, never today
        // by default.
        if r.since.is_none() {
            return Err(Error::invalid(
                "since",
                "is required",
                "结对起始日期为必填项",
            ));
        }
        Ok(Self {
            event: Event::VoterLink {
                households: r.households,
                area,
                since: edge::required_day("since", r.since)?,
            },
            deputy: parse_id("deputy_id", &r.deputy_id)?,
        })
    }
}

fn id_card_error(e: renda_domain::Error) -> Error {
    // The domain names the field id_card_number; the proto field is id_card.
    match e {
        renda_domain::Error::Invalid {
            field,
            reason,
            reason_zh,
        } if field == "id_card_number" => Error::invalid("id_card", reason, reason_zh),
        other => Error::Domain(other),
    }
}

fn changes(d: &Deputy, qr_token: Option<String>) -> Vec<Pending> {
    let mut out = vec![
        Pending::Put("name", Value::Text(d.name.clone())),
        Pending::Put("levels", Value::Text(levels_code(&d.levels))),
        Pending::Put("constituency", Value::Text(d.constituency.clone())),
        Pending::Put("term", Value::Int(i64::from(d.term))),
        Pending::Put("gender", Value::Text(d.gender.code().into())),
        Pending::Put("ethnicity", Value::Text(d.ethnicity.clone())),
        Pending::Put(
            "sector",
            text_value(d.occupation.clone().unwrap_or_default()),
        ),
        Pending::Put(
            "phone",
            text_value(
                d.phone
                    .as_ref()
                    .map(|p| p.as_unmasked_str().to_owned())
                    .unwrap_or_default(),
            ),
        ),
        Pending::Put("status", Value::Text(d.status.code().into())),
    ];
    if let Some(id) = &d.id_card_number {
        out.push(Pending::Put("id_card_masked", Value::Text(id.masked())));
    }
    if let Some(token) = qr_token {
        out.push(Pending::Put("qr_token", Value::Text(token)));
    }
    out
}

/// Most households one deputy is paired with (结对户数).
const MAX_LINKED_HOUSEHOLDS: u32 = 200;
/// Longest area (village or community and group) of a voter link, in characters.
const MAX_AREA_CHARS: usize = 100;

/// The current voter link among a deputy's events (the latest by stamp) and the households
/// visited on or after its `since` date.
fn voter_link(events: &[Stamped<Event>]) -> (Option<pb::VoterLink>, u32) {
    let Some((households, area, since)) = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::VoterLink {
                households,
                area,
                since,
            } => Some((e.stamp, (*households, area, *since))),
            _ => None,
        })
        .max_by_key(|(stamp, _)| *stamp)
        .map(|(_, link)| link)
    else {
        return (None, 0);
    };
    let visited: u64 = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Visit { households, on, .. } if *on >= since => Some(u64::from(*households)),
            _ => None,
        })
        .sum();
    (
        Some(pb::VoterLink {
            households,
            area: area.clone(),
            since: Some(since.into()),
        }),
        u32::try_from(visited).unwrap_or(u32::MAX),
    )
}

pub(crate) fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Deputy> {
    let events = core.domain_events::<Event>(r)?;
    let (voter_link, visited_households) = voter_link(&events);
    let phone = text(r, "phone");
    Ok(pb::Deputy {
        version: r.version.encode(),
        id: r.id.to_string(),
        org: org_string(r),
        name: text(r, "name"),
        levels: levels_from_code(&text(r, "levels"))
            .into_iter()
            .map(Wire::wire)
            .collect(),
        constituency: text(r, "constituency"),
        term: u32::try_from(int(r, "term")).unwrap_or_default(),
        gender: Gender::from_code(&text(r, "gender")).map_or(0, Wire::wire),
        ethnicity: text(r, "ethnicity"),
        sector: text(r, "sector"),
        phone_masked: Phone::parse(&phone).map(|p| p.masked()).unwrap_or_default(),
        id_card_masked: text(r, "id_card_masked"),
        qr_token: text(r, "qr_token"),
        status: DeputyStatus::from_code(&text(r, "status")).map_or(0, Wire::wire),
        pledges: events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Pledge { text, on } => Some(pb::Pledge {
                    text: text.clone(),
                    on: Some((*on).into()),
                }),
                _ => None,
            })
            .collect(),
        visits: events
            .iter()
            .filter(|e| matches!(e.event, Event::Visit { .. }))
            .count() as u32,
        conflicting_fields: conflicting_fields(r),
        voter_link,
        visited_households,
    })
}

/// What the rules read of a stored deputy to say whether they sit in a congress.
pub(crate) fn seat(r: &StoredRecord) -> Result<renda_domain::person::Seat> {
    Ok(renda_domain::person::Seat {
        name: text(r, "name"),
        levels: levels_from_code(&text(r, "levels")).into_iter().collect(),
        org: record_org(r)?,
        status: DeputyStatus::from_code(&text(r, "status")).unwrap_or(DeputyStatus::Serving),
    })
}

/// Whether the stored deputy is serving (anything but terminated), for the rules that need it.
pub(crate) fn is_serving(r: &StoredRecord) -> bool {
    DeputyStatus::from_code(&text(r, "status")) != Some(DeputyStatus::Terminated)
}

impl Service {
    /// Creates (no `read`) or updates a deputy. `writes` says which stored fields of the
    /// deputy record an update writes (by name); the others are left as they are.
    async fn save(
        &self,
        caller: &Caller,
        id: Uuid,
        org: OrgCode,
        DeputyInput(mut draft): DeputyInput,
        read: Option<&Version>,
        writes: impl Fn(&str) -> bool,
    ) -> Result<pb::Deputy> {
        let new = read.is_none();
        let core = &self.0;
        draft.org = org.to_string();
        let deputy = Deputy::parse(draft, id, today()).map_err(id_card_error)?;
        core.authorize(caller, RecordKind::Deputy, Step::Edit, &deputy.org)
            .await?;
        let mut changes = changes(&deputy, new.then(new_token));
        if !new {
            changes.retain(|c| matches!(c, Pending::Put(name, _) if writes(name)));
        }
        if new {
            changes.insert(0, Pending::Put("org", Value::Org(deputy.org)));
        }
        if let Some(number) = &deputy.id_card_number {
            // Written first, so that a failure leaves no masked number without its record.
            core.write(
                caller,
                identity_id(id),
                kind::DEPUTY_IDENTITY,
                vec![
                    Pending::Put("org", Value::Org(deputy.org)),
                    Pending::Put("deputy", reference(id)),
                    Pending::Put("id_card", Value::Text(number.as_unmasked_str().to_owned())),
                ],
            )
            .await?;
        }
        match read {
            Some(read) => {
                core.save_form(caller, id, kind::DEPUTY, changes, read)
                    .await?
            }
            None => core.write(caller, id, kind::DEPUTY, changes).await?,
        }
        to_pb(core, &core.get_id(id, kind::DEPUTY).await?)
    }

    /// `UpdateDeputy` and `PatchDeputy`: the deputy as it would be after the update is
    /// validated whole, and only the fields named (all, for `UpdateDeputy`) are written.
    async fn update(&self, caller: &Caller, cmd: UpdateDeputy) -> Result<pb::Deputy> {
        let r = self.0.get_id(cmd.id, kind::DEPUTY).await?;
        let fields = merged(&r, cmd.fields, &cmd.changed);
        // Without a new number, a changed gender must still agree with the one on file.
        if fields.id_card.trim().is_empty()
            && let Some(gender) = pb::Gender::try_from(fields.gender)
                .ok()
                .and_then(Gender::from_pb)
        {
            renda_domain::person::check_gender_on_file(gender, &text(&r, "id_card_masked"))
                .map_err(Error::from)?;
        }
        let input = DeputyInput::try_from(fields)?;
        let changed = cmd.changed;
        self.save(
            caller,
            r.id.0,
            record_org(&r)?,
            input,
            Some(&cmd.read),
            |name| {
                changed
                    .as_ref()
                    .is_none_or(|c| c.iter().any(|f| stored_names(*f).contains(&name)))
            },
        )
        .await
    }

    /// Records a step on the deputy's record, at the deputy's org unit. `check` is a
    /// precondition on the stored deputy, checked after authority and before anything is
    /// written.
    async fn step(
        &self,
        caller: &Caller,
        cmd: &DeputyStep,
        check: impl FnOnce(&StoredRecord) -> Result<()>,
    ) -> Result<pb::Deputy> {
        let core = &self.0;
        let r = core.get_id(cmd.deputy, kind::DEPUTY).await?;
        let org = record_org(&r)?;
        let permit = core.permit::<Event>(caller, org, cmd.event.step()).await?;
        check(&r)?;
        permit
            .take(r.id.0, std::slice::from_ref(&cmd.event), vec![])
            .await?;
        to_pb(core, &core.get_id(r.id.0, kind::DEPUTY).await?)
    }

    async fn group_pb(&self, id: Uuid) -> Result<pb::DeputyGroup> {
        let r = self.0.get_id(id, kind::DEPUTY_GROUP).await?;
        Ok(group_to_pb(&r))
    }
}

fn group_to_pb(r: &StoredRecord) -> pb::DeputyGroup {
    pb::DeputyGroup {
        id: r.id.to_string(),
        org: org_string(r),
        name: text(r, "name"),
        sector: text(r, "sector"),
        members: set(r, "members").iter().map(Uuid::to_string).collect(),
    }
}

/// Which role may call each RPC of `renda.deputy.v1.Deputies` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::deputies_server::SERVICE_NAME,
    rpcs: &[
        ("CreateDeputy", roles(STAFF)),
        ("UpdateDeputy", roles(STAFF)),
        ("PatchDeputy", roles(STAFF)),
        ("GetDeputy", roles(READ.with(DEPUTY))),
        ("ListDeputies", roles(READ)),
        ("RecordPledge", roles(STAFF)),
        ("RecordVisit", roles(STAFF.with(DEPUTY))),
        ("LinkVoters", roles(STAFF)),
        ("CreateGroup", roles(STAFF)),
        ("SetGroupMembers", roles(STAFF)),
        ("GetGroup", roles(READ)),
        ("ListGroups", roles(READ)),
    ],
};

#[tonic::async_trait]
impl pb::deputies_server::Deputies for Service {
    async fn create_deputy(
        &self,
        req: Request<pb::CreateDeputyRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let (caller, cmd): (_, CreateDeputy) = edge::accept(req)?;
        let org = match cmd.org {
            Some(org) => org,
            None => self.0.default_org()?,
        };
        self.0.require_reach("org", &org).await?;
        Ok(Response::new(
            self.save(&caller, new_id(), org, cmd.fields, None, |_| true)
                .await?,
        ))
    }

    async fn update_deputy(
        &self,
        req: Request<pb::UpdateDeputyRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let (caller, cmd) = edge::accept(req)?;
        Ok(Response::new(self.update(&caller, cmd).await?))
    }

    async fn patch_deputy(
        &self,
        req: Request<pb::PatchDeputyRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let (caller, cmd) = edge::accept(req)?;
        Ok(Response::new(self.update(&caller, cmd).await?))
    }

    async fn get_deputy(
        &self,
        req: Request<pb::GetDeputyRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let me = caller(&req)?;
        let r = self.0.get("id", &req.get_ref().id, kind::DEPUTY).await?;
        me.require_own_deputy("id", r.id.0)?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_deputies(
        &self,
        req: Request<pb::ListDeputiesRequest>,
    ) -> Result<Response<pb::ListDeputiesResponse>, Status> {
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org).await?;
        let records = self
            .0
            .page(kind::DEPUTY, &org, page_limit(req.limit)?, req.offset)
            .await?;
        let deputies = records
            .iter()
            .map(|r| to_pb(&self.0, r))
            .collect::<Result<_>>()?;
        Ok(Response::new(pb::ListDeputiesResponse { deputies }))
    }

    async fn record_pledge(
        &self,
        req: Request<pb::RecordPledgeRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let (caller, cmd): (_, DeputyStep) = edge::accept(req)?;
        Ok(Response::new(self.step(&caller, &cmd, |_| Ok(())).await?))
    }

    async fn record_visit(
        &self,
        req: Request<pb::RecordVisitRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let (caller, cmd): (_, DeputyStep) = edge::accept(req)?;
        caller.require_own_deputy("deputy_id", cmd.deputy)?;
        Ok(Response::new(self.step(&caller, &cmd, |_| Ok(())).await?))
    }

    async fn link_voters(
        &self,
        req: Request<pb::LinkVotersRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let (caller, cmd): (_, DeputyStep) = edge::accept(req)?;
        Ok(Response::new(
            self.step(&caller, &cmd, |r| {
                if is_serving(r) {
                    Ok(())
                } else {
                    Err(Error::precondition(
                        "deputy_id",
                        "a terminated deputy cannot be paired with voters",
                        "代表资格已终止，不能结对联系选民",
                    ))
                }
            })
            .await?,
        ))
    }

    async fn create_group(
        &self,
        req: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::DeputyGroup>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let org = parse_org("org", &req.org, &core.default_org()?)?;
        core.require_reach("org", &org).await?;
        limit("name", &req.name, 200)?;
        let name = renda_domain::text::bounded("name", &req.name, 2, 50).map_err(Error::from)?;
        let sector =
            renda_domain::text::optional("sector", Some(&req.sector), 100).map_err(Error::from)?;
        let members = parse_ids("members", &req.members, 1000)?;
        core.authorize(&caller, RecordKind::DeputyGroup, Step::Edit, &org)
            .await?;
        let id = new_id();
        let mut changes = vec![
            Pending::Put("org", Value::Org(org)),
            Pending::Put("name", Value::Text(name)),
            Pending::Put("sector", text_value(sector.unwrap_or_default())),
        ];
        changes.extend(members.into_iter().map(|m| Pending::Add("members", m)));
        core.write(&caller, id, kind::DEPUTY_GROUP, changes).await?;
        Ok(Response::new(self.group_pb(id).await?))
    }

    async fn set_group_members(
        &self,
        req: Request<pb::SetGroupMembersRequest>,
    ) -> Result<Response<pb::DeputyGroup>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let r = core
            .get("group_id", &req.group_id, kind::DEPUTY_GROUP)
            .await?;
        let add = parse_ids("add", &req.add, 1000)?;
        let remove = parse_ids("remove", &req.remove, 1000)?;
        core.authorize(
            &caller,
            RecordKind::DeputyGroup,
            Step::Edit,
            &record_org(&r)?,
        )
        .await?;
        let mut changes: Vec<Pending> = add
            .into_iter()
            .map(|m| Pending::Add("members", m))
            .collect();
        changes.extend(remove.into_iter().map(|m| Pending::Remove("members", m)));
        core.write(&caller, r.id.0, kind::DEPUTY_GROUP, changes)
            .await?;
        Ok(Response::new(self.group_pb(r.id.0).await?))
    }

    async fn get_group(
        &self,
        req: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::DeputyGroup>, Status> {
        let r = self
            .0
            .get("id", &req.get_ref().id, kind::DEPUTY_GROUP)
            .await?;
        Ok(Response::new(group_to_pb(&r)))
    }

    async fn list_groups(
        &self,
        req: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let org = parse_org("org", &req.get_ref().org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org).await?;
        let groups = self
            .0
            .list(kind::DEPUTY_GROUP, Some(&org))
            .await?
            .iter()
            .map(group_to_pb)
            .collect();
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }
}
