//! The board actor: one per active board. It owns the board's authorization state (members and
//! roles) and its contents (columns, groups, items, the sequence number), checks every command
//! against the caller's role and scopes, and serializes the board's writes.
//!
//! ## Group commit
//! A command is checked and applied to the in-memory board as soon as it arrives, and its
//! changes and event join the pending batch; the first command of a batch casts a `Flush` to the
//! actor itself, which queues behind every command already waiting. When the flush runs, the
//! whole batch is written in one transaction, the events are published in order, and each
//! command is answered. A command refused by validation is answered at once and never joins the
//! batch, so one bad command does not fail the others. If the transaction fails, every command
//! of the batch is answered `Unavailable` and the actor reloads the board from the database.
//! Reads flush first, so they never see an unacknowledged change.
//!
//! ## Event log
//! Every applied command takes the next `seq` of the board and appends one event to
//! `board_events` in the same transaction; the store refuses the batch if the board's stored
//! `seq` moved underneath (another writer), so the log stays gap-free.
//!
//! ## Layout
//! This file holds the actor, its messages, its state and loading, and the group commit.
//! [`apply`] checks and applies commands, [`views`] answers reads, and [`idempotency`] repeats
//! the first answer to a command sent again with its idempotency key.

mod apply;
mod idempotency;
mod views;

pub use views::{BoardView, ItemPage, Snapshot};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boardroom_protocol::Scope;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

use crate::bounds::BoardLimits;
use crate::domain::{
    Attachment, Board, BoardCommand, BoardError, BoardEvent, BoardRole, Column, EventData, Group,
    Item, StoredBlob, Update,
};
use crate::event_bus::EventBus;
use crate::named::Idle;
use crate::org::Orgs;
use crate::roles::OrgRole;

/// Who is asking, as the edge established it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requester {
    /// The user acting (an API key's user for keys).
    pub user_id: Uuid,
    /// Their role in the board's organization (admins act as owners on every board).
    pub org_role: OrgRole,
    /// The scopes of the API key used, or `None` for a session.
    pub scopes: Option<Vec<Scope>>,
}

impl Requester {
    /// Whether they may see board events of `kind` (the board itself already visible to them):
    /// a key needs `items:read` for item events and `updates:read` for update events. Sockets,
    /// the REST event log and webhooks (`webhook::scope_lacking`) apply the same rule.
    pub fn may_see(&self, kind: &str) -> bool {
        self.lacks_to_see(kind).is_none()
    }

    /// The scope their key lacks to see board events of `kind`, if any (see [`Self::may_see`]).
    pub fn lacks_to_see(&self, kind: &str) -> Option<Scope> {
        let scopes = self.scopes.as_ref()?;
        // Attachments are part of their item: the same scope reads them.
        let needed = if kind.starts_with("item.") || kind.starts_with("attachment.") {
            Scope::ItemsRead
        } else if kind.starts_with("update.") {
            Scope::UpdatesRead
        } else {
            return None;
        };
        (!scopes.contains(&needed)).then_some(needed)
    }
}

/// A board as loaded from the store.
#[derive(Debug, Clone)]
pub struct LoadedBoard {
    /// The board's fields.
    pub board: Board,
    /// The last `seq` of its log.
    pub seq: i64,
    /// Members and roles.
    pub members: HashMap<Uuid, BoardRole>,
    /// Columns.
    pub columns: Vec<Column>,
    /// Groups.
    pub groups: Vec<Group>,
    /// Items (archived ones included).
    pub items: Vec<Item>,
    /// How many files are attached to each item (items without any are absent).
    pub attachment_counts: HashMap<Uuid, u32>,
}

impl LoadedBoard {
    /// A board not yet created, as its actor starts before [`BoardCommand::CreateBoard`]:
    /// `seq` 0, nothing on it, no members.
    pub fn unborn(organization_id: Uuid) -> LoadedBoard {
        let at = now();
        let board = Board {
            id: Uuid::now_v7(),
            organization_id,
            name: String::new(),
            description: String::new(),
            created_at: at,
            updated_at: at,
        };
        LoadedBoard {
            board,
            seq: 0,
            members: HashMap::new(),
            columns: Vec::new(),
            groups: Vec::new(),
            items: Vec::new(),
            attachment_counts: HashMap::new(),
        }
    }
}

/// One row-level change of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The board was created (at `seq` 0, which its first event moves on), by `creator`.
    CreateBoard {
        /// Its fields.
        board: Board,
        /// Who created it.
        creator: Uuid,
    },
    /// The board's fields changed.
    Board(Board),
    /// The board was deleted.
    DeleteBoard,
    /// A member was added or their role changed (`Some`), or removed (`None`).
    Member(Uuid, Option<BoardRole>),
    /// A column was created or changed.
    Column(Column),
    /// A column was deleted.
    DeleteColumn(Uuid),
    /// A group was created or changed.
    Group(Group),
    /// A group (and its items) was deleted.
    DeleteGroup(Uuid),
    /// An item was created or changed.
    Item(Item),
    /// An item was deleted.
    DeleteItem(Uuid),
    /// An update was created or edited.
    Update(Update),
    /// An update was deleted.
    DeleteUpdate(Uuid),
    /// A file was attached.
    Attachment(Attachment, StoredBlob),
    /// An attachment was deleted.
    DeleteAttachment(Uuid),
}

/// The recorded answer to a command sent with an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentResult {
    /// Who sent it.
    pub user_id: Uuid,
    /// The key.
    pub key: String,
    /// The answer given the first time.
    pub output: CommandOutput,
}

/// Where the board actor reads and writes. Implemented by the server's storage.
#[async_trait::async_trait]
pub trait BoardStore: Send + Sync + 'static {
    /// Loads a live (not deleted) board of `org`.
    async fn load_board(&self, org: Uuid, board: Uuid) -> anyhow::Result<Option<LoadedBoard>>;
    /// Writes a batch in one transaction: moves the board's `seq` from `from_seq` to the last
    /// event's (refusing if it is not at `from_seq`), appends the events, applies the changes,
    /// records the idempotent results, and appends the audit rows the events call for
    /// ([`crate::audit::AuditEvent::from_board_event`]: access changes, deletions).
    async fn commit(
        &self,
        org: Uuid,
        board: Uuid,
        from_seq: i64,
        changes: &[Change],
        events: &[BoardEvent],
        idempotent: &[IdempotentResult],
    ) -> anyhow::Result<()>;
    /// The organization of `board`, deleted or not (used to restart a crashed actor).
    async fn board_org(&self, board: Uuid) -> anyhow::Result<Option<Uuid>>;
    /// An update on `item` of `board`.
    async fn update(
        &self,
        org: Uuid,
        board: Uuid,
        item: Uuid,
        update: Uuid,
    ) -> anyhow::Result<Option<Update>>;
    /// An attachment of `board`, wherever it is on the board.
    async fn attachment(
        &self,
        org: Uuid,
        board: Uuid,
        attachment: Uuid,
    ) -> anyhow::Result<Option<Attachment>>;
    /// How many files are attached to `item` of `board` (its comments' included).
    async fn attachment_count(&self, org: Uuid, board: Uuid, item: Uuid) -> anyhow::Result<u32>;
    /// The recorded answer to an earlier command with this idempotency key.
    async fn idempotent_result(
        &self,
        org: Uuid,
        board: Uuid,
        user: Uuid,
        key: &str,
    ) -> anyhow::Result<Option<CommandOutput>>;
}

/// What the caller's task learned from the store about a command's idempotency key before
/// handing the command to its board ([`crate::boards::Boards::submit`]).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyLookup {
    /// The store was not asked (no key, or the lookup failed): the actor asks if it must.
    NotAsked,
    /// The store did not hold the key. The instant was taken just before asking, so anything
    /// committed before it was visible to the lookup.
    Absent(Instant),
    /// The store holds the first answer to the key.
    Found(Box<CommandOutput>),
}

/// What a successful command answers: what its event says (the changed entity as it is now,
/// or for deletions its ids), and the event's `seq`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutput {
    /// The `seq` of the command's event.
    pub seq: i64,
    /// The event's data.
    pub data: EventData,
}

/// A read of the board's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BoardQuery {
    /// The board with columns, groups, items and seq (needs `boards:read`).
    Snapshot,
    /// The board's fields and the caller's role.
    Board,
    /// One item (needs `items:read`).
    Item(Uuid),
    /// Items in position order, optionally of one group, after an item id, at most `limit`.
    Items {
        /// Only this group.
        group_id: Option<Uuid>,
        /// Start after this item (the previous page's last).
        after: Option<Uuid>,
        /// Page size.
        limit: usize,
    },
    /// The members and their roles.
    Members,
    /// Only check that the caller may read `scope` data on the board; answers the caller's role.
    Access(Scope),
    /// Only check that the caller may attach a file to the item now (role, scope, the item,
    /// room for one more), before its bytes are read; answers the caller's role.
    MayAttach(Uuid),
}

/// Messages of a board actor.
pub enum BoardMessage {
    /// A write.
    Command {
        /// Who.
        requester: Requester,
        /// What.
        command: BoardCommand,
        /// Idempotency key sent with it.
        idempotency_key: Option<String>,
        /// What the caller's task learned from the store about the key.
        key_lookup: KeyLookup,
        /// Where the answer goes once committed.
        reply: RpcReplyPort<Result<CommandOutput, BoardError>>,
    },
    /// A read.
    Read {
        /// Who.
        requester: Requester,
        /// What.
        query: BoardQuery,
        /// Where the answer goes.
        reply: RpcReplyPort<Result<BoardView, BoardError>>,
    },
    /// Write the pending batch.
    Flush,
    /// Stop if idle for long enough.
    IdleCheck,
    /// Crash on purpose (tests of supervision).
    #[cfg(feature = "fault-injection")]
    InjectPanic,
}

/// Arguments of a board actor.
pub struct BoardArgs {
    /// The board, freshly loaded.
    pub loaded: LoadedBoard,
    /// Storage.
    pub store: Arc<dyn BoardStore>,
    /// Where committed events go.
    pub bus: EventBus,
    /// The organizations' actors, which own memberships: asked whether a person named on the
    /// board belongs to its organization.
    pub orgs: Arc<Orgs>,
    /// How long it may sit idle before stopping.
    pub idle_timeout: Duration,
    /// How much the board may hold.
    pub limits: BoardLimits,
}

/// The board actor.
pub struct BoardActor;

struct Pending {
    changes: Vec<Change>,
    events: Vec<BoardEvent>,
    idempotent: Vec<IdempotentResult>,
    replies: Vec<(RpcReplyPort<Result<CommandOutput, BoardError>>, CommandOutput)>,
    from_seq: i64,
}

/// State of a board actor.
pub struct BoardState {
    board: Board,
    seq: i64,
    members: HashMap<Uuid, BoardRole>,
    columns: Vec<Column>,
    groups: Vec<Group>,
    items: HashMap<Uuid, Item>,
    /// Files attached per item, pending ones included (the bound counts them).
    attachment_counts: HashMap<Uuid, u32>,
    deleted: bool,
    store: Arc<dyn BoardStore>,
    bus: EventBus,
    orgs: Arc<Orgs>,
    pending: Option<Pending>,
    recent_keys: HashMap<(Uuid, String), CommandOutput>,
    /// Since when `recent_keys` holds every key this board committed or has pending that the
    /// store did not hold. A key the store was asked for at or after this instant and not found
    /// is new unless it is in `recent_keys`: whatever committed before then was visible to
    /// that lookup. Reset when the board is (re)loaded and when `recent_keys` is trimmed.
    keys_trusted_since: Instant,
    idle: Idle,
    limits: BoardLimits,
}

impl BoardState {
    fn new(args: BoardArgs, idle: Idle) -> Self {
        let mut state = BoardState {
            board: args.loaded.board.clone(),
            seq: 0,
            members: HashMap::new(),
            columns: Vec::new(),
            groups: Vec::new(),
            items: HashMap::new(),
            attachment_counts: HashMap::new(),
            deleted: false,
            store: args.store,
            bus: args.bus,
            orgs: args.orgs,
            pending: None,
            recent_keys: HashMap::new(),
            keys_trusted_since: Instant::now(),
            idle,
            limits: args.limits,
        };
        state.install(args.loaded);
        state
    }

    fn install(&mut self, loaded: LoadedBoard) {
        self.board = loaded.board;
        self.seq = loaded.seq;
        self.members = loaded.members;
        self.columns = loaded.columns;
        self.columns.sort_by(|a, b| a.position.cmp(&b.position));
        self.groups = loaded.groups;
        self.groups.sort_by(|a, b| a.position.cmp(&b.position));
        self.items = loaded.items.into_iter().map(|i| (i.id, i)).collect();
        self.attachment_counts = loaded.attachment_counts;
        // Another writer may have committed keys in the store meanwhile.
        self.keys_trusted_since = Instant::now();
    }

    fn org(&self) -> Uuid {
        self.board.organization_id
    }

    /// The caller's effective role; `None` means the board is invisible to them.
    fn role_of(&self, requester: &Requester) -> Option<BoardRole> {
        if requester.org_role == OrgRole::Admin {
            return Some(BoardRole::Owner);
        }
        self.members.get(&requester.user_id).copied()
    }

    /// Visibility first (404), then the key's scope (403), then the role (403).
    fn require(
        &self,
        requester: &Requester,
        need: BoardRole,
        scope: Scope,
    ) -> Result<BoardRole, BoardError> {
        let role = self.role_of(requester).ok_or(BoardError::NotFound("board"))?;
        if let Some(scopes) = &requester.scopes {
            if !scopes.contains(&scope) {
                return Err(BoardError::MissingScope(scope.as_str()));
            }
        }
        if role < need {
            return Err(BoardError::Forbidden(need.as_str()));
        }
        Ok(role)
    }

    fn column(&self, id: Uuid) -> Result<&Column, BoardError> {
        self.columns.iter().find(|c| c.id == id).ok_or(BoardError::NotFound("column"))
    }

    fn group(&self, id: Uuid) -> Result<&Group, BoardError> {
        self.groups.iter().find(|g| g.id == id).ok_or(BoardError::NotFound("group"))
    }

    fn item(&self, id: Uuid) -> Result<&Item, BoardError> {
        self.items.get(&id).ok_or(BoardError::NotFound("item"))
    }

    fn items_in(&self, group: Uuid) -> Vec<&Item> {
        let mut items: Vec<&Item> = self.items.values().filter(|i| i.group_id == group).collect();
        items.sort_by(item_order);
        items
    }
}

/// Items in their group's order: by position, ties by id.
fn item_order(a: &&Item, b: &&Item) -> std::cmp::Ordering {
    a.position.cmp(&b.position).then(a.id.cmp(&b.id))
}

fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl BoardState {
    /// Writes the pending batch; answers its commands; publishes its events.
    async fn flush(&mut self, myself: &ActorRef<BoardMessage>) -> Result<(), ActorProcessingErr> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let result = self
            .store
            .commit(
                self.org(),
                self.board.id,
                pending.from_seq,
                &pending.changes,
                &pending.events,
                &pending.idempotent,
            )
            .await;
        match result {
            Ok(()) => {
                self.recount_attachments(&pending.events).await;
                for event in pending.events {
                    self.bus.publish(Arc::new(event));
                }
                for (reply, output) in pending.replies {
                    let _ = reply.send(Ok(output));
                }
                if self.deleted {
                    myself.stop(Some("board deleted".into()));
                }
                Ok(())
            }
            Err(err) => {
                tracing::error!(board = %self.board.id, error = ?err, "board commit failed; reloading");
                for (reply, _) in pending.replies {
                    let _ = reply.send(Err(BoardError::Unavailable(
                        "the change was not saved; retry".into(),
                    )));
                }
                for idempotent in &pending.idempotent {
                    self.recent_keys.remove(&(idempotent.user_id, idempotent.key.clone()));
                }
                match self.store.load_board(self.org(), self.board.id).await {
                    Ok(Some(loaded)) => {
                        self.install(loaded);
                        self.deleted = false;
                        Ok(())
                    }
                    Ok(None) => {
                        myself.stop(Some("board gone".into()));
                        Ok(())
                    }
                    Err(err) => Err(err.into()),
                }
            }
        }
    }
}

impl BoardState {
    /// A deleted comment took its attachments (and its replies' ones) with it in the store:
    /// the items' counts are read again once that has committed.
    async fn recount_attachments(&mut self, events: &[BoardEvent]) {
        let items: std::collections::BTreeSet<Uuid> = events
            .iter()
            .filter_map(|e| match e.data {
                EventData::UpdateDeleted { item_id, .. } => Some(item_id),
                _ => None,
            })
            .collect();
        for item in items {
            match self.store.attachment_count(self.org(), self.board.id, item).await {
                Ok(count) => {
                    self.attachment_counts.insert(item, count);
                }
                Err(err) => {
                    tracing::warn!(board = %self.board.id, error = ?err, "attachment recount failed");
                }
            }
        }
    }
}

impl Actor for BoardActor {
    type Msg = BoardMessage;
    type State = BoardState;
    type Arguments = BoardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let idle = Idle::start(&myself, args.idle_timeout, || BoardMessage::IdleCheck);
        Ok(BoardState::new(args, idle))
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(message, BoardMessage::Command { .. } | BoardMessage::Read { .. }) {
            state.idle.touch();
        }
        match message {
            BoardMessage::Command { requester, command, idempotency_key, key_lookup, reply } => {
                if state.deleted {
                    let _ = reply.send(Err(BoardError::NotFound("board")));
                    return Ok(());
                }
                if let Some(key) = &idempotency_key {
                    let repeated = state.repeated(&myself, &requester, key, key_lookup).await?;
                    if let Some(answer) = repeated {
                        let _ = reply.send(answer);
                        return Ok(());
                    }
                }
                match state.apply(&requester, command).await {
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        // A board whose creation was refused never existed.
                        if state.seq == 0 && state.pending.is_none() {
                            myself.stop(Some("board not created".into()));
                        }
                    }
                    Ok((changes, data)) => {
                        state.seq += 1;
                        let event = BoardEvent {
                            organization_id: state.org(),
                            board_id: state.board.id,
                            seq: state.seq,
                            actor: Some(requester.user_id),
                            data: data.clone(),
                            created_at: now(),
                        };
                        let output = CommandOutput { seq: state.seq, data };
                        let from_seq = state.seq - 1;
                        let first = state.pending.is_none();
                        let pending = state.pending.get_or_insert_with(|| Pending {
                            changes: Vec::new(),
                            events: Vec::new(),
                            idempotent: Vec::new(),
                            replies: Vec::new(),
                            from_seq,
                        });
                        pending.changes.extend(changes);
                        pending.events.push(event);
                        pending.replies.push((reply, output.clone()));
                        if let Some(key) = idempotency_key {
                            state.remember_key(requester.user_id, key, output);
                        }
                        if first {
                            myself.cast(BoardMessage::Flush)?;
                        }
                    }
                }
            }
            BoardMessage::Flush => state.flush(&myself).await?,
            BoardMessage::Read { requester, query, reply } => {
                state.flush(&myself).await?;
                let answer = if state.deleted {
                    Err(BoardError::NotFound("board"))
                } else {
                    state.read(&requester, query)
                };
                let _ = reply.send(answer);
            }
            BoardMessage::IdleCheck => {
                if state.pending.is_none() && state.idle.expired() {
                    myself.stop(Some("idle".into()));
                }
            }
            #[cfg(feature = "fault-injection")]
            BoardMessage::InjectPanic => panic!("injected board actor failure"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A graceful stop (idle, shutdown) still writes what it acknowledged to no one yet.
        state.flush(&myself).await
    }
}
