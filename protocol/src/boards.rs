//! Boards on the wire: the board, its columns, groups, items, updates (comments) and members as
//! REST answers them and events carry them, the snapshot, and the bodies of every board write.
//!
//! A board write's body is the same type on REST and on a socket (where the frame adds
//! `board_id` and the ids REST carries in its path). Ids are UUIDs and times RFC 3339 UTC
//! strings in both encodings (see [`crate::codec`]). Fields that are `null` on the wire are
//! `Option`s that are always written; fields that can be absent say so.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A person's role on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BoardRole {
    /// Reads.
    Viewer,
    /// Also creates, edits, moves and archives items and groups, and writes updates.
    Editor,
    /// Also manages columns, members, webhooks, board settings and deletion.
    Owner,
}

/// The type of a column, which decides what its values may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Short text.
    Text,
    /// Long text.
    LongText,
    /// A number.
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

/// A board's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Board {
    /// Id.
    pub id: Uuid,
    /// Owning organization.
    pub organization_id: Uuid,
    /// Name.
    pub name: String,
    /// Description (empty when none).
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of name or description.
    pub updated_at: DateTime<Utc>,
}

/// A board with the caller's role on it: an entry of `GET /orgs/{org}/boards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardWithRole {
    /// The board.
    #[serde(flatten)]
    pub board: Board,
    /// The caller's role (owner for organization admins).
    pub role: BoardRole,
}

/// `GET /orgs/{org}/boards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardList {
    /// The boards the caller may see.
    pub boards: Vec<BoardWithRole>,
}

/// `POST /orgs/{org}/boards`: the new board, its first group, and the caller's role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedBoard {
    /// The board.
    #[serde(flatten)]
    pub board: Board,
    /// Always `owner`: the creator owns the board.
    pub role: BoardRole,
    /// The `seq` of the `board.created` event.
    pub seq: i64,
    /// The group every board starts with.
    pub groups: Vec<Group>,
}

/// A column, as REST answers it and column events carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Column {
    /// Id.
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// Title.
    pub title: String,
    /// Type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Type-specific settings: `{"labels": [...]}` for status and dropdown columns, else `{}`.
    pub settings: Value,
    /// Position key; columns sort by it.
    pub position: String,
}

/// A column inside a [`Snapshot`]: a [`Column`] without `board_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotColumn {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Type-specific settings.
    pub settings: Value,
    /// Position key.
    pub position: String,
}

/// A group of items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    /// Id.
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// Title.
    pub title: String,
    /// Display color.
    #[schema(required = true)]
    pub color: Option<String>,
    /// Position key; groups sort by it.
    pub position: String,
}

/// An item (a row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Id.
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// Its group.
    pub group_id: Uuid,
    /// Name.
    pub name: String,
    /// Value per column id; a column without a value is absent.
    pub values: BTreeMap<Uuid, Value>,
    /// Position key within its group.
    pub position: String,
    /// Bumped by every change; also the `ETag`.
    pub version: i64,
    /// Whether it is archived (`archived_at` is set).
    pub archived: bool,
    /// When it was archived.
    #[schema(required = true)]
    pub archived_at: Option<DateTime<Utc>>,
    /// Creator (`null` once their account was deleted).
    #[schema(required = true)]
    pub created_by: Option<Uuid>,
    /// [`DELETED_USER_NAME`] when the creator's account was deleted; absent otherwise (look
    /// people up by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_name: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// How content is attributed once its author's account was deleted (erased): their name and id
/// are gone, the content stays. Person cells and logged events that named them hold the nil id
/// (`00000000-0000-0000-0000-000000000000`), which clients show the same way.
pub const DELETED_USER_NAME: &str = "Deleted user";

/// The attribution of content whose author reference is `author`: [`DELETED_USER_NAME`] when it
/// is gone (`None`) or the nil id.
pub fn deleted_author(author: Option<Uuid>) -> Option<String> {
    match author {
        Some(id) if !id.is_nil() => None,
        _ => Some(DELETED_USER_NAME.to_owned()),
    }
}

/// An update: a comment on an item, possibly a reply to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Update {
    /// Id.
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The item it is on.
    pub item_id: Uuid,
    /// The update it replies to.
    #[schema(required = true)]
    pub parent_id: Option<Uuid>,
    /// Author (`null` once the account is gone).
    #[schema(required = true)]
    pub author_id: Option<Uuid>,
    /// [`DELETED_USER_NAME`] when the author's account was deleted; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    /// Text.
    pub body: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    #[schema(required = true)]
    pub edited_at: Option<DateTime<Utc>>,
}

/// A board member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardMember {
    /// The user.
    pub user_id: Uuid,
    /// Their role.
    pub role: BoardRole,
}

/// `GET /boards/{board}/members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardMembers {
    /// The members, by user id.
    pub members: Vec<BoardMember>,
}

/// `GET /boards/{board}`, and the snapshot a socket subscription starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    /// The board.
    pub board: Board,
    /// Its columns, in order.
    pub columns: Vec<SnapshotColumn>,
    /// Its groups, in order.
    pub groups: Vec<Group>,
    /// Its items (archived ones too), by group and position; empty for an API key without
    /// `items:read`.
    pub items: Vec<SnapshotItem>,
    /// The `seq` of the last event the snapshot includes.
    pub seq: i64,
}

/// An item inside a [`Snapshot`]: an [`Item`] with how many files are attached to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotItem {
    /// The item.
    #[serde(flatten)]
    pub item: Item,
    /// How many files are attached to it (and to its comments).
    pub attachment_count: u32,
}

/// `GET /boards/{board}/items`: one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemPage {
    /// The items, by group and position.
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<Uuid>,
}

/// The query of `GET /boards/{board}/items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only this group's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Uuid>,
    /// Page size, 1 to 500; default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `GET /boards/{board}/items/{item}/updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateList {
    /// The item's updates, oldest first.
    pub updates: Vec<Update>,
}

// ----- bodies of board writes ---------------------------------------------------------------

/// `POST /orgs/{org}/boards`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBoard {
    /// Name.
    pub name: String,
    /// Description; default empty.
    #[serde(default)]
    pub description: String,
}

/// `PATCH /boards/{board}`; socket `update_board`. At least one field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBoard {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PUT /boards/{board}/members/{user}`; socket `set_member`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    /// `owner`, `editor` or `viewer` (a text, so another word is refused as
    /// `validation_failed`, not as a malformed body).
    pub role: String,
}

/// `POST /boards/{board}/columns`; socket `create_column`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateColumn {
    /// Title.
    pub title: String,
    /// A [`ColumnType`] name. REST calls it `type`; the socket frame `column_type` (its `type`
    /// names the frame), which is accepted too.
    #[serde(rename = "type", alias = "column_type")]
    pub column_type: String,
    /// Type-specific settings, such as `{"labels": ["Todo", "Done"]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
    /// Place before this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Place after this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
}

/// `PATCH /boards/{board}/columns/{column}`; socket `update_column`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateColumn {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A new [`ColumnType`] name (retyping). REST calls it `type`; the socket frame
    /// `column_type`, which is accepted too. Values the new type does not allow are cleared.
    #[serde(
        default,
        rename = "type",
        alias = "column_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub column_type: Option<String>,
    /// New settings; values they no longer allow are cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Value>,
    /// Move before this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Move after this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
}

/// `POST /boards/{board}/groups`; socket `create_group`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Title.
    pub title: String,
    /// Display color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Place before this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Place after this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
}

/// `PATCH /boards/{board}/groups/{group}`; socket `update_group`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Move before this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Move after this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
}

/// `POST /boards/{board}/items`; socket `create_item`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateItem {
    /// Its group.
    pub group_id: Uuid,
    /// Name.
    pub name: String,
    /// Values by column id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<Uuid, Value>,
    /// Place before this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Place after this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
}

/// `PATCH /boards/{board}/items/{item}`; socket `update_item`. At least a name or a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateItem {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Values to set, by column id; `null` clears one. Other columns keep theirs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<Uuid, Value>,
    /// Refuse with `version_conflict` unless the item is at this version (REST may say it
    /// with `If-Match` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// `POST /boards/{board}/items/{item}/move`; socket `move_item`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveItem {
    /// Target group (may be its own).
    pub group_id: Uuid,
    /// Place before this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
    /// Place after this item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Uuid>,
}

/// `POST /boards/{board}/items/{item}/archive` (the body may be empty); socket `archive_item`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveItem {
    /// `false` restores the item; default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
}

/// `POST /boards/{board}/items/{item}/updates`; socket `create_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpdate {
    /// Text.
    pub body: String,
    /// The update this replies to (one level deep: not a reply itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Uuid>,
}

/// `PATCH /boards/{board}/items/{item}/updates/{update}`; socket `edit_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditUpdate {
    /// New text.
    pub body: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::golden::{assert_golden, at, id};

    pub(crate) fn board() -> Board {
        Board {
            id: id(1),
            organization_id: id(2),
            name: "Launch".into(),
            description: "".into(),
            created_at: at("2026-01-02T03:04:05.000006Z"),
            updated_at: at("2026-01-02T03:04:05.123Z"),
        }
    }

    pub(crate) fn column() -> Column {
        Column {
            id: id(3),
            board_id: id(1),
            title: "Status".into(),
            column_type: ColumnType::Status,
            settings: json!({"labels": ["Todo", "Done"]}),
            position: "a0".into(),
        }
    }

    pub(crate) fn group() -> Group {
        Group {
            id: id(4),
            board_id: id(1),
            title: "Now".into(),
            color: None,
            position: "a0".into(),
        }
    }

    pub(crate) fn item() -> Item {
        Item {
            id: id(5),
            board_id: id(1),
            group_id: id(4),
            name: "Ship".into(),
            values: BTreeMap::from([(id(3), json!("Done"))]),
            position: "a0".into(),
            version: 2,
            archived: false,
            archived_at: None,
            created_by: Some(id(6)),
            created_by_name: None,
            created_at: at("2026-01-02T03:04:05Z"),
            updated_at: at("2026-01-02T03:04:06.5Z"),
        }
    }

    pub(crate) fn update() -> Update {
        Update {
            id: id(7),
            board_id: id(1),
            item_id: id(5),
            parent_id: None,
            author_id: Some(id(6)),
            author_name: None,
            body: "Looks good".into(),
            created_at: at("2026-01-02T03:04:05Z"),
            edited_at: None,
        }
    }

    #[test]
    fn board_is_pinned() {
        assert_golden(&board(), BOARD_JSON, BOARD_MSGPACK);
    }

    #[test]
    fn board_listing_is_pinned() {
        assert_golden(
            &BoardList { boards: vec![BoardWithRole { board: board(), role: BoardRole::Editor }] },
            BOARD_LIST_JSON,
            BOARD_LIST_MSGPACK,
        );
    }

    #[test]
    fn created_board_is_pinned() {
        let created =
            CreatedBoard { board: board(), role: BoardRole::Owner, seq: 1, groups: vec![group()] };
        assert_golden(&created, CREATED_BOARD_JSON, CREATED_BOARD_MSGPACK);
    }

    #[test]
    fn column_is_pinned() {
        assert_golden(&column(), COLUMN_JSON, COLUMN_MSGPACK);
    }

    #[test]
    fn group_is_pinned() {
        assert_golden(&group(), GROUP_JSON, GROUP_MSGPACK);
    }

    #[test]
    fn item_is_pinned() {
        assert_golden(&item(), ITEM_JSON, ITEM_MSGPACK);
    }

    #[test]
    fn update_is_pinned() {
        assert_golden(&update(), UPDATE_JSON, UPDATE_MSGPACK);
    }

    #[test]
    fn members_are_pinned() {
        let members = BoardMembers {
            members: vec![
                BoardMember { user_id: id(6), role: BoardRole::Owner },
                BoardMember { user_id: id(8), role: BoardRole::Viewer },
            ],
        };
        assert_golden(&members, MEMBERS_JSON, MEMBERS_MSGPACK);
    }

    pub(crate) fn snapshot_example() -> Snapshot {
        let column = column();
        Snapshot {
            board: board(),
            columns: vec![SnapshotColumn {
                id: column.id,
                title: column.title,
                column_type: column.column_type,
                settings: column.settings,
                position: column.position,
            }],
            groups: vec![group()],
            items: vec![SnapshotItem { item: item(), attachment_count: 2 }],
            seq: 9,
        }
    }

    #[test]
    fn snapshot_is_pinned() {
        assert_golden(&snapshot_example(), SNAPSHOT_JSON, SNAPSHOT_MSGPACK);
    }

    #[test]
    fn pages_are_pinned() {
        let page = ItemPage { items: vec![item()], next_cursor: Some(id(5)) };
        assert_golden(&page, ITEM_PAGE_JSON, ITEM_PAGE_MSGPACK);
        assert_golden(
            &UpdateList { updates: vec![update()] },
            UPDATE_LIST_JSON,
            UPDATE_LIST_MSGPACK,
        );
        let query = ItemsQuery { group_id: Some(id(4)), cursor: None, limit: Some(50) };
        assert_golden(&query, ITEMS_QUERY_JSON, ITEMS_QUERY_MSGPACK);
    }

    #[test]
    fn board_bodies_are_pinned() {
        assert_golden(
            &CreateBoard { name: "Launch".into(), description: "Q3".into() },
            CREATE_BOARD_JSON,
            CREATE_BOARD_MSGPACK,
        );
        assert_golden(
            &UpdateBoard { name: Some("Launch 2".into()), description: None },
            UPDATE_BOARD_JSON,
            UPDATE_BOARD_MSGPACK,
        );
        assert_golden(&SetMember { role: "editor".into() }, SET_MEMBER_JSON, SET_MEMBER_MSGPACK);
    }

    #[test]
    fn column_and_group_bodies_are_pinned() {
        let create = CreateColumn {
            title: "Status".into(),
            column_type: "status".into(),
            settings: Some(json!({"labels": ["Todo", "Done"]})),
            before: None,
            after: Some(id(3)),
        };
        assert_golden(&create, CREATE_COLUMN_JSON, CREATE_COLUMN_MSGPACK);
        let update = UpdateColumn { title: Some("State".into()), ..UpdateColumn::default() };
        assert_golden(&update, UPDATE_COLUMN_JSON, UPDATE_COLUMN_MSGPACK);
        let create = CreateGroup {
            title: "Next".into(),
            color: Some("#00ff00".into()),
            before: Some(id(4)),
            after: None,
        };
        assert_golden(&create, CREATE_GROUP_JSON, CREATE_GROUP_MSGPACK);
        let update = UpdateGroup { color: Some("red".into()), ..UpdateGroup::default() };
        assert_golden(&update, UPDATE_GROUP_JSON, UPDATE_GROUP_MSGPACK);
    }

    #[test]
    fn item_bodies_are_pinned() {
        let create = CreateItem {
            group_id: id(4),
            name: "Ship".into(),
            values: BTreeMap::from([(id(3), json!("Done"))]),
            before: None,
            after: None,
        };
        assert_golden(&create, CREATE_ITEM_JSON, CREATE_ITEM_MSGPACK);
        let update = UpdateItem {
            name: None,
            values: BTreeMap::from([(id(3), Value::Null)]),
            expected_version: Some(3),
        };
        assert_golden(&update, UPDATE_ITEM_JSON, UPDATE_ITEM_MSGPACK);
        let moved = MoveItem { group_id: id(4), before: None, after: Some(id(9)) };
        assert_golden(&moved, MOVE_ITEM_JSON, MOVE_ITEM_MSGPACK);
        let archive = ArchiveItem { archived: Some(false) };
        assert_golden(&archive, ARCHIVE_ITEM_JSON, ARCHIVE_ITEM_MSGPACK);
        let create = CreateUpdate { body: "Looks good".into(), parent_id: Some(id(7)) };
        assert_golden(&create, CREATE_UPDATE_JSON, CREATE_UPDATE_MSGPACK);
        let edit = EditUpdate { body: "Looks great".into() };
        assert_golden(&edit, EDIT_UPDATE_JSON, EDIT_UPDATE_MSGPACK);
    }

    /// The socket frame names the column type `column_type`; the shared body takes both names
    /// and writes REST's.
    #[test]
    fn create_column_accepts_the_socket_name() {
        let socket: CreateColumn =
            serde_json::from_value(json!({"title": "Status", "column_type": "status"})).unwrap();
        let rest: CreateColumn =
            serde_json::from_value(json!({"title": "Status", "type": "status"})).unwrap();
        assert_eq!(socket, rest);
        assert_eq!(
            serde_json::to_value(&socket).unwrap(),
            json!({"title": "Status", "type": "status"})
        );
    }

    #[test]
    fn bodies_refuse_unknown_fields_and_keep_defaults() {
        let err = serde_json::from_value::<CreateItem>(
            json!({"group_id": id(4), "name": "x", "colour": 1}),
        );
        assert!(err.is_err());
        let empty: ArchiveItem = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty.archived, None);
        let board: CreateBoard = serde_json::from_value(json!({"name": "B"})).unwrap();
        assert_eq!(board.description, "");
    }

    const BOARD_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z"}"#;
    const BOARD_MSGPACK: &str = "86a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335a";
    const BOARD_LIST_JSON: &str = r#"{"boards":[{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z","role":"editor"}]}"#;
    const BOARD_LIST_MSGPACK: &str = "81a6626f617264739187a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335aa4726f6c65a6656469746f72";
    const CREATED_BOARD_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z","role":"owner","seq":1,"groups":[{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001","title":"Now","color":null,"position":"a0"}]}"#;
    const CREATED_BOARD_MSGPACK: &str = "89a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335aa4726f6c65a56f776e6572a373657101a667726f7570739185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a34e6f77a5636f6c6f72c0a8706f736974696f6ea26130";
    const COLUMN_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000003","board_id":"00000000-0000-0000-0000-000000000001","title":"Status","type":"status","settings":{"labels":["Todo","Done"]},"position":"a0"}"#;
    const COLUMN_MSGPACK: &str = "86a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a6537461747573a474797065a6737461747573a873657474696e677381a66c6162656c7392a4546f646fa4446f6e65a8706f736974696f6ea26130";
    const GROUP_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001","title":"Now","color":null,"position":"a0"}"#;
    const GROUP_MSGPACK: &str = "85a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a34e6f77a5636f6c6f72c0a8706f736974696f6ea26130";
    const ITEM_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z"}"#;
    const ITEM_MSGPACK: &str = "8ca26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305a";
    const UPDATE_JSON: &str = r#"{"id":"00000000-0000-0000-0000-000000000007","board_id":"00000000-0000-0000-0000-000000000001","item_id":"00000000-0000-0000-0000-000000000005","parent_id":null,"author_id":"00000000-0000-0000-0000-000000000006","body":"Looks good","created_at":"2026-01-02T03:04:05Z","edited_at":null}"#;
    const UPDATE_MSGPACK: &str = "88a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a9706172656e745f6964c0a9617574686f725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a4626f6479aa4c6f6f6b7320676f6f64aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aa96564697465645f6174c0";
    const MEMBERS_JSON: &str = r#"{"members":[{"user_id":"00000000-0000-0000-0000-000000000006","role":"owner"},{"user_id":"00000000-0000-0000-0000-000000000008","role":"viewer"}]}"#;
    const MEMBERS_MSGPACK: &str = "81a76d656d626572739282a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a4726f6c65a56f776e657282a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303038a4726f6c65a6766965776572";
    const SNAPSHOT_JSON: &str = r#"{"board":{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z"},"columns":[{"id":"00000000-0000-0000-0000-000000000003","title":"Status","type":"status","settings":{"labels":["Todo","Done"]},"position":"a0"}],"groups":[{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001","title":"Now","color":null,"position":"a0"}],"items":[{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z","attachment_count":2}],"seq":9}"#;
    const SNAPSHOT_MSGPACK: &str = "85a5626f61726486a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335aa7636f6c756d6e739185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a57469746c65a6537461747573a474797065a6737461747573a873657474696e677381a66c6162656c7392a4546f646fa4446f6e65a8706f736974696f6ea26130a667726f7570739185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a34e6f77a5636f6c6f72c0a8706f736974696f6ea26130a56974656d73918da26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305ab06174746163686d656e745f636f756e7402a373657109";
    const ITEM_PAGE_JSON: &str = r#"{"items":[{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z"}],"next_cursor":"00000000-0000-0000-0000-000000000005"}"#;
    const ITEM_PAGE_MSGPACK: &str = "82a56974656d73918ca26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305aab6e6578745f637572736f72d92430303030303030302d303030302d303030302d303030302d303030303030303030303035";
    const UPDATE_LIST_JSON: &str = r#"{"updates":[{"id":"00000000-0000-0000-0000-000000000007","board_id":"00000000-0000-0000-0000-000000000001","item_id":"00000000-0000-0000-0000-000000000005","parent_id":null,"author_id":"00000000-0000-0000-0000-000000000006","body":"Looks good","created_at":"2026-01-02T03:04:05Z","edited_at":null}]}"#;
    const UPDATE_LIST_MSGPACK: &str = "81a7757064617465739188a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a9706172656e745f6964c0a9617574686f725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a4626f6479aa4c6f6f6b7320676f6f64aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aa96564697465645f6174c0";
    const ITEMS_QUERY_JSON: &str =
        r#"{"group_id":"00000000-0000-0000-0000-000000000004","limit":50}"#;
    const ITEMS_QUERY_MSGPACK: &str = "82a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a56c696d697432";
    const CREATE_BOARD_JSON: &str = r#"{"name":"Launch","description":"Q3"}"#;
    const CREATE_BOARD_MSGPACK: &str = "82a46e616d65a64c61756e6368ab6465736372697074696f6ea25133";
    const UPDATE_BOARD_JSON: &str = r#"{"name":"Launch 2"}"#;
    const UPDATE_BOARD_MSGPACK: &str = "81a46e616d65a84c61756e63682032";
    const SET_MEMBER_JSON: &str = r#"{"role":"editor"}"#;
    const SET_MEMBER_MSGPACK: &str = "81a4726f6c65a6656469746f72";
    const CREATE_COLUMN_JSON: &str = r#"{"title":"Status","type":"status","settings":{"labels":["Todo","Done"]},"after":"00000000-0000-0000-0000-000000000003"}"#;
    const CREATE_COLUMN_MSGPACK: &str = "84a57469746c65a6537461747573a474797065a6737461747573a873657474696e677381a66c6162656c7392a4546f646fa4446f6e65a56166746572d92430303030303030302d303030302d303030302d303030302d303030303030303030303033";
    const UPDATE_COLUMN_JSON: &str = r#"{"title":"State"}"#;
    const UPDATE_COLUMN_MSGPACK: &str = "81a57469746c65a55374617465";
    const CREATE_GROUP_JSON: &str =
        r##"{"title":"Next","color":"#00ff00","before":"00000000-0000-0000-0000-000000000004"}"##;
    const CREATE_GROUP_MSGPACK: &str = "83a57469746c65a44e657874a5636f6c6f72a723303066663030a66265666f7265d92430303030303030302d303030302d303030302d303030302d303030303030303030303034";
    const UPDATE_GROUP_JSON: &str = r#"{"color":"red"}"#;
    const UPDATE_GROUP_MSGPACK: &str = "81a5636f6c6f72a3726564";
    const CREATE_ITEM_JSON: &str = r#"{"group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"}}"#;
    const CREATE_ITEM_MSGPACK: &str = "83a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65";
    const UPDATE_ITEM_JSON: &str =
        r#"{"values":{"00000000-0000-0000-0000-000000000003":null},"expected_version":3}"#;
    const UPDATE_ITEM_MSGPACK: &str = "82a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033c0b065787065637465645f76657273696f6e03";
    const MOVE_ITEM_JSON: &str = r#"{"group_id":"00000000-0000-0000-0000-000000000004","after":"00000000-0000-0000-0000-000000000009"}"#;
    const MOVE_ITEM_MSGPACK: &str = "82a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a56166746572d92430303030303030302d303030302d303030302d303030302d303030303030303030303039";
    const ARCHIVE_ITEM_JSON: &str = r#"{"archived":false}"#;
    const ARCHIVE_ITEM_MSGPACK: &str = "81a86172636869766564c2";
    const CREATE_UPDATE_JSON: &str =
        r#"{"body":"Looks good","parent_id":"00000000-0000-0000-0000-000000000007"}"#;
    const CREATE_UPDATE_MSGPACK: &str = "82a4626f6479aa4c6f6f6b7320676f6f64a9706172656e745f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037";
    const EDIT_UPDATE_JSON: &str = r#"{"body":"Looks great"}"#;
    const EDIT_UPDATE_MSGPACK: &str = "81a4626f6479ab4c6f6f6b73206772656174";
}
