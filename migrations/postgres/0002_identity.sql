-- Identity and access: sessions with rotating refresh tokens, API keys, shared rate-limit
-- counters, pending OpenID sign-ins, and the anchor that keeps a purged audit chain verifiable.

CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method              text NOT NULL,
    refresh_salt        bytea NOT NULL,
    refresh_generation  bigint NOT NULL DEFAULT 0,
    ip                  text,
    user_agent          text,
    created_at          timestamptz NOT NULL,
    last_used_at        timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    revoked_at          timestamptz,
    revoked_reason      text
);
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

CREATE TABLE api_keys (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id                uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name                   text NOT NULL,
    prefix                 text NOT NULL UNIQUE,
    secret_hash            text NOT NULL,
    scopes                 jsonb NOT NULL,
    rate_limit_per_minute  bigint NOT NULL,
    created_at             timestamptz NOT NULL,
    expires_at             timestamptz,
    last_used_at           timestamptz,
    revoked_at             timestamptz
);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at);

-- Fixed windows of a sliding-window estimate; every node shares them through the database.
CREATE TABLE rate_limit_windows (
    bucket        text NOT NULL,
    window_start  bigint NOT NULL,
    hits          bigint NOT NULL,
    PRIMARY KEY (bucket, window_start)
);

CREATE TABLE oauth_states (
    state_hash     bytea PRIMARY KEY,
    pkce_verifier  text NOT NULL,
    nonce          text NOT NULL,
    expires_at     timestamptz NOT NULL
);

-- The last purged audit row: verification of the remaining chain starts from its hash.
CREATE TABLE audit_anchor (
    id         integer PRIMARY KEY CHECK (id = 1),
    seq        bigint NOT NULL,
    hash       bytea NOT NULL,
    purged_at  timestamptz NOT NULL
);
