-- Audit hardening: entries the chain refused, kept aside instead of blocking every later one;
-- checkpoints over the chain sealed with the audit key (which lives outside the database); and
-- the purge anchor's seal, so the oldest rows cannot be dropped by moving the anchor.

-- An entry the database refused as data (a constraint, a value it cannot hold), with the
-- database's reason. `entry` is the entry as JSON text: text, not jsonb, keeps whatever jsonb
-- refused.
CREATE TABLE audit_dead_letters (
    id            uuid PRIMARY KEY,
    action        text NOT NULL,
    entry         text NOT NULL,
    reason        text NOT NULL,
    set_aside_at  timestamptz NOT NULL
);

-- "Row `seq` had hash `hash`", sealed at `created_at` with HMAC-SHA256 under the audit key.
CREATE TABLE audit_checkpoints (
    seq         bigint PRIMARY KEY,
    hash        bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    mac         bytea NOT NULL
);

-- NULL only for an anchor written before this migration: verification reports it unsealed
-- until the next purge that removes rows writes a sealed one.
ALTER TABLE audit_anchor ADD COLUMN mac bytea;
