//! The one error type of the domain layer.
//!
//! Every refusal names the field it concerns and says why twice: in English for APIs and logs,
//! in Chinese for the people at the console. The API layer maps the variants to gRPC codes:
//! `Invalid` → INVALID_ARGUMENT, `Precondition` → FAILED_PRECONDITION, `Forbidden` →
//! PERMISSION_DENIED. Reasons never carry personal data (ID-card or phone numbers).

/// A refusal by a domain rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The value itself is malformed or out of range.
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: String,
        reason: String,
        reason_zh: String,
    },
    /// The value is well formed but the record is not in a state that allows the step.
    #[error("precondition failed on {field}: {reason}")]
    Precondition {
        field: String,
        reason: String,
        reason_zh: String,
    },
    /// The author has no authority for the step.
    #[error("forbidden on {field}: {reason}")]
    Forbidden {
        field: String,
        reason: String,
        reason_zh: String,
    },
}

impl Error {
    pub fn invalid(
        field: impl Into<String>,
        reason: impl Into<String>,
        reason_zh: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
            reason_zh: reason_zh.into(),
        }
    }

    pub fn precondition(
        field: impl Into<String>,
        reason: impl Into<String>,
        reason_zh: impl Into<String>,
    ) -> Self {
        Self::Precondition {
            field: field.into(),
            reason: reason.into(),
            reason_zh: reason_zh.into(),
        }
    }

    pub fn forbidden(
        field: impl Into<String>,
        reason: impl Into<String>,
        reason_zh: impl Into<String>,
    ) -> Self {
        Self::Forbidden {
            field: field.into(),
            reason: reason.into(),
            reason_zh: reason_zh.into(),
        }
    }

    /// The field the refusal concerns.
    pub fn field(&self) -> &str {
        match self {
            Self::Invalid { field, .. }
            | Self::Precondition { field, .. }
            | Self::Forbidden { field, .. } => field,
        }
    }

    /// Why, in English.
    pub fn reason(&self) -> &str {
        match self {
            Self::Invalid { reason, .. }
            | Self::Precondition { reason, .. }
            | Self::Forbidden { reason, .. } => reason,
        }
    }

    /// Why, in Chinese.
    pub fn reason_zh(&self) -> &str {
        match self {
            Self::Invalid { reason_zh, .. }
            | Self::Precondition { reason_zh, .. }
            | Self::Forbidden { reason_zh, .. } => reason_zh,
        }
    }
}

/// Result of a domain rule.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_display_name_the_field() {
        let e = Error::precondition("at", "too late", "已超过期限");
        assert_eq!(e.field(), "at");
        assert_eq!(e.reason(), "too late");
        assert_eq!(e.reason_zh(), "已超过期限");
        assert_eq!(e.to_string(), "precondition failed on at: too late");
    }
}
