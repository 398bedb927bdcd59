-- The report-facts projection (issue #5), PostgreSQL dialect; see
-- ../sqlite/0004_report_facts.sql for what each table and column is.
CREATE TABLE IF NOT EXISTS report_facts (
    record_id UUID    NOT NULL,
    item      BIGINT  NOT NULL,
    fact      BIGINT  NOT NULL,
    org_code  BIGINT,
    date_ms   BIGINT,
    subject   UUID,
    code      BIGINT  NOT NULL,
    flags     BIGINT  NOT NULL,
    amount    BIGINT  NOT NULL,
    end_ms    BIGINT,
    label     TEXT,
    extra     TEXT,
    PRIMARY KEY (record_id, item)
);

CREATE INDEX IF NOT EXISTS report_facts_period
    ON report_facts (fact, date_ms, org_code, code, end_ms, subject);
CREATE INDEX IF NOT EXISTS report_facts_org ON report_facts (fact, org_code, code, label);

CREATE TABLE IF NOT EXISTS report_projection (
    name      TEXT    PRIMARY KEY,
    version   BIGINT  NOT NULL,
    local_seq BIGINT  NOT NULL
);

DROP INDEX IF EXISTS fields_raised_at;
DROP INDEX IF EXISTS fields_starts_at;
