-- Webhooks: per-board subscriptions to board events, and the durable outbox of deliveries.
-- The signing secret is kept as shown to the owner (it must be recoverable to sign; see
-- docs/SECURITY.md). last_enqueued_seq is how far into board_events the outbox has been filled
-- for that webhook, so a restart or a lagging listener catches up from the log.

CREATE TABLE webhooks (
    id                          uuid PRIMARY KEY,
    organization_id             uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id                    uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    url                         text NOT NULL,
    events                      jsonb NOT NULL,
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    enabled                     boolean NOT NULL DEFAULT true,
    consecutive_failures        bigint NOT NULL DEFAULT 0,
    last_enqueued_seq           bigint NOT NULL,
    created_by                  uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at                  timestamptz NOT NULL,
    updated_at                  timestamptz NOT NULL
);
CREATE INDEX webhooks_by_board ON webhooks (organization_id, board_id);

CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    webhook_id        uuid NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    board_id          uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    seq               bigint NOT NULL,
    kind              text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          bigint NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL,
    give_up_at        timestamptz NOT NULL,
    last_status_code  bigint,
    last_error        text,
    response_excerpt  text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (organization_id, webhook_id, seq);
