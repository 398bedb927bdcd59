//! The digest of the records a node holds in an org unit's subtree, kept up to date as
//! operations apply: per org unit (a record counts at its org and every ancestor) and bucket
//! (16, by a hash of the record id), how many records, how many operations, and the XOR of a
//! 64-bit hash of each operation's id (`scope_digest`, a few upserts per batch). Two nodes
//! holding the same operations of the same records show the same digest, and a record's state
//! is a function of its operations, so equal digests mean converged records. An org unit's
//! digest is at most 16 rows read by key, whatever its records; the digest of one bucket lists
//! its records, worked out from the log (a diagnosis, not a routine call), so two nodes that
//! differ find which records in two answers.

use crate::db::{Arg, Conn};
use crate::{Error, Store};
use renda_replica::{OpId, OrgCode, RecordId};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The meta key saying `record_digest` covers every logged operation (set once, when the
/// store first opens after migration 0007).
const META_DIGEST: &str = "record_digest";

/// A 64-bit hash of an operation id (SplitMix64 finalizer over origin and sequence): ids are
/// unique mesh-wide, so XOR-ing these over a record's operations fingerprints the set.
pub(crate) fn op_hash(id: OpId) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(mix(id.origin.0) ^ id.seq)
}

/// Buckets an org unit's digest splits into.
pub const BUCKETS: u8 = 16;

/// The bucket of a record, from a hash of its id (UUIDv7 ids share their leading time bytes).
pub(crate) fn bucket_of(id: RecordId) -> u8 {
    let (hi, lo) = id.0.as_u64_pair();
    (op_hash(OpId {
        origin: renda_replica::ActorId(hi),
        seq: lo,
    }) % u64::from(BUCKETS)) as u8
}

/// A record a transaction logged operations for: what they add to its digest, and the org
/// unit its scope digests count it at before and after (`None`: in none — no org yet, or a
/// local-only kind).
pub(crate) struct Touched {
    pub id: RecordId,
    /// The record had no row before this transaction: all its operations are in `delta`.
    pub new: bool,
    pub delta: (i64, u64),
    pub before: Option<OrgCode>,
    pub after: Option<OrgCode>,
}

/// Adds a delta to a scope digest row; the XOR is written `(a | b) - (a & b)`, the same SQL
/// on both engines (the AND is a bit subset of the OR: the subtraction never borrows).
const XOR_SCOPE: &str = "ON CONFLICT (org_code, bucket) DO UPDATE SET \
     records = scope_digest.records + excluded.records, \
     ops = scope_digest.ops + excluded.ops, \
     hash = (scope_digest.hash | excluded.hash) - (scope_digest.hash & excluded.hash)";

fn signed(hash: u64) -> i64 {
    i64::from_ne_bytes(hash.to_ne_bytes())
}

fn unsigned(hash: i64) -> u64 {
    u64::from_ne_bytes(hash.to_ne_bytes())
}

/// An org unit and every unit above it: the scope digests a record there counts in.
fn chain(org: OrgCode) -> impl Iterator<Item = OrgCode> {
    std::iter::once(org).chain(org.ancestors())
}

/// Folds the operations a transaction logged into their records' digest rows and into the
/// scope digests of the org units they count in (moving a record whose org changed).
pub(crate) async fn add(conn: &mut Conn<'_>, touched: Vec<Touched>) -> Result<(), Error> {
    if touched.is_empty() {
        return Ok(());
    }
    // A record that changes org unit leaves the old one's digests and joins the new one's
    // with all its operations: read what it held before this transaction.
    let moved: Vec<RecordId> = touched
        .iter()
        .filter(|t| t.before != t.after && !t.new)
        .map(|t| t.id)
        .collect();
    // Its operations are all logged by now (this transaction's included): the whole joins
    // the new unit, the whole less this transaction's leaves the old one.
    let whole = record_digests(conn, &moved).await?;
    let mut scopes: HashMap<(OrgCode, u8), (i64, i64, u64)> = HashMap::new();
    for t in &touched {
        let bucket = bucket_of(t.id);
        let mut fold = |org: OrgCode, records: i64, ops: i64, hash: u64| {
            for unit in chain(org) {
                let entry = scopes.entry((unit, bucket)).or_default();
                entry.0 += records;
                entry.1 += ops;
                entry.2 ^= hash;
            }
        };
        if t.before == t.after {
            if let Some(org) = t.after {
                fold(org, 0, t.delta.0, t.delta.1);
            }
            continue;
        }
        let (ops, hash) = if t.new {
            t.delta
        } else {
            whole.get(&t.id).copied().unwrap_or_default()
        };
        if let Some(org) = t.before {
            fold(org, -1, -(ops - t.delta.0), hash ^ t.delta.1);
        }
        if let Some(org) = t.after {
            fold(org, 1, ops, hash);
        }
    }
    add_scopes(conn, scopes).await
}

/// The operations logged for each of `ids` and the XOR of their id hashes, from the log.
async fn record_digests(
    conn: &mut Conn<'_>,
    ids: &[RecordId],
) -> Result<HashMap<RecordId, (i64, u64)>, Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64, i64)> = conn
        .fetch_by_keys(
            "r",
            "SELECT x.record_id, x.origin, x.origin_seq FROM w CROSS JOIN op_log x \
             WHERE x.record_id = w.r",
            1,
            &crate::parts::id_keys(ids),
        )
        .await?;
    // The key list is padded with repeats of its last key: count each operation once.
    let mut seen = std::collections::HashSet::new();
    let mut out: HashMap<RecordId, (i64, u64)> = HashMap::new();
    for (record, origin, seq) in rows {
        if !seen.insert((record, origin, seq)) {
            continue;
        }
        let entry = out.entry(RecordId(record)).or_default();
        entry.0 += 1;
        entry.1 ^= op_hash(op_id(origin, seq)?);
    }
    Ok(out)
}

fn op_id(origin: i64, seq: i64) -> Result<OpId, Error> {
    Ok(OpId {
        origin: renda_replica::ActorId(unsigned(origin)),
        seq: u64::try_from(seq).map_err(|_| Error::Corrupt(format!("origin_seq {seq}")))?,
    })
}

async fn add_scopes(
    conn: &mut Conn<'_>,
    scopes: HashMap<(OrgCode, u8), (i64, i64, u64)>,
) -> Result<(), Error> {
    let rows: Vec<Vec<Arg>> = scopes
        .into_iter()
        .filter(|(_, (records, ops, hash))| *records != 0 || *ops != 0 || *hash != 0)
        .map(|((org, bucket), (records, ops, hash))| {
            vec![
                Arg::Int(org.get() as i64),
                Arg::Int(i64::from(bucket)),
                Arg::Int(records),
                Arg::Int(ops),
                Arg::Int(signed(hash)),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    conn.insert_many(
        "INSERT INTO scope_digest (org_code, bucket, records, ops, hash)",
        5,
        XOR_SCOPE,
        rows,
    )
    .await
}

/// Fills `scope_digest` for the operations logged before it existed, once (a store created
/// with it marks itself at once: its log is empty).
pub(crate) async fn backfill(
    conn: &mut Conn<'_>,
    schema: &renda_replica::Schema,
) -> Result<(), Error> {
    let done: Option<(String,)> = conn
        .fetch_optional(
            "SELECT value FROM meta WHERE key = $1",
            vec![Arg::Text(META_DIGEST.into())],
        )
        .await?;
    if done.is_some() {
        return Ok(());
    }
    const PAGE: i64 = 50_000;
    let mut after = 0i64;
    let mut total = 0u64;
    let mut records: HashMap<RecordId, (i64, u64)> = HashMap::new();
    loop {
        let rows: Vec<(i64, Uuid, i64, i64)> = conn
            .fetch_all(
                "SELECT local_seq, record_id, origin, origin_seq FROM op_log \
                 WHERE local_seq > $1 ORDER BY local_seq LIMIT $2",
                vec![Arg::Int(after), Arg::Int(PAGE)],
            )
            .await?;
        let Some(last) = rows.last().map(|r| r.0) else {
            break;
        };
        after = last;
        total += rows.len() as u64;
        for (_, record, origin, seq) in rows {
            let entry = records.entry(RecordId(record)).or_default();
            entry.0 += 1;
            entry.1 ^= op_hash(op_id(origin, seq)?);
        }
    }
    // Then each record, whole, into the scope digests of its org unit.
    let rows: Vec<(Uuid, i64, Option<i64>)> = conn
        .fetch_all("SELECT id, kind, org_code FROM records", vec![])
        .await?;
    let mut scopes: HashMap<(OrgCode, u8), (i64, i64, u64)> = HashMap::new();
    for (id, kind, org) in rows {
        let local = u16::try_from(kind)
            .ok()
            .and_then(|k| schema.kind(renda_replica::KindId(k)))
            .is_none_or(|k| k.local_only);
        let org = org
            .and_then(|o| u64::try_from(o).ok())
            .and_then(|o| OrgCode::new(o).ok());
        let (Some(org), false, Some((ops, hash))) = (org, local, records.get(&RecordId(id))) else {
            continue;
        };
        for unit in chain(org) {
            let entry = scopes.entry((unit, bucket_of(RecordId(id)))).or_default();
            entry.0 += 1;
            entry.1 += ops;
            entry.2 ^= hash;
        }
    }
    add_scopes(conn, scopes).await?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2)",
        vec![Arg::Text(META_DIGEST.into()), Arg::Text("1".into())],
    )
    .await?;
    if total > 0 {
        tracing::info!(ops = total, "scope digests filled for the existing log");
    }
    Ok(())
}

/// Records, operations and their folded hash, over a set of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigestPart {
    pub records: u64,
    pub ops: u64,
    pub hash: u64,
}

impl DigestPart {
    /// Adds another part (a bucket, a record) to this one.
    fn add(&mut self, other: DigestPart) {
        self.records += other.records;
        self.ops += other.ops;
        self.hash ^= other.hash;
    }
}

/// The digest of an org unit's records: the total and each non-empty bucket; for one
/// bucket, its records too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeDigest {
    pub total: DigestPart,
    pub buckets: BTreeMap<u8, DigestPart>,
    /// Per record of the bucket asked for (empty for a whole digest): operations and hash.
    pub records: BTreeMap<RecordId, DigestPart>,
}

impl ScopeDigest {
    /// A digest part as text: records, operations and the hash, in hex.
    pub fn hex(part: &DigestPart) -> String {
        format!("{:x}-{:x}-{:016x}", part.records, part.ops, part.hash)
    }
}

impl Store {
    /// The digest of the records this node holds in `org`'s subtree (their org is `org` or
    /// below it), local-only kinds left out (they differ between nodes by design); with
    /// `bucket`, of that bucket's records only, each listed.
    pub async fn digest(&self, org: OrgCode, bucket: Option<u8>) -> Result<ScopeDigest, Error> {
        let mut digest = ScopeDigest::default();
        let mut conn = self.inner.backend.acquire().await?;
        let Some(bucket) = bucket else {
            // At most `BUCKETS` rows, by key: the cost does not grow with the records.
            let rows: Vec<(i64, i64, i64, i64)> = conn
                .conn()
                .fetch_all(
                    "SELECT bucket, records, ops, hash FROM scope_digest \
                     WHERE org_code = $1 AND records > 0",
                    vec![Arg::Int(org.get() as i64)],
                )
                .await?;
            for (b, records, ops, hash) in rows {
                let b =
                    u8::try_from(b).map_err(|_| Error::Corrupt(format!("digest bucket {b}")))?;
                let part = DigestPart {
                    records: u64::try_from(records).unwrap_or(0),
                    ops: u64::try_from(ops).unwrap_or(0),
                    hash: unsigned(hash),
                };
                digest.total.add(part);
                digest.buckets.insert(b, part);
            }
            return Ok(digest);
        };
        // One bucket: its records, each worked out from the log.
        let kinds: Vec<i64> = self
            .schema()
            .kinds()
            .filter(|k| !k.local_only)
            .map(|k| i64::from(k.id.0))
            .collect();
        if kinds.is_empty() {
            return Ok(digest);
        }
        if bucket >= BUCKETS {
            return Err(Error::Argument(format!(
                "a digest bucket is 0 to {}, not {bucket}",
                BUCKETS - 1
            )));
        }
        let mut args = Vec::new();
        let mut filter = Vec::new();
        for (lo, hi) in org.subtree_ranges() {
            filter.push(format!(
                "r.org_code BETWEEN ${} AND ${}",
                args.len() + 1,
                args.len() + 2
            ));
            args.push(Arg::Int(lo as i64));
            args.push(Arg::Int(hi as i64));
        }
        let kind_list: Vec<String> = kinds
            .iter()
            .map(|k| {
                args.push(Arg::Int(*k));
                format!("${}", args.len())
            })
            .collect();
        let sql = format!(
            "SELECT r.id FROM records r WHERE ({}) AND r.kind IN ({})",
            filter.join(" OR "),
            kind_list.join(", ")
        );
        let ids: Vec<(Uuid,)> = conn.conn().fetch_all(crate::db::dynamic(sql), args).await?;
        let ids: Vec<RecordId> = ids
            .into_iter()
            .map(|(id,)| RecordId(id))
            .filter(|id| bucket_of(*id) == bucket)
            .collect();
        for (id, (ops, hash)) in record_digests(&mut conn.conn(), &ids).await? {
            let part = DigestPart {
                records: 1,
                ops: u64::try_from(ops).unwrap_or(0),
                hash,
            };
            digest.total.add(part);
            digest.records.insert(id, part);
        }
        if digest.total.records > 0 {
            digest.buckets.insert(bucket, digest.total);
        }
        Ok(digest)
    }
}
