//! The reports a node serves and the city gateway passes upward: their names as requests and
//! the gateway's paths spell them, their Chinese titles, and the freshness limit a figure is
//! held to when a request names none, and how a period reads to people.

use chrono::NaiveDate;

/// Report names, as requests and the gateway's paths spell them.
pub const REPORT_NAMES: [&str; 5] = [
    "suggestions",
    "projects",
    "deputies",
    "stations",
    "opinions",
];

/// The freshness limit, in minutes, when a request gives none: a township's data older than this
/// is reported as stale.
pub const DEFAULT_FRESHNESS_MINUTES: u32 = 72 * 60;

/// A freshness limit as people read it: `72小时`, `90分钟` reads `1小时30分钟`.
pub fn limit_zh(minutes: u32) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}分钟"),
        (h, 0) => format!("{h}小时"),
        (h, m) => format!("{h}小时{m}分钟"),
    }
}

/// The Chinese title of a report (exports are named after it); `None` for a name that is not a
/// report.
pub fn title_zh(name: &str) -> Option<&'static str> {
    Some(match name {
        "suggestions" => "建议办理",
        "projects" => "民生实事项目",
        "deputies" => "代表履职",
        "stations" => "代表之家(站)",
        "opinions" => "社情民意",
        _ => return None,
    })
}

/// The last day of a report's period `[from, to)`: the protocol carries the day after it
/// (`renda.report.v1` periods are half-open), people read the last day itself.
pub fn last_day(to: NaiveDate) -> NaiveDate {
    to.pred_opt().unwrap_or(to)
}

/// A report's period `[from, to)` as people read it, both days inclusive: the year 2022 is
/// `2022-01-01至2022-12-31`. Every title of a report or export says its period so.
pub fn period_zh(from: NaiveDate, to: NaiveDate) -> String {
    format!("{from}至{}", last_day(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_reads_with_its_last_day() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("a calendar day");
        assert_eq!(
            period_zh(day(2022, 1, 1), day(2023, 1, 1)),
            "2022-01-01至2022-12-31"
        );
        assert_eq!(
            period_zh(day(2024, 2, 1), day(2024, 3, 1)),
            "2024-02-01至2024-02-29"
        );
        assert_eq!(last_day(day(2026, 7, 2)), day(2026, 7, 1));
    }

    #[test]
    fn every_report_has_a_title_and_nothing_else_does() {
        for name in REPORT_NAMES {
            assert!(title_zh(name).is_some(), "{name}");
        }
        assert_eq!(title_zh("opinions"), Some("社情民意"));
        assert_eq!(title_zh("unknown"), None);
    }
}
