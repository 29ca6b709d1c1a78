-- Identity and access: sessions with rotating refresh tokens, API keys, shared rate-limit
-- counters, pending OpenID sign-ins, and the anchor that keeps a purged audit chain verifiable.

CREATE TABLE sessions (
    id                  BLOB PRIMARY KEY,
    user_id             BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method              TEXT NOT NULL,
    refresh_salt        BLOB NOT NULL,
    refresh_generation  INTEGER NOT NULL DEFAULT 0,
    ip                  TEXT,
    user_agent          TEXT,
    created_at          TEXT NOT NULL,
    last_used_at        TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    revoked_at          TEXT,
    revoked_reason      TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

CREATE TABLE api_keys (
    id                     BLOB PRIMARY KEY,
    organization_id        BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id                BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name                   TEXT NOT NULL,
    prefix                 TEXT NOT NULL UNIQUE,
    secret_hash            TEXT NOT NULL,
    scopes                 TEXT NOT NULL,
    rate_limit_per_minute  INTEGER NOT NULL,
    created_at             TEXT NOT NULL,
    expires_at             TEXT,
    last_used_at           TEXT,
    revoked_at             TEXT
);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at);

-- Fixed windows of a sliding-window estimate; every node shares them through the database.
CREATE TABLE rate_limit_windows (
    bucket        TEXT NOT NULL,
    window_start  INTEGER NOT NULL,
    hits          INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
);

CREATE TABLE oauth_states (
    state_hash     BLOB PRIMARY KEY,
    pkce_verifier  TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);

-- The last purged audit row: verification of the remaining chain starts from its hash.
CREATE TABLE audit_anchor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    hash       BLOB NOT NULL,
    purged_at  TEXT NOT NULL
);
