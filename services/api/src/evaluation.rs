//! `renda.evaluation.v1.Evaluations`: report-backs (述职) with their coverage, and yearly
//! evaluations (代表自评 + 选民测评).

use std::collections::BTreeSet;

use renda_domain::authority::{RecordKind, Step};
use renda_domain::evaluation::{self as ev, EvaluationDraft};
use renda_proto::evaluation::v1 as pb;
use renda_replica::Value;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::core::*;
use crate::deputy::is_serving;
use crate::error::{Error, Result};
use crate::schema::kind;

pub(crate) struct Service(pub Shared);

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
            org.clone(),
            &req.summary,
            req.voters_present,
        )
        .map_err(Error::from)?;
        core.authorize(&caller, RecordKind::Evaluation, Step::Edit, &org)?;
        core.write(
            &caller,
            rb.id,
            kind::REPORT_BACK,
            vec![
                Pending::Put("org", Value::Org(rorg(&org)?)),
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
        let org = parse_org("org", &req.org, &core.node_org()?)?;
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
        core.authorize(&caller, RecordKind::Evaluation, Step::Edit, &org)?;
        let id = new_id();
        let scores: Vec<String> = e.voter_scores.iter().map(|s| s.get().to_string()).collect();
        core.write(
            &caller,
            id,
            kind::EVALUATION,
            vec![
                Pending::Put("org", Value::Org(rorg(&org)?)),
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
}
