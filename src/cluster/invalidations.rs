//! Invalidations between nodes: what one node changed about credentials and access, made true on
//! every node within a second.
//!
//! The node where a change happens applies it to its own caches at once (`Auth::announce`) and
//! tells the listener (`auth::changes`), which publishes it on `<prefix>.invalidate` (with a
//! cluster) and makes this node's affected sockets re-check now. Every other node hears it, drops
//! what it made stale from its caches (`Auth::forget`) and re-checks its affected sockets. Messages
//! a node published itself come back to it and are skipped: it applied them already.
//!
//! What a socket re-checks:
//! - a session ended, all of a person's sessions (password change or reset, erasure), a key
//!   revoked or re-scoped, a superadmin grant or revoke: each of the person's sockets
//!   re-authenticates its credential (closing 4001 if it ended, ending subscriptions made under
//!   scopes it no longer has) and then its subscriptions' board access;
//! - a membership or role change in an organization: each of the person's sockets re-checks its
//!   subscriptions' board access (an ended membership ends them), as the periodic re-check would.
//!
//! Core NATS, not JetStream: an invalidation matters only to caches and sockets alive now, and
//! a node that misses one (NATS down, a reconnect) is bounded by its caches' lifetimes instead,
//! as a single node is for changes made elsewhere: a session is read again after 30 s
//! (`SESSION_CACHE_TTL`), a key's row after `BOARDROOM_KEY_CACHE_TTL_SECS` (at most 30 s), and a
//! socket re-checks its credential every `BOARDROOM_WS_AUTH_RECHECK_SECS`.

use std::sync::Arc;
use std::time::Duration;

use boardroom_protocol::cluster::{Envelope, Invalidation};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use super::Cluster;
use crate::auth::changes::Notice;
use crate::state::AppState;

/// The subject invalidations travel on, under the cluster's prefix.
pub const SUBJECT: &str = "invalidate";

/// How long start-up waits for NATS to confirm the subscription, and a flush for NATS to take
/// what was published (with NATS away, neither may hold up a start or a stop).
const NATS_PATIENCE: Duration = Duration::from_secs(2);

/// How long to wait before subscribing again after NATS refused or ended the subscription.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

type Heard = Box<dyn Stream<Item = Envelope<Invalidation>> + Send + Unpin>;

/// This node's end of the invalidations: what it changed, out; what others changed, in.
struct Listener {
    state: AppState,
    cluster: Option<Arc<Cluster>>,
}

/// Starts listening, for the life of the server (until its shutdown). Subscribed (when NATS
/// answers) before it returns, so a node hears every change made once it serves. `None` when a
/// listener already runs for this `state`.
pub async fn start(state: &AppState) -> Option<JoinHandle<()>> {
    let changes = state.auth().changes().listen()?;
    let listener = Listener { state: state.clone(), cluster: state.cluster().cloned() };
    let heard = listener.subscribe().await;
    Some(tokio::spawn(listener.run(changes, heard)))
}

impl Listener {
    async fn run(self, mut changes: UnboundedReceiver<Notice>, mut heard: Option<Heard>) {
        let mut shutdown = self.state.ws().shutdown_signal();
        let mut resubscribe = tokio::time::interval(RESUBSCRIBE_AFTER);
        resubscribe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notice = changes.recv() => match notice {
                    Some(notice) => self.told(notice).await,
                    None => break,
                },
                envelope = next(&mut heard), if heard.is_some() => match envelope {
                    Some(envelope) => self.heard(envelope),
                    None => {
                        tracing::warn!("the invalidations subscription ended; subscribing again");
                        heard = None;
                    }
                },
                _ = resubscribe.tick(), if heard.is_none() && self.cluster.is_some() => {
                    heard = self.subscribe().await;
                }
                () = stopped(&mut shutdown) => break,
            }
        }
        // What was changed up to the stop still reaches the other nodes.
        while let Ok(notice) = changes.try_recv() {
            self.told(notice).await;
        }
        self.flush().await;
    }

    /// Subscribes to the other nodes' invalidations (`None` without a cluster, or when NATS
    /// refused: retried every [`RESUBSCRIBE_AFTER`]).
    async fn subscribe(&self) -> Option<Heard> {
        let cluster = self.cluster.as_ref()?;
        match cluster.subscribe::<Invalidation>(cluster.subject(SUBJECT)).await {
            Ok(stream) => {
                // The server has the subscription once it has answered the flush's ping; with
                // NATS away the node starts all the same (the client subscribes on reconnect).
                let flushed = tokio::time::timeout(NATS_PATIENCE, cluster.nats().flush());
                if !matches!(flushed.await, Ok(Ok(()))) {
                    tracing::warn!("NATS has not confirmed the invalidations subscription yet");
                }
                Some(Box::new(stream))
            }
            Err(err) => {
                tracing::warn!(error = %err, "subscribing to invalidations failed; retrying");
                None
            }
        }
    }

    /// A change made on this node: this node's sockets, then out to the others (first the
    /// sockets: a publish waits while NATS is away and its buffer is full).
    async fn told(&self, notice: Notice) {
        match notice {
            Notice::Changed(change) => {
                recheck_sockets(&self.state, &change);
                if let Some(cluster) = &self.cluster {
                    cluster.publish(cluster.subject(SUBJECT), &change).await;
                }
            }
            Notice::Flush(done) => {
                self.flush().await;
                let _ = done.send(());
            }
        }
    }

    /// A change made on another node: this node's caches, then its sockets.
    fn heard(&self, envelope: Envelope<Invalidation>) {
        let own = self.cluster.as_ref().is_some_and(|c| c.node_id() == envelope.from);
        if own {
            return;
        }
        self.state.auth().forget(&envelope.body);
        recheck_sockets(&self.state, &envelope.body);
    }

    /// Waits (a while) until what was published has left for the NATS server.
    async fn flush(&self) {
        if let Some(cluster) = &self.cluster {
            flush(cluster).await;
        }
    }
}

async fn next(heard: &mut Option<Heard>) -> Option<Envelope<Invalidation>> {
    match heard {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Makes the sockets `change` concerns on this node re-check now.
fn recheck_sockets(state: &AppState, change: &Invalidation) {
    let gateway = state.ws();
    match *change {
        Invalidation::Session { user_id, .. }
        | Invalidation::UserSessions { user_id }
        | Invalidation::ApiKey { user_id, .. }
        | Invalidation::Superadmin { user_id } => gateway.recheck_credentials(user_id),
        Invalidation::OrgMember { user_id, .. } => gateway.recheck_user(user_id),
    }
}

/// Publishes `change` from a process that serves nothing (the CLI's `admin grant-superadmin`),
/// when `BOARDROOM_NATS_URL` names the cluster's NATS: the nodes drop what it made stale at once.
/// Without it, they see the change when their caches next read the database (30 s at most).
pub async fn publish_once(cluster: &Cluster, change: &Invalidation) {
    cluster.publish(cluster.subject(SUBJECT), change).await;
    flush(cluster).await;
}

/// Waits up to [`NATS_PATIENCE`] for what was published to leave for the NATS server.
async fn flush(cluster: &Cluster) {
    match tokio::time::timeout(NATS_PATIENCE, cluster.nats().flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "flushing invalidations to NATS failed"),
        Err(_) => tracing::warn!("NATS did not take the invalidations in time"),
    }
}

/// Resolves when the server shuts down.
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
