//! Per-key rate limits across nodes: each node allows its share of a key's limit, the limit
//! divided by the live nodes (`auth::api_keys::KeyCache::set_nodes`), counted here from the
//! nodes' heartbeats.
//!
//! Why divided, not shared: a shared count costs a database round trip (and a row, and a lock
//! on the key's bucket) on every request of every key, the hottest path there is, where the
//! local log costs nothing; and a key's limit guards the service against one integration, which
//! a division does as well. The price: a client whose requests all reach one node (one keep-alive
//! connection, one socket) gets that node's share, not the whole limit; and for a heartbeat
//! period after a node joins, the others still allow their former, larger share. With the load
//! balancer spreading connections, the nodes together allow at most the key's limit.

use tokio::task::JoinHandle;

use super::nodes::{HEARTBEAT_EVERY, LIVE_FOR};
use crate::state::AppState;

/// Follows the number of live clustered nodes for as long as the server runs, dividing each
/// key's limit by it; the last count stands while the database cannot be read. `None` without a
/// cluster: the single node allows the whole limit.
pub fn follow(state: &AppState) -> Option<JoinHandle<()>> {
    state.cluster()?;
    let state = state.clone();
    Some(tokio::spawn(async move {
        let mut shutdown = state.ws().shutdown_signal();
        let mut every = tokio::time::interval(HEARTBEAT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stopped(&mut shutdown) => break,
            }
            let live_after = crate::storage::now()
                - chrono::Duration::from_std(LIVE_FOR).unwrap_or(chrono::Duration::zero());
            match state.store().live_nodes(live_after).await {
                Ok(nodes) => {
                    let clustered = nodes.iter().filter(|node| node.clustered).count();
                    let count = u32::try_from(clustered).unwrap_or(u32::MAX).max(1);
                    state.auth().key_cache().set_nodes(count);
                }
                Err(err) => tracing::warn!(error = %err, "counting the live nodes failed"),
            }
        }
    }))
}

/// Resolves when the server shuts down.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
