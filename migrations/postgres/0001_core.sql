-- Core schema: tenants, people, boards and their contents, the per-board event log, and the
-- audit log. Every tenant-owned table carries organization_id so that each query can filter on it.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    plan        text NOT NULL DEFAULT 'free',
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    email           text NOT NULL UNIQUE,
    name            text NOT NULL,
    password_hash   text,
    email_verified  boolean NOT NULL DEFAULT false,
    google_sub      text UNIQUE,
    is_superadmin   boolean NOT NULL DEFAULT false,
    token_version   bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL
);

CREATE TABLE memberships (
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('admin', 'member')),
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE boards (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    seq              bigint NOT NULL DEFAULT 0,
    created_by       uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    deleted_at       timestamptz
);
CREATE INDEX boards_by_org ON boards (organization_id, id);

CREATE TABLE board_members (
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    user_id          uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (board_id, user_id)
);
CREATE INDEX board_members_by_user ON board_members (organization_id, user_id);

CREATE TABLE columns (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    title            text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('text', 'long_text', 'number', 'status', 'date',
                                                   'person', 'checkbox', 'dropdown', 'link')),
    settings         jsonb NOT NULL DEFAULT '{}',
    position         text NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX columns_by_board ON columns (organization_id, board_id, position);

CREATE TABLE groups (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    title            text NOT NULL,
    color            text,
    position         text NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX groups_by_board ON groups (organization_id, board_id, position);

CREATE TABLE items (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    group_id         uuid NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    name             text NOT NULL,
    column_values    jsonb NOT NULL DEFAULT '{}',
    position         text NOT NULL,
    version          bigint NOT NULL DEFAULT 1,
    archived_at      timestamptz,
    created_by       uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX items_by_group ON items (organization_id, board_id, group_id, position);

CREATE TABLE updates (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    item_id          uuid NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    parent_id        uuid REFERENCES updates(id) ON DELETE CASCADE,
    author_id        uuid REFERENCES users(id) ON DELETE SET NULL,
    body             text NOT NULL,
    created_at       timestamptz NOT NULL,
    edited_at        timestamptz
);
CREATE INDEX updates_by_item ON updates (organization_id, item_id, id);

CREATE TABLE board_events (
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    board_id         uuid NOT NULL REFERENCES boards(id) ON DELETE CASCADE,
    seq              bigint NOT NULL,
    kind             text NOT NULL,
    actor            uuid,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (board_id, seq)
);

-- Append-only, hash-chained: each row's hash covers its content and the previous row's hash.
CREATE TABLE audit_log (
    seq              bigint PRIMARY KEY,
    id               uuid NOT NULL UNIQUE,
    organization_id  uuid,
    actor_id         uuid,
    action           text NOT NULL,
    target           text,
    ip               text,
    user_agent       text,
    bypass           boolean NOT NULL DEFAULT false,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    prev_hash        bytea NOT NULL,
    hash             bytea NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log (organization_id, seq);
CREATE INDEX audit_log_by_time ON audit_log (created_at);
