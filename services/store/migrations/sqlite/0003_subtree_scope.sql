-- A scope row with `subtree` set addresses its org unit's whole subtree: the downward feed of
-- every org unit below `org_code` carries the record too (kinds marked `subtree`, e.g. users).
ALTER TABLE record_scope ADD COLUMN subtree BOOLEAN NOT NULL DEFAULT FALSE;
