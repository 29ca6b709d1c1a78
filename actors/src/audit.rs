//! The audit actor: security events in, hash-chained rows out.
//!
//! Callers hand an [`AuditEvent`] to [`AuditLog::record`], which never waits: the event is cast
//! to the actor's mailbox. The actor gathers what queued while it was writing and appends the
//! whole batch in one transaction through [`AuditStore`]. A failed write keeps the batch and
//! retries; [`AuditLog::flush`] returns once everything recorded before it is stored, which a
//! graceful shutdown calls so that nothing is lost.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// A webhook was disabled after too many consecutive failed deliveries.
    WebhookDisabled = "webhook.disabled",
    /// A webhook was created on a board.
    WebhookCreated = "webhook.created",
    /// A webhook was deleted.
    WebhookDeleted = "webhook.deleted",
    /// A webhook's signing secret was rotated.
    WebhookSecretRotated = "webhook.secret_rotated",
}

impl AuditEvent {
    /// The audit row a committed board event calls for, if it is security-relevant (access
    /// changes and deletions); other board events stay in the board's own log.
    pub fn from_board_event(event: &crate::domain::BoardEvent) -> Option<AuditEvent> {
        use crate::domain::EventKind;
        let action = match event.kind {
            EventKind::MemberAdded => AuditAction::BoardMemberAdded,
            EventKind::MemberRoleChanged => AuditAction::BoardMemberRoleChanged,
            EventKind::MemberRemoved => AuditAction::BoardMemberRemoved,
            EventKind::BoardDeleted => AuditAction::BoardDeleted,
            _ => return None,
        };
        let mut audit = AuditEvent::new(action);
        audit.organization_id = Some(event.organization_id);
        audit.actor_id = event.actor;
        audit.target = Some(match event.data.get("user_id").and_then(|u| u.as_str()) {
            Some(user) => user.to_owned(),
            None => event.board_id.to_string(),
        });
        audit.metadata = serde_json::json!({
            "board_id": event.board_id,
            "seq": event.seq,
            "role": event.data.get("role"),
            "previous_role": event.data.get("previous_role"),
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

/// Where the audit actor writes. Implemented by the server's storage.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends `events`, in order, to the chain in one transaction.
    async fn append(&self, events: &[AuditEvent]) -> anyhow::Result<()>;
    /// Removes rows older than `cutoff`, keeping the rest verifiable; returns how many went.
    async fn purge_older_than(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// How long audit rows are kept.
pub const RETENTION: chrono::Duration = chrono::Duration::days(2 * 365);

/// How often the actor purges rows past [`RETENTION`].
pub const PURGE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Messages of the audit actor.
pub enum AuditMessage {
    /// Queue an event.
    Record(Box<AuditEvent>),
    /// Write what is queued.
    Commit,
    /// Write what is queued, then answer.
    Flush(RpcReplyPort<()>),
    /// Remove rows past retention.
    Purge,
}

/// The audit actor.
pub struct AuditActor;

/// State of the audit actor.
pub struct AuditState {
    store: Arc<dyn AuditStore>,
    pending: Vec<AuditEvent>,
    retrying: bool,
}

impl AuditState {
    async fn commit(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        match self.store.append(&self.pending).await {
            Ok(()) => {
                self.pending.clear();
                true
            }
            Err(err) => {
                tracing::error!(error = ?err, queued = self.pending.len(), "audit append failed; will retry");
                false
            }
        }
    }
}

impl Actor for AuditActor {
    type Msg = AuditMessage;
    type State = AuditState;
    type Arguments = Arc<dyn AuditStore>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        store: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(PURGE_EVERY, || AuditMessage::Purge);
        let _ = myself.cast(AuditMessage::Purge);
        Ok(AuditState { store, pending: Vec::new(), retrying: false })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AuditMessage::Record(event) => {
                // The first event of a batch schedules its commit behind whatever else queued.
                if state.pending.is_empty() && !state.retrying {
                    let _ = myself.cast(AuditMessage::Commit);
                }
                state.pending.push(*event);
            }
            AuditMessage::Commit => {
                state.retrying = false;
                if !state.commit().await {
                    state.retrying = true;
                    myself.send_after(Duration::from_secs(1), || AuditMessage::Commit);
                }
            }
            AuditMessage::Flush(reply) => {
                for _ in 0..3 {
                    if state.commit().await {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let _ = reply.send(());
            }
            AuditMessage::Purge => {
                let cutoff = chrono::Utc::now() - RETENTION;
                match state.store.purge_older_than(cutoff).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged audit rows past retention"),
                    Err(err) => tracing::error!(error = ?err, "audit purge failed"),
                }
            }
        }
        Ok(())
    }
}

/// A handle on the audit actor. Cheap to clone; survives restarts of the actor.
#[derive(Clone)]
pub struct AuditLog {
    current: Arc<RwLock<ActorRef<AuditMessage>>>,
}

impl AuditLog {
    pub(crate) fn new(actor: ActorRef<AuditMessage>) -> Self {
        AuditLog { current: Arc::new(RwLock::new(actor)) }
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

    /// Records `event` without waiting for the write.
    pub fn record(&self, event: AuditEvent) {
        if let Err(err) = self.actor().cast(AuditMessage::Record(Box::new(event))) {
            tracing::error!(error = %err, "audit actor unavailable; event dropped");
        }
    }

    /// Waits until everything recorded before this call is stored (or the attempt gave up).
    pub async fn flush(&self) -> bool {
        ractor::call_t!(self.actor(), AuditMessage::Flush, 10_000).is_ok()
    }
}
