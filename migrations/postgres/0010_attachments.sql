-- File attachments on items and comments. The bytes live in the blob store, encrypted with a
-- data key of their own; this row holds that key only wrapped by a master key (key_id names
-- which), so neither the plaintext nor a data key is ever in the database.
--
-- blob_key is the object's name in the blob store: random, never derived from the file's name.
-- Rows go with their item, comment or board (ON DELETE CASCADE); the blob then has no row and
-- the sweep removes it, so a crash between the two leaves nothing readable behind.

CREATE TABLE attachments (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    item_id          uuid NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    update_id        uuid REFERENCES updates(id) ON DELETE CASCADE,
    name             text NOT NULL,
    size             bigint NOT NULL,
    content_type     text NOT NULL,
    sha256           text NOT NULL,
    blob_key         text NOT NULL UNIQUE,
    key_id           text NOT NULL,
    wrapped_key      bytea NOT NULL,
    created_by       uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX attachments_by_item ON attachments (organization_id, board_id, item_id, created_at);
CREATE INDEX attachments_by_key ON attachments (key_id);
