//! The webhook actor: board events in, outbox rows and delivery attempts out.
//!
//! The actor listens on the [`EventBus`]. For each committed event it asks the
//! [`WebhookBackend`] to fill the durable outbox for that board's webhooks *from
//! `board_events`*, not from the bus message: each webhook remembers the last `seq` it enqueued,
//! so the bus only says "look now". At start (including a restart after a crash) and whenever
//! the listener lags behind the bus, it catches up every webhook the same way, so no event is
//! lost; the outbox is unique on (webhook, seq), so catching up twice enqueues nothing twice.
//!
//! Delivery is the backend's job (signing, the SSRF guard, retries and their schedule live in
//! the server crate); the actor decides *when*: on every tick and after every enqueue or finished
//! attempt it asks for the due head of each webhook's queue and runs one attempt per webhook at
//! a time, different webhooks concurrently. A webhook's later events wait behind its head, so
//! each receiver sees its events in `seq` order. When an attempt disables a webhook (too many
//! consecutive failures), the actor writes the `webhook.disabled` audit row.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{broadcast, Semaphore};
use uuid::Uuid;

use crate::audit::{AuditAction, AuditEvent, AuditLog};
use crate::event_bus::EventBus;

/// Most delivery attempts in flight at once, across all webhooks.
pub const MAX_IN_FLIGHT: u32 = 32;

/// How long a shutdown waits for attempts in flight before it gives up on them (they stay
/// pending in the outbox and are retried after the restart).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The head of one webhook's queue, due for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// The delivery (outbox row).
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its webhook.
    pub webhook_id: Uuid,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed and will be retried later.
    Retrying,
    /// It failed for good (a final answer, or the retry window is over).
    Failed,
    /// It failed, and that disabled the webhook.
    WebhookDisabled {
        /// The board the webhook is on.
        board_id: Uuid,
        /// Consecutive failures that crossed the threshold.
        consecutive_failures: i64,
    },
}

/// The outbox and the deliverer. Implemented by the server crate.
#[async_trait::async_trait]
pub trait WebhookBackend: Send + Sync + 'static {
    /// Fills the outbox of the enabled webhooks of `board` up to the board's last event.
    /// Returns how many deliveries were added.
    async fn enqueue_board(&self, org: Uuid, board: Uuid) -> anyhow::Result<u64>;
    /// Fills the outbox of every enabled webhook that is behind its board's log.
    async fn enqueue_all(&self) -> anyhow::Result<u64>;
    /// The due heads of the enabled webhooks' queues, oldest due first, at most `limit`.
    async fn due(&self, limit: u32) -> anyhow::Result<Vec<DueDelivery>>;
    /// Makes one attempt at `delivery` and records its result.
    async fn attempt(&self, delivery: &DueDelivery) -> anyhow::Result<AttemptOutcome>;
    /// Removes finished deliveries past retention; returns how many went.
    async fn prune(&self) -> anyhow::Result<u64>;
}

/// Changed boards looked at one by one (a query each); past this many, one catch-up query over
/// every webhook that is behind replaces them.
pub const LOOK_BOARD_BY_BOARD: usize = 8;

/// How often finished deliveries past retention are removed.
pub const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// What the webhook actor is started with.
#[derive(Clone)]
pub struct WebhookArgs {
    /// The outbox and deliverer.
    pub backend: Arc<dyn WebhookBackend>,
    /// The bus the boards publish on.
    pub bus: EventBus,
    /// Where `webhook.disabled` rows go.
    pub audit: AuditLog,
    /// How often due retries are looked for.
    pub poll_interval: Duration,
}

/// Messages of the webhook actor.
pub enum WebhookMessage {
    /// Boards committed events (they are in the changed set): fill their webhooks' outbox,
    /// then dispatch.
    BoardsChanged,
    /// The listener missed events (or the actor just started): catch every webhook up.
    CatchUp,
    /// Look for due deliveries.
    Dispatch,
    /// An attempt for this webhook finished.
    Finished(Uuid),
    /// Stop dispatching, wait for attempts in flight, then answer.
    Drain(RpcReplyPort<bool>),
    /// Remove finished deliveries past retention.
    Prune,
}

/// The webhook actor.
pub struct WebhookActor;

/// State of the webhook actor.
pub struct WebhookState {
    args: WebhookArgs,
    busy: HashSet<Uuid>,
    slots: Arc<Semaphore>,
    listener: tokio::task::JoinHandle<()>,
    changed: Changed,
    draining: bool,
}

/// Boards (organization, board) with events the actor has not looked at yet. One look covers
/// every event of a board up to then, so a busy board costs one query per look, not one per
/// event, however far the actor is behind.
type Changed = Arc<Mutex<HashSet<(Uuid, Uuid)>>>;

fn take_changed(changed: &Changed) -> HashSet<(Uuid, Uuid)> {
    std::mem::take(&mut *changed.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Forwards bus events to the actor until it stops: adds the board to the changed set, and
/// pokes the actor only when the set was empty (one poke is outstanding at a time).
fn listen(
    myself: ActorRef<WebhookMessage>,
    mut rx: broadcast::Receiver<Arc<crate::domain::BoardEvent>>,
    changed: Changed,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let message = match rx.recv().await {
                Ok(event) => {
                    let mut set = changed.lock().unwrap_or_else(|p| p.into_inner());
                    let first = set.is_empty();
                    set.insert((event.organization_id, event.board_id));
                    drop(set);
                    if !first {
                        continue;
                    }
                    WebhookMessage::BoardsChanged
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "webhook listener lagged; catching up from board_events"
                    );
                    WebhookMessage::CatchUp
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if myself.cast(message).is_err() {
                return;
            }
        }
    })
}

impl Actor for WebhookActor {
    type Msg = WebhookMessage;
    type State = WebhookState;
    type Arguments = WebhookArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Subscribe before catching up, so nothing committed in between is missed.
        let changed = Changed::default();
        let listener = listen(myself.clone(), args.bus.subscribe(), changed.clone());
        myself.send_interval(args.poll_interval, || WebhookMessage::Dispatch);
        myself.send_interval(PRUNE_EVERY, || WebhookMessage::Prune);
        let _ = myself.cast(WebhookMessage::CatchUp);
        Ok(WebhookState {
            args,
            busy: HashSet::new(),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
            listener,
            changed,
            draining: false,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WebhookMessage::BoardsChanged => {
                let changed = take_changed(&state.changed);
                if changed.len() > LOOK_BOARD_BY_BOARD {
                    // Many boards at once: one query finds the few with webhooks behind.
                    let _ = myself.cast(WebhookMessage::CatchUp);
                    return Ok(());
                }
                let mut added = 0;
                for (org, board) in changed {
                    match state.args.backend.enqueue_board(org, board).await {
                        Ok(n) => added += n,
                        Err(err) => {
                            // The next catch-up (tick or restart) fills the gap from board_events.
                            tracing::error!(error = ?err, %board, "enqueueing webhook deliveries failed");
                            let _ = myself.cast(WebhookMessage::CatchUp);
                        }
                    }
                }
                if added > 0 {
                    state.dispatch(&myself).await;
                }
            }
            WebhookMessage::CatchUp => {
                if let Err(err) = state.args.backend.enqueue_all().await {
                    tracing::error!(error = ?err, "webhook catch-up failed; will retry");
                    myself.send_after(Duration::from_secs(1), || WebhookMessage::CatchUp);
                }
                state.dispatch(&myself).await;
            }
            WebhookMessage::Dispatch => state.dispatch(&myself).await,
            WebhookMessage::Finished(webhook) => {
                state.busy.remove(&webhook);
                state.dispatch(&myself).await;
            }
            WebhookMessage::Prune => match state.args.backend.prune().await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "pruned finished webhook deliveries"),
                Err(err) => tracing::error!(error = ?err, "pruning webhook deliveries failed"),
            },
            WebhookMessage::Drain(reply) => {
                state.draining = true;
                let all = state.slots.clone().acquire_many_owned(MAX_IN_FLIGHT);
                let drained = matches!(tokio::time::timeout(DRAIN_TIMEOUT, all).await, Ok(Ok(_)));
                let _ = reply.send(drained);
            }
        }
        Ok(())
    }
}

impl WebhookState {
    /// Starts an attempt for each due head whose webhook has none in flight.
    async fn dispatch(&mut self, myself: &ActorRef<WebhookMessage>) {
        if self.draining {
            return;
        }
        let due = match self.args.backend.due(MAX_IN_FLIGHT * 2).await {
            Ok(due) => due,
            Err(err) => {
                tracing::error!(error = ?err, "reading due webhook deliveries failed");
                return;
            }
        };
        for delivery in due {
            if self.busy.contains(&delivery.webhook_id) {
                continue;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else { break };
            self.busy.insert(delivery.webhook_id);
            let backend = self.args.backend.clone();
            let audit = self.args.audit.clone();
            let myself = myself.clone();
            tokio::spawn(async move {
                match backend.attempt(&delivery).await {
                    Ok(AttemptOutcome::WebhookDisabled { board_id, consecutive_failures }) => {
                        let mut event = AuditEvent::new(AuditAction::WebhookDisabled);
                        event.organization_id = Some(delivery.organization_id);
                        event.target = Some(delivery.webhook_id.to_string());
                        event.metadata = serde_json::json!({
                            "board_id": board_id,
                            "consecutive_failures": consecutive_failures,
                            "reason": "consecutive_failures",
                        });
                        audit.record(event);
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::error!(error = ?err, delivery = %delivery.id, "webhook attempt failed to run");
                    }
                }
                drop(permit);
                let _ = myself.cast(WebhookMessage::Finished(delivery.webhook_id));
            });
        }
    }
}

/// A handle on the webhook actor. Cheap to clone; survives restarts of the actor.
#[derive(Clone)]
pub struct Webhooks {
    current: Arc<RwLock<Option<ActorRef<WebhookMessage>>>>,
}

impl Webhooks {
    pub(crate) fn new(actor: Option<ActorRef<WebhookMessage>>) -> Self {
        Webhooks { current: Arc::new(RwLock::new(actor)) }
    }

    pub(crate) fn replace(&self, actor: ActorRef<WebhookMessage>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(actor);
    }

    pub(crate) fn is(&self, cell: &ractor::ActorCell) -> bool {
        self.actor().is_some_and(|a| a.get_id() == cell.get_id())
    }

    fn actor(&self) -> Option<ActorRef<WebhookMessage>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks for a look at due deliveries now (after a redelivery or a re-enable).
    pub fn poke(&self) {
        if let Some(actor) = self.actor() {
            let _ = actor.cast(WebhookMessage::Dispatch);
        }
    }

    /// Stops dispatching and waits for attempts in flight. Returns whether they all finished.
    pub async fn drain(&self) -> bool {
        let Some(actor) = self.actor() else { return true };
        let timeout = DRAIN_TIMEOUT + Duration::from_secs(1);
        ractor::call_t!(actor, WebhookMessage::Drain, timeout.as_millis() as u64).unwrap_or(false)
    }
}
