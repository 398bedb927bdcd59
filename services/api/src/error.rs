//! The one mapping from refusals to gRPC status.
//!
//! A domain refusal keeps its three parts on the wire: the code (`Invalid` →
//! INVALID_ARGUMENT, `Precondition` → FAILED_PRECONDITION, `Forbidden` → PERMISSION_DENIED),
//! the field in a `google.rpc.BadRequest` field violation (with the English reason), and the
//! Chinese reason in a `google.rpc.LocalizedMessage` with locale `zh-CN`. Storage failures
//! become INTERNAL with a generic message; the cause is logged once, here.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Domain(#[from] renda_domain::Error),
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The caller identity metadata is missing or malformed.
    #[error("caller identity: {0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Store(#[from] renda_store::Error),
    /// A bug: the built-in schema lacks a name the code uses, or similar.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::Domain(renda_domain::Error::invalid(field, reason, zh))
    }

    pub(crate) fn precondition(
        field: &str,
        reason: impl Into<String>,
        zh: impl Into<String>,
    ) -> Self {
        Self::Domain(renda_domain::Error::precondition(field, reason, zh))
    }

    pub(crate) fn forbidden(field: &str, reason: impl Into<String>, zh: impl Into<String>) -> Self {
        Self::Domain(renda_domain::Error::forbidden(field, reason, zh))
    }
}

/// The gRPC status of a domain refusal, with its details.
pub fn domain_status(e: &renda_domain::Error) -> Status {
    let code = match e {
        renda_domain::Error::Invalid { .. } => Code::InvalidArgument,
        renda_domain::Error::Precondition { .. } => Code::FailedPrecondition,
        renda_domain::Error::Forbidden { .. } => Code::PermissionDenied,
    };
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(e.field(), e.reason());
    details.set_localized_message("zh-CN", e.reason_zh());
    Status::with_error_details(code, e.to_string(), details)
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match &e {
            Error::Domain(d) => domain_status(d),
            Error::NotFound { .. } => {
                let details = ErrorDetails::with_localized_message("zh-CN", "记录不存在");
                Status::with_error_details(Code::NotFound, e.to_string(), details)
            }
            Error::Unauthenticated(reason) => {
                let mut details = ErrorDetails::new();
                details.set_localized_message("zh-CN", "缺少或无法识别登录身份");
                Status::with_error_details(Code::Unauthenticated, reason.clone(), details)
            }
            Error::Store(renda_store::Error::Invalid(op)) => {
                // The schema caught an oversized or mistyped value the domain rules let
                // through; nothing was written.
                let field = op.field.clone().unwrap_or_else(|| "record".into());
                let mut details = ErrorDetails::new();
                details.add_bad_request_violation(field, op.reason.clone());
                details.set_localized_message("zh-CN", "字段值不符合要求(类型或长度)");
                Status::with_error_details(Code::InvalidArgument, op.to_string(), details)
            }
            Error::Store(inner) => {
                tracing::error!(error = %inner, "storage failure in an API call");
                Status::internal("storage failure")
            }
            Error::Internal(reason) => {
                tracing::error!(%reason, "internal error in an API call");
                Status::internal("internal error")
            }
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
