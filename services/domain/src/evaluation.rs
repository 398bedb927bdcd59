//! Evaluation and reporting back: report-backs (述职), self-evaluation with voter scoring
//! (代表自评 + 选民测评), the quarterly bulletin (履职通报) and department appraisal (工作评议).

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, Reach, RecordEvent, Value, field, required,
    text_field,
};
use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::{DutyRecord, DutyRecordKind, PointWeights, distinct};
use crate::event::{Flag, Stamped, in_order};
use crate::org::OrgCode;
use crate::period::Period;
use crate::rates::{Rate, RateKind, report_back_coverage};
use crate::suggestion::Satisfaction;
use crate::{Error, Result, text};

/// A score from 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Score(u8);

impl Score {
    pub fn parse(field: &str, value: u32) -> Result<Self> {
        u8::try_from(value)
            .ok()
            .filter(|v| *v <= 100)
            .map(Self)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("must be 0 to 100, got {value}"),
                    format!("分数须在0至100之间，实际为{value}"),
                )
            })
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Score {
    type Error = Error;
    fn try_from(value: u8) -> Result<Self> {
        Self::parse("score", u32::from(value))
    }
}

impl From<Score> for u8 {
    fn from(s: Score) -> Self {
        s.0
    }
}

/// A deputy's report to the voters of the constituency (述职).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportBack {
    pub id: Uuid,
    pub deputy: Uuid,
    pub term: u8,
    pub on: NaiveDate,
    pub org: OrgCode,
    pub summary: String,
    pub voters_present: u32,
}

impl ReportBack {
    pub fn new(
        id: Uuid,
        deputy: Uuid,
        term: u8,
        on: NaiveDate,
        org: OrgCode,
        summary: &str,
        voters_present: u32,
    ) -> Result<Self> {
        if !(1..=99).contains(&term) {
            return Err(Error::invalid(
                "term",
                format!("must be 1 to 99, got {term}"),
                format!("届次须为1至99，实际为{term}"),
            ));
        }
        if voters_present > 100_000 {
            return Err(Error::invalid(
                "voters_present",
                "is implausibly large",
                "参加选民人数不合理",
            ));
        }
        Ok(Self {
            id,
            deputy,
            term,
            on,
            org,
            summary: text::bounded("summary", summary, 0, 5000)?,
            voters_present,
        })
    }
}

/// Report-back coverage for a term: serving deputies who reported ÷ serving deputies.
pub fn coverage(report_backs: &[ReportBack], serving: &BTreeSet<Uuid>, term: u8) -> Rate {
    let reported: BTreeSet<Uuid> = report_backs
        .iter()
        .filter(|r| r.term == term)
        .map(|r| r.deputy)
        .collect();
    report_back_coverage(serving, &reported)
}

/// A deputy's yearly evaluation as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationDraft {
    pub deputy: Uuid,
    pub year: i32,
    pub self_score: u32,
    pub self_summary: String,
    pub voter_scores: Vec<u32>,
}

/// Self-evaluation plus voter scoring for one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub deputy: Uuid,
    pub year: i32,
    pub self_score: Score,
    pub self_summary: String,
    pub voter_scores: Vec<Score>,
}

impl Evaluation {
    pub fn parse(draft: EvaluationDraft) -> Result<Self> {
        if draft.voter_scores.len() > 10_000 {
            return Err(Error::invalid(
                "voter_scores",
                "at most 10000 voter scores",
                "选民测评不得超过10000份",
            ));
        }
        Ok(Self {
            deputy: draft.deputy,
            year: draft.year,
            self_score: Score::parse("self_score", draft.self_score)?,
            self_summary: text::bounded("self_summary", &draft.self_summary, 0, 5000)?,
            voter_scores: draft
                .voter_scores
                .into_iter()
                .map(|s| Score::parse("voter_scores", s))
                .collect::<Result<_>>()?,
        })
    }

    /// The voters' average, or `None` when no voter scored.
    pub fn voter_average(&self) -> Option<f64> {
        (!self.voter_scores.is_empty()).then(|| {
            self.voter_scores
                .iter()
                .map(|s| f64::from(s.0))
                .sum::<f64>()
                / self.voter_scores.len() as f64
        })
    }
}

/// One deputy's line in a bulletin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulletinLine {
    pub deputy: Uuid,
    pub counts: BTreeMap<DutyRecordKind, u32>,
    pub points: u64,
}

/// The bulletin of a group's members for a period (usually a quarter): every member has a
/// line, even with no records, in member id order.
pub fn bulletin(
    records: &[DutyRecord],
    members: &BTreeSet<Uuid>,
    period: &Period,
    weights: &PointWeights,
) -> Vec<BulletinLine> {
    let mut lines: BTreeMap<Uuid, BulletinLine> = members
        .iter()
        .map(|d| {
            (
                *d,
                BulletinLine {
                    deputy: *d,
                    counts: BTreeMap::new(),
                    points: 0,
                },
            )
        })
        .collect();
    for r in distinct(records) {
        if !period.contains(r.on) {
            continue;
        }
        if let Some(line) = lines.get_mut(&r.deputy) {
            *line.counts.entry(r.kind).or_insert(0) += 1;
            line.points += u64::from(weights.get(r.kind));
        }
    }
    lines.into_values().collect()
}

/// A department appraised by deputies (工作评议).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appraisal {
    pub id: Uuid,
    pub department: String,
    pub org: OrgCode,
    pub year: i32,
}

impl Appraisal {
    pub fn new(id: Uuid, department: &str, org: OrgCode, year: i32) -> Result<Self> {
        Ok(Self {
            id,
            department: text::bounded("department", department, 2, 100)?,
            org,
            year,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppraisalVote {
    pub deputy: Uuid,
    pub satisfaction: Satisfaction,
}

/// A vote is the one event of an appraisal (`vote`).
impl RecordEvent for AppraisalVote {
    const KIND: &'static KindDef = &APPRAISAL;

    fn name(&self) -> &'static str {
        "vote"
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("deputy", Value::Ref(self.deputy)),
            ("satisfaction", Value::Text(self.satisfaction.code().into())),
        ]
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        (name == "vote").then_some(())?;
        Some(Self {
            deputy: p.id("deputy")?,
            satisfaction: Satisfaction::from_code(p.text("satisfaction")?)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppraisalResult {
    pub counts: BTreeMap<Satisfaction, u64>,
    pub rate: Rate,
    /// Votes of deputies not entitled to appraise.
    pub ignored: Vec<Flag>,
}

/// Counts an appraisal: each entitled deputy's latest vote (by stamp) counts.
pub fn appraisal_result(
    votes: &[Stamped<AppraisalVote>],
    entitled: &BTreeSet<Uuid>,
) -> AppraisalResult {
    let mut latest = BTreeMap::new();
    let mut ignored = Vec::new();
    for v in in_order(votes) {
        if entitled.contains(&v.event.deputy) {
            latest.insert(v.event.deputy, v.event.satisfaction);
        } else {
            ignored.push(Flag::new(
                v.stamp,
                "deputy is not entitled to appraise",
                "该代表不在测评范围内",
            ));
        }
    }
    let mut counts = BTreeMap::new();
    for s in latest.values() {
        *counts.entry(*s).or_insert(0) += 1;
    }
    let satisfied = latest.values().filter(|s| s.is_satisfied()).count() as u64;
    AppraisalResult {
        counts,
        rate: Rate::new(
            RateKind::AppraisalSatisfaction,
            satisfied,
            latest.len() as u64,
        ),
        ignored,
    }
}

/// A deputy's report to voters (述职).
pub const REPORT_BACK: KindDef = KindDef {
    id: 12,
    name: "report_back",
    governed_as: RecordKind::Evaluation,
    fields: &[
        field(2, "deputy", FieldType::Ref),
        field(3, "term", FieldType::Int),
        field(4, "on", FieldType::Date),
        text_field(5, "summary", 5000),
        field(6, "voters_present", FieldType::Int),
    ],
    sets: &[],
    events: &[],
    reach: Reach::Normal,
    fingerprints: &[0xf30e_742d_7684_c2ab],
};

/// A deputy's yearly evaluation (测评): self score and voters' scores.
pub const KIND: KindDef = KindDef {
    id: 13,
    name: "evaluation",
    governed_as: RecordKind::Evaluation,
    fields: &[
        field(2, "deputy", FieldType::Ref),
        field(3, "year", FieldType::Int),
        field(4, "self_score", FieldType::Int),
        text_field(5, "self_summary", 5000),
        // Comma-separated voter scores, 0–100 each.
        text_field(6, "voter_scores", 40_000),
    ],
    sets: &[],
    events: &[],
    reach: Reach::Normal,
    fingerprints: &[0xb20a_e0da_897f_b7e4],
};

/// A department appraisal (工作评议) and the deputies' votes on it.
pub const APPRAISAL: KindDef = KindDef {
    id: 14,
    name: "appraisal",
    governed_as: RecordKind::Evaluation,
    fields: &[
        text_field(2, "department", 100),
        field(3, "year", FieldType::Int),
    ],
    sets: &[],
    events: &[EventDef {
        id: 1,
        name: "vote",
        step: Step::Edit,
        payload: &[
            required(1, "deputy", FieldType::Ref),
            required(2, "satisfaction", FieldType::Text),
        ],
    }],
    reach: Reach::Normal,
    fingerprints: &[0x2595_b927_eb14_b965],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_round_trip_through_their_payloads() {
        for satisfaction in [
            Satisfaction::Satisfied,
            Satisfaction::BasicallySatisfied,
            Satisfaction::Dissatisfied,
        ] {
            let vote = AppraisalVote {
                deputy: Uuid::from_u128(3),
                satisfaction,
            };
            let payload = Payload(
                vote.encode()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect(),
            );
            assert!(APPRAISAL.event(vote.name()).is_some());
            assert_eq!(AppraisalVote::decode("vote", &payload), Some(vote));
            assert_eq!(AppraisalVote::decode("other", &payload), None);
        }
    }
    use crate::event::Stamp;
    use crate::org::code;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn coverage_per_term() {
        let rb = |deputy, term| {
            ReportBack::new(
                id(0),
                id(deputy),
                term,
                d(5, 1),
                code("370202001"),
                "述职",
                40,
            )
            .unwrap()
        };
        let reports = [rb(1, 19), rb(2, 19), rb(2, 19), rb(3, 18)];
        let serving: BTreeSet<Uuid> = (1..=4).map(id).collect();
        let c = coverage(&reports, &serving, 19);
        assert_eq!((c.numerator, c.denominator), (2, 4));
        assert_eq!(c.kind.name_zh(), "述职覆盖率");
        let e = ReportBack::new(id(0), id(1), 0, d(5, 1), code("370202001"), "", 0).unwrap_err();
        assert_eq!(e.field(), "term");
    }

    #[test]
    fn evaluation_scores() {
        let draft = EvaluationDraft {
            deputy: id(1),
            year: 2024,
            self_score: 90,
            self_summary: "全年参加活动12次".into(),
            voter_scores: vec![80, 90, 100],
        };
        let e = Evaluation::parse(draft.clone()).unwrap();
        assert_eq!(e.voter_average(), Some(90.0));
        let bad = Evaluation::parse(EvaluationDraft {
            self_score: 101,
            ..draft.clone()
        })
        .unwrap_err();
        assert_eq!(bad.field(), "self_score");
        assert!(bad.reason().contains("0 to 100"));
        let bad = Evaluation::parse(EvaluationDraft {
            voter_scores: vec![50, 300],
            ..draft.clone()
        })
        .unwrap_err();
        assert_eq!(bad.field(), "voter_scores");
        let none = Evaluation::parse(EvaluationDraft {
            voter_scores: vec![],
            ..draft
        })
        .unwrap();
        assert_eq!(none.voter_average(), None);
    }

    #[test]
    fn quarterly_bulletin_lists_every_member() {
        let rec = |n, deputy, kind, on| {
            let activity = (kind == DutyRecordKind::CheckIn).then_some(id(900));
            DutyRecord::new(id(n), id(deputy), kind, code("370202001"), on, activity).unwrap()
        };
        let records = [
            rec(1, 1, DutyRecordKind::CheckIn, d(2, 1)),
            rec(2, 1, DutyRecordKind::CheckIn, d(2, 1)),
            rec(3, 1, DutyRecordKind::Speech, d(3, 1)),
            rec(4, 1, DutyRecordKind::Speech, d(4, 1)),
            rec(5, 9, DutyRecordKind::Speech, d(3, 1)),
        ];
        let members: BTreeSet<Uuid> = [id(1), id(2)].into();
        let q1 = Period::quarter(2024, 1).unwrap();
        let lines = bulletin(&records, &members, &q1, &PointWeights::default());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].counts[&DutyRecordKind::CheckIn], 1);
        assert_eq!(lines[0].points, 5);
        assert!(lines[1].counts.is_empty());
    }

    #[test]
    fn appraisal_latest_vote_counts() {
        let v = |clock, deputy, satisfaction| {
            Stamped::new(
                Stamp::new(clock, 1, clock),
                AppraisalVote {
                    deputy: id(deputy),
                    satisfaction,
                },
            )
        };
        let votes = [
            v(1, 1, Satisfaction::Dissatisfied),
            v(2, 1, Satisfaction::Satisfied),
            v(3, 2, Satisfaction::BasicallySatisfied),
            v(4, 3, Satisfaction::Dissatisfied),
            v(5, 8, Satisfaction::Satisfied),
        ];
        let entitled: BTreeSet<Uuid> = (1..=3).map(id).collect();
        let r = appraisal_result(&votes, &entitled);
        assert_eq!((r.rate.numerator, r.rate.denominator), (2, 3));
        assert_eq!(r.ignored.len(), 1);
        assert_eq!(r.counts[&Satisfaction::Dissatisfied], 1);
        let e = Appraisal::new(id(1), "局", code("370202"), 2024).unwrap_err();
        assert_eq!(e.field(), "department");
    }
}
