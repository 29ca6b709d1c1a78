//! The one codec: JSON in text frames, MessagePack (named maps, so fields are keyed like JSON)
//! in binary frames. The encoding is chosen per connection with `Sec-WebSocket-Protocol`.
//!
//! MessagePack is written human-readable: ids and times are the same strings as in JSON (a
//! `Uuid` would otherwise become 16 raw bytes), so a message means the same in both encodings.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frames::{ClientFrame, RequestId};

/// How a connection's frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// JSON in text frames: `boardroom.v1.json`.
    Json,
    /// MessagePack in binary frames: `boardroom.v1.msgpack`.
    MessagePack,
}

impl Encoding {
    /// Both encodings.
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::MessagePack];

    /// The `Sec-WebSocket-Protocol` name.
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => "boardroom.v1.json",
            Encoding::MessagePack => "boardroom.v1.msgpack",
        }
    }

    /// The encoding a subprotocol name selects.
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.subprotocol() == name.trim())
    }

    /// Encodes a frame.
    pub fn encode<T: Serialize>(self, frame: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Encoding::Json => serde_json::to_vec(frame).map_err(|e| CodecError(e.to_string())),
            Encoding::MessagePack => {
                let mut bytes = Vec::new();
                let mut serializer =
                    rmp_serde::Serializer::new(&mut bytes).with_struct_map().with_human_readable();
                frame.serialize(&mut serializer).map_err(|e| CodecError(e.to_string()))?;
                Ok(bytes)
            }
        }
    }

    /// Decodes a frame of any type.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| CodecError(e.to_string())),
            Encoding::MessagePack => {
                let mut deserializer =
                    rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
                T::deserialize(&mut deserializer).map_err(|e| CodecError(e.to_string()))
            }
        }
    }

    /// Decodes a client frame. On failure the error keeps the frame's `id` when one could be
    /// read, so the reply can name the request it refuses.
    pub fn decode_client(self, bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
        self.decode::<ClientFrame>(bytes).map_err(|err| {
            let id = self.decode::<Head>(bytes).ok().and_then(|h| h.id);
            DecodeError { id, message: err.0 }
        })
    }
}

/// Just enough of a frame to answer it.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    id: Option<RequestId>,
}

/// A frame that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// A client frame that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The frame's id, if it had a readable one.
    pub id: Option<RequestId>,
    /// What was wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::{ErrorBody, ErrorCode};
    use crate::frames::{ClientMessage, EventFrame, Reply, ServerFrame};
    use crate::golden::hex;

    fn subscribe() -> ClientFrame {
        ClientFrame {
            id: RequestId::Number(1),
            message: ClientMessage::Subscribe { board_id: "b1".into(), after_seq: Some(7) },
        }
    }

    #[test]
    fn client_frame_json_is_pinned() {
        let json = String::from_utf8(Encoding::Json.encode(&subscribe()).unwrap()).unwrap();
        assert_eq!(json, r#"{"id":1,"type":"subscribe","board_id":"b1","after_seq":7}"#);
        let back = Encoding::Json
            .decode_client(br#"{"type":"subscribe","id":1,"board_id":"b1","after_seq":7}"#)
            .unwrap();
        assert_eq!(back, subscribe());
    }

    /// Checked against Python: `msgpack.packb({"id":1,"type":"subscribe","board_id":"b1",
    /// "after_seq":7}).hex()`.
    #[test]
    fn client_frame_msgpack_is_pinned() {
        let bytes = Encoding::MessagePack.encode(&subscribe()).unwrap();
        assert_eq!(
            hex(&bytes),
            "84a2696401a474797065a9737562736372696265a8626f6172645f6964a26231a961667465725f73657107"
        );
        assert_eq!(Encoding::MessagePack.decode_client(&bytes).unwrap(), subscribe());
    }

    fn event() -> ServerFrame {
        ServerFrame::Event(EventFrame {
            board_id: "b1".into(),
            seq: 3,
            kind: "item.created".into(),
            actor: Some("u1".into()),
            data: json!({"name": "Ship"}),
            created_at: "2026-01-02T03:04:05.000006Z".into(),
        })
    }

    #[test]
    fn event_json_is_pinned() {
        let json = String::from_utf8(Encoding::Json.encode(&event()).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"event","board_id":"b1","seq":3,"kind":"item.created","actor":"u1","data":{"name":"Ship"},"created_at":"2026-01-02T03:04:05.000006Z"}"#
        );
    }

    /// Checked against Python's `msgpack.packb` of the same map, keys in this order.
    #[test]
    fn event_msgpack_is_pinned() {
        let bytes = Encoding::MessagePack.encode(&event()).unwrap();
        assert_eq!(hex(&bytes), EVENT_MSGPACK_HEX);
        let back: ServerFrame = Encoding::MessagePack.decode(&bytes).unwrap();
        assert_eq!(back, event());
    }

    const EVENT_MSGPACK_HEX: &str = "87a474797065a56576656e74a8626f6172645f6964a26231a373657103a46b696e64ac6974656d2e63726561746564a56163746f72a27531a46461746181a46e616d65a453686970aa637265617465645f6174bb323032362d30312d30325430333a30343a30352e3030303030365a";

    #[test]
    fn reply_shapes_are_pinned() {
        let ok = ServerFrame::Reply(Reply::ok(
            Some(RequestId::Text("a".into())),
            json!({"x": 1}),
            Some(9),
        ));
        assert_eq!(
            String::from_utf8(Encoding::Json.encode(&ok).unwrap()).unwrap(),
            r#"{"type":"reply","id":"a","ok":true,"data":{"x":1},"seq":9}"#
        );
        let err = ServerFrame::Reply(Reply::err(
            None,
            ErrorBody { code: ErrorCode::MalformedBody, message: "bad".into() },
        ));
        assert_eq!(
            String::from_utf8(Encoding::Json.encode(&err).unwrap()).unwrap(),
            r#"{"type":"reply","id":null,"ok":false,"error":{"code":"malformed_body","message":"bad"}}"#
        );
    }

    /// MessagePack carries ids and times as the same strings JSON does, not as raw bytes.
    #[test]
    fn msgpack_ids_and_times_are_strings() {
        let id = uuid::Uuid::from_u128(1);
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap();
        let bytes = Encoding::MessagePack.encode(&(id, at)).unwrap();
        let back: (String, String) = Encoding::MessagePack.decode(&bytes).unwrap();
        assert_eq!(back, (id.to_string(), "2026-01-02T03:04:05Z".to_owned()));
        let back: (uuid::Uuid, chrono::DateTime<chrono::FixedOffset>) =
            Encoding::MessagePack.decode(&bytes).unwrap();
        assert_eq!(back, (id, at));
    }

    #[test]
    fn broken_frames_keep_their_id() {
        let err = Encoding::Json.decode_client(br#"{"type":"nope","id":5}"#).unwrap_err();
        assert_eq!(err.id, Some(RequestId::Number(5)));
        let err = Encoding::Json.decode_client(b"{not json").unwrap_err();
        assert_eq!(err.id, None);
        let err = Encoding::MessagePack.decode_client(&[0xc1, 0x00]).unwrap_err();
        assert_eq!(err.id, None);
    }

    #[test]
    fn subprotocols_round_trip() {
        for e in Encoding::ALL {
            assert_eq!(Encoding::from_subprotocol(e.subprotocol()), Some(e));
        }
        assert_eq!(Encoding::from_subprotocol("boardroom.v2.json"), None);
    }
}
