//! The frames of the WebSocket protocol: what a client sends and what the server answers.
//!
//! Every client frame is `{"type": <snake_case>, "id": <chosen by the client>, …fields}`; the
//! server answers each with one [`ServerFrame::Reply`] carrying the same `id`. Events and other
//! pushes carry no `id`. Ids and times are strings on the wire (this crate knows no uuid or
//! chrono), so the same types serve JSON and MessagePack.
//!
//! Message tags are append-only: a retired tag is never reused for something else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorBody;

/// The id a client gives a request; echoed in its reply. A number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A number.
    Number(u64),
    /// A string.
    Text(String),
}

/// One frame from a client: its id plus the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Echoed in the reply.
    pub id: RequestId,
    /// What the client asks.
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// What a client may ask. Board writes mirror the REST bodies field for field, plus `board_id`
/// and the ids REST carries in its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Liveness check; answered with an empty reply.
    Ping {},
    /// Replaces the socket's access token before it expires (API keys do not expire this way).
    Auth {
        /// A fresh access token.
        token: String,
    },
    /// Start receiving a board's events. With `after_seq`, the events after it are replayed
    /// when still retained; otherwise the reply carries a snapshot.
    Subscribe {
        /// The board.
        board_id: String,
        /// The last `seq` the client has seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_seq: Option<i64>,
    },
    /// Stop receiving a board's events.
    Unsubscribe {
        /// The board.
        board_id: String,
    },
    /// `PATCH /boards/{board}`.
    UpdateBoard {
        /// The board.
        board_id: String,
        /// New name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// New description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// `DELETE /boards/{board}`.
    DeleteBoard {
        /// The board.
        board_id: String,
    },
    /// `PUT /boards/{board}/members/{user}`.
    SetMember {
        /// The board.
        board_id: String,
        /// The user.
        user_id: String,
        /// `owner`, `editor` or `viewer`.
        role: String,
    },
    /// `DELETE /boards/{board}/members/{user}`.
    RemoveMember {
        /// The board.
        board_id: String,
        /// The user.
        user_id: String,
    },
    /// `POST /boards/{board}/columns`.
    CreateColumn {
        /// The board.
        board_id: String,
        /// Title.
        title: String,
        /// Column type, such as `status`. REST calls it `type`, which names the frame here.
        column_type: String,
        /// Type-specific settings.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<Value>,
        /// Place before this column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Place after this column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `PATCH /boards/{board}/columns/{column}`.
    UpdateColumn {
        /// The board.
        board_id: String,
        /// The column.
        column_id: String,
        /// New title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// New settings.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<Value>,
        /// Move before this column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Move after this column.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `DELETE /boards/{board}/columns/{column}`.
    DeleteColumn {
        /// The board.
        board_id: String,
        /// The column.
        column_id: String,
    },
    /// `POST /boards/{board}/groups`.
    CreateGroup {
        /// The board.
        board_id: String,
        /// Title.
        title: String,
        /// Color.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
        /// Place before this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Place after this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `PATCH /boards/{board}/groups/{group}`.
    UpdateGroup {
        /// The board.
        board_id: String,
        /// The group.
        group_id: String,
        /// New title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// New color.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        color: Option<String>,
        /// Move before this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Move after this group.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `DELETE /boards/{board}/groups/{group}`.
    DeleteGroup {
        /// The board.
        board_id: String,
        /// The group.
        group_id: String,
    },
    /// `POST /boards/{board}/items`.
    CreateItem {
        /// The board.
        board_id: String,
        /// Its group.
        group_id: String,
        /// Name.
        name: String,
        /// Values by column id.
        #[serde(default)]
        values: BTreeMap<String, Value>,
        /// Place before this item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Place after this item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `PATCH /boards/{board}/items/{item}`.
    UpdateItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// New name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Values to set; `null` clears one.
        #[serde(default)]
        values: BTreeMap<String, Value>,
        /// Refuse with `version_conflict` unless the item is at this version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_version: Option<i64>,
    },
    /// `POST /boards/{board}/items/{item}/move`.
    MoveItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// Target group.
        group_id: String,
        /// Place before this item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
        /// Place after this item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
    /// `POST /boards/{board}/items/{item}/archive`.
    ArchiveItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// `false` restores it; default `true`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        archived: Option<bool>,
    },
    /// `DELETE /boards/{board}/items/{item}`.
    DeleteItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
    },
    /// `POST /boards/{board}/items/{item}/updates`.
    CreateUpdate {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// Text.
        body: String,
        /// The update this replies to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_id: Option<String>,
    },
    /// `PATCH /boards/{board}/items/{item}/updates/{update}`.
    EditUpdate {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// The update.
        update_id: String,
        /// New text.
        body: String,
    },
    /// `DELETE /boards/{board}/items/{item}/updates/{update}`.
    DeleteUpdate {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// The update.
        update_id: String,
    },
}

impl ClientMessage {
    /// The wire tag, for logs and metrics (never the fields: they may hold tokens).
    pub fn tag(&self) -> &'static str {
        match self {
            ClientMessage::Ping {} => "ping",
            ClientMessage::Auth { .. } => "auth",
            ClientMessage::Subscribe { .. } => "subscribe",
            ClientMessage::Unsubscribe { .. } => "unsubscribe",
            ClientMessage::UpdateBoard { .. } => "update_board",
            ClientMessage::DeleteBoard { .. } => "delete_board",
            ClientMessage::SetMember { .. } => "set_member",
            ClientMessage::RemoveMember { .. } => "remove_member",
            ClientMessage::CreateColumn { .. } => "create_column",
            ClientMessage::UpdateColumn { .. } => "update_column",
            ClientMessage::DeleteColumn { .. } => "delete_column",
            ClientMessage::CreateGroup { .. } => "create_group",
            ClientMessage::UpdateGroup { .. } => "update_group",
            ClientMessage::DeleteGroup { .. } => "delete_group",
            ClientMessage::CreateItem { .. } => "create_item",
            ClientMessage::UpdateItem { .. } => "update_item",
            ClientMessage::MoveItem { .. } => "move_item",
            ClientMessage::ArchiveItem { .. } => "archive_item",
            ClientMessage::DeleteItem { .. } => "delete_item",
            ClientMessage::CreateUpdate { .. } => "create_update",
            ClientMessage::EditUpdate { .. } => "edit_update",
            ClientMessage::DeleteUpdate { .. } => "delete_update",
        }
    }
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Sent once, first, on every connection.
    Hello(Hello),
    /// The answer to one client frame.
    Reply(Reply),
    /// A committed change of a subscribed board.
    Event(EventFrame),
    /// The server ended one subscription (access lost, board deleted); the connection stays.
    Unsubscribed(Unsubscribed),
    /// Who is viewing a board changed (or, right after subscribing, who is).
    Presence(Presence),
}

/// What the server tells a client when it connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Seconds of silence after which the server closes the connection; send `ping` sooner.
    pub heartbeat_secs: u64,
}

/// The answer to a client frame: `ok` with `data`, or not with `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The client's id; `null` when the frame was too broken to read one.
    pub id: Option<RequestId>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result (for board writes: the entity as REST answers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// For board writes: the `seq` of the event the change committed as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    /// A success.
    pub fn ok(id: Option<RequestId>, data: Value, seq: Option<i64>) -> Reply {
        Reply { id, ok: true, data: Some(data), seq, error: None }
    }

    /// A failure.
    pub fn err(id: Option<RequestId>, error: ErrorBody) -> Reply {
        Reply { id, ok: false, data: None, seq: None, error: Some(error) }
    }
}

/// The `data` of the reply to `subscribe`: after `after_seq` the missed events follow the
/// reply (`recovered`); otherwise it carries a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscribed {
    /// The board's current `seq`.
    pub seq: i64,
    /// Whether the events after `after_seq` follow (no snapshot).
    pub recovered: bool,
    /// The board as of `seq`, when not recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<crate::boards::Snapshot>,
}

/// A committed change, as stored in the board's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// The board.
    pub board_id: String,
    /// Position in the board's log: gap-free and increasing.
    pub seq: i64,
    /// `<entity>.<verb>`, such as `item.created`.
    pub kind: String,
    /// Who made the change.
    pub actor: Option<String>,
    /// The changed entity as it is after the change (its id when deleted).
    pub data: Value,
    /// Commit time, RFC 3339 UTC with microseconds.
    pub created_at: String,
}

/// One subscription ended by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribed {
    /// The board.
    pub board_id: String,
    /// Why.
    pub error: ErrorBody,
}

/// Who is viewing a board: everyone with a live subscription to it. Each frame carries the
/// whole list, so the latest frame is the truth; `joined` or `left` names the change, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// The board.
    pub board_id: String,
    /// The users viewing it, sorted.
    pub users: Vec<String>,
    /// The user who started viewing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<String>,
    /// The user who stopped viewing (unsubscribed, disconnected, timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<String>,
}

/// WebSocket close codes the server uses. The close reason is a short text; clients branch on
/// the code.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down; reconnect (with `after_seq`) later.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame broke the protocol in a way that ends the connection.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame was larger than the server accepts.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Nothing was heard from the client for the heartbeat period.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The credentials stopped being valid: the reason names the error code
    /// (`token_expired`, `session_revoked`, `unauthenticated`).
    pub const AUTH_ENDED: u16 = 4001;
    /// The client did not read fast enough; its outbound buffer filled up.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The server fell behind its own event stream; reconnect and resubscribe with `after_seq`.
    pub const RESYNC: u16 = 4009;
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::boards::{self, tests::board};
    use crate::golden::{assert_golden, id};

    #[test]
    fn subscribe_replies_are_pinned() {
        let recovered = Subscribed { seq: 42, recovered: true, snapshot: None };
        assert_golden(&recovered, RECOVERED_JSON, RECOVERED_MSGPACK);
        let snapshot = boards::Snapshot {
            board: board(),
            columns: vec![],
            groups: vec![],
            items: vec![],
            seq: 1,
        };
        let fresh = Subscribed { seq: 1, recovered: false, snapshot: Some(snapshot) };
        assert_golden(&fresh, SNAPSHOT_JSON, SNAPSHOT_MSGPACK);
    }

    /// The body of a socket write: the frame without its tag, its id, and the ids REST carries
    /// in the path.
    fn body<T: DeserializeOwned>(message: &ClientMessage, path: &[&str]) -> T {
        let mut fields = serde_json::to_value(message).unwrap();
        let map = fields.as_object_mut().unwrap();
        for key in ["type", "board_id"].iter().chain(path) {
            map.remove(*key);
        }
        serde_json::from_value(fields).unwrap()
    }

    /// Each board write's socket fields are its REST body's, so one type can serve both; the
    /// bodies refuse unknown fields, so a field only the socket had would fail here.
    #[test]
    fn socket_writes_carry_the_rest_bodies() {
        let b = || id(1).to_string();
        let some = |n| Some(id(n).to_string());
        let update_board =
            ClientMessage::UpdateBoard { board_id: b(), name: Some("B".into()), description: None };
        let _: boards::UpdateBoard = body(&update_board, &[]);
        let set_member = ClientMessage::SetMember {
            board_id: b(),
            user_id: id(8).to_string(),
            role: "editor".into(),
        };
        let _: boards::SetMember = body(&set_member, &["user_id"]);
        let create_column = ClientMessage::CreateColumn {
            board_id: b(),
            title: "Status".into(),
            column_type: "status".into(),
            settings: Some(json!({"labels": ["Todo"]})),
            before: None,
            after: some(3),
        };
        let column: boards::CreateColumn = body(&create_column, &[]);
        assert_eq!(column.column_type, "status");
        let update_column = ClientMessage::UpdateColumn {
            board_id: b(),
            column_id: id(3).to_string(),
            title: Some("S".into()),
            settings: None,
            before: some(9),
            after: None,
        };
        let _: boards::UpdateColumn = body(&update_column, &["column_id"]);
        let create_group = ClientMessage::CreateGroup {
            board_id: b(),
            title: "G".into(),
            color: Some("red".into()),
            before: None,
            after: some(4),
        };
        let _: boards::CreateGroup = body(&create_group, &[]);
        let update_group = ClientMessage::UpdateGroup {
            board_id: b(),
            group_id: id(4).to_string(),
            title: None,
            color: Some("blue".into()),
            before: some(9),
            after: None,
        };
        let _: boards::UpdateGroup = body(&update_group, &["group_id"]);
        let create_item = ClientMessage::CreateItem {
            board_id: b(),
            group_id: id(4).to_string(),
            name: "Ship".into(),
            values: BTreeMap::from([(id(3).to_string(), json!("Done"))]),
            before: some(5),
            after: None,
        };
        let _: boards::CreateItem = body(&create_item, &[]);
        let update_item = ClientMessage::UpdateItem {
            board_id: b(),
            item_id: id(5).to_string(),
            name: Some("S".into()),
            values: BTreeMap::from([(id(3).to_string(), Value::Null)]),
            expected_version: Some(3),
        };
        let _: boards::UpdateItem = body(&update_item, &["item_id"]);
        let move_item = ClientMessage::MoveItem {
            board_id: b(),
            item_id: id(5).to_string(),
            group_id: id(4).to_string(),
            before: None,
            after: some(9),
        };
        let _: boards::MoveItem = body(&move_item, &["item_id"]);
        let archive_item = ClientMessage::ArchiveItem {
            board_id: b(),
            item_id: id(5).to_string(),
            archived: Some(false),
        };
        let _: boards::ArchiveItem = body(&archive_item, &["item_id"]);
        let create_update = ClientMessage::CreateUpdate {
            board_id: b(),
            item_id: id(5).to_string(),
            body: "Hi".into(),
            parent_id: some(7),
        };
        let _: boards::CreateUpdate = body(&create_update, &["item_id"]);
        let edit_update = ClientMessage::EditUpdate {
            board_id: b(),
            item_id: id(5).to_string(),
            update_id: id(7).to_string(),
            body: "Hey".into(),
        };
        let _: boards::EditUpdate = body(&edit_update, &["item_id", "update_id"]);
    }

    const RECOVERED_JSON: &str = r#"{"seq":42,"recovered":true}"#;
    const RECOVERED_MSGPACK: &str = "82a37365712aa97265636f7665726564c3";
    const SNAPSHOT_JSON: &str = r#"{"seq":1,"recovered":false,"snapshot":{"board":{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z"},"columns":[],"groups":[],"items":[],"seq":1}}"#;
    const SNAPSHOT_MSGPACK: &str = "83a373657101a97265636f7665726564c2a8736e617073686f7485a5626f61726486a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335aa7636f6c756d6e7390a667726f75707390a56974656d7390a373657101";
}
