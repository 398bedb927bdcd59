//! The two backends behind one small interface: SQL is written once with `$N` placeholders
//! (which SQLite also reads as positional parameters) and bound from [`Arg`] values, so only the
//! DDL in `migrations/` differs between dialects. Long generated parameter lists use `?` on
//! SQLite: it resolves each named `$N` with a linear search, which is quadratic in a multi-row
//! statement and dominated the apply profile.

use crate::Error;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, SqlSafeStr, SqlStr};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// A bound SQL parameter. Both backends store integers as 64-bit signed.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Bytes(Vec<u8>),
    Bool(bool),
    /// A record id: a 16-byte BLOB on SQLite, a UUID on PostgreSQL (no allocation to bind).
    Id(Uuid),
    OptId(Option<Uuid>),
}

macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::OptInt(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::OptText(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Id(v) => query.bind(v),
                Arg::OptId(v) => query.bind(v),
            };
        }
        query
    }};
}

/// SQLite page cache per connection, in KiB (the negative form of `PRAGMA cache_size`).
pub const SQLITE_CACHE_KIB: &str = "-32768";

/// WAL pages between automatic checkpoints (`PRAGMA wal_autocheckpoint`; 4 KiB pages).
pub const SQLITE_CHECKPOINT_PAGES: &str = "16384";

/// Which database a store runs on.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What the caller tunes about the connection pool.
pub(crate) struct PoolSettings {
    pub max_connections: u32,
    pub busy_timeout: Duration,
}

impl Backend {
    pub(crate) async fn connect(url: &str, settings: &PoolSettings) -> Result<Backend, Error> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::Url {
                    reason: e.to_string(),
                })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(settings.busy_timeout)
                // A batch touches pages all over the op log, its indexes and the part tables:
                // with SQLite's default 2 MiB cache it spills dirty pages to the WAL before
                // commit, writing many of them twice.
                .pragma("cache_size", SQLITE_CACHE_KIB)
                // Multi-row upserts keep a statement journal; in memory it costs no file
                // writes (it never needs to survive a crash: the WAL does).
                .pragma("temp_store", "memory")
                // A batch dirties pages all over the part tables; checkpointing every 1,000 WAL
                // pages (the default) copies most of them back to the database after nearly
                // every batch. Every SQLITE_CHECKPOINT_PAGES, a page rewritten by several
                // batches is copied once. The WAL file grows to about that size (64 MiB) and
                // is reused after each checkpoint.
                .pragma("wal_autocheckpoint", SQLITE_CHECKPOINT_PAGES);
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections.max(1))
                .connect_with(options)
                .await?;
            Ok(Backend::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // The error of a URL parse can quote the URL, password included: keep only its kind.
            let options = PgConnectOptions::from_str(url).map_err(|_| Error::Url {
                reason: "the postgres:// URL does not parse".into(),
            })?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections.max(1))
                .connect_with(options)
                .await?;
            Ok(Backend::Postgres(pool))
        } else {
            Err(Error::Url {
                reason: "expected a sqlite:// or postgres:// URL".into(),
            })
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Runs the embedded migrations for this dialect (the SQL is compiled into the binary, so an
    /// installed node needs no migrations directory).
    pub(crate) async fn migrate(&self) -> Result<(), Error> {
        // (version, description, SQLite text, PostgreSQL text); append, never edit a shipped one.
        const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
            (
                1,
                "init",
                include_str!("../migrations/sqlite/0001_init.sql"),
                include_str!("../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "report indexes",
                include_str!("../migrations/sqlite/0002_report_indexes.sql"),
                include_str!("../migrations/postgres/0002_report_indexes.sql"),
            ),
            (
                3,
                "subtree scope",
                include_str!("../migrations/sqlite/0003_subtree_scope.sql"),
                include_str!("../migrations/postgres/0003_subtree_scope.sql"),
            ),
            (
                4,
                "report facts",
                include_str!("../migrations/sqlite/0004_report_facts.sql"),
                include_str!("../migrations/postgres/0004_report_facts.sql"),
            ),
            (
                5,
                "slim fields",
                include_str!("../migrations/sqlite/0005_slim_fields.sql"),
                include_str!("../migrations/postgres/0005_slim_fields.sql"),
            ),
            (
                6,
                "feed since",
                include_str!("../migrations/sqlite/0006_feed_since.sql"),
                include_str!("../migrations/postgres/0006_feed_since.sql"),
            ),
            (
                7,
                "digest and settled quarantine",
                include_str!("../migrations/sqlite/0007_digest_and_settled_quarantine.sql"),
                include_str!("../migrations/postgres/0007_digest_and_settled_quarantine.sql"),
            ),
            (
                8,
                "bundle contact",
                include_str!("../migrations/sqlite/0008_bundle_contact.sql"),
                include_str!("../migrations/postgres/0008_bundle_contact.sql"),
            ),
        ];
        let sqlite = matches!(self, Backend::Sqlite(_));
        let dialect = self.name();
        let migrator = Migrator::with_migrations(
            MIGRATIONS
                .iter()
                .map(|(version, description, lite, pg)| {
                    Migration::new(
                        *version,
                        format!("{description} ({dialect})").into(),
                        MigrationType::Simple,
                        (if sqlite { *lite } else { *pg }).into_sql_str(),
                        false,
                    )
                })
                .collect(),
        );
        match self {
            Backend::Sqlite(pool) => migrator.run(pool).await?,
            Backend::Postgres(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    pub(crate) async fn begin(&self) -> Result<Tx, Error> {
        Ok(match self {
            // IMMEDIATE takes the write lock at once (waiting out the busy timeout): a deferred
            // transaction that reads first fails with SQLITE_BUSY_SNAPSHOT (517) when another
            // connection commits before it writes.
            Backend::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub(crate) async fn acquire(&self) -> Result<PoolConn, Error> {
        Ok(match self {
            Backend::Sqlite(pool) => PoolConn::Sqlite(pool.acquire().await?),
            Backend::Postgres(pool) => PoolConn::Postgres(pool.acquire().await?),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open transaction; dropped without [`Tx::commit`] it rolls back.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub(crate) async fn commit(self) -> Result<(), Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A connection checked out of the pool, for reads.
pub(crate) enum PoolConn {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl PoolConn {
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            PoolConn::Sqlite(c) => Conn::Sqlite(c),
            PoolConn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// A borrowed connection of either backend.
pub(crate) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

/// SQL text: static, or built at run time from trusted pieces (placeholders, column lists).
pub(crate) fn dynamic(sql: String) -> SqlStr {
    AssertSqlSafe(sql).into_sql_str()
}

impl Conn<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) async fn execute(
        &mut self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
    ) -> Result<u64, Error> {
        Ok(match self {
            Conn::Sqlite(c) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::Postgres(c) => bind_args!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all<T>(
        &mut self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(match self {
            Conn::Sqlite(c) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **c)
                    .await?
            }
            Conn::Postgres(c) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_all(&mut **c)
                    .await?
            }
        })
    }

    pub(crate) async fn fetch_optional<T>(
        &mut self,
        sql: impl SqlSafeStr,
        args: Vec<Arg>,
    ) -> Result<Option<T>, Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(match self {
            Conn::Sqlite(c) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(&mut **c)
                    .await?
            }
            Conn::Postgres(c) => {
                bind_args!(sqlx::query_as::<_, T>(sql), args)
                    .fetch_optional(&mut **c)
                    .await?
            }
        })
    }

    /// Inserts `rows` (each `columns` long) with multi-row `VALUES` statements of at most
    /// [`ROWS_PER_STATEMENT`] rows: far fewer round trips than one statement per row, and the
    /// statement text repeats, so prepared statements are reused.
    pub(crate) async fn insert_many(
        &mut self,
        head: &str,
        columns: usize,
        tail: &str,
        rows: Vec<Vec<Arg>>,
    ) -> Result<(), Error> {
        let per_statement = (MAX_PARAMS / columns).clamp(1, ROWS_PER_STATEMENT);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per_statement).collect();
            let sql = values_sql(self.dialect(), head, columns, chunk.len(), tail);
            self.execute(dynamic(sql), chunk.into_iter().flatten().collect())
                .await?;
        }
        Ok(())
    }
}

/// Keys per lookup statement in [`Conn::fetch_by_keys`].
pub(crate) const KEYS_PER_LOOKUP: usize = 128;

impl Conn<'_> {
    /// Runs `select` once per chunk of `keys` (each `width` values), with the chunk bound as a
    /// `VALUES` list named `w({columns})` that `select` joins against. The last chunk is padded
    /// by repeating its last key, so every statement has the same text and stays prepared; a
    /// padded key returns its rows again, which callers collecting into maps ignore. Write
    /// `FROM w CROSS JOIN t WHERE t.k = w.k`: on SQLite `CROSS JOIN` keeps the key list as the
    /// outer loop, so each key is one primary-key probe, and PostgreSQL plans it as a join.
    pub(crate) async fn fetch_by_keys<T>(
        &mut self,
        columns: &str,
        select: &str,
        width: usize,
        keys: &[Vec<Arg>],
    ) -> Result<Vec<T>, Error>
    where
        T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let mut out = Vec::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let per = KEYS_PER_LOOKUP.min(keys.len().next_power_of_two());
        let mut sql = format!("WITH w({columns}) AS (VALUES ");
        values_list(self.dialect(), &mut sql, width, per);
        sql.push_str(") ");
        sql.push_str(select);
        let sql = dynamic(sql);
        for chunk in keys.chunks(per) {
            let mut args = Vec::with_capacity(per * width);
            for key in chunk {
                args.extend(key.iter().cloned());
            }
            let last = chunk.last().expect("chunks are never empty");
            for _ in chunk.len()..per {
                args.extend(last.iter().cloned());
            }
            out.extend(self.fetch_all::<T>(sql.clone(), args).await?);
        }
        Ok(out)
    }
}

/// Rows per multi-row statement.
pub(crate) const ROWS_PER_STATEMENT: usize = 250;
/// Parameters per statement, below both SQLite's (32,766) and PostgreSQL's (65,535) limits.
pub(crate) const MAX_PARAMS: usize = 30_000;

/// How generated placeholder lists are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Appends the placeholder of parameter `n` (1-based; generated lists number in order).
    fn push_param(self, sql: &mut String, n: usize) {
        match self {
            Dialect::Sqlite => sql.push('?'),
            Dialect::Postgres => {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
    }
}

/// `head VALUES ($1, $2), ($3, $4) tail` (with `?` on SQLite).
pub(crate) fn values_sql(
    dialect: Dialect,
    head: &str,
    columns: usize,
    rows: usize,
    tail: &str,
) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6 + 8);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    values_list(dialect, &mut sql, columns, rows);
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// Appends `($1, $2), ($3, $4)` (with `?` on SQLite): `rows` tuples of `columns` parameters.
fn values_list(dialect: Dialect, sql: &mut String, columns: usize, rows: usize) {
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push(',');
            }
            n += 1;
            dialect.push_param(sql, n);
        }
        sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_number_their_placeholders_in_order() {
        assert_eq!(
            values_sql(
                Dialect::Postgres,
                "INSERT INTO t (a, b)",
                2,
                2,
                "ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            values_sql(Dialect::Sqlite, "INSERT INTO t (a)", 1, 2, ""),
            "INSERT INTO t (a) VALUES (?),(?) "
        );
    }
}
