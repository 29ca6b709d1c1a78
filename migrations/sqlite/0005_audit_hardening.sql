-- Audit hardening: entries the chain refused, kept aside instead of blocking every later one;
-- checkpoints over the chain sealed with the audit key (which lives outside the database); and
-- the purge anchor's seal, so the oldest rows cannot be dropped by moving the anchor.

-- An entry the database refused as data (a constraint, a value it cannot hold), with the
-- database's reason. `entry` is the entry as JSON text.
CREATE TABLE audit_dead_letters (
    id            BLOB PRIMARY KEY,
    action        TEXT NOT NULL,
    entry         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    set_aside_at  TEXT NOT NULL
);

-- "Row `seq` had hash `hash`", sealed at `created_at` with HMAC-SHA256 under the audit key.
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    hash        BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    mac         BLOB NOT NULL
);

-- NULL only for an anchor written before this migration: verification reports it unsealed
-- until the next purge that removes rows writes a sealed one.
ALTER TABLE audit_anchor ADD COLUMN mac BLOB;
