//! The one codec: JSON in text frames, MessagePack (named maps, so fields are keyed like JSON)
//! in binary frames. The encoding is chosen per connection with `Sec-WebSocket-Protocol`.
//!
//! MessagePack is written human-readable: ids and times are the same strings as in JSON (a
//! `Uuid` would otherwise become 16 raw bytes), so a message means the same in both encodings.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frames::{ClientFrame, RequestId};
use crate::PROTOCOL_VERSION;

/// What every Boardroom subprotocol name starts with; the version and the encoding follow:
/// `boardroom.v<PROTOCOL_VERSION>.<encoding>`.
pub const SUBPROTOCOL_PREFIX: &str = "boardroom.v";

/// Spells `boardroom.v<PROTOCOL_VERSION>.<suffix>` at compile time, so bumping
/// [`PROTOCOL_VERSION`] renames the subprotocols with it and they can never disagree.
const fn subprotocol_name<const N: usize>(suffix: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let prefix = SUBPROTOCOL_PREFIX.as_bytes();
    let mut i = 0;
    while i < prefix.len() {
        out[i] = prefix[i];
        i += 1;
    }
    let digits = decimal_digits(PROTOCOL_VERSION);
    let mut d = 0;
    while d < digits {
        let place = 10u32.pow((digits - 1 - d) as u32);
        out[i] = b'0' + ((PROTOCOL_VERSION / place) % 10) as u8;
        i += 1;
        d += 1;
    }
    out[i] = b'.';
    i += 1;
    let suffix = suffix.as_bytes();
    let mut s = 0;
    while s < suffix.len() {
        out[i] = suffix[s];
        i += 1;
        s += 1;
    }
    assert!(i == N, "subprotocol name length");
    out
}

const fn decimal_digits(mut n: u32) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

const fn subprotocol_len(suffix: &str) -> usize {
    SUBPROTOCOL_PREFIX.len() + decimal_digits(PROTOCOL_VERSION) + 1 + suffix.len()
}

const fn utf8(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("subprotocol names are ASCII"),
    }
}

const JSON_LEN: usize = subprotocol_len("json");
const JSON_NAME: [u8; JSON_LEN] = subprotocol_name::<JSON_LEN>("json");
const MSGPACK_LEN: usize = subprotocol_len("msgpack");
const MSGPACK_NAME: [u8; MSGPACK_LEN] = subprotocol_name::<MSGPACK_LEN>("msgpack");

/// The version a `boardroom.v<N>.<encoding>` subprotocol name asks for, whatever the encoding;
/// `None` for a name that is not a Boardroom subprotocol at all. Lets the server tell a client
/// of another protocol version (426) from one offering something unrelated (400).
pub fn subprotocol_version(name: &str) -> Option<u32> {
    let rest = name.trim().strip_prefix(SUBPROTOCOL_PREFIX)?;
    let (version, _encoding) = rest.split_once('.')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    version.parse().ok()
}

/// How a connection's frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// JSON in text frames: `boardroom.v<PROTOCOL_VERSION>.json`.
    Json,
    /// MessagePack in binary frames: `boardroom.v<PROTOCOL_VERSION>.msgpack`.
    MessagePack,
}

impl Encoding {
    /// Both encodings.
    pub const ALL: [Encoding; 2] = [Encoding::Json, Encoding::MessagePack];

    /// The `Sec-WebSocket-Protocol` name, derived from [`PROTOCOL_VERSION`].
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Encoding::Json => utf8(&JSON_NAME),
            Encoding::MessagePack => utf8(&MSGPACK_NAME),
        }
    }

    /// Every supported subprotocol name, comma-separated as in a `Sec-WebSocket-Protocol`
    /// header.
    pub fn supported_subprotocols() -> String {
        Encoding::ALL.map(Encoding::subprotocol).join(", ")
    }

    /// The encoding a subprotocol name selects.
    pub fn from_subprotocol(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.subprotocol() == name.trim())
    }

    /// Encodes a frame.
    pub fn encode<T: Serialize>(self, frame: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Encoding::Json => json_text(frame).map(String::into_bytes),
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

/// A frame as JSON text, for a text message: `serde_json` writes only UTF-8, so the text needs
/// no second check.
pub fn json_text<T: Serialize>(frame: &T) -> Result<String, CodecError> {
    serde_json::to_string(frame).map_err(|e| CodecError(e.to_string()))
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

    #[test]
    fn subprotocol_names_follow_the_protocol_version() {
        let v = crate::PROTOCOL_VERSION;
        assert_eq!(Encoding::Json.subprotocol(), format!("boardroom.v{v}.json"));
        assert_eq!(Encoding::MessagePack.subprotocol(), format!("boardroom.v{v}.msgpack"));
        assert_eq!(
            Encoding::supported_subprotocols(),
            format!("boardroom.v{v}.json, boardroom.v{v}.msgpack")
        );
        for e in Encoding::ALL {
            assert_eq!(subprotocol_version(e.subprotocol()), Some(v));
        }
    }

    #[test]
    fn subprotocol_version_reads_only_boardroom_names() {
        assert_eq!(subprotocol_version("boardroom.v2.json"), Some(2));
        assert_eq!(subprotocol_version(" boardroom.v17.xml "), Some(17));
        assert_eq!(subprotocol_version("boardroom.v.json"), None);
        assert_eq!(subprotocol_version("boardroom.vx.json"), None);
        assert_eq!(subprotocol_version("boardroom.v2"), None);
        assert_eq!(subprotocol_version("graphql-ws"), None);
    }
}
