//! The cluster's rows: the database's cluster id, the serving nodes and their heartbeats, and
//! the leases by which one node at a time runs a board's or an organization's actor.
//!
//! Node rows exist on both backends (a second serving process on one SQLite file is refused the
//! same way); leases and the cluster id are used on Postgres only, where nodes cluster. Lease
//! times are the database's clock (`clock_timestamp()`), so nodes' clocks never decide who holds
//! one; heartbeats are the nodes' clocks, compared with a margin (`cluster::nodes`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use uuid::Uuid;

use super::{Backend, StorageError, StorageResult, Store};
use crate::{on_pool, transaction, write_on_pool};

/// A serving node as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Its id.
    pub node_id: String,
    /// Whether it runs with NATS.
    pub clustered: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
}

/// Why a node may not start beside the live ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeConflict {
    /// A live node already has this id.
    SameId(NodeRow),
    /// A live node does not run with NATS, or this one does not while another is live.
    Unclustered(NodeRow),
}

/// What a lease is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseKind {
    /// A board's actor.
    Board,
    /// An organization's actor.
    Org,
}

impl LeaseKind {
    /// Its name in `leases.kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Board => "board",
            LeaseKind::Org => "org",
        }
    }
}

/// The board leases this node holds, by epoch: a board commit is fenced on its board's entry
/// (written only while the lease row still names this node, at this epoch, unexpired). Shared
/// between the lease keeper (`cluster::leases`) and the store's commit paths.
#[derive(Debug)]
pub struct Fence {
    /// This node.
    pub node_id: String,
    /// Board → the epoch of the lease this node holds on it.
    pub boards: DashMap<Uuid, i64>,
}

impl Fence {
    /// A fence of `node_id`, holding nothing yet.
    pub fn new(node_id: impl Into<String>) -> Arc<Fence> {
        Arc::new(Fence { node_id: node_id.into(), boards: DashMap::new() })
    }

    /// The epoch to fence a commit of `board` on; `Err` when this node holds no lease on it, so
    /// the commit must not be tried.
    pub fn epoch(&self, board: Uuid) -> Result<i64, StorageError> {
        self.boards.get(&board).map(|e| *e).ok_or(StorageError::Rule(NOT_LEASED))
    }
}

/// Where a store keeps its [`Fence`] once the node joins a cluster (shared with its item-batch
/// writer); empty on one node.
pub type FenceCell = Arc<std::sync::OnceLock<Arc<Fence>>>;

/// `UPDATE boards SET seq` of a fenced commit: `$1` org, `$2` board, `$3` new seq, `$4` the
/// seq it must be at, `$5` this node, `$6` the lease's epoch.
pub static FENCED_SEQ_MOVE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE boards SET seq = $3 WHERE organization_id = $1 AND id = $2 AND seq = $4 AND {}",
        fence_condition("$2", "$5", "$6")
    )
});

/// Why a fenced commit was refused before it was tried.
pub const NOT_LEASED: &str = "this node holds no lease on the board";

/// The lease check a fenced `UPDATE boards … WHERE …` appends, with `$node` and `$epoch` as
/// placeholders of the caller's numbering and `{id}` the board id's expression.
pub fn fence_condition(id: &str, node: &str, epoch: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM leases WHERE leases.kind = 'board' AND leases.entity_id = {id} \
         AND leases.node_id = {node} AND leases.epoch = {epoch} \
         AND leases.expires_at > clock_timestamp())"
    )
}

impl Store {
    /// Fences this store's board commits on `fence` (a node joining a cluster, before any
    /// board actor starts); set once.
    pub fn fence_with(&self, fence: Arc<Fence>) {
        let _ = self.fence.set(fence);
    }

    /// What a commit of `board` is fenced on: `None` on one node; `Err` with several when this
    /// node holds no lease on the board.
    pub fn fence_of(&self, board: Uuid) -> StorageResult<Option<(&str, i64)>> {
        match self.fence.get() {
            None => Ok(None),
            Some(fence) => Ok(Some((fence.node_id.as_str(), fence.epoch(board)?))),
        }
    }

    /// The Postgres pool: leases exist only where nodes cluster.
    fn postgres(&self) -> StorageResult<&sqlx::PgPool> {
        match self.pool() {
            super::Pool::Postgres(pool) => Ok(pool),
            super::Pool::Sqlite(_) => Err(StorageError::Rule("leases need Postgres")),
        }
    }

    /// This database's cluster id, made on first ask (Postgres).
    pub async fn cluster_id(&self) -> StorageResult<Uuid> {
        let made = super::new_id();
        let now = super::now();
        write_on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO cluster_identity (singleton, cluster_id, created_at) \
                 VALUES (true, $1, $2) ON CONFLICT (singleton) DO NOTHING",
            )
            .bind(made)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        let (id,): (Uuid,) = on_pool!(self, pool => {
            sqlx::query_as("SELECT cluster_id FROM cluster_identity").fetch_one(pool).await
        })?;
        Ok(id)
    }

    /// Registers node `node_id` unless a live node (heartbeat after `live_after`) conflicts with
    /// it: one with the same id, or, unless both run with NATS, any. Checked and written under
    /// one lock, so two nodes starting at once cannot both pass. Rows silent for a day are
    /// dropped on the way.
    pub async fn register_node(
        &self,
        node_id: &str,
        clustered: bool,
        live_after: DateTime<Utc>,
    ) -> StorageResult<Result<(), NodeConflict>> {
        let now = super::now();
        let lock = self.backend() == Backend::Postgres;
        transaction!(self, conn => {
            if lock {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(NODES_LOCK)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query("DELETE FROM cluster_nodes WHERE heartbeat_at < $1")
                .bind(now - chrono::Duration::days(1))
                .execute(&mut *conn)
                .await?;
            let live: Vec<(String, bool, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                "SELECT node_id, clustered, started_at, heartbeat_at FROM cluster_nodes \
                 WHERE heartbeat_at > $1 ORDER BY heartbeat_at DESC",
            )
            .bind(live_after)
            .fetch_all(&mut *conn)
            .await?;
            for (id, other_clustered, started_at, heartbeat_at) in live {
                let row = NodeRow { node_id: id, clustered: other_clustered, started_at, heartbeat_at };
                if row.node_id == node_id {
                    return Ok(Err(NodeConflict::SameId(row)));
                }
                if !(clustered && row.clustered) {
                    return Ok(Err(NodeConflict::Unclustered(row)));
                }
            }
            sqlx::query(
                "INSERT INTO cluster_nodes (node_id, clustered, started_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $3) ON CONFLICT (node_id) DO UPDATE \
                 SET clustered = excluded.clustered, started_at = excluded.started_at, \
                     heartbeat_at = excluded.heartbeat_at",
            )
            .bind(node_id)
            .bind(clustered)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(()))
        })
    }

    /// Moves node `node_id`'s heartbeat to now; `false` when its row is gone.
    pub async fn node_heartbeat(&self, node_id: &str) -> StorageResult<bool> {
        let now = super::now();
        let updated = write_on_pool!(self, pool => {
            sqlx::query("UPDATE cluster_nodes SET heartbeat_at = $2 WHERE node_id = $1")
                .bind(node_id)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Removes node `node_id`'s row (a graceful stop).
    pub async fn deregister_node(&self, node_id: &str) -> StorageResult<()> {
        write_on_pool!(self, pool => {
            sqlx::query("DELETE FROM cluster_nodes WHERE node_id = $1")
                .bind(node_id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The nodes whose heartbeat is after `live_after`, newest first.
    pub async fn live_nodes(&self, live_after: DateTime<Utc>) -> StorageResult<Vec<NodeRow>> {
        let rows: Vec<(String, bool, DateTime<Utc>, DateTime<Utc>)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT node_id, clustered, started_at, heartbeat_at FROM cluster_nodes \
                 WHERE heartbeat_at > $1 ORDER BY heartbeat_at DESC",
            )
            .bind(live_after)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(node_id, clustered, started_at, heartbeat_at)| NodeRow {
                node_id,
                clustered,
                started_at,
                heartbeat_at,
            })
            .collect())
    }

    /// Places `entity`: takes its lease for `node_id` for `ttl_ms` if it is free, expired or
    /// already this node's (with a new epoch, one more than the last holder's, so anything
    /// fenced on an older one fails), in one statement; answers the holder afterwards and its
    /// epoch. Postgres only.
    pub async fn lease_place(
        &self,
        kind: LeaseKind,
        entity: Uuid,
        node_id: &str,
        ttl_ms: i64,
    ) -> StorageResult<(String, i64)> {
        // A lease row inserted by a concurrent statement is invisible to this statement's
        // snapshot when it does not take it, so its holder is read again by a second run.
        for _ in 0..3 {
            let row: Option<(String, i64)> = sqlx::query_as(
                "WITH taken AS ( \
                         INSERT INTO leases (kind, entity_id, node_id, epoch, expires_at) \
                         VALUES ($1, $2, $3, 1, clock_timestamp() + $4 * interval '1 millisecond') \
                         ON CONFLICT (kind, entity_id) DO UPDATE \
                         SET node_id = excluded.node_id, epoch = leases.epoch + 1, \
                             expires_at = excluded.expires_at \
                         WHERE leases.expires_at < clock_timestamp() \
                             OR leases.node_id = excluded.node_id \
                         RETURNING node_id, epoch \
                     ) \
                     SELECT node_id, epoch FROM taken \
                     UNION ALL \
                     SELECT node_id, epoch FROM leases WHERE kind = $1 AND entity_id = $2 \
                         AND NOT EXISTS (SELECT 1 FROM taken)",
            )
            .bind(kind.as_str())
            .bind(entity)
            .bind(node_id)
            .bind(ttl_ms as f64)
            .fetch_optional(self.postgres()?)
            .await?;
            if let Some(holder) = row {
                return Ok(holder);
            }
        }
        Err(StorageError::Transient("the lease's holder could not be read".into()))
    }

    /// Extends `node_id`'s unexpired leases on `entities` of `kind` by `ttl_ms`; answers those
    /// it extended, with their epochs (an expired one is not renewed: another node may be
    /// taking it).
    pub async fn lease_renew(
        &self,
        kind: LeaseKind,
        entities: &[Uuid],
        node_id: &str,
        ttl_ms: i64,
    ) -> StorageResult<Vec<(Uuid, i64)>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let renewed = sqlx::query_as(
            "UPDATE leases SET expires_at = clock_timestamp() + $4 * interval '1 millisecond' \
                 WHERE kind = $1 AND entity_id = ANY($2) AND node_id = $3 \
                     AND expires_at > clock_timestamp() \
                 RETURNING entity_id, epoch",
        )
        .bind(kind.as_str())
        .bind(entities)
        .bind(node_id)
        .bind(ttl_ms as f64)
        .fetch_all(self.postgres()?)
        .await?;
        Ok(renewed)
    }

    /// Gives up `node_id`'s lease on `entity` at `epoch` (a later acquisition is untouched).
    pub async fn lease_release(
        &self,
        kind: LeaseKind,
        entity: Uuid,
        node_id: &str,
        epoch: i64,
    ) -> StorageResult<()> {
        sqlx::query(
            "UPDATE leases SET expires_at = clock_timestamp() \
                 WHERE kind = $1 AND entity_id = $2 AND node_id = $3 AND epoch = $4",
        )
        .bind(kind.as_str())
        .bind(entity)
        .bind(node_id)
        .bind(epoch)
        .execute(self.postgres()?)
        .await?;
        Ok(())
    }

    /// Gives up every lease of `node_id` (a graceful stop, after its actors stopped).
    pub async fn lease_release_all(&self, node_id: &str) -> StorageResult<()> {
        sqlx::query(
            "UPDATE leases SET expires_at = clock_timestamp() \
                 WHERE node_id = $1 AND expires_at > clock_timestamp()",
        )
        .bind(node_id)
        .execute(self.postgres()?)
        .await?;
        Ok(())
    }
}

/// Advisory lock serializing node registrations (`pg_advisory_xact_lock`).
const NODES_LOCK: i64 = 0x6272_6e6f_6465_7321;
