//! `renda.evaluation.v1.Evaluations`: report-backs (述职) with their coverage, yearly
//! evaluations (代表自评 + 选民测评), the quarterly bulletin (履职通报) and department
//! appraisals (工作评议).
//!
//! An appraisal belongs to the congress that holds it; its votes are events written at that
//! congress's node, and the serving deputies of its subtree are the ones entitled to vote. The
//! result counts each entitled deputy's latest vote (the domain's `appraisal_result`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use renda_domain::authority::{RecordKind, Step};
use renda_domain::evaluation::{self as ev, AppraisalVote, EvaluationDraft};
use renda_domain::event::Stamped;
use renda_domain::org::OrgCode;
use renda_domain::period::Period;
use renda_domain::record::RecordEvent;
use renda_proto::evaluation::v1 as pb;
use renda_replica::Value;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::activity::duty_records;
use crate::core::*;
use crate::deputy::is_serving;
use crate::edge::{self, Wire};
use crate::error::{Error, Result};
use crate::gate::{OFFICE, READ, STAFF, ServiceAccess, roles};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

struct RecordReportBack {
    deputy: Uuid,
    term: u8,
    on: NaiveDate,
    summary: String,
    voters_present: u32,
}

impl TryFrom<pb::RecordReportBackRequest> for RecordReportBack {
    type Error = Error;
    fn try_from(r: pb::RecordReportBackRequest) -> Result<Self> {
        limit("summary", &r.summary, 5000)?;
        Ok(Self {
            deputy: parse_id("deputy_id", &r.deputy_id)?,
            on: edge::day("on", r.on)?,
            term: u8::try_from(r.term).unwrap_or(u8::MAX),
            summary: r.summary,
            voters_present: r.voters_present,
        })
    }
}

struct Coverage {
    org: Option<OrgCode>,
    term: u32,
}

impl TryFrom<pb::ReportBackCoverageRequest> for Coverage {
    type Error = Error;
    fn try_from(r: pb::ReportBackCoverageRequest) -> Result<Self> {
        Ok(Self {
            org: optional_org("org", &r.org)?,
            term: r.term,
        })
    }
}

struct RecordEvaluation {
    deputy: Uuid,
    year: i32,
    self_score: u32,
    self_summary: String,
    voter_scores: Vec<u32>,
}

impl TryFrom<pb::RecordEvaluationRequest> for RecordEvaluation {
    type Error = Error;
    fn try_from(r: pb::RecordEvaluationRequest) -> Result<Self> {
        limit("self_summary", &r.self_summary, 5000)?;
        Ok(Self {
            deputy: parse_id("deputy_id", &r.deputy_id)?,
            year: r.year,
            self_score: r.self_score,
            self_summary: r.self_summary,
            voter_scores: r.voter_scores,
        })
    }
}

/// Whose bulletin: a deputy group's members, or the serving deputies of an org subtree.
enum Members {
    Group(Uuid),
    Org(Option<OrgCode>),
}

struct Bulletin {
    members: Members,
    period: Period,
    year: i32,
    quarter: u32,
}

impl TryFrom<pb::BulletinRequest> for Bulletin {
    type Error = Error;
    fn try_from(r: pb::BulletinRequest) -> Result<Self> {
        let period = Period::quarter(r.year, r.quarter).map_err(Error::from)?;
        Ok(Self {
            members: if r.group_id.trim().is_empty() {
                Members::Org(optional_org("org", &r.org)?)
            } else {
                Members::Group(parse_id("group_id", &r.group_id)?)
            },
            period,
            year: r.year,
            quarter: r.quarter,
        })
    }
}

struct CreateAppraisal {
    department: String,
    year: i32,
}

impl TryFrom<pb::CreateAppraisalRequest> for CreateAppraisal {
    type Error = Error;
    fn try_from(r: pb::CreateAppraisalRequest) -> Result<Self> {
        limit("department", &r.department, 400)?;
        if !(2000..=2200).contains(&r.year) {
            return Err(Error::invalid(
                "year",
                format!("must be 2000 to 2200, got {}", r.year),
                format!("年度须在2000至2200之间，实际为{}", r.year),
            ));
        }
        Ok(Self {
            department: r.department,
            year: r.year,
        })
    }
}

struct Vote {
    appraisal: Uuid,
    vote: AppraisalVote,
}

impl TryFrom<pb::RecordAppraisalVoteRequest> for Vote {
    type Error = Error;
    fn try_from(r: pb::RecordAppraisalVoteRequest) -> Result<Self> {
        let satisfaction = edge::one_of(
            "satisfaction",
            r.satisfaction,
            "satisfied, basically_satisfied or dissatisfied",
            "须为满意、基本满意或不满意",
        )?;
        Ok(Self {
            appraisal: parse_id("appraisal_id", &r.appraisal_id)?,
            vote: AppraisalVote {
                deputy: parse_id("deputy_id", &r.deputy_id)?,
                satisfaction,
            },
        })
    }
}

struct AppraisalResult {
    appraisal: Uuid,
}

impl TryFrom<pb::AppraisalResultRequest> for AppraisalResult {
    type Error = Error;
    fn try_from(r: pb::AppraisalResultRequest) -> Result<Self> {
        Ok(Self {
            appraisal: parse_id("appraisal_id", &r.appraisal_id)?,
        })
    }
}

fn coverage_pb(rate: &renda_domain::rates::Rate) -> pb::CoverageResponse {
    pb::CoverageResponse {
        name_zh: rate.kind.name_zh().into(),
        numerator: rate.numerator,
        denominator: rate.denominator,
        percent: rate.percent(),
        definition_zh: rate.kind.definition_zh().into(),
    }
}

impl Service {
    /// The serving deputies of `org`'s subtree that this node holds.
    async fn serving_in(&self, org: &renda_domain::org::OrgCode) -> Result<BTreeSet<Uuid>> {
        Ok(self
            .0
            .list(kind::DEPUTY, Some(org))
            .await?
            .iter()
            .filter(|r| is_serving(r))
            .map(|r| r.id.0)
            .collect())
    }

    /// The votes recorded on an appraisal.
    fn votes(&self, r: &renda_store::StoredRecord) -> Result<Vec<Stamped<AppraisalVote>>> {
        self.0.domain_events(r)
    }

    fn appraisal_pb(&self, r: &renda_store::StoredRecord) -> Result<pb::Appraisal> {
        Ok(pb::Appraisal {
            id: r.id.to_string(),
            org: org_string(r),
            department: text(r, "department"),
            year: i32::try_from(int(r, "year")).unwrap_or_default(),
            votes: u32::try_from(self.votes(r)?.len()).unwrap_or(u32::MAX),
        })
    }
}

/// Which role may call each RPC of `renda.evaluation.v1.Evaluations` (see [`crate::gate`]).
pub(crate) const ACCESS: ServiceAccess = ServiceAccess {
    service: pb::evaluations_server::SERVICE_NAME,
    rpcs: &[
        ("RecordReportBack", roles(STAFF)),
        ("ReportBackCoverage", roles(READ)),
        ("RecordEvaluation", roles(STAFF)),
        ("Bulletin", roles(READ)),
        ("CreateAppraisal", roles(OFFICE)),
        ("RecordAppraisalVote", roles(STAFF)),
        ("AppraisalResult", roles(READ)),
    ],
};

#[tonic::async_trait]
impl pb::evaluations_server::Evaluations for Service {
    async fn record_report_back(
        &self,
        req: Request<pb::RecordReportBackRequest>,
    ) -> Result<Response<pb::ReportBack>, Status> {
        let (caller, cmd): (_, RecordReportBack) = edge::accept(req)?;
        let core = &self.0;
        let deputy = core.get_id(cmd.deputy, kind::DEPUTY).await?;
        let org = record_org(&deputy)?;
        let rb = ev::ReportBack::new(
            new_id(),
            deputy.id.0,
            cmd.term,
            cmd.on,
            org,
            &cmd.summary,
            cmd.voters_present,
        )
        .map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Evaluation, Step::Edit, &org)
            .await?;
        core.write(
            &caller,
            rb.id,
            kind::REPORT_BACK,
            vec![
                Pending::Put("org", Value::Org(org)),
                Pending::Put("deputy", reference(rb.deputy)),
                Pending::Put("term", Value::Int(i64::from(rb.term))),
                Pending::Put("on", date_value(rb.on)),
                Pending::Put("summary", text_value(rb.summary.clone())),
                Pending::Put("voters_present", Value::Int(i64::from(rb.voters_present))),
            ],
        )
        .await?;
        Ok(Response::new(pb::ReportBack {
            id: rb.id.to_string(),
            org: org.to_string(),
            deputy_id: rb.deputy.to_string(),
            term: u32::from(rb.term),
            on: Some(rb.on.into()),
            summary: rb.summary,
            voters_present: rb.voters_present,
        }))
    }

    async fn report_back_coverage(
        &self,
        req: Request<pb::ReportBackCoverageRequest>,
    ) -> Result<Response<pb::CoverageResponse>, Status> {
        let (_, cmd): (_, Coverage) = edge::accept(req)?;
        let core = &self.0;
        let org = match cmd.org {
            Some(org) => org,
            None => core.default_org()?,
        };
        core.require_reach("org", &org).await?;
        let serving: BTreeSet<Uuid> = core
            .list(kind::DEPUTY, Some(&org))
            .await?
            .iter()
            .filter(|r| is_serving(r) && u32::try_from(int(r, "term")).ok() == Some(cmd.term))
            .map(|r| r.id.0)
            .collect();
        let mut reports = Vec::new();
        for r in core.list(kind::REPORT_BACK, Some(&org)).await? {
            let (Some(deputy), Some(on), Ok(org)) = (
                ref_id(&r, "deputy"),
                r.fields.get("on").and_then(value_date),
                record_org(&r),
            ) else {
                continue;
            };
            let term = u8::try_from(int(&r, "term")).unwrap_or_default();
            if let Ok(rb) = ev::ReportBack::new(r.id.0, deputy, term.max(1), on, org, "", 0) {
                reports.push(rb);
            }
        }
        let rate = ev::coverage(
            &reports,
            &serving,
            u8::try_from(cmd.term).unwrap_or(u8::MAX),
        );
        Ok(Response::new(coverage_pb(&rate)))
    }

    async fn record_evaluation(
        &self,
        req: Request<pb::RecordEvaluationRequest>,
    ) -> Result<Response<pb::Evaluation>, Status> {
        let (caller, cmd): (_, RecordEvaluation) = edge::accept(req)?;
        let core = &self.0;
        let deputy = core.get_id(cmd.deputy, kind::DEPUTY).await?;
        let org = record_org(&deputy)?;
        let e = ev::Evaluation::parse(EvaluationDraft {
            deputy: deputy.id.0,
            year: cmd.year,
            self_score: cmd.self_score,
            self_summary: cmd.self_summary,
            voter_scores: cmd.voter_scores,
        })
        .map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Evaluation, Step::Edit, &org)
            .await?;
        let id = new_id();
        let scores: Vec<String> = e.voter_scores.iter().map(|s| s.get().to_string()).collect();
        core.write(
            &caller,
            id,
            kind::EVALUATION,
            vec![
                Pending::Put("org", Value::Org(org)),
                Pending::Put("deputy", reference(e.deputy)),
                Pending::Put("year", Value::Int(i64::from(e.year))),
                Pending::Put("self_score", Value::Int(i64::from(e.self_score.get()))),
                Pending::Put("self_summary", text_value(e.self_summary.clone())),
                Pending::Put("voter_scores", text_value(scores.join(","))),
            ],
        )
        .await?;
        Ok(Response::new(pb::Evaluation {
            id: id.to_string(),
            org: org.to_string(),
            deputy_id: e.deputy.to_string(),
            year: e.year,
            self_score: u32::from(e.self_score.get()),
            self_summary: e.self_summary.clone(),
            voter_average: e.voter_average(),
        }))
    }

    async fn bulletin(
        &self,
        req: Request<pb::BulletinRequest>,
    ) -> Result<Response<pb::BulletinResponse>, Status> {
        let (_, cmd): (_, Bulletin) = edge::accept(req)?;
        let core = &self.0;
        let (members, title) = match cmd.members {
            Members::Org(org) => {
                let org = match org {
                    Some(org) => org,
                    None => core.default_org()?,
                };
                core.require_reach("org", &org).await?;
                let tree = core.tree().await?;
                let unit = tree.require("org", &org).map_err(Error::from)?;
                (self.serving_in(&org).await?, unit.name.clone())
            }
            Members::Group(id) => {
                let group = core.get_id(id, kind::DEPUTY_GROUP).await?;
                (
                    set(&group, "members").into_iter().collect(),
                    text(&group, "name"),
                )
            }
        };
        let records = duty_records(core).await?;
        let lines = ev::bulletin(&records, &members, &cmd.period, core.ctx.weights());
        let mut names: BTreeMap<Uuid, String> = BTreeMap::new();
        for d in &members {
            if let Ok(r) = core.get_id(*d, kind::DEPUTY).await {
                names.insert(*d, text(&r, "name"));
            }
        }
        Ok(Response::new(pb::BulletinResponse {
            title_zh: format!("{title}{}年第{}季度代表履职通报", cmd.year, cmd.quarter),
            lines: lines
                .into_iter()
                .map(|l| pb::BulletinLine {
                    deputy_id: l.deputy.to_string(),
                    name: names.remove(&l.deputy).unwrap_or_default(),
                    counts: l
                        .counts
                        .iter()
                        .map(|(k, n)| pb::DutyCount {
                            kind: k.wire(),
                            kind_zh: k.label_zh().into(),
                            count: *n,
                        })
                        .collect(),
                    points: l.points,
                })
                .collect(),
        }))
    }

    async fn create_appraisal(
        &self,
        req: Request<pb::CreateAppraisalRequest>,
    ) -> Result<Response<pb::Appraisal>, Status> {
        let (caller, cmd): (_, CreateAppraisal) = edge::accept(req)?;
        let core = &self.0;
        let org = core.node_org()?;
        let a =
            ev::Appraisal::new(new_id(), &cmd.department, org, cmd.year).map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Evaluation, Step::Edit, &org)
            .await?;
        core.write(
            &caller,
            a.id,
            kind::APPRAISAL,
            vec![
                Pending::Put("org", Value::Org(org)),
                Pending::Put("department", Value::Text(a.department.clone())),
                Pending::Put("year", Value::Int(i64::from(a.year))),
            ],
        )
        .await?;
        Ok(Response::new(self.appraisal_pb(
            &core.get_id(a.id, kind::APPRAISAL).await?,
        )?))
    }

    async fn record_appraisal_vote(
        &self,
        req: Request<pb::RecordAppraisalVoteRequest>,
    ) -> Result<Response<pb::Appraisal>, Status> {
        let (caller, cmd): (_, Vote) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.appraisal, kind::APPRAISAL).await?;
        let deputy = core.get_id(cmd.vote.deputy, kind::DEPUTY).await?;
        let org = record_org(&r)?;
        let permit = core
            .permit::<AppraisalVote>(&caller, org, cmd.vote.step())
            .await?;
        if !is_serving(&deputy) || !org.contains(record_org(&deputy)?) {
            return Err(Error::precondition(
                "deputy_id",
                "only serving deputies of the appraising congress vote",
                "只有本级人大的在任代表可以参加测评",
            )
            .into());
        }
        permit.take(r.id.0, &[cmd.vote], vec![]).await?;
        Ok(Response::new(self.appraisal_pb(
            &core.get_id(r.id.0, kind::APPRAISAL).await?,
        )?))
    }

    async fn appraisal_result(
        &self,
        req: Request<pb::AppraisalResultRequest>,
    ) -> Result<Response<pb::AppraisalResultResponse>, Status> {
        let (_, cmd): (_, AppraisalResult) = edge::accept(req)?;
        let core = &self.0;
        let r = core.get_id(cmd.appraisal, kind::APPRAISAL).await?;
        let entitled = self.serving_in(&record_org(&r)?).await?;
        let result = ev::appraisal_result(&self.votes(&r)?, &entitled);
        Ok(Response::new(pb::AppraisalResultResponse {
            counts: result
                .counts
                .iter()
                .map(|(s, n)| pb::SatisfactionCount {
                    satisfaction: s.wire(),
                    count: *n,
                })
                .collect(),
            satisfaction_rate: Some(coverage_pb(&result.rate)),
            ignored: u32::try_from(result.ignored.len()).unwrap_or(u32::MAX),
        }))
    }
}
