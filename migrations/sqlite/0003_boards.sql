-- Boards as actors: the recorded answers of commands sent with an Idempotency-Key, so a
-- retried create returns the first result instead of a duplicate.

CREATE TABLE idempotency_keys (
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    scope_id         BLOB NOT NULL,
    user_id          BLOB NOT NULL,
    key              TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    response         TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (scope_id, user_id, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (created_at);
