-- Indexes for the gateway's reports (issue #5), kept apart from the store's own tables so the
-- two can change independently.
--
-- A report selects the records of one kind in an org subtree whose date field lies in the
-- period: opinions by `raised_at`, activities by `starts_at` (unix ms, stored as the field's
-- JSON winner). `records_kind_org` finds every record of the subtree, and the period then
-- throws most of them away; these partial expression indexes let the planner start from the
-- period instead. The expression is the one the report SQL writes
-- (`CAST(json_extract(f.value, '$') AS BIGINT)`), so SQLite can match it.
CREATE INDEX fields_raised_at ON fields (CAST(json_extract(value, '$') AS BIGINT))
    WHERE name = 'raised_at';
CREATE INDEX fields_starts_at ON fields (CAST(json_extract(value, '$') AS BIGINT))
    WHERE name = 'starts_at';
