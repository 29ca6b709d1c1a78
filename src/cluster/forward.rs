//! Calls between nodes: a call for a board or organization whose actor runs on another node is
//! sent to that node over NATS and answered as if it had run here.
//!
//! **Sending** ([`Forwarder::send`]): the call is published to `….node.<owner>.rpc` with a reply
//! subject of this node's own (`….node.<me>.reply.<n>`), which one subscription per node
//! listens on; publishing before `send` returns keeps calls handed over in order in order on
//! the wire, so a socket's pipelined writes stay pipelined. A call with no node listening is
//! answered at once by NATS (no responders), and one unanswered after [`CALL_TIMEOUT`] fails;
//! either way the caller answers `503`, since the call may or may not have run.
//!
//! **Serving** ([`serve`]): calls for one entity are handled in arrival order (a fixed set of
//! ordered lanes, an entity always in the same one), each a local call through the registry's
//! `*_here` method, which refuses ([`Reply::Moved`]) when this node does not hold the entity's
//! lease rather than forwarding again. A board command only waits in its lane until it is handed
//! to the actor; its commit's answer is sent when it comes, so forwarded commands share group
//! commits like local ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boardroom_actors::boards::Boards;
use boardroom_actors::org::Orgs;
use boardroom_actors::remote::{Call, Entity, Pending, Reply};
use dashmap::DashMap;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{decode, Cluster};

/// How long a forwarded call may wait for its answer (as long as a local one).
pub const CALL_TIMEOUT: Duration = boardroom_actors::boards::CALL_TIMEOUT;

/// Ordered lanes a node serves forwarded calls in.
const LANES: usize = 64;

/// Calls this node sent, waiting for their answers.
#[derive(Debug, Default)]
pub struct Forwarder {
    next: AtomicU64,
    waiting: DashMap<u64, Waiting>,
}

#[derive(Debug)]
struct Waiting {
    node: String,
    entity: Entity,
    since: Instant,
    answer: oneshot::Sender<Result<Reply, String>>,
}

impl Forwarder {
    /// Sends `call` to `node` through `cluster`; the answer arrives on the receiver.
    pub async fn send(&self, cluster: &Cluster, node: &str, call: Call) -> Result<Pending, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (answer, pending) = oneshot::channel();
        let entity = call.entity();
        let since = Instant::now();
        self.waiting.insert(id, Waiting { node: node.to_owned(), entity, since, answer });
        let subject = cluster.subject(&format!("node.{node}.rpc"));
        let reply = cluster.subject(&format!("node.{}.reply.{id}", cluster.node_id()));
        let sent = cluster.nats().publish_with_reply(subject, reply, cluster.encode(&call)).await;
        if let Err(err) = sent {
            self.waiting.remove(&id);
            cluster.leases().forget_owner(entity);
            return Err(format!("sending to node {node} failed: {err}"));
        }
        Ok(pending)
    }

    /// Answers the call `id` with `answer`.
    fn answer(&self, cluster: &Cluster, id: u64, answer: Result<Reply, String>) {
        let Some((_, waiting)) = self.waiting.remove(&id) else { return };
        if !matches!(answer, Ok(Reply::BoardCommand(_) | Reply::BoardRead(_) | Reply::Org(_))) {
            cluster.leases().forget_owner(waiting.entity);
        }
        let _ = waiting.answer.send(answer);
    }

    /// Fails the calls waiting longer than [`CALL_TIMEOUT`]; and those waiting on a node that
    /// is gone, as soon as that is known: calls taking more than [`ASK_ALIVE_AFTER`] make this
    /// node ask theirs whether it is still there, and NATS answers at once that nobody listens
    /// for a dead node (a call in flight when its node was killed would otherwise wait out the
    /// whole timeout).
    async fn expire(&self, cluster: &Cluster) {
        let late: Vec<u64> = self
            .waiting
            .iter()
            .filter(|w| w.since.elapsed() >= CALL_TIMEOUT)
            .map(|w| *w.key())
            .collect();
        for id in late {
            self.answer(cluster, id, Err("no answer in time".into()));
        }
        let mut slow: Vec<String> = self
            .waiting
            .iter()
            .filter(|w| w.since.elapsed() >= ASK_ALIVE_AFTER)
            .map(|w| w.node.clone())
            .collect();
        slow.sort_unstable();
        slow.dedup();
        for node in slow {
            let asked =
                cluster.nats().request(cluster.subject(&format!("node.{node}.alive")), "".into());
            let gone = matches!(
                tokio::time::timeout(Duration::from_secs(1), asked).await,
                Ok(Err(err)) if err.kind() == async_nats::RequestErrorKind::NoResponders
            );
            if gone {
                let theirs: Vec<u64> =
                    self.waiting.iter().filter(|w| w.node == node).map(|w| *w.key()).collect();
                for id in theirs {
                    self.answer(cluster, id, Err(format!("node {node} is gone")));
                }
            }
        }
    }
}

/// How long a forwarded call waits before this node checks that its node is still there.
const ASK_ALIVE_AFTER: Duration = Duration::from_secs(1);

/// Listens for the answers to this node's calls, and expires those that get none.
pub async fn listen_for_answers(cluster: Arc<Cluster>) -> anyhow::Result<JoinHandle<()>> {
    let prefix = cluster.subject(&format!("node.{}.reply.", cluster.node_id()));
    let mut answers = cluster.nats().subscribe(format!("{prefix}*")).await?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                message = answers.next() => {
                    let Some(message) = message else { return };
                    let Some(id) = message
                        .subject
                        .strip_prefix(prefix.as_str())
                        .and_then(|id| id.parse::<u64>().ok())
                    else {
                        continue;
                    };
                    let answer = if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                        Err("no node is serving that node's calls".into())
                    } else {
                        decode::<Reply>(&message.payload)
                            .map(|envelope| envelope.body)
                            .ok_or_else(|| "the answer did not decode".to_owned())
                    };
                    cluster.forwarder().answer(&cluster, id, answer);
                }
                _ = tick.tick() => cluster.forwarder().expire(&cluster).await,
            }
        }
    }))
}

/// A call to serve, and where its answer goes.
struct Served {
    call: Call,
    reply_to: async_nats::Subject,
}

/// Serves the calls other nodes send this one, through `boards` and `orgs`.
pub async fn serve(
    cluster: Arc<Cluster>,
    boards: Arc<Boards>,
    orgs: Arc<Orgs>,
) -> anyhow::Result<JoinHandle<()>> {
    let subject = cluster.subject(&format!("node.{}.rpc", cluster.node_id()));
    let mut calls = cluster.nats().subscribe(subject).await?;
    let alive = cluster.subject(&format!("node.{}.alive", cluster.node_id()));
    let mut asked = cluster.nats().subscribe(alive).await?;
    let lanes: Vec<mpsc::UnboundedSender<Served>> = (0..LANES)
        .map(|_| {
            let (lane, queue) = mpsc::unbounded_channel();
            tokio::spawn(run_lane(cluster.clone(), boards.clone(), orgs.clone(), queue));
            lane
        })
        .collect();
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                message = calls.next() => message,
                question = asked.next() => {
                    // "Are you there?" from a node waiting on one of its calls to this one.
                    if let Some(reply) = question.and_then(|q| q.reply) {
                        let _ = cluster.nats().publish(reply, "".into()).await;
                    }
                    continue;
                }
            };
            let Some(message) = message else { return };
            let Some(reply_to) = message.reply.clone() else { continue };
            let Some(envelope) = decode::<Call>(&message.payload) else {
                tracing::warn!(from = ?message.reply, "a forwarded call did not decode");
                continue;
            };
            let call = envelope.body;
            let lane = lane_of(call.entity());
            let _ = lanes[lane].send(Served { call, reply_to });
        }
    }))
}

fn lane_of(entity: Entity) -> usize {
    let id = match entity {
        Entity::Board(id) | Entity::Org(id) => id,
    };
    (id.as_u128() % LANES as u128) as usize
}

async fn run_lane(
    cluster: Arc<Cluster>,
    boards: Arc<Boards>,
    orgs: Arc<Orgs>,
    mut queue: mpsc::UnboundedReceiver<Served>,
) {
    let (replies, mut to_send) =
        mpsc::unbounded_channel::<futures::future::BoxFuture<'static, ()>>();
    tokio::spawn(async move {
        while let Some(reply) = to_send.recv().await {
            reply.await;
        }
    });
    while let Some(Served { call, reply_to }) = queue.recv().await {
        let answer = {
            let cluster = cluster.clone();
            move |reply: Reply| async move {
                if let Err(err) = cluster.nats().publish(reply_to, cluster.encode(&reply)).await {
                    tracing::warn!(error = %err, "answering a forwarded call failed");
                }
            }
        };
        match call {
            Call::BoardCommand { org, board, requester, command, idempotency_key } => {
                // Waits here only until handed to the actor: the lane's next command follows it
                // into the same batch.
                match boards.submit_here(org, board, requester, command, idempotency_key).await {
                    Err(_moved) => answer(Reply::Moved).await,
                    Ok(Err(refused)) => answer(Reply::BoardCommand(Err(refused))).await,
                    // Answered in the order handed over, as the actor answers them.
                    Ok(Ok(committing)) => {
                        let _ = replies.send(Box::pin(async move {
                            answer(Reply::BoardCommand(committing.wait().await)).await;
                        }));
                    }
                }
            }
            Call::BoardRead { org, board, requester, query } => {
                let boards = boards.clone();
                tokio::spawn(async move {
                    let reply = match boards.read_here(org, board, requester, query).await {
                        Err(_moved) => Reply::Moved,
                        Ok(result) => Reply::BoardRead(result),
                    };
                    answer(reply).await;
                });
            }
            Call::Org { org, call } => {
                let orgs = orgs.clone();
                tokio::spawn(async move {
                    let reply = match orgs.call_here(org, call).await {
                        Err(_moved) => Reply::Moved,
                        Ok(result) => Reply::Org(result),
                    };
                    answer(reply).await;
                });
            }
        }
    }
}
