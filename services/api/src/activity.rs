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
    self as act, ActivityDraft, ActivityKind, DutyRecord, DutyRecordKind, Participation,
};
use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::Stamped;
use renda_domain::org::OrgCode;
use renda_domain::period::Period;
use renda_proto::activity::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

const KINDS: [(&str, ActivityKind); 8] = [
    ("research", ActivityKind::Research),
    ("inspection", ActivityKind::Inspection),
    (
        "law_enforcement_inspection",
        ActivityKind::LawEnforcementInspection,
    ),
    ("special_inquiry", ActivityKind::SpecialInquiry),
    ("training", ActivityKind::Training),
    ("publicity", ActivityKind::Publicity),
    ("receiving_voters", ActivityKind::ReceivingVoters),
    ("group_activity", ActivityKind::GroupActivity),
];

fn parse_kind(raw: &str) -> Result<ActivityKind> {
    KINDS
        .iter()
        .find(|(name, _)| *name == raw.trim())
        .map(|(_, k)| *k)
        .ok_or_else(|| Error::invalid("kind", "unknown activity kind", "活动类型无效"))
}

/// The activity's workflow events in the domain's form.
fn domain_events(events: &[Ev]) -> Vec<Stamped<act::Event>> {
    events
        .iter()
        .filter_map(|e| {
            let event = match e.name.as_str() {
                "dispatched" => act::Event::Dispatched {
                    deputies: [e.id("deputy")].into(),
                },
                "accepted" => act::Event::Accepted {
                    deputy: e.id("deputy"),
                },
                "declined" => act::Event::Declined {
                    deputy: e.id("deputy"),
                },
                "checked_in" => act::Event::CheckedIn {
                    deputy: e.id("deputy"),
                    at: DateTime::<Utc>::from_timestamp_millis(e.int("at")).unwrap_or_default(),
                },
                _ => return None,
            };
            Some(Stamped::new(e.stamp, event))
        })
        .collect()
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Activity> {
    let events = core.events(r)?;
    let roster = act::roster(&domain_events(&events));
    // The mode of each deputy's first check-in by stamp (a later one changes nothing).
    let mut modes: BTreeMap<Uuid, String> = BTreeMap::new();
    let mut check_ins: Vec<&Ev> = events.iter().filter(|e| e.name == "checked_in").collect();
    check_ins.sort_by_key(|e| e.stamp);
    for e in check_ins {
        modes
            .entry(e.id("deputy"))
            .or_insert_with(|| check_in_mode(e));
    }
    let to_orgs: BTreeSet<String> = events
        .iter()
        .filter(|e| e.name == "dispatched")
        .filter_map(|e| e.org("to_org"))
        .map(|o| o.to_string())
        .collect();
    Ok(pb::Activity {
        id: r.id.to_string(),
        org: org_string(r),
        kind: text(r, "kind"),
        title: text(r, "title"),
        starts_at_ms: int(r, "starts_at"),
        venue: text(r, "venue"),
        qr_token: text(r, "qr_token"),
        participants: roster
            .participants
            .iter()
            .map(|(deputy, p)| pb::Participant {
                deputy_id: deputy.to_string(),
                participation: match p {
                    Participation::Invited => "invited",
                    Participation::Declined => "declined",
                    Participation::Accepted => "accepted",
                    Participation::CheckedIn => "checked_in",
                }
                .into(),
                walk_in: roster.walk_ins.contains(deputy),
                check_in_mode: modes.get(deputy).cloned().unwrap_or_default(),
            })
            .collect(),
        dispatched_to_orgs: to_orgs.into_iter().collect(),
    })
}

/// How a check-in was made: "scan" (the deputy's own, with the signed code) or "proxy" (代录).
/// Check-ins recorded before modes existed were all entered with the activity's code by the
/// node, so they count as "proxy".
fn check_in_mode(e: &Ev) -> String {
    match e.text("mode").as_str() {
        "scan" => "scan".into(),
        _ => "proxy".into(),
    }
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
            let kind = match e.name.as_str() {
                "checked_in" => DutyRecordKind::CheckIn,
                "speech" => DutyRecordKind::Speech,
                _ => continue,
            };
            push(
                derived_id(r.id.0, &e.stamp),
                e.id("deputy"),
                kind,
                e.org("org"),
                local_date(e.int("at")),
                Some(r.id.0),
            );
        }
    }
    for r in core.list(kind::DEPUTY, None).await? {
        for e in core.events(&r)? {
            if e.name == "visit" {
                push(
                    derived_id(r.id.0, &e.stamp),
                    r.id.0,
                    DutyRecordKind::VoterVisit,
                    e.org("org"),
                    e.date("on"),
                    None,
                );
            }
        }
    }
    for r in core.list(kind::STATION, None).await? {
        for e in core.events(&r)? {
            if e.name == "reception" {
                for deputy in crate::schema::parse_id_list(&e.text("deputies")) {
                    push(
                        derived_id(deputy, &e.stamp),
                        deputy,
                        DutyRecordKind::Reception,
                        e.org("org"),
                        e.date("on"),
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
        let kind = if text(&r, "kind") == "motion" {
            DutyRecordKind::Motion
        } else {
            DutyRecordKind::Suggestion
        };
        if let Some(e) = core.events(&r)?.iter().find(|e| e.name == "submitted") {
            push(
                derived_id(r.id.0, &e.stamp),
                lead,
                kind,
                e.org("org"),
                e.date("on"),
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

fn duty_kind_name(k: DutyRecordKind) -> &'static str {
    match k {
        DutyRecordKind::CheckIn => "check_in",
        DutyRecordKind::Speech => "speech",
        DutyRecordKind::Suggestion => "suggestion",
        DutyRecordKind::Motion => "motion",
        DutyRecordKind::ReportBack => "report_back",
        DutyRecordKind::VoterVisit => "voter_visit",
        DutyRecordKind::Reception => "reception",
        DutyRecordKind::OpinionHandled => "opinion_handled",
    }
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

    /// A step taken where the deputy is: acceptance, check-in, speech.
    async fn deputy_step(
        &self,
        caller: &Caller,
        activity_id: &str,
        deputy_id: &str,
        step: Step,
        make: impl FnOnce(
            &StoredRecord,
            &act::Roster,
        ) -> Result<(&'static str, Vec<(&'static str, Value)>)>,
    ) -> Result<pb::Activity> {
        let core = &self.0;
        let activity = core.get("activity_id", activity_id, kind::ACTIVITY).await?;
        let deputy = core.get("deputy_id", deputy_id, kind::DEPUTY).await?;
        let deputy_org = record_org(&deputy)?;
        core.authorize(caller, RecordKind::Activity, step, &deputy_org)
            .await?;
        let roster = act::roster(&domain_events(&core.events(&activity)?));
        let (name, mut fields) = make(&activity, &roster)?;
        fields.insert(0, ("deputy", reference(deputy.id.0)));
        core.write(
            caller,
            activity.id.0,
            kind::ACTIVITY,
            vec![Pending::Event(name, deputy_org, fields)],
        )
        .await?;
        to_pb(core, &core.get_id(activity.id.0, kind::ACTIVITY).await?)
    }
}

#[tonic::async_trait]
impl pb::activities_server::Activities for Service {
    async fn create_activity(
        &self,
        req: Request<pb::CreateActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("title", &req.title, 400)?;
        limit("venue", &req.venue, 800)?;
        let org = core.node_org()?;
        let starts_at = DateTime::<Utc>::from_timestamp_millis(req.starts_at_ms)
            .ok_or_else(|| Error::invalid("starts_at_ms", "is out of range", "开始时间超出范围"))?;
        let activity = act::Activity::parse(
            ActivityDraft {
                kind: parse_kind(&req.kind)?,
                title: req.title,
                organiser: org.to_string(),
                starts_at,
                venue: req.venue,
            },
            new_id(),
        )
        .map_err(Error::from)?;
        core.authorize(
            &caller,
            RecordKind::Activity,
            Step::Edit,
            &activity.organiser,
        )
        .await?;
        core.write(
            &caller,
            activity.id,
            kind::ACTIVITY,
            vec![
                Pending::Put("org", Value::Org(activity.organiser)),
                Pending::Put("kind", Value::Text(req.kind.trim().to_owned())),
                Pending::Put("title", Value::Text(activity.title)),
                Pending::Put("starts_at", Value::Int(req.starts_at_ms)),
                Pending::Put("venue", text_value(activity.venue.unwrap_or_default())),
                Pending::Put("qr_token", Value::Text(new_token())),
            ],
        )
        .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(activity.id, kind::ACTIVITY).await?,
        )?))
    }

    async fn update_activity(
        &self,
        req: Request<pb::UpdateActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("title", &req.title, 400)?;
        limit("venue", &req.venue, 800)?;
        let r = core.get("id", &req.id, kind::ACTIVITY).await?;
        let org = record_org(&r)?;
        let starts_at = DateTime::<Utc>::from_timestamp_millis(req.starts_at_ms)
            .ok_or_else(|| Error::invalid("starts_at_ms", "is out of range", "开始时间超出范围"))?;
        let activity = act::Activity::parse(
            ActivityDraft {
                kind: parse_kind(&req.kind)?,
                title: req.title,
                organiser: org.to_string(),
                starts_at,
                venue: req.venue,
            },
            r.id.0,
        )
        .map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Activity, Step::Edit, &org)
            .await?;
        let roster = act::roster(&domain_events(&core.events(&r)?));
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
        core.write(
            &caller,
            r.id.0,
            kind::ACTIVITY,
            vec![
                Pending::Put("kind", Value::Text(req.kind.trim().to_owned())),
                Pending::Put("title", Value::Text(activity.title)),
                Pending::Put("starts_at", Value::Int(req.starts_at_ms)),
                Pending::Put("venue", text_value(activity.venue.unwrap_or_default())),
            ],
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
        let caller = caller(&req)?;
        let r = self.0.get("id", &req.get_ref().id, kind::ACTIVITY).await?;
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
        let me = caller(&req)?;
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        // Activities organised in the subtree, paged in SQL, then those organised above it and
        // dispatched into it. The second part reads the activities under the top ancestor and
        // keeps the ancestors' own: at a township node that is what it holds anyway; a store
        // query by audience (record_scope) would spare a city node the read.
        let core = &self.0;
        let limit = page_limit(req.limit)?;
        let offset = req.offset;
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let activity = core
            .get("activity_id", &req.activity_id, kind::ACTIVITY)
            .await?;
        let ids = parse_ids("deputy_ids", &req.deputy_ids, 500)?;
        let org = record_org(&activity)?;
        core.authorize(&caller, RecordKind::Activity, Step::Dispatch, &org)
            .await?;
        let roster = act::roster(&domain_events(&core.events(&activity)?));
        act::check(
            &roster,
            &act::Event::Dispatched {
                deputies: ids.iter().copied().collect(),
            },
        )
        .map_err(Error::from)?;
        let mut changes = Vec::with_capacity(ids.len());
        for id in ids {
            let deputy = core.get_id(id, kind::DEPUTY).await.map_err(|e| match e {
                Error::NotFound { .. } => Error::invalid(
                    "deputy_ids",
                    format!("deputy {id} is not known here"),
                    "代表不存在",
                ),
                other => other,
            })?;
            changes.push(Pending::Event(
                "dispatched",
                org,
                vec![
                    ("deputy", reference(id)),
                    ("to_org", Value::Org(record_org(&deputy)?)),
                ],
            ));
        }
        core.write(&caller, activity.id.0, kind::ACTIVITY, changes)
            .await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(activity.id.0, kind::ACTIVITY).await?,
        )?))
    }

    async fn accept_activity(
        &self,
        req: Request<pb::AcceptActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        caller.require_own_deputy("deputy_id", deputy)?;
        Ok(Response::new(
            self.deputy_step(
                &caller,
                &req.activity_id,
                &req.deputy_id,
                Step::Accept,
                |_, roster| {
                    act::check(roster, &act::Event::Accepted { deputy })?;
                    Ok(("accepted", vec![]))
                },
            )
            .await?,
        ))
    }

    async fn decline_activity(
        &self,
        req: Request<pb::DeclineActivityRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        caller.require_own_deputy("deputy_id", deputy)?;
        let reason =
            renda_domain::text::optional("reason", Some(&req.reason), 500).map_err(Error::from)?;
        Ok(Response::new(
            self.deputy_step(
                &caller,
                &req.activity_id,
                &req.deputy_id,
                Step::Accept,
                |_, roster| {
                    act::check(roster, &act::Event::Declined { deputy })?;
                    Ok((
                        "declined",
                        vec![("reason", text_value(reason.unwrap_or_default()))],
                    ))
                },
            )
            .await?,
        ))
    }

    async fn issue_check_in_code(
        &self,
        req: Request<pb::IssueCheckInCodeRequest>,
    ) -> Result<Response<pb::CheckInCode>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let activity = core
            .get("activity_id", &req.activity_id, kind::ACTIVITY)
            .await?;
        let org = record_org(&activity)?;
        // Only the node that owns the activity makes its code, as its organiser.
        core.authorize(&caller, RecordKind::Activity, Step::Edit, &org)
            .await?;
        let starts = int(&activity, "starts_at");
        let from = if req.valid_from_ms == 0 {
            starts.saturating_sub(2 * 3_600_000)
        } else {
            req.valid_from_ms
        };
        let until = if req.valid_until_ms == 0 {
            starts.saturating_add(12 * 3_600_000)
        } else {
            req.valid_until_ms
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        limit("qr_token", &req.qr_token, renda_accounts::MAX_TOKEN_LEN)?;
        let deputy = parse_id("deputy_id", &req.deputy_id)?;
        caller.require_own_deputy("deputy_id", deputy)?;
        let now = Utc::now().timestamp_millis();
        // A deputy's own scan happens now, at the node that checks the code; only a clerk
        // entering a check-in after the fact (代录) says when it was.
        let at = if req.at_ms == 0 || caller.role == UserRole::Deputy {
            now
        } else {
            req.at_ms
        };
        let code = req.qr_token.trim().to_owned();
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
        let mode = if own { "scan" } else { "proxy" };
        Ok(Response::new(
            self.deputy_step(
                &caller,
                &req.activity_id,
                &req.deputy_id,
                Step::CheckIn,
                |activity, _| {
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
                    Ok((
                        "checked_in",
                        vec![
                            ("qr_token", Value::Text(code.clone())),
                            ("at", Value::Int(at)),
                            ("mode", Value::Text(mode.into())),
                        ],
                    ))
                },
            )
            .await?,
        ))
    }

    async fn record_speech(
        &self,
        req: Request<pb::RecordSpeechRequest>,
    ) -> Result<Response<pb::Activity>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let topic =
            renda_domain::text::optional("topic", Some(&req.topic), 500).map_err(Error::from)?;
        let at = Utc::now().timestamp_millis();
        Ok(Response::new(
            self.deputy_step(
                &caller,
                &req.activity_id,
                &req.deputy_id,
                Step::CheckIn,
                |_, _| {
                    Ok((
                        "speech",
                        vec![
                            ("topic", text_value(topic.unwrap_or_default())),
                            ("at", Value::Int(at)),
                        ],
                    ))
                },
            )
            .await?,
        ))
    }

    async fn points(
        &self,
        req: Request<pb::PointsRequest>,
    ) -> Result<Response<pb::PointsResponse>, Status> {
        let me = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let org = parse_org("org", &req.org, &core.default_org()?)?;
        core.require_reach("org", &org)?;
        let only = if req.deputy_id.trim().is_empty() {
            // A deputy's account reads its own points.
            me.subject.filter(|_| me.role == UserRole::Deputy)
        } else {
            Some(parse_id("deputy_id", &req.deputy_id)?)
        };
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
        let req = req.into_inner();
        let core = &self.0;
        let org = parse_org("org", &req.org, &core.default_org()?)?;
        core.require_reach("org", &org)?;
        let period = period(req.period.as_ref())?;
        let tree = core.tree().await?;
        tree.require("org", &org).map_err(Error::from)?;
        let records = duty_records(core).await?;
        let lines = act::ranking(&records, core.ctx.weights(), &tree, &org, &period)
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
        let me = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let deputy = core.get("deputy_id", &req.deputy_id, kind::DEPUTY).await?;
        me.require_own_deputy("deputy_id", deputy.id.0)?;
        let period = req.period.as_ref().map(|p| period(Some(p))).transpose()?;
        let mine: Vec<DutyRecord> = duty_records(core)
            .await?
            .into_iter()
            .filter(|r| r.deputy == deputy.id.0)
            .filter(|r| period.as_ref().is_none_or(|p| p.contains(r.on)))
            .collect();
        let weights = core.ctx.weights();
        let records: Vec<pb::DutyRecord> = act::distinct(&mine)
            .into_iter()
            .map(|r| pb::DutyRecord {
                id: r.id.to_string(),
                kind: duty_kind_name(r.kind).into(),
                on: day_string(r.on),
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
