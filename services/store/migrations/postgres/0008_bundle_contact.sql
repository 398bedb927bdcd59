-- When the last change bundle imported from a peer was made (Unix ms): a township that moves
-- only by USB is as fresh as its last bundle, never as its county.
ALTER TABLE peer_sync ADD COLUMN last_bundle_ms BIGINT;
