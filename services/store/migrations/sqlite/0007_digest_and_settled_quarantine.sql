-- Per record, how many operations are logged for it and the XOR of a 64-bit hash of each one's
-- id, kept up to date as operations apply (one upsert per record a batch touches): the digest of
-- an org unit's records is folded from these rows, with no record materialised. `bucket` (0-255,
-- from a hash of the id: ids made as UUIDv7 share their leading time bytes) splits a digest so
-- two nodes that differ find the records by asking for one bucket. Filled for the operations
-- logged before this migration by the store when it opens (meta `record_digest`).
CREATE TABLE record_digest (
    record_id BLOB    PRIMARY KEY,
    bucket    INTEGER NOT NULL,
    ops       INTEGER NOT NULL,
    hash      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX record_digest_bucket ON record_digest (bucket);

-- The same folded per org unit (a record counts at its org and every ancestor of it) and
-- bucket, local-only kinds left out: an org unit's digest is at most 256 rows read by key,
-- whatever the number of its records. Kept by the same upserts (a record that moves to another
-- org unit leaves the old one's rows and joins the new one's).
CREATE TABLE scope_digest (
    org_code  INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    records   INTEGER NOT NULL,
    ops       INTEGER NOT NULL,
    hash      INTEGER NOT NULL,
    PRIMARY KEY (org_code, bucket)
) WITHOUT ROWID;

-- A quarantined operation's id (when it decoded), so a later legitimate copy of the same
-- operation settles the entry; and when and why an entry was settled (superseded by that copy,
-- or dismissed by a person with a reason). Only unsettled entries need a person.
ALTER TABLE quarantine ADD COLUMN origin INTEGER;
ALTER TABLE quarantine ADD COLUMN origin_seq INTEGER;
ALTER TABLE quarantine ADD COLUMN settled_ms INTEGER;
ALTER TABLE quarantine ADD COLUMN settled_note TEXT;
ALTER TABLE quarantine ADD COLUMN settled_by TEXT;
CREATE INDEX quarantine_open ON quarantine (origin, origin_seq) WHERE settled_ms IS NULL;
