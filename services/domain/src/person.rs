//! People: deputies (人大代表) and their personal data.
//!
//! ID-card and phone numbers are personal data. Their `Debug` and `Display` mask them, so a
//! stray log line or report cell never shows one; code that must store or compare the full
//! value asks for it by name (`as_unmasked_str`).

use crate::authority::{RecordKind, Step};
use crate::record::{
    Coded, EventDef, FieldType, KindDef, Payload, Reach, RecordEvent, Value, field, optional,
    required, text_field,
};
use std::collections::BTreeSet;
use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::org::{Level, OrgCode};
use crate::{Error, Result, text};

/// A resident identity card number (居民身份证号码, GB 11643-1999).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdCardNumber(String);

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: [u8; 11] = *b"10X98765432";

impl IdCardNumber {
    /// Validates the format, the checksum and that the birth date is a real calendar date.
    /// Use [`IdCardNumber::parse`] at the edge, where today's date is known.
    fn validate(raw: &str) -> Result<Self> {
        let value = raw.trim().to_ascii_uppercase();
        let bytes = value.as_bytes();
        let well_formed = bytes.len() == 18
            && bytes[..17].iter().all(u8::is_ascii_digit)
            && (bytes[17].is_ascii_digit() || bytes[17] == b'X');
        if !well_formed {
            return Err(Error::invalid(
                "id_card_number",
                "must be 17 digits followed by a digit or X",
                "身份证号须为17位数字加1位数字或X",
            ));
        }
        let sum: u32 = bytes[..17]
            .iter()
            .zip(ID_WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        // `sum % 11` is below 11, the length of the table.
        if ID_CHECK[(sum % 11) as usize] != bytes[17] {
            return Err(Error::invalid(
                "id_card_number",
                "checksum digit does not match",
                "身份证号校验位不正确",
            ));
        }
        if bytes[0] == b'0' {
            return Err(Error::invalid(
                "id_card_number",
                "region code is not valid",
                "身份证号地区码无效",
            ));
        }
        let id = Self(value);
        match id.birth_date() {
            Some(date) if date.year() >= 1900 => Ok(id),
            _ => Err(Error::invalid(
                "id_card_number",
                "birth date is not a valid date",
                "身份证号中的出生日期无效",
            )),
        }
    }

    /// Parses a number entered by a person: format, checksum, and a plausible birth date (not
    /// after `today`, age at most 130).
    pub fn parse(raw: &str, today: NaiveDate) -> Result<Self> {
        let id = Self::validate(raw)?;
        let born = id.birth_date().unwrap_or(today);
        let plausible = born <= today && today.year() - born.year() <= 130;
        if !plausible {
            return Err(Error::invalid(
                "id_card_number",
                "birth date is not plausible",
                "身份证号中的出生日期不合理",
            ));
        }
        Ok(id)
    }

    /// The birth date encoded in positions 7–14.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        let digits = self.0.get(6..14)?;
        NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
    }

    /// The gender encoded in position 17 (odd: male).
    pub fn gender(&self) -> Gender {
        match self.0.as_bytes().get(16) {
            Some(d) if (d - b'0') % 2 == 1 => Gender::Male,
            _ => Gender::Female,
        }
    }

    /// The masked form for display: `3702**********123X`.
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..4], "*".repeat(10), &self.0[14..])
    }

    /// The full number, for storage at the level that needs it. Never log or report it.
    pub fn as_unmasked_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdCardNumber {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::validate(&raw)
    }
}

impl From<IdCardNumber> for String {
    fn from(id: IdCardNumber) -> Self {
        id.0
    }
}

impl fmt::Debug for IdCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdCardNumber({})", self.masked())
    }
}

impl fmt::Display for IdCardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// What kind of number a [`Phone`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhoneKind {
    Mobile,
    Landline,
}

/// A mainland phone number: an 11-digit mobile (`1[3-9]` + 9 digits) or a landline with area
/// code (`0` + 2–3 digits, optional `-`, 7–8 digits). Stored without spaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self> {
        let value: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let mobile = value.len() == 11
            && digits(&value)
            && value.starts_with('1')
            && matches!(value.as_bytes()[1], b'3'..=b'9');
        let landline = {
            let (area, local) = match value.split_once('-') {
                Some((a, l)) => (a.to_owned(), l.to_owned()),
                // Without a hyphen, 3-digit area codes (010, 02x) give 10–11 digits and
                // 4-digit ones 11–12; mobiles were matched above.
                None if value.starts_with("01") || value.starts_with("02") => {
                    let (a, l) = value.split_at(value.len().min(3));
                    (a.to_owned(), l.to_owned())
                }
                None => {
                    let (a, l) = value.split_at(value.len().min(4));
                    (a.to_owned(), l.to_owned())
                }
            };
            area.starts_with('0')
                && (3..=4).contains(&area.len())
                && digits(&area)
                && (7..=8).contains(&local.len())
                && digits(&local)
        };
        if mobile || landline {
            Ok(Self(value))
        } else {
            Err(Error::invalid(
                "phone",
                "must be an 11-digit mobile number or a landline with area code",
                "须为11位手机号码或带区号的固定电话",
            ))
        }
    }

    pub fn kind(&self) -> PhoneKind {
        if self.0.starts_with('1') {
            PhoneKind::Mobile
        } else {
            PhoneKind::Landline
        }
    }

    /// The masked form: all but the first 3 and last 4 characters hidden.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let n = chars.len();
        chars
            .iter()
            .enumerate()
            .map(|(i, c)| if i < 3 || i + 4 >= n { *c } else { '*' })
            .collect()
    }

    /// The full number, for contacting the person. Never log or report it.
    pub fn as_unmasked_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        Self::parse(&raw)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> Self {
        p.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Male => "男",
            Self::Female => "女",
        }
    }
}

/// The level of congress a person is a deputy of; one person may hold two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeputyLevel {
    National,
    Provincial,
    City,
    County,
    Township,
}

impl DeputyLevel {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::National => "全国人大代表",
            Self::Provincial => "省人大代表",
            Self::City => "市人大代表",
            Self::County => "县(区)人大代表",
            Self::Township => "乡镇人大代表",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeputyStatus {
    Serving,
    Terminated,
}

impl DeputyStatus {
    pub const fn label_zh(self) -> &'static str {
        match self {
            Self::Serving => "在任",
            Self::Terminated => "终止",
        }
    }
}

/// A deputy as entered at the console or received over the API, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeputyDraft {
    pub id: Option<Uuid>,
    pub name: String,
    pub levels: Vec<DeputyLevel>,
    pub org: String,
    pub constituency: String,
    pub term: u32,
    pub gender: Option<Gender>,
    pub ethnicity: String,
    pub occupation: String,
    pub phone: Option<String>,
    pub id_card_number: Option<String>,
    pub status: Option<DeputyStatus>,
}

/// A validated deputy (人大代表).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deputy {
    pub id: Uuid,
    pub name: String,
    pub levels: BTreeSet<DeputyLevel>,
    pub org: OrgCode,
    pub constituency: String,
    /// The congress term (届) the deputy serves, 1–99.
    pub term: u8,
    pub gender: Gender,
    pub ethnicity: String,
    pub occupation: Option<String>,
    pub phone: Option<Phone>,
    pub id_card_number: Option<IdCardNumber>,
    pub status: DeputyStatus,
}

impl Deputy {
    /// Validates a draft. `new_id` is used when the draft carries none (ids are minted where a
    /// record is created); `today` bounds the birth date in the ID-card number.
    pub fn parse(draft: DeputyDraft, new_id: Uuid, today: NaiveDate) -> Result<Self> {
        let name = text::bounded("name", &draft.name, 2, 30)?;
        let levels: BTreeSet<DeputyLevel> = draft.levels.into_iter().collect();
        if levels.is_empty() {
            return Err(Error::invalid(
                "levels",
                "a deputy needs at least one level",
                "至少须填写一个代表层级",
            ));
        }
        let org = crate::org::parse(&draft.org).map_err(|e| rename(e, "org"))?;
        let constituency = text::bounded("constituency", &draft.constituency, 2, 100)?;
        let term = u8::try_from(draft.term)
            .ok()
            .filter(|t| (1..=99).contains(t))
            .ok_or_else(|| {
                Error::invalid(
                    "term",
                    format!("must be 1 to 99, got {}", draft.term),
                    format!("届次须为1至99，实际为{}", draft.term),
                )
            })?;
        let ethnicity = text::bounded("ethnicity", &draft.ethnicity, 2, 20)?;
        let occupation = text::optional("occupation", Some(&draft.occupation), 100)?;
        let phone = match draft.phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(Phone::parse(raw)?),
        };
        let id_card_number = match draft.id_card_number.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(IdCardNumber::parse(raw, today)?),
        };
        let gender = match (draft.gender, &id_card_number) {
            (Some(g), Some(id)) if g != id.gender() => return Err(gender_mismatch()),
            (Some(g), _) => g,
            (None, Some(id)) => id.gender(),
            (None, None) => {
                return Err(Error::invalid("gender", "is required", "性别为必填项"));
            }
        };
        Ok(Self {
            id: draft.id.unwrap_or(new_id),
            name,
            levels,
            org,
            constituency,
            term,
            gender,
            ethnicity,
            occupation,
            phone,
            id_card_number,
            status: draft.status.unwrap_or(DeputyStatus::Serving),
        })
    }

    pub fn is_serving(&self) -> bool {
        self.status == DeputyStatus::Serving
    }
}

fn gender_mismatch() -> Error {
    Error::invalid(
        "gender",
        "does not match the ID-card number",
        "性别与身份证号不一致",
    )
}

/// Checks a gender against the ID-card number on file when only its masked form is at hand
/// (an update that changes the gender and not the number): the masked form keeps the
/// gender digit (position 17). A masked form that does not show it checks nothing.
pub fn check_gender_on_file(gender: Gender, id_card_masked: &str) -> Result<()> {
    let on_file = match id_card_masked.as_bytes().get(16) {
        Some(d) if d.is_ascii_digit() => {
            if (d - b'0') % 2 == 1 {
                Gender::Male
            } else {
                Gender::Female
            }
        }
        _ => return Ok(()),
    };
    if on_file == gender {
        Ok(())
    } else {
        Err(gender_mismatch())
    }
}

/// Re-labels a nested validation error with the field of the enclosing input.
pub(crate) fn rename(e: Error, field: &str) -> Error {
    match e {
        Error::Invalid {
            reason, reason_zh, ..
        } => Error::invalid(field, reason, reason_zh),
        other => other,
    }
}

impl Coded for Gender {
    const CODES: &'static [(Self, &'static str)] =
        &[(Self::Male, "male"), (Self::Female, "female")];
}

impl DeputyLevel {
    pub const ALL: [Self; 5] = [
        Self::National,
        Self::Provincial,
        Self::City,
        Self::County,
        Self::Township,
    ];
}

impl DeputyLevel {
    /// The seat a deputy holds in the congress of an org unit at `level`: a city's congress
    /// seats city deputies, a county's county deputies, a township's (or a street's 议政会)
    /// township deputies. Villages hold no congress.
    pub const fn of_congress(level: Level) -> Option<Self> {
        match level {
            Level::City => Some(Self::City),
            Level::County => Some(Self::County),
            Level::Township => Some(Self::Township),
            Level::Village => None,
        }
    }
}

/// What the rules read of a stored deputy to say whether they sit in a congress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The deputy's name, for the messages that name them (deputies' names are public).
    pub name: String,
    pub levels: BTreeSet<DeputyLevel>,
    /// The deputy's org unit.
    pub org: OrgCode,
    pub status: DeputyStatus,
}

impl Seat {
    /// Whether the deputy is a serving deputy of the congress of `congress`: holding that
    /// congress's level, registered at that unit or below it (a county deputy is often
    /// registered at the township where they live), and not terminated. A deputy of another
    /// level, or of another county, is not.
    pub fn sits_in(&self, congress: OrgCode) -> bool {
        DeputyLevel::of_congress(congress.level()).is_some_and(|l| self.levels.contains(&l))
            && congress.contains(self.org)
            && self.status == DeputyStatus::Serving
    }
}

impl Coded for DeputyLevel {
    const CODES: &'static [(Self, &'static str)] = &[
        (Self::National, "national"),
        (Self::Provincial, "provincial"),
        (Self::City, "city"),
        (Self::County, "county"),
        (Self::Township, "township"),
    ];
}

impl Coded for DeputyStatus {
    const CODES: &'static [(Self, &'static str)] =
        &[(Self::Serving, "serving"), (Self::Terminated, "terminated")];
}

/// The stored form of a deputy's levels: their codes, comma-separated.
pub fn levels_code(levels: &BTreeSet<DeputyLevel>) -> String {
    levels
        .iter()
        .map(|l| l.code())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads stored levels back; codes this build does not know are skipped.
pub fn levels_from_code(text: &str) -> Vec<DeputyLevel> {
    text.split(',')
        .filter_map(|c| DeputyLevel::from_code(c.trim()))
        .collect()
}

/// A step recorded on a deputy's record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Event {
    /// 履职承诺.
    Pledge { text: String, on: NaiveDate },
    /// 走访选民: a visit to voter households.
    Visit {
        households: u32,
        note: Option<String>,
        on: NaiveDate,
    },
    /// 联系选民、结对: the pairing with voter households from `since`; the latest by stamp is
    /// the current one.
    VoterLink {
        households: u32,
        area: String,
        since: NaiveDate,
    },
}

/// A stored count (never negative when written).
fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl RecordEvent for Event {
    const KIND: &'static KindDef = &KIND;

    fn name(&self) -> &'static str {
        match self {
            Self::Pledge { .. } => "pledge",
            Self::Visit { .. } => "visit",
            Self::VoterLink { .. } => "voter_link",
        }
    }

    fn encode(&self) -> Vec<(&'static str, Value)> {
        match self {
            Self::Pledge { text, on } => {
                vec![
                    ("text", Value::Text(text.clone())),
                    ("on", Value::Date(*on)),
                ]
            }
            Self::Visit {
                households,
                note,
                on,
            } => {
                let mut out = vec![("households", Value::Int(i64::from(*households)))];
                // An empty note is no value, as before the codec.
                if let Some(note) = note.as_ref().filter(|n| !n.is_empty()) {
                    out.push(("note", Value::Text(note.clone())));
                }
                out.push(("on", Value::Date(*on)));
                out
            }
            Self::VoterLink {
                households,
                area,
                since,
            } => vec![
                ("households", Value::Int(i64::from(*households))),
                ("area", Value::Text(area.clone())),
                ("since", Value::Date(*since)),
            ],
        }
    }

    fn decode(name: &str, p: &Payload) -> Option<Self> {
        Some(match name {
            "pledge" => Self::Pledge {
                text: p.text_or_empty("text"),
                on: p.date("on")?,
            },
            "visit" => Self::Visit {
                households: count(p.int("households")?),
                note: p.text("note").filter(|n| !n.is_empty()).map(str::to_owned),
                on: p.date("on")?,
            },
            "voter_link" => Self::VoterLink {
                households: count(p.int("households")?),
                area: p.text_or_empty("area"),
                since: p.date("since")?,
            },
            _ => return None,
        })
    }
}

/// The deputy register (代表信息库): one record per deputy, with pledges, visits and pairings.
pub const KIND: KindDef = KindDef {
    id: 2,
    name: "deputy",
    governed_as: RecordKind::Deputy,
    fields: &[
        text_field(2, "name", 30),
        // Comma-separated levels: national, provincial, city, county, township.
        text_field(3, "levels", 60),
        text_field(4, "constituency", 100),
        field(5, "term", FieldType::Int),
        text_field(6, "gender", 10),
        text_field(7, "ethnicity", 20),
        text_field(8, "sector", 100),
        text_field(9, "phone", 20),
        text_field(10, "qr_token", 64),
        text_field(11, "status", 20),
        // The masked form only; the number itself is in `deputy_identity`.
        text_field(12, "id_card_masked", 18),
    ],
    sets: &[],
    events: &[
        EventDef {
            id: 1,
            name: "pledge",
            step: Step::Edit,
            payload: &[
                required(1, "text", FieldType::Text),
                required(2, "on", FieldType::Date),
            ],
        },
        EventDef {
            id: 2,
            name: "visit",
            step: Step::Edit,
            payload: &[
                required(1, "households", FieldType::Int),
                optional(2, "note", FieldType::Text),
                required(3, "on", FieldType::Date),
            ],
        },
        // Added in schema version 3. 联系选民、结对: the latest by stamp is the current
        // pairing; earlier ones stay as history.
        EventDef {
            id: 3,
            name: "voter_link",
            step: Step::Edit,
            payload: &[
                required(1, "households", FieldType::Int),
                required(2, "area", FieldType::Text),
                required(3, "since", FieldType::Date),
            ],
        },
    ],
    reach: Reach::Normal,
    fingerprints: &[0xc614_8cd1_b0df_bc16],
};

/// ID-card numbers stay at the node that recorded them (design.md §4): the store keeps this
/// kind out of every sync feed.
pub const IDENTITY: KindDef = KindDef {
    id: 3,
    name: "deputy_identity",
    governed_as: RecordKind::Deputy,
    fields: &[
        field(2, "deputy", FieldType::Ref),
        text_field(3, "id_card", 18),
    ],
    sets: &[],
    events: &[],
    reach: Reach::LocalOnly,
    fingerprints: &[0x6214_4630_37ce_b699],
};

/// A deputy group (代表小组) or professional group, with its members.
pub const GROUP: KindDef = KindDef {
    id: 4,
    name: "deputy_group",
    governed_as: RecordKind::DeputyGroup,
    fields: &[text_field(2, "name", 50), text_field(3, "sector", 100)],
    sets: &[(1, "members")],
    events: &[],
    reach: Reach::Normal,
    fingerprints: &[0xd9db_924e_cfef_9f3c],
};

/// A person who logs in (gateway, consoles); only the PHC password hash is stored. Valid at
/// every node below the unit it was made at.
pub const USER: KindDef = KindDef {
    id: 15,
    name: "user",
    governed_as: RecordKind::User,
    fields: &[
        text_field(2, "login", 40),
        text_field(3, "display_name", 50),
        // city_office, county_office, township_clerk, read_only, deputy or handling_unit
        text_field(4, "role", 20),
        // The argon2id PHC string; never the password.
        text_field(5, "password_hash", 200),
        field(6, "disabled", FieldType::Bool),
        // The user's number at its org unit (operation authors name it).
        field(7, "number", FieldType::Int),
        // The deputy (role deputy) or handling unit (role handling_unit) it acts as.
        field(8, "subject", FieldType::Ref),
        // Why an administrator disabled it, for the history.
        text_field(9, "disabled_reason", 200),
    ],
    sets: &[],
    events: &[],
    reach: Reach::Subtree,
    fingerprints: &[0xc058_d21a_774d_dc8a],
};

#[cfg(test)]
pub(crate) fn valid_id(prefix17: &str) -> String {
    let sum: u32 = prefix17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    format!("{prefix17}{}", ID_CHECK[(sum % 11) as usize] as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_codes_round_trip() {
        let on = today();
        for e in [
            Event::Pledge {
                text: "每月进站接待一次".into(),
                on,
            },
            Event::Visit {
                households: 12,
                note: Some("王哥庄".into()),
                on,
            },
            Event::Visit {
                households: 0,
                note: None,
                on,
            },
            Event::VoterLink {
                households: 50,
                area: "王哥庄社区三组".into(),
                since: on,
            },
        ] {
            let payload = Payload(
                e.encode()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect(),
            );
            assert!(KIND.event(e.name()).is_some(), "{e:?}");
            assert_eq!(Event::decode(e.name(), &payload), Some(e));
        }
        let all: BTreeSet<DeputyLevel> = DeputyLevel::ALL.into();
        assert_eq!(levels_from_code(&levels_code(&all)), DeputyLevel::ALL);
        assert_eq!(
            Gender::from_code(Gender::Female.code()),
            Some(Gender::Female)
        );
        assert_eq!(
            DeputyStatus::from_code("terminated"),
            Some(DeputyStatus::Terminated)
        );
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 1).unwrap_or_default()
    }

    #[test]
    fn accepts_the_published_sample_and_masks_it() {
        let id = IdCardNumber::parse("11010519491231002x", today()).unwrap();
        assert_eq!(id.to_string(), "1101**********002X");
        assert_eq!(format!("{id:?}"), "IdCardNumber(1101**********002X)");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1949, 12, 31));
        assert_eq!(id.gender(), Gender::Female);
        assert_eq!(id.as_unmasked_str(), "11010519491231002X");
    }

    #[test]
    fn refuses_bad_checksum_format_and_dates() {
        let e = IdCardNumber::parse("110105194912310021", today()).unwrap_err();
        assert_eq!(e.field(), "id_card_number");
        assert!(e.reason().contains("checksum"));
        let e = IdCardNumber::parse("11010519491231002", today()).unwrap_err();
        assert!(e.reason().contains("17 digits"));
        let e = IdCardNumber::parse(&valid_id("37020219990230123"), today()).unwrap_err();
        assert!(e.reason().contains("not a valid date"));
        let e = IdCardNumber::parse(&valid_id("37020220300101123"), today()).unwrap_err();
        assert!(e.reason().contains("plausible"));
        assert!(e.reason_zh().contains("不合理"));
    }

    #[test]
    fn masked_id_never_leaks_in_debug_of_a_deputy() {
        let d = Deputy::parse(draft(), Uuid::nil(), today()).unwrap();
        let shown = format!("{d:?}");
        let full = valid_id("37020219800101123");
        assert!(!shown.contains(&full));
        assert!(!shown.contains("13812345678"));
        assert!(shown.contains("138****5678"));
    }

    #[test]
    fn phones() {
        assert_eq!(
            Phone::parse("138 1234 5678").unwrap().kind(),
            PhoneKind::Mobile
        );
        assert_eq!(
            Phone::parse("0532-88886666").unwrap().kind(),
            PhoneKind::Landline
        );
        assert!(Phone::parse("01088886666").is_ok());
        assert!(Phone::parse("053288886666").is_ok());
        for bad in ["12812345678", "1381234567", "5328888666", "0532-12", "abc"] {
            let e = Phone::parse(bad).unwrap_err();
            assert_eq!(e.field(), "phone", "{bad}");
        }
    }

    fn draft() -> DeputyDraft {
        DeputyDraft {
            id: None,
            name: "王秀英".into(),
            levels: vec![
                DeputyLevel::County,
                DeputyLevel::Township,
                DeputyLevel::County,
            ],
            org: "370202001".into(),
            constituency: "八大峡街道第三选区".into(),
            term: 19,
            gender: None,
            ethnicity: "汉族".into(),
            occupation: "社区工作者".into(),
            phone: Some("13812345678".into()),
            id_card_number: Some(valid_id("37020219800101123")),
            status: None,
        }
    }

    #[test]
    fn valid_deputy() {
        let d = Deputy::parse(draft(), Uuid::nil(), today()).unwrap();
        assert_eq!(d.levels.len(), 2);
        assert_eq!(d.gender, Gender::Male);
        assert!(d.is_serving());
        assert_eq!(d.org.to_string(), "370202001");
    }

    #[test]
    fn deputy_refusals_name_the_field() {
        let cases: Vec<(DeputyDraft, &str, &str)> = vec![
            (
                DeputyDraft {
                    name: "王".into(),
                    ..draft()
                },
                "name",
                "2 to 30",
            ),
            (
                DeputyDraft {
                    name: "王".repeat(31),
                    ..draft()
                },
                "name",
                "2 to 30",
            ),
            (
                DeputyDraft {
                    levels: vec![],
                    ..draft()
                },
                "levels",
                "at least one",
            ),
            (
                DeputyDraft {
                    org: "3702".into(),
                    ..draft()
                },
                "org",
                "6, 9 or 12",
            ),
            (DeputyDraft { term: 0, ..draft() }, "term", "1 to 99"),
            (
                DeputyDraft {
                    term: 300,
                    ..draft()
                },
                "term",
                "1 to 99",
            ),
            (
                DeputyDraft {
                    constituency: "区".repeat(101),
                    ..draft()
                },
                "constituency",
                "2 to 100",
            ),
            (
                DeputyDraft {
                    ethnicity: String::new(),
                    ..draft()
                },
                "ethnicity",
                "2 to 20",
            ),
            (
                DeputyDraft {
                    occupation: "职".repeat(101),
                    ..draft()
                },
                "occupation",
                "1 to 100",
            ),
            (
                DeputyDraft {
                    phone: Some("123".into()),
                    ..draft()
                },
                "phone",
                "11-digit",
            ),
            (
                DeputyDraft {
                    gender: Some(Gender::Female),
                    ..draft()
                },
                "gender",
                "does not match",
            ),
            (
                DeputyDraft {
                    gender: None,
                    id_card_number: None,
                    ..draft()
                },
                "gender",
                "required",
            ),
        ];
        for (d, field, reason) in cases {
            let e = Deputy::parse(d, Uuid::nil(), today()).unwrap_err();
            assert_eq!(e.field(), field);
            assert!(e.reason().contains(reason), "{field}: {}", e.reason());
            assert!(!e.reason_zh().is_empty());
        }
    }

    #[test]
    fn a_gender_is_checked_against_the_masked_number_on_file() {
        let female = IdCardNumber::parse("11010519491231002X", today()).unwrap();
        assert_eq!(female.gender(), Gender::Female);
        assert!(check_gender_on_file(Gender::Female, &female.masked()).is_ok());
        let e = check_gender_on_file(Gender::Male, &female.masked()).unwrap_err();
        assert_eq!(e.field(), "gender");
        // No number on file checks nothing.
        assert!(check_gender_on_file(Gender::Male, "").is_ok());
    }
}
