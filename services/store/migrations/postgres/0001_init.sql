-- renda-store schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql.

-- This replica's identity and counters that must survive a restart.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The durable op log. local_seq is this node's insertion order (sync checkpoints);
-- (origin, origin_seq) identifies an operation mesh-wide and is gapless per origin.
CREATE TABLE op_log (
    local_seq     BIGINT  NOT NULL UNIQUE,
    origin        BIGINT  NOT NULL,
    origin_seq    BIGINT  NOT NULL,
    record_id     TEXT    NOT NULL,
    record_seq    BIGINT  NOT NULL,
    hlc           BIGINT  NOT NULL,
    origin_org    BIGINT  NOT NULL,
    author_org    BIGINT  NOT NULL,
    author_number BIGINT  NOT NULL,
    bytes         BYTEA   NOT NULL,
    PRIMARY KEY (origin, origin_seq)
);
CREATE INDEX op_log_record ON op_log (record_id, local_seq);

-- Operations that arrived ahead of an earlier operation of the same origin on the same record.
CREATE TABLE held_ops (
    record_id   TEXT    NOT NULL,
    origin      BIGINT  NOT NULL,
    record_seq  BIGINT  NOT NULL,
    bytes       BYTEA   NOT NULL,
    received_ms BIGINT  NOT NULL,
    PRIMARY KEY (record_id, origin, record_seq)
);

-- Operations refused on receipt, kept with their reason and raw bytes; never applied or relayed.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    received_ms BIGINT  NOT NULL,
    from_peer   TEXT,
    reason      TEXT    NOT NULL,
    record_id   TEXT,
    bytes       BYTEA   NOT NULL
);

-- Materialised records for queries and reports. fields/conflicts/sets are JSON text;
-- state is the record's CRDT state (postcard), the source of truth for further applies.
CREATE TABLE records (
    id           TEXT    PRIMARY KEY,
    kind         BIGINT  NOT NULL,
    org_code     BIGINT,
    deleted      BOOLEAN NOT NULL,
    has_conflict BOOLEAN NOT NULL,
    fields       TEXT    NOT NULL,
    conflicts    TEXT    NOT NULL,
    sets         TEXT    NOT NULL,
    state        BYTEA   NOT NULL,
    updated_seq  BIGINT  NOT NULL
);
CREATE INDEX records_kind_org ON records (kind, org_code);
CREATE INDEX records_conflicted ON records (has_conflict) WHERE has_conflict;

-- Workflow events, one row per event operation.
CREATE TABLE events (
    record_id  TEXT    NOT NULL,
    origin     BIGINT  NOT NULL,
    record_seq BIGINT  NOT NULL,
    hlc        BIGINT  NOT NULL,
    kind       BIGINT  NOT NULL,
    event      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    PRIMARY KEY (record_id, origin, record_seq)
);

-- Which org units a record is in scope of (its org, that org's ancestors, its audience), and
-- from which local_seq on: the downward feed of org X is an equality lookup on org_code = X.
CREATE TABLE record_scope (
    org_code        BIGINT  NOT NULL,
    record_id       TEXT    NOT NULL,
    since_local_seq BIGINT  NOT NULL,
    PRIMARY KEY (org_code, record_id)
);
CREATE INDEX record_scope_record ON record_scope (record_id);

-- Per-peer sync positions; moved only after the other side durably committed.
CREATE TABLE checkpoints (
    peer       TEXT    NOT NULL,
    direction  TEXT    NOT NULL,
    position   BIGINT  NOT NULL,
    local_seq  BIGINT  NOT NULL,
    updated_ms BIGINT  NOT NULL,
    PRIMARY KEY (peer, direction)
);

-- Per-peer sync state for the console and the freshness of reports.
CREATE TABLE peer_sync (
    peer            TEXT PRIMARY KEY,
    last_success_ms BIGINT,
    last_error      TEXT,
    last_error_ms   BIGINT,
    pending_push    BIGINT  NOT NULL,
    pending_pull    BIGINT  NOT NULL
);
