//! Durable apply against raw inserts of the same rows, in one run on the same machine.
//!
//! `cargo bench -p renda-store --bench apply` (set `RENDA_BENCH_PG_URL=postgres://…` to add
//! PostgreSQL). Workload of issue #2: 10,000 records of the `wide` kind (15 text fields,
//! values of 8–24 characters) edited on two replicas A and B, a fifth of the records on both,
//! 100,000 field operations in all, applied in batches of 1,000, with UUIDv7 record ids minted
//! from the bench's clock when a record is created. Two delivery orders:
//!
//! - A, in origin order: each record is created by one form save of 6 fields (consecutive
//!   operations), later single-field edits are spread over time, and the two origins' logs
//!   arrive interleaved by time, as a sync delivers them;
//! - B, random: every operation edits a random field of a random record (the worst case).
//!
//! Baselines write the same (record, field, value) rows with the same batching and pragmas:
//! (i) an unkeyed append-only table, (ii) a table keyed by (record, field) with
//! `INSERT OR REPLACE` — what a non-replicated application keeps field values in; and (iii) the
//! floor: raw SQL writing only the rows and keys any durable replicated apply must write (see
//! [`floor_sqlite`]), which shows the best ratio to (i) and (ii) a store with those keys can
//! reach, and how far the store is from it. Prints figures with their goals; asserts nothing.

use anyhow::{Context, Result};
use renda_replica::{ActorId, FieldId, KindId, Op, OrgCode, Outcome, RecordId, Replica, Value};
use renda_store::{Options, Store};
use sqlx::{AssertSqlSafe, Connection, Executor};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const RECORDS: usize = 10_000;
const OPS: usize = 100_000;
const BATCH: usize = 1_000;
/// Fields a record is created with.
const FORM_FIELDS: usize = 6;
/// Rows per multi-row INSERT in the baselines: the same as the store's own inserts.
const ROWS_PER_STATEMENT: usize = 250;

struct Workload {
    name: &'static str,
    ops: Vec<Op>,
    encoded: Vec<Vec<u8>>,
    /// (record id, field, value) of every operation: the rows of the raw baselines.
    rows: Vec<(String, i64, String)>,
    value_bytes: usize,
    now: u64,
}

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn value(&mut self) -> String {
        let len = 8 + self.below(17);
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }

    /// A UUIDv7 minted at `ms` on the bench's clock.
    fn v7(&mut self, ms: u64) -> RecordId {
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&self.next().to_le_bytes());
        random[8..].copy_from_slice(&self.next().to_le_bytes()[..2]);
        RecordId(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid())
    }
}

struct Builder {
    replicas: [Replica; 2],
    rng: Rng,
    now: u64,
    ops: Vec<Op>,
    rows: Vec<(String, i64, String)>,
}

impl Builder {
    fn new() -> Result<Self> {
        let schema = Arc::new(renda_replica::testkit::schema());
        let org = OrgCode::new(370_202_001)?;
        Ok(Builder {
            replicas: [
                Replica::new(ActorId(0xa11ce), org, schema.clone()),
                Replica::new(ActorId(0xb0b), org, schema),
            ],
            rng: Rng(0x2545_f491_4f6c_dd1d),
            now: 1_790_000_000_000,
            ops: Vec::with_capacity(OPS + FORM_FIELDS),
            rows: Vec::with_capacity(OPS + FORM_FIELDS),
        })
    }

    fn put(&mut self, replica: usize, record: RecordId, field: FieldId) -> Result<()> {
        let value = self.rng.value();
        self.rows
            .push((record.to_string(), i64::from(field.0), value.clone()));
        let op =
            self.replicas[replica].put(record, KindId(2), field, Value::Text(value), self.now)?;
        self.ops.push(op);
        Ok(())
    }

    fn finish(mut self, name: &'static str) -> Workload {
        self.ops.truncate(OPS);
        self.rows.truncate(OPS);
        let encoded = self.ops.iter().map(Op::encode).collect();
        let value_bytes = self.rows.iter().map(|(_, _, v)| v.len()).sum();
        Workload {
            name,
            ops: self.ops,
            encoded,
            rows: self.rows,
            value_bytes,
            now: self.now,
        }
    }
}

/// Workload A: records created by form saves, edited later, delivered in origin order.
fn in_origin_order() -> Result<Workload> {
    let mut b = Builder::new()?;
    // (id, home replica, edited on both)
    let mut records: Vec<(RecordId, usize, bool)> = Vec::with_capacity(RECORDS);
    while b.ops.len() < OPS {
        b.now += 1 + b.rng.below(3) as u64;
        let create = records.len() < RECORDS && (records.is_empty() || b.rng.below(5) == 0);
        if create {
            let id = b.rng.v7(b.now);
            let home = b.rng.below(2);
            records.push((id, home, records.len().is_multiple_of(5)));
            let mut fields: Vec<u16> = (0..15).collect();
            for i in 0..FORM_FIELDS {
                let j = i + b.rng.below(15 - i);
                fields.swap(i, j);
                b.put(home, id, FieldId(2 + fields[i]))?;
            }
        } else {
            let (id, home, shared) = records[b.rng.below(records.len())];
            let replica = if shared { b.rng.below(2) } else { home };
            let field = FieldId(2 + b.rng.below(15) as u16);
            b.put(replica, id, field)?;
        }
    }
    Ok(b.finish("A in origin order"))
}

/// Workload B: every operation a random field of a random record.
fn random() -> Result<Workload> {
    let mut b = Builder::new()?;
    let mut ids: HashMap<usize, RecordId> = HashMap::new();
    while b.ops.len() < OPS {
        b.now += 1;
        let r = b.rng.below(RECORDS);
        let now = b.now;
        let id = match ids.get(&r) {
            Some(id) => *id,
            None => {
                let id = b.rng.v7(now);
                ids.insert(r, id);
                id
            }
        };
        let field = FieldId(2 + b.rng.below(15) as u16);
        // A fifth of the records are edited on both replicas.
        let replica = usize::from(r.is_multiple_of(5) && b.rng.next().is_multiple_of(2));
        b.put(replica, id, field)?;
    }
    Ok(b.finish("B random"))
}

fn accept_all(_: &Op, _: Option<OrgCode>) -> Result<(), String> {
    Ok(())
}

/// Durable apply of the encoded operations in batches, ops per second.
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    /// (i) unkeyed, append-only.
    Append,
    /// (ii) keyed by (record, field), the latest value replacing the earlier one.
    Keyed,
}

fn create_sql(table: Table, sqlite: bool) -> &'static str {
    match (table, sqlite) {
        (Table::Append, _) => {
            "CREATE TABLE raw_rows (record_id TEXT NOT NULL, field BIGINT NOT NULL, \
             value TEXT NOT NULL)"
        }
        (Table::Keyed, true) => {
            "CREATE TABLE raw_rows (record_id TEXT NOT NULL, field BIGINT NOT NULL, \
             value TEXT NOT NULL, PRIMARY KEY (record_id, field)) WITHOUT ROWID"
        }
        (Table::Keyed, false) => {
            "CREATE TABLE raw_rows (record_id TEXT NOT NULL, field BIGINT NOT NULL, \
             value TEXT NOT NULL, PRIMARY KEY (record_id, field))"
        }
    }
}

/// Multi-row INSERT text: `?` placeholders on SQLite (its fastest form), `$N` on PostgreSQL.
fn insert_sql(rows: usize, table: Table, sqlite: bool) -> String {
    let mut sql = String::from(if table == Table::Keyed && sqlite {
        "INSERT OR REPLACE INTO raw_rows (record_id, field, value) VALUES "
    } else {
        "INSERT INTO raw_rows (record_id, field, value) VALUES "
    });
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
    if table == Table::Keyed && !sqlite {
        sql.push_str(" ON CONFLICT (record_id, field) DO UPDATE SET value = excluded.value");
    }
    sql
}

/// The same rows into a plain table, one transaction per batch of 1,000, multi-row statements
/// like the store's: rows per second. PostgreSQL refuses to upsert one key twice in a
/// statement, so there a statement keeps the last value of each key (what it would store).
macro_rules! raw_insert {
    ($conn:expr, $rows:expr, $table:expr, $sqlite:expr) => {{
        let conn = $conn;
        conn.execute(create_sql($table, $sqlite)).await?;
        let start = Instant::now();
        for batch in $rows.chunks(BATCH) {
            let mut tx = conn.begin().await?;
            for chunk in batch.chunks(ROWS_PER_STATEMENT) {
                let mut chunk: Vec<&(String, i64, String)> = chunk.iter().collect();
                if $table == Table::Keyed && !$sqlite {
                    let mut last = HashMap::new();
                    for (i, row) in chunk.iter().enumerate() {
                        last.insert((&row.0, row.1), i);
                    }
                    let mut keep: Vec<usize> = last.into_values().collect();
                    keep.sort_unstable();
                    chunk = keep.into_iter().map(|i| chunk[i]).collect();
                }
                let sql = insert_sql(chunk.len(), $table, $sqlite);
                let mut query = sqlx::query(AssertSqlSafe(sql));
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

async fn raw_sqlite(
    path: &std::path::Path,
    rows: &[(String, i64, String)],
    table: Table,
) -> Result<f64> {
    let mut conn = sqlite_conn(path).await?;
    Ok(raw_insert!(&mut conn, rows, table, true))
}

/// A connection with the store's pragmas (see its db.rs), so baselines run on equal terms.
async fn sqlite_conn(path: &std::path::Path) -> Result<sqlx::SqliteConnection> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10))
        // The store's pragmas (see its db.rs), so the baseline runs on equal terms.
        .pragma("cache_size", renda_store::SQLITE_CACHE_KIB)
        .pragma("temp_store", "memory")
        .pragma("wal_autocheckpoint", renda_store::SQLITE_CHECKPOINT_PAGES);
    Ok(sqlx::SqliteConnection::connect_with(&options).await?)
}

/// (iii) The floor: raw SQL writing only what any durable replicated apply of these operations
/// must write, with no decoding, no CRDT and no reads — per operation an op-log row keyed by
/// local sequence with its two other keys (the `(origin, origin_seq)` identity that makes a
/// second apply a no-op, and `(record, local_seq)` for the record's history and scoped feeds),
/// and an upsert of the field's materialised row (value, conflict flag, and the register state,
/// here the operation's own bytes: a single-value register holds what the operation carried).
/// The store's tables have these keys; if this floor is below half of (i) or (ii), no
/// implementation that keeps them can reach the goal ratio.
async fn floor_sqlite(path: &std::path::Path, work: &Workload) -> Result<f64> {
    let mut conn = sqlite_conn(path).await?;
    conn.execute(
        "CREATE TABLE log (local_seq INTEGER PRIMARY KEY, origin INTEGER NOT NULL, \
         origin_seq INTEGER NOT NULL, record_id BLOB NOT NULL, bytes BLOB NOT NULL, \
         UNIQUE (origin, origin_seq)); \
         CREATE INDEX log_record ON log (record_id, local_seq); \
         CREATE TABLE field (record_id BLOB NOT NULL, field INTEGER NOT NULL, \
         value TEXT NOT NULL, has_conflict BOOLEAN NOT NULL, state BLOB NOT NULL, \
         PRIMARY KEY (record_id, field)) WITHOUT ROWID",
    )
    .await?;
    let log_sql = |n: usize| {
        let mut sql = String::from(
            "INSERT INTO log (local_seq, origin, origin_seq, record_id, bytes) VALUES ",
        );
        sql.push_str(&vec!["(?,?,?,?,?)"; n].join(","));
        sql
    };
    let field_sql = |n: usize| {
        let mut sql = String::from(
            "INSERT INTO field (record_id, field, value, has_conflict, state) VALUES ",
        );
        sql.push_str(&vec!["(?,?,?,?,?)"; n].join(","));
        sql.push_str(
            " ON CONFLICT (record_id, field) DO UPDATE SET value = excluded.value, \
             has_conflict = excluded.has_conflict, state = excluded.state",
        );
        sql
    };
    let start = Instant::now();
    let mut local = 0i64;
    for (ops, bytes) in work.ops.chunks(BATCH).zip(work.encoded.chunks(BATCH)) {
        let mut tx = conn.begin().await?;
        for (ops, bytes) in ops
            .chunks(ROWS_PER_STATEMENT)
            .zip(bytes.chunks(ROWS_PER_STATEMENT))
        {
            let sql = log_sql(ops.len());
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (op, b) in ops.iter().zip(bytes) {
                local += 1;
                query = query
                    .bind(local)
                    .bind(op.id.origin.0 as i64)
                    .bind(op.id.seq as i64)
                    .bind(&op.record.0.as_bytes()[..])
                    .bind(b.as_slice());
            }
            query.execute(&mut *tx).await?;
            // One row per (record, field) in a statement, the last write's (as the store keeps).
            let mut last = HashMap::new();
            for (i, op) in ops.iter().enumerate() {
                if let renda_replica::Change::Put { field, .. } = op.change {
                    last.insert((op.record, field), i);
                }
            }
            let mut keep: Vec<usize> = last.into_values().collect();
            keep.sort_unstable();
            let sql = field_sql(keep.len());
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for i in keep {
                let op = &ops[i];
                let (field, value) = match &op.change {
                    renda_replica::Change::Put { field, value, .. } => (field.0, value),
                    _ => continue,
                };
                let value = match value {
                    Value::Text(t) => format!("{t:?}"),
                    other => format!("{other:?}"),
                };
                query = query
                    .bind(&op.record.0.as_bytes()[..])
                    .bind(i64::from(field))
                    .bind(value)
                    .bind(false)
                    .bind(bytes[i].as_slice());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(work.ops.len() as f64 / start.elapsed().as_secs_f64())
}

async fn raw_postgres(url: &str, rows: &[(String, i64, String)], table: Table) -> Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    Ok(raw_insert!(&mut conn, rows, table, false))
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

fn floor_lines(durable: f64, append: f64, keyed: f64, floor: f64) {
    println!("  SQLite     floor (iii) raw rows a replicated apply must write: {floor:>8.0} ops/s");
    println!(
        "  SQLite     floor/raw (i) {:.2}, floor/raw (ii) {:.2}: the best ratio any store keeping \
         these keys can print",
        floor / append,
        floor / keyed
    );
    println!(
        "  SQLite     durable/floor (iii):       {:>10.2}          (the store's own overhead)",
        durable / floor
    );
}

fn ratio_lines(label: &str, durable: f64, append: f64, keyed: f64) {
    println!("  {label} durable apply:            {durable:>10.0} ops/s   (batches of {BATCH})");
    println!(
        "  {label} raw (i) append-only:      {append:>10.0} rows/s  (same rows, same batching)"
    );
    println!(
        "  {label} raw (ii) keyed, replace:  {keyed:>10.0} rows/s  (same rows, same batching)"
    );
    println!(
        "  {label} ratio durable/raw (i):    {:>10.2}          (goal >= 0.5)",
        durable / append
    );
    println!(
        "  {label} ratio durable/raw (ii):   {:>10.2}          (goal >= 0.5)",
        durable / keyed
    );
}

async fn sqlite_figures(work: &Workload) -> Result<(f64, f64, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let store_url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
    let durable = durable_apply(&store_url, work)
        .await
        .context("durable apply on SQLite")?;
    let append = raw_sqlite(&dir.path().join("append.sqlite"), &work.rows, Table::Append)
        .await
        .context("raw append on SQLite")?;
    let keyed = raw_sqlite(&dir.path().join("keyed.sqlite"), &work.rows, Table::Keyed)
        .await
        .context("raw keyed on SQLite")?;
    let floor = floor_sqlite(&dir.path().join("floor.sqlite"), work)
        .await
        .context("floor on SQLite")?;
    Ok((durable, append, keyed, floor))
}

async fn postgres_figures(base: &str, work: &Workload) -> Result<(f64, f64, f64)> {
    let (url, schema) = pg_schema(base).await?;
    let durable = durable_apply(&url, work).await;
    drop_pg_schema(base, &schema).await?;
    let mut raw = Vec::new();
    for table in [Table::Append, Table::Keyed] {
        let (url, schema) = pg_schema(base).await?;
        let rate = raw_postgres(&url, &work.rows, table).await;
        drop_pg_schema(base, &schema).await?;
        raw.push(rate?);
    }
    Ok((durable?, raw[0], raw[1]))
}

#[tokio::main]
async fn main() -> Result<()> {
    println!(
        "workload: {OPS} field writes on {RECORDS} `wide` records (15 text fields, 8-24 chars), \
         two replicas, a fifth of the records edited on both, UUIDv7 ids"
    );
    let workloads = [in_origin_order()?, random()?];
    let pg = std::env::var("RENDA_BENCH_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    for work in &workloads {
        println!("workload {}:", work.name);
        let (durable, append, keyed, floor) = sqlite_figures(work).await?;
        ratio_lines("SQLite    ", durable, append, keyed);
        floor_lines(durable, append, keyed, floor);
        match &pg {
            Some(base) => match postgres_figures(base, work).await {
                Ok((durable, append, keyed)) => ratio_lines("PostgreSQL", durable, append, keyed),
                Err(e) => println!("  PostgreSQL: skipped (unreachable: {e})"),
            },
            None => println!("  PostgreSQL: skipped (RENDA_BENCH_PG_URL not set)"),
        }
        let encoded_bytes: usize = work.encoded.iter().map(Vec::len).sum();
        println!(
            "  core apply (in memory):            {:>10.0} ops/s   (goal >= 1,000,000)",
            core_apply(work)?
        );
        println!(
            "  encoded field write:               {:>10.1} bytes/op on average, value {:.1} bytes  (goal <= 64)",
            encoded_bytes as f64 / OPS as f64,
            work.value_bytes as f64 / OPS as f64
        );
    }
    Ok(())
}
