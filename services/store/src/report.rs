//! Read-only queries for reports over the report facts (`report_facts`) and the materialised
//! tables: callers describe what they want as a typed [`FactQuery`] (or call a named method),
//! and the SQL is written here alone, from constant pieces, with every value bound as a
//! parameter; the rows come back as plain cells. Nothing here writes.

use crate::db::Backend;
use crate::{Error, Store};
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

/// SQL that turns the hyphenated-text parameter `param` (`"$3"`) into a value comparable with
/// a record id column: `CAST($3 AS UUID)` on PostgreSQL, the 16 bytes on SQLite.
fn id_param(postgres: bool, param: &str) -> String {
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

/// A column of `report_facts` a [`FactQuery`] selects, or an aggregate over them. A query
/// selecting an aggregate groups by the plain columns it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactColumn {
    /// The fact's record id (text).
    RecordId,
    /// The org code (integer).
    Org,
    Flags,
    /// The fact's JSON extra (text).
    Extra,
    /// The label, `''` when none (text).
    Label,
    /// The fact's date, ms (integer).
    Date,
    /// The fact's end, ms; null while open (integer).
    End,
    Amount,
    Code,
    /// The record the fact is about (a deputy, a station, …; text).
    Subject,
    /// The fact kind (integer).
    Fact,
    /// `COUNT(*)`.
    Count,
    /// How many have an end (`COUNT(end_ms)`).
    CountEnded,
    /// `SUM(amount)`, 0 for none.
    SumAmount,
    /// The sum over the facts of `end − date` where the end is later, 0 for none.
    SumDuration,
}

impl FactColumn {
    fn sql(self) -> &'static str {
        match self {
            FactColumn::RecordId => "record_id",
            FactColumn::Org => "org_code",
            FactColumn::Flags => "flags",
            FactColumn::Extra => "extra",
            FactColumn::Label => "COALESCE(label, '')",
            FactColumn::Date => "date_ms",
            FactColumn::End => "end_ms",
            FactColumn::Amount => "amount",
            FactColumn::Code => "code",
            FactColumn::Subject => "subject",
            FactColumn::Fact => "fact",
            FactColumn::Count => "COUNT(*)",
            FactColumn::CountEnded => "COUNT(end_ms)",
            FactColumn::SumAmount => "CAST(COALESCE(SUM(amount), 0) AS BIGINT)",
            FactColumn::SumDuration => {
                "CAST(COALESCE(SUM(CASE WHEN end_ms > date_ms THEN end_ms - date_ms ELSE 0 END), 0) \
                 AS BIGINT)"
            }
        }
    }

    fn column_type(self) -> ColumnType {
        match self {
            FactColumn::RecordId | FactColumn::Extra | FactColumn::Label | FactColumn::Subject => {
                ColumnType::Text
            }
            _ => ColumnType::Int,
        }
    }

    fn is_aggregate(self) -> bool {
        matches!(
            self,
            FactColumn::Count
                | FactColumn::CountEnded
                | FactColumn::SumAmount
                | FactColumn::SumDuration
        )
    }
}

/// Which facts' dates a query keeps, in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactDates {
    /// `from <= date < to`.
    HalfOpen { from_ms: i64, to_ms: i64 },
    /// `first <= date <= last`.
    Closed { first_ms: i64, last_ms: i64 },
}

/// The order of a query's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FactOrder {
    /// Whatever the database gives (aggregates).
    #[default]
    Unordered,
    RecordId,
    /// By date, then record id: the keyset of [`FactQuery::after`].
    DateThenRecordId,
}

/// A read of `report_facts`: the facts of some kinds, in an org subtree, in a date range.
#[derive(Clone, Debug, Default)]
pub struct FactQuery {
    pub facts: Vec<u16>,
    pub select: Vec<FactColumn>,
    /// Only facts of this unit and the units below it.
    pub subtree: Option<crate::OrgCode>,
    pub dates: Option<FactDates>,
    /// Keyset paging: only facts after `(date ms, record id)` in [`FactOrder::DateThenRecordId`].
    pub after: Option<(i64, String)>,
    pub distinct: bool,
    pub order: FactOrder,
    pub limit: Option<i64>,
}

impl FactQuery {
    /// The facts of one kind, selecting `select`.
    pub fn of(fact: u16, select: &[FactColumn]) -> FactQuery {
        FactQuery {
            facts: vec![fact],
            select: select.to_vec(),
            ..FactQuery::default()
        }
    }

    pub fn subtree(mut self, org: crate::OrgCode) -> FactQuery {
        self.subtree = Some(org);
        self
    }

    pub fn dates(mut self, dates: FactDates) -> FactQuery {
        self.dates = Some(dates);
        self
    }

    pub fn order(mut self, order: FactOrder) -> FactQuery {
        self.order = order;
        self
    }

    /// The SQL and its parameters, for `postgres` or SQLite.
    fn sql(&self, postgres: bool) -> (String, Vec<Cell>) {
        let mut args = Vec::new();
        let push = |cell: Cell, args: &mut Vec<Cell>| {
            args.push(cell);
            format!("${}", args.len())
        };
        let facts: Vec<String> = self
            .facts
            .iter()
            .map(|f| push(Cell::Int(i64::from(*f)), &mut args))
            .collect();
        let mut filters = vec![if facts.len() == 1 {
            format!("fact = {}", facts[0])
        } else {
            format!("fact IN ({})", facts.join(", "))
        }];
        match self.dates {
            Some(FactDates::HalfOpen { from_ms, to_ms }) => {
                let from = push(Cell::Int(from_ms), &mut args);
                let to = push(Cell::Int(to_ms), &mut args);
                filters.push(format!("date_ms >= {from} AND date_ms < {to}"));
            }
            Some(FactDates::Closed { first_ms, last_ms }) => {
                let first = push(Cell::Int(first_ms), &mut args);
                let last = push(Cell::Int(last_ms), &mut args);
                filters.push(format!("date_ms >= {first} AND date_ms <= {last}"));
            }
            None => {}
        }
        if let Some(org) = self.subtree {
            // With a date range the date index is the selective one: `+org_code` keeps SQLite
            // from choosing the org index instead (PostgreSQL reads it as the same column).
            let column = if self.dates.is_some() {
                "+org_code"
            } else {
                "org_code"
            };
            let mut parts = Vec::new();
            for (lo, hi) in org.subtree_ranges() {
                // Codes have at most 12 digits, far below `i64::MAX`.
                let lo = push(Cell::Int(lo as i64), &mut args);
                let hi = push(Cell::Int(hi as i64), &mut args);
                parts.push(format!("{column} BETWEEN {lo} AND {hi}"));
            }
            filters.push(format!("({})", parts.join(" OR ")));
        }
        if let Some((at_ms, id)) = &self.after {
            let at = push(Cell::Int(*at_ms), &mut args);
            let id = push(Cell::Text(id.clone()), &mut args);
            filters.push(format!(
                "(date_ms > {at} OR record_id > {})",
                id_param(postgres, &id)
            ));
        }
        let columns: Vec<&str> = self.select.iter().map(|c| c.sql()).collect();
        let mut sql = format!(
            "SELECT {}{} FROM report_facts WHERE {}",
            if self.distinct { "DISTINCT " } else { "" },
            columns.join(", "),
            filters.join(" AND ")
        );
        if self.select.iter().any(|c| c.is_aggregate()) {
            let plain: Vec<&str> = self
                .select
                .iter()
                .filter(|c| !c.is_aggregate())
                .map(|c| c.sql())
                .collect();
            if !plain.is_empty() {
                sql.push_str(&format!(" GROUP BY {}", plain.join(", ")));
            }
        }
        match self.order {
            FactOrder::Unordered => {}
            FactOrder::RecordId => sql.push_str(" ORDER BY record_id"),
            FactOrder::DateThenRecordId => sql.push_str(" ORDER BY date_ms, record_id"),
        }
        if let Some(limit) = self.limit {
            let limit = push(Cell::Int(limit), &mut args);
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        (sql, args)
    }
}

impl Store {
    /// Runs a [`FactQuery`]; each row holds the selected columns in order.
    pub async fn facts(&self, query: &FactQuery) -> Result<Vec<Vec<Cell>>, Error> {
        let (sql, args) = query.sql(self.backend() == "postgres");
        let columns: Vec<ColumnType> = query.select.iter().map(|c| c.column_type()).collect();
        self.report_rows(sql, args, &columns).await
    }

    /// The ids of the live records of `kind` whose text field `field` holds exactly `value`,
    /// in id order (a login looked up among the user records).
    pub async fn live_records_with_text(
        &self,
        kind: renda_replica::KindId,
        field: &str,
        value: &str,
    ) -> Result<Vec<Uuid>, Error> {
        // Fields hold their value as JSON text.
        let json = serde_json::Value::String(value.to_owned()).to_string();
        let rows = self
            .report_rows(
                "SELECT f.record_id FROM fields f JOIN records r ON r.id = f.record_id \
                 WHERE r.kind = $1 AND NOT r.deleted AND f.name = $2 AND f.value = $3 \
                 ORDER BY f.record_id"
                    .to_owned(),
                vec![
                    Cell::Int(i64::from(kind.0)),
                    Cell::Text(field.to_owned()),
                    Cell::Text(json),
                ],
                &[ColumnType::Text],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().and_then(Cell::as_text))
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    /// Runs one read-only query written in this module. `sql` uses `$1, $2, …` placeholders
    /// (both backends read them) and is built from constant pieces only; every value goes in
    /// `args`.
    async fn report_rows(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_query_binds_every_value_and_groups_by_its_plain_columns() {
        let query = FactQuery::of(2, &[FactColumn::Org, FactColumn::Code, FactColumn::Count])
            .dates(FactDates::HalfOpen {
                from_ms: 10,
                to_ms: 20,
            })
            .subtree(crate::OrgCode::new(370_202).expect("a county code"));
        let (sql, args) = query.sql(false);
        assert_eq!(
            sql,
            "SELECT org_code, code, COUNT(*) FROM report_facts WHERE fact = $1 \
             AND date_ms >= $2 AND date_ms < $3 AND (+org_code BETWEEN $4 AND $5 \
             OR +org_code BETWEEN $6 AND $7 OR +org_code BETWEEN $8 AND $9) \
             GROUP BY org_code, code"
        );
        assert_eq!(args[0], Cell::Int(2));
        assert_eq!(args[5], Cell::Int(370_202_000));
        assert_eq!(args.len(), 9);
    }

    #[test]
    fn a_keyset_page_compares_ids_as_each_backend_stores_them() {
        let query = FactQuery {
            after: Some((5, "0190a6f0-0000-7000-8000-000000000001".into())),
            limit: Some(100),
            order: FactOrder::DateThenRecordId,
            ..FactQuery::of(1, &[FactColumn::RecordId])
        };
        let (sqlite, args) = query.sql(false);
        assert!(
            sqlite.ends_with(
                "(date_ms > $2 OR record_id > unhex(replace($3, '-', ''))) \
                 ORDER BY date_ms, record_id LIMIT $4"
            ),
            "{sqlite}"
        );
        assert_eq!(args[3], Cell::Int(100));
        let (postgres, _) = query.sql(true);
        assert!(
            postgres.contains("record_id > CAST($3 AS UUID)"),
            "{postgres}"
        );
    }
}
