//! `renda.deputy.v1.Deputies`: deputies, their pledges and visits, and deputy groups.
//!
//! The ID-card number is validated (checksum, birth date) and kept in a `deputy_identity`
//! record, a local-only kind that never leaves the node that owns the deputy; the deputy record
//! holds only its masked form, and no call returns the number itself.
//!
//! A deputy's pairing with voter households (联系选民、结对) is a `voter_link` event on the
//! deputy record: the latest by stamp is the current link, earlier ones stay as history, and
//! the visits on or after its `since` date give the households visited against it.

use chrono::NaiveDate;
use renda_domain::authority::{RecordKind, Step};
use renda_domain::person::{Deputy, DeputyDraft, DeputyLevel, DeputyStatus, Gender, Phone};
use renda_proto::deputy::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

fn level_name(l: DeputyLevel) -> &'static str {
    match l {
        DeputyLevel::National => "national",
        DeputyLevel::Provincial => "provincial",
        DeputyLevel::City => "city",
        DeputyLevel::County => "county",
        DeputyLevel::Township => "township",
    }
}

fn parse_level(raw: &str) -> Result<DeputyLevel> {
    Ok(match raw.trim() {
        "national" => DeputyLevel::National,
        "provincial" => DeputyLevel::Provincial,
        "city" => DeputyLevel::City,
        "county" => DeputyLevel::County,
        "township" => DeputyLevel::Township,
        other => {
            return Err(Error::invalid(
                "levels",
                format!(
                    "unknown level {:?}",
                    other.chars().take(20).collect::<String>()
                ),
                "代表层级无效",
            ));
        }
    })
}

fn gender_name(g: Gender) -> &'static str {
    match g {
        Gender::Male => "male",
        Gender::Female => "female",
    }
}

fn parse_gender(raw: &str) -> Result<Option<Gender>> {
    Ok(match raw.trim() {
        "" => None,
        "male" | "男" => Some(Gender::Male),
        "female" | "女" => Some(Gender::Female),
        _ => {
            return Err(Error::invalid(
                "gender",
                "must be male or female",
                "性别须为男或女",
            ));
        }
    })
}

fn status_name(s: DeputyStatus) -> &'static str {
    match s {
        DeputyStatus::Serving => "serving",
        DeputyStatus::Terminated => "terminated",
    }
}

fn parse_status(raw: &str) -> Result<Option<DeputyStatus>> {
    Ok(match raw.trim() {
        "" => None,
        "serving" => Some(DeputyStatus::Serving),
        "terminated" => Some(DeputyStatus::Terminated),
        _ => {
            return Err(Error::invalid(
                "status",
                "must be serving or terminated",
                "状态须为在任或终止",
            ));
        }
    })
}

/// The identity record of a deputy: a stable id derived from the deputy's, so every write
/// goes to the same record.
fn identity_id(deputy: Uuid) -> Uuid {
    Uuid::from_u128(deputy.as_u128() ^ 0x1d_c4_7d)
}

fn draft(fields: &pb::DeputyFields, org: &str) -> Result<DeputyDraft> {
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
    Ok(DeputyDraft {
        id: None,
        name: fields.name.clone(),
        levels: fields
            .levels
            .iter()
            .map(|l| parse_level(l))
            .collect::<Result<_>>()?,
        org: org.to_owned(),
        constituency: fields.constituency.clone(),
        term: fields.term,
        gender: parse_gender(&fields.gender)?,
        ethnicity: fields.ethnicity.clone(),
        occupation: fields.sector.clone(),
        phone: Some(fields.phone.clone()),
        id_card_number: Some(fields.id_card.clone()),
        status: parse_status(&fields.status)?,
    })
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
    let levels: Vec<&str> = d.levels.iter().map(|l| level_name(*l)).collect();
    let mut out = vec![
        Pending::Put("name", Value::Text(d.name.clone())),
        Pending::Put("levels", Value::Text(levels.join(","))),
        Pending::Put("constituency", Value::Text(d.constituency.clone())),
        Pending::Put("term", Value::Int(i64::from(d.term))),
        Pending::Put("gender", Value::Text(gender_name(d.gender).into())),
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
        Pending::Put("status", Value::Text(status_name(d.status).into())),
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
fn voter_link(events: &[Ev]) -> (Option<pb::VoterLink>, u32) {
    let Some(link) = events
        .iter()
        .filter(|e| e.name == "voter_link")
        .max_by_key(|e| e.stamp)
    else {
        return (None, 0);
    };
    let since = link.date("since");
    let visited: i64 = events
        .iter()
        .filter(|e| e.name == "visit" && e.date("on") >= since)
        .map(|e| e.int("households").max(0))
        .fold(0, i64::saturating_add);
    (
        Some(pb::VoterLink {
            households: u32::try_from(link.int("households")).unwrap_or_default(),
            area: link.text("area"),
            since: day_string(since),
        }),
        u32::try_from(visited).unwrap_or(u32::MAX),
    )
}

pub(crate) fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Deputy> {
    let events = core.events(r)?;
    let (voter_link, visited_households) = voter_link(&events);
    let phone = text(r, "phone");
    Ok(pb::Deputy {
        id: r.id.to_string(),
        org: org_string(r),
        name: text(r, "name"),
        levels: text(r, "levels")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        constituency: text(r, "constituency"),
        term: u32::try_from(int(r, "term")).unwrap_or_default(),
        gender: text(r, "gender"),
        ethnicity: text(r, "ethnicity"),
        sector: text(r, "sector"),
        phone_masked: Phone::parse(&phone).map(|p| p.masked()).unwrap_or_default(),
        id_card_masked: text(r, "id_card_masked"),
        qr_token: text(r, "qr_token"),
        status: text(r, "status"),
        pledges: events
            .iter()
            .filter(|e| e.name == "pledge")
            .map(|e| pb::Pledge {
                text: e.text("text"),
                on: day_string(e.date("on")),
            })
            .collect(),
        visits: events.iter().filter(|e| e.name == "visit").count() as u32,
        conflicting_fields: conflicting_fields(r),
        voter_link,
        visited_households,
    })
}

/// The deputy as the domain sees it, for the rules that need its org or status.
pub(crate) fn is_serving(r: &StoredRecord) -> bool {
    text(r, "status") != "terminated"
}

impl Service {
    async fn save(
        &self,
        caller: &Caller,
        id: Uuid,
        org: String,
        fields: &pb::DeputyFields,
        new: bool,
    ) -> Result<pb::Deputy> {
        let core = &self.0;
        let draft = draft(fields, &org)?;
        let deputy = Deputy::parse(draft, id, today()).map_err(id_card_error)?;
        core.authorize(caller, RecordKind::Deputy, Step::Edit, &deputy.org)
            .await?;
        let mut changes = changes(&deputy, new.then(new_token));
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
        core.write(caller, id, kind::DEPUTY, changes).await?;
        to_pb(core, &core.get_id(id, kind::DEPUTY).await?)
    }

    async fn event(
        &self,
        caller: &Caller,
        deputy_id: &str,
        name: &'static str,
        fields: Vec<(&'static str, Value)>,
    ) -> Result<pb::Deputy> {
        self.event_if(caller, deputy_id, name, fields, |_| Ok(()))
            .await
    }

    /// [`Service::event`] with a precondition on the stored deputy, checked after authority
    /// and before anything is written.
    async fn event_if(
        &self,
        caller: &Caller,
        deputy_id: &str,
        name: &'static str,
        fields: Vec<(&'static str, Value)>,
        check: impl FnOnce(&StoredRecord) -> Result<()>,
    ) -> Result<pb::Deputy> {
        let core = &self.0;
        let r = core.get("deputy_id", deputy_id, kind::DEPUTY).await?;
        let org = record_org(&r)?;
        core.authorize(caller, RecordKind::Deputy, Step::Edit, &org)
            .await?;
        check(&r)?;
        core.write(
            caller,
            r.id.0,
            kind::DEPUTY,
            vec![Pending::Event(name, org, fields)],
        )
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

fn on_date(raw: &str) -> Result<NaiveDate> {
    parse_day("on", raw)
}

/// The validated payload of a `voter_link` event.
fn link_fields(req: &pb::LinkVotersRequest) -> Result<Vec<(&'static str, Value)>> {
    if !(1..=MAX_LINKED_HOUSEHOLDS).contains(&req.households) {
        return Err(Error::invalid(
            "households",
            format!(
                "must be 1 to {MAX_LINKED_HOUSEHOLDS}, got {}",
                req.households
            ),
            format!(
                "结对户数须为1至{MAX_LINKED_HOUSEHOLDS}户，实际为{}户",
                req.households
            ),
        ));
    }
    let area =
        renda_domain::text::bounded("area", &req.area, 1, MAX_AREA_CHARS).map_err(Error::from)?;
    // The pairing's first day decides which visits count against it: required, never today
    // by default.
    if req.since.trim().is_empty() {
        return Err(Error::invalid(
            "since",
            "is required",
            "结对起始日期为必填项",
        ));
    }
    let since = parse_day("since", &req.since)?;
    Ok(vec![
        ("households", Value::Int(i64::from(req.households))),
        ("area", Value::Text(area)),
        ("since", date_value(since)),
    ])
}

#[tonic::async_trait]
impl pb::deputies_server::Deputies for Service {
    async fn create_deputy(
        &self,
        req: Request<pb::CreateDeputyRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let fields = req.fields.unwrap_or_default();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        self.0.require_org("org", &org).await?;
        Ok(Response::new(
            self.save(&caller, new_id(), org.to_string(), &fields, true)
                .await?,
        ))
    }

    async fn update_deputy(
        &self,
        req: Request<pb::UpdateDeputyRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let r = self.0.get("id", &req.id, kind::DEPUTY).await?;
        let fields = req.fields.unwrap_or_default();
        Ok(Response::new(
            self.save(&caller, r.id.0, org_string(&r), &fields, false)
                .await?,
        ))
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
        self.0.require_reach("org", &org)?;
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let text = renda_domain::text::bounded("text", &req.text, 2, 2000).map_err(Error::from)?;
        let on = on_date(&req.on)?;
        Ok(Response::new(
            self.event(
                &caller,
                &req.deputy_id,
                "pledge",
                vec![("text", Value::Text(text)), ("on", date_value(on))],
            )
            .await?,
        ))
    }

    async fn record_visit(
        &self,
        req: Request<pb::RecordVisitRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        caller.require_own_deputy("deputy_id", parse_id("deputy_id", &req.deputy_id)?)?;
        if req.households > 10_000 {
            return Err(
                Error::invalid("households", "at most 10000", "走访户数不得超过10000").into(),
            );
        }
        let note =
            renda_domain::text::optional("note", Some(&req.note), 2000).map_err(Error::from)?;
        let on = on_date(&req.on)?;
        Ok(Response::new(
            self.event(
                &caller,
                &req.deputy_id,
                "visit",
                vec![
                    ("households", Value::Int(i64::from(req.households))),
                    ("note", text_value(note.unwrap_or_default())),
                    ("on", date_value(on)),
                ],
            )
            .await?,
        ))
    }

    async fn link_voters(
        &self,
        req: Request<pb::LinkVotersRequest>,
    ) -> Result<Response<pb::Deputy>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let fields = link_fields(&req)?;
        Ok(Response::new(
            self.event_if(&caller, &req.deputy_id, "voter_link", fields, |r| {
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
        core.require_reach("org", &org)?;
        core.require_org("org", &org).await?;
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
        self.0.require_reach("org", &org)?;
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
