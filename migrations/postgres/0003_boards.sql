-- Boards as actors: the recorded answers of commands sent with an Idempotency-Key, so a
-- retried create returns the first result instead of a duplicate.

CREATE TABLE idempotency_keys (
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    scope_id         uuid NOT NULL,
    user_id          uuid NOT NULL,
    key              text NOT NULL,
    seq              bigint NOT NULL,
    response         jsonb NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (scope_id, user_id, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);
