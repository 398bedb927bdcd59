//! `renda.evaluation.v1.Evaluations`: report-backs (述职) with their coverage, yearly
//! evaluations (代表自评 + 选民测评), the quarterly bulletin (履职通报) and department
//! appraisals (工作评议).
//!
//! An appraisal belongs to the congress that holds it; its votes are events written at that
//! congress's node, and the serving deputies of its subtree are the ones entitled to vote. The
//! result counts each entitled deputy's latest vote (the domain's `appraisal_result`).

use std::collections::{BTreeMap, BTreeSet};

use renda_domain::activity::DutyRecordKind;
use renda_domain::authority::{RecordKind, Step};
use renda_domain::evaluation::{self as ev, AppraisalVote, EvaluationDraft};
use renda_domain::event::Stamped;
use renda_domain::period::Period;
use renda_domain::suggestion::Satisfaction;
use renda_proto::evaluation::v1 as pb;
use renda_replica::Value;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::activity::duty_records;
use crate::core::*;
use crate::deputy::is_serving;
use crate::error::{Error, Result};
use crate::schema::kind;
use crate::suggestion::parse_satisfaction;

pub(crate) struct Service(pub Shared);

fn duty_kind_name(kind: DutyRecordKind) -> &'static str {
    match kind {
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

fn satisfaction_name(s: Satisfaction) -> &'static str {
    match s {
        Satisfaction::Satisfied => "satisfied",
        Satisfaction::BasicallySatisfied => "basically_satisfied",
        Satisfaction::Dissatisfied => "dissatisfied",
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

    /// The votes recorded on an appraisal, in the domain's form.
    fn votes(&self, r: &renda_store::StoredRecord) -> Result<Vec<Stamped<AppraisalVote>>> {
        Ok(self
            .0
            .events(r)?
            .iter()
            .filter(|e| e.name == "vote")
            .filter_map(|e| {
                let satisfaction =
                    parse_satisfaction("satisfaction", &e.text("satisfaction")).ok()?;
                Some(Stamped::new(
                    e.stamp,
                    AppraisalVote {
                        deputy: e.id("deputy"),
                        satisfaction,
                    },
                ))
            })
            .collect())
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

#[tonic::async_trait]
impl pb::evaluations_server::Evaluations for Service {
    async fn record_report_back(
        &self,
        req: Request<pb::RecordReportBackRequest>,
    ) -> Result<Response<pb::ReportBack>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("summary", &req.summary, 5000)?;
        let deputy = core.get("deputy_id", &req.deputy_id, kind::DEPUTY).await?;
        let org = record_org(&deputy)?;
        let on = parse_day("on", &req.on)?;
        let term = u8::try_from(req.term).unwrap_or(u8::MAX);
        let rb = ev::ReportBack::new(
            new_id(),
            deputy.id.0,
            term,
            on,
            org,
            &req.summary,
            req.voters_present,
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
            on: day_string(rb.on),
            summary: rb.summary,
            voters_present: rb.voters_present,
        }))
    }

    async fn report_back_coverage(
        &self,
        req: Request<pb::ReportBackCoverageRequest>,
    ) -> Result<Response<pb::CoverageResponse>, Status> {
        let req = req.into_inner();
        let core = &self.0;
        let org = parse_org("org", &req.org, &core.default_org()?)?;
        core.require_reach("org", &org)?;
        let serving: BTreeSet<Uuid> = core
            .list(kind::DEPUTY, Some(&org))
            .await?
            .iter()
            .filter(|r| is_serving(r) && u32::try_from(int(r, "term")).ok() == Some(req.term))
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
            u8::try_from(req.term).unwrap_or(u8::MAX),
        );
        Ok(Response::new(pb::CoverageResponse {
            name_zh: rate.kind.name_zh().into(),
            numerator: rate.numerator,
            denominator: rate.denominator,
            percent: rate.percent(),
            definition_zh: rate.kind.definition_zh().into(),
        }))
    }

    async fn record_evaluation(
        &self,
        req: Request<pb::RecordEvaluationRequest>,
    ) -> Result<Response<pb::Evaluation>, Status> {
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("self_summary", &req.self_summary, 5000)?;
        let deputy = core.get("deputy_id", &req.deputy_id, kind::DEPUTY).await?;
        let org = record_org(&deputy)?;
        let e = ev::Evaluation::parse(EvaluationDraft {
            deputy: deputy.id.0,
            year: req.year,
            self_score: req.self_score,
            self_summary: req.self_summary,
            voter_scores: req.voter_scores,
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
        let req = req.into_inner();
        let core = &self.0;
        let period = Period::quarter(req.year, req.quarter).map_err(Error::from)?;
        let (members, title) = if req.group_id.trim().is_empty() {
            let org = parse_org("org", &req.org, &core.default_org()?)?;
            core.require_reach("org", &org)?;
            let tree = core.tree().await?;
            let unit = tree.require("org", &org).map_err(Error::from)?;
            (self.serving_in(&org).await?, unit.name.clone())
        } else {
            let group = core
                .get("group_id", &req.group_id, kind::DEPUTY_GROUP)
                .await?;
            (
                set(&group, "members").into_iter().collect(),
                text(&group, "name"),
            )
        };
        let records = duty_records(core).await?;
        let lines = ev::bulletin(&records, &members, &period, core.ctx.weights());
        let mut names: BTreeMap<Uuid, String> = BTreeMap::new();
        for d in &members {
            if let Ok(r) = core.get_id(*d, kind::DEPUTY).await {
                names.insert(*d, text(&r, "name"));
            }
        }
        Ok(Response::new(pb::BulletinResponse {
            title_zh: format!("{title}{}年第{}季度代表履职通报", req.year, req.quarter),
            lines: lines
                .into_iter()
                .map(|l| pb::BulletinLine {
                    deputy_id: l.deputy.to_string(),
                    name: names.remove(&l.deputy).unwrap_or_default(),
                    counts: l
                        .counts
                        .iter()
                        .map(|(k, n)| pb::DutyCount {
                            kind: duty_kind_name(*k).into(),
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        limit("department", &req.department, 400)?;
        if !(2000..=2200).contains(&req.year) {
            return Err(Error::invalid(
                "year",
                format!("must be 2000 to 2200, got {}", req.year),
                format!("年度须在2000至2200之间，实际为{}", req.year),
            )
            .into());
        }
        let org = core.node_org()?;
        let a =
            ev::Appraisal::new(new_id(), &req.department, org, req.year).map_err(Error::from)?;
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
        let caller = caller(&req)?;
        let req = req.into_inner();
        let core = &self.0;
        let satisfaction = parse_satisfaction("satisfaction", &req.satisfaction)?;
        let r = core
            .get("appraisal_id", &req.appraisal_id, kind::APPRAISAL)
            .await?;
        let deputy = core.get("deputy_id", &req.deputy_id, kind::DEPUTY).await?;
        let org = record_org(&r)?;
        core.authorize(&caller, RecordKind::Evaluation, Step::Edit, &org)
            .await?;
        if !is_serving(&deputy) || !org.contains(record_org(&deputy)?) {
            return Err(Error::precondition(
                "deputy_id",
                "only serving deputies of the appraising congress vote",
                "只有本级人大的在任代表可以参加测评",
            )
            .into());
        }
        core.write(
            &caller,
            r.id.0,
            kind::APPRAISAL,
            vec![Pending::Event(
                "vote",
                org,
                vec![
                    ("deputy", reference(deputy.id.0)),
                    (
                        "satisfaction",
                        Value::Text(satisfaction_name(satisfaction).into()),
                    ),
                ],
            )],
        )
        .await?;
        Ok(Response::new(self.appraisal_pb(
            &core.get_id(r.id.0, kind::APPRAISAL).await?,
        )?))
    }

    async fn appraisal_result(
        &self,
        req: Request<pb::AppraisalResultRequest>,
    ) -> Result<Response<pb::AppraisalResultResponse>, Status> {
        let core = &self.0;
        let r = core
            .get("appraisal_id", &req.get_ref().appraisal_id, kind::APPRAISAL)
            .await?;
        let entitled = self.serving_in(&record_org(&r)?).await?;
        let result = ev::appraisal_result(&self.votes(&r)?, &entitled);
        Ok(Response::new(pb::AppraisalResultResponse {
            counts: result
                .counts
                .iter()
                .map(|(s, n)| pb::SatisfactionCount {
                    satisfaction: satisfaction_name(*s).into(),
                    count: *n,
                })
                .collect(),
            satisfaction_rate: Some(pb::CoverageResponse {
                name_zh: result.rate.kind.name_zh().into(),
                numerator: result.rate.numerator,
                denominator: result.rate.denominator,
                percent: result.rate.percent(),
                definition_zh: result.rate.kind.definition_zh().into(),
            }),
            ignored: u32::try_from(result.ignored.len()).unwrap_or(u32::MAX),
        }))
    }
}
