//! Opinions from the people (社情民意, 码上见、马上办).
//!
//! An [`Opinion`] is raised at an org unit, which handles it first. Its workflow steps are
//! events; [`fold`] sorts them by stamp and applies each in turn:
//!
//! - `Routed` and `Resolved` count only when made by the unit now handling the opinion or one
//!   above it; a step made by a unit the opinion has since left (say, a township resolving it
//!   on one node while the county received the escalation on another) stays in the history,
//!   flagged, and changes nothing.
//! - `Escalated { from, to }` counts only when `from` is the handling unit and `to` its parent
//!   in the org code; the handling unit moves up, the route becomes `EscalatedUpward` and the
//!   whole history stays with the record. Two concurrent escalations of the same step count
//!   once; the second is flagged as a duplicate.
//! - Nothing moves a resolved opinion except a follow-up (`FollowedUp`), which closes it;
//!   later routing, escalation or a second resolution is flagged.
//!
//! The status is `Open` → `Handling(route)` → `Resolved` → `Closed`.

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, Reach, RecordEvent, Value, field, optional,
    required, text_field,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Flag, Stamp, Stamped, in_order};
use crate::org::{OrgCode, OrgTree};
use crate::person::rename;
use crate::{Error, Result, text};

/// Where the opinion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Source {
    Station,
    QrCode,
    Visit,
    Online,
}

impl Source {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Station => "进站反映",
            Self::QrCode => "扫码反映",
            Self::Visit => "走访收集",
            Self::Online => "网上反映",
        }
    }
}

/// The four ways an opinion is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpinionRoute {
    AnsweredOnSite,
    TransferredToTownship,
    AssignedToDepartment,
    EscalatedUpward,
}

impl OpinionRoute {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::AnsweredOnSite => "现场答复",
            Self::TransferredToTownship => "转交街道(乡镇)办理",
            Self::AssignedToDepartment => "交办部门落实",
            Self::EscalatedUpward => "逐级向上反映",
        }
    }
}

/// An opinion as entered, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpinionDraft {
    pub content: String,
    pub source: Source,
    pub org: String,
    pub station: Option<Uuid>,
    pub raised_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opinion {
    pub id: Uuid,
    pub content: String,
    pub source: Source,
    /// Where it was raised; the first handling unit.
    pub org: OrgCode,
    pub station: Option<Uuid>,
    pub raised_at: DateTime<Utc>,
}

impl Opinion {
    pub fn parse(draft: OpinionDraft, id: Uuid) -> Result<Self> {
        Ok(Self {
            id,
            content: text::bounded("content", &draft.content, 5, 2000)?,
            source: draft.source,
            org: crate::org::parse(&draft.org).map_err(|e| rename(e, "org"))?,
            station: draft.station,
            raised_at: draft.raised_at,
        })
    }
}

/// A step in handling an opinion. `by` is the org unit whose node recorded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Event {
    Routed {
        by: OrgCode,
        route: OpinionRoute,
        /// The department or township it went to, for the people reading the history.
        to: Option<String>,
        at: DateTime<Utc>,
    },
    Escalated {
        from: OrgCode,
        to: OrgCode,
        at: DateTime<Utc>,
    },
    Resolved {
        by: OrgCode,
        note: String,
        at: DateTime<Utc>,
    },
    FollowedUp {
        by: OrgCode,
        citizen_satisfied: bool,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Open,
    Handling(OpinionRoute),
    Resolved,
    Closed,
}

/// The folded state of one opinion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub handling_org: OrgCode,
    /// Every unit that has handled it, in order, the current one last.
    pub handled_by: Vec<OrgCode>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// How the unit where it was raised handled it, what the reports count it as (each opinion
    /// in exactly one of the four route columns, or none while unrouted): the last routing
    /// applied before it left that unit, and `EscalatedUpward` from its first escalation on,
    /// whatever the level above does with it next (that is the upper level's handling). The
    /// status keeps the route in force now.
    pub route: Option<OpinionRoute>,
    /// The stamps of the applied steps, in order.
    pub applied: Vec<Stamp>,
    pub flags: Vec<Flag>,
}

/// Folds an opinion's events into its state; see the module documentation for the rules.
pub fn fold(opinion: &Opinion, events: &[Stamped<Event>]) -> State {
    let mut s = State {
        status: Status::Open,
        handling_org: opinion.org,
        handled_by: vec![opinion.org],
        resolved_at: None,
        route: None,
        applied: Vec::new(),
        flags: Vec::new(),
    };
    for stamped in in_order(events) {
        match apply(&mut s, &stamped.event) {
            Ok(()) => s.applied.push(stamped.stamp),
            Err((reason, reason_zh)) => s.flags.push(Flag::new(stamped.stamp, reason, reason_zh)),
        }
    }
    s
}

type Refusal = (String, String);

fn refuse(reason: &str, reason_zh: &str) -> Refusal {
    (reason.to_owned(), reason_zh.to_owned())
}

fn apply(s: &mut State, event: &Event) -> std::result::Result<(), Refusal> {
    let finished = matches!(s.status, Status::Resolved | Status::Closed);
    let holds = |by: &OrgCode, s: &State| by.contains(s.handling_org);
    match event {
        Event::Routed { by, route, .. } => {
            if finished {
                return Err(refuse("routed after it was resolved", "已办结后又被分流"));
            }
            if !holds(by, s) {
                return Err(refuse(
                    "routed by a unit that no longer handles it",
                    "由已不再承办的单位分流",
                ));
            }
            if *route == OpinionRoute::EscalatedUpward {
                return Err(refuse(
                    "escalation must name its target",
                    "向上反映须指明上级单位",
                ));
            }
            s.status = Status::Handling(*route);
            if s.handled_by.len() == 1 {
                s.route = Some(*route);
            }
        }
        Event::Escalated { from, to, .. } => {
            if finished {
                return Err(refuse(
                    "escalated after it was resolved",
                    "已办结后又被上报",
                ));
            }
            if *from != s.handling_org {
                let duplicate = s.handled_by.contains(from) && s.handled_by.contains(to);
                return Err(if duplicate {
                    refuse("duplicate escalation", "重复上报")
                } else {
                    refuse(
                        "escalated by a unit that does not handle it",
                        "由非承办单位上报",
                    )
                });
            }
            if from.parent().as_ref() != Some(to) {
                return Err(refuse(
                    "escalation must go to the parent unit",
                    "只能向直接上级单位反映",
                ));
            }
            s.handling_org = *to;
            s.handled_by.push(*to);
            s.status = Status::Handling(OpinionRoute::EscalatedUpward);
            s.route = Some(OpinionRoute::EscalatedUpward);
        }
        Event::Resolved { by, at, .. } => {
            if finished {
                return Err(refuse("resolved twice", "重复办结"));
            }
            if !holds(by, s) {
                return Err(refuse(
                    "resolved by a unit that no longer handles it",
                    "由已不再承办的单位办结",
                ));
            }
            s.status = Status::Resolved;
            s.resolved_at = Some(*at);
        }
        Event::FollowedUp { .. } => {
            if s.status != Status::Resolved {
                return Err(refuse(
                    "followed up before it was resolved, or twice",
                    "尚未办结或已回访",
                ));
            }
            s.status = Status::Closed;
        }
    }
    Ok(())
}

/// Builds the escalation of an opinion to the parent of its handling unit.
pub fn escalate(state: &State, tree: &OrgTree, at: DateTime<Utc>) -> Result<Event> {
    if matches!(state.status, Status::Resolved | Status::Closed) {
        return Err(Error::precondition(
            "status",
            "a resolved opinion cannot be escalated",
            "已办结的意见不能再上报",
        ));
    }
    let to = state.handling_org.parent().ok_or_else(|| {
        Error::precondition(
            "handling_org",
            format!("{} has no level above it in the mesh", state.handling_org),
            format!("{} 已是最高层级，无法继续上报", state.handling_org),
        )
    })?;
    tree.require("handling_org", &to)?;
    Ok(Event::Escalated {
        from: state.handling_org,
        to,
        at,
    })
}

/// Checks a new step before it is recorded, with the errors a person sees.
pub fn check(state: &State, event: &Event) -> Result<()> {
    let mut trial = state.clone();
    if let Event::Resolved { note, .. } = event {
        text::bounded("note", note, 2, 2000)?;
    }
    if let Event::Routed { to: Some(to), .. } = event {
        text::bounded("to", to, 2, 100)?;
    }
    apply(&mut trial, event).map_err(|(reason, reason_zh)| {
        let field = match event {
            Event::Routed { .. } => "route",
            Event::Escalated { .. } => "to",
            Event::Resolved { .. } | Event::FollowedUp { .. } => "status",
        };
        Error::precondition(field, reason, reason_zh)
    })
}

impl Coded for Source {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::Station, "station"),
        (Self::QrCode, "qr_code"),
        (Self::Visit, "visit"),
        (Self::Online, "online"),
    ];
}

impl Coded for OpinionRoute {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::AnsweredOnSite, "answered_on_site"),
        (Self::TransferredToTownship, "transferred_to_township"),
        (Self::AssignedToDepartment, "assigned_to_department"),
        (Self::EscalatedUpward, "escalated_upward"),
    ];
}

impl Event {
    /// When the step was taken.
    pub const fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Routed { at, .. }
            | Self::Escalated { at, .. }
            | Self::Resolved { at, .. }
            | Self::FollowedUp { at, .. } => *at,
        }
    }
}

/// Every step is written for the unit handling the opinion (payload field 0 `org`): that is
/// `by` (`from` of an escalation) when read back.
impl RecordEvent for Event {
    const KIND: &'static KindDef = &KIND;

    fn name(&self) -> &'static str {
        match self {
            Self::Routed { .. } => "routed",
            Self::Escalated { .. } => "escalated",
            Self::Resolved { .. } => "resolved",
            Self::FollowedUp { .. } => "followed_up",
        }
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        let mut out = match self {
            Self::Routed { route, to, .. } => {
                let mut out = vec![("route", Value::Text(route.code().into()))];
                if let Some(to) = to.as_ref().filter(|t| !t.is_empty()) {
                    out.push(("to", Value::Text(to.clone())));
                }
                out
            }
            Self::Escalated { to, .. } => vec![("to", Value::Org(*to))],
            Self::Resolved { note, .. } => vec![("note", Value::Text(note.clone()))],
            Self::FollowedUp {
                citizen_satisfied, ..
            } => vec![("citizen_satisfied", Value::Bool(*citizen_satisfied))],
        };
        out.push(("at", Value::Int(self.at().timestamp_millis())));
        out
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        let by = p.org("org")?;
        let at = DateTime::<Utc>::from_timestamp_millis(p.int("at")?)?;
        Some(match name {
            "routed" => Self::Routed {
                by,
                route: OpinionRoute::from_code(p.text("route")?)?,
                to: p.text("to").filter(|t| !t.is_empty()).map(str::to_owned),
                at,
            },
            "escalated" => Self::Escalated {
                from: by,
                to: p.org("to")?,
                at,
            },
            "resolved" => Self::Resolved {
                by,
                note: p.text_or_empty("note"),
                at,
            },
            "followed_up" => Self::FollowedUp {
                by,
                citizen_satisfied: p.bool("citizen_satisfied")?,
                at,
            },
            _ => return None,
        })
    }
}

/// A citizen's opinion (社情民意), handled by the unit now handling it.
pub const KIND: KindDef = KindDef {
    id: 7,
    name: "opinion",
    governed_as: RecordKind::Opinion,
    fields: &[
        text_field(2, "content", 2000),
        text_field(3, "source", 20),
        field(4, "station", FieldType::Ref),
        field(5, "raised_at", FieldType::Int),
    ],
    sets: &[],
    events: &[
        EventDef {
            id: 1,
            name: "routed",
            step: Step::Route,
            payload: &[
                required(1, "route", FieldType::Text),
                optional(2, "to", FieldType::Text),
                required(3, "at", FieldType::Int),
            ],
        },
        EventDef {
            id: 2,
            name: "escalated",
            step: Step::Escalate,
            payload: &[
                required(1, "to", FieldType::Org),
                required(2, "at", FieldType::Int),
            ],
        },
        EventDef {
            id: 3,
            name: "resolved",
            step: Step::Resolve,
            payload: &[
                required(1, "note", FieldType::Text),
                required(2, "at", FieldType::Int),
            ],
        },
        EventDef {
            id: 4,
            name: "followed_up",
            step: Step::FollowUp,
            payload: &[
                required(1, "citizen_satisfied", FieldType::Bool),
                required(2, "at", FieldType::Int),
            ],
        },
    ],
    reach: Reach::Normal,
    fingerprints: &[0x77f5_0516_3589_c244],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::code;

    fn at(n: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + n, 0).unwrap_or_default()
    }

    fn opinion() -> Opinion {
        Opinion::parse(
            OpinionDraft {
                content: "小区门口路灯损坏，夜间出行不便".into(),
                source: Source::QrCode,
                org: "370202001".into(),
                station: None,
                raised_at: at(0),
            },
            Uuid::nil(),
        )
        .unwrap()
    }

    fn ev(clock: u64, actor: u64, event: Event) -> Stamped<Event> {
        Stamped::new(Stamp::new(clock, actor, clock), event)
    }

    #[test]
    fn every_step_reads_back_as_written() {
        let by = code("370202001");
        let events = [
            Event::Routed {
                by,
                route: OpinionRoute::AssignedToDepartment,
                to: Some("区城市管理局".into()),
                at: at(1),
            },
            Event::Routed {
                by,
                route: OpinionRoute::AnsweredOnSite,
                to: None,
                at: at(2),
            },
            Event::Escalated {
                from: by,
                to: code("370202"),
                at: at(3),
            },
            Event::Resolved {
                by,
                note: "已修复".into(),
                at: at(4),
            },
            Event::FollowedUp {
                by,
                citizen_satisfied: false,
                at: at(5),
            },
        ];
        for event in events {
            let mut payload = Payload::default();
            payload.0.insert("org".into(), Value::Org(by));
            for (name, value) in event.encode() {
                payload.0.insert(name.into(), value);
            }
            assert_eq!(Event::decode(event.name(), &payload), Some(event.clone()));
            assert!(KIND.event(event.name()).is_some());
        }
        for route in [
            OpinionRoute::AnsweredOnSite,
            OpinionRoute::TransferredToTownship,
            OpinionRoute::AssignedToDepartment,
            OpinionRoute::EscalatedUpward,
        ] {
            assert_eq!(OpinionRoute::from_code(route.code()), Some(route));
        }
        for source in [
            Source::Station,
            Source::QrCode,
            Source::Visit,
            Source::Online,
        ] {
            assert_eq!(Source::from_code(source.code()), Some(source));
        }
    }

    #[test]
    fn escalation_moves_up_and_keeps_history() {
        let o = opinion();
        let tree = OrgTree::demo();
        let s = fold(&o, &[]);
        let e1 = escalate(&s, &tree, at(1)).unwrap();
        let s = fold(&o, &[ev(1, 1, e1.clone())]);
        assert_eq!(s.handling_org, code("370202"));
        assert_eq!(s.status, Status::Handling(OpinionRoute::EscalatedUpward));
        let e2 = escalate(&s, &tree, at(2)).unwrap();
        let s = fold(&o, &[ev(1, 1, e1), ev(2, 2, e2)]);
        assert_eq!(s.handling_org, code("370200"));
        assert_eq!(s.handled_by.len(), 3);
        let e = escalate(&s, &tree, at(3)).unwrap_err();
        assert_eq!(e.field(), "handling_org");
        assert!(matches!(e, Error::Precondition { .. }));
    }

    #[test]
    fn an_escalated_opinion_counts_as_escalated_where_it_was_raised() {
        let o = opinion();
        let tree = OrgTree::demo();
        let by = code("370202001");
        let routed = Event::Routed {
            by,
            route: OpinionRoute::AssignedToDepartment,
            to: Some("街道城管科".into()),
            at: at(1),
        };
        let s = fold(&o, &[ev(1, 1, routed.clone())]);
        assert_eq!(s.route, Some(OpinionRoute::AssignedToDepartment));
        let up = escalate(&s, &tree, at(2)).unwrap();
        // The county then assigns it to a department of its own and resolves it: the street
        // still escalated it.
        let county = Event::Routed {
            by: code("370202"),
            route: OpinionRoute::AssignedToDepartment,
            to: Some("区城市管理局".into()),
            at: at(3),
        };
        let s = fold(&o, &[ev(1, 1, routed), ev(1, 2, up), ev(2, 1, county)]);
        assert_eq!(
            s.status,
            Status::Handling(OpinionRoute::AssignedToDepartment)
        );
        assert_eq!(s.route, Some(OpinionRoute::EscalatedUpward));
        assert_eq!(fold(&o, &[]).route, None);
    }

    #[test]
    fn stale_resolution_is_flagged_not_applied() {
        let o = opinion();
        let events = vec![
            ev(
                1,
                2,
                Event::Escalated {
                    from: code("370202001"),
                    to: code("370202"),
                    at: at(1),
                },
            ),
            // Concurrently, the street resolved it on its own node; it sorts after.
            ev(
                1,
                3,
                Event::Resolved {
                    by: code("370202001"),
                    note: "已修复".into(),
                    at: at(1),
                },
            ),
            ev(
                2,
                2,
                Event::Escalated {
                    from: code("370202001"),
                    to: code("370202"),
                    at: at(1),
                },
            ),
        ];
        let s = fold(&o, &events);
        assert_eq!(s.status, Status::Handling(OpinionRoute::EscalatedUpward));
        assert_eq!(s.flags.len(), 2);
        assert!(s.flags[0].reason.contains("no longer handles"));
        assert!(s.flags[1].reason.contains("duplicate"));
    }

    #[test]
    fn resolve_then_follow_up_closes() {
        let o = opinion();
        let by = code("370202001");
        let events = vec![
            ev(
                1,
                1,
                Event::Routed {
                    by,
                    route: OpinionRoute::AssignedToDepartment,
                    to: Some("区城市管理局".into()),
                    at: at(1),
                },
            ),
            ev(
                2,
                1,
                Event::Resolved {
                    by,
                    note: "已修复".into(),
                    at: at(2),
                },
            ),
            ev(
                3,
                1,
                Event::FollowedUp {
                    by,
                    citizen_satisfied: true,
                    at: at(3),
                },
            ),
        ];
        let s = fold(&o, &events);
        assert_eq!(s.status, Status::Closed);
        assert_eq!(s.resolved_at, Some(at(2)));
        let e = check(
            &s,
            &Event::Resolved {
                by,
                note: "再次".into(),
                at: at(4),
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), "status");
        assert!(e.reason().contains("twice"));
    }

    #[test]
    fn refusals_name_the_field() {
        let o = opinion();
        let s = fold(&o, &[]);
        let e = check(
            &s,
            &Event::FollowedUp {
                by: o.org,
                citizen_satisfied: true,
                at: at(1),
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), "status");
        let e = check(
            &s,
            &Event::Resolved {
                by: o.org,
                note: "好".into(),
                at: at(1),
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), "note");
        let e = check(
            &s,
            &Event::Routed {
                by: o.org,
                route: OpinionRoute::EscalatedUpward,
                to: None,
                at: at(1),
            },
        )
        .unwrap_err();
        assert_eq!(e.field(), "route");
        let e = check(
            &s,
            &Event::Escalated {
                from: o.org,
                to: code("370200"),
                at: at(1),
            },
        )
        .unwrap_err();
        assert!(e.reason().contains("parent"));
        let e = Opinion::parse(
            OpinionDraft {
                content: "短".into(),
                ..OpinionDraft {
                    content: String::new(),
                    source: Source::Visit,
                    org: "370202001".into(),
                    station: None,
                    raised_at: at(0),
                }
            },
            Uuid::nil(),
        )
        .unwrap_err();
        assert_eq!(e.field(), "content");
    }
}
