-- Several nodes on one database (BOARDROOM_NATS_URL): the cluster's identity, the nodes and
-- their heartbeats, and the leases by which exactly one node runs a board's or an
-- organization's actor.

-- One row: the id that names this database's cluster on NATS (subjects `boardroom.<id>.…`),
-- so clusters on different databases never hear each other on a shared NATS server.
CREATE TABLE cluster_identity (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    cluster_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL
);

-- Every serving process, with or without NATS. A node is live while its heartbeat is recent;
-- a node without NATS refuses to start beside a live node, and a clustered one beside a live
-- node without NATS.
CREATE TABLE cluster_nodes (
    node_id       text PRIMARY KEY,
    clustered     boolean NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL
);

-- Who runs an entity's actor (`kind` 'board' or 'org'). `epoch` grows at every acquisition, so
-- a commit fenced on it fails once the lease has passed to another node.
CREATE TABLE leases (
    kind        text NOT NULL,
    entity_id   uuid NOT NULL,
    node_id     text NOT NULL,
    epoch       bigint NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (kind, entity_id)
);
CREATE INDEX leases_by_node ON leases (node_id);
