-- Accounts by email: single-use email tokens (verification, address change, password reset),
-- the durable mail outbox, and organization invitations.

-- A token is stored only as its SHA-256; `email` is the address it proves (for a change, the
-- new address).
CREATE TABLE email_tokens (
    token_hash  BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    email       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);

-- Messages waiting to be sent. The bodies (which carry links with tokens) are cleared once a
-- message is sent.
CREATE TABLE mail_outbox (
    id               BLOB PRIMARY KEY,
    to_email         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    text_body        TEXT NOT NULL,
    html_body        TEXT NOT NULL,
    link             TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE invitations (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email            TEXT NOT NULL,
    role             TEXT NOT NULL,
    invited_by       BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    closed_at        TEXT,
    closed_reason    TEXT
);
-- One open invitation per address and organization: inviting again replaces it.
CREATE UNIQUE INDEX invitations_open ON invitations (organization_id, email) WHERE closed_at IS NULL;
CREATE INDEX invitations_by_email ON invitations (email) WHERE closed_at IS NULL;
