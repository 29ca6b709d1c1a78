//! Several nodes on one Postgres database, with NATS between them (`BOARDROOM_NATS_URL`).
//!
//! What is shared and how (`docs/DEPLOYMENT.md` for operators, `docs/ARCHITECTURE.md` for the
//! reasons):
//! - **Nodes** register in `cluster_nodes` and beat every [`nodes::HEARTBEAT_EVERY`]
//!   ([`nodes`]); a node without NATS refuses to start beside a live node, so two unclustered
//!   processes never run actors for the same boards.
//! - **Ownership.** Exactly one node runs a board's or an organization's actor, the holder of
//!   its lease (`leases`); commands reaching another node are forwarded to it over NATS
//!   request/reply and answered as if local.
//! - **Events** committed on a board's owner are published on the board's subject; every node's
//!   fan-out delivers them to its sockets in `seq` order, filling a gap from `board_events`.
//! - **Invalidations** of cached sessions, keys and roles reach every node at once
//!   ([`invalidations`]), and each node allows its share of every API key's rate limit
//!   ([`key_shares`]).
//!
//! [`Cluster`] is this node's handle on NATS: its id, the cluster's subject prefix, and typed
//! publish and subscribe over [`boardroom_protocol::cluster::Envelope`].

pub mod events;
pub mod forward;
pub mod invalidations;
pub mod key_shares;
pub mod leases;
pub mod nodes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use boardroom_actors::boards::Boards;
use boardroom_actors::org::Orgs;
use boardroom_actors::remote::{Call, Entity, Pending, Place, Placement};
use tokio::task::JoinHandle;

use boardroom_protocol::cluster::{Envelope, CLUSTER_PROTOCOL_VERSION};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::Settings;
use crate::storage::{Backend, Store};

/// This node's place in a cluster. Cheap to share (`Arc`).
pub struct Cluster {
    node_id: String,
    nats: async_nats::Client,
    prefix: String,
    store: Store,
    leases: Arc<leases::Leases>,
    forwarder: forward::Forwarder,
    /// The node's background work on the cluster, stopped by [`Cluster::leave`].
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Counts the connections to NATS made so far: a change is a reconnect.
    connections: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// This process as a node: its id, and its cluster when it runs with NATS.
#[derive(Debug, Clone)]
pub struct Node {
    /// `BOARDROOM_NODE_ID`, or a random id.
    pub id: String,
    /// The cluster; `None` without NATS.
    pub cluster: Option<Arc<Cluster>>,
}

/// This process's node id: `BOARDROOM_NODE_ID`, or a random one.
pub fn node_id(settings: &Settings) -> String {
    settings.node_id.clone().unwrap_or_else(|| {
        let id = uuid::Uuid::now_v7().simple().to_string();
        // The random tail, not the time-ordered head.
        format!("node-{}", &id[20..])
    })
}

impl Cluster {
    /// Joins the cluster when `BOARDROOM_NATS_URL` is set: refused with SQLite; connects to
    /// NATS (reconnecting by itself for as long as the process lives); reads the database's
    /// cluster id, which names the subjects. `None` without NATS.
    pub async fn join(
        settings: &Settings,
        store: &Store,
        node_id: &str,
    ) -> Result<Option<Arc<Cluster>>, String> {
        let Some(url) = settings.nats_url.as_deref() else { return Ok(None) };
        if store.backend() != Backend::Postgres {
            return Err(
                "BOARDROOM_NATS_URL (--nats-url): several nodes need Postgres (DATABASE_URL); \
                 SQLite serves one node only, so unset BOARDROOM_NATS_URL or move to Postgres"
                    .into(),
            );
        }
        let cluster_id = store
            .cluster_id()
            .await
            .map_err(|e| format!("DATABASE_URL: cannot read the cluster id: {e}"))?;
        let (connected, connections) = tokio::sync::watch::channel(0u64);
        let connected = Arc::new(connected);
        let nats = async_nats::ConnectOptions::new()
            .name(format!("boardroom {node_id}"))
            // Keep trying for as long as the process lives: a NATS restart must not end it.
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let connected = connected.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            connected.send_modify(|count| *count += 1);
                            tracing::info!("NATS connected");
                        }
                        async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                        other => tracing::info!(event = %other, "NATS"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| format!("BOARDROOM_NATS_URL (--nats-url): {e}"))?;
        let prefix = format!("boardroom.{}", cluster_id.simple());
        let leases = Arc::new(leases::Leases::new(
            store.clone(),
            node_id,
            Duration::from_secs(settings.lease_secs),
        ));
        let cluster = Arc::new(Cluster {
            node_id: node_id.to_owned(),
            nats,
            prefix,
            store: store.clone(),
            leases,
            forwarder: forward::Forwarder::default(),
            tasks: Mutex::default(),
            connections,
        });
        let answers = forward::listen_for_answers(cluster.clone())
            .await
            .map_err(|e| format!("BOARDROOM_NATS_URL (--nats-url): cannot subscribe: {e}"))?;
        cluster.keep(answers);
        tracing::info!(node = node_id, cluster = %cluster_id, "joined the cluster");
        Ok(Some(cluster))
    }

    /// Serves other nodes' calls to this node's actors, and keeps this node's leases; once the
    /// actors run.
    pub async fn serve(
        self: &Arc<Self>,
        boards: Arc<Boards>,
        orgs: Arc<Orgs>,
    ) -> Result<(), String> {
        let served = forward::serve(self.clone(), boards.clone(), orgs.clone())
            .await
            .map_err(|e| format!("BOARDROOM_NATS_URL (--nats-url): cannot subscribe: {e}"))?;
        self.keep(served);
        let lost = Arc::new(move |entity: Entity| {
            let (boards, orgs) = (boards.clone(), orgs.clone());
            tokio::spawn(async move {
                match entity {
                    Entity::Board(board) => boards.reload(board).await,
                    Entity::Org(org) => orgs.reload(org).await,
                }
            });
        });
        self.keep(self.leases.clone().spawn_renewal(lost));
        Ok(())
    }

    fn keep(&self, task: JoinHandle<()>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Leaves the cluster at a graceful stop, once this node's actors have stopped: stops
    /// serving calls and renewing, and gives up every lease so other nodes take them at once.
    pub async fn leave(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        self.leases.release_all().await;
        if let Err(err) = self.nats.flush().await {
            tracing::warn!(error = %err, "flushing NATS at shutdown failed");
        }
    }

    /// This node's leases.
    pub fn leases(&self) -> &Arc<leases::Leases> {
        &self.leases
    }

    /// This node's calls to other nodes.
    pub fn forwarder(&self) -> &forward::Forwarder {
        &self.forwarder
    }

    /// Changes each time the NATS connection is made again after a disconnect (core NATS lost
    /// whatever was published meanwhile).
    pub fn reconnects(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut connections = self.connections.clone();
        connections.mark_unchanged();
        connections
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// The store the cluster's rows live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The subject `tail` of this cluster: `boardroom.<cluster id>.<tail>`.
    pub fn subject(&self, tail: &str) -> String {
        format!("{}.{tail}", self.prefix)
    }

    /// Encodes `body` in this node's envelope.
    pub fn encode<T: Serialize>(&self, body: &T) -> bytes::Bytes {
        let envelope = Envelope::new(self.node_id.as_str(), body);
        // Serializing plain derived types into a Vec cannot fail.
        serde_json::to_vec(&envelope).map(bytes::Bytes::from).unwrap_or_default()
    }

    /// Publishes `body` on `subject`. A failure is logged, not returned: whoever needs a
    /// message for correctness also has a way back to the database (a gap is filled from the
    /// log, a cache entry expires).
    pub async fn publish<T: Serialize>(&self, subject: String, body: &T) {
        if let Err(err) = self.nats.publish(subject.clone(), self.encode(body)).await {
            tracing::warn!(%subject, error = %err, "publishing on NATS failed");
        }
    }

    /// Listens on `subject` (wildcards allowed): each message decoded from its envelope, with
    /// the sender's id. A message that does not decode, or of another protocol version, is
    /// logged and skipped.
    pub async fn subscribe<T: DeserializeOwned + Send + 'static>(
        &self,
        subject: String,
    ) -> anyhow::Result<impl Stream<Item = Envelope<T>> + Send + Unpin + 'static> {
        let subscriber = self.nats.subscribe(subject.clone()).await?;
        Ok(subscriber.filter_map(move |message| {
            let decoded = decode::<T>(&message.payload);
            if decoded.is_none() {
                tracing::warn!(subject = %message.subject, "a cluster message did not decode");
            }
            futures::future::ready(decoded)
        }))
    }
}

#[async_trait::async_trait]
impl Placement for Cluster {
    async fn place(&self, entity: Entity) -> Result<Place, String> {
        self.leases.place(entity).await
    }

    fn stopped(&self, entity: Entity, epoch: i64) {
        self.leases.stopped(entity, epoch);
    }

    async fn send(&self, node: &str, call: Call) -> Result<Pending, String> {
        self.forwarder.send(self, node, call).await
    }
}

/// `payload` as an envelope of this protocol version.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Option<Envelope<T>> {
    let envelope: Envelope<T> = serde_json::from_slice(payload).ok()?;
    (envelope.v == CLUSTER_PROTOCOL_VERSION).then_some(envelope)
}
