//! The board domain: what a board holds, the commands that change it, the events they emit, and
//! the errors they refuse with.
//!
//! Everything here is plain data. The rules that connect them live in [`crate::board`] (which
//! applies commands) and [`crate::values`] (which checks column values).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A person's role on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardRole {
    /// Reads.
    Viewer,
    /// Also creates, edits, moves and archives items and groups, and writes updates.
    Editor,
    /// Also manages columns, members, board settings and deletion.
    Owner,
}

impl BoardRole {
    /// Stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BoardRole::Viewer => "viewer",
            BoardRole::Editor => "editor",
            BoardRole::Owner => "owner",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(name: &str) -> Option<BoardRole> {
        match name {
            "viewer" => Some(BoardRole::Viewer),
            "editor" => Some(BoardRole::Editor),
            "owner" => Some(BoardRole::Owner),
            _ => None,
        }
    }
}

/// The type of a column, which decides what its values may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Short text.
    Text,
    /// Long text.
    LongText,
    /// A JSON number.
    Number,
    /// One of the column's labels.
    Status,
    /// `YYYY-MM-DD`.
    Date,
    /// Members of the organization.
    Person,
    /// true or false.
    Checkbox,
    /// Some of the column's labels.
    Dropdown,
    /// An http(s) URL, optionally with a text.
    Link,
}

impl ColumnKind {
    /// Stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Text => "text",
            ColumnKind::LongText => "long_text",
            ColumnKind::Number => "number",
            ColumnKind::Status => "status",
            ColumnKind::Date => "date",
            ColumnKind::Person => "person",
            ColumnKind::Checkbox => "checkbox",
            ColumnKind::Dropdown => "dropdown",
            ColumnKind::Link => "link",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(name: &str) -> Option<ColumnKind> {
        serde_json::from_value(Value::String(name.to_owned())).ok()
    }
}

/// A board's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Board {
    /// Id.
    pub id: Uuid,
    /// Owning organization.
    pub organization_id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of name or description.
    pub updated_at: DateTime<Utc>,
}

/// A column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: ColumnKind,
    /// Type-specific settings (labels of status and dropdown columns).
    pub settings: Value,
    /// Position key.
    pub position: String,
}

/// A group of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Display color.
    pub color: Option<String>,
    /// Position key.
    pub position: String,
}

/// An item (a row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Id.
    pub id: Uuid,
    /// Its group.
    pub group_id: Uuid,
    /// Name.
    pub name: String,
    /// Value per column id.
    pub values: BTreeMap<Uuid, Value>,
    /// Position key within its group.
    pub position: String,
    /// Bumped by every change.
    pub version: i64,
    /// When archived, if it is.
    pub archived_at: Option<DateTime<Utc>>,
    /// Creator.
    pub created_by: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// An update: a comment on an item, possibly a reply to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    /// Id.
    pub id: Uuid,
    /// The item it is on.
    pub item_id: Uuid,
    /// The update it replies to.
    pub parent_id: Option<Uuid>,
    /// Author.
    pub author_id: Option<Uuid>,
    /// Text.
    pub body: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub edited_at: Option<DateTime<Utc>>,
}

/// A file attached to an item (and, with `update_id`, to one of its comments): its metadata.
/// The bytes live encrypted in the blob store; where, and under which key, is [`StoredBlob`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    /// Id.
    pub id: Uuid,
    /// The item it is on.
    pub item_id: Uuid,
    /// The comment it is attached to.
    pub update_id: Option<Uuid>,
    /// The file's name: display text only.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The checked content type.
    pub content_type: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Who uploaded it.
    pub created_by: Option<Uuid>,
    /// Upload time.
    pub created_at: DateTime<Utc>,
}

/// Where an attachment's encrypted bytes are and the data key that reads them, wrapped by a
/// master key: written to its row, never into an event, an answer or a log.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredBlob {
    /// The blob's random name in the blob store.
    pub blob_key: String,
    /// The master key that wrapped the data key.
    pub key_id: String,
    /// The data key, wrapped.
    pub wrapped_key: Vec<u8>,
}

impl std::fmt::Debug for StoredBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredBlob")
            .field("blob_key", &self.blob_key)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Where to put something in an ordered list: between two neighbours, named by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Place right before this sibling.
    #[serde(default)]
    pub before: Option<Uuid>,
    /// Place right after this sibling.
    #[serde(default)]
    pub after: Option<Uuid>,
}

/// A change to a board. Every write, from REST or a socket, is one of these.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum BoardCommand {
    /// Create the board (sent by the registry to the actor of a board not yet created; the
    /// sender becomes its owner).
    CreateBoard {
        /// Name.
        name: String,
        /// Description.
        description: String,
    },
    /// Rename or describe the board.
    UpdateBoard {
        /// New name.
        name: Option<String>,
        /// New description.
        description: Option<String>,
    },
    /// Delete the board.
    DeleteBoard,
    /// Add a member or change their role.
    SetMember {
        /// The user (a member of the organization).
        user_id: Uuid,
        /// Their role.
        role: BoardRole,
    },
    /// Remove a member.
    RemoveMember {
        /// The user.
        user_id: Uuid,
    },
    /// Add a column.
    CreateColumn {
        /// Title.
        title: String,
        /// Type.
        kind: ColumnKind,
        /// Settings.
        settings: Option<Value>,
        /// Where.
        placement: Placement,
    },
    /// Change a column's title, type or settings, or move it.
    UpdateColumn {
        /// The column.
        column_id: Uuid,
        /// New title.
        title: Option<String>,
        /// New type; values it does not allow are cleared.
        kind: Option<ColumnKind>,
        /// New settings.
        settings: Option<Value>,
        /// New place, if moving.
        placement: Placement,
    },
    /// Delete a column and its values.
    DeleteColumn {
        /// The column.
        column_id: Uuid,
    },
    /// Add a group.
    CreateGroup {
        /// Title.
        title: String,
        /// Color.
        color: Option<String>,
        /// Where.
        placement: Placement,
    },
    /// Rename, recolor or move a group.
    UpdateGroup {
        /// The group.
        group_id: Uuid,
        /// New title.
        title: Option<String>,
        /// New color.
        color: Option<String>,
        /// New place, if moving.
        placement: Placement,
    },
    /// Delete a group and its items.
    DeleteGroup {
        /// The group.
        group_id: Uuid,
    },
    /// Add an item.
    CreateItem {
        /// Its group.
        group_id: Uuid,
        /// Name.
        name: String,
        /// Initial values by column id.
        values: BTreeMap<Uuid, Value>,
        /// Where in the group (default: last).
        placement: Placement,
    },
    /// Change an item's name or values. Values merge per column; `null` clears one.
    UpdateItem {
        /// The item.
        item_id: Uuid,
        /// New name.
        name: Option<String>,
        /// Values to set.
        values: BTreeMap<Uuid, Value>,
        /// Refuse with a conflict unless the item is at this version.
        expected_version: Option<i64>,
    },
    /// Move an item within or across groups of this board.
    MoveItem {
        /// The item.
        item_id: Uuid,
        /// Target group.
        group_id: Uuid,
        /// Where in it (default: last).
        placement: Placement,
    },
    /// Archive (or restore) an item.
    ArchiveItem {
        /// The item.
        item_id: Uuid,
        /// false restores it.
        archived: bool,
    },
    /// Delete an item.
    DeleteItem {
        /// The item.
        item_id: Uuid,
    },
    /// Comment on an item.
    CreateUpdate {
        /// The item.
        item_id: Uuid,
        /// Text.
        body: String,
        /// The update this replies to.
        parent_id: Option<Uuid>,
    },
    /// Edit one's own update.
    EditUpdate {
        /// The item.
        item_id: Uuid,
        /// The update.
        update_id: Uuid,
        /// New text.
        body: String,
    },
    /// Delete an update (one's own; owners any).
    DeleteUpdate {
        /// The item.
        item_id: Uuid,
        /// The update.
        update_id: Uuid,
    },
    /// Record a file, already sealed into the blob store, as attached to an item (or to one of
    /// its comments). If refused, the edge deletes the blob.
    AddAttachment {
        /// The item.
        item_id: Uuid,
        /// The comment on that item, if any.
        update_id: Option<Uuid>,
        /// The file's name (display text).
        name: String,
        /// Size in bytes.
        size: u64,
        /// The checked content type.
        content_type: String,
        /// SHA-256 of the bytes, lowercase hex.
        sha256: String,
        /// Where the sealed bytes are.
        blob: StoredBlob,
    },
    /// Delete an attachment (its blob is deleted by the edge once this commits).
    DeleteAttachment {
        /// The attachment.
        attachment_id: Uuid,
    },
}

/// The kind of a committed change, named `<entity>.<verb>`: the wire's own vocabulary, which
/// sockets, webhooks and key scopes use.
pub use boardroom_protocol::events::EventKind;

/// What a committed change did, with what it changed as it is after the change: the payload of
/// its event, and the answer to the command that made it. The edge maps it to the wire
/// (`src/wire`); nothing here knows the wire's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum EventData {
    /// `board.created`: the board, the group it starts with, and its owner.
    BoardCreated {
        /// The board.
        board: Board,
        /// Its first group.
        group: Group,
        /// Its creator, its first owner.
        owner: Uuid,
    },
    /// `board.updated`.
    BoardUpdated(Board),
    /// `board.deleted` (the event names the board).
    BoardDeleted,
    /// `member.added` (no `previous_role`) or `member.role_changed`.
    MemberSet {
        /// The user.
        user_id: Uuid,
        /// Their role now.
        role: BoardRole,
        /// Their role before, if they were a member.
        previous_role: Option<BoardRole>,
    },
    /// `member.removed`.
    MemberRemoved {
        /// The user.
        user_id: Uuid,
        /// The role they had.
        previous_role: BoardRole,
    },
    /// `column.created`.
    ColumnCreated(Column),
    /// `column.updated`.
    ColumnUpdated(Column),
    /// `column.deleted`.
    ColumnDeleted {
        /// The column.
        column_id: Uuid,
    },
    /// `group.created`.
    GroupCreated(Group),
    /// `group.updated`.
    GroupUpdated(Group),
    /// `group.deleted` (with its items).
    GroupDeleted {
        /// The group.
        group_id: Uuid,
    },
    /// `item.created`.
    ItemCreated(Item),
    /// `item.updated`: the item, and the values this change set (`Null` where it cleared one).
    ItemUpdated {
        /// The item after the change.
        item: Item,
        /// The values set, by column.
        changed_values: BTreeMap<Uuid, Value>,
    },
    /// `item.moved`: the item, and the group it left.
    ItemMoved {
        /// The item after the move.
        item: Item,
        /// The group it was in.
        from_group_id: Uuid,
    },
    /// `item.archived` (or restored).
    ItemArchived(Item),
    /// `item.deleted`.
    ItemDeleted {
        /// The item.
        item_id: Uuid,
        /// The group it was in.
        group_id: Uuid,
    },
    /// `update.created`.
    UpdateCreated(Update),
    /// `update.edited`.
    UpdateEdited(Update),
    /// `update.deleted`.
    UpdateDeleted {
        /// The update.
        update_id: Uuid,
        /// The item it was on.
        item_id: Uuid,
    },
    /// `attachment.added`: its metadata (never where its bytes are).
    AttachmentAdded(Attachment),
    /// `attachment.deleted`.
    AttachmentDeleted {
        /// The attachment.
        attachment_id: Uuid,
        /// The item it was on.
        item_id: Uuid,
    },
}

impl EventData {
    /// The kind of event this is the payload of.
    pub const fn kind(&self) -> EventKind {
        match self {
            EventData::BoardCreated { .. } => EventKind::BoardCreated,
            EventData::BoardUpdated(_) => EventKind::BoardUpdated,
            EventData::BoardDeleted => EventKind::BoardDeleted,
            EventData::MemberSet { previous_role: None, .. } => EventKind::MemberAdded,
            EventData::MemberSet { previous_role: Some(_), .. } => EventKind::MemberRoleChanged,
            EventData::MemberRemoved { .. } => EventKind::MemberRemoved,
            EventData::ColumnCreated(_) => EventKind::ColumnCreated,
            EventData::ColumnUpdated(_) => EventKind::ColumnUpdated,
            EventData::ColumnDeleted { .. } => EventKind::ColumnDeleted,
            EventData::GroupCreated(_) => EventKind::GroupCreated,
            EventData::GroupUpdated(_) => EventKind::GroupUpdated,
            EventData::GroupDeleted { .. } => EventKind::GroupDeleted,
            EventData::ItemCreated(_) => EventKind::ItemCreated,
            EventData::ItemUpdated { .. } => EventKind::ItemUpdated,
            EventData::ItemMoved { .. } => EventKind::ItemMoved,
            EventData::ItemArchived(_) => EventKind::ItemArchived,
            EventData::ItemDeleted { .. } => EventKind::ItemDeleted,
            EventData::UpdateCreated(_) => EventKind::UpdateCreated,
            EventData::UpdateEdited(_) => EventKind::UpdateEdited,
            EventData::UpdateDeleted { .. } => EventKind::UpdateDeleted,
            EventData::AttachmentAdded(_) => EventKind::AttachmentAdded,
            EventData::AttachmentDeleted { .. } => EventKind::AttachmentDeleted,
        }
    }

    /// The item it carries as it is now, if it carries one.
    pub fn item(&self) -> Option<&Item> {
        match self {
            EventData::ItemCreated(item)
            | EventData::ItemArchived(item)
            | EventData::ItemUpdated { item, .. }
            | EventData::ItemMoved { item, .. } => Some(item),
            _ => None,
        }
    }
}

/// A committed change, as logged in `board_events` and published on the event bus.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoardEvent {
    /// Organization.
    pub organization_id: Uuid,
    /// Board.
    pub board_id: Uuid,
    /// Position in the board's log: gap-free, strictly increasing.
    pub seq: i64,
    /// Who did it.
    pub actor: Option<Uuid>,
    /// What happened, with what changed as it is after the change.
    pub data: EventData,
    /// Commit time.
    pub created_at: DateTime<Utc>,
}

impl BoardEvent {
    /// What happened.
    pub const fn kind(&self) -> EventKind {
        self.data.kind()
    }
}

/// Why a command or query is refused. Each maps to one stable error code at the edge.
// Serde between nodes: `crate::remote`, through a representation with owned names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// The board, or something on it, does not exist or is not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller's board role is too low.
    #[error("this needs the board's {0} role")]
    Forbidden(&'static str),
    /// The API key lacks a scope.
    #[error("this API key lacks the {0} scope")]
    MissingScope(&'static str),
    /// The input fails validation.
    #[error("{0}")]
    Invalid(String),
    /// The item is not at the expected version.
    #[error("item is at version {current}, not {expected}")]
    VersionConflict {
        /// The item's version.
        current: i64,
        /// What the caller expected.
        expected: i64,
    },
    /// The change conflicts with the board's state.
    #[error("{0}")]
    Conflict(String),
    /// The board already holds the most of something it may hold ([`crate::bounds`]).
    #[error("{0}")]
    LimitReached(String),
    /// The change would make something larger than it may be ([`crate::bounds`]).
    #[error("{0}")]
    TooLarge(String),
    /// The board's actor or database failed; nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
}

/// Shorthand for validation errors.
pub fn invalid(message: impl Into<String>) -> BoardError {
    BoardError::Invalid(message.into())
}
