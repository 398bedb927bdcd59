use renda_replica::{ApplyError, KindId, OpError, OrgCode, RecordId};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage url is not usable: {reason}")]
    Url { reason: String },
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database file or its pages do not read as a database: nothing more is written to
    /// it, and the operator is told what to do.
    #[error(
        "the database is damaged ({0}): restore it from a backup, or move it aside and start \
         the node again to receive its data afresh from its upstream node (operations made here \
         and not yet synced upward are then lost)"
    )]
    Damaged(String),
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
    /// A caller asked for something that cannot be (named in the message).
    #[error("invalid argument: {0}")]
    Argument(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for Error {
    /// A database error, told apart when it says the database itself is damaged: SQLite's
    /// `SQLITE_CORRUPT` and `SQLITE_NOTADB` (with their extended codes), PostgreSQL's
    /// `data_corrupted` and `index_corrupted`.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            let code = db.code();
            let damaged = if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                code.and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, SQLITE_CORRUPT | SQLITE_NOTADB))
            } else {
                matches!(code.as_deref(), Some("XX001" | "XX002"))
            };
            if damaged {
                return Error::Damaged(db.message().to_owned());
            }
        }
        Error::Database(e)
    }
}

const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;
