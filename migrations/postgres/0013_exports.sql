-- Exports (issue #14). A personal data export (GDPR access and portability) is built in the
-- background into a zip under <data dir>/exports/ (mode 0600), downloadable by its owner alone
-- until expires_at, then deleted with its file by the sweep. organization_id is kept for
-- organization exports (NULL for a personal one).
--
-- At most one pending personal export per user: the partial unique index refuses a second
-- whichever node is asked (the edge answers 409).

CREATE TABLE exports (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id  uuid REFERENCES organizations(id) ON DELETE CASCADE,
    status           text NOT NULL,
    file_name        text,
    size             bigint,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX exports_by_user ON exports (user_id, created_at);
CREATE INDEX exports_by_expiry ON exports (expires_at);
CREATE UNIQUE INDEX exports_one_pending ON exports (user_id)
    WHERE status = 'pending' AND organization_id IS NULL;
