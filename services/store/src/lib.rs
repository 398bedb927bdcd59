//! Durable storage for renda-mesh: the op log, held and quarantined operations, per-peer
//! checkpoints and sync state, and materialised record tables, on SQLite (the embedded default:
//! a file in WAL mode with `synchronous=FULL`) or PostgreSQL, with the same code and tests.
//!
//! This is the only crate that touches sqlx. It makes the receive rules of
//! [`renda_replica::Replica`] durable: every local write and every remote batch is one
//! transaction; origin sequences are assigned in the transaction that applies them; each
//! operation is logged and applied once; a set add ahead of its origin's earlier add on the same
//! set is held, never dropped; an operation that fails to decode, validate or pass the caller's
//! policy is quarantined with its reason while the rest of the batch goes on. Records are stored
//! as their independent CRDT parts — a row per field register, per set, per event — so an
//! operation reads and rewrites only the part it touches. It is not the sync protocol (that is
//! `renda-sync`, which reads the feeds and moves the checkpoints here) and holds no domain
//! rules: authority checks come in as a [`Policy`] function, and "records addressed to" an org
//! unit as an [`Audience`] function.

mod db;
mod digest;
mod error;
mod facts;
mod json;
mod parts;
mod read;
mod report;
mod write;

/// The SQLite pragmas the store sets, for benchmarks that must run on equal terms.
pub use db::{SQLITE_CACHE_KIB, SQLITE_CHECKPOINT_PAGES};
pub use digest::{BUCKETS as DIGEST_BUCKETS, DigestPart, ScopeDigest};
pub use error::Error;
pub use facts::{Changed, Fact, Projection};
pub use json::hlc_time;
pub use read::{
    ConflictedField, Cursor, Direction, FeedPage, HistoryEntry, LoggedOp, PeerSync, Quarantined,
    Settled, StoredRecord,
};
pub use report::{Cell, ColumnType, FactColumn, FactDates, FactOrder, FactQuery};
pub use write::{BatchReport, Policy};

use db::{Arg, Backend, PoolSettings};
use renda_replica::{ActorId, Clock, Hlc, OrgCode, RecordView, Schema};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Extra org units a record is addressed to beyond its own org and that org's ancestors (an
/// activity dispatched to a township's deputies, a reply to a suggestion raised there). Those
/// org units' downward feeds carry the record, its whole history included.
///
/// It must depend only on the record's org, sets and events: the store recomputes it only when
/// one of those changes (or the record is new), never for other field writes, which would
/// otherwise need the whole record loaded for each of them.
pub type Audience = Arc<dyn Fn(&RecordView) -> Vec<OrgCode> + Send + Sync>;

/// How to open a store.
#[derive(Clone)]
pub struct Options {
    pub audience: Option<Audience>,
    /// Remote clocks further ahead of local time than this are clamped.
    pub max_drift_ms: u64,
    pub max_connections: u32,
    /// How long SQLite waits for a lock held by another connection.
    pub busy_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            audience: None,
            max_drift_ms: Clock::DEFAULT_MAX_DRIFT_MS,
            max_connections: 4,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("audience", &self.audience.as_ref().map(|_| "fn"))
            .field("max_drift_ms", &self.max_drift_ms)
            .field("max_connections", &self.max_connections)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

/// One replica's database. Cheap to clone; all clones share the pool and the writer lock.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    schema: Arc<Schema>,
    org: OrgCode,
    actor: ActorId,
    audience: Option<Audience>,
    max_drift_ms: u64,
    /// A node is one process: one writer at a time keeps origin and local sequences gapless
    /// and makes SQLite's single-writer rule a queue instead of busy errors.
    writer: tokio::sync::Mutex<()>,
    /// One report-facts catch-up at a time on this store (see [`Store::lock_projection`]).
    projection: tokio::sync::Mutex<()>,
}

const META_ORG: &str = "org";
const META_ACTOR: &str = "actor";
const META_CLOCK: &str = "clock";

impl Store {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `postgres://…`),
    /// runs the migrations, and on first open mints this replica's actor. A database that
    /// belongs to another org unit is refused.
    pub async fn open(
        url: &str,
        schema: Arc<Schema>,
        org: OrgCode,
        options: Options,
    ) -> Result<Store, Error> {
        let settings = PoolSettings {
            max_connections: options.max_connections,
            busy_timeout: options.busy_timeout,
        };
        let backend = Backend::connect(url, &settings).await?;
        backend.migrate().await?;
        let mut tx = backend.begin().await?;
        let mut conn = tx.conn();
        let stored: Vec<(String, String)> = conn
            .fetch_all("SELECT key, value FROM meta", vec![])
            .await?;
        let get = |key: &str| {
            stored
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let actor = match (get(META_ORG), get(META_ACTOR)) {
            (Some(found), Some(actor)) => {
                if found != org.to_string() {
                    return Err(Error::OtherOrg {
                        expected: org,
                        found,
                    });
                }
                actor
                    .parse::<u64>()
                    .ok()
                    .filter(|a| (1..=ActorId::MAX).contains(a))
                    .map(ActorId)
                    .ok_or_else(|| Error::Corrupt(format!("stored actor {actor:?}")))?
            }
            (None, None) => {
                let actor = ActorId::from_random(rand::random::<u64>());
                for (key, value) in [
                    (META_ORG, org.to_string()),
                    (META_ACTOR, actor.0.to_string()),
                    (META_CLOCK, "0".to_string()),
                ] {
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ($1, $2)",
                        vec![Arg::Text(key.into()), Arg::Text(value)],
                    )
                    .await?;
                }
                tracing::info!(%org, %actor, backend = backend.name(), "new replica minted");
                actor
            }
            _ => return Err(Error::Corrupt("meta table is half written".into())),
        };
        digest::backfill(&mut conn, &schema).await?;
        tx.commit().await?;
        tracing::info!(%org, %actor, backend = backend.name(), "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                schema,
                org,
                actor,
                audience: options.audience,
                max_drift_ms: options.max_drift_ms,
                writer: tokio::sync::Mutex::new(()),
                projection: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// This replica's actor: the origin of every operation made here.
    pub fn actor(&self) -> ActorId {
        self.inner.actor
    }

    pub fn org(&self) -> OrgCode {
        self.inner.org
    }

    pub fn schema(&self) -> &Arc<Schema> {
        &self.inner.schema
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Waits for running queries and closes the pool.
    pub async fn close(&self) {
        self.inner.backend.close().await;
    }

    /// The last clock reading this replica issued or observed (persisted, so a restart never
    /// goes backwards).
    pub async fn clock(&self) -> Result<Hlc, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        Ok(load_clock(&mut conn.conn(), self.inner.max_drift_ms)
            .await?
            .last())
    }
}

pub(crate) async fn load_clock(conn: &mut db::Conn<'_>, max_drift_ms: u64) -> Result<Clock, Error> {
    let value: Option<(String,)> = conn
        .fetch_optional(
            "SELECT value FROM meta WHERE key = $1",
            vec![Arg::Text(META_CLOCK.into())],
        )
        .await?;
    let packed = value
        .and_then(|(v,)| v.parse::<u64>().ok())
        .ok_or_else(|| Error::Corrupt("stored clock is missing or unreadable".into()))?;
    Ok(Clock::new(Hlc::from_u64(packed), max_drift_ms))
}

pub(crate) async fn save_clock(conn: &mut db::Conn<'_>, clock: &Clock) -> Result<(), Error> {
    conn.execute(
        "UPDATE meta SET value = $1 WHERE key = $2",
        vec![
            Arg::Text(clock.last().to_u64().to_string()),
            Arg::Text(META_CLOCK.into()),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) fn now_ms() -> u64 {
    // A clock before 1970 reads as 1970: the hybrid clock still moves forward logically.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
