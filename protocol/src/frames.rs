//! The frames of the WebSocket protocol: what a client sends and what the server answers.
//!
//! Every client frame is `{"type": <snake_case>, "id": <chosen by the client>, …fields}`; the
//! server answers each with one [`ServerFrame::Reply`] carrying the same `id`. Events and other
//! pushes carry no `id`. Ids and times are strings on the wire in both encodings (see
//! [`crate::codec`]), so the same types serve JSON and MessagePack.
//!
//! Message tags are append-only: a retired tag is never reused for something else.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::boards;
use crate::error::ErrorBody;

/// The id a client gives a request; echoed in its reply. A number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RequestId {
    /// A number.
    Number(u64),
    /// A string.
    Text(String),
}

/// One frame from a client: its id plus the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientFrame {
    /// Echoed in the reply.
    pub id: RequestId,
    /// What the client asks.
    #[serde(flatten)]
    pub message: ClientMessage,
}

/// What a client may ask. A board write carries the same body type as its REST route
/// (`crate::boards`), flattened beside `board_id` and the ids REST carries in its path, so one
/// type describes both and the server turns both into a command the same way.
///
/// Unknown fields are ignored, as `docs/PROTOCOL.md` promises (so newer clients can talk to
/// older servers): a flattened body only takes the fields it knows, whatever its own
/// `deny_unknown_fields` says on REST.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        /// The REST body.
        #[serde(flatten)]
        body: boards::UpdateBoard,
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
        /// The REST body.
        #[serde(flatten)]
        body: boards::SetMember,
    },
    /// `DELETE /boards/{board}/members/{user}`.
    RemoveMember {
        /// The board.
        board_id: String,
        /// The user.
        user_id: String,
    },
    /// `POST /boards/{board}/columns`. REST's `type` is `column_type` here: `type` names the
    /// frame.
    CreateColumn {
        /// The board.
        board_id: String,
        /// The REST body, its `type` written as `column_type`.
        #[serde(flatten, serialize_with = "column_fields")]
        body: boards::CreateColumn,
    },
    /// `PATCH /boards/{board}/columns/{column}`.
    UpdateColumn {
        /// The board.
        board_id: String,
        /// The column.
        column_id: String,
        /// The REST body, its `type` written as `column_type`.
        #[serde(flatten, serialize_with = "column_update_fields")]
        body: boards::UpdateColumn,
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
        /// The REST body.
        #[serde(flatten)]
        body: boards::CreateGroup,
    },
    /// `PATCH /boards/{board}/groups/{group}`.
    UpdateGroup {
        /// The board.
        board_id: String,
        /// The group.
        group_id: String,
        /// The REST body.
        #[serde(flatten)]
        body: boards::UpdateGroup,
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
        /// The REST body.
        #[serde(flatten)]
        body: boards::CreateItem,
    },
    /// `PATCH /boards/{board}/items/{item}`.
    UpdateItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// The REST body.
        #[serde(flatten)]
        body: boards::UpdateItem,
    },
    /// `POST /boards/{board}/items/{item}/move`.
    MoveItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// The REST body.
        #[serde(flatten)]
        body: boards::MoveItem,
    },
    /// `POST /boards/{board}/items/{item}/archive`.
    ArchiveItem {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// The REST body.
        #[serde(flatten)]
        body: boards::ArchiveItem,
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
        /// The REST body.
        #[serde(flatten)]
        body: boards::CreateUpdate,
    },
    /// `PATCH /boards/{board}/items/{item}/updates/{update}`.
    EditUpdate {
        /// The board.
        board_id: String,
        /// The item.
        item_id: String,
        /// The update.
        update_id: String,
        /// The REST body.
        #[serde(flatten)]
        body: boards::EditUpdate,
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

/// Writes a column body as the socket spells it: `column_type` where REST says `type`, which
/// would collide with the frame's tag. Reading needs no twin: `boards::CreateColumn` takes
/// `column_type` as an alias.
fn column_fields<S: serde::Serializer>(
    body: &boards::CreateColumn,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Fields<'a> {
        title: &'a str,
        column_type: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        settings: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<uuid::Uuid>,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<uuid::Uuid>,
    }
    Fields {
        title: &body.title,
        column_type: &body.column_type,
        settings: body.settings.as_ref(),
        before: body.before,
        after: body.after,
    }
    .serialize(serializer)
}

/// Writes a column update as the socket spells it, as [`column_fields`] does a creation.
fn column_update_fields<S: serde::Serializer>(
    body: &boards::UpdateColumn,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Fields<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        column_type: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        settings: Option<&'a Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        before: Option<uuid::Uuid>,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<uuid::Uuid>,
    }
    Fields {
        title: body.title.as_deref(),
        column_type: body.column_type.as_deref(),
        settings: body.settings.as_ref(),
        before: body.before,
        after: body.after,
    }
    .serialize(serializer)
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hello {
    /// [`crate::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Seconds of silence after which the server closes the connection; send `ping` sooner.
    pub heartbeat_secs: u64,
}

/// The answer to a client frame: `ok` with `data`, or not with `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// A success whose `data` is one of the reply types ([`Done`], [`Subscribed`], an entity of
    /// [`crate::boards`]). Fails only for a value JSON cannot hold (a map with non-string keys),
    /// which no type of this crate is.
    pub fn ok_with<T: Serialize>(
        id: Option<RequestId>,
        data: &T,
        seq: Option<i64>,
    ) -> Result<Reply, serde_json::Error> {
        Ok(Reply::ok(id, serde_json::to_value(data)?, seq))
    }

    /// A failure.
    pub fn err(id: Option<RequestId>, error: ErrorBody) -> Reply {
        Reply { id, ok: false, data: None, seq: None, error: Some(error) }
    }
}

/// A successful [`Reply`] as the server writes it: `data` serialized straight from its type
/// into the frame, with no `serde_json::Value` built in between (for an item, a tree of maps and
/// strings made and dropped per reply). On the wire it is `ServerFrame::Reply(Reply::ok(id,
/// data, seq))`; `reply_ok_is_the_reply_frame` proves it in both encodings.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "reply")]
pub struct ReplyOk<'a, T> {
    id: Option<&'a RequestId>,
    ok: bool,
    data: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
}

impl<'a, T: Serialize> ReplyOk<'a, T> {
    /// The reply to `id` carrying `data` (and, for board writes, `seq`).
    pub fn new(id: Option<&'a RequestId>, data: &'a T, seq: Option<i64>) -> Self {
        ReplyOk { id, ok: true, data, seq }
    }
}

/// The `data` of a reply that says only that the request was done (`ping`, `auth`,
/// `unsubscribe`): an empty object, `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Done {}

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Unsubscribed {
    /// The board.
    pub board_id: String,
    /// Why.
    pub error: ErrorBody,
}

/// Who is viewing a board: everyone with a live subscription to it. Each frame carries the
/// whole list, so the latest frame is the truth; `joined` or `left` names the change, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::boards::tests::board;
    use crate::codec::Encoding;
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

    #[test]
    fn reply_ok_is_the_reply_frame() {
        let snapshot = boards::Snapshot {
            board: board(),
            columns: vec![],
            groups: vec![],
            items: vec![],
            seq: 7,
        };
        let data = Subscribed { seq: 7, recovered: false, snapshot: Some(snapshot) };
        for (id, seq) in [(Some(RequestId::Number(9)), Some(7)), (None, None)] {
            let as_value = ServerFrame::Reply(Reply::ok_with(id.clone(), &data, seq).unwrap());
            for encoding in Encoding::ALL {
                let direct = encoding.encode(&ReplyOk::new(id.as_ref(), &data, seq)).unwrap();
                let decoded: ServerFrame = encoding.decode(&direct).unwrap();
                assert_eq!(decoded, as_value, "{encoding:?}");
            }
        }
        // Byte for byte where the data has no keys for a `Value` to reorder.
        let id = RequestId::Number(3);
        let done = ServerFrame::Reply(Reply::ok_with(Some(id.clone()), &Done {}, None).unwrap());
        for encoding in Encoding::ALL {
            let direct = encoding.encode(&ReplyOk::new(Some(&id), &Done {}, None)).unwrap();
            assert_eq!(direct, encoding.encode(&done).unwrap(), "{encoding:?}");
        }
    }

    #[test]
    fn empty_replies_are_pinned() {
        assert_golden(&Done {}, "{}", "80");
        let reply = Reply::ok_with(Some(RequestId::Number(3)), &Done {}, None).unwrap();
        assert_golden(&reply, r#"{"id":3,"ok":true,"data":{}}"#, "83a2696403a26f6bc3a46461746180");
    }

    /// Decodes `message` sent as a frame with an id.
    fn decode(encoding: Encoding, message: &Value) -> ClientMessage {
        let mut frame = message.clone();
        frame["id"] = json!(1);
        let bytes = match encoding {
            Encoding::Json => serde_json::to_vec(&frame).unwrap(),
            Encoding::MessagePack => rmp_serde::to_vec_named(&frame).unwrap(),
        };
        encoding.decode_client(&bytes).unwrap().message
    }

    /// Every board write as clients send it today (the frames `tests/realtime.rs` and the load
    /// tool write by hand) decodes, in both encodings, into its REST body beside the path ids,
    /// and encodes back to the same fields.
    #[test]
    fn socket_writes_carry_the_rest_bodies() {
        let (b, i, g, c, u) = (id(1), id(5), id(4), id(3), id(7));
        let cases = [
            (
                json!({"type": "update_board", "board_id": b, "name": "B"}),
                ClientMessage::UpdateBoard {
                    board_id: b.to_string(),
                    body: boards::UpdateBoard { name: Some("B".into()), description: None },
                },
            ),
            (
                json!({"type": "set_member", "board_id": b, "user_id": id(8), "role": "editor"}),
                ClientMessage::SetMember {
                    board_id: b.to_string(),
                    user_id: id(8).to_string(),
                    body: boards::SetMember { role: "editor".into() },
                },
            ),
            (
                json!({"type": "create_column", "board_id": b, "title": "Status",
                       "column_type": "status", "settings": {"labels": ["Todo"]}, "after": c}),
                ClientMessage::CreateColumn {
                    board_id: b.to_string(),
                    body: boards::CreateColumn {
                        title: "Status".into(),
                        column_type: "status".into(),
                        settings: Some(json!({"labels": ["Todo"]})),
                        before: None,
                        after: Some(c),
                    },
                },
            ),
            (
                json!({"type": "update_column", "board_id": b, "column_id": c, "title": "S",
                       "before": u}),
                ClientMessage::UpdateColumn {
                    board_id: b.to_string(),
                    column_id: c.to_string(),
                    body: boards::UpdateColumn {
                        title: Some("S".into()),
                        before: Some(u),
                        ..Default::default()
                    },
                },
            ),
            (
                json!({"type": "update_column", "board_id": b, "column_id": c,
                       "column_type": "long_text"}),
                ClientMessage::UpdateColumn {
                    board_id: b.to_string(),
                    column_id: c.to_string(),
                    body: boards::UpdateColumn {
                        column_type: Some("long_text".into()),
                        ..Default::default()
                    },
                },
            ),
            (
                json!({"type": "create_group", "board_id": b, "title": "G", "color": "red"}),
                ClientMessage::CreateGroup {
                    board_id: b.to_string(),
                    body: boards::CreateGroup {
                        title: "G".into(),
                        color: Some("red".into()),
                        before: None,
                        after: None,
                    },
                },
            ),
            (
                json!({"type": "update_group", "board_id": b, "group_id": g, "color": "blue"}),
                ClientMessage::UpdateGroup {
                    board_id: b.to_string(),
                    group_id: g.to_string(),
                    body: boards::UpdateGroup { color: Some("blue".into()), ..Default::default() },
                },
            ),
            (
                json!({"type": "create_item", "board_id": b, "group_id": g, "name": "Ship",
                       "values": {c.to_string(): "Done"}, "before": i}),
                ClientMessage::CreateItem {
                    board_id: b.to_string(),
                    body: boards::CreateItem {
                        group_id: g,
                        name: "Ship".into(),
                        values: BTreeMap::from([(c, json!("Done"))]),
                        before: Some(i),
                        after: None,
                    },
                },
            ),
            (
                json!({"type": "update_item", "board_id": b, "item_id": i,
                       "values": {c.to_string(): null}, "expected_version": 3}),
                ClientMessage::UpdateItem {
                    board_id: b.to_string(),
                    item_id: i.to_string(),
                    body: boards::UpdateItem {
                        name: None,
                        values: BTreeMap::from([(c, Value::Null)]),
                        expected_version: Some(3),
                    },
                },
            ),
            (
                json!({"type": "move_item", "board_id": b, "item_id": i, "group_id": g}),
                ClientMessage::MoveItem {
                    board_id: b.to_string(),
                    item_id: i.to_string(),
                    body: boards::MoveItem { group_id: g, before: None, after: None },
                },
            ),
            (
                json!({"type": "archive_item", "board_id": b, "item_id": i}),
                ClientMessage::ArchiveItem {
                    board_id: b.to_string(),
                    item_id: i.to_string(),
                    body: boards::ArchiveItem { archived: None },
                },
            ),
            (
                json!({"type": "archive_item", "board_id": b, "item_id": i, "archived": false}),
                ClientMessage::ArchiveItem {
                    board_id: b.to_string(),
                    item_id: i.to_string(),
                    body: boards::ArchiveItem { archived: Some(false) },
                },
            ),
            (
                json!({"type": "create_update", "board_id": b, "item_id": i, "body": "Hi",
                       "parent_id": u}),
                ClientMessage::CreateUpdate {
                    board_id: b.to_string(),
                    item_id: i.to_string(),
                    body: boards::CreateUpdate { body: "Hi".into(), parent_id: Some(u) },
                },
            ),
            (
                json!({"type": "edit_update", "board_id": b, "item_id": i, "update_id": u,
                       "body": "Hey"}),
                ClientMessage::EditUpdate {
                    board_id: b.to_string(),
                    item_id: i.to_string(),
                    update_id: u.to_string(),
                    body: boards::EditUpdate { body: "Hey".into() },
                },
            ),
        ];
        for (wire, message) in cases {
            for encoding in Encoding::ALL {
                assert_eq!(decode(encoding, &wire), message, "{encoding:?} {wire}");
            }
            assert_eq!(serde_json::to_value(&message).unwrap(), wire);
        }
    }

    /// `docs/PROTOCOL.md`: a socket ignores fields it does not know (REST refuses them); a
    /// flattened body must not turn that into a refusal, in either encoding.
    #[test]
    fn socket_writes_ignore_unknown_fields_where_rest_refuses_them() {
        let b = id(1);
        let frame = json!({"type": "create_group", "board_id": b, "title": "G", "shade": 3});
        for encoding in Encoding::ALL {
            let ClientMessage::CreateGroup { body, .. } = decode(encoding, &frame) else {
                panic!("not a create_group")
            };
            assert_eq!(body.title, "G");
        }
        let rest = serde_json::from_value::<boards::CreateGroup>(json!({"title": "G", "shade": 3}));
        assert!(rest.unwrap_err().to_string().contains("unknown field"));
    }

    /// MessagePack writes small integers in the smallest form (a positive fixint for 3, a
    /// negative one for -1); through the flattened body they still read as the `i64` they are.
    #[test]
    fn msgpack_integers_read_through_flattened_bodies() {
        let b = id(1);
        for version in [0i64, 3, -1, 300, i64::MAX, i64::MIN] {
            let frame = json!({"type": "update_item", "board_id": b, "item_id": id(5),
                               "expected_version": version});
            let ClientMessage::UpdateItem { body, .. } = decode(Encoding::MessagePack, &frame)
            else {
                panic!("not an update_item")
            };
            assert_eq!(body.expected_version, Some(version));
        }
        // A number too large for i64 is refused, not wrapped.
        let frame = json!({"type": "update_item", "id": 1, "board_id": b, "item_id": id(5),
                           "expected_version": u64::MAX});
        let bytes = rmp_serde::to_vec_named(&frame).unwrap();
        assert!(Encoding::MessagePack.decode_client(&bytes).is_err());
    }

    /// A malformed id or a missing field inside a body is an unreadable frame, as it is an
    /// unreadable body on REST; the reply still names the request.
    #[test]
    fn broken_bodies_keep_the_frame_id() {
        let b = id(1);
        for frame in [
            json!({"type": "move_item", "id": 9, "board_id": b, "item_id": id(5), "group_id": "x"}),
            json!({"type": "create_group", "id": 9, "board_id": b}),
            json!({"type": "create_item", "id": 9, "board_id": b, "group_id": id(4), "name": "n",
                   "values": {"not-an-id": 1}}),
        ] {
            for encoding in Encoding::ALL {
                let bytes = match encoding {
                    Encoding::Json => serde_json::to_vec(&frame).unwrap(),
                    Encoding::MessagePack => rmp_serde::to_vec_named(&frame).unwrap(),
                };
                let err = encoding.decode_client(&bytes).unwrap_err();
                assert_eq!(err.id, Some(RequestId::Number(9)), "{encoding:?} {frame}");
            }
        }
    }

    const RECOVERED_JSON: &str = r#"{"seq":42,"recovered":true}"#;
    const RECOVERED_MSGPACK: &str = "82a37365712aa97265636f7665726564c3";
    const SNAPSHOT_JSON: &str = r#"{"seq":1,"recovered":false,"snapshot":{"board":{"id":"00000000-0000-0000-0000-000000000001","organization_id":"00000000-0000-0000-0000-000000000002","name":"Launch","description":"","created_at":"2026-01-02T03:04:05.000006Z","updated_at":"2026-01-02T03:04:05.123Z"},"columns":[],"groups":[],"items":[],"seq":1}}"#;
    const SNAPSHOT_MSGPACK: &str = "83a373657101a97265636f7665726564c2a8736e617073686f7485a5626f61726486a26964d92430303030303030302d303030302d303030302d303030302d303030303030303030303031af6f7267616e697a6174696f6e5f6964d92430303030303030302d303030302d303030302d303030302d303030303030303030303032a46e616d65a64c61756e6368ab6465736372697074696f6ea0aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365aaa757064617465645f6174b8323032362d30312d30325430333a30343a30352e3132335aa7636f6c756d6e7390a667726f75707390a56974656d7390a373657101";
}
