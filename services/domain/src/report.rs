//! The reports a node serves and the city gateway passes upward: their names as requests and
//! the gateway's paths spell them, their Chinese titles, and the freshness limit a figure is
//! held to when a request names none.

/// Report names, as requests and the gateway's paths spell them.
pub const REPORT_NAMES: [&str; 5] = [
    "suggestions",
    "projects",
    "deputies",
    "stations",
    "opinions",
];

/// The freshness limit, in hours, when a request gives none: a township's data older than this
/// is reported as stale.
pub const DEFAULT_FRESHNESS_HOURS: u32 = 72;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_has_a_title_and_nothing_else_does() {
        for name in REPORT_NAMES {
            assert!(title_zh(name).is_some(), "{name}");
        }
        assert_eq!(title_zh("opinions"), Some("社情民意"));
        assert_eq!(title_zh("unknown"), None);
    }
}
