//! Board events on the wire: every kind, the `data` each kind carries ([`EventData`]), and the
//! REST log of them (`GET /boards/{board}/events`).
//!
//! `data` is the changed entity as it is after the change, or its ids when it was deleted. The
//! kind and its data travel as the pair `"kind": …, "data": {…}` inside whichever envelope
//! carries them: [`Event`] here, the socket's `event` frame ([`crate::frames::EventFrame`]),
//! and the webhook body ([`crate::webhooks::WebhookPayload`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::attachments::{Attachment, AttachmentDeleted};
use crate::boards::{Board, BoardMember, BoardRole, Column, Group, Item, Update};

macro_rules! event_kinds {
    // `$name` is a `tt`, not a `literal`: a `literal` fragment reaches the derives wrapped in an
    // invisible group, which utoipa does not read as a string, so its schemas named the variants.
    ($( $(#[$doc:meta])* $variant:ident = ($name:tt, $data:ty), )+) => {
        /// The kind of a committed change, `<entity>.<verb>`. Append-only.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum EventKind {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )+
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[ $( EventKind::$variant, )+ ];

            /// The dotted name, such as `item.created`.
            pub const fn as_str(self) -> &'static str {
                match self { $( EventKind::$variant => $name, )+ }
            }

            /// Parses a dotted name.
            pub fn parse(name: &str) -> Option<EventKind> {
                match name { $( $name => Some(EventKind::$variant), )+ _ => None }
            }
        }

        /// An event's kind with its `data`: `{"kind": "item.created", "data": {…}}`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "kind", content = "data")]
        pub enum EventData {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($data), )+
        }

        impl EventData {
            /// The kind.
            pub const fn kind(&self) -> EventKind {
                match self { $( EventData::$variant(_) => EventKind::$variant, )+ }
            }

            /// Serializes the `data` half alone, as the pair carries it: what a stored log
            /// keeps beside the kind, without building the pair (or a `Value` of it) first.
            pub fn serialize_data<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self { $( EventData::$variant(data) => data.serialize(serializer), )+ }
            }
        }
    };
}

event_kinds! {
    /// A board was created, with its first group and its owner.
    BoardCreated = ("board.created", BoardCreated),
    /// The board's name or description changed.
    BoardUpdated = ("board.updated", Board),
    /// The board was deleted.
    BoardDeleted = ("board.deleted", BoardDeleted),
    /// A member was added.
    MemberAdded = ("member.added", MemberChanged),
    /// A member's role changed.
    MemberRoleChanged = ("member.role_changed", MemberChanged),
    /// A member was removed.
    MemberRemoved = ("member.removed", MemberRemoved),
    /// A column was added.
    ColumnCreated = ("column.created", Column),
    /// A column's title, settings or place changed.
    ColumnUpdated = ("column.updated", Column),
    /// A column was deleted (with its values).
    ColumnDeleted = ("column.deleted", Deleted),
    /// A group was added.
    GroupCreated = ("group.created", Group),
    /// A group's title, color or place changed.
    GroupUpdated = ("group.updated", Group),
    /// A group was deleted (with its items).
    GroupDeleted = ("group.deleted", Deleted),
    /// An item was added.
    ItemCreated = ("item.created", Item),
    /// An item's name or values changed.
    ItemUpdated = ("item.updated", ItemUpdated),
    /// An item moved (within or across groups).
    ItemMoved = ("item.moved", ItemMoved),
    /// An item was archived or restored.
    ItemArchived = ("item.archived", Item),
    /// An item was deleted.
    ItemDeleted = ("item.deleted", ItemDeleted),
    /// An update was written.
    UpdateCreated = ("update.created", Update),
    /// An update was edited.
    UpdateEdited = ("update.edited", Update),
    /// An update was deleted.
    UpdateDeleted = ("update.deleted", UpdateDeleted),
    /// A file was attached to an item (or one of its comments): its metadata, never its bytes.
    AttachmentAdded = ("attachment.added", Attachment),
    /// An attachment was deleted.
    AttachmentDeleted = ("attachment.deleted", AttachmentDeleted),
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `board.created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardCreated {
    /// The board.
    pub board: Board,
    /// Its first group.
    pub groups: Vec<Group>,
    /// Its creator, as owner.
    pub members: Vec<BoardMember>,
}

/// `board.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardDeleted {
    /// The board.
    pub id: Uuid,
}

/// `member.added` and `member.role_changed`; also the answer of
/// `PUT /boards/{board}/members/{user}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberChanged {
    /// The user.
    pub user_id: Uuid,
    /// Their role now.
    pub role: BoardRole,
    /// Their role before; `null` when they were just added.
    #[schema(required = true)]
    pub previous_role: Option<BoardRole>,
}

/// `member.removed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberRemoved {
    /// The user.
    pub user_id: Uuid,
    /// The role they had.
    pub previous_role: BoardRole,
}

/// `column.deleted` and `group.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// The column or group.
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
}

/// `item.updated`: the item, and the values this change set (`null` where it cleared one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemUpdated {
    /// The item after the change.
    #[serde(flatten)]
    pub item: Item,
    /// The values this change set, by column id.
    pub changed_values: BTreeMap<Uuid, Value>,
}

/// `item.moved`: the item, and the group it left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemMoved {
    /// The item after the move.
    #[serde(flatten)]
    pub item: Item,
    /// The group it was in.
    pub from_group_id: Uuid,
}

/// `item.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemDeleted {
    /// The item.
    pub id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The group it was in.
    pub group_id: Uuid,
}

/// `update.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateDeleted {
    /// The update.
    pub id: Uuid,
    /// The item it was on.
    pub item_id: Uuid,
    /// The board.
    pub board_id: Uuid,
}

/// One committed change in the REST log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Position in the board's log: gap-free and increasing.
    pub seq: i64,
    /// The kind and its data.
    #[serde(flatten)]
    pub event: EventData,
    /// Who made the change.
    #[schema(required = true)]
    pub actor: Option<Uuid>,
    /// Commit time.
    pub created_at: DateTime<Utc>,
}

/// `GET /boards/{board}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventLog {
    /// The events after `after`, oldest first; an API key without `items:read` (or
    /// `updates:read`) is not shown `item.*` (or `update.*`) events.
    pub events: Vec<Event>,
    /// The `seq` of the last event read, shown or not: pass it as `after` next; `null` when
    /// there was none.
    #[schema(required = true)]
    pub last_seq: Option<i64>,
    /// Whether a full page was read, so more may follow.
    pub has_more: bool,
}

/// The query of `GET /boards/{board}/events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this `seq`; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// Page size, 1 to 1000; default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::attachments::tests::attachment;
    use crate::boards::tests::{board, column, group, item, update};
    use crate::golden::{assert_golden, at, id};

    /// One example of every kind's data, in [`EventKind::ALL`] order.
    fn every_kind() -> Vec<EventData> {
        let member = MemberChanged { user_id: id(8), role: BoardRole::Editor, previous_role: None };
        vec![
            EventData::BoardCreated(BoardCreated {
                board: board(),
                groups: vec![group()],
                members: vec![BoardMember { user_id: id(6), role: BoardRole::Owner }],
            }),
            EventData::BoardUpdated(board()),
            EventData::BoardDeleted(BoardDeleted { id: id(1) }),
            EventData::MemberAdded(member.clone()),
            EventData::MemberRoleChanged(MemberChanged {
                role: BoardRole::Viewer,
                previous_role: Some(BoardRole::Editor),
                ..member
            }),
            EventData::MemberRemoved(MemberRemoved {
                user_id: id(8),
                previous_role: BoardRole::Viewer,
            }),
            EventData::ColumnCreated(column()),
            EventData::ColumnUpdated(column()),
            EventData::ColumnDeleted(Deleted { id: id(3), board_id: id(1) }),
            EventData::GroupCreated(group()),
            EventData::GroupUpdated(group()),
            EventData::GroupDeleted(Deleted { id: id(4), board_id: id(1) }),
            EventData::ItemCreated(item()),
            EventData::ItemUpdated(ItemUpdated {
                item: item(),
                changed_values: BTreeMap::from([(id(3), json!("Done"))]),
            }),
            EventData::ItemMoved(ItemMoved { item: item(), from_group_id: id(10) }),
            EventData::ItemArchived(item()),
            EventData::ItemDeleted(ItemDeleted { id: id(5), board_id: id(1), group_id: id(4) }),
            EventData::UpdateCreated(update()),
            EventData::UpdateEdited(update()),
            EventData::UpdateDeleted(UpdateDeleted { id: id(7), item_id: id(5), board_id: id(1) }),
            EventData::AttachmentAdded(attachment()),
            EventData::AttachmentDeleted(AttachmentDeleted {
                id: id(9),
                item_id: id(5),
                board_id: id(1),
            }),
        ]
    }

    #[test]
    fn kinds_cover_every_name_once() {
        let kinds: Vec<EventKind> = every_kind().iter().map(EventData::kind).collect();
        assert_eq!(kinds, EventKind::ALL);
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert_eq!(EventKind::parse("item.exploded"), None);
    }

    /// Every kind's data, pinned as the pair it travels as.
    #[test]
    fn every_kind_is_pinned() {
        let pinned = [
            (BOARD_CREATED_JSON, BOARD_CREATED_MSGPACK),
            (BOARD_UPDATED_JSON, BOARD_UPDATED_MSGPACK),
            (BOARD_DELETED_JSON, BOARD_DELETED_MSGPACK),
            (MEMBER_ADDED_JSON, MEMBER_ADDED_MSGPACK),
            (MEMBER_ROLE_CHANGED_JSON, MEMBER_ROLE_CHANGED_MSGPACK),
            (MEMBER_REMOVED_JSON, MEMBER_REMOVED_MSGPACK),
            (COLUMN_CREATED_JSON, COLUMN_CREATED_MSGPACK),
            (COLUMN_UPDATED_JSON, COLUMN_UPDATED_MSGPACK),
            (COLUMN_DELETED_JSON, COLUMN_DELETED_MSGPACK),
            (GROUP_CREATED_JSON, GROUP_CREATED_MSGPACK),
            (GROUP_UPDATED_JSON, GROUP_UPDATED_MSGPACK),
            (GROUP_DELETED_JSON, GROUP_DELETED_MSGPACK),
            (ITEM_CREATED_JSON, ITEM_CREATED_MSGPACK),
            (ITEM_UPDATED_JSON, ITEM_UPDATED_MSGPACK),
            (ITEM_MOVED_JSON, ITEM_MOVED_MSGPACK),
            (ITEM_ARCHIVED_JSON, ITEM_ARCHIVED_MSGPACK),
            (ITEM_DELETED_JSON, ITEM_DELETED_MSGPACK),
            (UPDATE_CREATED_JSON, UPDATE_CREATED_MSGPACK),
            (UPDATE_EDITED_JSON, UPDATE_EDITED_MSGPACK),
            (UPDATE_DELETED_JSON, UPDATE_DELETED_MSGPACK),
            (ATTACHMENT_ADDED_JSON, ATTACHMENT_ADDED_MSGPACK),
            (ATTACHMENT_DELETED_JSON, ATTACHMENT_DELETED_MSGPACK),
        ];
        for (data, (json, msgpack)) in every_kind().iter().zip(pinned) {
            assert_golden(data, json, msgpack);
        }
    }

    #[test]
    fn event_log_is_pinned() {
        let log = EventLog {
            events: vec![Event {
                seq: 3,
                event: EventData::ItemDeleted(ItemDeleted {
                    id: id(5),
                    board_id: id(1),
                    group_id: id(4),
                }),
                actor: Some(id(6)),
                created_at: at("2026-01-02T03:04:05.000006Z"),
            }],
            last_seq: Some(4),
            has_more: false,
        };
        assert_golden(&log, EVENT_LOG_JSON, EVENT_LOG_MSGPACK);
        let query = EventsQuery { after: Some(41), limit: None };
        assert_golden(&query, EVENTS_QUERY_JSON, EVENTS_QUERY_MSGPACK);
    }

    #[test]
    fn data_of_another_kind_is_refused() {
        let wrong = json!({"kind": "item.deleted", "data": {"id": id(1)}});
        assert!(serde_json::from_value::<EventData>(wrong).is_err());
        let unknown = json!({"kind": "item.exploded", "data": {}});
        assert!(serde_json::from_value::<EventData>(unknown).is_err());
    }

    const BOARD_CREATED_JSON: &str = r#"{"kind":"board.created","data":{"board":{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z"},"groups":[{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001","title":"Now","color":null,"position":"a0"}],"members":[{"user_id":"00000000-0000-0000-0000-000000000006","role":"owner"}]}}"#;
    const BOARD_CREATED_MSGPACK: &str = "82a46b696e64ad626f6172642e63726561746564a46461746183a5626f61726486a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335aa667726f7570739185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a34e6f77a5636f6c6f72c0a8706f736974696f6ea26130a76d656d626572739182a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a4726f6c65a56f776e6572";
    const BOARD_UPDATED_JSON: &str = r#"{"kind":"board.updated","data":{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z"}}"#;
    const BOARD_UPDATED_MSGPACK: &str = "82a46b696e64ad626f6172642e75706461746564a46461746186a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335a";
    const BOARD_DELETED_JSON: &str =
        r#"{"kind":"board.deleted","data":{"id":"00000000-0000-0000-0000-000000000001"}}"#;
    const BOARD_DELETED_MSGPACK: &str = "82a46b696e64ad626f6172642e64656c65746564a46461746181a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031";
    const MEMBER_ADDED_JSON: &str = r#"{"kind":"member.added","data":{"user_id":"00000000-0000-0000-0000-000000000008","role":"editor","previous_role":null}}"#;
    const MEMBER_ADDED_MSGPACK: &str = "82a46b696e64ac6d656d6265722e6164646564a46461746183a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303038a4726f6c65a6656469746f72ad70726576696f75735f726f6c65c0";
    const MEMBER_ROLE_CHANGED_JSON: &str = r#"{"kind":"member.role_changed","data":{"user_id":"00000000-0000-0000-0000-000000000008","role":"viewer","previous_role":"editor"}}"#;
    const MEMBER_ROLE_CHANGED_MSGPACK: &str = "82a46b696e64b36d656d6265722e726f6c655f6368616e676564a46461746183a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303038a4726f6c65a6766965776572ad70726576696f75735f726f6c65a6656469746f72";
    const MEMBER_REMOVED_JSON: &str = r#"{"kind":"member.removed","data":{"user_id":"00000000-0000-0000-0000-000000000008","previous_role":"viewer"}}"#;
    const MEMBER_REMOVED_MSGPACK: &str = "82a46b696e64ae6d656d6265722e72656d6f766564a46461746182a7757365725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303038ad70726576696f75735f726f6c65a6766965776572";
    const COLUMN_CREATED_JSON: &str = r#"{"kind":"column.created","data":{"id":"00000000-0000-0000-0000-000000000003","board_id":"00000000-0000-0000-0000-000000000001","title":"Status","type":"status","settings":{"labels":["Todo","Done"]},"position":"a0"}}"#;
    const COLUMN_CREATED_MSGPACK: &str = "82a46b696e64ae636f6c756d6e2e63726561746564a46461746186a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a6537461747573a474797065a6737461747573a873657474696e677381a66c6162656c7392a4546f646fa4446f6e65a8706f736974696f6ea26130";
    const COLUMN_UPDATED_JSON: &str = r#"{"kind":"column.updated","data":{"id":"00000000-0000-0000-0000-000000000003","board_id":"00000000-0000-0000-0000-000000000001","title":"Status","type":"status","settings":{"labels":["Todo","Done"]},"position":"a0"}}"#;
    const COLUMN_UPDATED_MSGPACK: &str = "82a46b696e64ae636f6c756d6e2e75706461746564a46461746186a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a6537461747573a474797065a6737461747573a873657474696e677381a66c6162656c7392a4546f646fa4446f6e65a8706f736974696f6ea26130";
    const COLUMN_DELETED_JSON: &str = r#"{"kind":"column.deleted","data":{"id":"00000000-0000-0000-0000-000000000003","board_id":"00000000-0000-0000-0000-000000000001"}}"#;
    const COLUMN_DELETED_MSGPACK: &str = "82a46b696e64ae636f6c756d6e2e64656c65746564a46461746182a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031";
    const GROUP_CREATED_JSON: &str = r#"{"kind":"group.created","data":{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001","title":"Now","color":null,"position":"a0"}}"#;
    const GROUP_CREATED_MSGPACK: &str = "82a46b696e64ad67726f75702e63726561746564a46461746185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a34e6f77a5636f6c6f72c0a8706f736974696f6ea26130";
    const GROUP_UPDATED_JSON: &str = r#"{"kind":"group.updated","data":{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001","title":"Now","color":null,"position":"a0"}}"#;
    const GROUP_UPDATED_MSGPACK: &str = "82a46b696e64ad67726f75702e75706461746564a46461746185a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a57469746c65a34e6f77a5636f6c6f72c0a8706f736974696f6ea26130";
    const GROUP_DELETED_JSON: &str = r#"{"kind":"group.deleted","data":{"id":"00000000-0000-0000-0000-000000000004","board_id":"00000000-0000-0000-0000-000000000001"}}"#;
    const GROUP_DELETED_MSGPACK: &str = "82a46b696e64ad67726f75702e64656c65746564a46461746182a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031";
    const ITEM_CREATED_JSON: &str = r#"{"kind":"item.created","data":{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z"}}"#;
    const ITEM_CREATED_MSGPACK: &str = "82a46b696e64ac6974656d2e63726561746564a4646174618ca26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305a";
    const ITEM_UPDATED_JSON: &str = r#"{"kind":"item.updated","data":{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z","changed_values":{"00000000-0000-0000-0000-000000000003":"Done"}}}"#;
    const ITEM_UPDATED_MSGPACK: &str = "82a46b696e64ac6974656d2e75706461746564a4646174618da26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305aae6368616e6765645f76616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65";
    const ITEM_MOVED_JSON: &str = r#"{"kind":"item.moved","data":{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z","from_group_id":"00000000-0000-0000-0000-00000000000a"}}"#;
    const ITEM_MOVED_MSGPACK: &str = "82a46b696e64aa6974656d2e6d6f766564a4646174618da26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305aad66726f6d5f67726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303061";
    const ITEM_ARCHIVED_JSON: &str = r#"{"kind":"item.archived","data":{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004","name":"Ship","values":{"00000000-0000-0000-0000-000000000003":"Done"},"position":"a0","version":2,"archived":false,"archived_at":null,"created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:06.500Z"}}"#;
    const ITEM_ARCHIVED_MSGPACK: &str = "82a46b696e64ad6974656d2e6172636869766564a4646174618ca26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a46e616d65a453686970a676616c75657381d92430303030303030302d303030302d303030302d303030302d303030303030303030303033a4446f6e65a8706f736974696f6ea26130a776657273696f6e02a86172636869766564c2ab61726368697665645f6174c0aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aaa757064617465645f6174b8323032362d30312d30325430333a30343a30362e3530305a";
    const ITEM_DELETED_JSON: &str = r#"{"kind":"item.deleted","data":{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004"}}"#;
    const ITEM_DELETED_MSGPACK: &str = "82a46b696e64ac6974656d2e64656c65746564a46461746183a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034";
    const UPDATE_CREATED_JSON: &str = r#"{"kind":"update.created","data":{"id":"00000000-0000-0000-0000-000000000007","board_id":"00000000-0000-0000-0000-000000000001","item_id":"00000000-0000-0000-0000-000000000005","parent_id":null,"author_id":"00000000-0000-0000-0000-000000000006","body":"Looks good","created_at":"2026-01-02T03:04:05Z","edited_at":null}}"#;
    const UPDATE_CREATED_MSGPACK: &str = "82a46b696e64ae7570646174652e63726561746564a46461746188a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a9706172656e745f6964c0a9617574686f725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a4626f6479aa4c6f6f6b7320676f6f64aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aa96564697465645f6174c0";
    const UPDATE_EDITED_JSON: &str = r#"{"kind":"update.edited","data":{"id":"00000000-0000-0000-0000-000000000007","board_id":"00000000-0000-0000-0000-000000000001","item_id":"00000000-0000-0000-0000-000000000005","parent_id":null,"author_id":"00000000-0000-0000-0000-000000000006","body":"Looks good","created_at":"2026-01-02T03:04:05Z","edited_at":null}}"#;
    const UPDATE_EDITED_MSGPACK: &str = "82a46b696e64ad7570646174652e656469746564a46461746188a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a9706172656e745f6964c0a9617574686f725f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303036a4626f6479aa4c6f6f6b7320676f6f64aa637265617465645f6174b4323032362d30312d30325430333a30343a30355aa96564697465645f6174c0";
    const UPDATE_DELETED_JSON: &str = r#"{"kind":"update.deleted","data":{"id":"00000000-0000-0000-0000-000000000007","item_id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001"}}"#;
    const UPDATE_DELETED_MSGPACK: &str = "82a46b696e64ae7570646174652e64656c65746564a46461746183a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303037a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031";
    const ATTACHMENT_ADDED_JSON: &str = r#"{"kind":"attachment.added","data":{"id":"00000000-0000-0000-0000-000000000009","item_id":"00000000-0000-0000-0000-000000000005","update_id":null,"name":"Résumé.pdf","size":1234,"content_type":"application/pdf","sha256":"abababababababababababababababababababababababababababababababab","created_by":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05Z"}}"#;
    const ATTACHMENT_ADDED_MSGPACK: &str = "82a46b696e64b06174746163686d656e742e6164646564a46461746189a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303039a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a97570646174655f6964c0a46e616d65ac52c3a973756dc3a92e706466a473697a65cd04d2ac636f6e74656e745f74797065af6170706c69636174696f6e2f706466a6736861323536d94061626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162aa637265617465645f6279d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174b4323032362d30312d30325430333a30343a30355a";
    const ATTACHMENT_DELETED_JSON: &str = r#"{"kind":"attachment.deleted","data":{"id":"00000000-0000-0000-0000-000000000009","item_id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001"}}"#;
    const ATTACHMENT_DELETED_MSGPACK: &str = "82a46b696e64b26174746163686d656e742e64656c65746564a46461746183a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303039a76974656d5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031";
    const EVENT_LOG_JSON: &str = r#"{"events":[{"seq":3,"kind":"item.deleted","data":{"id":"00000000-0000-0000-0000-000000000005","board_id":"00000000-0000-0000-0000-000000000001","group_id":"00000000-0000-0000-0000-000000000004"},"actor":"00000000-0000-0000-0000-000000000006","created_at":"2026-01-02T03:04:05.000006Z"}],"last_seq":4,"has_more":false}"#;
    const EVENT_LOG_MSGPACK: &str = "83a66576656e74739185a373657103a46b696e64ac6974656d2e64656c65746564a46461746183a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303035a8626f6172645f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031a867726f75705f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303034a56163746f72d92430303030303030302d303030302d303030302d303030302d303030303030303030303036aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aa86c6173745f73657104a86861735f6d6f7265c2";
    const EVENTS_QUERY_JSON: &str = r#"{"after":41}"#;
    const EVENTS_QUERY_MSGPACK: &str = "81a5616674657229";
}
