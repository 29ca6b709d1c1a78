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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boardroom_protocol::Scope;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::bounds::BoardLimits;
use crate::domain::{
    invalid, Board, BoardCommand, BoardError, BoardEvent, BoardRole, Column, EventKind, Group,
    Item, Placement, Update,
};
use crate::event_bus::EventBus;
use crate::named::Idle;
use crate::org::Orgs;
use crate::position;
use crate::roles::OrgRole;
use crate::values::{self, MAX_LONG_TEXT_CHARS, MAX_NAME_CHARS, MAX_TITLE_CHARS};

/// Who is asking, as the edge established it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let needed = if kind.starts_with("item.") {
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
}

/// One row-level change of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
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
    Found(CommandOutput),
}

/// What a successful command answers: the entity as it is now, and the `seq` of its event.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutput {
    /// The `seq` of the command's event.
    pub seq: i64,
    /// The changed entity (for deletions, its id).
    pub data: Value,
}

/// A read of the board's state.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        reply: RpcReplyPort<Result<Value, BoardError>>,
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
        items.sort_by(|a, b| a.position.cmp(&b.position).then(a.id.cmp(&b.id)));
        items
    }

    fn snapshot(&self, with_items: bool) -> Value {
        let mut items: Vec<&Item> =
            if with_items { self.items.values().collect() } else { Vec::new() };
        let group_rank: HashMap<Uuid, usize> =
            self.groups.iter().enumerate().map(|(i, g)| (g.id, i)).collect();
        items.sort_by(|a, b| {
            group_rank
                .get(&a.group_id)
                .cmp(&group_rank.get(&b.group_id))
                .then(a.position.cmp(&b.position))
                .then(a.id.cmp(&b.id))
        });
        json!({
            "board": board_json(&self.board),
            "columns": self.columns,
            "groups": self.groups.iter().map(|g| group_json(self.board.id, g)).collect::<Vec<_>>(),
            "items": items.iter().map(|i| item_json(self.board.id, i)).collect::<Vec<_>>(),
            "seq": self.seq,
        })
    }
}

/// A board's fields as answered.
pub fn board_json(board: &Board) -> Value {
    json!({
        "id": board.id,
        "organization_id": board.organization_id,
        "name": board.name,
        "description": board.description,
        "created_at": board.created_at,
        "updated_at": board.updated_at,
    })
}

fn group_json(board: Uuid, group: &Group) -> Value {
    json!({ "id": group.id, "board_id": board, "title": group.title, "color": group.color, "position": group.position })
}

fn column_json(board: Uuid, column: &Column) -> Value {
    json!({
        "id": column.id, "board_id": board, "title": column.title, "type": column.kind.as_str(),
        "settings": column.settings, "position": column.position,
    })
}

/// An item as answered.
pub fn item_json(board: Uuid, item: &Item) -> Value {
    json!({
        "id": item.id,
        "board_id": board,
        "group_id": item.group_id,
        "name": item.name,
        "values": item.values,
        "position": item.position,
        "version": item.version,
        "archived": item.archived_at.is_some(),
        "archived_at": item.archived_at,
        "created_by": item.created_by,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    })
}

/// An update as answered.
pub fn update_json(board: Uuid, update: &Update) -> Value {
    json!({
        "id": update.id,
        "board_id": board,
        "item_id": update.item_id,
        "parent_id": update.parent_id,
        "author_id": update.author_id,
        "body": update.body,
        "created_at": update.created_at,
        "edited_at": update.edited_at,
    })
}

fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// A position for `moving` (or, with `None`, something new) placed among `siblings` (ids with
/// their keys, in order; `moving` itself is skipped).
fn place_among<'a>(
    siblings: impl Iterator<Item = (Uuid, &'a str)>,
    moving: Option<Uuid>,
    placement: &Placement,
) -> Result<String, BoardError> {
    let siblings: Vec<(Uuid, &str)> = siblings.filter(|(id, _)| Some(*id) != moving).collect();
    place(&siblings, placement)
}

/// A position for something placed among `siblings` (sorted keys with ids).
fn place(siblings: &[(Uuid, &str)], placement: &Placement) -> Result<String, BoardError> {
    let index_of = |id: Uuid| {
        siblings
            .iter()
            .position(|(s, _)| *s == id)
            .ok_or(BoardError::NotFound("sibling to place next to"))
    };
    let (low, high) = match (placement.before, placement.after) {
        (None, None) => (siblings.last().map(|(_, p)| *p), None),
        (Some(before), None) => {
            let i = index_of(before)?;
            (i.checked_sub(1).map(|j| siblings[j].1), Some(siblings[i].1))
        }
        (None, Some(after)) => {
            let i = index_of(after)?;
            (Some(siblings[i].1), siblings.get(i + 1).map(|(_, p)| *p))
        }
        (Some(before), Some(after)) => {
            let (a, b) = (index_of(after)?, index_of(before)?);
            if a + 1 != b {
                return Err(invalid("`after` and `before` must be adjacent, in that order"));
            }
            (Some(siblings[a].1), Some(siblings[b].1))
        }
    };
    let key = position::between(low, high)
        .ok_or_else(|| BoardError::Conflict("cannot place there; reload and retry".into()))?;
    if key.len() > position::MAX_KEY_LEN {
        return Err(BoardError::Conflict(
            "no room is left between those two neighbours; place it elsewhere".into(),
        ));
    }
    Ok(key)
}

impl BoardState {
    /// Checks and applies one command, returning its changes, event kind and data.
    async fn apply(
        &mut self,
        requester: &Requester,
        command: BoardCommand,
    ) -> Result<(Vec<Change>, EventKind, Value), BoardError> {
        let board_id = self.board.id;
        let at = now();
        match command {
            BoardCommand::UpdateBoard { name, description } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                if name.is_none() && description.is_none() {
                    return Err(invalid("nothing to change: give name or description"));
                }
                let mut board = self.board.clone();
                if let Some(name) = name {
                    board.name = values::check_text("name", &name, MAX_TITLE_CHARS)?;
                }
                if let Some(description) = description {
                    board.description = values::check_description(&description)?;
                }
                board.updated_at = at;
                self.board = board.clone();
                Ok((
                    vec![Change::Board(board.clone())],
                    EventKind::BoardUpdated,
                    board_json(&board),
                ))
            }
            BoardCommand::DeleteBoard => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                self.deleted = true;
                Ok((vec![Change::DeleteBoard], EventKind::BoardDeleted, json!({ "id": board_id })))
            }
            BoardCommand::SetMember { user_id, role } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                if !self.is_org_member(user_id).await? {
                    return Err(invalid("that user is not a member of this organization"));
                }
                let previous = self.members.get(&user_id).copied();
                if previous == Some(role) {
                    return Err(BoardError::Conflict(format!(
                        "already a {} of this board",
                        role.as_str()
                    )));
                }
                self.keep_an_owner(user_id, Some(role))?;
                self.members.insert(user_id, role);
                let kind = if previous.is_some() {
                    EventKind::MemberRoleChanged
                } else {
                    EventKind::MemberAdded
                };
                let data = json!({ "user_id": user_id, "role": role.as_str(), "previous_role": previous.map(BoardRole::as_str) });
                Ok((vec![Change::Member(user_id, Some(role))], kind, data))
            }
            BoardCommand::RemoveMember { user_id } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                let previous =
                    *self.members.get(&user_id).ok_or(BoardError::NotFound("board member"))?;
                self.keep_an_owner(user_id, None)?;
                self.members.remove(&user_id);
                let data = json!({ "user_id": user_id, "previous_role": previous.as_str() });
                Ok((vec![Change::Member(user_id, None)], EventKind::MemberRemoved, data))
            }
            BoardCommand::CreateColumn { title, kind, settings, placement } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                self.limits.room_for_column(self.columns.len())?;
                let title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                let settings = values::check_settings(kind, settings.as_ref())?;
                let position = place_among(
                    self.columns.iter().map(|c| (c.id, c.position.as_str())),
                    None,
                    &placement,
                )?;
                let column = Column { id: Uuid::now_v7(), title, kind, settings, position };
                self.columns.push(column.clone());
                self.columns.sort_by(|a, b| a.position.cmp(&b.position));
                Ok((
                    vec![Change::Column(column.clone())],
                    EventKind::ColumnCreated,
                    column_json(board_id, &column),
                ))
            }
            BoardCommand::UpdateColumn { column_id, title, settings, placement } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                let mut column = self.column(column_id)?.clone();
                if let Some(title) = title {
                    column.title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                }
                if placement != Placement::default() {
                    column.position = place_among(
                        self.columns.iter().map(|c| (c.id, c.position.as_str())),
                        Some(column_id),
                        &placement,
                    )?;
                }
                if let Some(settings) = &settings {
                    column.settings = values::check_settings(column.kind, Some(settings))?;
                }
                // Nothing below can fail: a refused command must leave the board as it was.
                let mut changes = Vec::new();
                if settings.is_some() {
                    // Values no longer allowed by the new labels are cleared, not left invalid.
                    for item in self.items.values_mut() {
                        if let Some(value) = item.values.get(&column_id) {
                            if values::check_value(&column, value).is_err() {
                                item.values.remove(&column_id);
                                item.version += 1;
                                item.updated_at = at;
                                changes.push(Change::Item(item.clone()));
                            }
                        }
                    }
                }
                if let Some(slot) = self.columns.iter_mut().find(|c| c.id == column_id) {
                    *slot = column.clone();
                }
                self.columns.sort_by(|a, b| a.position.cmp(&b.position));
                changes.insert(0, Change::Column(column.clone()));
                Ok((changes, EventKind::ColumnUpdated, column_json(board_id, &column)))
            }
            BoardCommand::DeleteColumn { column_id } => {
                self.require(requester, BoardRole::Owner, Scope::BoardsWrite)?;
                self.column(column_id)?;
                self.columns.retain(|c| c.id != column_id);
                let mut changes = vec![Change::DeleteColumn(column_id)];
                for item in self.items.values_mut() {
                    if item.values.remove(&column_id).is_some() {
                        item.version += 1;
                        item.updated_at = at;
                        changes.push(Change::Item(item.clone()));
                    }
                }
                Ok((
                    changes,
                    EventKind::ColumnDeleted,
                    json!({ "id": column_id, "board_id": board_id }),
                ))
            }
            BoardCommand::CreateGroup { title, color, placement } => {
                self.require(requester, BoardRole::Editor, Scope::BoardsWrite)?;
                self.limits.room_for_group(self.groups.len())?;
                let title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                let color = color.map(|c| values::check_text("color", &c, 32)).transpose()?;
                let position = place_among(
                    self.groups.iter().map(|g| (g.id, g.position.as_str())),
                    None,
                    &placement,
                )?;
                let group = Group { id: Uuid::now_v7(), title, color, position };
                self.groups.push(group.clone());
                self.groups.sort_by(|a, b| a.position.cmp(&b.position));
                Ok((
                    vec![Change::Group(group.clone())],
                    EventKind::GroupCreated,
                    group_json(board_id, &group),
                ))
            }
            BoardCommand::UpdateGroup { group_id, title, color, placement } => {
                self.require(requester, BoardRole::Editor, Scope::BoardsWrite)?;
                let mut group = self.group(group_id)?.clone();
                if let Some(title) = title {
                    group.title = values::check_text("title", &title, MAX_TITLE_CHARS)?;
                }
                if let Some(color) = color {
                    group.color = Some(values::check_text("color", &color, 32)?);
                }
                if placement != Placement::default() {
                    group.position = place_among(
                        self.groups.iter().map(|g| (g.id, g.position.as_str())),
                        Some(group_id),
                        &placement,
                    )?;
                }
                if let Some(slot) = self.groups.iter_mut().find(|g| g.id == group_id) {
                    *slot = group.clone();
                }
                self.groups.sort_by(|a, b| a.position.cmp(&b.position));
                Ok((
                    vec![Change::Group(group.clone())],
                    EventKind::GroupUpdated,
                    group_json(board_id, &group),
                ))
            }
            BoardCommand::DeleteGroup { group_id } => {
                self.require(requester, BoardRole::Editor, Scope::BoardsWrite)?;
                self.group(group_id)?;
                self.groups.retain(|g| g.id != group_id);
                self.items.retain(|_, i| i.group_id != group_id);
                Ok((
                    vec![Change::DeleteGroup(group_id)],
                    EventKind::GroupDeleted,
                    json!({ "id": group_id, "board_id": board_id }),
                ))
            }
            BoardCommand::CreateItem { group_id, name, values, placement } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                self.group(group_id)?;
                // Archived items count: they are held, snapshotted and replayed alike.
                self.limits.room_for_item(self.items.len())?;
                let name = values::check_text("name", &name, MAX_NAME_CHARS)?;
                let mut checked = BTreeMap::new();
                for (column_id, value) in values {
                    if let Some(value) = self.check_value(column_id, &value).await? {
                        checked.insert(column_id, value);
                    }
                }
                self.limits.check_item_values(&checked)?;
                let position = place_among(
                    self.items_in(group_id).iter().map(|i| (i.id, i.position.as_str())),
                    None,
                    &placement,
                )?;
                let item = Item {
                    id: Uuid::now_v7(),
                    group_id,
                    name,
                    values: checked,
                    position,
                    version: 1,
                    archived_at: None,
                    created_by: Some(requester.user_id),
                    created_at: at,
                    updated_at: at,
                };
                self.items.insert(item.id, item.clone());
                Ok((
                    vec![Change::Item(item.clone())],
                    EventKind::ItemCreated,
                    item_json(board_id, &item),
                ))
            }
            BoardCommand::UpdateItem { item_id, name, values, expected_version } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let mut item = self.item(item_id)?.clone();
                if let Some(expected) = expected_version {
                    if expected != item.version {
                        return Err(BoardError::VersionConflict {
                            current: item.version,
                            expected,
                        });
                    }
                }
                if name.is_none() && values.is_empty() {
                    return Err(invalid("nothing to change: give name or values"));
                }
                if let Some(name) = name {
                    item.name = values::check_text("name", &name, MAX_NAME_CHARS)?;
                }
                let mut changed_values = serde_json::Map::new();
                for (column_id, value) in values {
                    match self.check_value(column_id, &value).await? {
                        Some(value) => {
                            item.values.insert(column_id, value.clone());
                            changed_values.insert(column_id.to_string(), value);
                        }
                        None => {
                            item.values.remove(&column_id);
                            changed_values.insert(column_id.to_string(), Value::Null);
                        }
                    }
                }
                // The merged values, so many small changes cannot grow an item past the bound.
                self.limits.check_item_values(&item.values)?;
                item.version += 1;
                item.updated_at = at;
                self.items.insert(item.id, item.clone());
                let mut data = item_json(board_id, &item);
                data["changed_values"] = Value::Object(changed_values);
                Ok((vec![Change::Item(item)], EventKind::ItemUpdated, data))
            }
            BoardCommand::MoveItem { item_id, group_id, placement } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let mut item = self.item(item_id)?.clone();
                self.group(group_id)?;
                let from_group = item.group_id;
                item.position = place_among(
                    self.items_in(group_id).iter().map(|i| (i.id, i.position.as_str())),
                    Some(item_id),
                    &placement,
                )?;
                item.group_id = group_id;
                item.version += 1;
                item.updated_at = at;
                self.items.insert(item.id, item.clone());
                let mut data = item_json(board_id, &item);
                data["from_group_id"] = json!(from_group);
                Ok((vec![Change::Item(item)], EventKind::ItemMoved, data))
            }
            BoardCommand::ArchiveItem { item_id, archived } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let mut item = self.item(item_id)?.clone();
                if item.archived_at.is_some() == archived {
                    return Err(BoardError::Conflict(if archived {
                        "already archived".into()
                    } else {
                        "not archived".into()
                    }));
                }
                item.archived_at = archived.then_some(at);
                item.version += 1;
                item.updated_at = at;
                self.items.insert(item.id, item.clone());
                Ok((
                    vec![Change::Item(item.clone())],
                    EventKind::ItemArchived,
                    item_json(board_id, &item),
                ))
            }
            BoardCommand::DeleteItem { item_id } => {
                self.require(requester, BoardRole::Editor, Scope::ItemsWrite)?;
                let item = self.items.remove(&item_id).ok_or(BoardError::NotFound("item"))?;
                Ok((
                    vec![Change::DeleteItem(item_id)],
                    EventKind::ItemDeleted,
                    json!({ "id": item_id, "board_id": board_id, "group_id": item.group_id }),
                ))
            }
            BoardCommand::CreateUpdate { item_id, body, parent_id } => {
                self.require(requester, BoardRole::Editor, Scope::UpdatesWrite)?;
                self.item(item_id)?;
                let body = values::check_long_text("body", &body, MAX_LONG_TEXT_CHARS)?;
                self.limits.check_update_body(&body)?;
                if let Some(parent) = parent_id {
                    let parent = match self.pending_update(parent) {
                        Some(pending) => pending,
                        None => self
                            .store
                            .update(self.org(), board_id, item_id, parent)
                            .await
                            .map_err(unavailable)?,
                    };
                    let parent = parent
                        .filter(|p| p.item_id == item_id)
                        .ok_or(BoardError::NotFound("parent update on this item"))?;
                    if parent.parent_id.is_some() {
                        return Err(invalid(
                            "reply to the update itself, not to one of its replies",
                        ));
                    }
                }
                let update = Update {
                    id: Uuid::now_v7(),
                    item_id,
                    parent_id,
                    author_id: Some(requester.user_id),
                    body,
                    created_at: at,
                    edited_at: None,
                };
                Ok((
                    vec![Change::Update(update.clone())],
                    EventKind::UpdateCreated,
                    update_json(board_id, &update),
                ))
            }
            BoardCommand::EditUpdate { item_id, update_id, body } => {
                self.require(requester, BoardRole::Editor, Scope::UpdatesWrite)?;
                self.item(item_id)?;
                let mut update = self
                    .store
                    .update(self.org(), board_id, item_id, update_id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(BoardError::NotFound("update"))?;
                if update.author_id != Some(requester.user_id) {
                    return Err(BoardError::Forbidden("author"));
                }
                update.body = values::check_long_text("body", &body, MAX_LONG_TEXT_CHARS)?;
                self.limits.check_update_body(&update.body)?;
                update.edited_at = Some(at);
                Ok((
                    vec![Change::Update(update.clone())],
                    EventKind::UpdateEdited,
                    update_json(board_id, &update),
                ))
            }
            BoardCommand::DeleteUpdate { item_id, update_id } => {
                let role = self.require(requester, BoardRole::Editor, Scope::UpdatesWrite)?;
                self.item(item_id)?;
                let update = self
                    .store
                    .update(self.org(), board_id, item_id, update_id)
                    .await
                    .map_err(unavailable)?
                    .ok_or(BoardError::NotFound("update"))?;
                if update.author_id != Some(requester.user_id) && role != BoardRole::Owner {
                    return Err(BoardError::Forbidden("owner (or the update's author)"));
                }
                Ok((
                    vec![Change::DeleteUpdate(update_id)],
                    EventKind::UpdateDeleted,
                    json!({ "id": update_id, "item_id": item_id, "board_id": board_id }),
                ))
            }
        }
    }

    /// A board always keeps an explicit owner.
    fn keep_an_owner(&self, user: Uuid, next: Option<BoardRole>) -> Result<(), BoardError> {
        let is_owner = self.members.get(&user) == Some(&BoardRole::Owner);
        let owners = self.members.values().filter(|r| **r == BoardRole::Owner).count();
        if is_owner && next != Some(BoardRole::Owner) && owners <= 1 {
            return Err(BoardError::Conflict("a board must keep at least one owner".into()));
        }
        Ok(())
    }

    /// An update as the batch waiting to be written leaves it: `Some(Some(_))` written there,
    /// `Some(None)` deleted there, `None` not touched (the store knows).
    fn pending_update(&self, id: Uuid) -> Option<Option<Update>> {
        let pending = self.pending.as_ref()?;
        pending.changes.iter().fold(None, |found, change| match change {
            Change::Update(update) if update.id == id => Some(Some(update.clone())),
            Change::DeleteUpdate(deleted) if *deleted == id => Some(None),
            _ => found,
        })
    }

    /// Whether `user` belongs to the board's organization, as its org actor (the owner of
    /// memberships) knows it: from its memory, once it has loaded the organization.
    async fn is_org_member(&self, user: Uuid) -> Result<bool, BoardError> {
        match self.orgs.role(self.org(), user).await {
            Ok(role) => Ok(role.is_some()),
            Err(err) => {
                tracing::error!(error = %err, board = %self.board.id, "organization lookup failed");
                Err(BoardError::Unavailable("organization is unavailable; retry".into()))
            }
        }
    }

    /// Checks a value for a column of this board; `None` clears it.
    async fn check_value(
        &self,
        column_id: Uuid,
        value: &Value,
    ) -> Result<Option<Value>, BoardError> {
        let column = self
            .columns
            .iter()
            .find(|c| c.id == column_id)
            .ok_or_else(|| invalid(format!("no column {column_id} on this board")))?;
        let checked = values::check_value(column, value)?;
        for person in &checked.people {
            if !self.is_org_member(*person).await? {
                return Err(invalid(format!("user {person} is not a member of this organization")));
            }
        }
        Ok((!checked.value.is_null()).then_some(checked.value))
    }

    fn read(&self, requester: &Requester, query: BoardQuery) -> Result<Value, BoardError> {
        match query {
            BoardQuery::Snapshot => {
                self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let with_items =
                    requester.scopes.as_ref().is_none_or(|s| s.contains(&Scope::ItemsRead));
                Ok(self.snapshot(with_items))
            }
            BoardQuery::Board => {
                let role = self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let mut board = board_json(&self.board);
                board["role"] = json!(role.as_str());
                board["seq"] = json!(self.seq);
                Ok(board)
            }
            BoardQuery::Item(id) => {
                self.require(requester, BoardRole::Viewer, Scope::ItemsRead)?;
                Ok(item_json(self.board.id, self.item(id)?))
            }
            BoardQuery::Items { group_id, after, limit } => {
                self.require(requester, BoardRole::Viewer, Scope::ItemsRead)?;
                let limit = limit.max(1);
                let groups: Vec<Uuid> = match group_id {
                    Some(g) => vec![self.group(g)?.id],
                    None => self.groups.iter().map(|g| g.id).collect(),
                };
                let ordered: Vec<&Item> = groups.iter().flat_map(|g| self.items_in(*g)).collect();
                let start = match after {
                    Some(after) => ordered
                        .iter()
                        .position(|i| i.id == after)
                        .map(|p| p + 1)
                        .ok_or_else(|| invalid("cursor names no item here"))?,
                    None => 0,
                };
                let page: Vec<Value> = ordered
                    .iter()
                    .skip(start)
                    .take(limit)
                    .map(|i| item_json(self.board.id, i))
                    .collect();
                let next = (start + limit < ordered.len()).then(|| ordered[start + limit - 1].id);
                Ok(json!({ "items": page, "next_cursor": next }))
            }
            BoardQuery::Members => {
                self.require(requester, BoardRole::Viewer, Scope::BoardsRead)?;
                let mut members: Vec<(&Uuid, &BoardRole)> = self.members.iter().collect();
                members.sort();
                Ok(
                    json!({ "members": members.iter().map(|(u, r)| json!({"user_id": u, "role": r.as_str()})).collect::<Vec<_>>() }),
                )
            }
            BoardQuery::Access(scope) => {
                let role = self.require(requester, BoardRole::Viewer, scope)?;
                Ok(json!({ "role": role.as_str() }))
            }
        }
    }

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

fn unavailable(err: anyhow::Error) -> BoardError {
    tracing::error!(error = ?err, "board storage failed");
    BoardError::Unavailable("storage is unavailable; retry".into())
}

/// How many recent idempotency keys a board remembers without asking the store.
const RECENT_KEYS: usize = 10_000;

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
                    let cache_key = (requester.user_id, key.clone());
                    let remembered = state.recent_keys.get(&cache_key).cloned();
                    // The answer to repeat, and whether it is known to be committed.
                    let known = match (key_lookup, remembered) {
                        (KeyLookup::Found(output), _) => Some((output, true)),
                        (_, Some(output)) => Some((output, false)),
                        (KeyLookup::Absent(at), None) if at >= state.keys_trusted_since => None,
                        (_, None) => state
                            .store
                            .idempotent_result(state.org(), state.board.id, requester.user_id, key)
                            .await
                            .unwrap_or_else(|err| {
                                tracing::warn!(error = ?err, "idempotency lookup failed");
                                None
                            })
                            .map(|output| (output, true)),
                    };
                    if let Some((output, committed)) = known {
                        // Answer only after any batch holding the original has committed. If
                        // that batch failed, its keys were forgotten: the original never
                        // happened, and neither may its repetition.
                        state.flush(&myself).await?;
                        let answer = if committed || state.recent_keys.contains_key(&cache_key) {
                            Ok(output)
                        } else {
                            Err(BoardError::Unavailable(
                                "the first attempt was not saved; retry".into(),
                            ))
                        };
                        let _ = reply.send(answer);
                        return Ok(());
                    }
                }
                match state.apply(&requester, command).await {
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                    Ok((changes, kind, data)) => {
                        state.seq += 1;
                        let event = BoardEvent {
                            organization_id: state.org(),
                            board_id: state.board.id,
                            seq: state.seq,
                            kind,
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
                        if let Some(key) = idempotency_key {
                            // Past the bound (and past twice the pending keys, so a huge batch
                            // is not re-inserted on every command).
                            if state.recent_keys.len()
                                >= RECENT_KEYS.max(2 * pending.idempotent.len())
                            {
                                // Committed keys are all in the store from now on; pending
                                // ones are not yet, so they stay.
                                state.recent_keys.clear();
                                for pending in &pending.idempotent {
                                    state.recent_keys.insert(
                                        (pending.user_id, pending.key.clone()),
                                        pending.output.clone(),
                                    );
                                }
                                state.keys_trusted_since = Instant::now();
                            }
                            state
                                .recent_keys
                                .insert((requester.user_id, key.clone()), output.clone());
                            pending.idempotent.push(IdempotentResult {
                                user_id: requester.user_id,
                                key,
                                output: output.clone(),
                            });
                        }
                        pending.replies.push((reply, output));
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::test_stores::{NoOrgs, TestBoards};

    /// Stands in for the supervisor of the (unused) org registry.
    struct Bystander;

    impl Actor for Bystander {
        type Msg = ();
        type State = ();
        type Arguments = ();
        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// Moving two items back and forth past each other lengthens their keys; placements stop
    /// being accepted at the bound instead of growing keys for ever.
    #[test]
    fn positions_stop_growing_at_the_bound() {
        let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut keys: HashMap<Uuid, String> =
            HashMap::from([(x, "a0".to_owned()), (y, "a1".to_owned()), (z, "a2".to_owned())]);
        let mut refused = None;
        for n in 0..100_000 {
            // Move whichever of x and y is first to just after the other (z stays last).
            let (first, second) = if keys[&x] < keys[&y] { (x, y) } else { (y, x) };
            let mut siblings: Vec<(Uuid, &str)> = keys
                .iter()
                .filter(|(id, _)| **id != first)
                .map(|(id, key)| (*id, key.as_str()))
                .collect();
            siblings.sort_by(|a, b| a.1.cmp(b.1));
            match place(&siblings, &Placement { before: None, after: Some(second) }) {
                Ok(key) => {
                    assert!(key.as_str() > keys[&second].as_str() && key < keys[&z]);
                    keys.insert(first, key);
                }
                Err(err) => {
                    refused = Some((n, err));
                    break;
                }
            }
        }
        let (moves, err) = refused.expect("placements must be refused at some point");
        assert!(matches!(err, BoardError::Conflict(_)), "{err:?}");
        assert!(moves > 500, "only {moves} moves before the bound");
        assert!(keys.values().all(|k| k.len() <= position::MAX_KEY_LEN));
    }

    /// A retry that arrives while its original still waits in the batch is answered after the
    /// batch's commit; when that commit fails, the original never happened, so neither did the
    /// retry: both are told to try again, and a later retry applies it once.
    #[tokio::test]
    async fn a_repeat_of_a_command_whose_batch_failed_is_not_a_success() {
        let (org, board_id, group_id, user) =
            (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let at = now();
        let store = Arc::new(TestBoards::holding(LoadedBoard {
            board: Board {
                id: board_id,
                organization_id: org,
                name: "b".into(),
                description: String::new(),
                created_at: at,
                updated_at: at,
            },
            seq: 1,
            members: HashMap::from([(user, BoardRole::Owner)]),
            columns: Vec::new(),
            groups: vec![Group {
                id: group_id,
                title: "g".into(),
                color: None,
                position: "a".into(),
            }],
            items: Vec::new(),
        }));
        store.failing.store(true, Ordering::SeqCst);
        let (bystander, _) = Actor::spawn(None, Bystander, ()).await.unwrap();
        let orgs =
            Arc::new(Orgs::new(Arc::new(NoOrgs), bystander.get_cell(), Duration::from_secs(60)));
        let args = BoardArgs {
            loaded: store.board.clone().unwrap(),
            store: store.clone(),
            bus: EventBus::default(),
            orgs,
            idle_timeout: Duration::from_secs(60),
            limits: BoardLimits::default(),
        };
        let (actor, _) = Actor::spawn(None, BoardActor, args).await.unwrap();
        let create = |reply| BoardMessage::Command {
            requester: Requester { user_id: user, org_role: OrgRole::Member, scopes: None },
            command: BoardCommand::CreateItem {
                group_id,
                name: "once".into(),
                values: BTreeMap::new(),
                placement: Placement::default(),
            },
            idempotency_key: Some("k".into()),
            key_lookup: KeyLookup::Absent(Instant::now()),
            reply,
        };
        // Both wait in the mailbox before the first is applied: the second finds the key
        // remembered from the first, whose batch then fails.
        let (first_tx, first) = ractor::concurrency::oneshot();
        let (retry_tx, retry) = ractor::concurrency::oneshot();
        actor.cast(create(first_tx.into())).unwrap();
        actor.cast(create(retry_tx.into())).unwrap();
        assert!(matches!(first.await.unwrap(), Err(BoardError::Unavailable(_))));
        assert!(matches!(retry.await.unwrap(), Err(BoardError::Unavailable(_))));
        // The store works again: the next retry applies the command, once.
        store.failing.store(false, Ordering::SeqCst);
        let (again_tx, again) = ractor::concurrency::oneshot();
        actor.cast(create(again_tx.into())).unwrap();
        assert!(again.await.unwrap().is_ok());
        assert_eq!(*store.committed_keys.lock().unwrap(), vec!["k".to_owned()]);
        actor.stop(None);
        bystander.stop(None);
    }
}
