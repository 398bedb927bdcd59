//! Duty activities (履职活动), the deputies' duty records (履职档案) and points (履职积分).
//!
//! An activity is dispatched to deputies (发单), accepted by them (接单) and closed by a check-in
//! scanned at the venue (扫码签到). Every check-in, speech, suggestion or report-back lands in
//! the deputy's file as a [`DutyRecord`]. Points are always derived from the records with the
//! congress's [`PointWeights`], never stored, and a check-in of the same deputy for the same
//! activity recorded twice (say, on two nodes while apart) counts once.

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, Reach, RecordEvent, Value, field, optional,
    required, text_field,
};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Stamped, in_order};
use crate::org::{OrgCode, OrgTree};
use crate::period::Period;
use crate::person::rename;
use crate::{Error, Result, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ActivityKind {
    Research,
    Inspection,
    LawEnforcementInspection,
    SpecialInquiry,
    Training,
    Publicity,
    ReceivingVoters,
    GroupActivity,
}

impl ActivityKind {
    pub const ALL: [Self; 8] = [
        Self::Research,
        Self::Inspection,
        Self::LawEnforcementInspection,
        Self::SpecialInquiry,
        Self::Training,
        Self::Publicity,
        Self::ReceivingVoters,
        Self::GroupActivity,
    ];

    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Research => "调研",
            Self::Inspection => "视察",
            Self::LawEnforcementInspection => "执法检查",
            Self::SpecialInquiry => "专题询问",
            Self::Training => "培训",
            Self::Publicity => "宣讲",
            Self::ReceivingVoters => "接待选民",
            Self::GroupActivity => "代表小组活动",
        }
    }
}

/// An activity as entered, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityDraft {
    pub kind: ActivityKind,
    pub title: String,
    pub organiser: String,
    pub starts_at: DateTime<Utc>,
    pub venue: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub id: Uuid,
    pub kind: ActivityKind,
    pub title: String,
    /// The org unit whose body organises the activity.
    pub organiser: OrgCode,
    pub starts_at: DateTime<Utc>,
    pub venue: Option<String>,
}

impl Activity {
    pub fn parse(draft: ActivityDraft, id: Uuid) -> Result<Self> {
        Ok(Self {
            id,
            kind: draft.kind,
            title: text::bounded("title", &draft.title, 2, 100)?,
            organiser: crate::org::parse(&draft.organiser).map_err(|e| rename(e, "organiser"))?,
            starts_at: draft.starts_at,
            venue: text::optional("venue", Some(&draft.venue), 200)?,
        })
    }
}

/// How a check-in was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckInMode {
    /// The deputy's own check-in with the activity's signed code.
    Scan,
    /// Entered by a clerk on the deputy's behalf (代录). Check-ins recorded before modes
    /// existed were entered by the node with the activity's code, so they read as this.
    Proxy,
}

/// A step of an activity's workflow, as stored (one event per deputy).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Event {
    /// 发单: the organiser sends the activity to a deputy of the org unit `to_org`.
    Dispatched { deputy: Uuid, to_org: OrgCode },
    /// 接单: a deputy takes the order.
    Accepted { deputy: Uuid },
    /// A deputy declines the order (cannot attend), perhaps saying why.
    Declined {
        deputy: Uuid,
        reason: Option<String>,
    },
    /// 签到: the deputy checked in at the venue, with the code scanned (empty for a clerk's
    /// entry without it).
    CheckedIn {
        deputy: Uuid,
        at: DateTime<Utc>,
        code: String,
        mode: CheckInMode,
    },
    /// A deputy's speech at the activity.
    Speech {
        deputy: Uuid,
        topic: Option<String>,
        at: DateTime<Utc>,
    },
}

impl Event {
    /// The deputy the step is about.
    pub const fn deputy(&self) -> Uuid {
        match self {
            Self::Dispatched { deputy, .. }
            | Self::Accepted { deputy }
            | Self::Declined { deputy, .. }
            | Self::CheckedIn { deputy, .. }
            | Self::Speech { deputy, .. } => *deputy,
        }
    }
}

/// How far a deputy got with an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Participation {
    Invited,
    Declined,
    Accepted,
    CheckedIn,
}

/// Who took part in an activity. A check-in is final; before it, a deputy's answer to the
/// order is their latest acceptance or refusal by stamp (the fold reads events in stamp order,
/// so every order of arrival gives the same roster). A
/// deputy who checks in without having been dispatched (scanning the code at the venue) is
/// counted and listed as a walk-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub participants: BTreeMap<Uuid, Participation>,
    pub walk_ins: BTreeSet<Uuid>,
}

pub fn roster(events: &[Stamped<Event>]) -> Roster {
    let mut dispatched = BTreeSet::new();
    let mut out = Roster::default();
    for stamped in in_order(events) {
        let step = match &stamped.event {
            Event::Dispatched { deputy, .. } => {
                dispatched.insert(*deputy);
                Participation::Invited
            }
            Event::Accepted { .. } => Participation::Accepted,
            Event::Declined { .. } => Participation::Declined,
            Event::CheckedIn { .. } => Participation::CheckedIn,
            Event::Speech { .. } => continue,
        };
        let entry = out
            .participants
            .entry(stamped.event.deputy())
            .or_insert(step);
        *entry = match (*entry, step) {
            (Participation::CheckedIn, _) | (_, Participation::CheckedIn) => {
                Participation::CheckedIn
            }
            (current, Participation::Invited) => current,
            (_, answer) => answer,
        };
    }
    out.walk_ins = out
        .participants
        .keys()
        .filter(|d| !dispatched.contains(d))
        .copied()
        .collect();
    out
}

/// The events of one dispatch (发单) to deputies, each with the org unit it goes down to;
/// refused without a deputy.
pub fn dispatch(deputies: impl IntoIterator<Item = (Uuid, OrgCode)>) -> Result<Vec<Event>> {
    let events: Vec<Event> = deputies
        .into_iter()
        .map(|(deputy, to_org)| Event::Dispatched { deputy, to_org })
        .collect();
    if events.is_empty() {
        return Err(Error::invalid(
            "deputies",
            "a dispatch needs at least one deputy",
            "发单须至少指定一名代表",
        ));
    }
    Ok(events)
}

/// Checks a new step against the roster before it is recorded: only a dispatched deputy can
/// accept or decline; check-ins are open to anyone at the venue.
pub fn check(roster: &Roster, event: &Event) -> Result<()> {
    match event {
        Event::Accepted { deputy } | Event::Declined { deputy, .. }
            if !roster.participants.contains_key(deputy) =>
        {
            Err(Error::precondition(
                "deputy",
                "the activity was not dispatched to this deputy",
                "该活动未向此代表发单",
            ))
        }
        _ => Ok(()),
    }
}

/// The kinds of entry in a deputy's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DutyRecordKind {
    CheckIn,
    Speech,
    Suggestion,
    Motion,
    ReportBack,
    VoterVisit,
    Reception,
    OpinionHandled,
}

impl DutyRecordKind {
    pub const ALL: [Self; 8] = [
        Self::CheckIn,
        Self::Speech,
        Self::Suggestion,
        Self::Motion,
        Self::ReportBack,
        Self::VoterVisit,
        Self::Reception,
        Self::OpinionHandled,
    ];

    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::CheckIn => "活动签到",
            Self::Speech => "发言",
            Self::Suggestion => "提出建议",
            Self::Motion => "提出议案",
            Self::ReportBack => "述职",
            Self::VoterVisit => "走访选民",
            Self::Reception => "进站接待",
            Self::OpinionHandled => "办理群众意见",
        }
    }
}

/// One entry in a deputy's file (一人一档).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DutyRecord {
    pub id: Uuid,
    pub deputy: Uuid,
    pub kind: DutyRecordKind,
    /// The org unit the record belongs to (the deputy's unit where it was recorded).
    pub org: OrgCode,
    pub on: NaiveDate,
    /// The activity, for check-ins and speeches at an activity.
    pub activity: Option<Uuid>,
}

impl DutyRecord {
    pub fn new(
        id: Uuid,
        deputy: Uuid,
        kind: DutyRecordKind,
        org: OrgCode,
        on: NaiveDate,
        activity: Option<Uuid>,
    ) -> Result<Self> {
        if kind == DutyRecordKind::CheckIn && activity.is_none() {
            return Err(Error::invalid(
                "activity",
                "a check-in must name its activity",
                "签到记录须关联活动",
            ));
        }
        Ok(Self {
            id,
            deputy,
            kind,
            org,
            on,
            activity,
        })
    }
}

/// Records with repeated check-ins removed: for each (deputy, activity) the check-in with the
/// earliest date, then smallest id, is kept, so every node keeps the same one.
pub fn distinct(records: &[DutyRecord]) -> Vec<&DutyRecord> {
    let mut sorted: Vec<&DutyRecord> = records.iter().collect();
    sorted.sort_by_key(|r| (r.on, r.id));
    let mut seen_check_ins = BTreeSet::new();
    let mut seen_ids = BTreeSet::new();
    sorted
        .into_iter()
        .filter(|r| seen_ids.insert(r.id))
        .filter(|r| match (r.kind, r.activity) {
            (DutyRecordKind::CheckIn, Some(activity)) => {
                seen_check_ins.insert((r.deputy, activity))
            }
            _ => true,
        })
        .collect()
}

/// Points per kind of record: a setting of each congress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointWeights {
    weights: BTreeMap<DutyRecordKind, u32>,
}

impl Default for PointWeights {
    /// A starting point for a congress that has not set its own.
    fn default() -> Self {
        use DutyRecordKind::*;
        Self {
            weights: [
                (CheckIn, 2),
                (Speech, 3),
                (Suggestion, 5),
                (Motion, 10),
                (ReportBack, 10),
                (VoterVisit, 2),
                (Reception, 3),
                (OpinionHandled, 2),
            ]
            .into_iter()
            .collect(),
        }
    }
}

impl PointWeights {
    pub fn get(&self, kind: DutyRecordKind) -> u32 {
        self.weights.get(&kind).copied().unwrap_or(0)
    }

    /// Sets the weight of one kind; at most 1000 points per record.
    pub fn set(&mut self, kind: DutyRecordKind, weight: u32) -> Result<()> {
        if weight > 1000 {
            return Err(Error::invalid(
                "weight",
                format!("must be at most 1000, got {weight}"),
                format!("分值不得超过1000，实际为{weight}"),
            ));
        }
        self.weights.insert(kind, weight);
        Ok(())
    }
}

/// Points per deputy, derived from the records.
pub fn points(records: &[DutyRecord], weights: &PointWeights) -> BTreeMap<Uuid, u64> {
    let mut out = BTreeMap::new();
    for r in distinct(records) {
        *out.entry(r.deputy).or_insert(0) += u64::from(weights.get(r.kind));
    }
    out
}

/// One line of a ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    /// 1-based place; unique, ties broken as [`ranking`] says.
    pub position: usize,
    pub deputy: Uuid,
    pub points: u64,
    pub records: usize,
}

/// The ranking of deputies by points for the records of `org`'s subtree within `period`.
/// Higher points first; ties go to the deputy with more records, then to the smaller deputy
/// id, so every node prints the same order.
pub fn ranking(
    records: &[DutyRecord],
    weights: &PointWeights,
    tree: &OrgTree,
    org: &OrgCode,
    period: &Period,
) -> Vec<Ranked> {
    let mut totals: BTreeMap<Uuid, (u64, usize)> = BTreeMap::new();
    for r in distinct(records) {
        if period.contains(r.on) && tree.contains(org, &r.org) {
            let entry = totals.entry(r.deputy).or_insert((0, 0));
            entry.0 += u64::from(weights.get(r.kind));
            entry.1 += 1;
        }
    }
    let mut lines: Vec<(Uuid, u64, usize)> =
        totals.into_iter().map(|(d, (p, n))| (d, p, n)).collect();
    lines.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
    lines
        .into_iter()
        .enumerate()
        .map(|(i, (deputy, points, records))| Ranked {
            position: i + 1,
            deputy,
            points,
            records,
        })
        .collect()
}

/// A duty activity (履职活动): dispatch, acceptance, check-ins and speeches.
pub const KIND: KindDef = KindDef {
    id: 6,
    name: "activity",
    governed_as: RecordKind::Activity,
    fields: &[
        text_field(2, "kind", 40),
        text_field(3, "title", 100),
        field(4, "starts_at", FieldType::Int),
        text_field(5, "venue", 200),
        text_field(6, "qr_token", 64),
    ],
    sets: &[],
    events: &[
        EventDef {
            id: 1,
            name: "dispatched",
            step: Step::Dispatch,
            payload: &[
                required(1, "deputy", FieldType::Ref),
                required(2, "to_org", FieldType::Org),
            ],
        },
        EventDef {
            id: 2,
            name: "accepted",
            step: Step::Accept,
            payload: &[required(1, "deputy", FieldType::Ref)],
        },
        EventDef {
            id: 3,
            name: "checked_in",
            step: Step::CheckIn,
            payload: &[
                required(1, "deputy", FieldType::Ref),
                required(2, "qr_token", FieldType::Text),
                required(3, "at", FieldType::Int),
                // "scan": the deputy's own check-in with the activity's signed code; "proxy":
                // entered by a clerk on the deputy's behalf (代录).
                optional(4, "mode", FieldType::Text),
            ],
        },
        EventDef {
            id: 4,
            name: "speech",
            step: Step::CheckIn,
            payload: &[
                required(1, "deputy", FieldType::Ref),
                optional(2, "topic", FieldType::Text),
                required(3, "at", FieldType::Int),
            ],
        },
        EventDef {
            id: 5,
            name: "declined",
            step: Step::Accept,
            payload: &[
                required(1, "deputy", FieldType::Ref),
                optional(2, "reason", FieldType::Text),
            ],
        },
    ],
    reach: Reach::Normal,
    fingerprints: &[0x9675_ec53_ac72_f09b],
};

impl Coded for ActivityKind {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::Research, "research"),
        (Self::Inspection, "inspection"),
        (Self::LawEnforcementInspection, "law_enforcement_inspection"),
        (Self::SpecialInquiry, "special_inquiry"),
        (Self::Training, "training"),
        (Self::Publicity, "publicity"),
        (Self::ReceivingVoters, "receiving_voters"),
        (Self::GroupActivity, "group_activity"),
    ];
}

impl Coded for CheckInMode {
    const CODES: &'static [(Self, &'static str)] = &[(Self::Scan, "scan"), (Self::Proxy, "proxy")];
}

/// Unix milliseconds as a time (out of range: the epoch).
fn time_of(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

impl RecordEvent for Event {
    const KIND: &'static KindDef = &KIND;

    fn name(&self) -> &'static str {
        match self {
            Self::Dispatched { .. } => "dispatched",
            Self::Accepted { .. } => "accepted",
            Self::Declined { .. } => "declined",
            Self::CheckedIn { .. } => "checked_in",
            Self::Speech { .. } => "speech",
        }
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![("deputy", Value::Ref(self.deputy()))];
        // Absent optional text is not stored (as before the codec: an empty text is no value).
        let mut optional_text = |name, text: &Option<String>| {
            if let Some(t) = text.as_ref().filter(|t| !t.is_empty()) {
                out.push((name, Value::Text(t.clone())));
            }
        };
        match self {
            Self::Dispatched { to_org, .. } => out.push(("to_org", Value::Org(*to_org))),
            Self::Accepted { .. } => {}
            Self::Declined { reason, .. } => optional_text("reason", reason),
            Self::CheckedIn { at, code, mode, .. } => {
                out.push(("qr_token", Value::Text(code.clone())));
                out.push(("at", Value::Int(at.timestamp_millis())));
                out.push(("mode", Value::Text(mode.code().into())));
            }
            Self::Speech { topic, at, .. } => {
                optional_text("topic", topic);
                out.push(("at", Value::Int(at.timestamp_millis())));
            }
        }
        out
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        let deputy = p.id("deputy")?;
        let text = |name| p.text(name).filter(|t| !t.is_empty()).map(str::to_owned);
        Some(match name {
            "dispatched" => Self::Dispatched {
                deputy,
                to_org: p.org("to_org")?,
            },
            "accepted" => Self::Accepted { deputy },
            "declined" => Self::Declined {
                deputy,
                reason: text("reason"),
            },
            "checked_in" => Self::CheckedIn {
                deputy,
                at: time_of(p.int("at")?),
                code: p.text_or_empty("qr_token"),
                mode: p
                    .text("mode")
                    .and_then(CheckInMode::from_code)
                    .unwrap_or(CheckInMode::Proxy),
            },
            "speech" => Self::Speech {
                deputy,
                topic: text("topic"),
                at: time_of(p.int("at")?),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Stamp;
    use crate::org::code;

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, m, day).unwrap_or_default()
    }

    fn rec(n: u128, deputy: u128, kind: DutyRecordKind, org: &str, on: NaiveDate) -> DutyRecord {
        let activity = (kind == DutyRecordKind::CheckIn).then_some(Uuid::from_u128(900));
        DutyRecord::new(
            Uuid::from_u128(n),
            Uuid::from_u128(deputy),
            kind,
            code(org),
            on,
            activity,
        )
        .unwrap()
    }

    #[test]
    fn double_check_in_counts_once() {
        let w = PointWeights::default();
        let records = vec![
            rec(1, 7, DutyRecordKind::CheckIn, "370202001", d(3, 1)),
            rec(2, 7, DutyRecordKind::CheckIn, "370202001", d(3, 1)),
            rec(3, 7, DutyRecordKind::Speech, "370202001", d(3, 1)),
        ];
        assert_eq!(points(&records, &w)[&Uuid::from_u128(7)], 5);
        assert_eq!(distinct(&records)[0].id, Uuid::from_u128(1));
    }

    #[test]
    fn ranking_filters_by_subtree_and_period_with_deterministic_ties() {
        let w = PointWeights::default();
        let records = vec![
            rec(1, 2, DutyRecordKind::Suggestion, "370202001", d(2, 1)),
            rec(2, 1, DutyRecordKind::Suggestion, "370202002", d(2, 1)),
            rec(3, 3, DutyRecordKind::Motion, "370212001", d(2, 1)),
            rec(4, 4, DutyRecordKind::Motion, "370202001", d(5, 1)),
            rec(5, 5, DutyRecordKind::VoterVisit, "370202001", d(2, 1)),
            rec(6, 5, DutyRecordKind::Speech, "370202001", d(2, 2)),
        ];
        let q1 = Period::quarter(2024, 1).unwrap();
        let r = ranking(&records, &w, &OrgTree::demo(), &code("370202"), &q1);
        let order: Vec<(usize, u128, u64)> = r
            .iter()
            .map(|l| (l.position, l.deputy.as_u128(), l.points))
            .collect();
        // Deputy 5 ties with 1 and 2 on points but has two records.
        assert_eq!(order, vec![(1, 5, 5), (2, 1, 5), (3, 2, 5)]);
    }

    #[test]
    fn weights_are_configurable_and_bounded() {
        let mut w = PointWeights::default();
        w.set(DutyRecordKind::CheckIn, 7).unwrap();
        assert_eq!(w.get(DutyRecordKind::CheckIn), 7);
        let e = w.set(DutyRecordKind::CheckIn, 5000).unwrap_err();
        assert_eq!(e.field(), "weight");
        assert!(e.reason().contains("1000"));
    }

    #[test]
    fn check_in_needs_an_activity() {
        let e = DutyRecord::new(
            Uuid::nil(),
            Uuid::nil(),
            DutyRecordKind::CheckIn,
            code("370202001"),
            d(1, 1),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field(), "activity");
    }

    #[test]
    fn dispatch_accept_check_in() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let walk_in = Uuid::from_u128(3);
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let check_in = |deputy| Event::CheckedIn {
            deputy,
            at,
            code: String::new(),
            mode: CheckInMode::Proxy,
        };
        let to_org = code("370202001");
        let events = vec![
            Stamped::new(Stamp::new(3, 1, 3), check_in(a)),
            Stamped::new(Stamp::new(1, 1, 1), Event::Dispatched { deputy: a, to_org }),
            Stamped::new(Stamp::new(1, 1, 2), Event::Dispatched { deputy: b, to_org }),
            Stamped::new(Stamp::new(2, 1, 2), Event::Accepted { deputy: a }),
            Stamped::new(Stamp::new(3, 2, 1), check_in(walk_in)),
            Stamped::new(Stamp::new(4, 3, 1), check_in(a)),
            Stamped::new(
                Stamp::new(5, 3, 1),
                Event::Speech {
                    deputy: b,
                    topic: None,
                    at,
                },
            ),
        ];
        let r = roster(&events);
        assert_eq!(r.participants[&a], Participation::CheckedIn);
        assert_eq!(r.participants[&b], Participation::Invited);
        assert_eq!(r.walk_ins, [walk_in].into());
        let e = check(
            &r,
            &Event::Accepted {
                deputy: Uuid::from_u128(9),
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), "deputy");
        let e = dispatch(Vec::new()).unwrap_err();
        assert_eq!(e.field(), "deputies");
        assert_eq!(dispatch([(a, to_org), (b, to_org)]).map(|e| e.len()), Ok(2));
    }

    #[test]
    fn events_round_trip_through_their_payloads() {
        let deputy = Uuid::from_u128(7);
        let at = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_123).unwrap_or_default();
        let events = [
            Event::Dispatched {
                deputy,
                to_org: code("370202001"),
            },
            Event::Accepted { deputy },
            Event::Declined {
                deputy,
                reason: Some("出差".into()),
            },
            Event::Declined {
                deputy,
                reason: None,
            },
            Event::CheckedIn {
                deputy,
                at,
                code: "c1.x".into(),
                mode: CheckInMode::Scan,
            },
            Event::CheckedIn {
                deputy,
                at,
                code: String::new(),
                mode: CheckInMode::Proxy,
            },
            Event::Speech {
                deputy,
                topic: Some("养老".into()),
                at,
            },
            Event::Speech {
                deputy,
                topic: None,
                at,
            },
        ];
        for e in events {
            let payload = Payload(
                e.encode()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect(),
            );
            assert!(KIND.event(e.name()).is_some(), "{e:?}");
            assert_eq!(Event::decode(e.name(), &payload), Some(e));
        }
        // A check-in stored before modes existed reads as entered on the deputy's behalf.
        let old = Payload(
            [
                ("deputy".to_owned(), Value::Ref(deputy)),
                ("qr_token".to_owned(), Value::Text("t".into())),
                ("at".to_owned(), Value::Int(5)),
            ]
            .into(),
        );
        assert!(matches!(
            Event::decode("checked_in", &old),
            Some(Event::CheckedIn {
                mode: CheckInMode::Proxy,
                ..
            })
        ));
        for k in ActivityKind::ALL {
            assert_eq!(ActivityKind::from_code(k.code()), Some(k));
        }
    }

    #[test]
    fn activity_validation() {
        let draft = ActivityDraft {
            kind: ActivityKind::Research,
            title: "调".into(),
            organiser: "370202".into(),
            starts_at: DateTime::<Utc>::default(),
            venue: String::new(),
        };
        let e = Activity::parse(draft.clone(), Uuid::nil()).unwrap_err();
        assert_eq!(e.field(), "title");
        let ok = Activity::parse(
            ActivityDraft {
                title: "老旧小区改造调研".into(),
                ..draft
            },
            Uuid::nil(),
        );
        assert_eq!(ok.map(|a| a.kind.label_zh()), Ok("调研"));
    }
}
