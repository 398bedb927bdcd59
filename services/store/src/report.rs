//! Read-only queries for reports over the materialised tables (`records`, `fields`, `sets`,
//! `events`, `peer_sync`): the SQL comes from the reporting layer, built from its own constant
//! pieces, with every value bound as a parameter; the rows come back as plain cells of the
//! types the caller declares. Nothing here writes.

use crate::db::Backend;
use crate::{Error, Store};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

/// SQL that turns the hyphenated-text parameter `param` (`"$3"`) into a value comparable with
/// a record id column: `CAST($3 AS UUID)` on PostgreSQL, the 16 bytes on SQLite.
pub fn id_param(postgres: bool, param: &str) -> String {
    if postgres {
        format!("CAST({param} AS UUID)")
    } else {
        format!("unhex(replace({param}, '-', ''))")
    }
}

/// A value bound to, or read from, a report query.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Cell {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Cell::Int(n) => Some(*n),
            Cell::Real(r) => Some(*r as i64),
            _ => None,
        }
    }

    pub fn as_real(&self) -> Option<f64> {
        match self {
            Cell::Int(n) => Some(*n as f64),
            Cell::Real(r) => Some(*r),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// How to read one result column. Write `CAST(… AS BIGINT)` / `CAST(… AS DOUBLE PRECISION)`
/// in the SQL where the backends would otherwise disagree on a type (PostgreSQL sums bigints
/// into numeric). Record ids are stored as UUIDs (16-byte BLOBs on SQLite); a `Text` column
/// reads them as hyphenated text. To compare an id column with a text parameter, write
/// [`id_param`]`(postgres, "$n")`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Real,
    Text,
}

macro_rules! bind_cells {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Cell::Null => query.bind(Option::<i64>::None),
                Cell::Int(v) => query.bind(v),
                Cell::Real(v) => query.bind(v),
                Cell::Text(v) => query.bind(v),
            };
        }
        query
    }};
}

macro_rules! read_cells {
    ($rows:expr, $columns:expr) => {{
        let mut out = Vec::with_capacity($rows.len());
        for row in $rows {
            let mut cells = Vec::with_capacity($columns.len());
            for (i, column) in $columns.iter().enumerate() {
                cells.push(match column {
                    ColumnType::Int => row
                        .try_get::<Option<i64>, _>(i)?
                        .map_or(Cell::Null, Cell::Int),
                    ColumnType::Real => row
                        .try_get::<Option<f64>, _>(i)?
                        .map_or(Cell::Null, Cell::Real),
                    ColumnType::Text => match row.try_get::<Option<String>, _>(i) {
                        Ok(text) => text.map_or(Cell::Null, Cell::Text),
                        // A record id column (UUID, or a 16-byte BLOB on SQLite).
                        Err(sqlx::Error::ColumnDecode { .. }) => row
                            .try_get::<Option<Uuid>, _>(i)?
                            .map_or(Cell::Null, |id| Cell::Text(id.to_string())),
                        Err(e) => return Err(e.into()),
                    },
                });
            }
            out.push(cells);
        }
        out
    }};
}

impl Store {
    /// Runs one read-only report query. `sql` uses `$1, $2, …` placeholders (both backends
    /// read them) and must be built from trusted constant pieces only; every value from a
    /// request goes in `args`.
    pub async fn report_rows(
        &self,
        sql: String,
        args: Vec<Cell>,
        columns: &[ColumnType],
    ) -> Result<Vec<Vec<Cell>>, Error> {
        match &self.inner.backend {
            Backend::Sqlite(pool) => {
                let rows = bind_cells!(sqlx::query(AssertSqlSafe(sql)), args)
                    .fetch_all(pool)
                    .await?;
                Ok(read_cells!(rows, columns))
            }
            Backend::Postgres(pool) => {
                let rows = bind_cells!(sqlx::query(AssertSqlSafe(sql)), args)
                    .fetch_all(pool)
                    .await?;
                Ok(read_cells!(rows, columns))
            }
        }
    }
}
