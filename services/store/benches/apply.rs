//! Durable apply against raw inserts of the same rows, in one run on the same machine.
//!
//! `cargo bench -p renda-store --bench apply` (set `RENDA_BENCH_PG_URL=postgres://…` to add
//! PostgreSQL). Workload: 10,000 records of the `wide` kind (15 text fields, values of 8–24
//! characters) edited on two replicas A and B, a fifth of the records on both, 100,000 field
//! operations in all, applied in batches of 1,000. Prints figures with their goals; asserts
//! nothing.

use anyhow::{Context, Result};
use renda_replica::{ActorId, FieldId, KindId, Op, OrgCode, Outcome, RecordId, Replica, Value};
use renda_store::{Options, Store};
use sqlx::{AssertSqlSafe, Connection, Executor};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

const RECORDS: u64 = 10_000;
const OPS: usize = 100_000;
const BATCH: usize = 1_000;
/// Rows per multi-row INSERT in the baseline: the same as the store's own inserts.
const ROWS_PER_STATEMENT: usize = 250;

struct Workload {
    ops: Vec<Op>,
    encoded: Vec<Vec<u8>>,
    /// (record id, field, value) of every operation: the rows of the raw baseline.
    rows: Vec<(String, i64, String)>,
    value_bytes: usize,
    now: u64,
}

fn workload() -> Result<Workload> {
    let schema = Arc::new(renda_replica::testkit::schema());
    let org = OrgCode::new(370_202_001)?;
    let mut a = Replica::new(ActorId(0xa11ce), org, schema.clone());
    let mut b = Replica::new(ActorId(0xb0b), org, schema);
    let wide = KindId(2);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut now = 1_790_000_000_000u64;
    let mut ops = Vec::with_capacity(OPS);
    let mut rows = Vec::with_capacity(OPS);
    let mut value_bytes = 0;
    while ops.len() < OPS {
        let r = next() % RECORDS;
        let record = RecordId(Uuid::from_u128(u128::from(r) + 1));
        let field = FieldId(2 + (next() % 15) as u16);
        let len = 8 + (next() % 17) as usize;
        let value: String = (0..len)
            .map(|_| (b'a' + (next() % 26) as u8) as char)
            .collect();
        value_bytes += len;
        // A fifth of the records are edited on both replicas.
        let replica = if r.is_multiple_of(5) && next().is_multiple_of(2) {
            &mut b
        } else {
            &mut a
        };
        now += 1;
        rows.push((record.to_string(), i64::from(field.0), value.clone()));
        ops.push(replica.put(record, wide, field, Value::Text(value), now)?);
    }
    let encoded = ops.iter().map(Op::encode).collect();
    Ok(Workload {
        ops,
        encoded,
        rows,
        value_bytes,
        now,
    })
}

fn accept_all(_: &Op) -> Result<(), String> {
    Ok(())
}

/// (1)/(4): durable apply of the encoded operations in batches, ops per second.
async fn durable_apply(url: &str, work: &Workload) -> Result<f64> {
    let schema = Arc::new(renda_replica::testkit::schema());
    let store = Store::open(url, schema, OrgCode::new(370_202)?, Options::default()).await?;
    let start = Instant::now();
    let mut applied = 0;
    for batch in work.encoded.chunks(BATCH) {
        let report = store.apply_batch(batch, Some("bench"), &accept_all).await?;
        applied += report.applied;
    }
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(applied == OPS, "applied {applied} of {OPS}");
    store.close().await;
    Ok(OPS as f64 / elapsed)
}

/// Multi-row INSERT text: `?` placeholders on SQLite (its fastest form), `$N` on PostgreSQL.
fn insert_sql(rows: usize, sqlite: bool) -> String {
    let mut sql = String::from("INSERT INTO raw_rows (record_id, field, value) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        if sqlite {
            sql.push_str("(?,?,?)");
        } else {
            sql.push_str(&format!("(${},${},${})", 3 * i + 1, 3 * i + 2, 3 * i + 3));
        }
    }
    sql
}

/// (2)/(4): the same rows into a plain table, one transaction per batch of 1,000, multi-row
/// statements like the store's: rows per second.
macro_rules! raw_insert {
    ($conn:expr, $rows:expr, $sqlite:expr) => {{
        let conn = $conn;
        conn.execute("CREATE TABLE raw_rows (record_id TEXT NOT NULL, field BIGINT NOT NULL, value TEXT NOT NULL)")
            .await?;
        let start = Instant::now();
        for batch in $rows.chunks(BATCH) {
            let mut tx = conn.begin().await?;
            for chunk in batch.chunks(ROWS_PER_STATEMENT) {
                let mut query = sqlx::query(AssertSqlSafe(insert_sql(chunk.len(), $sqlite)));
                for (id, field, value) in chunk {
                    query = query.bind(id.as_str()).bind(*field).bind(value.as_str());
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        $rows.len() as f64 / start.elapsed().as_secs_f64()
    }};
}

async fn raw_sqlite(path: &std::path::Path, rows: &[(String, i64, String)]) -> Result<f64> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    Ok(raw_insert!(&mut conn, rows, true))
}

async fn raw_postgres(url: &str, rows: &[(String, i64, String)]) -> Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    Ok(raw_insert!(&mut conn, rows, false))
}

/// A fresh schema on the PostgreSQL server and a URL whose connections use it.
async fn pg_schema(base: &str) -> Result<(String, String)> {
    let mut conn = sqlx::PgConnection::connect(base).await?;
    let schema = format!("bench_{:016x}", rand::random::<u64>());
    conn.execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((
        format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        schema,
    ))
}

async fn drop_pg_schema(base: &str, schema: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect(base).await?;
    conn.execute(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await?;
    Ok(())
}

fn core_apply(work: &Workload) -> Result<f64> {
    let schema = Arc::new(renda_replica::testkit::schema());
    let org = OrgCode::new(370_202)?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut c = Replica::new(ActorId(0xc), org, schema.clone());
        let batch = work.ops.clone();
        let start = Instant::now();
        for op in batch {
            let outcome = c.receive(op, work.now);
            debug_assert!(matches!(outcome, Outcome::Applied(_)));
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(OPS as f64 / best)
}

fn ratio_line(label: &str, durable: f64, raw: f64) {
    println!("{label} durable apply:      {durable:>12.0} ops/s   (batches of {BATCH})");
    println!("{label} raw insert:         {raw:>12.0} rows/s  (same rows, same batching)");
    println!(
        "{label} ratio durable/raw:  {:>12.2}          (goal >= 0.5)",
        durable / raw
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let work = workload()?;
    let encoded_bytes: usize = work.encoded.iter().map(Vec::len).sum();
    println!(
        "workload: {OPS} field writes on {RECORDS} `wide` records (15 text fields, 8-24 chars), \
         two replicas, a fifth of the records edited on both"
    );

    let dir = tempfile::tempdir()?;
    let store_url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
    let durable = durable_apply(&store_url, &work)
        .await
        .context("durable apply on SQLite")?;
    let raw = raw_sqlite(&dir.path().join("raw.sqlite"), &work.rows)
        .await
        .context("raw insert on SQLite")?;
    ratio_line("SQLite", durable, raw);

    match std::env::var("RENDA_BENCH_PG_URL") {
        Ok(base) if !base.is_empty() => {
            let result: Result<(f64, f64)> = async {
                let (store_url, store_schema) = pg_schema(&base).await?;
                let durable = durable_apply(&store_url, &work).await;
                drop_pg_schema(&base, &store_schema).await?;
                let (raw_url, raw_schema) = pg_schema(&base).await?;
                let raw = raw_postgres(&raw_url, &work.rows).await;
                drop_pg_schema(&base, &raw_schema).await?;
                Ok((durable?, raw?))
            }
            .await;
            match result {
                Ok((durable, raw)) => ratio_line("PostgreSQL", durable, raw),
                Err(e) => println!("PostgreSQL: skipped (unreachable: {e})"),
            }
        }
        _ => println!("PostgreSQL: skipped (RENDA_BENCH_PG_URL not set)"),
    }

    println!(
        "core apply (in memory):     {:>12.0} ops/s   (goal >= 1,000,000)",
        core_apply(&work)?
    );
    println!(
        "encoded field write:        {:>12.1} bytes/op on average, value {:.1} bytes  (goal <= 64)",
        encoded_bytes as f64 / OPS as f64,
        work.value_bytes as f64 / OPS as f64
    );
    Ok(())
}
