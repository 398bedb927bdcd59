-- The winner's clock, org and author are in the register's `state`, which every read of a
-- field decodes; no query filters on them, and each cost every field write its bytes.
ALTER TABLE fields DROP COLUMN hlc;
ALTER TABLE fields DROP COLUMN org;
ALTER TABLE fields DROP COLUMN author;
