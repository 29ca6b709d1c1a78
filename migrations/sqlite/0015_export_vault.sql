-- Exports encrypted at rest, and organization exports (issue #14).
--
-- An export's zip now lives in the attachment vault's blob store, sealed under a data key of
-- its own: blob_key names the blob, key_id the master key that wraps the data key, wrapped_key
-- the wrapped data key (the only way into the blob). size is the zip's plaintext size.
-- file_name is kept only so the sweep can delete a plain file left by a release before this one.
--
-- Plain-file exports made before this migration are not carried over: each is marked failed and
-- expired (expires_at = created_at), so it answers 404 at once and the exporter's sweep deletes
-- its file under <data dir>/exports/ and its row. Their owners ask again.
--
-- An organization export (organization_id set) is downloadable only by the admin who asked for
-- it, while they are an admin there; at most one is pending per organization.

ALTER TABLE exports ADD COLUMN blob_key TEXT;
ALTER TABLE exports ADD COLUMN key_id TEXT;
ALTER TABLE exports ADD COLUMN wrapped_key BLOB;

UPDATE exports SET status = 'failed', expires_at = created_at;

CREATE UNIQUE INDEX exports_by_blob ON exports (blob_key);
CREATE INDEX exports_by_key ON exports (key_id);
CREATE INDEX exports_by_org ON exports (organization_id, created_at);
CREATE UNIQUE INDEX exports_one_pending_per_org ON exports (organization_id)
    WHERE status = 'pending' AND organization_id IS NOT NULL;
