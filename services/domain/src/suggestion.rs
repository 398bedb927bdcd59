//! Motions and suggestions (议案、建议) from submission to closing.
//!
//! # The status rule
//!
//! A suggestion's steps are immutable [`Event`]s. [`fold`] sorts them by their stamp
//! `(hybrid clock, origin actor, seq)`, drops redeliveries of the same stamp, and applies each
//! in turn to the state built so far. A step that is not allowed in that state is **kept in the
//! history and flagged** (`State::flags`), never applied and never dropped; a person resolves
//! it. Because the order is a total order on the set of events, every node that holds the same
//! events computes the same state, whatever order they arrived in.
//!
//! The steps and when each applies:
//!
//! | step | applies when | effect |
//! |---|---|---|
//! | `Submitted` | drafted | submitted |
//! | `RevisionRequested` | submitted | revision requested |
//! | `Revised` | revision requested | submitted again |
//! | `ReviewPassed` | submitted | awaiting assignment |
//! | `Withdrawn` | before the first complete reply | withdrawn (final) |
//! | `MergedInto(id)` | submitted or reviewed, not yet assigned | merged (final) |
//! | `Assigned` | reviewed, returned, or assigned with no reply yet in this round | the assignment is replaced and its clock restarts |
//! | `Returned{unit}` | the unit holds the assignment, has not replied, and it is within 10 days of the assignment | the assignment is void; awaiting reassignment |
//! | `ExtensionApproved` | assigned, first round | reply due in 6 months instead of 3 |
//! | `SupervisionSet` | submitted and not final | the latest mode holds |
//! | `AssistingViewSent{unit}` | the unit is an assisting unit of the assignment | recorded |
//! | `Replied{unit}` | handling, and the unit is a replying unit (single, split or lead) of the current assignment | the unit's latest reply in the round counts; when every replying unit has replied the item is replied |
//! | `Evaluated{deputy}` | replied, by the lead deputy or a co-signer | the deputy's latest evaluation in the round counts |
//! | `SecondRound` | evaluated 不满意 in the first round | second round: the same units reply again within 1 month |
//! | `Implemented` | replied with category B | counts as solved |
//! | `Closed` | replied (and not waiting for a second-round reply) | closed (final) |
//!
//! Conflicts between steps taken apart, and how they end:
//!
//! - A reply from a unit that no longer holds the assignment (it was returned and reassigned
//!   elsewhere while the unit wrote its reply offline) is kept in `State::replies` with
//!   `counted: false` and flagged; it counts toward nothing.
//! - If the reply sorts before the return, the reply counts and the return is flagged ("returned
//!   after replying"), and so is a reassignment after a complete reply.
//! - A return later than 10 days after the assignment is flagged and ignored.
//! - A withdrawal or merge concurrent with later steps ends the item: every step sorting after
//!   it is flagged.
//! - An evaluation by someone who did not sign is flagged.
//!
//! With several replying units (分办) the item's category is the least favourable of the
//! units' categories (A best, D worst). The item's satisfaction is the lead deputy's latest
//! evaluation in the latest evaluated round, or if the lead has not evaluated, the least
//! satisfied co-signer's.

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, PayloadDef, Reach, RecordEvent, Value, field,
    id_list, optional, required, text_field,
};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Flag, Stamp, Stamped, in_order};
use crate::org::{Level, OrgCode};
use crate::person::rename;
use crate::{Error, Result, text};

/// Whether the item is a motion (议案) or a suggestion, criticism or opinion (建议).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Motion,
    Suggestion,
}

impl Kind {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Motion => "议案",
            Self::Suggestion => "建议",
        }
    }
}

/// How many deputies must jointly sign a motion at a congress of this level (lead included):
/// 10 at a city or county congress, 5 at a township congress. Villages hold no congress.
pub const fn motion_minimum(level: Level) -> Option<usize> {
    match level {
        Level::City | Level::County => Some(10),
        Level::Township => Some(5),
        Level::Village => None,
    }
}

/// A motion or suggestion as entered, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    pub kind: Kind,
    /// The org unit whose congress receives it.
    pub congress: String,
    pub title: String,
    pub body: String,
    pub lead_deputy: Uuid,
    pub co_signers: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    pub id: Uuid,
    pub kind: Kind,
    pub congress: OrgCode,
    pub title: String,
    pub body: String,
    pub lead_deputy: Uuid,
    pub co_signers: BTreeSet<Uuid>,
}

impl Suggestion {
    pub fn parse(draft: Draft, id: Uuid) -> Result<Self> {
        let congress = crate::org::parse(&draft.congress).map_err(|e| rename(e, "congress"))?;
        let title = text::bounded("title", &draft.title, 4, 100)?;
        let body = text::bounded("body", &draft.body, 10, 20_000)?;
        if draft.co_signers.contains(&draft.lead_deputy) {
            return Err(Error::invalid(
                "co_signers",
                "the lead deputy cannot also co-sign",
                "领衔代表不能同时作为附议代表",
            ));
        }
        let co_signers: BTreeSet<Uuid> = draft.co_signers.into_iter().collect();
        if co_signers.len() > 500 {
            return Err(Error::invalid(
                "co_signers",
                "at most 500 co-signers",
                "附议代表不得超过500人",
            ));
        }
        let level = congress.level();
        let minimum = motion_minimum(level).ok_or_else(|| {
            Error::invalid(
                "congress",
                "a village holds no congress",
                "村(社区)不召开人民代表大会",
            )
        })?;
        let signers = co_signers.len() + 1;
        if draft.kind == Kind::Motion && signers < minimum {
            let (level_en, level_zh) = match level {
                Level::Township => ("township", "乡镇"),
                _ => ("city or county", "市、县"),
            };
            return Err(Error::invalid(
                "co_signers",
                format!(
                    "a motion at a {level_en} congress needs at least {minimum} deputies \
                     jointly (lead included), got {signers}"
                ),
                format!(
                    "{level_zh}人民代表大会的议案须由{minimum}名以上代表联名(含领衔代表)，现有{signers}名"
                ),
            ));
        }
        Ok(Self {
            id,
            kind: draft.kind,
            congress,
            title,
            body,
            lead_deputy: draft.lead_deputy,
            co_signers,
        })
    }

    /// Checks who signed it, given what this node knows of each signer (`seat` answers `None`
    /// for an id no deputy here has). Every signer must be a known deputy; every signer of a
    /// motion a serving deputy of the congress receiving it (the law's 10 or 5 deputies
    /// jointly are deputies of that congress), so a county motion cannot be made up of
    /// invented ids or led by a township deputy. The first signer at fault is named: the lead
    /// as `lead_deputy`, a co-signer as `co_signers`.
    pub fn check_signers(&self, seat: impl Fn(&Uuid) -> Option<crate::person::Seat>) -> Result<()> {
        let signers = std::iter::once((&self.lead_deputy, "lead_deputy", "领衔代表")).chain(
            self.co_signers
                .iter()
                .map(|c| (c, "co_signers", "附议代表")),
        );
        for (id, field, role_zh) in signers {
            let Some(seat) = seat(id) else {
                return Err(Error::invalid(
                    field,
                    format!("no deputy {id} is registered here"),
                    format!("{role_zh}{id}不存在"),
                ));
            };
            if self.kind == Kind::Motion && !seat.sits_in(self.congress) {
                let level_zh = match self.congress.level() {
                    Level::City => "市",
                    Level::County => "县(区)",
                    _ => "乡镇",
                };
                return Err(Error::invalid(
                    field,
                    format!(
                        "deputy {id} is not a serving deputy of the congress of {}",
                        self.congress
                    ),
                    format!(
                        "{role_zh}{}不是本{level_zh}人民代表大会的在任代表，不能联名提出议案",
                        seat.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the deputy signed it (as lead or co-signer).
    pub fn is_signer(&self, deputy: &Uuid) -> bool {
        self.lead_deputy == *deputy || self.co_signers.contains(deputy)
    }
}

/// How an item is assigned to handling units (交办).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Assignment {
    /// One unit handles it.
    Single(Uuid),
    /// 分办: several units, each replying for its part.
    Split(BTreeSet<Uuid>),
    /// 主办 + 协办: the lead replies; assisting units send their views to the lead.
    LeadWithAssisting {
        lead: Uuid,
        assisting: BTreeSet<Uuid>,
    },
}

impl Assignment {
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Split(units) if units.len() < 2 => Err(Error::invalid(
                "mode",
                "a split assignment needs at least two units",
                "分办须至少指定两个承办单位",
            )),
            Self::LeadWithAssisting { assisting, .. } if assisting.is_empty() => {
                Err(Error::invalid(
                    "mode",
                    "a lead-with-assisting assignment needs at least one assisting unit",
                    "主协办须至少指定一个协办单位",
                ))
            }
            Self::LeadWithAssisting { lead, assisting } if assisting.contains(lead) => {
                Err(Error::invalid(
                    "mode",
                    "the lead unit cannot also assist",
                    "主办单位不能同时作为协办单位",
                ))
            }
            _ => Ok(()),
        }
    }

    /// The units whose replies the deputies receive.
    pub fn replying_units(&self) -> BTreeSet<Uuid> {
        match self {
            Self::Single(u) => [*u].into(),
            Self::Split(units) => units.clone(),
            Self::LeadWithAssisting { lead, .. } => [*lead].into(),
        }
    }

    pub fn assisting_units(&self) -> BTreeSet<Uuid> {
        match self {
            Self::LeadWithAssisting { assisting, .. } => assisting.clone(),
            _ => BTreeSet::new(),
        }
    }

    pub fn units(&self) -> BTreeSet<Uuid> {
        let mut all = self.replying_units();
        all.extend(self.assisting_units());
        all
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SupervisionMode {
    Key,
    Leader,
    Sector,
    Tracking,
    DeputyParticipating,
}

impl SupervisionMode {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Key => "重点督办",
            Self::Leader => "领导督办",
            Self::Sector => "归口督办",
            Self::Tracking => "跟踪督办",
            Self::DeputyParticipating => "代表参与督办",
        }
    }
}

/// The category of a reply; later letters are less favourable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReplyCategory {
    A,
    B,
    C,
    D,
}

impl ReplyCategory {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::A => "A类(已解决或采纳)",
            Self::B => "B类(正在解决或列入计划)",
            Self::C => "C类(因条件限制暂不能解决，留作参考)",
            Self::D => "D类(仅作说明)",
        }
    }
}

/// A deputy's evaluation of a reply; later variants are less satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Satisfaction {
    Satisfied,
    BasicallySatisfied,
    Dissatisfied,
}

impl Satisfaction {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Satisfied => "满意",
            Self::BasicallySatisfied => "基本满意",
            Self::Dissatisfied => "不满意",
        }
    }

    pub const fn is_satisfied(self) -> bool {
        !matches!(self, Self::Dissatisfied)
    }
}

/// A step in the life of a motion or suggestion. Dates are business dates entered by people;
/// the order of events is their stamp, not these dates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Event {
    Submitted {
        at: NaiveDate,
    },
    ReviewPassed {
        at: NaiveDate,
    },
    RevisionRequested {
        reason: String,
        at: NaiveDate,
    },
    Revised {
        at: NaiveDate,
    },
    Withdrawn {
        at: NaiveDate,
    },
    MergedInto {
        target: Uuid,
        at: NaiveDate,
    },
    Assigned {
        mode: Assignment,
        at: NaiveDate,
    },
    Returned {
        unit: Uuid,
        at: NaiveDate,
    },
    ExtensionApproved {
        at: NaiveDate,
    },
    SupervisionSet {
        mode: SupervisionMode,
        at: NaiveDate,
    },
    AssistingViewSent {
        unit: Uuid,
        at: NaiveDate,
    },
    Replied {
        unit: Uuid,
        category: ReplyCategory,
        at: NaiveDate,
    },
    Evaluated {
        deputy: Uuid,
        satisfaction: Satisfaction,
        at: NaiveDate,
    },
    SecondRound {
        at: NaiveDate,
    },
    Implemented {
        at: NaiveDate,
    },
    Closed {
        at: NaiveDate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    Drafted,
    Submitted,
    RevisionRequested,
    ReviewPassed,
    /// Returned by a unit; awaiting reassignment.
    Returned,
    Assigned,
    Replied,
    Evaluated,
    /// 二次交办: waiting for the second-round reply.
    SecondRound,
    Closed,
    Withdrawn,
    Merged,
}

impl Status {
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Withdrawn | Self::Merged)
    }

    /// Whether units are expected to reply now.
    pub const fn is_handling(self) -> bool {
        matches!(self, Self::Assigned | Self::SecondRound)
    }
}

/// A reply as the fold saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub stamp: Stamp,
    pub unit: Uuid,
    pub category: ReplyCategory,
    pub at: NaiveDate,
    pub round: u8,
    /// False when the unit did not hold the assignment (the reply is flagged too).
    pub counted: bool,
}

/// An evaluation as the fold saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub stamp: Stamp,
    pub deputy: Uuid,
    pub satisfaction: Satisfaction,
    pub at: NaiveDate,
    pub round: u8,
}

/// The folded state of one motion or suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub id: Uuid,
    pub status: Status,
    /// The assignment now in force; `None` before assignment and after a return.
    pub assignment: Option<Assignment>,
    /// The date the current assignment was made (the return window runs from it).
    pub assigned_at: Option<NaiveDate>,
    /// The date the reply clock of the current round started.
    pub clock_start: Option<NaiveDate>,
    pub ever_assigned: bool,
    pub extension: bool,
    pub supervision: Option<SupervisionMode>,
    /// 1, or 2 after a second round.
    pub round: u8,
    /// True once every replying unit has replied in some round.
    pub replied: bool,
    pub replies: Vec<Reply>,
    pub assisting_views: BTreeSet<Uuid>,
    pub evaluations: Vec<Evaluation>,
    pub implemented: bool,
    pub merged_into: Option<Uuid>,
    /// Whether review ever sent it back for revision (退回修改), revised since or not: a year
    /// report counts the items returned for revision (Qingdao 2022: 117).
    pub revision_requested: bool,
    pub flags: Vec<Flag>,
}

impl State {
    fn new(id: Uuid) -> Self {
        Self {
            id,
            status: Status::Drafted,
            assignment: None,
            assigned_at: None,
            clock_start: None,
            ever_assigned: false,
            extension: false,
            supervision: None,
            round: 1,
            replied: false,
            replies: Vec::new(),
            assisting_views: BTreeSet::new(),
            evaluations: Vec::new(),
            implemented: false,
            merged_into: None,
            revision_requested: false,
            flags: Vec::new(),
        }
    }

    /// The counted replies of a round, the latest per unit.
    pub fn replies_in(&self, round: u8) -> BTreeMap<Uuid, ReplyCategory> {
        self.replies
            .iter()
            .filter(|r| r.counted && r.round == round)
            .map(|r| (r.unit, r.category))
            .collect()
    }

    /// The replying units of the current assignment that have not replied in this round.
    pub fn pending_units(&self) -> BTreeSet<Uuid> {
        let replied = self.replies_in(self.round);
        self.assignment
            .as_ref()
            .map(|a| {
                a.replying_units()
                    .into_iter()
                    .filter(|u| !replied.contains_key(u))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The item's category: the least favourable unit category of the latest round with a
    /// complete reply.
    pub fn category(&self) -> Option<ReplyCategory> {
        (1..=self.round)
            .rev()
            .map(|round| self.replies_in(round))
            .find(|r| !r.is_empty())
            .and_then(|r| r.values().max().copied())
            .filter(|_| self.replied)
    }

    /// The item's satisfaction; see the module documentation.
    pub fn satisfaction(&self, lead_deputy: &Uuid) -> Option<Satisfaction> {
        let round = self.evaluations.iter().map(|e| e.round).max()?;
        let latest: BTreeMap<Uuid, Satisfaction> = self
            .evaluations
            .iter()
            .filter(|e| e.round == round)
            .map(|e| (e.deputy, e.satisfaction))
            .collect();
        latest
            .get(lead_deputy)
            .copied()
            .or_else(|| latest.values().max().copied())
    }

    /// Solved: category A, or category B later implemented.
    pub fn is_solved(&self) -> bool {
        match self.category() {
            Some(ReplyCategory::A) => true,
            Some(ReplyCategory::B) => self.implemented,
            _ => false,
        }
    }

    /// Whether the item counts as assigned for the rates: assigned at some point and neither
    /// withdrawn nor merged.
    pub fn counts_as_assigned(&self) -> bool {
        self.ever_assigned && !matches!(self.status, Status::Withdrawn | Status::Merged)
    }

    /// The deadlines of the current assignment, if there is one.
    pub fn deadlines(&self) -> Option<Deadlines> {
        let assigned_at = self.assigned_at?;
        let clock_start = self.clock_start.unwrap_or(assigned_at);
        let reply_months = match (self.round, self.extension) {
            (1, false) => 3,
            (1, true) => 6,
            _ => 1,
        };
        let assisting = self
            .assignment
            .as_ref()
            .is_some_and(|a| !a.assisting_units().is_empty());
        Some(Deadlines {
            reply_due: clock_start.checked_add_months(Months::new(reply_months))?,
            return_until: assigned_at.checked_add_days(Days::new(RETURN_DAYS))?,
            assisting_view_due: if assisting {
                Some(assigned_at.checked_add_months(Months::new(1))?)
            } else {
                None
            },
        })
    }
}

/// Days after assignment within which a unit may return an item.
pub const RETURN_DAYS: u64 = 10;

/// When things are due for an assigned item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// 3 months after assignment (6 with an approved extension); 1 month in a second round.
    pub reply_due: NaiveDate,
    /// A unit may return the item until this date (inclusive).
    pub return_until: NaiveDate,
    /// An assisting unit's view is due at the lead unit 1 month after assignment.
    pub assisting_view_due: Option<NaiveDate>,
}

/// Folds a suggestion's events into its state; see the module documentation for the rules.
pub fn fold(suggestion: &Suggestion, events: &[Stamped<Event>]) -> State {
    let mut s = State::new(suggestion.id);
    for stamped in in_order(events) {
        if let Err(e) = apply(suggestion, &mut s, stamped) {
            if let Event::Replied { unit, category, at } = &stamped.event {
                s.replies.push(Reply {
                    stamp: stamped.stamp,
                    unit: *unit,
                    category: *category,
                    at: *at,
                    round: s.round,
                    counted: false,
                });
            }
            s.flags.push(Flag::new(
                stamped.stamp,
                format!("{}: {}", e.field(), e.reason()),
                e.reason_zh(),
            ));
        }
    }
    s
}

/// Checks a new step against the current state before it is recorded. The refusal is the
/// one a person sees; the fold applies the very same rule to steps that arrive by sync.
pub fn check(suggestion: &Suggestion, state: &State, event: &Event) -> Result<()> {
    let mut trial = state.clone();
    let stamp = Stamp::new(u64::MAX, u64::MAX, u64::MAX);
    apply(suggestion, &mut trial, &Stamped::new(stamp, event.clone()))
}

fn not_in(step: &str, step_zh: &str, status: Status) -> Error {
    Error::precondition(
        "status",
        format!("cannot {step} while the item is {status:?}"),
        format!("当前状态下不能{step_zh}"),
    )
}

fn apply(sug: &Suggestion, s: &mut State, stamped: &Stamped<Event>) -> Result<()> {
    use Status as S;
    if s.status.is_final() {
        return Err(Error::precondition(
            "status",
            format!("the item is already {:?}", s.status),
            "该件已办结、撤回或并案",
        ));
    }
    match &stamped.event {
        Event::Submitted { .. } => {
            if s.status != S::Drafted {
                return Err(not_in("submit", "提交", s.status));
            }
            s.status = S::Submitted;
        }
        Event::RevisionRequested { reason, .. } => {
            text::bounded("reason", reason, 2, 500)?;
            if s.status != S::Submitted {
                return Err(not_in("request a revision", "退回修改", s.status));
            }
            s.status = S::RevisionRequested;
            s.revision_requested = true;
        }
        Event::Revised { .. } => {
            if s.status != S::RevisionRequested {
                return Err(not_in("revise", "修改", s.status));
            }
            s.status = S::Submitted;
        }
        Event::ReviewPassed { .. } => {
            if s.status != S::Submitted {
                return Err(not_in("pass review", "审核通过", s.status));
            }
            s.status = S::ReviewPassed;
        }
        Event::Withdrawn { .. } => {
            if s.replied || s.status == S::Drafted {
                return Err(not_in("withdraw", "撤回", s.status));
            }
            s.status = S::Withdrawn;
        }
        Event::MergedInto { target, .. } => {
            if *target == s.id {
                return Err(Error::invalid(
                    "target",
                    "an item cannot be merged into itself",
                    "不能与自身并案",
                ));
            }
            if !matches!(s.status, S::Submitted | S::ReviewPassed) {
                return Err(not_in("merge", "并案", s.status));
            }
            s.status = S::Merged;
            s.merged_into = Some(*target);
        }
        Event::Assigned { mode, at } => {
            mode.validate()?;
            let no_reply_yet = s.replies_in(s.round).is_empty();
            let allowed = match s.status {
                S::ReviewPassed | S::Returned => true,
                S::Assigned | S::SecondRound => no_reply_yet,
                _ => false,
            };
            if !allowed {
                return Err(not_in("assign", "交办", s.status));
            }
            s.assignment = Some(mode.clone());
            s.assigned_at = Some(*at);
            s.clock_start = Some(*at);
            s.ever_assigned = true;
            s.extension = false;
            s.assisting_views.clear();
            if s.status != S::SecondRound {
                s.status = S::Assigned;
            }
        }
        Event::Returned { unit, at } => {
            let holds = s
                .assignment
                .as_ref()
                .is_some_and(|a| a.units().contains(unit));
            if s.status != S::Assigned || !holds {
                return Err(Error::precondition(
                    "unit",
                    "the unit does not hold the assignment",
                    "该单位未承办此件，不能退办",
                ));
            }
            if s.replies_in(s.round).contains_key(unit) {
                return Err(Error::precondition(
                    "unit",
                    "the unit has already replied",
                    "该单位已答复，不能退办",
                ));
            }
            let until = s.deadlines().map(|d| d.return_until);
            let from = s.assigned_at;
            if from.is_some_and(|f| *at < f) || until.is_none_or(|u| *at > u) {
                return Err(Error::precondition(
                    "at",
                    format!("a return is allowed only within {RETURN_DAYS} days of assignment"),
                    format!("只能在交办之日起{RETURN_DAYS}日内退办"),
                ));
            }
            s.assignment = None;
            s.assigned_at = None;
            s.clock_start = None;
            s.assisting_views.clear();
            s.status = S::Returned;
        }
        Event::ExtensionApproved { .. } => {
            if s.status != S::Assigned || s.round != 1 {
                return Err(not_in("extend the reply deadline", "延期答复", s.status));
            }
            s.extension = true;
        }
        Event::SupervisionSet { mode, .. } => {
            if s.status == S::Drafted {
                return Err(not_in("set supervision", "确定督办方式", s.status));
            }
            s.supervision = Some(*mode);
        }
        Event::AssistingViewSent { unit, .. } => {
            let assists = s
                .assignment
                .as_ref()
                .is_some_and(|a| a.assisting_units().contains(unit));
            if !assists {
                return Err(Error::precondition(
                    "unit",
                    "the unit is not an assisting unit of the assignment",
                    "该单位不是本件的协办单位",
                ));
            }
            s.assisting_views.insert(*unit);
        }
        Event::Replied { unit, category, at } => {
            let replies_now = s
                .assignment
                .as_ref()
                .is_some_and(|a| a.replying_units().contains(unit));
            // A unit may correct its reply until the deputies have evaluated it.
            let open = s.status.is_handling() || s.status == S::Replied;
            if !open || !replies_now {
                return Err(Error::precondition(
                    "unit",
                    "the unit does not hold the assignment now; its reply is kept but not counted",
                    "该单位当前未承办此件，答复留存但不计入",
                ));
            }
            s.replies.push(Reply {
                stamp: stamped.stamp,
                unit: *unit,
                category: *category,
                at: *at,
                round: s.round,
                counted: true,
            });
            if s.pending_units().is_empty() {
                s.replied = true;
                s.status = S::Replied;
            }
        }
        Event::Evaluated {
            deputy,
            satisfaction,
            at,
        } => {
            if !sug.is_signer(deputy) {
                return Err(Error::forbidden(
                    "deputy",
                    "only the lead deputy or a co-signer may evaluate the reply",
                    "只有领衔代表或附议代表可以测评答复",
                ));
            }
            if !matches!(s.status, S::Replied | S::Evaluated) {
                return Err(not_in("evaluate", "测评", s.status));
            }
            s.evaluations.push(Evaluation {
                stamp: stamped.stamp,
                deputy: *deputy,
                satisfaction: *satisfaction,
                at: *at,
                round: s.round,
            });
            s.status = S::Evaluated;
        }
        Event::SecondRound { at } => {
            let dissatisfied = s.satisfaction(&sug.lead_deputy) == Some(Satisfaction::Dissatisfied);
            if s.status != S::Evaluated || s.round != 1 || !dissatisfied {
                return Err(Error::precondition(
                    "status",
                    "a second round follows only a 不满意 evaluation of the first round",
                    "只有首轮测评不满意的才能二次交办",
                ));
            }
            s.round = 2;
            s.clock_start = Some(*at);
            s.status = S::SecondRound;
        }
        Event::Implemented { .. } => {
            if !s.replied || s.category() != Some(ReplyCategory::B) {
                return Err(Error::precondition(
                    "category",
                    "only an item replied with category B can be marked implemented",
                    "只有B类答复的件才能标记为已落实",
                ));
            }
            s.implemented = true;
        }
        Event::Closed { .. } => {
            if !s.replied || s.status.is_handling() {
                return Err(not_in("close", "办结", s.status));
            }
            s.status = S::Closed;
        }
    }
    Ok(())
}

/// What is late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OverdueKind {
    Reply,
    SecondRoundReply,
    /// An assisting unit has not sent its view to the lead unit.
    AssistingView(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overdue {
    pub id: Uuid,
    pub kind: OverdueKind,
    pub due: NaiveDate,
    pub days_late: i64,
}

/// Everything late on `today` among the items, by item id then kind.
pub fn overdue(items: &[State], today: NaiveDate) -> Vec<Overdue> {
    let mut out = Vec::new();
    for s in items.iter().filter(|s| s.status.is_handling()) {
        let Some(d) = s.deadlines() else { continue };
        if today > d.reply_due {
            out.push(Overdue {
                id: s.id,
                kind: if s.round == 1 {
                    OverdueKind::Reply
                } else {
                    OverdueKind::SecondRoundReply
                },
                due: d.reply_due,
                days_late: (today - d.reply_due).num_days(),
            });
        }
        if let (Some(due), Some(a)) = (d.assisting_view_due, &s.assignment)
            && today > due
        {
            for unit in a.assisting_units().difference(&s.assisting_views) {
                out.push(Overdue {
                    id: s.id,
                    kind: OverdueKind::AssistingView(*unit),
                    due,
                    days_late: (today - due).num_days(),
                });
            }
        }
    }
    out.sort_by_key(|o| (o.id, o.kind));
    out
}

impl Coded for Kind {
    const CODES: &'static [(Self, &'static str)] =
        &[(Self::Motion, "motion"), (Self::Suggestion, "suggestion")];
}

impl Coded for SupervisionMode {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::Key, "key"),
        (Self::Leader, "leader"),
        (Self::Sector, "sector"),
        (Self::Tracking, "tracking"),
        (Self::DeputyParticipating, "deputy_participating"),
    ];
}

impl Coded for ReplyCategory {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::A, "A"),
        (Self::B, "B"),
        (Self::C, "C"),
        (Self::D, "D"),
    ];
}

impl Coded for Satisfaction {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::Satisfied, "satisfied"),
        (Self::BasicallySatisfied, "basically_satisfied"),
        (Self::Dissatisfied, "dissatisfied"),
    ];
}

impl Assignment {
    /// The stored mode: single, split or lead_with_assisting.
    pub const fn mode_code(&self) -> &'static str {
        match self {
            Self::Single(_) => "single",
            Self::Split(_) => "split",
            Self::LeadWithAssisting { .. } => "lead_with_assisting",
        }
    }

    /// The assignment stored as `mode` over the replying `units` and the `assisting` ones.
    pub fn from_parts(mode: &str, units: &[Uuid], assisting: &[Uuid]) -> Option<Self> {
        Some(match mode {
            "single" => Self::Single(*units.first()?),
            "split" => Self::Split(units.iter().copied().collect()),
            "lead_with_assisting" => Self::LeadWithAssisting {
                lead: *units.first()?,
                assisting: assisting.iter().copied().collect(),
            },
            _ => return None,
        })
    }
}

impl Event {
    /// The business date of the step.
    pub const fn at(&self) -> NaiveDate {
        match self {
            Self::Submitted { at }
            | Self::ReviewPassed { at }
            | Self::RevisionRequested { at, .. }
            | Self::Revised { at }
            | Self::Withdrawn { at }
            | Self::MergedInto { at, .. }
            | Self::Assigned { at, .. }
            | Self::Returned { at, .. }
            | Self::ExtensionApproved { at }
            | Self::SupervisionSet { at, .. }
            | Self::AssistingViewSent { at, .. }
            | Self::Replied { at, .. }
            | Self::Evaluated { at, .. }
            | Self::SecondRound { at }
            | Self::Implemented { at }
            | Self::Closed { at } => *at,
        }
    }
}

impl RecordEvent for Event {
    const KIND: &'static KindDef = &KIND;

    fn name(&self) -> &'static str {
        match self {
            Self::Submitted { .. } => "submitted",
            Self::ReviewPassed { .. } => "reviewed",
            Self::RevisionRequested { .. } => "revision_requested",
            Self::Revised { .. } => "revised",
            Self::Withdrawn { .. } => "withdrawn",
            Self::MergedInto { .. } => "merged",
            Self::Assigned { .. } => "assigned",
            Self::Returned { .. } => "returned",
            Self::SupervisionSet { .. } => "supervision",
            Self::ExtensionApproved { .. } => "extension",
            Self::AssistingViewSent { .. } => "assisting_view",
            Self::Replied { .. } => "replied",
            Self::Evaluated { .. } => "satisfaction",
            Self::SecondRound { .. } => "second_round",
            Self::Implemented { .. } => "implemented",
            Self::Closed { .. } => "closed",
        }
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![("on", Value::Date(self.at()))];
        match self {
            Self::RevisionRequested { reason, .. } => {
                out.push(("reason", Value::Text(reason.clone())))
            }
            Self::MergedInto { target, .. } => out.push(("into", Value::Ref(*target))),
            Self::Assigned { mode, .. } => {
                out.push(("mode", Value::Text(mode.mode_code().into())));
                out.push(("units", Value::Text(id_list(mode.replying_units()))));
                let assisting = mode.assisting_units();
                if !assisting.is_empty() {
                    out.push(("assisting", Value::Text(id_list(assisting))));
                }
            }
            Self::Returned { unit, .. } | Self::AssistingViewSent { unit, .. } => {
                out.push(("unit", Value::Ref(*unit)));
            }
            Self::SupervisionSet { mode, .. } => {
                out.push(("mode", Value::Text(mode.code().into())))
            }
            Self::Replied { unit, category, .. } => {
                out.push(("unit", Value::Ref(*unit)));
                out.push(("category", Value::Text(category.code().into())));
            }
            Self::Evaluated {
                deputy,
                satisfaction,
                ..
            } => {
                out.push(("deputy", Value::Ref(*deputy)));
                out.push(("satisfaction", Value::Text(satisfaction.code().into())));
            }
            _ => {}
        }
        out
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        let at = p.date("on")?;
        Some(match name {
            "submitted" => Self::Submitted { at },
            "reviewed" => Self::ReviewPassed { at },
            "revision_requested" => Self::RevisionRequested {
                reason: p.text_or_empty("reason"),
                at,
            },
            "revised" => Self::Revised { at },
            "withdrawn" => Self::Withdrawn { at },
            "merged" => Self::MergedInto {
                target: p.id("into")?,
                at,
            },
            "assigned" => Self::Assigned {
                mode: Assignment::from_parts(
                    p.text("mode")?,
                    &p.ids("units"),
                    &p.ids("assisting"),
                )?,
                at,
            },
            "returned" => Self::Returned {
                unit: p.id("unit")?,
                at,
            },
            "supervision" => Self::SupervisionSet {
                mode: SupervisionMode::from_code(p.text("mode")?)?,
                at,
            },
            "extension" => Self::ExtensionApproved { at },
            "assisting_view" => Self::AssistingViewSent {
                unit: p.id("unit")?,
                at,
            },
            "replied" => Self::Replied {
                unit: p.id("unit")?,
                category: ReplyCategory::from_code(p.text("category")?)?,
                at,
            },
            "satisfaction" => Self::Evaluated {
                deputy: p.id("deputy")?,
                satisfaction: Satisfaction::from_code(p.text("satisfaction")?)?,
                at,
            },
            "second_round" => Self::SecondRound { at },
            "implemented" => Self::Implemented { at },
            "closed" => Self::Closed { at },
            _ => return None,
        })
    }
}

/// A handling unit (承办单位), registered by the node where it sits (the own-records rule the
/// domain states for deputies).
pub const HANDLING_UNIT: KindDef = KindDef {
    id: 8,
    name: "handling_unit",
    governed_as: RecordKind::Deputy,
    fields: &[text_field(2, "name", 100)],
    sets: &[],
    events: &[],
    reach: Reach::Normal,
    fingerprints: &[0xdb10_4e0e_4bf5_782a],
};

const ON: PayloadDef = required(1, "on", FieldType::Date);

/// A step with nothing but its date.
const fn dated(id: u16, name: &'static str, step: Step) -> EventDef {
    EventDef {
        id,
        name,
        step,
        payload: &[ON],
    }
}

/// A motion or suggestion (议案建议), from submission to closing.
pub const KIND: KindDef = KindDef {
    id: 9,
    name: "suggestion",
    governed_as: RecordKind::Suggestion,
    fields: &[
        text_field(2, "kind", 20),
        text_field(3, "title", 100),
        text_field(4, "body", 20_000),
        field(5, "lead_deputy", FieldType::Ref),
    ],
    sets: &[(1, "co_signers")],
    events: &[
        dated(1, "submitted", Step::Submit),
        dated(2, "reviewed", Step::Review),
        EventDef {
            id: 3,
            name: "revision_requested",
            step: Step::Review,
            payload: &[ON, required(2, "reason", FieldType::Text)],
        },
        dated(4, "revised", Step::Edit),
        dated(5, "withdrawn", Step::Withdraw),
        EventDef {
            id: 6,
            name: "merged",
            step: Step::Review,
            payload: &[ON, required(2, "into", FieldType::Ref)],
        },
        EventDef {
            id: 7,
            name: "assigned",
            step: Step::Assign,
            payload: &[
                ON,
                // single, split or lead_with_assisting
                required(2, "mode", FieldType::Text),
                required(3, "units", FieldType::Text),
                optional(4, "assisting", FieldType::Text),
            ],
        },
        EventDef {
            id: 8,
            name: "returned",
            step: Step::Return,
            payload: &[ON, required(2, "unit", FieldType::Ref)],
        },
        EventDef {
            id: 9,
            name: "supervision",
            step: Step::Supervise,
            payload: &[ON, required(2, "mode", FieldType::Text)],
        },
        dated(10, "extension", Step::Extend),
        EventDef {
            id: 11,
            name: "assisting_view",
            step: Step::AssistingView,
            payload: &[ON, required(2, "unit", FieldType::Ref)],
        },
        EventDef {
            id: 12,
            name: "replied",
            step: Step::Reply,
            payload: &[
                ON,
                required(2, "unit", FieldType::Ref),
                required(3, "category", FieldType::Text),
            ],
        },
        EventDef {
            id: 13,
            name: "satisfaction",
            step: Step::Evaluate,
            payload: &[
                ON,
                required(2, "deputy", FieldType::Ref),
                required(3, "satisfaction", FieldType::Text),
            ],
        },
        dated(14, "second_round", Step::SecondRound),
        dated(15, "implemented", Step::Implement),
        dated(16, "closed", Step::Close),
    ],
    reach: Reach::Normal,
    fingerprints: &[0x3bbb_cfe9_2805_91cf],
};

#[cfg(test)]
mod tests;
