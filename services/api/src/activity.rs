//! `renda.activity.v1.Activities`: 发单 → 接单 → 扫码签到, speeches, and points and ranking
//! derived from every deputy's duty records.
//!
//! Dispatch is written by the organiser's node on the activity's own org. Acceptance, check-in
//! and speech are written where the deputy is (the step's org is the deputy's org unit), so a
//! township records its deputies' check-ins on a county activity while offline, and a county
//! clerk cannot record a township deputy's check-in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use renda_domain::activity::{
    self as act, ActivityDraft, ActivityKind, CheckInMode, DutyRecord, DutyRecordKind,
    Participation,
};
use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::in_order;
use renda_domain::org::OrgCode;
use renda_domain::period::Period;
use renda_domain::record::{Coded, RecordEvent};
use renda_domain::{person, station, suggestion};
use renda_proto::activity::v1 as pb;
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

wire!(ActivityKind => pb::ActivityKind {
    Research <=> Research,
    Inspection <=> Inspection,
    LawEnforcementInspection <=> LawEnforcementInspection,
    SpecialInquiry <=> SpecialInquiry,
    Training <=> Training,
    Publicity <=> Publicity,
    ReceivingVoters <=> ReceivingVoters,
    GroupActivity <=> GroupActivity,
});

wire!(Participation => pb::Participation {
    Invited <=> Invited,
    Declined <=> Declined,
    Accepted <=> Accepted,
    CheckedIn <=> CheckedIn,
});

wire!(CheckInMode => pb::CheckInMode { Scan <=> Scan, Proxy <=> Proxy });

wire!(DutyRecordKind => pb::DutyRecordKind {
    CheckIn <=> CheckIn,
    Speech <=> Speech,
    Suggestion <=> Suggestion,
    Motion <=> Motion,
    ReportBack <=> ReportBack,
    VoterVisit <=> VoterVisit,
    Reception <=> Reception,
    OpinionHandled <=> OpinionHandled,
});

fn activity_kind(raw: i32) -> Result<ActivityKind> {
    edge::one_of("kind", raw, "an activity kind", "活动类型无效")
}

fn starts_at(raw: i64) -> Result<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(raw)
        .ok_or_else(|| Error::invalid("starts_at_ms", "is out of range", "开始时间超出范围"))
}

/// What an activity is, as entered on creation or change.
struct Details {
    kind: ActivityKind,
    title: String,
    starts_at: DateTime<Utc>,
    venue: String,
}

impl Details {
    fn parse(kind: i32, title: String, starts_at_ms: i64, venue: String) -> Result<Self> {
        limit("title", &title, 400)?;
        limit("venue", &venue, 800)?;
        Ok(Self {
            starts_at: starts_at(starts_at_ms)?,
            kind: activity_kind(kind)?,
            title,
            venue,
        })
    }

    /// The activity organised by `organiser`, validated by the domain.
    fn activity(self, organiser: OrgCode, id: Uuid) -> Result<act::Activity> {
        act::Activity::parse(
            ActivityDraft {
                kind: self.kind,
                title: self.title,
                organiser: organiser.to_string(),
                starts_at: self.starts_at,
                venue: self.venue,
            },
            id,
        )
        .map_err(Error::from)
    }
}

/// The fields an activity's details are stored in.
fn detail_changes(a: act::Activity) -> Vec<Pending> {
    vec![
        Pending::Put("kind", Value::Text(a.kind.code().into())),
        Pending::Put("title", Value::Text(a.title)),
        Pending::Put("starts_at", Value::Int(a.starts_at.timestamp_millis())),
        Pending::Put("venue", text_value(a.venue.unwrap_or_default())),
    ]
}

struct CreateActivity(Details);

impl TryFrom<pb::CreateActivityRequest> for CreateActivity {
    type Error = Error;
    fn try_from(r: pb::CreateActivityRequest) -> Result<Self> {
        Details::parse(r.kind, r.title, r.starts_at_ms, r.venue).map(Self)
    }
}

struct UpdateActivity {
    id: Uuid,
    details: Details,
    read: Version,
}

impl TryFrom<pb::UpdateActivityRequest> for UpdateActivity {
    type Error = Error;
    fn try_from(r: pb::UpdateActivityRequest) -> Result<Self> {
        let id = parse_id("id", &r.id)?;
        let details = Details::parse(r.kind, r.title, r.starts_at_ms, r.venue)?;
        Ok(Self {
            id,
            details,
            read: edge::read_version(&r.version, id)?,
        })
    }
}

struct GetActivity {
    id: Uuid,
}

impl TryFrom<pb::GetActivityRequest> for GetActivity {
    type Error = Error;
    fn try_from(r: pb::GetActivityRequest) -> Result<Self> {
        Ok(Self {
            id: parse_id("id", &r.id)?,
        })
    }
}

struct ListActivities {
    org: Option<OrgCode>,
    limit: u32,
    offset: u64,
}

impl TryFrom<pb::ListActivitiesRequest> for ListActivities {
    type Error = Error;
    fn try_from(r: pb::ListActivitiesRequest) -> Result<Self> {
        Ok(Self {
            org: optional_org("org", &r.org)?,
            limit: page_limit(r.limit)?,
            offset: r.offset,
        })
    }
}

struct Dispatch {
    activity: Uuid,
    deputies: Vec<Uuid>,
}

impl TryFrom<pb::DispatchActivityRequest> for Dispatch {
    type Error = Error;
    fn try_from(r: pb::DispatchActivityRequest) -> Result<Self> {
        Ok(Self {
            activity: parse_id("activity_id", &r.activity_id)?,
            deputies: parse_ids("deputy_ids", &r.deputy_ids, 500)?,
        })
    }
}

/// A step one deputy takes on an activity.
struct DeputyStep<T> {
    activity: Uuid,
    deputy: Uuid,
    details: T,
}

fn deputy_step<T>(activity_id: &str, deputy_id: &str, details: T) -> Result<DeputyStep<T>> {
    Ok(DeputyStep {
        activity: parse_id("activity_id", activity_id)?,
        deputy: parse_id("deputy_id", deputy_id)?,
        details,
    })
}

impl TryFrom<pb::AcceptActivityRequest> for DeputyStep<()> {
    type Error = Error;
    fn try_from(r: pb::AcceptActivityRequest) -> Result<Self> {
        deputy_step(&r.activity_id, &r.deputy_id, ())
    }
}

/// A refusal's reason.
struct Reason(Option<String>);

impl TryFrom<pb::DeclineActivityRequest> for DeputyStep<Reason> {
    type Error = Error;
    fn try_from(r: pb::DeclineActivityRequest) -> Result<Self> {
        let reason =
            renda_domain::text::optional("reason", Some(&r.reason), 500).map_err(Error::from)?;
        deputy_step(&r.activity_id, &r.deputy_id, Reason(reason))
    }
}

/// A check-in as requested: the scanned code (empty when none) and when, for a clerk's entry.
struct CheckInDetails {
    code: String,
    at_ms: i64,
}

impl TryFrom<pb::CheckInRequest> for DeputyStep<CheckInDetails> {
    type Error = Error;
    fn try_from(r: pb::CheckInRequest) -> Result<Self> {
        limit("qr_token", &r.qr_token, renda_accounts::MAX_TOKEN_LEN)?;
        deputy_step(
            &r.activity_id,
            &r.deputy_id,
            CheckInDetails {
                code: r.qr_token.trim().to_owned(),
                at_ms: r.at_ms,
            },
        )
    }
}

/// A speech's topic.
struct Topic(Option<String>);

impl TryFrom<pb::RecordSpeechRequest> for DeputyStep<Topic> {
    type Error = Error;
    fn try_from(r: pb::RecordSpeechRequest) -> Result<Self> {
        let topic =
            renda_domain::text::optional("topic", Some(&r.topic), 500).map_err(Error::from)?;
        deputy_step(&r.activity_id, &r.deputy_id, Topic(topic))
    }
}

struct IssueCode {
    activity: Uuid,
    valid_from_ms: i64,
    valid_until_ms: i64,
}

impl TryFrom<pb::IssueCheckInCodeRequest> for IssueCode {
    type Error = Error;
    fn try_from(r: pb::IssueCheckInCodeRequest) -> Result<Self> {
        Ok(Self {
            activity: parse_id("activity_id", &r.activity_id)?,
            valid_from_ms: r.valid_from_ms,
            valid_until_ms: r.valid_until_ms,
        })
    }
}

struct PointsQuery {
    org: Option<OrgCode>,
    deputy: Option<Uuid>,
}

impl TryFrom<pb::PointsRequest> for PointsQuery {
    type Error = Error;
    fn try_from(r: pb::PointsRequest) -> Result<Self> {
        Ok(Self {
            org: optional_org("org", &r.org)?,
            deputy: if r.deputy_id.trim().is_empty() {
                None
            } else {
                Some(parse_id("deputy_id", &r.deputy_id)?)
            },
        })
    }
}

struct RankingQuery {
    org: Option<OrgCode>,
    period: Period,
}

impl TryFrom<pb::RankingRequest> for RankingQuery {
    type Error = Error;
    fn try_from(r: pb::RankingRequest) -> Result<Self> {
        Ok(Self {
            org: optional_org("org", &r.org)?,
            period: period(r.period.as_ref())?,
        })
    }
}

struct DutyRecordsQuery {
    deputy: Uuid,
    period: Option<Period>,
}

impl TryFrom<pb::DutyRecordsRequest> for DutyRecordsQuery {
    type Error = Error;
    fn try_from(r: pb::DutyRecordsRequest) -> Result<Self> {
        Ok(Self {
            deputy: parse_id("deputy_id", &r.deputy_id)?,
            period: r.period.as_ref().map(|p| period(Some(p))).transpose()?,
        })
    }
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Activity> {
    let events = core.domain_events::<act::Event>(r)?;
    let roster = act::roster(&events);
    // The mode of each deputy's first check-in by stamp (a later one changes nothing).
    let mut modes: BTreeMap<Uuid, CheckInMode> = BTreeMap::new();
    let mut to_orgs: BTreeSet<String> = BTreeSet::new();
    for e in in_order(&events) {
        match &e.event {
            act::Event::CheckedIn { deputy, mode, .. } => {
                modes.entry(*deputy).or_insert(*mode);
            }
            act::Event::Dispatched { to_org, .. } => {
                to_orgs.insert(to_org.to_string());
            }
            _ => {}
        }
    }
    Ok(pb::Activity {
        version: r.version.encode(),
        id: r.id.to_string(),
        org: org_string(r),
        kind: ActivityKind::from_code(&text(r, "kind")).map_or(0, Wire::wire),
        title: text(r, "title"),
        starts_at_ms: int(r, "starts_at"),
        venue: text(r, "venue"),
        qr_token: text(r, "qr_token"),
        participants: roster
            .participants
            .iter()
            .map(|(deputy, p)| pb::Participant {
                deputy_id: deputy.to_string(),
                participation: p.wire(),
                walk_in: roster.walk_ins.contains(deputy),
                check_in_mode: modes.get(deputy).map_or(0, |m| m.wire()),
            })
            .collect(),
        dispatched_to_orgs: to_orgs.into_iter().collect(),
    })
}

/// Whether a deputy's account may see this activity: it was dispatched to them or they
/// checked in.
fn concerns(a: &pb::Activity, deputy: Uuid) -> bool {
    let id = deputy.to_string();
    a.participants.iter().any(|p| p.deputy_id == id)
}

/// The longest a check-in code is valid.
const MAX_CODE_VALIDITY_MS: i64 = 7 * 24 * 3_600_000;

/// Every duty record (一人一档) derived from the records this node holds. Ids are derived from
/// the events, so every node derives the same records from the same operations.
pub(crate) async fn duty_records(core: &Core) -> Result<Vec<DutyRecord>> {
    let mut out = Vec::new();
    let mut push =
        |id: Uuid, deputy: Uuid, kind: DutyRecordKind, org: Option<OrgCode>, on, activity| {
            if let Some(org) = org
                && let Ok(r) = DutyRecord::new(id, deputy, kind, org, on, activity)
            {
                out.push(r);
            }
        };
    for r in core.list(kind::ACTIVITY, None).await? {
        for e in core.events(&r)? {
            let (kind, deputy, at) = match e.decode::<act::Event>() {
                Some(act::Event::CheckedIn { deputy, at, .. }) => {
                    (DutyRecordKind::CheckIn, deputy, at)
                }
                Some(act::Event::Speech { deputy, at, .. }) => (DutyRecordKind::Speech, deputy, at),
                _ => continue,
            };
            push(
                derived_id(r.id.0, &e.stamp),
                deputy,
                kind,
                e.org("org"),
                local_date(at.timestamp_millis()),
                Some(r.id.0),
            );
        }
    }
    for r in core.list(kind::DEPUTY, None).await? {
        for e in core.events(&r)? {
            if let Some(person::Event::Visit { on, .. }) = e.decode() {
                push(
                    derived_id(r.id.0, &e.stamp),
                    r.id.0,
                    DutyRecordKind::VoterVisit,
                    e.org("org"),
                    on,
                    None,
                );
            }
        }
    }
    for r in core.list(kind::STATION, None).await? {
        for e in core.events(&r)? {
            if let Some(station::Event::Reception { deputies, on, .. }) = e.decode() {
                for deputy in deputies {
                    push(
                        derived_id(deputy, &e.stamp),
                        deputy,
                        DutyRecordKind::Reception,
                        e.org("org"),
                        on,
                        None,
                    );
                }
            }
        }
    }
    for r in core.list(kind::SUGGESTION, None).await? {
        let Some(lead) = ref_id(&r, "lead_deputy") else {
            continue;
        };
        let kind = match suggestion::Kind::from_code(&text(&r, "kind")) {
            Some(suggestion::Kind::Motion) => DutyRecordKind::Motion,
            _ => DutyRecordKind::Suggestion,
        };
        let submitted = core.events(&r)?.into_iter().find_map(|e| match e.decode() {
            Some(suggestion::Event::Submitted { at }) => Some((e, at)),
            _ => None,
        });
        if let Some((e, at)) = submitted {
            push(
                derived_id(r.id.0, &e.stamp),
                lead,
                kind,
                e.org("org"),
                at,
                None,
            );
        }
    }
    for r in core.list(kind::REPORT_BACK, None).await? {
        if let (Some(deputy), Some(on)) = (
            ref_id(&r, "deputy"),
            r.fields.get("on").and_then(value_date),
        ) {
            push(
                r.id.0,
                deputy,
                DutyRecordKind::ReportBack,
                record_org(&r).ok(),
                on,
                None,
            );
        }
    }
    Ok(out)
}

/// The signed content of an activity's check-in code.
fn check_in_code(
    activity: Uuid,
    issuer: &OrgCode,
    valid_from_ms: i64,
    valid_until_ms: i64,
) -> renda_accounts::CheckInCode {
    renda_accounts::CheckInCode {
        activity,
        issuer: *issuer,
        valid_from_ms,
        valid_until_ms,
    }
}

fn period(p: Option<&pb::Period>) -> Result<Period> {
    let p = p.cloned().unwrap_or_default();
    let year = if p.year == 0 {
        chrono::Datelike::year(&today())
    } else {
        p.year
    };
    Ok(match (p.quarter, p.month) {
        (0, 0) => Period::year(year)?,
        (q, 0) => Period::quarter(year, q)?,
        (_, m) => Period::month(year, m)?,
    })
}

impl Service {
    /// How many activities are organised in `org`'s subtree.
    async fn count_in(&self, org: &OrgCode) -> Result<u64> {
        const PAGE: u32 = 1000;
        let mut n = 0u64;
        loop {
            let page = self.0.page(kind::ACTIVITY, org, PAGE, n).await?;
            n += page.len() as u64;
            if page.len() < PAGE as usize {
                return Ok(n);
            }
        }
    }

    /// Activities organised by an ancestor of `org` and dispatched to deputies in its
    /// subtree, by id.
    async fn dispatched_from_above(&self, org: &OrgCode) -> Result<Vec<pb::Activity>> {
        let core = &self.0;
        let ancestors = org.ancestors();
        let Some(top) = ancestors.last() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in core.list(kind::ACTIVITY, Some(top)).await? {
            let above = r.org.is_some_and(|o| ancestors.contains(&o));
            if !above {
                continue;
            }
            let a = to_pb(core, &r)?;
            if a.dispatched_to_orgs
                .iter()
                .any(|t| OrgCode::parse(t).is_ok_and(|t| org.contains(t)))
            {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// A step taken where the deputy is (acceptance, refusal, check-in, speech): the step's
    /// org is the deputy's org unit. `check` is a precondition on the stored activity and its
    /// roster, checked after authority and before anything is written.
    async fn deputy_step<T>(
        &self,
        caller: &Caller,
        cmd: &DeputyStep<T>,
        event: act::Event,
        check: impl FnOnce(&StoredRecord, &act::Roster) -> Result<()>,
    ) -> Result<pb::Activity> {
        let core = &self.0;
        let activity = core.get_id(cmd.activity, kind::ACTIVITY).await?;
        let deputy = core.get_id(cmd.deputy, kind::DEPUTY).await?;
        let deputy_org = record_org(&deputy)?;
        let permit = core
            .permit::<act::Event>(caller, deputy_org, event.step())
            .await?;
        let roster = act::roster(&core.domain_events::<act::Event>(&activity)?);
        check(&activity, &roster)?;
        permit.take(activity.id.0, &[event], vec![]).await?;
        to_pb(core, &core.get_id(activity.id.0, kind::ACTIVITY).await?)
    }
}

/// Which role may call each RPC of `renda.activity.v1.Activities` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::activities_server::SERVICE_NAME,
    rpcs: &[
        ("CreateActivity", roles(STAFF)),
        ("UpdateActivity", roles(STAFF)),
        ("GetActivity", roles(READ.with(DEPUTY))),
        ("ListActivities", roles(READ.with(DEPUTY))),
        ("DispatchActivity", roles(STAFF)),
        ("IssueCheckInCode", roles(STAFF)),
        ("AcceptActivity", roles(STAFF.with(DEPUTY))),
        ("DeclineActivity", roles(STAFF.with(DEPUTY))),
        ("CheckIn", roles(STAFF.with(DEPUTY))),
        ("RecordSpeech", roles(STAFF)),
        ("Points", roles(READ.with(DEPUTY))),
        ("DutyRecords", roles(READ.with(DEPUTY))),
        ("Ranking", roles(READ)),
    ],
};

#[tonic::async_trait]
impl pb::activities_server::Activities for Service {
    async fn create_activity(
        &self,
        req: Request<pb::CreateActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, CreateActivity(details)) = edge::accept(req)?;
        let core = &self.0;
        let activity = details.activity(core.node_org()?, new_id())?;
        core.authorize(
            &caller,
            RecordKind::Activity,
            Step::Edit,
            &activity.organiser,
        )
        .await?;
        let (id, org) = (activity.id, activity.organiser);
        let mut changes = vec![Pending::Put("org", Value::Org(org))];
        changes.extend(detail_changes(activity));
        changes.push(Pending::Put("qr_token", Value::Text(new_token())));
        core.write(&caller, id, kind::ACTIVITY, changes).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(id, kind::ACTIVITY).await?,
        )?))
    }

    async fn update_activity(
        &self,
        req: Request<pb::UpdateActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, UpdateActivity) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.id, kind::ACTIVITY).await?;
        let org = record_org(&r)?;
        let activity = cmd.details.activity(org, r.id.0)?;
        core.authorize(&caller, RecordKind::Activity, Step::Edit, &org)
            .await?;
        let roster = act::roster(&core.domain_events::<act::Event>(&r)?);
        if roster
            .participants
            .values()
            .any(|p| *p == Participation::CheckedIn)
        {
            return Err(Error::precondition(
                "id",
                "deputies have already checked in; the activity can no longer change",
                "已有代表签到，活动信息不能再修改",
            )
            .into());
        }
        core.save_form(
            &caller,
            r.id.0,
            kind::ACTIVITY,
            detail_changes(activity),
            &cmd.read,
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(r.id.0, kind::ACTIVITY).await?,
        )?))
    }

    async fn get_activity(
        &self,
        req: Request<pb::GetActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, GetActivity) = edge::accept(req)?;
        let r = self.0.get_id(cmd.id, kind::ACTIVITY).await?;
        let activity = to_pb(&self.0, &r)?;
        // A deputy's account without its deputy record concerns no activity.
        if caller.role == UserRole::Deputy
            && !caller.subject.is_some_and(|me| concerns(&activity, me))
        {
            return Err(Error::forbidden(
                "id",
                "the activity was not dispatched to this deputy",
                "该活动未向您发单",
            )
            .into());
        }
        Ok(Response::new(activity))
    }

    async fn list_activities(
        &self,
        req: Request<pb::ListActivitiesRequest>,
    ) -> Result<Response<pb::ListActivitiesResponse>, Status> {
        let (me, cmd): (_, ListActivities) = edge::accept(req)?;
        let org = match cmd.org {
            Some(org) => org,
            None => self.0.default_org()?,
        };
        self.0.require_reach("org", &org).await?;
        // Activities organised in the subtree, paged in SQL, then those organised above it and
        // dispatched into it. The second part reads the activities under the top ancestor and
        // keeps the ancestors' own: at a township node that is what it holds anyway; a store
        // query by audience (record_scope) would spare a city node the read.
        let core = &self.0;
        let (limit, offset) = (cmd.limit, cmd.offset);
        let own = core.page(kind::ACTIVITY, &org, limit, offset).await?;
        let mut activities = own
            .iter()
            .map(|r| to_pb(core, r))
            .collect::<Result<Vec<_>>>()?;
        if activities.len() < limit as usize {
            // The page after the subtree's own records: how far into the dispatched list.
            let own_total = if own.is_empty() {
                self.count_in(&org).await?
            } else {
                offset + own.len() as u64
            };
            let skip = offset.saturating_sub(own_total);
            let from_above = self.dispatched_from_above(&org).await?;
            activities.extend(
                from_above
                    .into_iter()
                    .skip(usize::try_from(skip).unwrap_or(usize::MAX))
                    .take(limit as usize - activities.len()),
            );
        }
        Ok(Response::new(pb::ListActivitiesResponse {
            // A deputy's own tasks: what was dispatched to them.
            activities: match (me.role, me.subject) {
                (UserRole::Deputy, Some(deputy)) => activities
                    .into_iter()
                    .filter(|a| concerns(a, deputy))
                    .collect(),
                // A deputy's account without its deputy record has no tasks.
                (UserRole::Deputy, None) => Vec::new(),
                _ => activities,
            },
        }))
    }

    async fn dispatch_activity(
        &self,
        req: Request<pb::DispatchActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, Dispatch) = edge::accept(req)?;
        let core = &self.0;
        let activity = core.get_id(cmd.activity, kind::ACTIVITY).await?;
        let org = record_org(&activity)?;
        let mut to = Vec::with_capacity(cmd.deputies.len());
        for id in cmd.deputies {
            let deputy = core
                .known(id, kind::DEPUTY, "deputy_ids", "代表不存在")
                .await?;
            to.push((id, record_org(&deputy)?));
        }
        let events = act::dispatch(to).map_err(Error::from)?;
        if let Some(first) = events.first() {
            core.permit::<act::Event>(&caller, org, first.step())
                .await?
                .take(activity.id.0, &events, vec![])
                .await?;
        }
        Ok(Response::new(to_pb(
            core,
            &core.get_id(activity.id.0, kind::ACTIVITY).await?,
        )?))
    }

    async fn accept_activity(
        &self,
        req: Request<pb::AcceptActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, DeputyStep<()>) = edge::accept(req)?;
        caller.require_own_deputy("deputy_id", cmd.deputy)?;
        let event = act::Event::Accepted { deputy: cmd.deputy };
        Ok(Response::new(
            self.deputy_step(&caller, &cmd, event.clone(), |_, roster| {
                Ok(act::check(roster, &event)?)
            })
            .await?,
        ))
    }

    async fn decline_activity(
        &self,
        req: Request<pb::DeclineActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, DeputyStep<Reason>) = edge::accept(req)?;
        caller.require_own_deputy("deputy_id", cmd.deputy)?;
        let event = act::Event::Declined {
            deputy: cmd.deputy,
            reason: cmd.details.0.clone(),
        };
        Ok(Response::new(
            self.deputy_step(&caller, &cmd, event.clone(), |_, roster| {
                Ok(act::check(roster, &event)?)
            })
            .await?,
        ))
    }

    async fn issue_check_in_code(
        &self,
        req: Request<pb::IssueCheckInCodeRequest>,
    ) -> Result<Response<pb::CheckInCode>, Status> {
        let (caller, cmd): (_, IssueCode) = edge::accept(req)?;
        let core = &self.0;
        let activity = core.get_id(cmd.activity, kind::ACTIVITY).await?;
        let org = record_org(&activity)?;
        // Only the node that owns the activity makes its code, as its organiser.
        core.authorize(&caller, RecordKind::Activity, Step::Edit, &org)
            .await?;
        let starts = int(&activity, "starts_at");
        let from = if cmd.valid_from_ms == 0 {
            starts.saturating_sub(2 * 3_600_000)
        } else {
            cmd.valid_from_ms
        };
        let until = if cmd.valid_until_ms == 0 {
            starts.saturating_add(12 * 3_600_000)
        } else {
            cmd.valid_until_ms
        };
        if until <= from || until - from > MAX_CODE_VALIDITY_MS {
            return Err(Error::invalid(
                "valid_until_ms",
                "the validity window must end after it starts and last at most 7 days",
                "签到码有效期须晚于开始时间，且不超过7天",
            )
            .into());
        }
        let code = check_in_code(activity.id.0, &org, from, until);
        let text = core.ctx.signer()?.issue_code(&code);
        tracing::info!(activity = %activity.id, issuer = %org, from, until, "check-in code issued");
        Ok(Response::new(pb::CheckInCode {
            code: text,
            valid_from_ms: from,
            valid_until_ms: until,
            issuer: org.to_string(),
        }))
    }

    async fn check_in(
        &self,
        req: Request<pb::CheckInRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, DeputyStep<CheckInDetails>) = edge::accept(req)?;
        caller.require_own_deputy("deputy_id", cmd.deputy)?;
        let now = Utc::now().timestamp_millis();
        // A deputy's own scan happens now, at the node that checks the code; only a clerk
        // entering a check-in after the fact (代录) says when it was.
        let at = if cmd.details.at_ms == 0 || caller.role == UserRole::Deputy {
            now
        } else {
            cmd.details.at_ms
        };
        let code = cmd.details.code.clone();
        // A deputy's own check-in proves presence with the activity's signed code, checked
        // here against the keys every node holds; a clerk's entry for a deputy is 代录.
        let own = caller.role == UserRole::Deputy;
        if own && code.is_empty() {
            return Err(Error::invalid(
                "qr_token",
                "a deputy's own check-in needs the activity's code",
                "请扫描活动签到码",
            )
            .into());
        }
        let verified = if code.is_empty() {
            None
        } else {
            let signer = self.0.ctx.signer()?;
            Some(signer.verify_code(&code, now).map_err(|e| {
                let zh = match e {
                    renda_accounts::TokenError::Expired => "签到码已过期",
                    renda_accounts::TokenError::NotYetValid => "签到码尚未生效",
                    _ => "签到码无效",
                };
                Error::invalid("qr_token", format!("check-in code refused: {e}"), zh)
            })?)
        };
        let mode = if own {
            CheckInMode::Scan
        } else {
            CheckInMode::Proxy
        };
        let at = DateTime::<Utc>::from_timestamp_millis(at)
            .ok_or_else(|| Error::invalid("at_ms", "is out of range", "签到时间超出范围"))?;
        let event = act::Event::CheckedIn {
            deputy: cmd.deputy,
            at,
            code,
            mode,
        };
        Ok(Response::new(
            self.deputy_step(&caller, &cmd, event, |activity, _| {
                if let Some(v) = &verified {
                    let issuer_ok = record_org(activity).is_ok_and(|o| o == v.issuer);
                    if v.activity != activity.id.0 || !issuer_ok {
                        return Err(Error::invalid(
                            "qr_token",
                            "the code is for another activity",
                            "签到码不是本活动的",
                        ));
                    }
                }
                Ok(())
            })
            .await?,
        ))
    }

    async fn record_speech(
        &self,
        req: Request<pb::RecordSpeechRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let (caller, cmd): (_, DeputyStep<Topic>) = edge::accept(req)?;
        let event = act::Event::Speech {
            deputy: cmd.deputy,
            topic: cmd.details.0.clone(),
            at: Utc::now(),
        };
        Ok(Response::new(
            self.deputy_step(&caller, &cmd, event, |_, _| Ok(()))
                .await?,
        ))
    }

    async fn points(
        &self,
        req: Request<pb::PointsRequest>,
    ) -> Result<Response<pb::PointsResponse>, Status> {
        let (me, cmd): (_, PointsQuery) = edge::accept(req)?;
        let core = &self.0;
        let org = match cmd.org {
            Some(org) => org,
            None => core.default_org()?,
        };
        core.require_reach("org", &org).await?;
        // A deputy's account reads its own points.
        let only = cmd
            .deputy
            .or(me.subject.filter(|_| me.role == UserRole::Deputy));
        if let Some(d) = only {
            me.require_own_deputy("deputy_id", d)?;
        } else if me.role == UserRole::Deputy {
            return Err(Error::forbidden(
                "deputy_id",
                "a deputy reads only their own points",
                "代表本人只能查看自己的积分",
            )
            .into());
        }
        let records: Vec<DutyRecord> = duty_records(core)
            .await?
            .into_iter()
            .filter(|r| org.contains(r.org))
            .filter(|r| only.is_none_or(|d| d == r.deputy))
            .collect();
        let points: BTreeMap<Uuid, u64> = act::points(&records, core.ctx.weights());
        Ok(Response::new(pb::PointsResponse {
            points: points
                .into_iter()
                .map(|(deputy, points)| pb::DeputyPoints {
                    deputy_id: deputy.to_string(),
                    points,
                })
                .collect(),
        }))
    }

    async fn ranking(
        &self,
        req: Request<pb::RankingRequest>,
    ) -> Result<Response<pb::RankingResponse>, Status> {
        let (_, cmd): (_, RankingQuery) = edge::accept(req)?;
        let core = &self.0;
        let org = match cmd.org {
            Some(org) => org,
            None => core.default_org()?,
        };
        core.require_reach("org", &org).await?;
        let tree = core.tree().await?;
        tree.require("org", &org).map_err(Error::from)?;
        let records = duty_records(core).await?;
        let lines = act::ranking(&records, core.ctx.weights(), &tree, &org, &cmd.period)
            .into_iter()
            .map(|l| pb::RankingLine {
                position: u32::try_from(l.position).unwrap_or(u32::MAX),
                deputy_id: l.deputy.to_string(),
                points: l.points,
                records: u32::try_from(l.records).unwrap_or(u32::MAX),
            })
            .collect();
        Ok(Response::new(pb::RankingResponse { lines }))
    }

    async fn duty_records(
        &self,
        req: Request<pb::DutyRecordsRequest>,
    ) -> Result<Response<pb::DutyRecordsResponse>, Status> {
        let (me, cmd): (_, DutyRecordsQuery) = edge::accept(req)?;
        let core = &self.0;
        let deputy = core.get_id(cmd.deputy, kind::DEPUTY).await?;
        me.require_own_deputy("deputy_id", deputy.id.0)?;
        let mine: Vec<DutyRecord> = duty_records(core)
            .await?
            .into_iter()
            .filter(|r| r.deputy == deputy.id.0)
            .filter(|r| cmd.period.as_ref().is_none_or(|p| p.contains(r.on)))
            .collect();
        let weights = core.ctx.weights();
        let records: Vec<pb::DutyRecord> = act::distinct(&mine)
            .into_iter()
            .map(|r| pb::DutyRecord {
                id: r.id.to_string(),
                kind: r.kind.wire(),
                on: Some(r.on.into()),
                org: r.org.to_string(),
                activity_id: r.activity.map(|a| a.to_string()).unwrap_or_default(),
                points: u64::from(weights.get(r.kind)),
            })
            .collect();
        let total_points = records.iter().map(|r| r.points).sum();
        Ok(Response::new(pb::DutyRecordsResponse {
            records,
            total_points,
        }))
    }
}
