//! This node's leases: which boards' and organizations' actors it may run, and at which
//! epoch.
//!
//! A lease lasts `BOARDROOM_LEASE_SECS` unless renewed; [`Leases::spawn_renewal`] renews every
//! held lease each third of that in one statement per kind. A lease that could not be renewed
//! (the node was paused past its expiry, or the database was unreachable for that long) is
//! dropped here and its actor stopped at once; even before that, its board's commits fail,
//! since each is fenced on the lease's epoch (`storage::cluster`). Placing an entity this node
//! does not hold takes its lease when it is free or expired, which is how a dead node's boards
//! move: the first call for one after its lease ran out takes it.
//!
//! Other nodes' leases are remembered for as long as a lease lasts, so a busy board forwarded
//! to its owner costs no database read per call; a call the owner refuses (moved), or that gets
//! no answer (NATS says at once when nobody listens for a dead node), forgets the entry. Lookups
//! of one entity made at the same time are one query: a burst of sockets subscribing through a
//! node that does not own their board must not take every database connection (seen at 100,000
//! sockets over 6 nodes, `loadtest cluster`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use boardroom_actors::remote::{Entity, Place};
use dashmap::DashMap;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::storage::{Fence, LeaseKind, Store};

/// This node's leases.
#[derive(Debug)]
pub struct Leases {
    node_id: String,
    store: Store,
    ttl: Duration,
    /// Boards, by epoch; also what the store fences commits on.
    boards: Arc<Fence>,
    /// Organizations, by epoch.
    orgs: DashMap<Uuid, i64>,
    /// Entities another node held when last asked.
    owners: DashMap<Entity, (String, Instant)>,
    /// The lookup of an entity under way, which others for it wait for.
    lookups: DashMap<Entity, Weak<tokio::sync::Mutex<()>>>,
}

fn kind_and_id(entity: Entity) -> (LeaseKind, Uuid) {
    match entity {
        Entity::Board(id) => (LeaseKind::Board, id),
        Entity::Org(id) => (LeaseKind::Org, id),
    }
}

impl Leases {
    /// The leases of `node_id`, lasting `ttl`; `store`'s board commits are fenced on them from
    /// now on.
    pub fn new(store: Store, node_id: &str, ttl: Duration) -> Leases {
        let boards = Fence::new(node_id);
        store.fence_with(boards.clone());
        Leases {
            node_id: node_id.to_owned(),
            store,
            ttl,
            boards,
            orgs: DashMap::new(),
            owners: DashMap::new(),
            lookups: DashMap::new(),
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    fn held(&self, entity: Entity) -> Option<i64> {
        match entity {
            Entity::Board(id) => self.boards.boards.get(&id).map(|e| *e),
            Entity::Org(id) => self.orgs.get(&id).map(|e| *e),
        }
    }

    /// Where `entity`'s actor runs (see [`boardroom_actors::remote::Placement::place`]).
    pub async fn place(&self, entity: Entity) -> Result<Place, String> {
        if let Some(owner) = self.remembered(entity) {
            return Ok(Place::At(owner));
        }
        let turn = self.lookup_turn(entity);
        let _turn = turn.lock().await;
        // Whoever held the turn before may have just learnt the answer.
        if let Some(owner) = self.remembered(entity) {
            return Ok(Place::At(owner));
        }
        let (kind, id) = kind_and_id(entity);
        let (holder, epoch) = self
            .store
            .lease_place(kind, id, &self.node_id, self.ttl_ms())
            .await
            .map_err(|e| format!("placing {entity:?} failed: {e}"))?;
        if holder != self.node_id {
            self.owners.insert(entity, (holder.clone(), Instant::now()));
            return Ok(Place::At(holder));
        }
        self.owners.remove(&entity);
        match entity {
            Entity::Board(id) => self.boards.boards.insert(id, epoch),
            Entity::Org(id) => self.orgs.insert(id, epoch),
        };
        Ok(Place::Here { epoch })
    }

    fn remembered(&self, entity: Entity) -> Option<String> {
        let owner = self.owners.get(&entity)?;
        (owner.1.elapsed() < self.ttl).then(|| owner.0.clone())
    }

    fn lookup_turn(&self, entity: Entity) -> Arc<tokio::sync::Mutex<()>> {
        if self.lookups.len() > 4096 {
            self.lookups.retain(|_, turn| turn.strong_count() > 0);
        }
        let mut entry = self.lookups.entry(entity).or_default();
        if let Some(turn) = entry.upgrade() {
            return turn;
        }
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        *entry = Arc::downgrade(&turn);
        turn
    }

    /// This node's actor of `entity` under `epoch` stopped: the lease is given up, unless a
    /// newer one was taken meanwhile.
    pub fn stopped(&self, entity: Entity, epoch: i64) {
        let removed = match entity {
            Entity::Board(id) => self.boards.boards.remove_if(&id, |_, e| *e == epoch).is_some(),
            Entity::Org(id) => self.orgs.remove_if(&id, |_, e| *e == epoch).is_some(),
        };
        if !removed {
            return;
        }
        let (store, node_id) = (self.store.clone(), self.node_id.clone());
        let (kind, id) = kind_and_id(entity);
        tokio::spawn(async move {
            if let Err(err) = store.lease_release(kind, id, &node_id, epoch).await {
                // It lapses by itself after its TTL.
                tracing::warn!(?entity, error = %err, "giving up a lease failed");
            }
        });
    }

    /// Forgets what was remembered of `entity`'s holder (it refused a call or did not answer).
    pub fn forget_owner(&self, entity: Entity) {
        self.owners.remove(&entity);
    }

    /// How many leases this node holds (boards, organizations).
    pub fn counts(&self) -> (usize, usize) {
        (self.boards.boards.len(), self.orgs.len())
    }

    /// Renews every held lease each third of the TTL; `lost` is told of each one that could
    /// not be renewed, after it was dropped here (its actor must stop).
    pub fn spawn_renewal(
        self: Arc<Self>,
        lost: Arc<dyn Fn(Entity) + Send + Sync>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(self.ttl / 3);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                for kind in [LeaseKind::Board, LeaseKind::Org] {
                    self.renew(kind, &lost).await;
                }
            }
        })
    }

    async fn renew(&self, kind: LeaseKind, lost: &Arc<dyn Fn(Entity) + Send + Sync>) {
        let held: Vec<(Uuid, i64)> = match kind {
            LeaseKind::Board => self.boards.boards.iter().map(|e| (*e.key(), *e.value())).collect(),
            LeaseKind::Org => self.orgs.iter().map(|e| (*e.key(), *e.value())).collect(),
        };
        if held.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = held.iter().map(|(id, _)| *id).collect();
        let renewed = match self.store.lease_renew(kind, &ids, &self.node_id, self.ttl_ms()).await {
            Ok(renewed) => renewed,
            Err(err) => {
                // Tried again next tick; past the TTL the fence refuses commits anyway.
                tracing::warn!(kind = kind.as_str(), error = %err, "renewing leases failed");
                return;
            }
        };
        let renewed: std::collections::HashMap<Uuid, i64> = renewed.into_iter().collect();
        for (id, epoch) in held {
            if renewed.get(&id) == Some(&epoch) {
                continue;
            }
            let entity = match kind {
                LeaseKind::Board => Entity::Board(id),
                LeaseKind::Org => Entity::Org(id),
            };
            // Unless a newer lease was taken here meanwhile (its actor restarted).
            if self.held(entity) == Some(epoch) {
                tracing::warn!(?entity, epoch, "a lease was lost; stopping its actor here");
                self.stopped(entity, epoch);
                lost(entity);
            }
        }
    }

    /// Gives up every lease of this node (a graceful stop, once its actors have stopped).
    pub async fn release_all(&self) {
        self.boards.boards.clear();
        self.orgs.clear();
        if let Err(err) = self.store.lease_release_all(&self.node_id).await {
            tracing::warn!(error = %err, "giving up this node's leases failed");
        }
    }
}
