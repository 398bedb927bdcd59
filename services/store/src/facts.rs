//! Storage of the report-facts projection: typed rows that the reporting layer derives from the
//! materialised records (`report_facts`), and the op-log position up to which they are current
//! (`report_projection`). Nothing here knows what a fact means, and nothing here runs in the
//! apply path: the reporting layer asks which records changed after the watermark
//! ([`Store::records_changed`]), computes their facts from their materialised state, and hands
//! them back with [`Store::advance_projection`], which replaces those records' facts and moves
//! the watermark in one transaction. A crash at any point leaves facts and watermark matching,
//! so the next catch-up redoes exactly what was missing.

use crate::db::Arg;
use crate::parts::{id_keys, load_records};
use crate::read::{Versioned, to_u64};
use crate::{Error, Store, StoredRecord};
use renda_replica::RecordId;
use uuid::Uuid;

/// The row of `report_projection` this projection keeps.
const PROJECTION: &str = "report_facts";

/// One row of `report_facts`. The reporting layer decides what each column means per `fact`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub record: RecordId,
    /// 0 for the record itself, 1, 2, … for its steps; unique per record.
    pub item: u32,
    pub fact: u16,
    pub org_code: Option<u64>,
    /// The date a report's period is compared with, unix ms.
    pub date_ms: Option<i64>,
    /// Another record the item is about.
    pub subject: Option<Uuid>,
    pub code: i64,
    pub flags: i64,
    pub amount: i64,
    pub end_ms: Option<i64>,
    pub label: Option<String>,
    pub extra: Option<String>,
}

/// Where the projection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Projection {
    /// The reporting layer's definition of the facts these rows were computed with.
    pub version: i64,
    /// Every operation logged up to this local sequence is reflected in the facts.
    pub local_seq: u64,
}

/// The records with an operation logged in a range of local sequences.
#[derive(Debug, Default)]
pub struct Changed {
    /// Every record id with an operation in the range, whether or not it has a record now.
    pub ids: Vec<RecordId>,
    /// Their materialised state (deleted records included; ids without a `records` row, whose
    /// operations are all held, have none).
    pub records: Vec<StoredRecord>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Held by whoever catches the projection up: two catch-ups on one store would compute
    /// the same windows, and the store would refuse the second's advance (the watermark moved).
    /// Other stores in the process (an in-process mesh) are not held up.
    pub async fn lock_projection(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.projection.lock().await
    }

    /// Where the report-facts projection stands; `None` before its first run.
    pub async fn projection(&self) -> Result<Option<Projection>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let row: Option<(i64, i64)> = conn
            .conn()
            .fetch_optional(
                "SELECT version, local_seq FROM report_projection WHERE name = $1",
                vec![Arg::Text(PROJECTION.into())],
            )
            .await?;
        Ok(row.map(|(version, seq)| Projection {
            version,
            local_seq: to_u64(seq),
        }))
    }

    /// The local sequence of the last operation logged (0 for an empty log).
    pub async fn last_local_seq(&self) -> Result<u64, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        Ok(to_u64(
            crate::write::last_local_seq(&mut conn.conn()).await?,
        ))
    }

    /// The records with an operation logged after local sequence `after` and up to `upto`,
    /// materialised as they are now (which may already include later operations: a later
    /// catch-up computes those records again). `updated_seq` of each is its last operation in
    /// the range.
    pub async fn records_changed(&self, after: u64, upto: u64) -> Result<Changed, Error> {
        let mut pooled = self.inner.backend.acquire().await?;
        let mut conn = pooled.conn();
        let rows: Vec<(Uuid, i64)> = conn
            .fetch_all(
                "SELECT record_id, MAX(local_seq) FROM op_log \
                 WHERE local_seq > $1 AND local_seq <= $2 GROUP BY record_id",
                vec![Arg::Int(to_i64(after)), Arg::Int(to_i64(upto))],
            )
            .await?;
        let ids: Vec<RecordId> = rows.iter().map(|(id, _)| RecordId(*id)).collect();
        let mut loaded = load_records(&mut conn, &ids).await?;
        let records = rows
            .into_iter()
            .filter_map(|(id, seq)| {
                loaded
                    .remove(&RecordId(id))
                    .map(|record| self.stored_record(&record, seq, Versioned::No))
            })
            .collect();
        Ok(Changed { ids, records })
    }

    /// In one transaction, if the projection is at `version` and `after` (or has never run and
    /// `after` is 0): deletes the facts of `records`, inserts `facts`, and moves the watermark
    /// to `upto`. Returns `false`, changing nothing, when the projection is elsewhere (another
    /// catch-up got there first, or the version differs: see [`Store::reset_projection`]).
    pub async fn advance_projection(
        &self,
        version: i64,
        after: u64,
        upto: u64,
        records: &[RecordId],
        facts: Vec<Fact>,
    ) -> Result<bool, Error> {
        let _writer = self.inner.writer.lock().await;
        let mut tx = self.inner.backend.begin().await?;
        let mut conn = tx.conn();
        let moved = conn
            .execute(
                "UPDATE report_projection SET local_seq = $1 \
                 WHERE name = $2 AND version = $3 AND local_seq = $4",
                vec![
                    Arg::Int(to_i64(upto)),
                    Arg::Text(PROJECTION.into()),
                    Arg::Int(version),
                    Arg::Int(to_i64(after)),
                ],
            )
            .await?;
        if moved == 0 {
            let exists: Option<(i64,)> = conn
                .fetch_optional(
                    "SELECT local_seq FROM report_projection WHERE name = $1",
                    vec![Arg::Text(PROJECTION.into())],
                )
                .await?;
            if exists.is_some() || after != 0 {
                return Ok(false);
            }
            conn.execute(
                "INSERT INTO report_projection (name, version, local_seq) VALUES ($1, $2, $3)",
                vec![
                    Arg::Text(PROJECTION.into()),
                    Arg::Int(version),
                    Arg::Int(to_i64(upto)),
                ],
            )
            .await?;
        }
        conn.insert_many(
            "DELETE FROM report_facts WHERE record_id IN (",
            1,
            ")",
            id_keys(records),
        )
        .await?;
        let rows: Vec<Vec<Arg>> = facts
            .into_iter()
            .map(|f| {
                vec![
                    Arg::Id(f.record.0),
                    Arg::Int(i64::from(f.item)),
                    Arg::Int(i64::from(f.fact)),
                    Arg::OptInt(f.org_code.map(to_i64)),
                    Arg::OptInt(f.date_ms),
                    Arg::OptId(f.subject),
                    Arg::Int(f.code),
                    Arg::Int(f.flags),
                    Arg::Int(f.amount),
                    Arg::OptInt(f.end_ms),
                    Arg::OptText(f.label),
                    Arg::OptText(f.extra),
                ]
            })
            .collect();
        conn.insert_many(
            "INSERT INTO report_facts (record_id, item, fact, org_code, date_ms, subject, code, \
             flags, amount, end_ms, label, extra)",
            12,
            "",
            rows,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Drops every fact and starts the projection over at `version` from the start of the log
    /// (the reporting layer changed what its facts are).
    pub async fn reset_projection(&self, version: i64) -> Result<(), Error> {
        let _writer = self.inner.writer.lock().await;
        let mut tx = self.inner.backend.begin().await?;
        let mut conn = tx.conn();
        conn.execute("DELETE FROM report_facts", vec![]).await?;
        conn.execute(
            "DELETE FROM report_projection WHERE name = $1",
            vec![Arg::Text(PROJECTION.into())],
        )
        .await?;
        conn.execute(
            "INSERT INTO report_projection (name, version, local_seq) VALUES ($1, $2, 0)",
            vec![Arg::Text(PROJECTION.into()), Arg::Int(version)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_delete_list_is_one_values_list() {
        let sql = crate::db::values_sql(
            crate::db::Dialect::Postgres,
            "DELETE FROM report_facts WHERE record_id IN (",
            1,
            2,
            ")",
        );
        assert_eq!(
            sql,
            "DELETE FROM report_facts WHERE record_id IN ( VALUES ($1),($2) )"
        );
    }
}
