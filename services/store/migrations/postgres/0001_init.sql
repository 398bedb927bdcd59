-- renda-store schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql.
--
-- A record is stored as its independent CRDT parts (one row per field register, per set, per
-- event), so applying an operation reads and rewrites only the part it touches. Record ids are
-- UUID (16 bytes), not 36-character text: every key, index entry and comparison is smaller.

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
    local_seq     BIGINT  PRIMARY KEY,
    origin        BIGINT  NOT NULL,
    origin_seq    BIGINT  NOT NULL,
    record_id     UUID    NOT NULL,
    from_peer     TEXT,
    local_only    BOOLEAN NOT NULL,
    bytes         BYTEA   NOT NULL,
    UNIQUE (origin, origin_seq)
);
CREATE INDEX op_log_record ON op_log (record_id, local_seq);

-- One row per record: written on its first operation and afterwards only when its org or its
-- soft-delete flag changes, never for other field writes.
CREATE TABLE records (
    id          UUID    PRIMARY KEY,
    kind        BIGINT  NOT NULL,
    kind_name   TEXT    NOT NULL,
    org_code    BIGINT,
    deleted     BOOLEAN NOT NULL,
    updated_seq BIGINT  NOT NULL
);
CREATE INDEX records_kind_org ON records (kind, org_code);

-- One row per field register: the CRDT state (postcard) and, for reports, the winner as JSON
-- with when (hlc), where (org) and who (author), and every concurrent value while conflicted.
CREATE TABLE fields (
    record_id    UUID    NOT NULL,
    field        BIGINT  NOT NULL,
    name         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    hlc          BIGINT  NOT NULL,
    org          BIGINT  NOT NULL,
    author       TEXT    NOT NULL,
    has_conflict BOOLEAN NOT NULL,
    conflicts    TEXT,
    updated_seq  BIGINT  NOT NULL,
    state        BYTEA    NOT NULL,
    PRIMARY KEY (record_id, field)
);
CREATE INDEX fields_conflicted ON fields (record_id, updated_seq) WHERE has_conflict;

-- One row per add-wins set: members as a JSON array and the CRDT state (deferred removes
-- included, hence postcard).
CREATE TABLE sets (
    record_id UUID    NOT NULL,
    set_id    BIGINT  NOT NULL,
    name      TEXT    NOT NULL,
    members   TEXT    NOT NULL,
    state     BYTEA    NOT NULL,
    PRIMARY KEY (record_id, set_id)
);

-- Workflow events, one row per event operation (the typed event is its op_log row).
CREATE TABLE events (
    record_id  UUID    NOT NULL,
    origin     BIGINT  NOT NULL,
    origin_seq BIGINT  NOT NULL,
    hlc        BIGINT  NOT NULL,
    kind       BIGINT  NOT NULL,
    event      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    PRIMARY KEY (record_id, origin, origin_seq)
);

-- Set adds that arrived ahead of an earlier add of the same origin on the same set.
CREATE TABLE held_ops (
    record_id   UUID    NOT NULL,
    set_id      BIGINT  NOT NULL,
    origin      BIGINT  NOT NULL,
    counter     BIGINT  NOT NULL,
    bytes       BYTEA    NOT NULL,
    received_ms BIGINT  NOT NULL,
    PRIMARY KEY (record_id, set_id, origin, counter)
);

-- Operations refused on receipt, kept with their reason and raw bytes; never applied or relayed.
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    received_ms BIGINT  NOT NULL,
    from_peer   TEXT,
    reason      TEXT    NOT NULL,
    record_id   UUID,
    bytes       BYTEA    NOT NULL
);

-- Which org units a record is in scope of (its org, that org's ancestors, its audience), and
-- from which local_seq on: the downward feed of org X is an equality lookup on org_code = X.
CREATE TABLE record_scope (
    org_code        BIGINT  NOT NULL,
    record_id       UUID    NOT NULL,
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
