-- Accounts by email: single-use email tokens (verification, address change, password reset),
-- the durable mail outbox, and organization invitations.

-- A token is stored only as its SHA-256; `email` is the address it proves (for a change, the
-- new address).
CREATE TABLE email_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     text NOT NULL,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX email_tokens_by_user ON email_tokens (user_id, purpose);

-- Messages waiting to be sent. The bodies (which carry links with tokens) are cleared once a
-- message is sent.
CREATE TABLE mail_outbox (
    id               uuid PRIMARY KEY,
    to_email         text NOT NULL,
    subject          text NOT NULL,
    text_body        text NOT NULL,
    html_body        text NOT NULL,
    link             text NOT NULL,
    attempts         bigint NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE invitations (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email            text NOT NULL,
    role             text NOT NULL,
    invited_by       uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    closed_at        timestamptz,
    closed_reason    text
);
-- One open invitation per address and organization: inviting again replaces it.
CREATE UNIQUE INDEX invitations_open ON invitations (organization_id, email) WHERE closed_at IS NULL;
CREATE INDEX invitations_by_email ON invitations (email) WHERE closed_at IS NULL;
