//! Every rate the reports show, defined in one place with its Chinese name and definition.
//!
//! A rate keeps its numerator and denominator; its value is `None` when the denominator is
//! zero, never NaN.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::suggestion::{self, Satisfaction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RateKind {
    /// 答复率
    Reply,
    /// 满意率
    Satisfaction,
    /// 落实率
    Implementation,
    /// 述职覆盖率
    ReportBackCoverage,
    /// 工作评议满意度
    AppraisalSatisfaction,
}

impl RateKind {
    pub const fn name_zh(self) -> &'static str {
        match self {
            Self::Reply => "答复率",
            Self::Satisfaction => "满意率",
            Self::Implementation => "落实率",
            Self::ReportBackCoverage => "述职覆盖率",
            Self::AppraisalSatisfaction => "工作评议满意度",
        }
    }

    pub const fn name_en(self) -> &'static str {
        match self {
            Self::Reply => "reply rate",
            Self::Satisfaction => "satisfaction rate",
            Self::Implementation => "implementation rate",
            Self::ReportBackCoverage => "report-back coverage",
            Self::AppraisalSatisfaction => "appraisal satisfaction",
        }
    }

    /// The definition printed under a report's table.
    pub const fn definition_zh(self) -> &'static str {
        match self {
            Self::Reply => {
                "已答复件数 ÷ 已交办件数。交办后撤回或并案的不计；分办件须各承办单位均已答复、\
                 主协办件须主办单位已答复，方计为已答复。"
            }
            Self::Satisfaction => {
                "(满意件数 + 基本满意件数) ÷ 已测评件数。每件以最近一轮测评中领衔代表的评价为准，\
                 领衔代表未测评的，以附议代表中最低的评价为准。"
            }
            Self::Implementation => {
                "已解决件数 ÷ 已答复件数。已解决指答复为A类，或答复为B类且其后已落实。\
                 分办件以各承办单位中最低的答复类别为准。"
            }
            Self::ReportBackCoverage => "本届内已述职的在任代表人数 ÷ 在任代表人数。",
            Self::AppraisalSatisfaction => {
                "(满意票数 + 基本满意票数) ÷ 有效测评票数；每名代表以其最后一次测评为准。"
            }
        }
    }

    pub const fn definition_en(self) -> &'static str {
        match self {
            Self::Reply => {
                "items replied ÷ items assigned; items withdrawn or merged after assignment are \
                 not counted; a split item is replied when every unit has replied, a lead-with-\
                 assisting item when the lead unit has"
            }
            Self::Satisfaction => {
                "(satisfied + basically satisfied) ÷ items evaluated; an item's evaluation is the \
                 lead deputy's in the latest evaluated round, or the least satisfied co-signer's \
                 if the lead has not evaluated"
            }
            Self::Implementation => {
                "items solved ÷ items replied; solved means category A, or category B later \
                 implemented; a split item takes its least favourable unit category"
            }
            Self::ReportBackCoverage => {
                "serving deputies who reported back in the term ÷ serving deputies"
            }
            Self::AppraisalSatisfaction => {
                "(satisfied + basically satisfied) ÷ valid appraisal votes, each deputy's latest \
                 vote counting"
            }
        }
    }
}

/// A rate with its counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub kind: RateKind,
    pub numerator: u64,
    pub denominator: u64,
}

impl Rate {
    pub const fn new(kind: RateKind, numerator: u64, denominator: u64) -> Self {
        Self {
            kind,
            numerator,
            denominator,
        }
    }

    /// The ratio, or `None` when nothing was counted.
    pub fn value(&self) -> Option<f64> {
        (self.denominator != 0).then(|| self.numerator as f64 / self.denominator as f64)
    }

    /// The ratio in percent, or `None` when nothing was counted.
    pub fn percent(&self) -> Option<f64> {
        self.value().map(|v| v * 100.0)
    }
}

/// The three suggestion rates of a set of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestionRates {
    pub reply: Rate,
    pub satisfaction: Rate,
    pub implementation: Rate,
}

/// Computes 答复率, 满意率 and 落实率 over folded items, each paired with its lead deputy.
pub fn suggestion_rates(items: &[(&suggestion::State, Uuid)]) -> SuggestionRates {
    let assigned: Vec<_> = items
        .iter()
        .filter(|(s, _)| s.counts_as_assigned())
        .collect();
    let replied: Vec<_> = assigned.iter().filter(|(s, _)| s.replied).collect();
    let evaluated: Vec<Satisfaction> = replied
        .iter()
        .filter_map(|(s, lead)| s.satisfaction(lead))
        .collect();
    let count = |n: usize| n as u64;
    SuggestionRates {
        reply: Rate::new(RateKind::Reply, count(replied.len()), count(assigned.len())),
        satisfaction: Rate::new(
            RateKind::Satisfaction,
            count(evaluated.iter().filter(|s| s.is_satisfied()).count()),
            count(evaluated.len()),
        ),
        implementation: Rate::new(
            RateKind::Implementation,
            count(replied.iter().filter(|(s, _)| s.is_solved()).count()),
            count(replied.len()),
        ),
    }
}

/// 述职覆盖率: serving deputies who reported back ÷ serving deputies.
pub fn report_back_coverage(serving: &BTreeSet<Uuid>, reported: &BTreeSet<Uuid>) -> Rate {
    Rate::new(
        RateKind::ReportBackCoverage,
        serving.intersection(reported).count() as u64,
        serving.len() as u64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Stamp, Stamped};
    use crate::suggestion::{Assignment, Draft, Event, Kind, ReplyCategory, Suggestion, fold};
    use chrono::NaiveDate;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default()
    }

    fn item(n: u128, tail: Vec<Event>) -> (suggestion::State, Uuid) {
        let lead = Uuid::from_u128(100);
        let sug = Suggestion::parse(
            Draft {
                kind: Kind::Suggestion,
                congress: "370202".into(),
                title: "关于改善公交线路的建议".into(),
                body: "建议增设社区公交线路，方便居民出行。".into(),
                lead_deputy: lead,
                co_signers: vec![],
            },
            Uuid::from_u128(n),
        )
        .unwrap();
        let mut events = vec![
            Event::Submitted { at: d(1, 1) },
            Event::ReviewPassed { at: d(1, 2) },
            Event::Assigned {
                mode: Assignment::Single(Uuid::from_u128(1)),
                at: d(1, 3),
            },
        ];
        events.extend(tail);
        let stamped: Vec<_> = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| Stamped::new(Stamp::new(i as u64, 1, i as u64), e))
            .collect();
        (fold(&sug, &stamped), lead)
    }

    fn replied(category: ReplyCategory) -> Event {
        Event::Replied {
            unit: Uuid::from_u128(1),
            category,
            at: d(2, 1),
        }
    }

    fn evaluated(satisfaction: Satisfaction) -> Event {
        Event::Evaluated {
            deputy: Uuid::from_u128(100),
            satisfaction,
            at: d(2, 2),
        }
    }

    #[test]
    fn rates_follow_their_definitions() {
        let items = [
            item(
                1,
                vec![
                    replied(ReplyCategory::A),
                    evaluated(Satisfaction::Satisfied),
                ],
            ),
            item(
                2,
                vec![
                    replied(ReplyCategory::B),
                    evaluated(Satisfaction::Dissatisfied),
                ],
            ),
            item(
                3,
                vec![
                    replied(ReplyCategory::B),
                    Event::Implemented { at: d(3, 1) },
                    evaluated(Satisfaction::BasicallySatisfied),
                ],
            ),
            item(4, vec![replied(ReplyCategory::C)]),
            item(5, vec![]),
        ];
        let refs: Vec<_> = items.iter().map(|(s, l)| (s, *l)).collect();
        let r = suggestion_rates(&refs);
        assert_eq!((r.reply.numerator, r.reply.denominator), (4, 5));
        assert_eq!(
            (r.satisfaction.numerator, r.satisfaction.denominator),
            (2, 3)
        );
        assert_eq!(
            (r.implementation.numerator, r.implementation.denominator),
            (2, 4)
        );
        assert_eq!(r.implementation.percent(), Some(50.0));
        assert_eq!(r.reply.kind.name_zh(), "答复率");
        assert!(r.implementation.kind.definition_zh().contains("A类"));
    }

    #[test]
    fn zero_denominator_is_none() {
        let r = suggestion_rates(&[]);
        assert_eq!(r.reply.value(), None);
        assert_eq!(r.satisfaction.percent(), None);
        let c = report_back_coverage(&BTreeSet::new(), &BTreeSet::new());
        assert_eq!(c.value(), None);
    }

    #[test]
    fn coverage_counts_only_serving_deputies() {
        let serving: BTreeSet<Uuid> = (1..=4).map(Uuid::from_u128).collect();
        let reported: BTreeSet<Uuid> = [1, 2, 9].into_iter().map(Uuid::from_u128).collect();
        let c = report_back_coverage(&serving, &reported);
        assert_eq!(c.value(), Some(0.5));
        for kind in [
            RateKind::Reply,
            RateKind::Satisfaction,
            RateKind::Implementation,
            RateKind::ReportBackCoverage,
            RateKind::AppraisalSatisfaction,
        ] {
            assert!(!kind.definition_en().is_empty() && !kind.name_en().is_empty());
        }
    }
}
