-- Webhooks see no more than their creator may: a webhook records whose access its deliveries
-- ride on (created_by, and the API key used, if one was), and why it was disabled.
--
-- created_by_key has no foreign key on purpose: a key row that went away must never turn a
-- key-made webhook into one that looks made with a session (ON DELETE SET NULL would); a key
-- that cannot be found no longer qualifies.
--
-- Existing webhooks: which credential made them was never recorded, so a webhook made with a
-- narrow key (boards:write without items:read or updates:read) cannot be told from one made by
-- its owner in a browser. They are disabled (disabled_reason 'creator_unknown'); an owner
-- re-enables one with PATCH {"enabled": true}, which checks them and records them as its
-- creator. Failing closed costs one request per webhook; failing open would keep the leak.

ALTER TABLE webhooks ADD COLUMN created_by_key BLOB;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
UPDATE webhooks SET disabled_reason = 'creator_unknown', enabled = false WHERE enabled;
CREATE INDEX webhooks_by_creator ON webhooks (organization_id, created_by);
CREATE INDEX webhooks_by_creator_key ON webhooks (organization_id, created_by_key);
