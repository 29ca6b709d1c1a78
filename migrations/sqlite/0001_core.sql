-- Core schema: tenants, people, boards and their contents, the per-board event log, and the
-- audit log. Every tenant-owned table carries organization_id so that each query can filter on it.

CREATE TABLE organizations (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    plan        TEXT NOT NULL DEFAULT 'free',
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id              BLOB PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    password_hash   TEXT,
    email_verified  BOOLEAN NOT NULL DEFAULT false,
    google_sub      TEXT UNIQUE,
    is_superadmin   BOOLEAN NOT NULL DEFAULT false,
    token_version   INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);

CREATE TABLE memberships (
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    created_at       TEXT NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE boards (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    seq              INTEGER NOT NULL DEFAULT 0,
    created_by       BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_at       TEXT
);
CREATE INDEX boards_by_org ON boards (organization_id, id);

CREATE TABLE board_members (
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    user_id          BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role             TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at       TEXT NOT NULL,
    PRIMARY KEY (board_id, user_id)
);
CREATE INDEX board_members_by_user ON board_members (organization_id, user_id);

CREATE TABLE columns (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('text', 'long_text', 'number', 'status', 'date',
                                                   'person', 'checkbox', 'dropdown', 'link')),
    settings         TEXT NOT NULL DEFAULT '{}',
    position         TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX columns_by_board ON columns (organization_id, board_id, position);

CREATE TABLE groups (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    title            TEXT NOT NULL,
    color            TEXT,
    position         TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
CREATE INDEX groups_by_board ON groups (organization_id, board_id, position);

CREATE TABLE items (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    group_id         BLOB NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    column_values    TEXT NOT NULL DEFAULT '{}',
    position         TEXT NOT NULL,
    version          INTEGER NOT NULL DEFAULT 1,
    archived_at      TEXT,
    created_by       BLOB REFERENCES users(id) ON DELETE SET NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX items_by_group ON items (organization_id, board_id, group_id, position);

CREATE TABLE updates (
    id               BLOB PRIMARY KEY,
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    item_id          BLOB NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    parent_id        BLOB REFERENCES updates(id) ON DELETE CASCADE,
    author_id        BLOB REFERENCES users(id) ON DELETE SET NULL,
    body             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    edited_at        TEXT
);
CREATE INDEX updates_by_item ON updates (organization_id, item_id, id);

CREATE TABLE board_events (
    organization_id  BLOB NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         BLOB NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    seq              INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    actor            BLOB,
    payload          TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (board_id, seq)
);

-- Append-only, hash-chained: each row's hash covers its content and the previous row's hash.
CREATE TABLE audit_log (
    seq              INTEGER PRIMARY KEY,
    id               BLOB NOT NULL UNIQUE,
    organization_id  BLOB,
    actor_id         BLOB,
    action           TEXT NOT NULL,
    target           TEXT,
    ip               TEXT,
    user_agent       TEXT,
    bypass           BOOLEAN NOT NULL DEFAULT false,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    prev_hash        BLOB NOT NULL,
    hash             BLOB NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (organization_id, seq);
CREATE INDEX audit_log_by_time ON audit_log (created_at);
