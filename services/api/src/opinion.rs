//! `renda.opinion.v1.Opinions`: opinions from the people, handled by the unit now holding them
//! (the fold's handling org), escalated level by level with their whole history.

use chrono::{DateTime, Utc};
use renda_domain::authority::{RecordKind, Step};
use renda_domain::event::Stamped;
use renda_domain::opinion::{self as op, OpinionRoute, Source, Status as St};
use renda_proto::opinion::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};

use crate::core::*;
use crate::error::{Error, Result};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

const SOURCES: [(&str, Source); 4] = [
    ("station", Source::Station),
    ("qr_code", Source::QrCode),
    ("visit", Source::Visit),
    ("online", Source::Online),
];

const ROUTES: [(&str, OpinionRoute); 4] = [
    ("answered_on_site", OpinionRoute::AnsweredOnSite),
    (
        "transferred_to_township",
        OpinionRoute::TransferredToTownship,
    ),
    ("assigned_to_department", OpinionRoute::AssignedToDepartment),
    ("escalated_upward", OpinionRoute::EscalatedUpward),
];

fn lookup<T: Copy>(table: &[(&str, T)], raw: &str) -> Option<T> {
    table
        .iter()
        .find(|(n, _)| *n == raw.trim())
        .map(|(_, v)| *v)
}

fn name_of<T: Copy + PartialEq>(table: &[(&'static str, T)], v: T) -> &'static str {
    table
        .iter()
        .find(|(_, t)| *t == v)
        .map(|(n, _)| *n)
        .unwrap_or_default()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

fn fold(core: &Core, r: &StoredRecord) -> Result<op::State> {
    let opinion = op::Opinion {
        id: r.id.0,
        content: text(r, "content"),
        source: lookup(&SOURCES, &text(r, "source")).unwrap_or(Source::Station),
        org: record_org(r)?,
        station: ref_id(r, "station"),
        raised_at: time(int(r, "raised_at")),
    };
    let events: Vec<Stamped<op::Event>> = core
        .events(r)?
        .iter()
        .filter_map(|e| {
            let by = e.org("org")?;
            let at = time(e.int("at"));
            let event = match e.name.as_str() {
                "routed" => op::Event::Routed {
                    by,
                    route: lookup(&ROUTES, &e.text("route"))?,
                    to: Some(e.text("to")).filter(|t| !t.is_empty()),
                    at,
                },
                "escalated" => op::Event::Escalated {
                    from: by,
                    to: e.org("to")?,
                    at,
                },
                "resolved" => op::Event::Resolved {
                    by,
                    note: e.text("note"),
                    at,
                },
                "followed_up" => op::Event::FollowedUp {
                    by,
                    citizen_satisfied: e.bool("citizen_satisfied"),
                    at,
                },
                _ => return None,
            };
            Some(Stamped::new(e.stamp, event))
        })
        .collect();
    Ok(op::fold(&opinion, &events))
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Opinion> {
    let state = fold(core, r)?;
    let (status, route) = match state.status {
        St::Open => ("open", ""),
        St::Handling(route) => ("handling", name_of(&ROUTES, route)),
        St::Resolved => ("resolved", ""),
        St::Closed => ("closed", ""),
    };
    Ok(pb::Opinion {
        id: r.id.to_string(),
        org: org_string(r),
        content: text(r, "content"),
        source: text(r, "source"),
        station_id: ref_id(r, "station")
            .map(|s| s.to_string())
            .unwrap_or_default(),
        raised_at_ms: int(r, "raised_at"),
        status: status.into(),
        route: route.into(),
        handling_org: state.handling_org.to_string(),
        handled_by: state.handled_by.iter().map(|o| o.to_string()).collect(),
        flags: state.flags.iter().map(|f| f.reason.clone()).collect(),
    })
}

impl Service {
    async fn step(
        &self,
        caller: &Caller,
        id: &str,
        step: Step,
        make: impl FnOnce(&op::State) -> Result<(op::Event, &'static str, Vec<(&'static str, Value)>)>,
    ) -> Result<pb::Opinion> {
        let core = &self.0;
        let r = core.get("opinion_id", id, kind::OPINION).await?;
        let state = fold(core, &r)?;
        let handling = state.handling_org;
        core.authorize(caller, RecordKind::Opinion, step, &handling)
            .await?;
        let (event, name, mut fields) = make(&state)?;
        op::check(&state, &event)?;
        fields.push(("at", Value::Int(Utc::now().timestamp_millis())));
        core.write(
            caller,
            r.id.0,
            kind::OPINION,
            vec![Pending::Event(name, handling, fields)],
        )
        .await?;
        to_pb(core, &core.get_id(r.id.0, kind::OPINION).await?)
    }
}

#[tonic::async_trait]
impl pb::opinions_server::Opinions for Service {
    async fn raise_opinion(
        &self,
        req: Request<pb::RaiseOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("content", &req.content, 2000)?;
        let source = lookup(&SOURCES, &req.source)
            .ok_or_else(|| Error::invalid("source", "unknown source", "意见来源无效"))?;
        let station = if req.station_id.trim().is_empty() {
            None
        } else {
            Some(
                core.get("station_id", &req.station_id, kind::STATION)
                    .await?
                    .id
                    .0,
            )
        };
        let raised = if req.raised_at_ms == 0 {
            Utc::now().timestamp_millis()
        } else {
            req.raised_at_ms
        };
        let o = op::Opinion::parse(
            op::OpinionDraft {
                content: req.content,
                source,
                org: core.node_org()?.to_string(),
                station,
                raised_at: time(raised),
            },
            new_id(),
        )
        .map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Opinion, Step::Edit, &o.org)
            .await?;
        let mut changes = vec![
            Pending::Put("org", Value::Org(o.org)),
            Pending::Put("content", Value::Text(o.content.clone())),
            Pending::Put("source", Value::Text(req.source.trim().to_owned())),
            Pending::Put("raised_at", Value::Int(raised)),
        ];
        if let Some(s) = station {
            changes.push(Pending::Put("station", reference(s)));
        }
        core.write(&caller, o.id, kind::OPINION, changes).await?;
        Ok(Response::new(to_pb(
            core,
            &core.get_id(o.id, kind::OPINION).await?,
        )?))
    }

    async fn get_opinion(
        &self,
        req: Request<pb::GetOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let r = self.0.get("id", &req.get_ref().id, kind::OPINION).await?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_opinions(
        &self,
        req: Request<pb::ListOpinionsRequest>,
    ) -> Result<Response<pb::ListOpinionsResponse>, Status> {
        let req = req.into_inner();
        let org = parse_org("org", &req.org, &self.0.default_org()?)?;
        self.0.require_reach("org", &org)?;
        let opinions = self
            .0
            .page(kind::OPINION, &org, page_limit(req.limit)?, req.offset)
            .await?
            .iter()
            .map(|r| to_pb(&self.0, r))
            .collect::<Result<_>>()?;
        Ok(Response::new(pb::ListOpinionsResponse { opinions }))
    }

    async fn route_opinion(
        &self,
        req: Request<pb::RouteOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        limit("to", &req.to, 400)?;
        let route = lookup(&ROUTES, &req.route)
            .ok_or_else(|| Error::invalid("route", "unknown route", "处理方式无效"))?;
        let to = Some(req.to.trim().to_owned()).filter(|t| !t.is_empty());
        let by = self.0.node_org()?;
        Ok(Response::new(
            self.step(&caller, &req.opinion_id, Step::Route, |_| {
                Ok((
                    op::Event::Routed {
                        by,
                        route,
                        to: to.clone(),
                        at: Utc::now(),
                    },
                    "routed",
                    vec![
                        ("route", Value::Text(req.route.trim().to_owned())),
                        ("to", text_value(to.unwrap_or_default())),
                    ],
                ))
            })
            .await?,
        ))
    }

    async fn escalate_opinion(
        &self,
        req: Request<pb::OpinionStepRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let caller = caller(&req)?;
        let tree = self.0.tree().await?;
        Ok(Response::new(
            self.step(
                &caller,
                &req.get_ref().opinion_id,
                Step::Escalate,
                |state| {
                    let event = op::escalate(state, &tree, Utc::now())?;
                    let to = match &event {
                        op::Event::Escalated { to, .. } => *to,
                        _ => return Err(Error::Internal("escalate built another event".into())),
                    };
                    Ok((event, "escalated", vec![("to", Value::Org(to))]))
                },
            )
            .await?,
        ))
    }

    async fn resolve_opinion(
        &self,
        req: Request<pb::ResolveOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        limit("note", &req.note, 2000)?;
        let by = self.0.node_org()?;
        let note = req.note.trim().to_owned();
        Ok(Response::new(
            self.step(&caller, &req.opinion_id, Step::Resolve, |_| {
                Ok((
                    op::Event::Resolved {
                        by,
                        note: note.clone(),
                        at: Utc::now(),
                    },
                    "resolved",
                    vec![("note", Value::Text(note))],
                ))
            })
            .await?,
        ))
    }

    async fn follow_up_opinion(
        &self,
        req: Request<pb::FollowUpOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let by = self.0.node_org()?;
        Ok(Response::new(
            self.step(&caller, &req.opinion_id, Step::FollowUp, |_| {
                Ok((
                    op::Event::FollowedUp {
                        by,
                        citizen_satisfied: req.citizen_satisfied,
                        at: Utc::now(),
                    },
                    "followed_up",
                    vec![("citizen_satisfied", Value::Bool(req.citizen_satisfied))],
                ))
            })
            .await?,
        ))
    }
}
