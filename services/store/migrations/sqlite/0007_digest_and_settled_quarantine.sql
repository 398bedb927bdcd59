-- Per org unit (a record counts at its org and every ancestor of it) and bucket (0-15, from a
-- hash of the record id), how many records, how many logged operations, and the XOR of a
-- 64-bit hash of each operation's id; local-only kinds left out. Kept up to date as operations
-- apply (a few upserts a batch; a record that moves to another org unit leaves the old one's
-- rows and joins the new one's): an org unit's digest is at most 16 rows read by key, whatever
-- the number of its records. Filled for the operations logged before this migration by the
-- store when it opens (meta `record_digest`).
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
