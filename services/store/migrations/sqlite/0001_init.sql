-- renda-store schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql.
--
-- A record is stored as its independent CRDT parts (one row per field register, per set, per
-- event), so applying an operation reads and rewrites only the part it touches. Record ids are
-- 16-byte BLOBs, not 36-character text: every key, index entry and comparison is smaller.
-- Tables keyed by record are WITHOUT ROWID: the row lives in its primary-key B-tree, one
-- insert instead of two.

-- This replica's identity and counters that must survive a restart.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The durable op log. local_seq is this node's insertion order (sync checkpoints);
-- (origin, origin_seq) identifies an operation mesh-wide: it is logged and applied once.
-- from_peer is the peer it came from (NULL for local writes), so a feed can leave out what a
-- peer sent us; local_only operations (kinds that never leave the node) stay out of feeds.
-- Everything else (kind, clock, author, org) is in `bytes`, read by decoding: no query filters
-- on it, and each extra column would be written for every operation.
CREATE TABLE op_log (
    local_seq     INTEGER PRIMARY KEY,
    origin        INTEGER NOT NULL,
    origin_seq    INTEGER NOT NULL,
    record_id     BLOB    NOT NULL,
    from_peer     TEXT,
    local_only    BOOLEAN NOT NULL,
    bytes         BLOB    NOT NULL,
    UNIQUE (origin, origin_seq)
);
CREATE INDEX op_log_record ON op_log (record_id, local_seq);

-- One row per record: written on its first operation and afterwards only when its org or its
-- soft-delete flag changes, never for other field writes.
CREATE TABLE records (
    id          BLOB    PRIMARY KEY,
    kind        INTEGER NOT NULL,
    kind_name   TEXT    NOT NULL,
    org_code    INTEGER,
    deleted     BOOLEAN NOT NULL,
    updated_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX records_kind_org ON records (kind, org_code);

-- One row per field register: the CRDT state (postcard) and, for reports, the winner as JSON
-- with when (hlc), where (org) and who (author), and every concurrent value while conflicted.
CREATE TABLE fields (
    record_id    BLOB    NOT NULL,
    field        INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    hlc          INTEGER NOT NULL,
    org          INTEGER NOT NULL,
    author       TEXT    NOT NULL,
    has_conflict BOOLEAN NOT NULL,
    conflicts    TEXT,
    updated_seq  INTEGER NOT NULL,
    state        BLOB    NOT NULL,
    PRIMARY KEY (record_id, field)
) WITHOUT ROWID;
CREATE INDEX fields_conflicted ON fields (record_id, updated_seq) WHERE has_conflict;

-- One row per add-wins set: members as a JSON array and the CRDT state (deferred removes
-- included, hence postcard).
CREATE TABLE sets (
    record_id BLOB    NOT NULL,
    set_id    INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    members   TEXT    NOT NULL,
    state     BLOB    NOT NULL,
    PRIMARY KEY (record_id, set_id)
) WITHOUT ROWID;

-- Workflow events, one row per event operation (the typed event is its op_log row).
CREATE TABLE events (
    record_id  BLOB    NOT NULL,
    origin     INTEGER NOT NULL,
    origin_seq INTEGER NOT NULL,
    hlc        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    PRIMARY KEY (record_id, origin, origin_seq)
) WITHOUT ROWID;

-- Set adds that arrived ahead of an earlier add of the same origin on the same set.
CREATE TABLE held_ops (
    record_id   BLOB    NOT NULL,
    set_id      INTEGER NOT NULL,
    origin      INTEGER NOT NULL,
    counter     INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (record_id, set_id, origin, counter)
) WITHOUT ROWID;

-- Operations refused on receipt, kept with their reason and raw bytes; never applied or relayed.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    from_peer   TEXT,
    reason      TEXT    NOT NULL,
    record_id   BLOB,
    bytes       BLOB    NOT NULL
);

-- Which org units a record is in scope of (its org, that org's ancestors, its audience), and
-- from which local_seq on: the downward feed of org X is an equality lookup on org_code = X.
CREATE TABLE record_scope (
    org_code        INTEGER NOT NULL,
    record_id       BLOB    NOT NULL,
    since_local_seq INTEGER NOT NULL,
    PRIMARY KEY (org_code, record_id)
) WITHOUT ROWID;
CREATE INDEX record_scope_record ON record_scope (record_id);

-- Per-peer sync positions; moved only after the other side durably committed.
CREATE TABLE checkpoints (
    peer       TEXT    NOT NULL,
    direction  TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    local_seq  INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (peer, direction)
);

-- Per-peer sync state for the console and the freshness of reports.
CREATE TABLE peer_sync (
    peer            TEXT PRIMARY KEY,
    last_success_ms INTEGER,
    last_error      TEXT,
    last_error_ms   INTEGER,
    pending_push    INTEGER NOT NULL,
    pending_pull    INTEGER NOT NULL
);
