-- Several nodes on one database (see migrations/postgres/0017_cluster.sql). SQLite is one node
-- only: NATS is refused there, and a second serving process on the same file is refused through
-- `cluster_nodes`; `cluster_identity` and `leases` stay empty.

-- One row: the id that names this database's cluster on NATS (subjects `boardroom.<id>.…`),
-- so clusters on different databases never hear each other on a shared NATS server.
CREATE TABLE cluster_identity (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    cluster_id  BLOB NOT NULL,
    created_at  TEXT NOT NULL
);

-- Every serving process, with or without NATS. A node is live while its heartbeat is recent;
-- a node without NATS refuses to start beside a live node, and a clustered one beside a live
-- node without NATS.
CREATE TABLE cluster_nodes (
    node_id       TEXT PRIMARY KEY,
    clustered     INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);

-- Who runs an entity's actor (`kind` 'board' or 'org'). `epoch` grows at every acquisition, so
-- a commit fenced on it fails once the lease has passed to another node.
CREATE TABLE leases (
    kind        TEXT NOT NULL,
    entity_id   BLOB NOT NULL,
    node_id     TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (kind, entity_id)
);
CREATE INDEX leases_by_node ON leases (node_id);
