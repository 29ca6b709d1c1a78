-- Webhooks: per-board subscriptions to board events, and the durable outbox of deliveries.
-- The signing secret is kept as shown to the owner (it must be recoverable to sign; see
-- docs/SECURITY.md). last_enqueued_seq is how far into board_events the outbox has been filled
-- for that webhook, so a restart or a lagging listener catches up from the log.

CREATE TABLE webhooks (
    id                          BLOB PRIMARY KEY,
    organization_id             BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id                    BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    url                         TEXT NOT NULL,
    events                      TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  TEXT,
    enabled                     BOOLEAN NOT NULL DEFAULT true,
    consecutive_failures        INTEGER NOT NULL DEFAULT 0,
    last_enqueued_seq           INTEGER NOT NULL,
    created_by                  BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);
CREATE INDEX webhooks_by_board ON webhooks (organization_id, board_id);

CREATE TABLE webhook_deliveries (
    id                BLOB PRIMARY KEY,
    organization_id   BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    webhook_id        BLOB NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    board_id          BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   TEXT NOT NULL,
    give_up_at        TEXT NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    response_excerpt  TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (organization_id, webhook_id, seq);
