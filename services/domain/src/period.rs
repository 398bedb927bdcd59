//! Reporting periods: month, quarter, year, as half-open date ranges.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The dates `start..end` (end excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Period {
    pub fn new(start: NaiveDate, end: NaiveDate) -> Result<Self> {
        if end <= start {
            return Err(Error::invalid(
                "period",
                "end must be after start",
                "结束日期须晚于开始日期",
            ));
        }
        Ok(Self { start, end })
    }

    fn months_from(year: i32, month: u32, months: u32) -> Result<Self> {
        let start = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(|| {
            Error::invalid(
                "period",
                format!("{year}-{month} is not a valid month"),
                format!("{year}年{month}月不是有效月份"),
            )
        })?;
        let end = start
            .checked_add_months(Months::new(months))
            .ok_or_else(|| Error::invalid("period", "year out of range", "年份超出范围"))?;
        Ok(Self { start, end })
    }

    pub fn month(year: i32, month: u32) -> Result<Self> {
        Self::months_from(year, month, 1)
    }

    /// Quarter 1–4 of a year.
    pub fn quarter(year: i32, quarter: u32) -> Result<Self> {
        if !(1..=4).contains(&quarter) {
            return Err(Error::invalid(
                "quarter",
                format!("must be 1 to 4, got {quarter}"),
                format!("季度须为1至4，实际为{quarter}"),
            ));
        }
        Self::months_from(year, (quarter - 1) * 3 + 1, 3)
    }

    pub fn year(year: i32) -> Result<Self> {
        Self::months_from(year, 1, 12)
    }

    /// The quarter a date falls in.
    pub fn quarter_of(date: NaiveDate) -> Result<Self> {
        Self::quarter(date.year(), (date.month() - 1) / 3 + 1)
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start <= date && date < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
    }

    #[test]
    fn quarters_are_half_open() {
        let q4 = Period::quarter(2023, 4).unwrap();
        assert!(q4.contains(d(2023, 10, 1)) && q4.contains(d(2023, 12, 31)));
        assert!(!q4.contains(d(2024, 1, 1)));
        assert_eq!(
            Period::quarter_of(d(2024, 5, 20)).unwrap(),
            Period::quarter(2024, 2).unwrap()
        );
        assert_eq!(Period::quarter(2024, 5).unwrap_err().field(), "quarter");
        assert_eq!(Period::month(2024, 13).unwrap_err().field(), "period");
        assert!(Period::year(2024).unwrap().contains(d(2024, 12, 31)));
        assert_eq!(
            Period::new(d(2024, 1, 2), d(2024, 1, 1))
                .unwrap_err()
                .field(),
            "period"
        );
    }
}
