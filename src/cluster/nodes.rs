//! The serving nodes of one database: registration at start, a heartbeat, removal at a graceful
//! stop. A node is live while its heartbeat is younger than [`LIVE_FOR`].
//!
//! A node starting without NATS refuses to serve beside a live node, and a clustered node beside
//! a live unclustered one: two nodes that do not talk would each run actors for the same boards
//! and keep stale caches. A killed node's row stops beating and stops counting after
//! [`LIVE_FOR`]. Heartbeats are the nodes' own clocks, so nodes must keep time (NTP); the margin
//! of [`LIVE_FOR`] over [`HEARTBEAT_EVERY`] absorbs small skew and slow beats.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::storage::{NodeConflict, Store};

/// How often a node beats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

/// How long a node counts as live after its last beat.
pub const LIVE_FOR: Duration = Duration::from_secs(10);

fn live_after() -> chrono::DateTime<chrono::Utc> {
    crate::storage::now() - chrono::Duration::from_std(LIVE_FOR).unwrap_or_default()
}

/// Registers `node_id`, or refuses with what conflicts and what to do about it.
pub async fn register(store: &Store, node_id: &str, clustered: bool) -> Result<(), String> {
    let registered = store
        .register_node(node_id, clustered, live_after())
        .await
        .map_err(|e| format!("DATABASE_URL: cannot register this node: {e}"))?;
    match registered {
        Ok(()) => Ok(()),
        Err(NodeConflict::SameId(other)) => Err(format!(
            "BOARDROOM_NODE_ID (--node-id): node {:?} is already serving this database \
             (last heartbeat {}); give each node its own id",
            other.node_id, other.heartbeat_at
        )),
        Err(NodeConflict::Unclustered(other)) => Err(format!(
            "another node ({:?}, last heartbeat {}, {}) is serving this database: nodes on one \
             database must all set BOARDROOM_NATS_URL to the same NATS, or this one must wait \
             until that node has stopped",
            other.node_id,
            other.heartbeat_at,
            if other.clustered { "with NATS" } else { "without NATS" }
        )),
    }
}

/// Beats for `node_id` every [`HEARTBEAT_EVERY`] until aborted; a row that disappeared (an
/// operator tidied the table) is written again.
pub fn heartbeat(store: Store, node_id: String, clustered: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(HEARTBEAT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match store.node_heartbeat(&node_id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(node = %node_id, "this node's row was gone; registering again");
                    if let Err(err) = register(&store, &node_id, clustered).await {
                        tracing::error!(error = %err, "this node could not register again");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "node heartbeat failed"),
            }
        }
    })
}

/// Removes `node_id`'s row at a graceful stop, so a successor need not wait [`LIVE_FOR`].
pub async fn deregister(store: &Store, node_id: &str) {
    if let Err(err) = store.deregister_node(node_id).await {
        tracing::warn!(error = %err, "removing this node's row failed");
    }
}
