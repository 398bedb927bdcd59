//! The typed edge: where a request becomes domain values, once.
//!
//! Every handler reads the same way: check the person ([`accept`] reads the verified caller the
//! gate put on the request), convert (the request's `TryFrom` into a command of domain values,
//! refusing with the field's name in English and Chinese), run one step, answer. Closed
//! vocabularies are proto enums mapped to their domain enums with [`wire!`]; dates are
//! `renda.types.v1.Date` messages read with [`day`] and [`required_day`].

use chrono::{Datelike, NaiveDate};
use renda_proto::types::v1 as types;
use tonic::Request;

use crate::core::{Caller, caller, today};
use crate::error::{Error, Result};

/// The caller and the request converted to its command: the first lines of every handler.
pub(crate) fn accept<T, C>(req: Request<T>) -> Result<(Caller, C)>
where
    C: TryFrom<T, Error = Error>,
{
    let who = caller(&req)?;
    Ok((who, C::try_from(req.into_inner())?))
}

/// A domain enum and the proto enum it travels as.
pub(crate) trait Wire: Sized + Copy {
    type Pb: TryFrom<i32> + Into<i32>;
    fn from_pb(pb: Self::Pb) -> Option<Self>;
    fn to_pb(self) -> Self::Pb;

    /// The wire value of a response field.
    fn wire(self) -> i32 {
        self.to_pb().into()
    }
}

/// Maps a domain enum to a proto enum both ways; the proto's `*_UNSPECIFIED` (and any value
/// this build does not know) reads as absent.
macro_rules! wire {
    ($domain:ty => $pb:ty { $($d:ident <=> $p:ident),+ $(,)? }) => {
        impl $crate::edge::Wire for $domain {
            type Pb = $pb;
            fn from_pb(pb: $pb) -> Option<Self> {
                match pb {
                    $(<$pb>::$p => Some(<$domain>::$d),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
            fn to_pb(self) -> $pb {
                match self {
                    $(<$domain>::$d => <$pb>::$p,)+
                }
            }
        }
    };
}
pub(crate) use wire;

/// A required enum field: refused, naming `field`, when unset or unknown; `expected` and
/// `expected_zh` say what it must be.
pub(crate) fn one_of<D: Wire>(
    field: &str,
    raw: i32,
    expected: &str,
    expected_zh: &str,
) -> Result<D> {
    optional_one_of(field, raw, expected, expected_zh)?
        .ok_or_else(|| Error::invalid(field, format!("must be {expected}"), expected_zh))
}

/// An optional enum field: `None` when unset, refused when set to a value this build does not
/// know.
pub(crate) fn optional_one_of<D: Wire>(
    field: &str,
    raw: i32,
    expected: &str,
    expected_zh: &str,
) -> Result<Option<D>> {
    if raw == 0 {
        return Ok(None);
    }
    D::Pb::try_from(raw)
        .ok()
        .and_then(D::from_pb)
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!("{raw} is not a known value; must be {expected}"),
                expected_zh,
            )
        })
}

/// A date field that defaults to today at this node when absent.
pub(crate) fn day(field: &str, raw: Option<types::Date>) -> Result<NaiveDate> {
    raw.map_or_else(|| Ok(today()), |d| date(field, d))
}

/// A date field that must be given.
pub(crate) fn required_day(field: &str, raw: Option<types::Date>) -> Result<NaiveDate> {
    let d = raw.ok_or_else(|| Error::invalid(field, "a date is required", "请填写日期"))?;
    date(field, d)
}

fn date(field: &str, d: types::Date) -> Result<NaiveDate> {
    u32::try_from(d.month)
        .ok()
        .zip(u32::try_from(d.day).ok())
        .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
        .filter(|date| (1900..=9999).contains(&date.year()))
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "{}-{}-{} is not a calendar day between 1900 and 9999",
                    d.year, d.month, d.day
                ),
                "日期无效",
            )
        })
}

/// The `version` of record `id` a form was filled from ([`crate::core::Core::save_form`]).
pub(crate) fn read_version(raw: &str, id: uuid::Uuid) -> Result<renda_replica::Version> {
    if raw.trim().is_empty() {
        return Err(Error::invalid(
            "version",
            "required: send back the version of the record as read (its Get or List answer)",
            "缺少记录版本：请先打开记录，再提交修改",
        ));
    }
    renda_replica::Version::decode(raw, renda_replica::RecordId(id)).map_err(|e| {
        Error::invalid(
            "version",
            e.to_string(),
            "记录版本无法识别或不属于该记录，请重新打开记录后再修改",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_calendar_days() {
        let d = |year, month, day| Some(types::Date { year, month, day });
        assert_eq!(
            required_day("on", d(2024, 2, 29)).ok(),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            d(2023, 2, 29),
            d(2024, 13, 1),
            d(2024, 0, 1),
            d(2024, 1, -1),
            d(99, 1, 1),
        ] {
            let err = required_day("on", bad).expect_err("not a day");
            assert!(err.to_string().contains("on"), "{err}");
        }
        assert!(required_day("on", None).is_err());
        assert_eq!(day("on", None).ok(), Some(today()));
        let back = types::Date::from(NaiveDate::from_ymd_opt(2022, 12, 31).expect("a day"));
        assert_eq!((back.year, back.month, back.day), (2022, 12, 31));
    }
}
