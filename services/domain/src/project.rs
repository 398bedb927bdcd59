//! Livelihood projects voted by deputies (民生实事项目票决制).
//!
//! A project goes through collection (征集), screening into candidates (筛选), the vote at the
//! congress session (票决), implementation (实施) with a budget and progress reports,
//! supervision by groups of deputies (监督), acceptance signed by deputies and by voter
//! representatives of the project's area (验收), satisfaction scoring (评价) and maintenance
//! (管护).
//!
//! # The stage rule
//!
//! [`fold`] sorts a project's events by stamp and applies each in turn; a step not allowed in
//! the stage reached so far is kept and flagged, never applied. A major change, suspension,
//! resumption or termination of an adopted project applies only with a recorded [`Decision`]
//! of the standing committee or the township congress; without one it is refused at entry and
//! flagged in the fold. The latest progress report (by stamp) is the project's progress.
//!
//! # The vote
//!
//! [`tally`] counts the ballots of one vote. Its rules, all deterministic so every node
//! prints the same result:
//!
//! - Only ballots of seated deputies for listed candidates count; others are listed as ignored.
//! - One ballot per deputy per candidate. The same ballot recorded again (on another node)
//!   is listed as a duplicate and not counted again. If two *different* choices were recorded
//!   for the same deputy and candidate, the one with the smallest stamp (the first recorded)
//!   counts, since a cast ballot cannot be changed, and the pair is listed as a conflict for a
//!   person to look at.
//! - The base of the adoption threshold is a setting of each congress ([`VotingRules`]): all
//!   seated deputies, or those present. Present means the deputies signed in, plus any seated
//!   deputy who cast a ballot (a ballot proves presence). A candidate passes with more than
//!   half of the base voting for it.
//! - Passing candidates are ranked by votes for (more first), then votes against (fewer
//!   first); the top `to_adopt` are adopted. Candidates tied at the last place are not
//!   adopted but listed for a run-off (另行票决), as the voting measures require.

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, PayloadDef, Reach, RecordEvent, Value, field,
    optional, required, text_field,
};
use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Flag, Stamp, Stamped, in_order};
use crate::org::OrgCode;
use crate::person::rename;
use crate::{Error, Result, text};

/// A project as entered at collection, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectDraft {
    pub congress: String,
    pub year: i32,
    pub title: String,
    pub summary: String,
    /// Estimated budget in fen (分).
    pub budget_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: Uuid,
    /// The org unit whose congress votes on it.
    pub congress: OrgCode,
    pub year: i32,
    pub title: String,
    pub summary: String,
    pub budget_fen: i64,
}

fn budget(field: &str, fen: i64) -> Result<i64> {
    // Ten billion yuan is far beyond any county's livelihood project.
    const MAX_FEN: i64 = 1_000_000_000_000;
    if !(0..=MAX_FEN).contains(&fen) {
        return Err(Error::invalid(
            field,
            format!("must be between 0 and {MAX_FEN} fen, got {fen}"),
            format!("预算须在0至{MAX_FEN}分之间，实际为{fen}"),
        ));
    }
    Ok(fen)
}

impl Project {
    pub fn parse(draft: ProjectDraft, id: Uuid) -> Result<Self> {
        if !(2000..=2200).contains(&draft.year) {
            return Err(Error::invalid(
                "year",
                format!("must be 2000 to 2200, got {}", draft.year),
                format!("年度须在2000至2200之间，实际为{}", draft.year),
            ));
        }
        Ok(Self {
            id,
            congress: crate::org::parse(&draft.congress).map_err(|e| rename(e, "congress"))?,
            year: draft.year,
            title: text::bounded("title", &draft.title, 4, 100)?,
            summary: text::bounded("summary", &draft.summary, 0, 5000)?,
            budget_fen: budget("budget_fen", draft.budget_fen)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DecisionBody {
    StandingCommittee,
    TownshipCongress,
    TownshipPresidium,
}

/// A recorded decision that authorises a change to an adopted project.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Decision {
    pub body: DecisionBody,
    /// The decision's document number (文号).
    pub reference: String,
    pub decided_on: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    Major,
    Suspension,
    Resumption,
    Termination,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Event {
    Shortlisted {
        at: NaiveDate,
    },
    ScreenedOut {
        at: NaiveDate,
    },
    /// The outcome of the vote, recorded from the [`tally`] by the congress's node.
    Voted {
        adopted: bool,
        at: NaiveDate,
    },
    PlanSet {
        budget_fen: i64,
        at: NaiveDate,
    },
    Progress {
        percent: u8,
        note: String,
        at: NaiveDate,
    },
    SupervisionAdopted {
        group: Uuid,
        at: NaiveDate,
    },
    AcceptanceSigned {
        deputy: Uuid,
        at: NaiveDate,
    },
    AcceptancePassed {
        at: NaiveDate,
    },
    /// A voter representative (选民代表) of the project's area signed the acceptance. Voters
    /// are not records of the mesh: the signature is the name and area as signed on site.
    VoterSigned {
        signer: VoterSigner,
        at: NaiveDate,
    },
    Scored {
        deputy: Uuid,
        score: u8,
        at: NaiveDate,
    },
    MaintenanceStarted {
        caretaker: Uuid,
        at: NaiveDate,
    },
    Changed {
        change: Change,
        decision: Option<Decision>,
        note: String,
        at: NaiveDate,
    },
    /// A deputy's ballot for this project (the candidate) at `session`; counted by [`tally`],
    /// not folded.
    Ballot {
        deputy: Uuid,
        session: Uuid,
        choice: Choice,
    },
    /// A maintenance visit by a deputy, with the volunteer points it earns; listed, not folded.
    MaintenanceVisit {
        deputy: Uuid,
        note: String,
        volunteer_points: u32,
        at: NaiveDate,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    Collected,
    Candidate,
    NotShortlisted,
    Adopted,
    NotAdopted,
    Implementing,
    Suspended,
    Terminated,
    Accepted,
    Evaluated,
    Maintained,
}

impl Stage {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Collected => "征集",
            Self::Candidate => "候选",
            Self::NotShortlisted => "未入选候选",
            Self::Adopted => "票决通过",
            Self::NotAdopted => "票决未通过",
            Self::Implementing => "实施中",
            Self::Suspended => "暂停",
            Self::Terminated => "终止",
            Self::Accepted => "已验收",
            Self::Evaluated => "已评价",
            Self::Maintained => "管护中",
        }
    }
}

/// A voter representative who signed a project's acceptance: a name and the village or
/// community (and group) they represent, as written on the acceptance sheet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VoterSigner {
    pub name: String,
    pub area: String,
}

impl VoterSigner {
    /// Validates a signature as entered: a name of 2–30 characters, an area of 2–100.
    pub fn parse(name: &str, area: &str) -> Result<Self> {
        Ok(Self {
            name: text::bounded("voter_name", name, 2, 30)?,
            area: text::bounded("voter_area", area, 2, 100)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub stage: Stage,
    pub budget_fen: i64,
    pub progress: u8,
    pub supervision_groups: BTreeSet<Uuid>,
    pub signatures: BTreeSet<Uuid>,
    /// The voter representatives who signed the acceptance.
    pub voter_signatures: BTreeSet<VoterSigner>,
    /// Each deputy's latest score.
    pub scores: BTreeMap<Uuid, u8>,
    pub decisions: Vec<(Change, Decision)>,
    pub flags: Vec<Flag>,
}

impl State {
    pub fn average_score(&self) -> Option<f64> {
        (!self.scores.is_empty()).then(|| {
            self.scores.values().map(|s| f64::from(*s)).sum::<f64>() / self.scores.len() as f64
        })
    }
}

pub fn fold(project: &Project, events: &[Stamped<Event>]) -> State {
    let mut s = State {
        stage: Stage::Collected,
        budget_fen: project.budget_fen,
        progress: 0,
        supervision_groups: BTreeSet::new(),
        signatures: BTreeSet::new(),
        voter_signatures: BTreeSet::new(),
        scores: BTreeMap::new(),
        decisions: Vec::new(),
        flags: Vec::new(),
    };
    for stamped in in_order(events) {
        if let Err(e) = apply(&mut s, &stamped.event) {
            s.flags.push(Flag::new(
                stamped.stamp,
                format!("{}: {}", e.field(), e.reason()),
                e.reason_zh(),
            ));
        }
    }
    s
}

/// Checks a new step before it is recorded.
///
/// Acceptance passes only when deputies *and* voter representatives of the project's area
/// signed (the seeds: 组织人大代表和项目所在区域的选民代表参加项目验收 … 全部签字). That part is
/// checked here, when the step is taken, and not in the fold: a project accepted on deputies'
/// signatures alone before the rule keeps its stage.
pub fn check(state: &State, event: &Event) -> Result<()> {
    apply(&mut state.clone(), event)?;
    if matches!(event, Event::AcceptancePassed { .. }) && state.voter_signatures.is_empty() {
        return Err(Error::precondition(
            "voter_signatures",
            "acceptance needs the signature of at least one voter representative of the \
             project's area besides the deputies'",
            "验收须有项目所在区域的选民代表签字，不能只有代表签字",
        ));
    }
    Ok(())
}

fn in_stage(step: &str, step_zh: &str, stage: Stage) -> Error {
    Error::precondition(
        "stage",
        format!("cannot {step} while the project is {stage:?}"),
        format!("项目处于“{}”阶段，不能{step_zh}", stage.label_zh()),
    )
}

fn apply(s: &mut State, event: &Event) -> Result<()> {
    use Stage as St;
    let running = matches!(s.stage, St::Adopted | St::Implementing);
    match event {
        Event::Shortlisted { .. } | Event::ScreenedOut { .. } => {
            if s.stage != St::Collected {
                return Err(in_stage("screen", "筛选", s.stage));
            }
            s.stage = match event {
                Event::Shortlisted { .. } => St::Candidate,
                _ => St::NotShortlisted,
            };
        }
        Event::Voted { adopted, .. } => {
            if s.stage != St::Candidate {
                return Err(in_stage("record the vote", "记录票决结果", s.stage));
            }
            s.stage = if *adopted {
                St::Adopted
            } else {
                St::NotAdopted
            };
        }
        Event::PlanSet { budget_fen, .. } => {
            budget("budget_fen", *budget_fen)?;
            if !running {
                return Err(in_stage("set the plan", "制定实施计划", s.stage));
            }
            s.budget_fen = *budget_fen;
            s.stage = St::Implementing;
        }
        Event::Progress { percent, note, .. } => {
            if *percent > 100 {
                return Err(Error::invalid(
                    "percent",
                    format!("must be 0 to 100, got {percent}"),
                    format!("进度须在0至100之间，实际为{percent}"),
                ));
            }
            text::bounded("note", note, 0, 2000)?;
            if !running {
                return Err(in_stage("report progress", "报告进度", s.stage));
            }
            s.progress = *percent;
            s.stage = St::Implementing;
        }
        Event::SupervisionAdopted { group, .. } => {
            if !matches!(
                s.stage,
                St::Adopted | St::Implementing | St::Suspended | St::Accepted
            ) {
                return Err(in_stage("adopt for supervision", "认领监督", s.stage));
            }
            s.supervision_groups.insert(*group);
        }
        Event::AcceptanceSigned { deputy, .. } => {
            if s.stage != St::Implementing {
                return Err(in_stage("sign acceptance", "验收签字", s.stage));
            }
            s.signatures.insert(*deputy);
        }
        Event::VoterSigned { signer, .. } => {
            if s.stage != St::Implementing {
                return Err(in_stage("sign acceptance", "验收签字", s.stage));
            }
            s.voter_signatures.insert(signer.clone());
        }
        Event::AcceptancePassed { .. } => {
            if s.stage != St::Implementing || s.progress < 100 || s.signatures.is_empty() {
                return Err(Error::precondition(
                    "signatures",
                    "acceptance needs the project complete (100%) and signed by deputies",
                    "验收须项目进度达到100%并有代表签字",
                ));
            }
            s.stage = St::Accepted;
        }
        Event::Scored { score, deputy, .. } => {
            if *score > 100 {
                return Err(Error::invalid(
                    "score",
                    format!("must be 0 to 100, got {score}"),
                    format!("评分须在0至100之间，实际为{score}"),
                ));
            }
            if !matches!(s.stage, St::Accepted | St::Evaluated) {
                return Err(in_stage("score", "满意度测评", s.stage));
            }
            s.scores.insert(*deputy, *score);
            s.stage = St::Evaluated;
        }
        Event::MaintenanceStarted { .. } => {
            if !matches!(s.stage, St::Accepted | St::Evaluated) {
                return Err(in_stage("start maintenance", "进入管护", s.stage));
            }
            s.stage = St::Maintained;
        }
        Event::Changed {
            change,
            decision,
            note,
            ..
        } => {
            text::bounded("note", note, 0, 2000)?;
            let Some(decision) = decision else {
                return Err(Error::precondition(
                    "decision",
                    "a major change, suspension or termination of an adopted project needs a \
                     recorded decision of the standing committee or township congress",
                    "已票决项目的重大调整、暂停或终止须有人大常委会或乡镇人大的决定",
                ));
            };
            text::bounded("decision.reference", &decision.reference, 1, 50)?;
            let next = match (change, s.stage) {
                (Change::Major, St::Adopted | St::Implementing | St::Suspended) => s.stage,
                (Change::Suspension, St::Adopted | St::Implementing) => St::Suspended,
                (Change::Resumption, St::Suspended) => St::Implementing,
                (Change::Termination, St::Adopted | St::Implementing | St::Suspended) => {
                    St::Terminated
                }
                _ => return Err(in_stage("change", "调整", s.stage)),
            };
            s.decisions.push((*change, decision.clone()));
            s.stage = next;
        }
        // Ballots are counted by the tally and visits listed as they are; neither moves the
        // stage.
        Event::Ballot { .. } | Event::MaintenanceVisit { .. } => {}
    }
    Ok(())
}

/// Which deputies the adoption threshold counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Threshold {
    /// More than half of all seated deputies (the common rule).
    MajorityOfSeated,
    /// More than half of the deputies present.
    MajorityOfPresent,
}

/// The voting measures (票决办法) of one congress: never a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VotingRules {
    /// How many projects are chosen.
    pub to_adopt: u32,
    pub threshold: Threshold,
    /// How many more candidates than places there must be (差额); 0 allows 等额.
    pub candidate_margin: u32,
}

impl VotingRules {
    pub fn validate(&self) -> Result<()> {
        if self.to_adopt == 0 {
            return Err(Error::invalid(
                "to_adopt",
                "at least one project must be chosen",
                "票决确定的项目数须至少为1",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Choice {
    For,
    Against,
    Abstain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    pub deputy: Uuid,
    pub candidate: Uuid,
    pub choice: Choice,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub votes_for: u64,
    pub against: u64,
    pub abstain: u64,
}

/// Two different choices recorded for one deputy and candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallotConflict {
    pub deputy: Uuid,
    pub candidate: Uuid,
    /// The ballot that counts: the first recorded.
    pub counted: Stamp,
    /// Every recording, in stamp order.
    pub recorded: Vec<(Stamp, Choice)>,
}

/// One deputy's ballot for one candidate recorded more than once (two clerks entering it at
/// the same moment, or on two nodes): what the tally lists so a person can see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatedBallot {
    pub deputy: Uuid,
    pub candidate: Uuid,
    /// The choice that counts: the first recorded.
    pub counted: Choice,
    /// How many times it was recorded (2 or more).
    pub times: u32,
    /// Whether the recordings differ in choice (also listed in `conflicts`).
    pub differing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub counts: BTreeMap<Uuid, Count>,
    /// The number of deputies the threshold is a majority of.
    pub base: u64,
    pub adopted: Vec<Uuid>,
    pub not_adopted: Vec<Uuid>,
    /// Candidates tied at the last place, for a run-off.
    pub runoff: Vec<Uuid>,
    /// Repeated recordings of the same ballot, not counted again.
    pub duplicates: Vec<Stamp>,
    pub conflicts: Vec<BallotConflict>,
    /// Every ballot recorded more than once, same choice or not, by deputy then candidate.
    pub repeated: Vec<RepeatedBallot>,
    /// Ballots of deputies not seated or for candidates not listed.
    pub ignored: Vec<Flag>,
}

/// Counts one vote; see the module documentation for the rules.
pub fn tally(
    ballots: &[Stamped<Ballot>],
    candidates: &BTreeSet<Uuid>,
    seated: &BTreeSet<Uuid>,
    present: &BTreeSet<Uuid>,
    rules: &VotingRules,
) -> Result<Tally> {
    rules.validate()?;
    let needed = rules.to_adopt as usize + rules.candidate_margin as usize;
    if candidates.len() < needed {
        return Err(Error::precondition(
            "candidates",
            format!(
                "the rules need at least {needed} candidates for {} places, got {}",
                rules.to_adopt,
                candidates.len()
            ),
            format!(
                "票决办法要求{}个名额至少有{needed}个候选项目，实际为{}个",
                rules.to_adopt,
                candidates.len()
            ),
        ));
    }
    let mut counts: BTreeMap<Uuid, Count> =
        candidates.iter().map(|c| (*c, Count::default())).collect();
    let mut recorded: BTreeMap<(Uuid, Uuid), Vec<(Stamp, Choice)>> = BTreeMap::new();
    let mut ignored = Vec::new();
    for s in in_order(ballots) {
        let b = &s.event;
        if !seated.contains(&b.deputy) {
            ignored.push(Flag::new(s.stamp, "deputy is not seated", "非本届在任代表"));
        } else if !candidates.contains(&b.candidate) {
            ignored.push(Flag::new(
                s.stamp,
                "candidate is not on the list",
                "不在候选项目名单中",
            ));
        } else {
            recorded
                .entry((b.deputy, b.candidate))
                .or_default()
                .push((s.stamp, b.choice));
        }
    }
    let mut duplicates = Vec::new();
    let mut conflicts = Vec::new();
    let mut repeated = Vec::new();
    let mut voters = BTreeSet::new();
    // `recorded` is keyed by (deputy, candidate), so `repeated` comes out by deputy.
    for ((deputy, candidate), list) in &recorded {
        let (first_stamp, choice) = list[0];
        if list.len() > 1 {
            repeated.push(RepeatedBallot {
                deputy: *deputy,
                candidate: *candidate,
                counted: choice,
                times: u32::try_from(list.len()).unwrap_or(u32::MAX),
                differing: list.iter().any(|(_, c)| *c != choice),
            });
        }
        voters.insert(*deputy);
        let count = counts.entry(*candidate).or_default();
        match choice {
            Choice::For => count.votes_for += 1,
            Choice::Against => count.against += 1,
            Choice::Abstain => count.abstain += 1,
        }
        if list.iter().all(|(_, c)| *c == choice) {
            duplicates.extend(list[1..].iter().map(|(stamp, _)| *stamp));
        } else {
            conflicts.push(BallotConflict {
                deputy: *deputy,
                candidate: *candidate,
                counted: first_stamp,
                recorded: list.clone(),
            });
        }
    }
    duplicates.sort();
    let base = match rules.threshold {
        Threshold::MajorityOfSeated => seated.len(),
        Threshold::MajorityOfPresent => present
            .intersection(seated)
            .chain(voters.iter())
            .collect::<BTreeSet<_>>()
            .len(),
    } as u64;
    let mut passing: Vec<(Uuid, Count)> = counts
        .iter()
        .filter(|(_, c)| 2 * c.votes_for > base)
        .map(|(id, c)| (*id, *c))
        .collect();
    let key = |c: &Count| (std::cmp::Reverse(c.votes_for), c.against);
    passing.sort_by_key(|(id, c)| (key(c), *id));
    let places = rules.to_adopt as usize;
    let (adopted, runoff): (Vec<Uuid>, Vec<Uuid>) = if passing.len() <= places {
        (passing.iter().map(|(id, _)| *id).collect(), Vec::new())
    } else {
        let cutoff = key(&passing[places - 1].1);
        let better: Vec<Uuid> = passing
            .iter()
            .filter(|(_, c)| key(c) < cutoff)
            .map(|(id, _)| *id)
            .collect();
        let tied: Vec<Uuid> = passing
            .iter()
            .filter(|(_, c)| key(c) == cutoff)
            .map(|(id, _)| *id)
            .collect();
        if better.len() + tied.len() <= places {
            ([better, tied].concat(), Vec::new())
        } else {
            (better, tied)
        }
    };
    let not_adopted = candidates
        .iter()
        .filter(|c| !adopted.contains(c) && !runoff.contains(c))
        .copied()
        .collect();
    Ok(Tally {
        counts,
        base,
        adopted,
        not_adopted,
        runoff,
        duplicates,
        conflicts,
        repeated,
        ignored,
    })
}

impl Coded for Threshold {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::MajorityOfSeated, "seated"),
        (Self::MajorityOfPresent, "present"),
    ];
}

impl Coded for Choice {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::For, "for"),
        (Self::Against, "against"),
        (Self::Abstain, "abstain"),
    ];
}

impl Coded for Change {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::Major, "major"),
        (Self::Suspension, "suspension"),
        (Self::Resumption, "resumption"),
        (Self::Termination, "termination"),
    ];
}

impl Coded for DecisionBody {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::StandingCommittee, "standing_committee"),
        (Self::TownshipCongress, "township_congress"),
        (Self::TownshipPresidium, "township_presidium"),
    ];
}

/// An optional text payload field: empty text is not stored.
fn optional_text(out: &mut Vec<(&'static str, Value)>, name: &'static str, text: &str) {
    if !text.is_empty() {
        out.push((name, Value::Text(text.to_owned())));
    }
}

impl RecordEvent for Event {
    const KIND: &'static KindDef = &KIND;

    fn name(&self) -> &'static str {
        match self {
            Self::Shortlisted { .. } => "shortlisted",
            Self::ScreenedOut { .. } => "screened_out",
            Self::Voted { .. } => "voted",
            Self::PlanSet { .. } => "plan_set",
            Self::Progress { .. } => "progress",
            Self::SupervisionAdopted { .. } => "supervision_adopted",
            Self::AcceptanceSigned { .. } => "acceptance_signed",
            Self::AcceptancePassed { .. } => "acceptance_passed",
            Self::VoterSigned { .. } => "voter_signed",
            Self::Scored { .. } => "scored",
            Self::MaintenanceStarted { .. } => "maintenance_started",
            Self::Changed { .. } => "changed",
            Self::Ballot { .. } => "ballot",
            Self::MaintenanceVisit { .. } => "maintenance_visit",
        }
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        let on = |at: &NaiveDate| ("on", Value::Date(*at));
        match self {
            Self::Shortlisted { at } | Self::ScreenedOut { at } | Self::AcceptancePassed { at } => {
                vec![on(at)]
            }
            Self::Voted { adopted, at } => vec![on(at), ("adopted", Value::Bool(*adopted))],
            Self::PlanSet { budget_fen, at } => {
                vec![on(at), ("budget_fen", Value::Int(*budget_fen))]
            }
            Self::Progress { percent, note, at } => {
                let mut out = vec![on(at), ("percent", Value::Int(i64::from(*percent)))];
                optional_text(&mut out, "note", note);
                out
            }
            Self::SupervisionAdopted { group, at } => vec![on(at), ("group", Value::Ref(*group))],
            Self::AcceptanceSigned { deputy, at } => {
                vec![on(at), ("deputy", Value::Ref(*deputy))]
            }
            Self::VoterSigned { signer, at } => vec![
                on(at),
                ("voter_name", Value::Text(signer.name.clone())),
                ("voter_area", Value::Text(signer.area.clone())),
            ],
            Self::Scored { deputy, score, at } => vec![
                on(at),
                ("deputy", Value::Ref(*deputy)),
                ("score", Value::Int(i64::from(*score))),
            ],
            Self::MaintenanceStarted { caretaker, at } => {
                vec![on(at), ("caretaker", Value::Ref(*caretaker))]
            }
            Self::Changed {
                change,
                decision,
                note,
                at,
            } => {
                let mut out = vec![on(at), ("change", Value::Text(change.code().into()))];
                optional_text(&mut out, "note", note);
                if let Some(d) = decision {
                    out.push(("decision_body", Value::Text(d.body.code().into())));
                    optional_text(&mut out, "decision_reference", &d.reference);
                    out.push(("decided_on", Value::Date(d.decided_on)));
                }
                out
            }
            Self::Ballot {
                deputy,
                session,
                choice,
            } => vec![
                ("deputy", Value::Ref(*deputy)),
                ("session", Value::Ref(*session)),
                ("choice", Value::Text(choice.code().into())),
            ],
            Self::MaintenanceVisit {
                deputy,
                note,
                volunteer_points,
                at,
            } => {
                let mut out = vec![on(at), ("deputy", Value::Ref(*deputy))];
                optional_text(&mut out, "note", note);
                out.push(("volunteer_points", Value::Int(i64::from(*volunteer_points))));
                out
            }
        }
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        if name == "ballot" {
            return Some(Self::Ballot {
                deputy: p.id("deputy")?,
                session: p.id("session")?,
                choice: Choice::from_code(p.text("choice")?)?,
            });
        }
        let at = p.date("on")?;
        // A percent or score out of range is kept (and flagged by the fold), never dropped.
        let small = |field: &str| p.int(field).map(|n| u8::try_from(n).unwrap_or(u8::MAX));
        Some(match name {
            "shortlisted" => Self::Shortlisted { at },
            "screened_out" => Self::ScreenedOut { at },
            "voted" => Self::Voted {
                adopted: p.bool("adopted")?,
                at,
            },
            "plan_set" => Self::PlanSet {
                budget_fen: p.int("budget_fen")?,
                at,
            },
            "progress" => Self::Progress {
                percent: small("percent")?,
                note: p.text_or_empty("note"),
                at,
            },
            "supervision_adopted" => Self::SupervisionAdopted {
                group: p.id("group")?,
                at,
            },
            "acceptance_signed" => Self::AcceptanceSigned {
                deputy: p.id("deputy")?,
                at,
            },
            "acceptance_passed" => Self::AcceptancePassed { at },
            "voter_signed" => Self::VoterSigned {
                signer: VoterSigner {
                    name: p.text("voter_name")?.to_owned(),
                    area: p.text("voter_area")?.to_owned(),
                },
                at,
            },
            "scored" => Self::Scored {
                deputy: p.id("deputy")?,
                score: small("score")?,
                at,
            },
            "maintenance_started" => Self::MaintenanceStarted {
                caretaker: p.id("caretaker")?,
                at,
            },
            "changed" => Self::Changed {
                change: Change::from_code(p.text("change")?)?,
                decision: p
                    .text("decision_body")
                    .and_then(DecisionBody::from_code)
                    .map(|body| Decision {
                        body,
                        reference: p.text_or_empty("decision_reference"),
                        decided_on: p.date("decided_on").unwrap_or_default(),
                    }),
                note: p.text_or_empty("note"),
                at,
            },
            "maintenance_visit" => Self::MaintenanceVisit {
                deputy: p.id("deputy")?,
                note: p.text_or_empty("note"),
                volunteer_points: u32::try_from(p.int("volunteer_points")?).unwrap_or_default(),
                at,
            },
            _ => return None,
        })
    }
}

/// A congress session that votes on projects (票决): seats, presence and the adoption rule.
pub const SESSION: KindDef = KindDef {
    id: 10,
    name: "congress_session",
    governed_as: RecordKind::Project,
    fields: &[
        text_field(2, "name", 100),
        field(3, "year", FieldType::Int),
        field(4, "to_adopt", FieldType::Int),
        // seated or present: the base of the adoption threshold
        text_field(5, "threshold", 20),
        field(6, "candidate_margin", FieldType::Int),
    ],
    sets: &[(1, "seated"), (2, "present")],
    events: &[],
    reach: Reach::Normal,
    fingerprints: &[0x4c5a_5670_4294_862c],
};

const ON: PayloadDef = required(1, "on", FieldType::Date);

/// A livelihood project (民生实事项目), from collection to maintenance.
pub const KIND: KindDef = KindDef {
    id: 11,
    name: "project",
    governed_as: RecordKind::Project,
    fields: &[
        field(2, "year", FieldType::Int),
        text_field(3, "title", 100),
        text_field(4, "summary", 5000),
        field(5, "budget_fen", FieldType::Int),
        field(6, "session", FieldType::Ref),
    ],
    sets: &[],
    events: &[
        EventDef {
            id: 1,
            name: "shortlisted",
            step: Step::Screen,
            payload: &[ON],
        },
        EventDef {
            id: 2,
            name: "screened_out",
            step: Step::Screen,
            payload: &[ON],
        },
        EventDef {
            id: 3,
            name: "voted",
            step: Step::Vote,
            payload: &[ON, required(2, "adopted", FieldType::Bool)],
        },
        EventDef {
            id: 4,
            name: "plan_set",
            step: Step::Progress,
            payload: &[ON, required(2, "budget_fen", FieldType::Int)],
        },
        EventDef {
            id: 5,
            name: "progress",
            step: Step::Progress,
            payload: &[
                ON,
                required(2, "percent", FieldType::Int),
                optional(3, "note", FieldType::Text),
            ],
        },
        EventDef {
            id: 6,
            name: "supervision_adopted",
            step: Step::Supervise,
            payload: &[ON, required(2, "group", FieldType::Ref)],
        },
        EventDef {
            id: 7,
            name: "acceptance_signed",
            step: Step::SignAcceptance,
            payload: &[ON, required(2, "deputy", FieldType::Ref)],
        },
        EventDef {
            id: 8,
            name: "acceptance_passed",
            step: Step::SignAcceptance,
            payload: &[ON],
        },
        EventDef {
            id: 9,
            name: "scored",
            step: Step::Evaluate,
            payload: &[
                ON,
                required(2, "deputy", FieldType::Ref),
                required(3, "score", FieldType::Int),
            ],
        },
        EventDef {
            id: 10,
            name: "maintenance_started",
            step: Step::Progress,
            payload: &[ON, required(2, "caretaker", FieldType::Ref)],
        },
        EventDef {
            id: 11,
            name: "changed",
            step: Step::Change,
            payload: &[
                ON,
                required(2, "change", FieldType::Text),
                optional(3, "decision_body", FieldType::Text),
                optional(4, "decision_reference", FieldType::Text),
                optional(5, "decided_on", FieldType::Date),
                optional(6, "note", FieldType::Text),
            ],
        },
        EventDef {
            id: 12,
            name: "ballot",
            step: Step::Vote,
            payload: &[
                required(1, "deputy", FieldType::Ref),
                required(2, "session", FieldType::Ref),
                required(3, "choice", FieldType::Text),
            ],
        },
        // Added in schema version 2.
        EventDef {
            id: 13,
            name: "maintenance_visit",
            step: Step::Progress,
            payload: &[
                ON,
                required(2, "deputy", FieldType::Ref),
                optional(3, "note", FieldType::Text),
                required(4, "volunteer_points", FieldType::Int),
            ],
        },
        // Added in the second revision of this kind (issue #12 item 18).
        EventDef {
            id: 14,
            name: "voter_signed",
            step: Step::SignAcceptance,
            payload: &[
                ON,
                required(2, "voter_name", FieldType::Text),
                required(3, "voter_area", FieldType::Text),
            ],
        },
    ],
    reach: Reach::Normal,
    fingerprints: &[0xb063_0a3d_0ed5_4e00, 0xa79e_297e_9413_faf8],
};

#[cfg(test)]
mod tests;
