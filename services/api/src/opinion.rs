//! `renda.opinion.v1.Opinions`: opinions from the people, handled by the unit now holding them
//! (the fold's handling org), escalated level by level with their whole history. Sources,
//! routes and statuses travel as the proto enums mapped here to the domain's.

use chrono::{DateTime, Utc};
use renda_domain::authority::Step;
use renda_domain::opinion::{self as op, OpinionRoute, Source, Status as St};
use renda_domain::org::OrgCode;
use renda_domain::record::Coded;
use renda_proto::opinion::v1 as pb;
use renda_replica::Value;
use renda_store::StoredRecord;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::edge::{self, Wire, wire};
use crate::error::{Error, Result};
use crate::gate::{READ, STAFF, ServiceAccess, roles};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

wire!(Source => pb::OpinionSource {
    Station <=> Station,
    QrCode <=> QrCode,
    Visit <=> Visit,
    Online <=> Online,
});

wire!(OpinionRoute => pb::OpinionRoute {
    AnsweredOnSite <=> AnsweredOnSite,
    TransferredToTownship <=> TransferredToTownship,
    AssignedToDepartment <=> AssignedToDepartment,
    EscalatedUpward <=> EscalatedUpward,
});

const SOURCES_EN: &str = "station, qr code, visit or online";
const ROUTES_EN: &str =
    "answered on site, transferred to the township, assigned to a department or escalated upward";

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

/// The domain's fold of a stored opinion: what the service answers and the report facts count.
pub(crate) fn fold(core: &Core, r: &StoredRecord) -> Result<op::State> {
    let opinion = op::Opinion {
        id: r.id.0,
        content: text(r, "content"),
        source: Source::from_code(&text(r, "source")).unwrap_or(Source::Station),
        org: record_org(r)?,
        station: ref_id(r, "station"),
        raised_at: time(int(r, "raised_at")),
    };
    Ok(op::fold(&opinion, &core.domain_events::<op::Event>(r)?))
}

fn to_pb(core: &Core, r: &StoredRecord) -> Result<pb::Opinion> {
    let state = fold(core, r)?;
    let (status, route) = match state.status {
        St::Open => (pb::OpinionStatus::Open, None),
        St::Handling(route) => (pb::OpinionStatus::Handling, Some(route)),
        St::Resolved => (pb::OpinionStatus::Resolved, None),
        St::Closed => (pb::OpinionStatus::Closed, None),
    };
    Ok(pb::Opinion {
        id: r.id.to_string(),
        org: org_string(r),
        content: text(r, "content"),
        source: Source::from_code(&text(r, "source")).map_or(0, Wire::wire),
        station_id: ref_id(r, "station")
            .map(|s| s.to_string())
            .unwrap_or_default(),
        raised_at_ms: int(r, "raised_at"),
        status: status.into(),
        route: route.map_or(0, Wire::wire),
        handling_org: state.handling_org.to_string(),
        handled_by: state.handled_by.iter().map(|o| o.to_string()).collect(),
        flags: state.flags.iter().map(|f| f.reason.clone()).collect(),
    })
}

/// `RaiseOpinion` as domain values.
struct Raise {
    content: String,
    source: Source,
    station: Option<Uuid>,
    /// Unix ms; now when the request gives none.
    raised_at_ms: i64,
}

impl TryFrom<pb::RaiseOpinionRequest> for Raise {
    type Error = Error;

    fn try_from(req: pb::RaiseOpinionRequest) -> Result<Self> {
        limit("content", &req.content, 2000)?;
        let source = edge::one_of("source", req.source, SOURCES_EN, "意见来源无效")?;
        let station = if req.station_id.trim().is_empty() {
            None
        } else {
            Some(parse_id("station_id", &req.station_id)?)
        };
        Ok(Self {
            content: req.content,
            source,
            station,
            raised_at_ms: if req.raised_at_ms == 0 {
                Utc::now().timestamp_millis()
            } else {
                req.raised_at_ms
            },
        })
    }
}

/// A record id and a page, for `GetOpinion` and `ListOpinions`.
struct Get(Uuid);

impl TryFrom<pb::GetOpinionRequest> for Get {
    type Error = Error;

    fn try_from(req: pb::GetOpinionRequest) -> Result<Self> {
        Ok(Self(parse_id("id", &req.id)?))
    }
}

struct List {
    /// The node's default when the request names none.
    org: Option<OrgCode>,
    limit: u32,
    offset: u64,
}

impl TryFrom<pb::ListOpinionsRequest> for List {
    type Error = Error;

    fn try_from(req: pb::ListOpinionsRequest) -> Result<Self> {
        Ok(Self {
            org: optional_org("org", &req.org)?,
            limit: page_limit(req.limit)?,
            offset: req.offset,
        })
    }
}

/// `RouteOpinion` as domain values.
struct Route {
    opinion: Uuid,
    route: OpinionRoute,
    to: Option<String>,
}

impl TryFrom<pb::RouteOpinionRequest> for Route {
    type Error = Error;

    fn try_from(req: pb::RouteOpinionRequest) -> Result<Self> {
        limit("to", &req.to, 400)?;
        let route = edge::one_of("route", req.route, ROUTES_EN, "处理方式无效")?;
        if route == OpinionRoute::EscalatedUpward && !req.to.trim().is_empty() {
            return Err(Error::invalid(
                "to",
                "an opinion escalated upward goes to the parent of the unit handling it; \
                 leave to empty",
                "逐级向上反映只报送上一级单位，无需填写去向",
            ));
        }
        Ok(Self {
            opinion: parse_id("opinion_id", &req.opinion_id)?,
            route,
            to: Some(req.to.trim().to_owned()).filter(|t| !t.is_empty()),
        })
    }
}

struct Escalate(Uuid);

impl TryFrom<pb::OpinionStepRequest> for Escalate {
    type Error = Error;

    fn try_from(req: pb::OpinionStepRequest) -> Result<Self> {
        Ok(Self(parse_id("opinion_id", &req.opinion_id)?))
    }
}

struct Resolve {
    opinion: Uuid,
    note: String,
}

impl TryFrom<pb::ResolveOpinionRequest> for Resolve {
    type Error = Error;

    fn try_from(req: pb::ResolveOpinionRequest) -> Result<Self> {
        limit("note", &req.note, 2000)?;
        Ok(Self {
            opinion: parse_id("opinion_id", &req.opinion_id)?,
            note: req.note.trim().to_owned(),
        })
    }
}

struct FollowUp {
    opinion: Uuid,
    citizen_satisfied: bool,
}

impl TryFrom<pb::FollowUpOpinionRequest> for FollowUp {
    type Error = Error;

    fn try_from(req: pb::FollowUpOpinionRequest) -> Result<Self> {
        Ok(Self {
            opinion: parse_id("opinion_id", &req.opinion_id)?,
            citizen_satisfied: req.citizen_satisfied,
        })
    }
}

impl Service {
    /// Takes one step on an opinion for the unit now handling it: `make` builds the step from
    /// the folded state, the fold's rules check it, and it is written with the caller's
    /// authority over the handling unit.
    async fn step(
        &self,
        caller: &Caller,
        id: Uuid,
        step: Step,
        make: impl FnOnce(&op::State) -> Result<op::Event>,
    ) -> Result<pb::Opinion> {
        let core = &self.0;
        let r = core.get_id(id, kind::OPINION).await?;
        let state = fold(core, &r)?;
        let handling = state.handling_org;
        let permit = core.permit::<op::Event>(caller, handling, step).await?;
        let event = make(&state)?;
        op::check(&state, &event)?;
        permit.take(r.id.0, &[event], vec![]).await?;
        to_pb(core, &core.get_id(r.id.0, kind::OPINION).await?)
    }

    /// Escalates an opinion to the parent of the unit handling it (逐级向上反映): what
    /// `EscalateOpinion` does, and `RouteOpinion` with that route.
    async fn escalate(&self, caller: &Caller, id: Uuid) -> Result<pb::Opinion> {
        let tree = self.0.tree().await?;
        self.step(caller, id, Step::Escalate, |state| {
            Ok(op::escalate(state, &tree, Utc::now())?)
        })
        .await
    }
}

/// Which role may call each RPC of `renda.opinion.v1.Opinions` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::opinions_server::SERVICE_NAME,
    rpcs: &[
        ("RaiseOpinion", roles(STAFF)),
        ("GetOpinion", roles(READ)),
        ("ListOpinions", roles(READ)),
        ("RouteOpinion", roles(STAFF)),
        ("EscalateOpinion", roles(STAFF)),
        ("ResolveOpinion", roles(STAFF)),
        ("FollowUpOpinion", roles(STAFF)),
    ],
};

#[tonic::async_trait]
impl pb::opinions_server::Opinions for Service {
    async fn raise_opinion(
        &self,
        req: Request<pb::RaiseOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let (caller, cmd): (_, Raise) = edge::accept(req)?;
        let core = &self.0;
        let station = match cmd.station {
            Some(id) => Some(core.get_id(id, kind::STATION).await?.id.0),
            None => None,
        };
        let o = op::Opinion::parse(
            op::OpinionDraft {
                content: cmd.content,
                source: cmd.source,
                org: core.node_org()?.to_string(),
                station,
                raised_at: time(cmd.raised_at_ms),
            },
            new_id(),
        )
        .map_err(Error::from)?;
        core.authorize(&caller, op::KIND.governed_as, Step::Edit, &o.org)
            .await?;
        let mut changes = vec![
            Pending::Put("org", Value::Org(o.org)),
            Pending::Put("content", Value::Text(o.content.clone())),
            Pending::Put("source", Value::Text(o.source.code().into())),
            Pending::Put("raised_at", Value::Int(cmd.raised_at_ms)),
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
        let Get(id) = Get::try_from(req.into_inner())?;
        let r = self.0.get_id(id, kind::OPINION).await?;
        Ok(Response::new(to_pb(&self.0, &r)?))
    }

    async fn list_opinions(
        &self,
        req: Request<pb::ListOpinionsRequest>,
    ) -> Result<Response<pb::ListOpinionsResponse>, Status> {
        let cmd = List::try_from(req.into_inner())?;
        let org = match cmd.org {
            Some(org) => org,
            None => self.0.default_org()?,
        };
        self.0.require_reach("org", &org).await?;
        let opinions = self
            .0
            .page(kind::OPINION, &org, cmd.limit, cmd.offset)
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
        let (caller, cmd): (_, Route) = edge::accept(req)?;
        // The fourth way of handling is a step of its own: the target is the level above.
        if cmd.route == OpinionRoute::EscalatedUpward {
            return Ok(Response::new(self.escalate(&caller, cmd.opinion).await?));
        }
        let by = self.0.node_org()?;
        Ok(Response::new(
            self.step(&caller, cmd.opinion, Step::Route, |_| {
                Ok(op::Event::Routed {
                    by,
                    route: cmd.route,
                    to: cmd.to,
                    at: Utc::now(),
                })
            })
            .await?,
        ))
    }

    async fn escalate_opinion(
        &self,
        req: Request<pb::OpinionStepRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let (caller, Escalate(id)) = edge::accept(req)?;
        Ok(Response::new(self.escalate(&caller, id).await?))
    }

    async fn resolve_opinion(
        &self,
        req: Request<pb::ResolveOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let (caller, cmd): (_, Resolve) = edge::accept(req)?;
        let by = self.0.node_org()?;
        Ok(Response::new(
            self.step(&caller, cmd.opinion, Step::Resolve, |_| {
                Ok(op::Event::Resolved {
                    by,
                    note: cmd.note,
                    at: Utc::now(),
                })
            })
            .await?,
        ))
    }

    async fn follow_up_opinion(
        &self,
        req: Request<pb::FollowUpOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let (caller, cmd): (_, FollowUp) = edge::accept(req)?;
        let by = self.0.node_org()?;
        Ok(Response::new(
            self.step(&caller, cmd.opinion, Step::FollowUp, |_| {
                Ok(op::Event::FollowedUp {
                    by,
                    citizen_satisfied: cmd.citizen_satisfied,
                    at: Utc::now(),
                })
            })
            .await?,
        ))
    }
}
