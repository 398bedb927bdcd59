//! Stations (代表之家、站、点) where deputies meet the people, and the Qingdao 八有四公开
//! standard they are checked against.

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, Reach, RecordEvent, Value, field, id_list,
    optional, required, text_field,
};
use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::org::OrgCode;
use crate::person::rename;
use crate::{Error, Result, text};

/// The kind of place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StationKind {
    Home,
    Station,
    Point,
    Online,
    LegislativeContactPoint,
}

impl StationKind {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Home => "代表之家",
            Self::Station => "代表联络站",
            Self::Point => "代表联络点(室)",
            Self::Online => "网上代表联络站",
            Self::LegislativeContactPoint => "基层立法联系点",
        }
    }
}

/// Whether a checklist item is one of the eight "has" items or the four published items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChecklistGroup {
    Has,
    Published,
}

/// One item of 八有四公开.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ChecklistItem {
    Premises,
    Information,
    Rules,
    Plan,
    Files,
    Materials,
    Equipment,
    OnlinePlatform,
    DeputyInfoPublished,
    ReceptionPlanPublished,
    WorkStatusPublished,
    OperationStatusPublished,
}

impl ChecklistItem {
    pub const ALL: [Self; 12] = [
        Self::Premises,
        Self::Information,
        Self::Rules,
        Self::Plan,
        Self::Files,
        Self::Materials,
        Self::Equipment,
        Self::OnlinePlatform,
        Self::DeputyInfoPublished,
        Self::ReceptionPlanPublished,
        Self::WorkStatusPublished,
        Self::OperationStatusPublished,
    ];

    pub const fn group(self) -> ChecklistGroup {
        match self {
            Self::DeputyInfoPublished
            | Self::ReceptionPlanPublished
            | Self::WorkStatusPublished
            | Self::OperationStatusPublished => ChecklistGroup::Published,
            _ => ChecklistGroup::Has,
        }
    }

    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Premises => "有场所",
            Self::Information => "有信息",
            Self::Rules => "有制度",
            Self::Plan => "有计划",
            Self::Files => "有档案",
            Self::Materials => "有资料",
            Self::Equipment => "有设备",
            Self::OnlinePlatform => "有网络平台",
            Self::DeputyInfoPublished => "代表信息公开",
            Self::ReceptionPlanPublished => "接待安排公开",
            Self::WorkStatusPublished => "工作情况公开",
            Self::OperationStatusPublished => "运行情况公开",
        }
    }

    pub const fn label_en(self) -> &'static str {
        match self {
            Self::Premises => "has premises",
            Self::Information => "has information",
            Self::Rules => "has rules",
            Self::Plan => "has a plan",
            Self::Files => "has files",
            Self::Materials => "has materials",
            Self::Equipment => "has equipment",
            Self::OnlinePlatform => "has an online platform",
            Self::DeputyInfoPublished => "deputy information published",
            Self::ReceptionPlanPublished => "reception plan published",
            Self::WorkStatusPublished => "work status published",
            Self::OperationStatusPublished => "operation status published",
        }
    }
}

/// The items a station meets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checklist {
    pub met: BTreeSet<ChecklistItem>,
}

/// How far a station meets the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completeness {
    pub has_met: usize,
    pub has_total: usize,
    pub published_met: usize,
    pub published_total: usize,
}

impl Completeness {
    pub fn is_complete(&self) -> bool {
        self.has_met == self.has_total && self.published_met == self.published_total
    }
}

impl Checklist {
    pub fn with(mut self, item: ChecklistItem) -> Self {
        self.met.insert(item);
        self
    }

    pub fn complete() -> Self {
        Self {
            met: ChecklistItem::ALL.into_iter().collect(),
        }
    }

    /// The items not yet met, in the standard's order.
    pub fn missing(&self) -> Vec<ChecklistItem> {
        ChecklistItem::ALL
            .into_iter()
            .filter(|i| !self.met.contains(i))
            .collect()
    }

    pub fn completeness(&self) -> Completeness {
        let count = |g| {
            ChecklistItem::ALL
                .into_iter()
                .filter(|i| i.group() == g)
                .map(|i| usize::from(self.met.contains(&i)))
                .fold((0, 0), |(met, total), m| (met + m, total + 1))
        };
        let (has_met, has_total) = count(ChecklistGroup::Has);
        let (published_met, published_total) = count(ChecklistGroup::Published);
        Completeness {
            has_met,
            has_total,
            published_met,
            published_total,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.completeness().is_complete()
    }
}

/// A station as entered, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StationDraft {
    pub name: String,
    pub kind: Option<StationKind>,
    pub org: String,
    pub address: String,
    pub checklist: Vec<ChecklistItem>,
}

/// A validated station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Station {
    pub id: Uuid,
    pub name: String,
    pub kind: StationKind,
    pub org: OrgCode,
    /// Street address; an online station has none.
    pub address: Option<String>,
    pub checklist: Checklist,
}

impl Station {
    pub fn parse(draft: StationDraft, id: Uuid) -> Result<Self> {
        let name = text::bounded("name", &draft.name, 2, 50)?;
        let kind = draft
            .kind
            .ok_or_else(|| Error::invalid("kind", "is required", "站点类型为必填项"))?;
        let org = crate::org::parse(&draft.org).map_err(|e| rename(e, "org"))?;
        let address = text::optional("address", Some(&draft.address), 200)?;
        if address.is_none() && kind != StationKind::Online {
            return Err(Error::invalid(
                "address",
                "is required for a physical station",
                "实体站点须填写地址",
            ));
        }
        Ok(Self {
            id,
            name,
            kind,
            org,
            address,
            checklist: Checklist {
                met: draft.checklist.into_iter().collect(),
            },
        })
    }
}

impl Coded for StationKind {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::Home, "home"),
        (Self::Station, "station"),
        (Self::Point, "point"),
        (Self::Online, "online"),
        (Self::LegislativeContactPoint, "legislative_contact_point"),
    ];
}

impl ChecklistItem {
    /// The station field that holds whether the item is met ([`CHECKLIST_FIELDS`]).
    pub fn field_name(self) -> &'static str {
        let i = Self::ALL
            .iter()
            .position(|i| *i == self)
            .unwrap_or_default();
        CHECKLIST_FIELDS[i].0
    }
}

/// A step recorded on a station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// 接待: a reception day; each deputy present gets a duty record.
    Reception {
        deputies: Vec<Uuid>,
        on: NaiveDate,
        note: Option<String>,
    },
}

impl RecordEvent for Event {
    const KIND: &'static KindDef = &KIND;

    fn name(&self) -> &'static str {
        match self {
            Self::Reception { .. } => "reception",
        }
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        match self {
            Self::Reception { deputies, on, note } => {
                let mut out = vec![
                    ("deputies", Value::Text(id_list(deputies.iter().copied()))),
                    ("on", Value::Date(*on)),
                ];
                if let Some(note) = note.as_ref().filter(|n| !n.is_empty()) {
                    out.push(("note", Value::Text(note.clone())));
                }
                out
            }
        }
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        match name {
            "reception" => Some(Self::Reception {
                deputies: p.ids("deputies"),
                on: p.date("on")?,
                note: p.text("note").filter(|n| !n.is_empty()).map(str::to_owned),
            }),
            _ => None,
        }
    }
}

/// A station (家站点), its residents, receptions and the 八有四公开 checklist (fields 10..=21,
/// in the standard's order, see `CHECKLIST_FIELDS`).
pub const KIND: KindDef = KindDef {
    id: 5,
    name: "station",
    governed_as: RecordKind::Station,
    fields: &[
        text_field(2, "name", 50),
        text_field(3, "kind", 40),
        text_field(4, "address", 200),
        text_field(5, "qr_token", 64),
        field(10, "premises", FieldType::Bool),
        field(11, "information", FieldType::Bool),
        field(12, "rules", FieldType::Bool),
        field(13, "plan", FieldType::Bool),
        field(14, "files", FieldType::Bool),
        field(15, "materials", FieldType::Bool),
        field(16, "equipment", FieldType::Bool),
        field(17, "online_platform", FieldType::Bool),
        field(18, "deputy_info_published", FieldType::Bool),
        field(19, "reception_plan_published", FieldType::Bool),
        field(20, "work_status_published", FieldType::Bool),
        field(21, "operation_status_published", FieldType::Bool),
    ],
    sets: &[(1, "residents")],
    events: &[EventDef {
        id: 1,
        name: "reception",
        step: Step::Edit,
        payload: &[
            required(1, "deputies", FieldType::Text),
            required(2, "on", FieldType::Date),
            optional(3, "note", FieldType::Text),
        ],
    }],
    reach: Reach::Normal,
    fingerprints: &[0xc2f9_5778_b078_1102],
};

/// The 八有四公开 checklist items and their station field ids, in the standard's order.
pub const CHECKLIST_FIELDS: [(&str, u16); 12] = [
    ("premises", 10),
    ("information", 11),
    ("rules", 12),
    ("plan", 13),
    ("files", 14),
    ("materials", 15),
    ("equipment", 16),
    ("online_platform", 17),
    ("deputy_info_published", 18),
    ("reception_plan_published", 19),
    ("work_status_published", 20),
    ("operation_status_published", 21),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_has_and_four_published() {
        let c = Checklist::default().completeness();
        assert_eq!((c.has_total, c.published_total), (8, 4));
        assert!(!c.is_complete());
        assert!(Checklist::complete().is_complete());
        let partial = Checklist::default()
            .with(ChecklistItem::Premises)
            .with(ChecklistItem::WorkStatusPublished);
        let c = partial.completeness();
        assert_eq!((c.has_met, c.published_met), (1, 1));
        assert_eq!(partial.missing().len(), 10);
        assert_eq!(partial.missing()[0].label_zh(), "有信息");
        for item in ChecklistItem::ALL {
            assert!(!item.label_zh().is_empty() && !item.label_en().is_empty());
        }
    }

    #[test]
    fn a_reception_reads_back_as_written() {
        let on = NaiveDate::from_ymd_opt(2026, 3, 14).unwrap();
        for note in [None, Some("接待群众12人".to_owned())] {
            let event = Event::Reception {
                deputies: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
                on,
                note,
            };
            let mut payload = Payload::default();
            for (name, value) in event.encode() {
                payload.0.insert(name.into(), value);
            }
            assert_eq!(Event::decode(event.name(), &payload), Some(event.clone()));
            assert!(KIND.event(event.name()).is_some());
        }
        for kind in [
            StationKind::Home,
            StationKind::Station,
            StationKind::Point,
            StationKind::Online,
            StationKind::LegislativeContactPoint,
        ] {
            assert_eq!(StationKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(ChecklistItem::Premises.field_name(), "premises");
        assert_eq!(
            ChecklistItem::OperationStatusPublished.field_name(),
            "operation_status_published"
        );
    }

    fn draft() -> StationDraft {
        StationDraft {
            name: "八大峡街道人大代表联络站".into(),
            kind: Some(StationKind::Station),
            org: "370202001".into(),
            address: "市南区某路1号".into(),
            checklist: vec![ChecklistItem::Premises],
        }
    }

    #[test]
    fn station_validation() {
        let s = Station::parse(draft(), Uuid::nil()).unwrap();
        assert_eq!(s.kind.label_zh(), "代表联络站");
        let online = StationDraft {
            kind: Some(StationKind::Online),
            address: String::new(),
            ..draft()
        };
        assert!(Station::parse(online, Uuid::nil()).is_ok());
        let cases = [
            (
                StationDraft {
                    address: " ".into(),
                    ..draft()
                },
                "address",
                "required",
            ),
            (
                StationDraft {
                    address: "路".repeat(201),
                    ..draft()
                },
                "address",
                "1 to 200",
            ),
            (
                StationDraft {
                    kind: None,
                    ..draft()
                },
                "kind",
                "required",
            ),
            (
                StationDraft {
                    name: "站".repeat(51),
                    ..draft()
                },
                "name",
                "2 to 50",
            ),
            (
                StationDraft {
                    org: "x".into(),
                    ..draft()
                },
                "org",
                "digits",
            ),
        ];
        for (d, field, reason) in cases {
            let e = Station::parse(d, Uuid::nil()).unwrap_err();
            assert_eq!(e.field(), field);
            assert!(e.reason().contains(reason), "{}", e.reason());
        }
    }
}
