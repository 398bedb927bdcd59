-- renda-store schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql.

-- This replica's identity and counters that must survive a restart.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The durable op log. local_seq is this node's insertion order (sync checkpoints);
-- (origin, origin_seq) identifies an operation mesh-wide and is gapless per origin.
CREATE TABLE op_log (
    local_seq     INTEGER PRIMARY KEY,
    origin        INTEGER NOT NULL,
    origin_seq    INTEGER NOT NULL,
    record_id     TEXT    NOT NULL,
    record_seq    INTEGER NOT NULL,
    hlc           INTEGER NOT NULL,
    origin_org    INTEGER NOT NULL,
    author_org    INTEGER NOT NULL,
    author_number INTEGER NOT NULL,
    bytes         BLOB    NOT NULL,
    UNIQUE (origin, origin_seq)
);
CREATE INDEX op_log_record ON op_log (record_id, local_seq);

-- Operations that arrived ahead of an earlier operation of the same origin on the same record.
CREATE TABLE held_ops (
    record_id   TEXT    NOT NULL,
    origin      INTEGER NOT NULL,
    record_seq  INTEGER NOT NULL,
    bytes       BLOB    NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (record_id, origin, record_seq)
);

-- Operations refused on receipt, kept with their reason and raw bytes; never applied or relayed.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    from_peer   TEXT,
    reason      TEXT    NOT NULL,
    record_id   TEXT,
    bytes       BLOB    NOT NULL
);

-- Materialised records for queries and reports. fields/conflicts/sets are JSON text;
-- state is the record's CRDT state (postcard), the source of truth for further applies.
CREATE TABLE records (
    id           TEXT    PRIMARY KEY,
    kind         INTEGER NOT NULL,
    org_code     INTEGER,
    deleted      BOOLEAN NOT NULL,
    has_conflict BOOLEAN NOT NULL,
    fields       TEXT    NOT NULL,
    conflicts    TEXT    NOT NULL,
    sets         TEXT    NOT NULL,
    state        BLOB    NOT NULL,
    updated_seq  INTEGER NOT NULL
);
CREATE INDEX records_kind_org ON records (kind, org_code);
CREATE INDEX records_conflicted ON records (has_conflict) WHERE has_conflict;

-- Workflow events, one row per event operation.
CREATE TABLE events (
    record_id  TEXT    NOT NULL,
    origin     INTEGER NOT NULL,
    record_seq INTEGER NOT NULL,
    hlc        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    PRIMARY KEY (record_id, origin, record_seq)
);

-- Which org units a record is in scope of (its org, that org's ancestors, its audience), and
-- from which local_seq on: the downward feed of org X is an equality lookup on org_code = X.
CREATE TABLE record_scope (
    org_code        INTEGER NOT NULL,
    record_id       TEXT    NOT NULL,
    since_local_seq INTEGER NOT NULL,
    PRIMARY KEY (org_code, record_id)
);
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
