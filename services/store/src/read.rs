//! The read side: sync feeds, checkpoints, per-peer state and queries over the materialised
//! tables.

use crate::db::{Arg, Conn};
use crate::parts::load_records;
use crate::{Error, Store, json, now_ms};
use chrono::{DateTime, Utc};
use renda_replica::{
    ActorId, Author, Change, Event, Hlc, KindId, Materialise, Op, OpId, OrgCode, Record, RecordId,
    RecordView, Stamped, Value,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A position in a feed. Upward feeds order by local sequence alone (`position` equals
/// `local_seq`); a downward feed orders by the effective position
/// `max(op.local_seq, scope.since_local_seq)`, then local sequence, so a record that enters a
/// peer's scope later sends its whole history after the peer's cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub position: u64,
    pub local_seq: u64,
}

impl Cursor {
    pub const START: Cursor = Cursor {
        position: 0,
        local_seq: 0,
    };
}

/// One operation from the log, as it goes on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOp {
    pub cursor: Cursor,
    pub bytes: Vec<u8>,
}

/// Which way a checkpoint looks: what we pushed to a peer, or what we pulled from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Push,
    Pull,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
        }
    }
}

/// What a node knows of its sync with one peer; the sync engine fills it, the console shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSync {
    pub peer: String,
    pub last_success: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Operations we hold that the peer has not acknowledged.
    pub pending_push: u64,
    /// Operations the peer reported it holds for us.
    pub pending_pull: u64,
    /// When the last change bundle imported from the peer was made (its creation time).
    pub last_bundle: Option<DateTime<Utc>>,
}

/// A record as the materialised tables hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub id: RecordId,
    pub kind: KindId,
    pub kind_name: String,
    pub org: Option<OrgCode>,
    pub deleted: bool,
    /// Winner value of each field, by field name.
    pub fields: BTreeMap<String, Value>,
    /// Fields with concurrent values, by field name: every value with when, where and who,
    /// the winner first.
    pub conflicts: BTreeMap<String, ConflictedField>,
    /// Members of each add-wins set, by set name.
    pub sets: BTreeMap<String, Vec<Uuid>>,
    /// Workflow events in fold order.
    pub events: Vec<Event>,
    /// The whole record as JSON, assembled from the `fields` and `sets` rows: winner values by
    /// field name, conflicting fields with every value, members by set name.
    pub fields_json: String,
    pub conflicts_json: String,
    pub sets_json: String,
    /// The local sequence of the last operation logged for it (differs between nodes).
    pub updated_seq: u64,
    /// The core's view, with numeric ids.
    pub view: RecordView,
    /// What a person reading it now sees: a form saved later is written against it. Empty on
    /// the records the report projection materialises (`Store::records_changed`).
    pub version: renda_replica::Version,
}

/// The upward feed after `$1`, leaving out what came from the peers `$2`..`$4` (unset: none):
/// one text for the feed and its count.
macro_rules! upward {
    () => {
        "WHERE local_seq > $1 AND NOT local_only AND ($2 IS NULL OR from_peer IS NULL \
         OR (from_peer <> $2 AND from_peer <> $3 AND from_peer <> $4))"
    };
}

/// Whether a [`StoredRecord`] carries the record's [`renda_replica::Version`]: records read for a
/// person do; those the report projector materialises (thousands in a catch-up, never shown
/// in a form) carry an empty one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versioned {
    Yes,
    No,
}

/// The concurrent values of one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictedField {
    pub values: Vec<Stamped>,
}

/// One entry of a record's history: what changed, when, by whom, on which node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub op: OpId,
    pub local_seq: u64,
    pub hlc: Hlc,
    pub at: Option<DateTime<Utc>>,
    pub author: Author,
    pub origin_org: OrgCode,
    pub change: String,
}

/// An operation kept aside with its reason; never applied or relayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    pub id: i64,
    pub received_at: Option<DateTime<Utc>>,
    pub from: Option<String>,
    pub reason: String,
    pub record: Option<RecordId>,
    pub bytes: Vec<u8>,
    /// When and why the entry no longer needs a person; `None` while open.
    pub settled: Option<Settled>,
}

/// How a quarantine entry was settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub at: Option<DateTime<Utc>>,
    /// The same operation arrived later from where it belongs and was applied.
    pub superseded: bool,
    /// A person's reason for dismissing it (empty when superseded).
    pub note: String,
    /// Who dismissed it (empty when superseded).
    pub by: String,
}

/// The `settled_note` of an entry settled by a later legitimate copy of its operation.
pub(crate) const SUPERSEDED: &str = "superseded";

/// Which scope rows feed org `$1`: its own, the broadcast row 0, and the rows of its ancestors
/// (bound from `$first_ancestor` on) that address their whole subtree. The `IN` list lets both
/// engines seek the `(org_code, …)` indexes instead of scanning.
fn scope_rows(first_ancestor: usize) -> String {
    let (a, b, c) = (first_ancestor, first_ancestor + 1, first_ancestor + 2);
    format!(
        "s.org_code IN ($1, 0, ${a}, ${b}, ${c}) \
         AND (s.subtree OR s.org_code = $1 OR s.org_code = 0)"
    )
}

/// The downward feed of org `$1` is every operation of a record in its scope, at the position
/// `max(op.local_seq, scope.since_local_seq)`, local-only operations and (when `$4` is not
/// null) operations received from peer `$4` left out, up to local sequence `$5`. It is read as
/// two parts, each walking an index from the cursor (`$2`, `$3`), so its cost follows what is
/// new after the cursor, never the history before it.
///
/// This part: operations logged after their record entered the scope (position = local_seq),
/// walking the log from the cursor.
fn feed_after_entry(first_ancestor: usize) -> String {
    format!(
        "SELECT o.local_seq AS position, o.local_seq AS local_seq, o.bytes AS bytes \
         FROM op_log o \
         WHERE o.local_seq >= $2 AND o.local_seq > $3 AND o.local_seq <= $5 \
           AND NOT o.local_only \
           AND ($4 IS NULL OR o.from_peer IS NULL OR o.from_peer <> $4) \
           AND EXISTS (SELECT 1 FROM record_scope s WHERE s.record_id = o.record_id \
                       AND o.local_seq > s.since_local_seq AND {})",
        scope_rows(first_ancestor)
    )
}

/// The other part: records that entered the scope after the cursor, with their history up to
/// the entry (position = since_local_seq), walking `record_scope_since` from the cursor.
fn feed_entries(first_ancestor: usize) -> String {
    format!(
        "SELECT s.since_local_seq AS position, o.local_seq AS local_seq, o.bytes AS bytes \
         FROM record_scope s \
         JOIN op_log o ON o.record_id = s.record_id AND o.local_seq <= s.since_local_seq \
         WHERE {} AND s.since_local_seq >= $2 AND s.since_local_seq <= $5 \
           AND (s.since_local_seq > $2 OR o.local_seq > $3) \
           AND NOT o.local_only \
           AND ($4 IS NULL OR o.from_peer IS NULL OR o.from_peer <> $4)",
        scope_rows(first_ancestor)
    )
}

/// The parameters of a query over the downward feed: `$1` the org, `$2`/`$3` the cursor, `$4`
/// the peer left out, `$5` the last local sequence read, `$6` the limit if any, then the org's
/// three ancestors padded with -1 (no org unit has that code).
fn scope_args(
    org: OrgCode,
    after: Cursor,
    except_from: Option<&str>,
    upto: i64,
    limit: Option<u32>,
) -> Vec<Arg> {
    let mut args = vec![
        Arg::Int(org.get() as i64),
        Arg::Int(after.position as i64),
        Arg::Int(after.local_seq as i64),
        Arg::OptText(except_from.map(str::to_string)),
        Arg::Int(upto),
    ];
    args.extend(limit.map(|l| Arg::Int(i64::from(l))));
    let mut next = org.parent();
    for _ in 0..3 {
        args.push(Arg::Int(next.map_or(-1, |code| code.get() as i64)));
        next = next.and_then(|code| code.parent());
    }
    args
}

/// One page of the downward feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedPage {
    pub ops: Vec<LoggedOp>,
    /// Where the next page starts. On the last page this is past everything the log held when
    /// the page was read, operations left out included, so a checkpoint moved to it never
    /// walks them again.
    pub upto: Cursor,
    /// Nothing more was in the feed when the page was read.
    pub last: bool,
}

/// A stored sequence or count as unsigned (the columns are signed; a negative one reads 0).
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

impl Store {
    /// The upward feed: as [`Store::ops_since`], with only what originated in this node's own
    /// subtree — nothing received from an ancestor (the peer it pushes to has it, or, for a
    /// township falling back to the city, the county sends it itself; the city would rightly
    /// refuse it from the township and keep a false quarantine entry).
    pub async fn ops_for_peer(&self, after: Cursor, limit: u32) -> Result<Vec<LoggedOp>, Error> {
        Ok(self.push_page(after, limit).await?.ops)
    }

    /// As [`Store::ops_for_peer`], with where the next page starts: after the last page, past
    /// the whole log as it was read (what came from above included), so a push checkpoint
    /// moved to it never walks those operations again.
    pub async fn push_page(&self, after: Cursor, limit: u32) -> Result<FeedPage, Error> {
        self.upward_feed(after, limit, Some(self.ancestor_keys()))
            .await
    }

    /// The peer keys of this node's ancestors (an org unit has at most three: a village's
    /// township, county and city), padded with the first, for one statement text.
    fn ancestor_keys(&self) -> [Option<String>; 3] {
        let above = self.org().ancestors();
        let first = above.first().map(ToString::to_string);
        std::array::from_fn(|i| {
            above
                .get(i)
                .map(ToString::to_string)
                .or_else(|| first.clone())
        })
    }

    /// Everything in the log after `after`, by local sequence, except operations of local-only
    /// kinds: the upward feed.
    pub async fn ops_since(&self, after: Cursor, limit: u32) -> Result<Vec<LoggedOp>, Error> {
        Ok(self.upward_feed(after, limit, None).await?.ops)
    }

    /// The log after `after`; with `except_from`, without what was received from those peers.
    async fn upward_feed(
        &self,
        after: Cursor,
        limit: u32,
        except_from: Option<[Option<String>; 3]>,
    ) -> Result<FeedPage, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        // As in `feed_page`: everything up to the last sequence read now is committed.
        let read = crate::write::last_local_seq(&mut conn.conn()).await?;
        let slots = except_from.unwrap_or_default();
        let mut args = vec![Arg::Int(after.local_seq as i64)];
        args.extend(slots.into_iter().map(Arg::OptText));
        args.push(Arg::Int(i64::from(limit)));
        args.push(Arg::Int(read));
        let rows: Vec<(i64, Vec<u8>)> = conn
            .conn()
            .fetch_all(
                concat!(
                    "SELECT local_seq, bytes FROM op_log ",
                    upward!(),
                    " AND local_seq <= $6 ORDER BY local_seq LIMIT $5"
                ),
                args,
            )
            .await?;
        let ops: Vec<LoggedOp> = rows
            .into_iter()
            .map(|(seq, bytes)| LoggedOp {
                cursor: Cursor {
                    position: to_u64(seq),
                    local_seq: to_u64(seq),
                },
                bytes,
            })
            .collect();
        let last = ops.len() < limit as usize;
        let upto = match ops.last() {
            Some(op) if !last => op.cursor,
            _ => Cursor {
                position: to_u64(read),
                local_seq: to_u64(read),
            }
            .max(after),
        };
        Ok(FeedPage { ops, upto, last })
    }

    /// The operations of records in `org`'s scope after `after`: the downward feed. A record
    /// that entered the scope after the cursor comes with its whole history. Operations of
    /// local-only kinds never appear, nor (with `except_from`) operations received from that
    /// peer: a parent does not send a child its own operations back.
    pub async fn ops_for_scope(
        &self,
        org: OrgCode,
        after: Cursor,
        limit: u32,
        except_from: Option<&str>,
    ) -> Result<Vec<LoggedOp>, Error> {
        Ok(self.feed_page(org, after, limit, except_from).await?.ops)
    }

    /// As [`Store::ops_for_scope`], with where the next page starts: after the last page, past
    /// the whole log as it was read.
    pub async fn feed_page(
        &self,
        org: OrgCode,
        after: Cursor,
        limit: u32,
        except_from: Option<&str>,
    ) -> Result<FeedPage, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        // Writers are serialised and commit in local-sequence order, so everything up to the
        // last sequence read now is committed: a page bounded by it is complete up to it.
        let upto = crate::write::last_local_seq(&mut conn.conn()).await?;
        let entries = format!(
            "{} ORDER BY s.since_local_seq, o.local_seq LIMIT $6",
            feed_entries(7)
        );
        let after_entry = format!("{} ORDER BY o.local_seq LIMIT $6", feed_after_entry(7));
        let mut ops = conn
            .conn()
            .fetch_all::<(i64, i64, Vec<u8>)>(
                crate::db::dynamic(entries),
                scope_args(org, after, except_from, upto, Some(limit)),
            )
            .await?;
        // Entries first: when they fill a page, the page ends at their last position, and the
        // walk of the log stops there instead of at the end (a catch-up of records new to the
        // scope would otherwise walk the rest of the log for every page).
        let bound = match ops.last() {
            Some(last) if ops.len() == limit as usize => last.0,
            _ => upto,
        };
        ops.extend(
            conn.conn()
                .fetch_all::<(i64, i64, Vec<u8>)>(
                    crate::db::dynamic(after_entry),
                    scope_args(org, after, except_from, bound, Some(limit)),
                )
                .await?,
        );
        let mut ops: Vec<LoggedOp> = ops
            .into_iter()
            .map(|(position, seq, bytes)| LoggedOp {
                cursor: Cursor {
                    position: to_u64(position),
                    local_seq: to_u64(seq),
                },
                bytes,
            })
            .collect();
        // Both parts are in feed order; one page is the first `limit` of the two merged.
        ops.sort_by_key(|op| op.cursor);
        let last = ops.len() < limit as usize;
        ops.truncate(limit as usize);
        let upto = match ops.last() {
            Some(op) if !last => op.cursor,
            end => {
                let read = Cursor {
                    position: to_u64(upto),
                    local_seq: to_u64(upto),
                };
                end.map_or(read, |op| op.cursor.max(read)).max(after)
            }
        };
        Ok(FeedPage { ops, upto, last })
    }

    /// How many operations [`Store::ops_for_scope`] would still send after `after`.
    pub async fn count_for_scope(
        &self,
        org: OrgCode,
        after: Cursor,
        except_from: Option<&str>,
    ) -> Result<u64, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let upto = crate::write::last_local_seq(&mut conn.conn()).await?;
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM ({}) a) + (SELECT COUNT(*) FROM ({}) b)",
            feed_after_entry(6),
            feed_entries(6)
        );
        let args = scope_args(org, after, except_from, upto, None);
        let (n,): (i64,) = conn
            .conn()
            .fetch_optional(crate::db::dynamic(sql), args)
            .await?
            .unwrap_or((0,));
        Ok(to_u64(n))
    }

    /// Operations in the upward feed after the push checkpoint of `peer`: what it has not
    /// acknowledged.
    pub async fn pending_push(&self, peer: &str) -> Result<u64, Error> {
        let after = self.checkpoint(peer, Direction::Push).await?;
        let mut args = vec![Arg::Int(after.local_seq as i64)];
        args.extend(self.ancestor_keys().into_iter().map(Arg::OptText));
        let mut conn = self.inner.backend.acquire().await?;
        let (n,): (i64,) = conn
            .conn()
            .fetch_optional(concat!("SELECT COUNT(*) FROM op_log ", upward!()), args)
            .await?
            .unwrap_or((0,));
        Ok(to_u64(n))
    }

    /// Where the sync with `peer` stands in `direction`; [`Cursor::START`] if never synced.
    pub async fn checkpoint(&self, peer: &str, direction: Direction) -> Result<Cursor, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let row: Option<(i64, i64)> = conn
            .conn()
            .fetch_optional(
                "SELECT position, local_seq FROM checkpoints WHERE peer = $1 AND direction = $2",
                vec![Arg::Text(peer.into()), Arg::Text(direction.as_str().into())],
            )
            .await?;
        Ok(row.map_or(Cursor::START, |(position, seq)| Cursor {
            position: to_u64(position),
            local_seq: to_u64(seq),
        }))
    }

    /// Moves a checkpoint. Call only after the other side durably committed what it covers.
    pub async fn set_checkpoint(
        &self,
        peer: &str,
        direction: Direction,
        cursor: Cursor,
    ) -> Result<(), Error> {
        let mut conn = self.inner.backend.acquire().await?;
        conn.conn()
            .execute(
                "INSERT INTO checkpoints (peer, direction, position, local_seq, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (peer, direction) DO UPDATE SET \
                 position = excluded.position, local_seq = excluded.local_seq, \
                 updated_ms = excluded.updated_ms",
                vec![
                    Arg::Text(peer.into()),
                    Arg::Text(direction.as_str().into()),
                    Arg::Int(cursor.position as i64),
                    Arg::Int(cursor.local_seq as i64),
                    Arg::Int(now_ms() as i64),
                ],
            )
            .await?;
        tracing::debug!(
            peer,
            direction = direction.as_str(),
            position = cursor.position,
            "checkpoint moved"
        );
        Ok(())
    }

    pub async fn peer_sync(&self, peer: &str) -> Result<Option<PeerSync>, Error> {
        Ok(self
            .peer_syncs_where("WHERE peer = $1", vec![Arg::Text(peer.into())])
            .await?
            .pop())
    }

    /// The sync state of every known peer, by peer name.
    pub async fn peer_syncs(&self) -> Result<Vec<PeerSync>, Error> {
        self.peer_syncs_where("", vec![]).await
    }

    async fn peer_syncs_where(
        &self,
        filter: &'static str,
        args: Vec<Arg>,
    ) -> Result<Vec<PeerSync>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        type Row = (
            String,
            Option<i64>,
            Option<String>,
            Option<i64>,
            i64,
            i64,
            Option<i64>,
        );
        let sql = format!(
            "SELECT peer, last_success_ms, last_error, last_error_ms, pending_push, \
             pending_pull, last_bundle_ms FROM peer_sync {filter} ORDER BY peer"
        );
        let rows: Vec<Row> = conn.conn().fetch_all(crate::db::dynamic(sql), args).await?;
        Ok(rows
            .into_iter()
            .map(|(peer, ok, error, error_ms, push, pull, bundle)| PeerSync {
                peer,
                last_success: time(ok),
                last_error: error,
                last_error_at: time(error_ms),
                pending_push: to_u64(push),
                pending_pull: to_u64(pull),
                last_bundle: time(bundle),
            })
            .collect())
    }

    pub async fn set_peer_sync(&self, state: &PeerSync) -> Result<(), Error> {
        let mut conn = self.inner.backend.acquire().await?;
        conn.conn()
            .execute(
                "INSERT INTO peer_sync (peer, last_success_ms, last_error, last_error_ms, \
                 pending_push, pending_pull, last_bundle_ms) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7) ON CONFLICT (peer) DO UPDATE SET last_success_ms = \
                 excluded.last_success_ms, last_error = excluded.last_error, last_error_ms = \
                 excluded.last_error_ms, pending_push = excluded.pending_push, pending_pull = \
                 excluded.pending_pull, last_bundle_ms = excluded.last_bundle_ms",
                vec![
                    Arg::Text(state.peer.clone()),
                    Arg::OptInt(state.last_success.map(|t| t.timestamp_millis())),
                    Arg::OptText(state.last_error.clone()),
                    Arg::OptInt(state.last_error_at.map(|t| t.timestamp_millis())),
                    Arg::Int(i64::try_from(state.pending_push).unwrap_or(i64::MAX)),
                    Arg::Int(i64::try_from(state.pending_pull).unwrap_or(i64::MAX)),
                    Arg::OptInt(state.last_bundle.map(|t| t.timestamp_millis())),
                ],
            )
            .await?;
        Ok(())
    }

    /// The replicated state of one record, for the domain layer to build changes from.
    pub async fn state(&self, id: RecordId) -> Result<Option<renda_replica::Record>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        Ok(load_records(&mut conn.conn(), &[id]).await?.remove(&id))
    }

    /// One materialised record.
    pub async fn record(&self, id: RecordId) -> Result<Option<StoredRecord>, Error> {
        self.records_where(
            "SELECT r.id FROM records r WHERE r.id = $1".to_string(),
            vec![Arg::Id(id.0)],
        )
        .await
        .map(|mut v| v.pop())
    }

    /// Records of `kind`, optionally only those whose org unit is `org` or below it, by id.
    pub async fn records_of_kind(
        &self,
        kind: KindId,
        org: Option<OrgCode>,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<StoredRecord>, Error> {
        let mut args = vec![Arg::Int(i64::from(kind.0))];
        let mut filter = String::new();
        if let Some(org) = org {
            let ranges = org.subtree_ranges();
            let parts: Vec<String> = ranges
                .iter()
                .enumerate()
                .map(|(i, _)| format!("r.org_code BETWEEN ${} AND ${}", 2 * i + 2, 2 * i + 3))
                .collect();
            filter = format!(" AND ({})", parts.join(" OR "));
            for (lo, hi) in ranges {
                args.push(Arg::Int(lo as i64));
                args.push(Arg::Int(hi as i64));
            }
        }
        let n = args.len();
        let sql = format!(
            "SELECT r.id FROM records r WHERE r.kind = $1{filter} \
             ORDER BY r.id LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        args.push(Arg::Int(i64::from(limit)));
        args.push(Arg::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
        self.records_where(sql, args).await
    }

    /// Records with at least one conflicting field, most recently changed conflict first.
    pub async fn conflicts(&self, limit: u32) -> Result<Vec<StoredRecord>, Error> {
        self.records_where(
            "SELECT record_id FROM fields WHERE has_conflict GROUP BY record_id \
             ORDER BY MAX(updated_seq) DESC LIMIT $1"
                .to_string(),
            vec![Arg::Int(i64::from(limit))],
        )
        .await
    }

    /// The records whose ids `sql` selects, in its order, assembled from their parts.
    async fn records_where(&self, sql: String, args: Vec<Arg>) -> Result<Vec<StoredRecord>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let mut conn = conn.conn();
        let rows: Vec<(Uuid,)> = conn.fetch_all(crate::db::dynamic(sql), args).await?;
        let ids: Vec<RecordId> = rows.into_iter().map(|(id,)| RecordId(id)).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let updated: Vec<(Uuid, i64)> = conn
            .fetch_by_keys(
                "r",
                "SELECT w.r, (SELECT MAX(o.local_seq) FROM op_log o WHERE o.record_id = w.r) \
                 FROM w",
                1,
                &crate::parts::id_keys(&ids),
            )
            .await?;
        let updated: std::collections::HashMap<Uuid, i64> = updated.into_iter().collect();
        let mut records = load_records(&mut conn, &ids).await?;
        ids.into_iter()
            .filter_map(|id| records.remove(&id))
            .map(|record| {
                let seq = updated.get(&record.id().0).copied().unwrap_or(0);
                Ok(self.stored_record(&record, seq, Versioned::Yes))
            })
            .collect()
    }

    pub(crate) fn stored_record(
        &self,
        record: &Record,
        updated: i64,
        versioned: Versioned,
    ) -> StoredRecord {
        let view = record.materialise();
        let kind = self.inner.schema.kind(view.kind);
        let columns = json::columns(&view, kind);
        let mut fields = BTreeMap::new();
        let mut conflicts = BTreeMap::new();
        for f in &view.fields {
            let name = json::field_name(kind, f.field);
            fields.insert(name.clone(), f.winner.value.clone());
            if !f.conflicts.is_empty() {
                let values = std::iter::once(&f.winner)
                    .chain(&f.conflicts)
                    .cloned()
                    .collect();
                conflicts.insert(name, ConflictedField { values });
            }
        }
        let sets = view
            .sets
            .iter()
            .map(|(id, members)| {
                let name = kind
                    .and_then(|k| k.set(*id))
                    .map(|s| s.name.clone())
                    .unwrap_or_else(|| id.0.to_string());
                (name, members.clone())
            })
            .collect();
        StoredRecord {
            id: view.id,
            kind: view.kind,
            kind_name: kind
                .map(|k| k.name.clone())
                .unwrap_or_else(|| view.kind.0.to_string()),
            org: view.org,
            deleted: view.deleted,
            fields,
            conflicts,
            sets,
            events: view.events.clone(),
            fields_json: columns.fields,
            conflicts_json: columns.conflicts,
            sets_json: columns.sets,
            updated_seq: to_u64(updated),
            view,
            version: match versioned {
                Versioned::Yes => record.version(),
                Versioned::No => renda_replica::Version::empty(record.id()),
            },
        }
    }

    /// Every change to a record, in the order this node applied them.
    pub async fn history(&self, id: RecordId) -> Result<Vec<HistoryEntry>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let rows: Vec<(i64, Vec<u8>)> = conn
            .conn()
            .fetch_all(
                "SELECT local_seq, bytes FROM op_log WHERE record_id = $1 ORDER BY local_seq",
                vec![Arg::Id(id.0)],
            )
            .await?;
        rows.into_iter()
            .map(|(seq, bytes)| {
                let op = Op::decode_unchecked(&bytes)
                    .map_err(|e| Error::Corrupt(format!("logged operation: {e}")))?;
                Ok(HistoryEntry {
                    op: op.id,
                    local_seq: to_u64(seq),
                    hlc: op.hlc,
                    at: json::hlc_time(op.hlc),
                    author: op.author,
                    origin_org: op.origin_org,
                    change: self.describe(&op),
                })
            })
            .collect()
    }

    /// A change in words, with schema names: `title = "x"`, `members + <uuid>`, `event signed {…}`.
    fn describe(&self, op: &Op) -> String {
        let kind = self.inner.schema.kind(op.kind);
        let set_name = |id: renda_replica::SetId| {
            kind.and_then(|k| k.set(id))
                .map(|s| s.name.clone())
                .unwrap_or_else(|| id.0.to_string())
        };
        match &op.change {
            Change::Put { field, value, .. } => {
                format!(
                    "{} = {}",
                    json::field_name(kind, *field),
                    json::value(value)
                )
            }
            Change::Add { set, member, .. } => format!("{} + {member}", set_name(*set)),
            Change::Remove { set, member, .. } => format!("{} - {member}", set_name(*set)),
            Change::Event { event, payload } => {
                let schema = kind.and_then(|k| k.event(*event));
                format!(
                    "event {} {}",
                    schema
                        .map(|e| e.name.clone())
                        .unwrap_or_else(|| event.0.to_string()),
                    json::payload(schema, payload)
                )
            }
        }
    }

    /// The open quarantine entries (not settled), newest first: what needs a person.
    pub async fn quarantine(&self, limit: u32) -> Result<Vec<Quarantined>, Error> {
        self.quarantine_where("settled_ms IS NULL", limit).await
    }

    /// The settled quarantine entries, newest first, with when and why each was settled.
    pub async fn quarantine_settled(&self, limit: u32) -> Result<Vec<Quarantined>, Error> {
        self.quarantine_where("settled_ms IS NOT NULL", limit).await
    }

    async fn quarantine_where(
        &self,
        filter: &'static str,
        limit: u32,
    ) -> Result<Vec<Quarantined>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        type Row = (
            i64,
            i64,
            Option<String>,
            String,
            Option<Uuid>,
            Vec<u8>,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let sql = format!(
            "SELECT id, received_ms, from_peer, reason, record_id, bytes, settled_ms, \
             settled_note, settled_by FROM quarantine WHERE {filter} ORDER BY id DESC LIMIT $1"
        );
        let rows: Vec<Row> = conn
            .conn()
            .fetch_all(crate::db::dynamic(sql), vec![Arg::Int(i64::from(limit))])
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, received, from, reason, record, bytes, settled, note, by)| Quarantined {
                    id,
                    received_at: time(Some(received)),
                    from,
                    reason,
                    record: record.map(RecordId),
                    bytes,
                    settled: settled.map(|ms| Settled {
                        at: time(Some(ms)),
                        superseded: note.as_deref() == Some(SUPERSEDED),
                        note: note.filter(|n| n != SUPERSEDED).unwrap_or_default(),
                        by: by.unwrap_or_default(),
                    }),
                },
            )
            .collect())
    }

    /// Settles an open quarantine entry by a person's decision: `by` names them, `note` says
    /// why (required). False when no open entry has that id (unknown, or settled already).
    pub async fn dismiss_quarantined(&self, id: i64, by: &str, note: &str) -> Result<bool, Error> {
        let note = note.trim();
        if note.is_empty() {
            return Err(Error::Argument(
                "dismissing a quarantined operation needs a reason".into(),
            ));
        }
        let mut conn = self.inner.backend.acquire().await?;
        let changed = conn
            .conn()
            .execute(
                "UPDATE quarantine SET settled_ms = $1, settled_note = $2, settled_by = $3 \
                 WHERE id = $4 AND settled_ms IS NULL",
                vec![
                    Arg::Int(now_ms() as i64),
                    Arg::Text(note.to_owned()),
                    Arg::Text(by.to_owned()),
                    Arg::Int(id),
                ],
            )
            .await?;
        if changed > 0 {
            tracing::info!(id, by, note, "quarantined operation dismissed");
        }
        Ok(changed > 0)
    }

    async fn count(&self, sql: &'static str) -> Result<u64, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let (n,): (i64,) = conn
            .conn()
            .fetch_optional(sql, vec![])
            .await?
            .unwrap_or((0,));
        Ok(to_u64(n))
    }

    /// Operations in the op log. Local sequences are gapless (each is the last plus one,
    /// under the writer lock, and nothing is deleted from the log), so this is the last one:
    /// one index seek, where `COUNT(*)` walked the whole log at every sync round's status.
    pub async fn log_len(&self) -> Result<u64, Error> {
        self.last_local_seq().await
    }

    /// Operations waiting for an earlier one.
    pub async fn held_count(&self) -> Result<u64, Error> {
        self.count("SELECT COUNT(*) FROM held_ops").await
    }

    /// Open (unsettled) quarantine entries.
    pub async fn quarantine_count(&self) -> Result<u64, Error> {
        self.count("SELECT COUNT(*) FROM quarantine WHERE settled_ms IS NULL")
            .await
    }

    /// The highest origin sequence logged from `origin` and how many operations of it are
    /// logged: equal when its sequence has no gaps here.
    pub async fn origin_extent(&self, origin: ActorId) -> Result<(u64, u64), Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let (max, count): (i64, i64) = conn
            .conn()
            .fetch_optional(
                "SELECT COALESCE(MAX(origin_seq), 0), COUNT(*) FROM op_log WHERE origin = $1",
                vec![Arg::Int(origin.0 as i64)],
            )
            .await?
            .unwrap_or((0, 0));
        Ok((to_u64(max), to_u64(count)))
    }

    /// The database's own consistency check (SQLite `PRAGMA integrity_check`; PostgreSQL
    /// guards its pages itself). Returns the problems found, empty when sound.
    pub async fn integrity_check(&self) -> Result<Vec<String>, Error> {
        let mut conn = self.inner.backend.acquire().await?;
        let mut conn = conn.conn();
        match conn {
            Conn::Sqlite(_) => {
                let rows: Vec<(String,)> = conn.fetch_all("PRAGMA integrity_check", vec![]).await?;
                Ok(rows
                    .into_iter()
                    .map(|(r,)| r)
                    .filter(|r| r != "ok")
                    .collect())
            }
            Conn::Postgres(_) => Ok(Vec::new()),
        }
    }
}
