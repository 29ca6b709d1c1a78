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
//!
//! A webhook sees no more than its creator may ([`may_own`]: the board's owner role, and for a
//! key `boards:write` plus every scope the subscribed kinds need, by the rule sockets and
//! `GET /events` filter with, `Requester::may_see`). The edge applies the rule when a webhook is
//! created or changed. The actor applies it again whenever the creator's access may have
//! shrunk: told by the org registry (removal, role change), by the API-key edge (revoke,
//! re-scope), and by the bus (a board's `member.removed` / `member.role_changed`); and, as the
//! backstop that a missed hook cannot get past, before every delivery attempt. A webhook whose
//! creator no longer qualifies is disabled, with a `webhook.disabled` audit row naming why.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort};
use tokio::sync::{broadcast, Semaphore};
use uuid::Uuid;

use boardroom_protocol::Scope;

use crate::audit::{AuditAction, AuditEvent, AuditLog};
use crate::board::Requester;
use crate::boards::Boards;
use crate::domain::{BoardError, BoardRole, EventKind};
use crate::event_bus::EventBus;
use crate::org::Orgs;

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
    /// Its webhook, as the access rule sees it.
    pub webhook: WebhookGrant,
}

/// A webhook as its access rule sees it: whose access its deliveries ride on, and what it
/// subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookGrant {
    /// The webhook.
    pub id: Uuid,
    /// Its organization.
    pub organization_id: Uuid,
    /// Its board.
    pub board_id: Uuid,
    /// The user who created it, or last set its URL or kinds or enabled it; `None` when nobody
    /// is known (the user was deleted), which no longer qualifies.
    pub creator: Option<Uuid>,
    /// The API key they did it with; `None` for a session.
    pub creator_key: Option<Uuid>,
    /// Dotted event kinds, or `*`.
    pub events: Vec<String>,
}

/// Which webhooks to re-check after their creators' access may have shrunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affected {
    /// Those of a board (someone's board role changed or ended).
    Board {
        /// Organization.
        org: Uuid,
        /// Board.
        board: Uuid,
    },
    /// Those a user created in an organization (their org role changed or ended).
    User {
        /// Organization.
        org: Uuid,
        /// User.
        user: Uuid,
    },
    /// Those created with an API key (revoked or re-scoped).
    Key {
        /// Organization.
        org: Uuid,
        /// Key.
        key: Uuid,
    },
}

/// The first scope `requester` lacks to receive every event kind of `events` (`*` is every
/// kind), by the rule sockets and `GET /events` filter with ([`Requester::lacks_to_see`]).
pub fn scope_lacking(requester: &Requester, events: &[String]) -> Option<Scope> {
    events.iter().find_map(|kind| match kind.as_str() {
        "*" => EventKind::ALL.iter().find_map(|k| requester.lacks_to_see(k.as_str())),
        kind => requester.lacks_to_see(kind),
    })
}

/// Whether `requester` may own a webhook of `board` subscribed to `events`: the board's owner
/// role (org admins act as owners), `boards:write` for a key, and every subscribed kind visible
/// to them. `Forbidden`, `NotFound` or `MissingScope` when not; `Unavailable` when unknown.
pub async fn may_own(
    boards: &Boards,
    org: Uuid,
    board: Uuid,
    requester: &Requester,
    events: &[String],
) -> Result<(), BoardError> {
    let role = boards.access(org, board, requester.clone(), Scope::BoardsWrite).await?;
    if role != BoardRole::Owner {
        return Err(BoardError::Forbidden("owner"));
    }
    match scope_lacking(requester, events) {
        Some(scope) => Err(BoardError::MissingScope(scope.as_str())),
        None => Ok(()),
    }
}

/// Where a webhook's creator stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// They may still own it.
    Keeps,
    /// They no longer may; the reason, for the audit row.
    Lost(&'static str),
    /// It could not be told now (an actor or the store did not answer); ask again later.
    Unknown,
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
    /// The enabled webhooks `affected` names.
    async fn grants(&self, affected: Affected) -> anyhow::Result<Vec<WebhookGrant>>;
    /// The scopes of `user`'s API key `key` in `org`; `None` when it is revoked, expired, gone
    /// or not theirs.
    async fn key_scopes(
        &self,
        org: Uuid,
        user: Uuid,
        key: Uuid,
    ) -> anyhow::Result<Option<Vec<Scope>>>;
    /// Disables an enabled webhook because its creator no longer qualifies (`reason`); returns
    /// whether this call disabled it.
    async fn disable_for_access(
        &self,
        org: Uuid,
        webhook: Uuid,
        reason: &'static str,
    ) -> anyhow::Result<bool>;
}

/// What judging a creator's standing needs. Cheap to clone.
#[derive(Clone)]
pub struct AccessCheck {
    /// The outbox (webhooks and keys).
    pub backend: Arc<dyn WebhookBackend>,
    /// Board roles.
    pub boards: Arc<Boards>,
    /// Org roles.
    pub orgs: Arc<Orgs>,
    /// Where `webhook.disabled` rows go.
    pub audit: AuditLog,
}

impl AccessCheck {
    /// Where the creator of `grant` stands now: a member of the organization, through a key
    /// still live (if one was used), who [`may_own`] the webhook.
    pub async fn standing(&self, grant: &WebhookGrant) -> Standing {
        let org = grant.organization_id;
        let Some(user) = grant.creator else { return Standing::Lost("creator_unknown") };
        let org_role = match self.orgs.role(org, user).await {
            Ok(Some(role)) => role,
            Ok(None) => return Standing::Lost("creator_left_organization"),
            Err(_) => return Standing::Unknown,
        };
        let scopes = match grant.creator_key {
            None => None,
            Some(key) => match self.backend.key_scopes(org, user, key).await {
                Ok(Some(scopes)) => Some(scopes),
                Ok(None) => return Standing::Lost("key_revoked_or_expired"),
                Err(err) => {
                    tracing::error!(error = ?err, webhook = %grant.id, "reading a webhook creator's key failed");
                    return Standing::Unknown;
                }
            },
        };
        let requester = Requester { user_id: user, org_role, scopes };
        match may_own(&self.boards, org, grant.board_id, &requester, &grant.events).await {
            Ok(()) => Standing::Keeps,
            Err(BoardError::NotFound(_)) => Standing::Lost("creator_lost_board"),
            Err(BoardError::Forbidden(_)) => Standing::Lost("creator_not_owner"),
            Err(BoardError::MissingScope(_)) => Standing::Lost("key_lacks_scope"),
            Err(_) => Standing::Unknown,
        }
    }

    /// Disables `grant`'s webhook for `reason` and writes the audit row (once, whoever else
    /// disables it at the same moment).
    pub async fn disable(&self, grant: &WebhookGrant, reason: &'static str) {
        match self.backend.disable_for_access(grant.organization_id, grant.id, reason).await {
            Ok(true) => {
                tracing::warn!(webhook = %grant.id, reason, "webhook disabled: its creator no longer has access");
                let mut event = AuditEvent::new(AuditAction::WebhookDisabled);
                event.organization_id = Some(grant.organization_id);
                event.target = Some(grant.id.to_string());
                event.metadata = serde_json::json!({
                    "board_id": grant.board_id,
                    "reason": reason,
                    "creator_id": grant.creator,
                    "creator_key_id": grant.creator_key,
                });
                self.audit.record(event);
            }
            Ok(false) => {}
            // Nothing is sent meanwhile: every attempt judges the creator first.
            Err(err) => {
                tracing::error!(error = ?err, webhook = %grant.id, "disabling a webhook failed")
            }
        }
    }

    /// Judges every enabled webhook `affected` names, disabling those whose creator lost access.
    pub async fn recheck(&self, affected: Affected) {
        let grants = match self.backend.grants(affected).await {
            Ok(grants) => grants,
            Err(err) => {
                // The attempts' own checks still stop every delivery the creator may not get.
                tracing::error!(error = ?err, ?affected, "reading webhooks to re-check failed");
                return;
            }
        };
        for grant in grants {
            if let Standing::Lost(reason) = self.standing(&grant).await {
                self.disable(&grant, reason).await;
            }
        }
    }
}

/// Changed boards looked at one by one (a query each); past this many, one catch-up query over
/// every webhook that is behind replaces them.
pub const LOOK_BOARD_BY_BOARD: usize = 8;

/// How long the actor lets a changed board's events gather before it looks. A hot board
/// commits a batch every millisecond or two, and each look is a query whether or not the board
/// has webhooks: looking at most this often cut Postgres's statements per hot-board update by
/// half (loadtest/README, "History"), for at most this much added delay before a delivery.
pub const LOOK_AFTER: Duration = Duration::from_millis(20);

/// How often every webhook is caught up from `board_events` regardless of hints: an event whose
/// hint never reached this node's bus (committed on a node of a cluster that died before its own
/// actor enqueued it) is enqueued within this long by any node.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(30);

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
    /// Board roles, to judge creators.
    pub boards: Arc<Boards>,
    /// Org roles, to judge creators.
    pub orgs: Arc<Orgs>,
    /// How often due retries are looked for.
    pub poll_interval: Duration,
}

impl WebhookArgs {
    fn access(&self) -> AccessCheck {
        AccessCheck {
            backend: self.backend.clone(),
            boards: self.boards.clone(),
            orgs: self.orgs.clone(),
            audit: self.audit.clone(),
        }
    }
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
    /// Judge the creators of these webhooks again; disable those who lost access.
    Recheck(Affected),
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
/// pokes the actor, [`LOOK_AFTER`] later, only when the set was empty (one poke is outstanding
/// at a time).
fn listen(
    myself: ActorRef<WebhookMessage>,
    mut rx: broadcast::Receiver<Arc<crate::domain::BoardEvent>>,
    changed: Changed,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let message = match rx.recv().await {
                Ok(event) => {
                    if matches!(
                        event.kind(),
                        EventKind::MemberRemoved | EventKind::MemberRoleChanged
                    ) {
                        // Someone's board access shrank: they may have created a webhook here.
                        let affected =
                            Affected::Board { org: event.organization_id, board: event.board_id };
                        if myself.cast(WebhookMessage::Recheck(affected)).is_err() {
                            return;
                        }
                    }
                    let mut set = changed.lock().unwrap_or_else(|p| p.into_inner());
                    let first = set.is_empty();
                    set.insert((event.organization_id, event.board_id));
                    drop(set);
                    if !first {
                        continue;
                    }
                    // An actor that failed is not stopped by `post_stop`, so its listener
                    // ends here (a cast would tell it; a delayed one cannot).
                    if matches!(myself.get_status(), ActorStatus::Stopping | ActorStatus::Stopped) {
                        return;
                    }
                    // The look waits a moment, so a busy board's commits share one look.
                    myself.send_after(LOOK_AFTER, || WebhookMessage::BoardsChanged);
                    continue;
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
        myself.send_interval(CATCH_UP_EVERY, || WebhookMessage::CatchUp);
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
            WebhookMessage::Recheck(affected) => {
                // Off the actor's loop: judging asks board and org actors, which may be loading.
                let access = state.args.access();
                tokio::spawn(async move { access.recheck(affected).await });
            }
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
            let webhook = delivery.webhook.id;
            if self.busy.contains(&webhook) {
                continue;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else { break };
            self.busy.insert(webhook);
            let backend = self.args.backend.clone();
            let audit = self.args.audit.clone();
            let access = self.args.access();
            let myself = myself.clone();
            tokio::spawn(async move {
                // The backstop: whatever hook was missed, nothing is sent that the creator may
                // not see now.
                match access.standing(&delivery.webhook).await {
                    Standing::Keeps => {}
                    Standing::Lost(reason) => {
                        access.disable(&delivery.webhook, reason).await;
                        drop(permit);
                        let _ = myself.cast(WebhookMessage::Finished(webhook));
                        return;
                    }
                    Standing::Unknown => {
                        // Look again shortly, not at once: what did not answer is likely busy.
                        drop(permit);
                        myself.send_after(Duration::from_secs(1), move || {
                            WebhookMessage::Finished(webhook)
                        });
                        return;
                    }
                }
                match backend.attempt(&delivery).await {
                    Ok(AttemptOutcome::WebhookDisabled { board_id, consecutive_failures }) => {
                        let mut event = AuditEvent::new(AuditAction::WebhookDisabled);
                        event.organization_id = Some(delivery.webhook.organization_id);
                        event.target = Some(webhook.to_string());
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
                let _ = myself.cast(WebhookMessage::Finished(webhook));
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

    /// Asks for the creators of the webhooks `affected` names to be judged again (their access
    /// may have shrunk); those who lost access have their webhooks disabled.
    pub fn recheck(&self, affected: Affected) {
        if let Some(actor) = self.actor() {
            let _ = actor.cast(WebhookMessage::Recheck(affected));
        }
    }

    /// Stops dispatching and waits for attempts in flight. Returns whether they all finished.
    pub async fn drain(&self) -> bool {
        let Some(actor) = self.actor() else { return true };
        let timeout = DRAIN_TIMEOUT + Duration::from_secs(1);
        ractor::call_t!(actor, WebhookMessage::Drain, timeout.as_millis() as u64).unwrap_or(false)
    }
}
