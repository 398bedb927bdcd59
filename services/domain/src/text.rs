//! Bounded text fields: every text that arrives from a person has a length limit.

use crate::{Error, Result};

/// Trims `value` and checks it holds `min..=max` characters (not bytes) and no control
/// characters other than line breaks and tabs.
pub fn bounded(field: &str, value: &str, min: usize, max: usize) -> Result<String> {
    let value = value.trim();
    let count = value.chars().count();
    if count < min || count > max {
        return Err(Error::invalid(
            field,
            format!("must be {min} to {max} characters long, got {count}"),
            format!("长度须为{min}至{max}个字符，实际为{count}个"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(
            field,
            "must not contain control characters",
            "不得包含控制字符",
        ));
    }
    Ok(value.to_owned())
}

/// Like [`bounded`] for an optional field: absent or blank becomes `None`.
pub fn optional(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => bounded(field, v, 1, max).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(bounded("name", " 张三 ", 2, 2).as_deref(), Ok("张三"));
    }

    #[test]
    fn refuses_oversized_and_short_values() {
        let e = bounded("name", &"长".repeat(31), 2, 30).unwrap_err();
        assert_eq!(e.field(), "name");
        assert!(e.reason().contains("2 to 30"));
        assert!(e.reason_zh().contains("实际为31个"));
        assert_eq!(bounded("name", "张", 2, 30).unwrap_err().field(), "name");
    }

    #[test]
    fn refuses_control_characters() {
        let e = bounded("title", "a\u{7}b", 1, 10).unwrap_err();
        assert!(e.reason().contains("control"));
    }

    #[test]
    fn optional_blank_is_none() {
        assert_eq!(optional("note", Some("  "), 5), Ok(None));
        assert_eq!(
            optional("note", Some("太长了太长了"), 5)
                .unwrap_err()
                .field(),
            "note"
        );
    }
}
