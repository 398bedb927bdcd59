-- The report-facts projection (issue #5), SQLite dialect; keep in step with
-- ../postgres/0004_report_facts.sql. In the store's migration list (`db.rs`) as version 4.
--
-- One typed row per reportable item: a record (an opinion, a suggestion, a deputy …) or a dated
-- step of one (a check-in, a reception, a voter visit …). The reporting layer defines what
-- each column means per `fact`; the store only keeps the rows and the watermark below. Every
-- row of a record is replaced whenever an operation on that record is logged.
CREATE TABLE IF NOT EXISTS report_facts (
    record_id BLOB    NOT NULL,
    -- 0 for the record itself, 1, 2, … for its steps.
    item      INTEGER NOT NULL,
    fact      INTEGER NOT NULL,
    org_code  INTEGER,
    -- The date the report's period is compared with, unix ms.
    date_ms   INTEGER,
    -- Another record the item is about (an opinion's station, a check-in's deputy).
    subject   BLOB,
    code      INTEGER NOT NULL,
    flags     INTEGER NOT NULL,
    amount    INTEGER NOT NULL,
    end_ms    INTEGER,
    label     TEXT,
    extra     TEXT,
    PRIMARY KEY (record_id, item)
) WITHOUT ROWID;

-- A period report reads one fact's rows of the period from this index alone: org, code,
-- end time and subject are in it, so counting and grouping never visit the table.
CREATE INDEX IF NOT EXISTS report_facts_period
    ON report_facts (fact, date_ms, org_code, code, end_ms, subject);
-- Lists without a period (deputies, stations) by org subtree, names included.
CREATE INDEX IF NOT EXISTS report_facts_org ON report_facts (fact, org_code, code, label);

-- How far the projection is: every operation logged up to `local_seq` is in `report_facts`,
-- computed by the reporting layer's definition `version` (another version rebuilds it).
CREATE TABLE IF NOT EXISTS report_projection (
    name      TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    local_seq INTEGER NOT NULL
);

-- The expression indexes of 0002 served the JSON-reading reports; reports read the facts now,
-- and these cost every field write an index update.
DROP INDEX IF EXISTS fields_raised_at;
DROP INDEX IF EXISTS fields_starts_at;
