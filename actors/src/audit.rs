//! The audit actor: security events in, hash-chained rows out.
//!
//! Callers hand an [`AuditEvent`] to [`AuditLog::record`], which bounds it
//! ([`AuditEvent::sanitize`]) and never waits: the event is cast to the actor's mailbox. The actor
//! gathers what queued while it was writing and appends it in batches, each in one transaction,
//! through [`AuditStore`].
//!
//! No entry can silence the log. When the store refuses a batch as data (a constraint, a value
//! it cannot hold), the actor bisects it, writing halves and then single entries, until the
//! refused entry stands alone; that one is set aside in the store's dead-letter table and the
//! rest are written, in order, so the chain stays unbroken. When the store is down instead, the
//! queue is kept and retried every second, up to [`QUEUE_LIMIT`] entries; beyond that new
//! entries are dropped, logged and counted ([`AuditLog::dropped_total`]), never silently.
//!
//! The actor also seals checkpoints over the chain with the audit key
//! ([`crate::audit_chain`]): every [`CHECKPOINT_ROWS`] entries, every [`CHECKPOINT_EVERY`], at
//! start and when it stops. [`AuditLog::close`] stops it after everything queued is written or
//! set aside, which a graceful shutdown calls last.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::audit_chain::{AuditKey, Seal};
use crate::text;

macro_rules! audit_actions {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )+) => {
        /// What an audit row records. Names are stable: they are stored and filtered on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum AuditAction {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )+
        }

        impl AuditAction {
            /// Every action.
            pub const ALL: &'static [AuditAction] = &[ $( AuditAction::$variant, )+ ];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self { $( AuditAction::$variant => $name, )+ }
            }

            /// Parses a stored name.
            pub fn parse(name: &str) -> Option<AuditAction> {
                match name { $( $name => Some(AuditAction::$variant), )+ _ => None }
            }
        }
    };
}

audit_actions! {
    /// A user registered.
    Signup = "signup",
    /// A login succeeded.
    LoginSucceeded = "login.succeeded",
    /// A login failed (wrong password, unknown email, or rate limited).
    LoginFailed = "login.failed",
    /// A session was ended by its owner.
    Logout = "logout",
    /// A password was changed; the user's other sessions ended.
    PasswordChanged = "password.changed",
    /// A password change was refused: the current password was wrong, or too many were.
    PasswordChangeFailed = "password.change_failed",
    /// A session was revoked (by its owner, or on refresh-token reuse).
    SessionRevoked = "session.revoked",
    /// An API key was created.
    ApiKeyCreated = "api_key.created",
    /// An API key was changed (name, scopes or limit).
    ApiKeyUpdated = "api_key.updated",
    /// An API key was revoked.
    ApiKeyRevoked = "api_key.revoked",
    /// An organization was created.
    OrgCreated = "org.created",
    /// A member was added to an organization.
    MemberAdded = "member.added",
    /// A member's organization role changed.
    MemberRoleChanged = "member.role_changed",
    /// A member was removed from an organization.
    MemberRemoved = "member.removed",
    /// The superadmin flag was granted (from the CLI).
    SuperadminGranted = "superadmin.granted",
    /// The superadmin flag was revoked (from the CLI).
    SuperadminRevoked = "superadmin.revoked",
    /// A superadmin acted in an organization they are not an admin of.
    SuperadminBypass = "superadmin.bypass",
    /// Someone was given a role on a board.
    BoardMemberAdded = "board.member_added",
    /// Someone's role on a board changed.
    BoardMemberRoleChanged = "board.member_role_changed",
    /// Someone was taken off a board.
    BoardMemberRemoved = "board.member_removed",
    /// A board was deleted.
    BoardDeleted = "board.deleted",
    /// A webhook was disabled: after too many consecutive failed deliveries, or because its
    /// creator lost access to its board (`metadata.reason` says which).
    WebhookDisabled = "webhook.disabled",
    /// A webhook was created on a board.
    WebhookCreated = "webhook.created",
    /// A webhook was deleted.
    WebhookDeleted = "webhook.deleted",
    /// A webhook's signing secret was rotated.
    WebhookSecretRotated = "webhook.secret_rotated",
    /// A webhook's URL, kinds or enabled state changed (URLs as hosts only).
    WebhookUpdated = "webhook.updated",
    /// A Stripe event changed an organization's plan (`metadata`: from, to, event id).
    PlanChanged = "plan.changed",
    /// A Stripe event cancelled an organization's subscription.
    SubscriptionCancelled = "subscription.cancelled",
    /// `boardroom keys rotate` re-wrapped the attachments' data keys under a master key.
    MasterKeyRotated = "master_key.rotated",
    /// `boardroom keys retire` removed a master key no attachment used.
    MasterKeyRetired = "master_key.retired",
    /// A board was exported (`GET /boards/{board}/export`; `metadata`: board, format, items).
    BoardExported = "board.exported",
    /// Someone asked for an export of their data (`metadata`: export id, scope `personal`).
    DataExported = "data.exported",
    /// An admin asked for an export of a whole organization (`target`: the organization;
    /// `metadata`: export id, scope `organization`).
    OrgExported = "org.exported",
    /// An address was proved to be its account's: a verification link, or
    /// `boardroom admin verify-email` (`metadata.via`).
    EmailVerified = "email.verified",
    /// An account moved to a new address, once the new address was proved (`metadata`: from, to).
    EmailChanged = "email.changed",
    /// A password was set through a reset link: every session and access token of the account
    /// ended.
    PasswordReset = "password.reset",
    /// An organization admin invited an address (`metadata`: email, role, invitation id).
    InvitationCreated = "invitation.created",
    /// An organization admin withdrew an invitation.
    InvitationRevoked = "invitation.revoked",
    /// The invited person declined an invitation.
    InvitationDeclined = "invitation.declined",
    /// Someone asked for their account to be deleted (`metadata`: scheduled_for, proof).
    AccountDeletionRequested = "account.deletion_requested",
    /// A deletion request was refused: the password was wrong, a Google-only account's sign-in
    /// was not fresh, or it would leave an organization without an admin (`metadata.reason`).
    AccountDeletionRefused = "account.deletion_refused",
    /// The audit rows written before erasable rows existed were re-hashed over keyed
    /// commitments, and the checkpoints over them sealed again (at start; `metadata`: counts).
    AuditResealed = "audit.resealed",
    /// A pending account deletion was cancelled by its owner.
    AccountDeletionCancelled = "account.deletion_cancelled",
    /// An account was erased at the end of its grace period (`target`: the person's keyed
    /// pseudonym; `metadata`: what went).
    AccountDeleted = "account.deleted",
}

impl AuditEvent {
    /// The audit row a committed board event calls for, if it is security-relevant (access
    /// changes and deletions); other board events stay in the board's own log.
    pub fn from_board_event(event: &crate::domain::BoardEvent) -> Option<AuditEvent> {
        use crate::domain::{BoardRole, EventData};
        let (action, user, role, previous_role) = match &event.data {
            EventData::MemberSet { user_id, role, previous_role: None } => {
                (AuditAction::BoardMemberAdded, Some(*user_id), Some(*role), None)
            }
            EventData::MemberSet { user_id, role, previous_role: Some(previous) } => {
                (AuditAction::BoardMemberRoleChanged, Some(*user_id), Some(*role), Some(*previous))
            }
            EventData::MemberRemoved { user_id, previous_role } => {
                (AuditAction::BoardMemberRemoved, Some(*user_id), None, Some(*previous_role))
            }
            EventData::BoardDeleted => (AuditAction::BoardDeleted, None, None, None),
            _ => return None,
        };
        let mut audit = AuditEvent::new(action);
        audit.organization_id = Some(event.organization_id);
        audit.actor_id = event.actor;
        audit.target = Some(user.unwrap_or(event.board_id).to_string());
        audit.metadata = serde_json::json!({
            "board_id": event.board_id,
            "seq": event.seq,
            "role": role.map(BoardRole::as_str),
            "previous_role": previous_role.map(BoardRole::as_str),
        });
        audit.at = event.created_at;
        Some(audit)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One security event, as recorded by the edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// What happened.
    pub action: AuditAction,
    /// The organization it happened in, if any (signups and logins have none).
    pub organization_id: Option<Uuid>,
    /// Who did it, if known.
    pub actor_id: Option<Uuid>,
    /// What it was done to (a user id, key id, session id…), as text.
    pub target: Option<String>,
    /// The client IP.
    pub ip: Option<String>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// Whether a superadmin bypass allowed it.
    pub bypass: bool,
    /// Anything else worth keeping; never secrets.
    pub metadata: serde_json::Value,
    /// When it happened (microsecond precision).
    pub at: DateTime<Utc>,
}

impl AuditEvent {
    /// An event of `action` now, with every optional field empty.
    pub fn new(action: AuditAction) -> Self {
        let now = Utc::now();
        AuditEvent {
            action,
            organization_id: None,
            actor_id: None,
            target: None,
            ip: None,
            user_agent: None,
            bypass: false,
            metadata: serde_json::Value::Object(Default::default()),
            at: DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now),
        }
    }
}

/// Longest text an audit field or metadata string keeps, in characters; longer text is cut and
/// ends in `…`.
pub const MAX_TEXT_CHARS: usize = 256;

/// Metadata nesting kept below the top-level object; a container deeper down becomes `"…"`.
pub const MAX_METADATA_DEPTH: usize = 3;

/// Most metadata values one entry keeps, counted over every level; later ones are dropped.
pub const MAX_METADATA_VALUES: usize = 64;

/// Metadata keys holding an email address, recorded normalized (trimmed, lower-case) as the
/// account lookup normalizes them.
const EMAIL_KEYS: &[&str] = &["email"];

impl AuditEvent {
    /// Bounds the event for storage, so that no caller can put unbounded or unstorable raw input
    /// into the log: control characters (NUL included) and invisible formatting characters are
    /// removed from every text, each text is cut to [`MAX_TEXT_CHARS`], metadata becomes an
    /// object of bounded depth and size, and emails are normalized. Idempotent.
    pub fn sanitize(&mut self) {
        for text in [&mut self.target, &mut self.ip, &mut self.user_agent].into_iter().flatten() {
            *text = bounded_text(text);
        }
        let metadata = match std::mem::take(&mut self.metadata) {
            Value::Null => Value::Object(Map::new()),
            object @ Value::Object(_) => object,
            other => serde_json::json!({ "value": other }),
        };
        let mut budget = MAX_METADATA_VALUES;
        self.metadata = bounded_value(metadata, None, 0, &mut budget);
    }

    /// [`AuditEvent::sanitize`], by value.
    pub fn sanitized(mut self) -> Self {
        self.sanitize();
        self
    }
}

/// Characters no audit text keeps: controls, and the invisible ones that can disguise text
/// (zero-width, bidirectional overrides and isolates, BOM: [`text::is_invisible`]), and line
/// and paragraph separators.
fn unwanted(c: char) -> bool {
    c.is_control() || text::is_invisible(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

fn bounded_text(raw: &str) -> String {
    let mut clean: String = raw.chars().filter(|c| !unwanted(*c)).collect();
    if let Some((cut, _)) = clean.char_indices().nth(MAX_TEXT_CHARS) {
        clean.truncate(cut);
        clean.pop();
        clean.push('…');
    }
    clean
}

/// Takes one value from the metadata budget; false once it is spent.
fn spend(budget: &mut usize) -> bool {
    let left = *budget > 0;
    *budget = budget.saturating_sub(1);
    left
}

fn bounded_value(value: Value, key: Option<&str>, depth: usize, budget: &mut usize) -> Value {
    match value {
        Value::String(text) if key.is_some_and(|k| EMAIL_KEYS.contains(&k)) => {
            Value::String(bounded_text(&bounded_text(&text).trim().to_lowercase()))
        }
        Value::String(text) => Value::String(bounded_text(&text)),
        Value::Array(_) | Value::Object(_) if depth > MAX_METADATA_DEPTH => {
            Value::String("…".into())
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map_while(|item| {
                    spend(budget).then(|| bounded_value(item, None, depth + 1, budget))
                })
                .collect(),
        ),
        Value::Object(entries) => Value::Object(
            entries
                .into_iter()
                .map_while(|(key, value)| {
                    let key = bounded_text(&key);
                    spend(budget).then(|| {
                        let value = bounded_value(value, Some(&key), depth + 1, budget);
                        (key, value)
                    })
                })
                .collect(),
        ),
        scalar => scalar,
    }
}

/// Why the store did not append a batch.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The store refused the data itself (a constraint, a value it cannot hold): the same rows
    /// would be refused again. Carries the store's reason, which does not quote the rows.
    #[error("refused by the store: {0}")]
    Refused(String),
    /// The store is unreachable, or failed for a reason not tied to the rows: retry later.
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// Where the audit actor writes. Implemented by the server's storage.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends `events`, in order, to the chain in one transaction: all of them or none.
    async fn append(&self, events: &[AuditEvent]) -> Result<(), AppendError>;
    /// Keeps `event`, which the chain refused for `reason`, in the dead-letter table instead.
    async fn set_aside(&self, event: &AuditEvent, reason: &str) -> Result<(), AppendError>;
    /// Seals the chain's newest row as a checkpoint under `key`, after putting back `last` (the
    /// newest checkpoint this actor sealed) if it was deleted and its row was not purged.
    async fn checkpoint(&self, key: &AuditKey, last: Option<&Seal>)
        -> anyhow::Result<Checkpointed>;
    /// Removes rows older than `cutoff`, keeping the rest verifiable behind an anchor sealed
    /// with `key`; returns how many went.
    async fn purge_older_than(&self, cutoff: DateTime<Utc>, key: &AuditKey) -> anyhow::Result<u64>;
}

/// What [`AuditStore::checkpoint`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpointed {
    /// The new checkpoint; `None` when no row came since the newest one.
    pub sealed: Option<Seal>,
    /// Whether the last checkpoint this actor sealed had been deleted and was put back.
    pub restored: bool,
}

/// How long audit rows are kept.
pub const RETENTION: chrono::Duration = chrono::Duration::days(2 * 365);

/// How often the actor purges rows past [`RETENTION`].
pub const PURGE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// How often the actor seals a checkpoint (when rows came since the last one). Rows appended
/// by board commits, which bypass the actor, are sealed by this.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(5 * 60);

/// Entries the actor writes between checkpoints, at most.
pub const CHECKPOINT_ROWS: u64 = 1000;

/// Entries the actor queues while the store is down; beyond this, new entries are dropped
/// (logged and counted). An entry is bounded by [`AuditEvent::sanitize`], so this bounds memory.
pub const QUEUE_LIMIT: usize = 10_000;

/// Most entries appended in one transaction.
const MAX_BATCH: usize = 500;

/// How long the actor waits before retrying while the store is down.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Messages of the audit actor.
pub enum AuditMessage {
    /// Queue an event.
    Record(Box<AuditEvent>),
    /// Write what is queued.
    Commit,
    /// Write what is queued, then answer whether nothing is left queued.
    Flush(RpcReplyPort<bool>),
    /// Write what is queued, then seal a checkpoint; answers whether both succeeded.
    Checkpoint(Option<RpcReplyPort<bool>>),
    /// Remove rows past retention.
    Purge,
}

/// What the audit actor is started with; kept by the supervisor to restart it alike.
#[derive(Clone)]
pub struct AuditArgs {
    /// Where rows go.
    pub store: Arc<dyn AuditStore>,
    /// The key that seals checkpoints and purge anchors.
    pub key: Arc<AuditKey>,
    /// Counters shared with the [`AuditLog`] handle; they outlive restarts.
    pub counters: Arc<AuditCounters>,
    /// Entries queued at most while the store is down ([`QUEUE_LIMIT`] in production).
    pub queue_limit: usize,
}

impl AuditArgs {
    /// Arguments for an actor writing to `store`, sealing with `key`, with fresh counters.
    pub fn new(store: Arc<dyn AuditStore>, key: Arc<AuditKey>) -> Self {
        AuditArgs { store, key, counters: Arc::default(), queue_limit: QUEUE_LIMIT }
    }
}

/// What the audit log counts, for metrics.
#[derive(Debug, Default)]
pub struct AuditCounters {
    queued: AtomicU64,
    set_aside: AtomicU64,
    dropped: AtomicU64,
}

impl AuditCounters {
    fn settled(&self, n: usize) {
        let n = n as u64;
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| Some(q.saturating_sub(n)));
    }

    fn dropped(&self, n: usize) {
        self.settled(n);
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The audit actor.
pub struct AuditActor;

/// State of the audit actor.
pub struct AuditState {
    args: AuditArgs,
    pending: Vec<AuditEvent>,
    retrying: bool,
    /// Entries written since the last checkpoint.
    unsealed: u64,
    /// The newest checkpoint this actor sealed: someone deleting checkpoints to hide a rewrite
    /// would find it put back.
    last_sealed: Option<Seal>,
    /// Entries dropped since the queue last had room, while it is full.
    overflow: Option<u64>,
}

impl AuditState {
    /// Writes what is queued, in batches, setting aside what the store refuses. Returns whether
    /// nothing is left queued (false: the store is down).
    async fn write_pending(&mut self) -> bool {
        while !self.pending.is_empty() {
            let batch = self.pending.len().min(MAX_BATCH);
            let settled = self.write(0..batch).await;
            self.pending.drain(..settled);
            self.args.counters.settled(settled);
            if settled < batch {
                return false;
            }
        }
        if let Some(dropped) = self.overflow.take() {
            tracing::error!(
                dropped,
                "audit queue has room again; entries were dropped while it was full"
            );
        }
        true
    }

    /// Writes `pending[range]` in order. A batch the store refuses is split in halves until the
    /// refused entry stands alone, and that one is set aside: each append takes the chain's tail
    /// afresh, so what is written still links row to row. Returns how many leading entries are
    /// settled (written or set aside): all of them, unless the store is down.
    async fn write(&mut self, range: Range<usize>) -> usize {
        let mut settled = range.start;
        // Ranges still to write, the next one last.
        let mut todo = vec![range];
        while let Some(range) = todo.pop() {
            let events = &self.pending[range.clone()];
            match self.args.store.append(events).await {
                Ok(()) => {
                    self.unsealed += events.len() as u64;
                    settled = range.end;
                }
                Err(AppendError::Refused(_)) if events.len() > 1 => {
                    let middle = range.start + events.len() / 2;
                    todo.push(middle..range.end);
                    todo.push(range.start..middle);
                }
                Err(AppendError::Refused(reason)) => {
                    if !self.set_aside(range.start, &reason).await {
                        return settled;
                    }
                    settled = range.end;
                }
                Err(AppendError::Unavailable(err)) => {
                    tracing::error!(error = ?err, queued = self.pending.len(), "audit append failed; will retry");
                    return settled;
                }
            }
        }
        settled
    }

    /// Sets `pending[at]` aside. Returns false when the store is down (the entry stays queued).
    async fn set_aside(&self, at: usize, reason: &str) -> bool {
        let event = &self.pending[at];
        match self.args.store.set_aside(event, reason).await {
            Ok(()) => {
                // The reason is the store's message, which names the rule and not the row's
                // values; the entry itself (it may carry personal data) is in the table only.
                tracing::error!(action = %event.action, reason, "the audit store refused an entry; set aside in audit_dead_letters");
                self.args.counters.set_aside.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(AppendError::Refused(refused)) => {
                tracing::error!(action = %event.action, reason = refused, "the dead-letter table refused the entry too; it is dropped");
                self.args.counters.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(AppendError::Unavailable(err)) => {
                tracing::error!(error = ?err, "setting an audit entry aside failed; will retry");
                false
            }
        }
    }

    /// Writes what is queued, trying a few times a little apart, for callers that wait.
    async fn write_pending_soon(&mut self) -> bool {
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if self.write_pending().await {
                return true;
            }
        }
        false
    }

    async fn checkpoint(&mut self) -> bool {
        match self.args.store.checkpoint(&self.args.key, self.last_sealed.as_ref()).await {
            Ok(done) => {
                if done.restored {
                    let seq = self.last_sealed.as_ref().map(|s| s.seq);
                    tracing::error!(?seq, "an audit checkpoint sealed by this server had been deleted; put back; run `boardroom audit verify`");
                }
                if let Some(seal) = done.sealed {
                    tracing::debug!(seq = seal.seq, "audit checkpoint sealed");
                    self.last_sealed = Some(seal);
                }
                self.unsealed = 0;
                true
            }
            Err(err) => {
                tracing::error!(error = ?err, "audit checkpoint failed");
                false
            }
        }
    }
}

impl Actor for AuditActor {
    type Msg = AuditMessage;
    type State = AuditState;
    type Arguments = AuditArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Entries queued with an actor that failed went with it: say so and count them.
        let lost = args.counters.queued.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::error!(lost, "audit entries queued with the failed audit actor were lost");
            args.counters.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        myself.send_interval(PURGE_EVERY, || AuditMessage::Purge);
        myself.send_interval(CHECKPOINT_EVERY, || AuditMessage::Checkpoint(None));
        // Seal what an earlier run appended after its last checkpoint, then purge.
        let _ = myself.cast(AuditMessage::Checkpoint(None));
        let _ = myself.cast(AuditMessage::Purge);
        Ok(AuditState {
            args,
            pending: Vec::new(),
            retrying: false,
            unsealed: 0,
            last_sealed: None,
            overflow: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AuditMessage::Record(event) => {
                if state.pending.len() >= state.args.queue_limit {
                    state.args.counters.dropped(1);
                    let dropped = state.overflow.get_or_insert_with(|| {
                        tracing::error!(
                            limit = state.args.queue_limit,
                            "audit queue full while the store is unavailable; dropping new entries"
                        );
                        0
                    });
                    *dropped += 1;
                    return Ok(());
                }
                // The first event of a batch schedules its commit behind whatever else queued.
                if state.pending.is_empty() && !state.retrying {
                    let _ = myself.cast(AuditMessage::Commit);
                }
                state.pending.push(*event);
            }
            AuditMessage::Commit => {
                state.retrying = false;
                if !state.write_pending().await {
                    state.retrying = true;
                    myself.send_after(RETRY_AFTER, || AuditMessage::Commit);
                }
                if state.unsealed >= CHECKPOINT_ROWS {
                    state.checkpoint().await;
                }
            }
            AuditMessage::Flush(reply) => {
                let _ = reply.send(state.write_pending_soon().await);
            }
            AuditMessage::Checkpoint(reply) => {
                let sealed = state.write_pending_soon().await && state.checkpoint().await;
                if let Some(reply) = reply {
                    let _ = reply.send(sealed);
                }
            }
            AuditMessage::Purge => {
                let cutoff = chrono::Utc::now() - RETENTION;
                match state.args.store.purge_older_than(cutoff, &state.args.key).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged audit rows past retention"),
                    Err(err) => tracing::error!(error = ?err, "audit purge failed"),
                }
            }
        }
        Ok(())
    }

    /// A stopping actor writes or sets aside what is queued and seals a last checkpoint; what
    /// it cannot write (the store is down) is logged and counted as dropped.
    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.write_pending_soon().await {
            state.checkpoint().await;
        } else {
            let lost = state.pending.len();
            tracing::error!(
                lost,
                "the audit store is unavailable at shutdown; queued entries are lost"
            );
            state.args.counters.dropped(lost);
            state.pending.clear();
        }
        Ok(())
    }
}

/// A handle on the audit actor. Cheap to clone; survives restarts of the actor.
#[derive(Clone)]
pub struct AuditLog {
    current: Arc<RwLock<ActorRef<AuditMessage>>>,
    counters: Arc<AuditCounters>,
}

impl AuditLog {
    pub(crate) fn new(actor: ActorRef<AuditMessage>, counters: Arc<AuditCounters>) -> Self {
        AuditLog { current: Arc::new(RwLock::new(actor)), counters }
    }

    pub(crate) fn replace(&self, actor: ActorRef<AuditMessage>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = actor;
    }

    /// The id of the actor currently behind the handle.
    pub fn actor_id(&self) -> ractor::ActorId {
        self.actor().get_id()
    }

    fn actor(&self) -> ActorRef<AuditMessage> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records `event`, bounded by [`AuditEvent::sanitize`], without waiting for the write.
    pub fn record(&self, event: AuditEvent) {
        let event = event.sanitized();
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = self.actor().cast(AuditMessage::Record(Box::new(event))) {
            tracing::error!(error = %err, "audit actor unavailable; event dropped");
            self.counters.dropped(1);
        }
    }

    /// Waits until everything recorded before this call is written or set aside; false if the
    /// store stayed down (or the actor did not answer).
    pub async fn flush(&self) -> bool {
        ractor::call_t!(self.actor(), AuditMessage::Flush, 10_000).unwrap_or(false)
    }

    /// Writes what is queued and seals a checkpoint over the chain now; whether both succeeded.
    pub async fn checkpoint(&self) -> bool {
        ractor::call_t!(self.actor(), |reply| AuditMessage::Checkpoint(Some(reply)), 10_000)
            .unwrap_or(false)
    }

    /// Stops the actor once everything recorded before this call is written or set aside, with
    /// a last checkpoint. Returns whether nothing was lost; later records are dropped (logged and
    /// counted).
    pub async fn close(&self) -> bool {
        let stopped = self.actor().drain_and_wait(Some(Duration::from_secs(15))).await.is_ok();
        stopped && self.queued() == 0
    }

    /// Entries recorded and not yet written, set aside or dropped.
    pub fn queued(&self) -> u64 {
        self.counters.queued.load(Ordering::Relaxed)
    }

    /// Entries the store refused, kept in its dead-letter table instead of the chain.
    pub fn set_aside_total(&self) -> u64 {
        self.counters.set_aside.load(Ordering::Relaxed)
    }

    /// Entries lost: recorded while the queue was full or the actor unavailable, or still
    /// queued when the store stayed down through shutdown. Each loss is logged at error.
    pub fn dropped_total(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_stores::{audit_key, TestAudit};

    async fn start(store: Arc<TestAudit>, queue_limit: usize) -> AuditLog {
        let mut args = AuditArgs::new(store, audit_key());
        args.queue_limit = queue_limit;
        let counters = args.counters.clone();
        let (actor, _) = Actor::spawn(None, AuditActor, args).await.unwrap();
        AuditLog::new(actor, counters)
    }

    fn entry(target: &str) -> AuditEvent {
        let mut event = AuditEvent::new(AuditAction::LoginFailed);
        event.target = Some(target.to_owned());
        event
    }

    #[tokio::test]
    async fn a_refused_entry_is_set_aside_and_the_rest_are_written_in_order() {
        let store = Arc::new(TestAudit::refusing(&["poison", "venom"]));
        let audit = start(store.clone(), QUEUE_LIMIT).await;
        let targets: Vec<String> = (0..20).map(|i| format!("entry-{i}")).collect();
        for (i, target) in targets.iter().enumerate() {
            audit.record(entry(target));
            match i {
                6 => audit.record(entry("poison")),
                13 => audit.record(entry("venom")),
                _ => {}
            }
        }
        assert!(audit.flush().await);
        assert_eq!(store.targets(), targets);
        let dead = store.dead_letters.lock().unwrap().clone();
        let dead: Vec<(Option<String>, String)> =
            dead.into_iter().map(|(e, reason)| (e.target, reason)).collect();
        assert_eq!(
            dead,
            [
                (Some("poison".into()), "target refused by a constraint".into()),
                (Some("venom".into()), "target refused by a constraint".into())
            ]
        );
        assert_eq!((audit.set_aside_total(), audit.queued(), audit.dropped_total()), (2, 0, 0));
        // Entries recorded after the refusals are written too, and the chain verifies.
        audit.record(entry("later"));
        assert!(audit.checkpoint().await);
        assert_eq!(store.targets().last().map(String::as_str), Some("later"));
        let verified = store.verify().unwrap();
        assert_eq!((verified.rows, verified.signed_through), (21, Some(21)));
    }

    #[tokio::test]
    async fn a_store_that_is_down_keeps_the_queue_and_loses_nothing() {
        let store = Arc::new(TestAudit::default());
        store.down.store(true, Ordering::SeqCst);
        let audit = start(store.clone(), QUEUE_LIMIT).await;
        for i in 0..5 {
            audit.record(entry(&format!("entry-{i}")));
        }
        assert!(!audit.flush().await);
        assert_eq!(audit.queued(), 5);
        store.down.store(false, Ordering::SeqCst);
        assert!(audit.flush().await);
        assert_eq!(store.targets().len(), 5);
        assert_eq!((audit.set_aside_total(), audit.queued(), audit.dropped_total()), (0, 0, 0));
    }

    #[tokio::test]
    async fn a_full_queue_drops_new_entries_and_counts_them() {
        let store = Arc::new(TestAudit::default());
        store.down.store(true, Ordering::SeqCst);
        let audit = start(store.clone(), 3).await;
        for i in 0..5 {
            audit.record(entry(&format!("entry-{i}")));
        }
        assert!(!audit.flush().await);
        assert_eq!((audit.queued(), audit.dropped_total()), (3, 2));
        store.down.store(false, Ordering::SeqCst);
        assert!(audit.flush().await);
        assert_eq!(store.targets(), ["entry-0", "entry-1", "entry-2"]);
    }

    #[tokio::test]
    async fn closing_writes_the_queue_and_seals_a_last_checkpoint() {
        let store = Arc::new(TestAudit::refusing(&["poison"]));
        let audit = start(store.clone(), QUEUE_LIMIT).await;
        for target in ["a", "poison", "b", "c"] {
            audit.record(entry(target));
        }
        // No flush: closing alone must settle every entry.
        assert!(audit.close().await);
        assert_eq!(store.targets(), ["a", "b", "c"]);
        assert_eq!(store.dead_letters.lock().unwrap().len(), 1);
        assert_eq!(store.verify().unwrap().signed_through, Some(3));
        // Anything recorded once closed is counted, not lost silently.
        audit.record(entry("late"));
        assert_eq!((audit.dropped_total(), audit.queued()), (1, 0));
    }

    #[test]
    fn sanitize_bounds_every_text_and_the_metadata() {
        let mut event = AuditEvent::new(AuditAction::LoginFailed);
        event.target = Some("x".repeat(1000));
        event.ip = Some("10.0.0.1\0".into());
        event.user_agent = Some("agent\u{202E}\r\nforged line".into());
        let mut deep = serde_json::json!("bottom");
        for _ in 0..10 {
            deep = serde_json::json!({ "down": deep });
        }
        event.metadata = serde_json::json!({
            "email": "  Alice\u{0}@Example.COM\t",
            "bad": "bad\u{0}input",
            "long": "y".repeat(300),
            "deep": deep,
            "many": (0..100).collect::<Vec<_>>(),
            "count": 3,
            "zzz": "after the budget",
        });
        let event = event.sanitized();
        let target = event.target.as_deref().unwrap();
        assert_eq!(target.chars().count(), MAX_TEXT_CHARS);
        assert!(target.ends_with('…'));
        assert_eq!(event.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(event.user_agent.as_deref(), Some("agentforged line"));
        let meta = &event.metadata;
        assert_eq!(meta["email"], "alice@example.com");
        assert_eq!(meta["bad"], "badinput");
        assert_eq!(meta["long"].as_str().unwrap().chars().count(), MAX_TEXT_CHARS);
        assert_eq!(meta["count"], 3);
        assert_eq!(meta["deep"]["down"]["down"]["down"], "…");
        // 64 values in all, spent in key order: bad, count, deep (4), email, long, many and 55
        // of its items; nothing is left for zzz.
        assert_eq!(meta["many"].as_array().unwrap().len(), 55);
        assert!(meta.get("zzz").is_none());
        // Applying it again changes nothing, so the stored form is stable.
        assert_eq!(event.clone().sanitized(), event);
    }

    #[test]
    fn metadata_that_is_not_an_object_is_wrapped() {
        let mut event = AuditEvent::new(AuditAction::Signup);
        event.metadata = serde_json::json!(["a"]);
        assert_eq!(event.sanitized().metadata, serde_json::json!({ "value": ["a"] }));
    }
}
