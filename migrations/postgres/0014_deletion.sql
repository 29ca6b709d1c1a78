-- Account deletion (issue #14, GDPR erasure).
--
-- users.deletion_scheduled_for: a deletion the person asked for, due at that time (the grace
-- period, BOARDROOM_DELETION_GRACE_DAYS); cancelling clears it. The maintenance tick (and
-- `boardroom admin run-deletions`) erases accounts whose time has come.
--
-- audit_log.hash_version: 1 for rows written before this migration, whose hash covers their
-- fields as stored; 2 for rows written since, whose hash covers a keyed commitment of each
-- personal field instead (HMAC-SHA256 under the audit key of the field's name and value; for
-- metadata, of each top-level key), so a field can later be erased without breaking the chain.
-- audit_log.erased holds the commitments of the fields an erasure took out (JSON, NULL while
-- nothing was): verification uses them in place of the missing values. The commitment of the
-- actor is the person's keyed pseudonym, the same in every row they acted in.

ALTER TABLE users ADD COLUMN deletion_scheduled_for timestamptz;
CREATE INDEX users_deletion_due ON users (deletion_scheduled_for)
    WHERE deletion_scheduled_for IS NOT NULL;

ALTER TABLE audit_log ADD COLUMN hash_version integer NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN erased jsonb;
CREATE INDEX audit_log_by_actor ON audit_log (actor_id);
