-- Indexes for the gateway's reports (issue #5); see ../sqlite/0002_report_indexes.sql. The
-- expression is the one the report SQL writes for PostgreSQL
-- (`CAST((f.value::jsonb #>> '{}') AS BIGINT)`).
CREATE INDEX fields_raised_at ON fields (CAST((value::jsonb #>> '{}') AS BIGINT))
    WHERE name = 'raised_at';
CREATE INDEX fields_starts_at ON fields (CAST((value::jsonb #>> '{}') AS BIGINT))
    WHERE name = 'starts_at';
