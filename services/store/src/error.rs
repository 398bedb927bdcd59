use renda_replica::{ApplyError, KindId, OpError, OrgCode, RecordId};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage url is not usable: {reason}")]
    Url { reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "this database belongs to org unit {found}, not to {expected}; \
         point the node at its own database"
    )]
    OtherOrg { expected: OrgCode, found: String },
    /// A local change that does not fit the schema; nothing was written.
    #[error(transparent)]
    Invalid(#[from] OpError),
    #[error("record {record} is of kind {}, the write says kind {}", found.0, expected.0)]
    KindMismatch {
        record: RecordId,
        expected: KindId,
        found: KindId,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A local change the record refused to apply (a bug in the caller's `make`); nothing was
    /// written.
    #[error("local change to record {record} was not applied: {reason}")]
    NotApplied { record: RecordId, reason: String },
    /// Stored data that does not read back: a bug or a damaged database.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}
