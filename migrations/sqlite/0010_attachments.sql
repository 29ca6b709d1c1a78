-- File attachments on items and comments. The bytes live in the blob store, encrypted with a
-- data key of their own; this row holds that key only wrapped by a master key (key_id names
-- which), so neither the plaintext nor a data key is ever in the database.
--
-- blob_key is the object's name in the blob store: random, never derived from the file's name.
-- Rows go with their item, comment or board (ON DELETE CASCADE); the blob then has no row and
-- the sweep removes it, so a crash between the two leaves nothing readable behind.

CREATE TABLE attachments (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    item_id          BLOB NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    update_id        BLOB REFERENCES updates(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    content_type     TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    blob_key         TEXT NOT NULL UNIQUE,
    key_id           TEXT NOT NULL,
    wrapped_key      BLOB NOT NULL,
    created_by       BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX attachments_by_item ON attachments (organization_id, board_id, item_id, created_at);
CREATE INDEX attachments_by_key ON attachments (key_id);
