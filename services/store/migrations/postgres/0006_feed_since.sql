-- The downward feed walks the records that entered an org unit's scope after a cursor by this
-- index (and the operations after the cursor by op_log's key), so an idle sync round costs the
-- same whatever the history before the cursor.
CREATE INDEX record_scope_since ON record_scope (org_code, since_local_seq);
